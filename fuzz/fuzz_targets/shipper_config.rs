//! The shipper's config loader (`shipper/src/config.rs`): any file content either loads into
//! a config that validates (globs, patterns, multi-line rules and Kafka security all
//! compile), or is refused with a config error. Never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use bitesize_shipper::{Config, Error};
use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, rewritten for every input: the loader reads a path.
fn config_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bitesize-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("shipper.yaml")
    })
}

fuzz_target!(|data: &[u8]| {
    let file = config_file();
    std::fs::write(file, data).expect("write config");
    match Config::load(Some(file)) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                panic!("a loaded config fails validate(): {e}");
            }
        }
        Err(Error::Config(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("a bad config file gives a config error, not {other:?}"),
    }
});
