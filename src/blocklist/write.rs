//! Crash-safe file output: a temporary file in the destination's directory, fsync, rename,
//! fsync of the directory. A reader sees the old file or the new one, never a partial one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary file next to `dest`, renamed over it by [`Pending::commit`]; dropped
/// uncommitted, it is deleted.
pub struct Pending {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Pending {
    /// Creates the temporary file.
    pub fn new(dest: &Path) -> io::Result<Pending> {
        let dir = parent_dir(dest);
        let tmp = tempfile::Builder::new()
            .prefix(".fraudwall-")
            .suffix(".tmp")
            .tempfile_in(&dir)?;
        Ok(Pending {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// fsync, make it world-readable like a normal file, rename into place, fsync the dir.
    pub fn commit(self) -> io::Result<()> {
        let f = self.tmp.as_file();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        f.sync_all()?;
        self.tmp.persist(&self.dest).map_err(|e| e.error)?;
        sync_dir(&parent_dir(&self.dest))
    }
}

/// fsyncs a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a small file atomically.
pub fn atomic_write(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut p = Pending::new(dest)?;
    p.file().write_all(bytes)?;
    p.commit()
}

/// A writer that hashes (blake3) and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }

    /// The inner writer, the hash and the byte count.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, *self.hasher.finalize().as_bytes(), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut h = HashingWriter::new(Vec::new());
        h.write_all(b"abc").unwrap();
        let (v, hash, n) = h.finish();
        assert_eq!((v.as_slice(), n), (&b"abc"[..], 3));
        assert_eq!(&hash, blake3::hash(b"abc").as_bytes());
    }
}
