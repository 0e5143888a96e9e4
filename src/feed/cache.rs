//! The node's cache directory: the last good feed state, kept across restarts.
//!
//! A node writes every verified snapshot file here before it maps it, and the manifest last
//! (with its signature, in one file, `manifest.signed`), so the cache always names a state
//! whose every file is already on disk. At start, [`CacheDir::restore`] re-verifies that
//! state (signature, then the size and blake3 of every file) and the node serves it at once,
//! before the feed answers: a node that restarts while the feed is down still blocks.
//!
//! Every write is atomic: a temporary file in the same directory, `fsync`, `rename`, then
//! `fsync` of the directory. A full disk (`ENOSPC`, `EDQUOT`) is reported as
//! [`CacheError::DiskFull`]; the temporary file is removed and the previous file stays as it
//! was.
//!
//! Layout:
//!
//! ```text
//! <cache-dir>/manifest.signed      signature line, then the manifest bytes
//! <cache-dir>/base-40.fwb          snapshot files, named as in the manifest
//! <cache-dir>/delta-41.fwb
//! ```

use super::manifest::{FileRef, Hash, Manifest, ManifestError, UncheckedManifest};
use ed25519_dalek::VerifyingKey;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Name of the cached manifest (signature line + manifest).
pub const MANIFEST_FILE: &str = "manifest.signed";

/// Why the cache could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// No space left (or quota exceeded) while writing.
    #[error("cache disk full while writing {path}: free space in the cache directory (the node keeps serving its current snapshot)")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Any other I/O error.
    #[error("cache I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The cached manifest does not verify (or is malformed).
    #[error("cached manifest is not usable: {0}")]
    Manifest(#[from] ManifestError),
    /// A cached file does not match the manifest.
    #[error("cached file {name} does not match the manifest: {reason}")]
    Corrupt {
        /// File name.
        name: String,
        /// What differs.
        reason: String,
    },
}

impl CacheError {
    /// Short reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            CacheError::DiskFull { .. } => "disk_full",
            CacheError::Io { .. } => "cache_io",
            CacheError::Manifest(e) => e.reason(),
            CacheError::Corrupt { .. } => "cache_corrupt",
        }
    }

    fn io(path: &Path, source: io::Error) -> CacheError {
        let full = source.kind() == io::ErrorKind::StorageFull
            || matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            );
        if full {
            CacheError::DiskFull {
                path: path.to_path_buf(),
            }
        } else {
            CacheError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// A node's cache directory. See the module docs.
#[derive(Debug, Clone)]
pub struct CacheDir {
    dir: PathBuf,
}

impl CacheDir {
    /// Opens (creating if needed) the cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| CacheError::io(&dir, e))?;
        Ok(CacheDir { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file `name` lives (the name must be a manifest-validated safe name).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `bytes` to `name` atomically (temporary file, fsync, rename, fsync dir).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        self.write_with(name, bytes, |f, b| f.write_all(b))
    }

    /// [`write`](Self::write) with the write itself injected, so tests can fail it.
    pub(crate) fn write_with(
        &self,
        name: &str,
        bytes: &[u8],
        write: impl FnOnce(&mut File, &[u8]) -> io::Result<()>,
    ) -> Result<PathBuf, CacheError> {
        let mut w = self.begin(name)?;
        write(w.tmp.as_file_mut(), bytes).map_err(|e| CacheError::io(&w.target, e))?;
        w.commit()
    }

    /// Starts writing `name` in pieces (a download streamed to disk); nothing appears under
    /// that name until [`CacheWriter::commit`].
    pub fn begin(&self, name: &str) -> Result<CacheWriter, CacheError> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(|e| CacheError::io(&self.dir, e))?;
        Ok(CacheWriter {
            tmp,
            target: self.path(name),
            dir: self.dir.clone(),
        })
    }

    /// Whether `file` is already cached with the right size and hash (so it need not be
    /// downloaded again).
    pub fn has(&self, file: &FileRef) -> bool {
        self.check(file).is_ok()
    }

    /// Checks a cached file's size and blake3 against the manifest entry.
    pub fn check(&self, file: &FileRef) -> Result<(), CacheError> {
        let path = self.path(&file.name);
        let meta = fs::metadata(&path).map_err(|e| CacheError::io(&path, e))?;
        if meta.len() != file.size {
            return Err(CacheError::Corrupt {
                name: file.name.clone(),
                reason: format!("{} bytes, the manifest says {}", meta.len(), file.size),
            });
        }
        let hash = hash_file(&path)?;
        if hash != file.blake3 {
            return Err(CacheError::Corrupt {
                name: file.name.clone(),
                reason: format!("blake3 {hash}, the manifest says {}", file.blake3),
            });
        }
        Ok(())
    }

    /// Stores the manifest (with its signature) that is now active.
    pub fn store_manifest(&self, manifest: &UncheckedManifest) -> Result<(), CacheError> {
        let sig = manifest.signature();
        let mut bytes = Vec::with_capacity(sig.len() + manifest.body().len() + 1);
        bytes.extend_from_slice(sig.strip_suffix(b"\n").unwrap_or(sig));
        bytes.push(b'\n');
        bytes.extend_from_slice(manifest.body());
        self.write(MANIFEST_FILE, &bytes).map(|_| ())
    }

    /// The cached manifest, still unchecked; `None` when the cache is empty.
    pub fn load_manifest(&self) -> Result<Option<UncheckedManifest>, CacheError> {
        let path = self.path(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io(&path, e)),
        };
        let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
            return Err(CacheError::Corrupt {
                name: MANIFEST_FILE.into(),
                reason: "no signature line".into(),
            });
        };
        Ok(Some(UncheckedManifest::new(
            bytes[nl + 1..].to_vec(),
            bytes[..nl].to_vec(),
        )))
    }

    /// The last good state: the cached manifest, verified against `keys`, with every file
    /// it names present and matching. `None` when the cache is empty.
    pub fn restore(
        &self,
        keys: &[VerifyingKey],
    ) -> Result<Option<(Manifest, UncheckedManifest)>, CacheError> {
        let Some(unchecked) = self.load_manifest()? else {
            return Ok(None);
        };
        let manifest = unchecked.verify(keys)?;
        for file in manifest.files() {
            self.check(file)?;
        }
        Ok(Some((manifest, unchecked)))
    }

    /// Removes snapshot files the manifest no longer names, and stale temporary files.
    /// Returns how many were removed.
    pub fn prune(&self, keep: &Manifest) -> Result<usize, CacheError> {
        let mut removed = 0;
        let entries = fs::read_dir(&self.dir).map_err(|e| CacheError::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.ends_with(".fwb") || name.starts_with(".tmp-");
            if ours && !keep.files().any(|f| f.name == name) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| CacheError::io(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A cache file being written; dropped without [`commit`](Self::commit), it is removed.
#[derive(Debug)]
pub struct CacheWriter {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    dir: PathBuf,
}

impl CacheWriter {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), CacheError> {
        self.tmp
            .as_file_mut()
            .write_all(bytes)
            .map_err(|e| CacheError::io(&self.target, e))
    }

    /// fsync, rename into place, fsync the directory.
    pub fn commit(self) -> Result<PathBuf, CacheError> {
        let target = self.target;
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| CacheError::io(&target, e))?;
        self.tmp
            .persist(&target)
            .map_err(|e| CacheError::io(&target, e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CacheError::io(&self.dir, e))?;
        Ok(target)
    }
}

/// blake3 of a whole file, through a read-only mapping (no copy of a large base in memory).
pub fn hash_file(path: &Path) -> Result<Hash, CacheError> {
    let file = File::open(path).map_err(|e| CacheError::io(path, e))?;
    let len = file.metadata().map_err(|e| CacheError::io(path, e))?.len();
    if len == 0 {
        return Ok(Hash::of(&[]));
    }
    // SAFETY: the mapping is read-only and only hashed; the cache directory belongs to this
    // node, and a concurrent change would at worst give a wrong hash, which is refused.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CacheError::io(path, e))?;
    Ok(Hash::of(&map))
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{file, key, manifest};
    use super::*;

    #[test]
    fn write_is_atomic_and_disk_full_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = CacheDir::open(dir.path().join("c")).expect("open");
        cache.write("a.fwb", b"old").expect("write");
        let err = cache
            .write_with("a.fwb", b"new content", |f, b| {
                f.write_all(&b[..3])?;
                Err(io::Error::from(io::ErrorKind::StorageFull))
            })
            .unwrap_err();
        assert!(matches!(err, CacheError::DiskFull { .. }), "{err}");
        assert_eq!(err.reason(), "disk_full");
        let err = cache
            .write_with("a.fwb", b"x", |_, _| {
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            })
            .unwrap_err();
        assert_eq!(err.reason(), "disk_full");
        assert_eq!(fs::read(cache.path("a.fwb")).expect("read"), b"old");
        let names: Vec<_> = fs::read_dir(cache.dir())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["a.fwb"], "no temporary file left behind");
    }

    #[test]
    fn restore_verifies_manifest_and_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = CacheDir::open(dir.path()).expect("open");
        let keys = [key(1).verifying_key()];
        assert!(cache.restore(&keys).expect("empty").is_none());

        let mut m = manifest(2, &[]);
        m.base = file("base-1.fwb", 1, b"base bytes");
        m.deltas = vec![file("delta-2.fwb", 2, b"delta bytes")];
        let (body, sig) = m.sign(&key(1));
        cache.write("base-1.fwb", b"base bytes").expect("w");
        cache.write("delta-2.fwb", b"delta bytes").expect("w");
        cache.write("base-0.fwb", b"stale").expect("w");
        cache
            .store_manifest(&UncheckedManifest::new(body, sig))
            .expect("store");
        let (got, _) = cache.restore(&keys).expect("ok").expect("some");
        assert_eq!(got, m);
        assert_eq!(cache.prune(&got).expect("prune"), 1);
        assert!(!cache.path("base-0.fwb").exists());
        assert!(cache.has(&m.deltas[0]));

        // A flipped byte in a cached file is caught at restore.
        cache.write("delta-2.fwb", b"delta bytez").expect("w");
        let err = cache.restore(&keys).unwrap_err();
        assert!(matches!(err, CacheError::Corrupt { .. }), "{err}");
        assert!(!cache.has(&m.deltas[0]));
        // A manifest signed by another key is refused.
        assert!(matches!(
            cache.restore(&[key(2).verifying_key()]),
            Err(CacheError::Manifest(ManifestError::UnknownKey(_)))
        ));
        cache.write(MANIFEST_FILE, b"no newline").expect("w");
        assert!(matches!(
            cache.restore(&keys),
            Err(CacheError::Corrupt { .. })
        ));
    }
}
