//! Inputs the fuzz targets in `fuzz/` once failed on (docs/fuzzing.md), kept as tests so the
//! bug stays fixed without a fuzzing run.

use bitesize_record::Record;

/// `fuzz/record_decode`: a number in `fields` that is not exactly an f64 (here larger than
/// any u64) changed on every encode/decode, so the server's stored copy and its index held a
/// different value from the shipper's record. Decimals must parse exactly rounded.
#[test]
fn decimal_numbers_in_fields_survive_encode_and_decode() {
    for number in [
        "184467440731709551615",
        "1.8446744073170954e20",
        "0.30000000000000004",
        "2.2250738585072011e-308",
        "123456789.12345678901234567890",
    ] {
        let payload = format!(r#"{{"log":"x","fields":{{"n":{number}}}}}"#);
        let record = Record::decode(payload.as_bytes()).unwrap();
        let expected: f64 = number.parse().unwrap();
        let decoded = record.fields.as_ref().unwrap()["n"].as_f64().unwrap();
        assert_eq!(decoded, expected, "{number} decoded as {decoded}");
        let again = Record::decode(&record.encode()).unwrap();
        assert_eq!(again, record, "{number} changed on a round trip");
    }
}
