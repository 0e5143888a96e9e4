//! A file's identity for change detection, as the files a node re-reads while it runs (the
//! blocklist and `[lists]` snapshots, the admin token file, TLS certificates) are compared.

use std::path::Path;
use std::time::SystemTime;

/// What a file looked like when last read: a change of any part (a rewrite, a rename of
/// another file over the path) means "read it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The stamp of the file at `path`, `None` when there is none (or it cannot be read).
    pub fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode: identity(&m).1,
        })
    }
}

/// Which file `m` describes: its device and inode (zeros elsewhere than Unix). Two paths, or
/// a path and an open file, with the same identity are the same file however it was written.
pub fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_or_a_rename_over_the_path_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert_eq!(FileStamp::of(&path), None);
        std::fs::write(&path, b"one").unwrap();
        let first = FileStamp::of(&path).unwrap();
        assert_eq!(FileStamp::of(&path), Some(first));
        std::fs::write(&path, b"longer").unwrap();
        let second = FileStamp::of(&path).unwrap();
        assert_ne!(first, second, "new length");
        // Same length and, at coarse clock resolution, maybe the same time: the inode differs.
        let other = dir.path().join("g");
        std::fs::write(&other, b"longer").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(FileStamp::of(&path), Some(second));
    }
}
