//! What makes a file the same file across renames, truncation and restarts: its device and
//! inode, and a hash of its first bytes ([`HEAD_BYTES`] once it has that many). The inode
//! alone is not enough: inodes are reused after deletion, and copytruncate keeps the inode
//! while replacing the content.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many leading bytes identify a file's content.
pub const HEAD_BYTES: u64 = 1024;

/// Device and inode: which file an open handle or path leads to right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes (`len` ≤ [`HEAD_BYTES`]); `len == 0` says nothing
/// is known about the content (an empty file, or a version 1 checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub len: u64,
    pub hash: u64,
}

impl Head {
    /// The head of `file` as long as it can be, up to [`HEAD_BYTES`].
    pub fn read(file: &File) -> std::io::Result<Head> {
        let bytes = read_prefix(file, HEAD_BYTES)?;
        Ok(Head {
            len: bytes.len() as u64,
            hash: fnv1a(&bytes),
        })
    }

    /// True when `file` starts with the bytes this head was taken from. A head of length 0
    /// matches every file.
    pub fn matches(&self, file: &File) -> std::io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        let bytes = read_prefix(file, self.len)?;
        Ok(bytes.len() as u64 == self.len && fnv1a(&bytes) == self.hash)
    }

    /// True while more of the file can still become part of the head.
    pub fn is_complete(&self) -> bool {
        self.len >= HEAD_BYTES
    }
}

/// Up to `len` bytes from the start of `file`, without moving its read position.
fn read_prefix(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// FNV-1a, 64 bits: small, and stable across Rust releases (checkpoints keep the value).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Which file to look for in [`find_in_dirs`].
#[derive(Debug, Clone, Copy)]
pub enum Wanted {
    /// The same inode, renamed (rotation by rename while the shipper was down).
    Renamed(FileId),
    /// Another inode with the same head (the copy that copytruncate left beside `FileId`).
    CopyOf(FileId),
}

/// Looks through `dirs` for a regular file with `head` and at least `min_len` bytes that
/// is the `wanted` one; returns its path and open handle.
pub fn find_in_dirs(
    dirs: &[PathBuf],
    head: Head,
    min_len: u64,
    wanted: Wanted,
) -> Option<(PathBuf, File)> {
    if let Wanted::CopyOf(_) = wanted {
        if head.len == 0 {
            // Nothing known about the content: any file would match.
            return None;
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() < min_len {
                continue;
            }
            let id = FileId::of(&meta);
            let inode_ok = match wanted {
                Wanted::Renamed(want) => id == want,
                Wanted::CopyOf(original) => id != original,
            };
            if !inode_ok {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if head.matches(&file).unwrap_or(false) {
                return Some((path, file));
            }
        }
    }
    None
}

/// The directories a rotated copy of `path` can be in: the path's own, and the directory
/// of the file it links to (kubelet rotates inside `/var/log/pods`, not beside the link).
pub fn rotation_dirs(path: &Path, target: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for p in [Some(path), target].into_iter().flatten() {
        if let Some(dir) = p.parent() {
            if !dirs.iter().any(|d: &PathBuf| d == dir) {
                dirs.push(dir.to_owned());
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    #[test]
    fn head_grows_until_head_bytes_then_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        write(&path, b"first line\n");
        let short = Head::read(&File::open(&path).unwrap()).unwrap();
        assert_eq!(short.len, 11);
        assert!(!short.is_complete());
        write(&path, &[b'x'; 2000]);
        let file = File::open(&path).unwrap();
        let full = Head::read(&file).unwrap();
        assert_eq!(full.len, HEAD_BYTES);
        assert!(full.is_complete());
        // The short head still matches: the file starts with those bytes.
        assert!(short.matches(&file).unwrap());
        assert!(full.matches(&file).unwrap());
    }

    #[test]
    fn different_content_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write(&a, b"2026-11-25T10:00:00Z stdout F one\n");
        write(&b, b"2026-11-25T10:00:00Z stdout F two\n");
        let head_a = Head::read(&File::open(&a).unwrap()).unwrap();
        assert!(!head_a.matches(&File::open(&b).unwrap()).unwrap());
        // A file shorter than the head cannot match it.
        let c = dir.path().join("c");
        write(&c, b"2026");
        assert!(!head_a.matches(&File::open(&c).unwrap()).unwrap());
        assert!(Head::default().matches(&File::open(&c).unwrap()).unwrap());
    }

    #[test]
    fn finds_renamed_file_and_copy_by_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("x.log");
        write(&original, b"2026-11-25T10:00:00Z stdout F hello\n");
        let id = FileId::of(&std::fs::metadata(&original).unwrap());
        let head = Head::read(&File::open(&original).unwrap()).unwrap();

        std::fs::copy(&original, dir.path().join("x.log.copy")).unwrap();
        let dirs = vec![dir.path().to_owned()];
        let (copy, _) = find_in_dirs(&dirs, head, 10, Wanted::CopyOf(id)).unwrap();
        assert_eq!(copy, dir.path().join("x.log.copy"));

        std::fs::rename(&original, dir.path().join("x.log.1")).unwrap();
        let (renamed, _) = find_in_dirs(&dirs, head, 10, Wanted::Renamed(id)).unwrap();
        assert_eq!(renamed, dir.path().join("x.log.1"));
        // Too short to hold the saved position: not it.
        assert!(find_in_dirs(&dirs, head, 1000, Wanted::Renamed(id)).is_none());
        // A copy cannot be recognised without knowing the content.
        assert!(find_in_dirs(&dirs, Head::default(), 0, Wanted::CopyOf(id)).is_none());
    }

    #[test]
    fn rotation_dirs_include_the_link_target_directory() {
        let dirs = rotation_dirs(
            Path::new("/var/log/containers/a.log"),
            Some(Path::new("/var/log/pods/ns_a_uid/c/0.log")),
        );
        assert_eq!(
            dirs,
            [
                PathBuf::from("/var/log/containers"),
                PathBuf::from("/var/log/pods/ns_a_uid/c")
            ]
        );
    }
}
