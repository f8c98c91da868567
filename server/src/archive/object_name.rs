//! How an archive object is named. The name carries everything the archive needs to know
//! about an object without reading it, so the listing alone is the archive's catalog:
//!
//! ```text
//! {namespace}/{YYYY-MM-DD}/{HH}/{topic}/{partition}/{first:020}-{last:020}.{part}of{parts}.{records}.ndjson.zst
//! shop/2026-11-30/10/logs.shop/0/00000000000000001200-00000000000000001799.1of2.512.ndjson.zst
//! ```
//!
//! `first`–`last` is the *span*: the run of offsets of one partition the archive stage read
//! between two flushes (inclusive). The span's records are split by the UTC hour of their
//! time into `parts` objects, one per hour; `records` is how many this object holds. Offsets
//! are zero-padded so names sort in offset order.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use object_store::path::Path;

const SUFFIX: &str = ".ndjson.zst";
const NANOS_PER_HOUR: i64 = 3_600 * 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName {
    pub namespace: String,
    /// Start of the hour the records' times fall in, in hours since the epoch (UTC).
    pub hour: i64,
    pub topic: String,
    pub partition: i32,
    /// The span: first and last offset read from the partition (inclusive).
    pub first: i64,
    pub last: i64,
    /// This object's number among the span's objects, from 1.
    pub part: u32,
    pub parts: u32,
    /// Records in this object.
    pub records: u64,
}

/// The hour (hours since the epoch) a time in nanoseconds falls in.
pub fn hour_of(nanos: i64) -> i64 {
    nanos.div_euclid(NANOS_PER_HOUR)
}

/// The first nanosecond of `hour`.
pub fn hour_start(hour: i64) -> i64 {
    hour.saturating_mul(NANOS_PER_HOUR)
}

/// `hour` as an RFC 3339 instant (`2026-11-30T10:00:00Z`).
pub fn hour_rfc3339(hour: i64) -> String {
    DateTime::from_timestamp(hour.saturating_mul(3_600), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl ObjectName {
    pub fn path(&self) -> Path {
        let start =
            DateTime::from_timestamp(self.hour.saturating_mul(3_600), 0).unwrap_or_default();
        Path::from(format!(
            "{}/{:04}-{:02}-{:02}/{:02}/{}/{}/{:020}-{:020}.{}of{}.{}{SUFFIX}",
            self.namespace,
            start.year(),
            start.month(),
            start.day(),
            start.hour(),
            self.topic,
            self.partition,
            self.first,
            self.last,
            self.part,
            self.parts,
            self.records,
        ))
    }

    /// The name of an object this module made; `None` for anything else.
    pub fn parse(path: &Path) -> Option<ObjectName> {
        let parts: Vec<&str> = path.as_ref().split('/').collect();
        let [namespace, day, hour, topic, partition, file] = parts.as_slice() else {
            return None;
        };
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
        let hour_of_day: u32 = hour.parse().ok().filter(|h| *h < 24)?;
        let start = Utc
            .from_utc_datetime(&date.and_hms_opt(hour_of_day, 0, 0)?)
            .timestamp();
        let stem = file.strip_suffix(SUFFIX)?;
        let mut fields = stem.split('.');
        let (span, piece, records) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let (first, last) = span.split_once('-')?;
        let (part, parts) = piece.split_once("of")?;
        let name = ObjectName {
            namespace: (*namespace).to_owned(),
            hour: start.div_euclid(3_600),
            topic: (*topic).to_owned(),
            partition: partition.parse().ok()?,
            first: first.parse().ok()?,
            last: last.parse().ok()?,
            part: part.parse().ok()?,
            parts: parts.parse().ok()?,
            records: records.parse().ok()?,
        };
        let valid = name.first <= name.last
            && (1..=name.parts).contains(&name.part)
            && bitesize_record::validate_namespace(&name.namespace).is_ok();
        valid.then_some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectName {
        ObjectName {
            namespace: "shop".into(),
            hour: hour_of(
                DateTime::parse_from_rfc3339("2026-11-30T10:59:59.999999999Z")
                    .unwrap()
                    .timestamp_nanos_opt()
                    .unwrap(),
            ),
            topic: "logs.shop".into(),
            partition: 2,
            first: 1_200,
            last: 1_799,
            part: 1,
            parts: 2,
            records: 512,
        }
    }

    #[test]
    fn names_round_trip_and_sort_by_offset() {
        let name = sample();
        let path = name.path();
        assert_eq!(
            path.as_ref(),
            "shop/2026-11-30/10/logs.shop/2/00000000000000001200-00000000000000001799.1of2.512.ndjson.zst"
        );
        assert_eq!(ObjectName::parse(&path), Some(name.clone()));
        assert_eq!(hour_rfc3339(name.hour), "2026-11-30T10:00:00Z");
        let later = ObjectName {
            first: 10_000,
            last: 10_001,
            ..name
        };
        assert!(later.path().as_ref() > path.as_ref());
    }

    #[test]
    fn other_objects_are_not_archive_objects() {
        for text in [
            "shop/2026-11-30/10/logs.shop/2/1-2.1of1.3.ndjson",
            "shop/2026-11-30/24/logs.shop/2/1-2.1of1.3.ndjson.zst",
            "shop/2026-11-30/10/logs.shop/2/5-2.1of1.3.ndjson.zst",
            "shop/2026-11-30/10/logs.shop/2/1-2.3of2.3.ndjson.zst",
            "Shop/2026-11-30/10/logs.shop/2/1-2.1of1.3.ndjson.zst",
            "shop/10/logs.shop/2/1-2.1of1.3.ndjson.zst",
            "shop/2026-11-30/10/logs.shop/2/1-2.1of1.3.x.ndjson.zst",
        ] {
            assert_eq!(ObjectName::parse(&Path::from(text)), None, "{text}");
        }
    }

    #[test]
    fn hours_before_the_epoch_floor() {
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hour_start(hour_of(NANOS_PER_HOUR + 5)), NANOS_PER_HOUR);
    }
}
