//! `bitesize-shipper check FILE...`: the records the shipper would produce for those files,
//! as NDJSON, without a broker. Reads through the same decoder and record builder as the
//! tailer, so what it prints is what Kafka would get.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::decode::FileDecoder;
use crate::record_builder::RecordBuilder;
use crate::{Error, Result};

/// Writes every record of `files` to `out`, one JSON object per line, each file read to its
/// end (a last line without its newline included, as when the shipper finishes a file).
/// Returns the files that could not be checked and why; the others are still printed.
pub fn check(config: &Config, files: &[PathBuf], out: &mut impl Write) -> Result<Vec<String>> {
    let builder = RecordBuilder::new(config);
    let mut failures = Vec::new();
    for path in files {
        let source = match builder.source(path) {
            Ok(source) => source,
            Err(why) => {
                failures.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        let lines = match read_all(path, config.max_line_bytes) {
            Ok(lines) => lines,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for line in lines {
            let record = builder.build(&source, line);
            out.write_all(&record.payload)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| Error::Io("writing to stdout".into(), e))?;
        }
    }
    out.flush()
        .map_err(|e| Error::Io("writing to stdout".into(), e))?;
    Ok(failures)
}

fn read_all(path: &Path, max_line_bytes: usize) -> std::io::Result<Vec<crate::line::LogLine>> {
    let mut file = File::open(path)?;
    let mut decoder = FileDecoder::new(0, max_line_bytes);
    let mut lines = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        decoder.feed(&chunk[..n], &mut lines);
    }
    decoder.finish(&mut lines);
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_record_per_message_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let id = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
        let path = dir.path().join(format!("web-1_shop_web-{id}.log"));
        std::fs::write(
            &path,
            "2026-11-25T10:00:00Z stdout P par\n2026-11-25T10:00:00Z stdout F tial\nnot cri",
        )
        .unwrap();
        let config = Config {
            cluster: Some("c1".into()),
            ..Config::default()
        };
        let mut out = Vec::new();
        let failures = check(&config, &[path, dir.path().join("x.log")], &mut out).unwrap();
        let records: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["log"], "partial");
        assert_eq!(records[0]["kubernetes"]["namespace_name"], "shop");
        assert_eq!(records[0]["cluster"], "c1");
        assert_eq!(records[1]["log"], "not cri");
        assert_eq!(records[1]["marks"][0], "parse_error");
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("x.log"), "{failures:?}");
    }
}
