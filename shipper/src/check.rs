//! `bitesize-shipper check FILE...`: the records the shipper would produce for those files,
//! as NDJSON, without a broker. Reads through the same decoder and record builder as the
//! tailer, so what it prints is what Kafka would get.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::config::Config;
use crate::decode::DecoderSettings;
use crate::file_name::ContainerFile;
use crate::kubernetes::PodCache;
use crate::metrics::Metrics;
use crate::record_builder::RecordBuilder;
use crate::{Error, Result};

/// Writes every record of `files` to `out`, one JSON object per line, each file read to its
/// end (a last line without its newline included, as when the shipper finishes a file).
/// Returns the files that could not be checked and why; the others are still printed.
/// `pods`: metadata from the Kubernetes API when it is enabled and reachable.
pub fn check(
    config: &Config,
    pods: Option<PodCache>,
    files: &[PathBuf],
    out: &mut impl Write,
) -> Result<Vec<String>> {
    let mut builder = RecordBuilder::new(config, Arc::new(Metrics::new()))?;
    if let Some(pods) = pods {
        builder = builder.with_pods(pods);
    }
    let decoders = DecoderSettings::new(config)?;
    let mut failures = Vec::new();
    for path in files {
        let source = match builder.source(path) {
            Ok(source) => source,
            Err(why) => {
                failures.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        let lines = match read_all(path, &decoders, &source.container) {
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

fn read_all(
    path: &Path,
    decoders: &DecoderSettings,
    container: &ContainerFile,
) -> std::io::Result<Vec<crate::line::LogLine>> {
    let mut file = File::open(path)?;
    let mut decoder = decoders.decoder(0, container);
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
        let failures = check(&config, None, &[path, dir.path().join("x.log")], &mut out).unwrap();
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

    #[test]
    fn pod_uid_comes_from_the_kubelet_link_target() {
        let dir = tempfile::tempdir().unwrap();
        let uid = "0f3c2a1e-1b2c-4d5e-8f90-123456789abc";
        let pod_dir = dir.path().join(format!("pods/shop_web-1_{uid}/app"));
        std::fs::create_dir_all(&pod_dir).unwrap();
        std::fs::write(pod_dir.join("0.log"), "2026-11-25T10:00:00Z stdout F hi\n").unwrap();
        std::fs::create_dir_all(dir.path().join("containers")).unwrap();
        let id = "3a38a5c2e1f44b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e";
        let link = dir
            .path()
            .join(format!("containers/web-1_shop_app-{id}.log"));
        std::os::unix::fs::symlink(pod_dir.join("0.log"), &link).unwrap();
        let mut out = Vec::new();
        check(
            &Config::default(),
            None,
            std::slice::from_ref(&link),
            &mut out,
        )
        .unwrap();
        let record: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(record["kubernetes"]["pod_id"], uid);
        let builder = RecordBuilder::new(&Config::default(), Arc::new(Metrics::new())).unwrap();
        let source = builder.source(&link).unwrap();
        let line = crate::line::parse_line(b"2026-11-25T10:00:00Z stdout F hi");
        assert_eq!(builder.build(&source, line).key, uid, "the Kafka key");
    }
}
