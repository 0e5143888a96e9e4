//! `fraudwall publish`: turn the operator's whole new list into the feed's next version.
//!
//! ```text
//! fraudwall publish --feed-dir /tmp/feed --key /tmp/op.key new.fwb
//! ```
//!
//! 1. Open and verify `new.fwb` (a base snapshot, as `fraudwall compile` writes it).
//! 2. Read the feed's current manifest and check it is signed by this key (a feed directory
//!    belongs to one operator key; a stranger's manifest is an error, not something to
//!    overwrite).
//! 3. Compile the delta from the previous whole list (kept in `.publish/current.fwb`) to the
//!    new one, capped at what the policy still allows ([`super::policy`]).
//! 4. Decide: a delta, a new base (first publish, deltas too large or too many, `--base`), or
//!    only a refreshed manifest when nothing changed.
//! 5. Write the new file, then the versioned manifest `manifest-<v>.json` (+ `.sig`, kept so a
//!    node can pin a version), then `manifest.json.sig` and `manifest.json`, each atomically.
//! 6. Record the new whole list as `.publish/current.fwb`, and prune files no kept manifest
//!    names (the newest [`PublishOptions::keep`] versions stay).
//!
//! Names starting with `.` are never served by `fraudwall feed serve` (and the nginx config
//! in `integration/nginx/` denies them), so the publisher's state stays private.

use super::cache::hash_file;
use super::delta::{compile_delta, DeltaError, DeltaHeader, DeltaReport};
use super::list_kind::ListKind;
use super::manifest::{FileRef, Manifest, ManifestError, UncheckedManifest};
use super::policy::{
    decide, file_name, next_manifest, next_version, BaseReason, PublishKind, PublishPolicy,
};
use crate::blocklist::format::{HeaderError, Kind, FORMAT_VERSION};
use crate::blocklist::snapshot::{Snapshot, SnapshotError};
use ed25519_dalek::SigningKey;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The publisher's private state directory inside the feed directory.
pub const STATE_DIR: &str = ".publish";
/// The last published whole list, inside [`STATE_DIR`].
pub const CURRENT: &str = "current.fwb";

/// How to publish.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Delta or base policy, manifest lifetime.
    pub policy: PublishPolicy,
    /// Feed name for a new feed (an existing feed keeps its name).
    pub feed_name: String,
    /// Publish a new base whatever the size of the change.
    pub force_base: bool,
    /// Versioned manifests kept (and the files they name); older ones are pruned.
    pub keep: usize,
    /// The time, Unix seconds.
    pub now_unix: u64,
}

/// Why publishing failed. The feed directory is unchanged unless the error says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The new snapshot (or the publisher's state) does not open.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The new snapshot is a delta.
    #[error("{0} is a delta: publish the whole list (a base snapshot from `fraudwall compile`)")]
    NotABase(PathBuf),
    /// The feed's manifest is not signed by this key, or is corrupt.
    #[error("the feed's current manifest does not verify with this key ({0}): is this the right --key and --feed-dir?")]
    Manifest(#[from] ManifestError),
    /// The manifest exists but the publisher's state does not.
    #[error("{0} is missing, so the change since the last version cannot be computed: publish with --base to start a new base")]
    StateMissing(PathBuf),
    /// Compiling the delta failed.
    #[error(transparent)]
    Delta(DeltaError),
    /// A subscriber list that does not open or verify.
    #[error("{0}")]
    Unusable(String),
    /// The file is another list than the one named (`--list`).
    #[error("{path} is {}, not {}: publish it with --list {found}", found.describe(), asked.describe())]
    WrongList {
        /// The file.
        path: PathBuf,
        /// What it is.
        found: ListKind,
        /// What `--list` asked for.
        asked: ListKind,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `publish` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishReport {
    /// `base`, `delta` or `unchanged`.
    pub kind: &'static str,
    /// Why a base (when it is one).
    pub reason: Option<String>,
    /// The new feed version.
    pub version: u64,
    /// The file written (none when unchanged).
    pub file: Option<String>,
    /// Its size in bytes.
    pub bytes: u64,
    /// Entries added, changed and removed since the previous version.
    pub changes: DeltaReport,
    /// Deltas now on top of the base.
    pub deltas: usize,
    /// Files pruned.
    pub pruned: usize,
}

/// Reads and verifies a feed directory's current manifest (`None` for a new feed).
pub fn current_manifest(
    dir: &Path,
    key: &SigningKey,
) -> Result<Option<(Manifest, UncheckedManifest)>, PublishError> {
    let body_path = dir.join("manifest.json");
    let body = match std::fs::read(&body_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&body_path)(e)),
    };
    let sig_path = dir.join("manifest.json.sig");
    let sig = std::fs::read(&sig_path).map_err(io_err(&sig_path))?;
    let unchecked = UncheckedManifest::new(body, sig);
    let manifest = unchecked.verify(&[key.verifying_key()])?;
    Ok(Some((manifest, unchecked)))
}

/// Publishes `new` (a whole list) into the feed at `dir`. See the module docs.
pub fn publish(
    dir: &Path,
    key: &SigningKey,
    new: &Path,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let new_snap = Snapshot::open(new)?;
    if new_snap.kind() != Kind::Base {
        return Err(PublishError::NotABase(new.to_path_buf()));
    }
    let state = dir.join(STATE_DIR);
    std::fs::create_dir_all(&state).map_err(io_err(&state))?;
    let current = current_manifest(dir, key)?.map(|(m, _)| m);
    let version = next_version(current.as_ref());
    let tmp_delta = state.join("delta.tmp");

    // The delta since the previous whole list, within what the policy still allows.
    let mut changes = DeltaReport::default();
    let mut over_budget = None;
    let mut upgrade = None;
    if let (Some(cur), false) = (&current, opts.force_base) {
        let prev_path = state.join(CURRENT);
        if !prev_path.exists() {
            return Err(PublishError::StateMissing(prev_path));
        }
        let opened = Snapshot::open(&prev_path)
            .and_then(|prev| Ok((prev, Snapshot::open(dir.join(&cur.base.name))?)));
        match opened {
            Ok((prev, base)) => {
                let used: u64 = cur.deltas.iter().map(|d| d.size).sum();
                let budget = (opts.policy.max_delta_fraction * cur.base.size as f64) as u64;
                let header = DeltaHeader {
                    version: new_snap.version(),
                    created: opts.now_unix,
                    base_version: base.version(),
                    base_hash: base.hash(),
                };
                let left = budget.saturating_sub(used);
                match compile_delta(&prev, &new_snap, header, left, &tmp_delta) {
                    Ok(report) => changes = report,
                    Err(DeltaError::TooLarge(budget)) => over_budget = Some(budget),
                    Err(e) => return Err(PublishError::Delta(e)),
                }
            }
            // The feed's files are of an older snapshot format (this publisher was
            // upgraded): no delta can go on top of them, so the list goes out as a new base.
            Err(SnapshotError::Header {
                source: HeaderError::UnsupportedVersion { found },
                ..
            }) if found < FORMAT_VERSION => upgrade = Some(found),
            Err(e) => return Err(e.into()),
        }
    }
    let kind = if let Some(found) = upgrade {
        PublishKind::Base(BaseReason::FormatUpgrade { found })
    } else if let Some(budget) = over_budget {
        PublishKind::Base(BaseReason::DeltaOverBudget { budget })
    } else {
        decide(
            &opts.policy,
            current.as_ref(),
            changes.changes(),
            changes.bytes,
            opts.force_base,
        )
    };

    let file = match &kind {
        PublishKind::Unchanged => None,
        PublishKind::Delta => {
            let name = file_name(&kind, version);
            let dest = dir.join(&name);
            std::fs::rename(&tmp_delta, &dest).map_err(io_err(&dest))?;
            Some(file_ref(&dest, name, version)?)
        }
        PublishKind::Base(_) => {
            let name = file_name(&kind, version);
            let dest = dir.join(&name);
            copy_atomic(new, &dest)?;
            Some(file_ref(&dest, name, version)?)
        }
    };
    let _ = std::fs::remove_file(&tmp_delta);
    let (manifest, pruned) = write_version(dir, key, opts, current.as_ref(), &kind, file.clone())?;
    if !matches!(kind, PublishKind::Unchanged) {
        copy_atomic(new, &state.join(CURRENT))?;
    }
    Ok(report(&kind, version, file, changes, &manifest, pruned))
}

/// Publishes `new` as the next version of the list `list` in the feed directory `feed_dir`:
/// the blocklist at its root through [`publish`] (delta or base), the subscriber and
/// protected lists in their own subdirectory ([`ListKind::feed_subdir`]) as whole bases.
/// `new` must be a list of that kind: a subscriber list published as the blocklist (or the
/// other way round) is refused, naming the right `--list`.
pub fn publish_list(
    feed_dir: &Path,
    list: ListKind,
    key: &SigningKey,
    new: &Path,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    let found = detect_kind(new, list)?;
    if found != list {
        return Err(PublishError::WrongList {
            path: new.to_path_buf(),
            found,
            asked: list,
        });
    }
    match list.feed_subdir() {
        None => publish(feed_dir, key, new, opts),
        Some(sub) => publish_whole(&feed_dir.join(sub), list, key, new, opts),
    }
}

/// Which list `path` holds, once it opens and verifies as one. An empty list has no entry to
/// tell a protected list from a blocklist by, and is taken as the one `asked` for.
fn detect_kind(path: &Path, asked: ListKind) -> Result<ListKind, PublishError> {
    if crate::subscribers::is_subscriber_list(path) {
        crate::subscribers::SubscriberList::open(path)
            .map_err(|e| PublishError::Unusable(e.to_string()))?;
        return Ok(ListKind::Subscribers);
    }
    let snap = Snapshot::open(path)?;
    if snap.kind() != Kind::Base {
        return Err(PublishError::NotABase(path.to_path_buf()));
    }
    if snap.is_empty() && asked != ListKind::Subscribers {
        return Ok(asked);
    }
    Ok(
        match crate::protected::ProtectedList::from_snapshot(snap, path, None) {
            Ok(_) => ListKind::Protected,
            Err(_) => ListKind::Blocklist,
        },
    )
}

/// Publishes a list that has no delta form: a new base when its bytes changed, a refreshed
/// manifest when not.
fn publish_whole(
    dir: &Path,
    list: ListKind,
    key: &SigningKey,
    new: &Path,
    opts: &PublishOptions,
) -> Result<PublishReport, PublishError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let current = current_manifest(dir, key)?.map(|(m, _)| m);
    let version = next_version(current.as_ref());
    let hash = hash_file(new).map_err(|e| PublishError::Io {
        path: new.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    let kind = match &current {
        None => PublishKind::Base(BaseReason::FirstPublish),
        Some(_) if opts.force_base => PublishKind::Base(BaseReason::Forced),
        Some(cur) if cur.base.blake3 == hash => PublishKind::Unchanged,
        Some(_) => PublishKind::Base(BaseReason::WholeList(list)),
    };
    let file = match &kind {
        PublishKind::Base(_) => {
            let name = file_name(&kind, version);
            let dest = dir.join(&name);
            copy_atomic(new, &dest)?;
            Some(file_ref(&dest, name, version)?)
        }
        _ => None,
    };
    let (manifest, pruned) = write_version(dir, key, opts, current.as_ref(), &kind, file.clone())?;
    Ok(report(
        &kind,
        version,
        file,
        DeltaReport::default(),
        &manifest,
        pruned,
    ))
}

/// Signs and writes the manifest of the next version (after its new file, if any, is in
/// place), then prunes. Returns the manifest and the number of files pruned.
fn write_version(
    dir: &Path,
    key: &SigningKey,
    opts: &PublishOptions,
    current: Option<&Manifest>,
    kind: &PublishKind,
    file: Option<FileRef>,
) -> Result<(Manifest, usize), PublishError> {
    let version = next_version(current);
    let feed = current.map_or(opts.feed_name.clone(), |m| m.feed.clone());
    let manifest = next_manifest(&opts.policy, &feed, current, kind, file, opts.now_unix)
        .ok_or_else(|| PublishError::Io {
            path: dir.to_path_buf(),
            source: io::Error::other("inconsistent publish state"),
        })?;
    let (body, sig) = manifest.sign(key);
    // Servers such as nginx derive the ETag from the modification time in whole seconds and
    // the size: two publishes within one second could give the new manifest the old ETag,
    // and polling nodes would be told `304 Not Modified`. Each manifest therefore gets a
    // modification time at least one second after the previous one.
    let mtime = next_mtime(&dir.join("manifest.json"));
    for (name, bytes) in [
        (format!("manifest-{version}.json"), &body),
        (format!("manifest-{version}.json.sig"), &sig),
        ("manifest.json.sig".to_string(), &sig),
        ("manifest.json".to_string(), &body),
    ] {
        let path = dir.join(name);
        write_with_mtime(&path, bytes, mtime).map_err(io_err(&path))?;
    }
    let pruned = prune(dir, opts.keep.max(1))?;
    Ok((manifest, pruned))
}

fn report(
    kind: &PublishKind,
    version: u64,
    file: Option<FileRef>,
    changes: DeltaReport,
    manifest: &Manifest,
    pruned: usize,
) -> PublishReport {
    let (kind_name, reason) = match kind {
        PublishKind::Base(r) => ("base", Some(r.to_string())),
        PublishKind::Delta => ("delta", None),
        PublishKind::Unchanged => ("unchanged", None),
    };
    PublishReport {
        kind: kind_name,
        reason,
        version,
        bytes: file.as_ref().map_or(0, |f| f.size),
        file: file.map(|f| f.name),
        changes,
        deltas: manifest.deltas.len(),
        pruned,
    }
}

/// A modification time for the next manifest: now, or one second past the current
/// manifest's, whichever is later.
fn next_mtime(current: &Path) -> SystemTime {
    let now = SystemTime::now();
    match std::fs::metadata(current).and_then(|m| m.modified()) {
        Ok(prev) => now.max(prev + Duration::from_secs(1)),
        Err(_) => now,
    }
}

/// Writes a small file atomically with the given modification time.
fn write_with_mtime(dest: &Path, bytes: &[u8], mtime: SystemTime) -> io::Result<()> {
    let mut pending = crate::blocklist::write::Pending::new(dest)?;
    pending.file().write_all(bytes)?;
    pending.file().set_modified(mtime)?;
    pending.commit()
}

fn file_ref(path: &Path, name: String, version: u64) -> Result<FileRef, PublishError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    let blake3 = hash_file(path).map_err(|e| PublishError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })?;
    Ok(FileRef {
        name,
        size,
        blake3,
        version,
    })
}

/// Copies `from` to `to` through a temporary file, fsync and rename.
fn copy_atomic(from: &Path, to: &Path) -> Result<(), PublishError> {
    let mut pending = crate::blocklist::write::Pending::new(to).map_err(io_err(to))?;
    let mut src = std::fs::File::open(from).map_err(io_err(from))?;
    io::copy(&mut src, pending.file()).map_err(io_err(to))?;
    pending.commit().map_err(io_err(to))
}

/// Keeps the newest `keep` versioned manifests and the files they (and `manifest.json`)
/// name; removes the rest. Returns how many files were removed.
pub fn prune(dir: &Path, keep: usize) -> Result<usize, PublishError> {
    let mut versions: Vec<(u64, PathBuf)> = vec![];
    let mut snapshots: Vec<PathBuf> = vec![];
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(v) = name
            .strip_prefix("manifest-")
            .and_then(|r| r.strip_suffix(".json"))
            .and_then(|v| v.parse::<u64>().ok())
        {
            versions.push((v, entry.path()));
        } else if name.ends_with(".fwb") {
            snapshots.push(entry.path());
        }
    }
    versions.sort_unstable_by_key(|v| std::cmp::Reverse(v.0));
    let mut removed = 0;
    let mut referenced = std::collections::HashSet::new();
    let mut remember = |path: &Path| -> bool {
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) else {
            return false;
        };
        for f in m.files() {
            referenced.insert(f.name.clone());
        }
        true
    };
    // Without a readable current manifest, prune nothing.
    if !remember(&dir.join("manifest.json")) {
        return Ok(0);
    }
    for (i, (_, path)) in versions.iter().enumerate() {
        if i < keep {
            remember(path);
        } else {
            let mut sig = path.as_os_str().to_owned();
            sig.push(".sig");
            for p in [path.clone(), PathBuf::from(sig)] {
                if std::fs::remove_file(&p).is_ok() {
                    removed += 1;
                }
            }
        }
    }
    for path in snapshots {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !referenced.contains(name) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The URL of version `version`'s manifest, next to the feed's `manifest.json` (for a node
/// pinned to a version).
pub fn pinned_manifest_url(feed_url: &str, version: u64) -> String {
    match feed_url.rfind('/') {
        Some(i) => format!("{}/manifest-{version}.json", &feed_url[..i]),
        None => format!("manifest-{version}.json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PublishOptions {
        PublishOptions {
            policy: super::super::policy::PublishPolicy::default(),
            feed_name: "t".into(),
            force_base: false,
            keep: 10,
            now_unix: 1_800_000_000,
        }
    }

    fn subscribers(dir: &Path, name: &str, rows: &str) -> PathBuf {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, format!("subscriber,caller,action\n{rows}")).expect("csv");
        let out = dir.join(format!("{name}.fwb"));
        crate::subscribers::compile_subscribers(&[csv], &Default::default(), &out)
            .expect("compile subscribers");
        out
    }

    #[test]
    fn whole_lists_go_to_their_own_directory_as_bases_and_unchanged_bytes_refresh_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let feed = dir.path().join("feed");
        let key = SigningKey::from_bytes(&[7; 32]);
        let v1 = subscribers(dir.path(), "v1", "+8613900000001,+8613800000001,block\n");
        let r = publish_list(&feed, ListKind::Subscribers, &key, &v1, &opts()).expect("v1");
        assert_eq!((r.kind, r.version), ("base", 1));
        assert!(feed.join("subscribers/base-1.fwb").exists());
        assert!(
            !feed.join("manifest.json").exists(),
            "the blocklist's root is untouched"
        );
        let r = publish_list(&feed, ListKind::Subscribers, &key, &v1, &opts()).expect("same");
        assert_eq!((r.kind, r.version), ("unchanged", 2));
        let v3 = subscribers(dir.path(), "v3", "+8613900000001,*,tag\n");
        let r = publish_list(&feed, ListKind::Subscribers, &key, &v3, &opts()).expect("v3");
        assert_eq!((r.kind, r.version, r.deltas), ("base", 3, 0));
        assert!(r
            .reason
            .as_deref()
            .is_some_and(|m| m.contains("published whole")));
        let (m, _) = current_manifest(&feed.join("subscribers"), &key)
            .expect("manifest")
            .expect("present");
        assert_eq!((m.version, m.base.name.as_str()), (3, "base-3.fwb"));
        // The file says what it is; the wrong --list is refused and nothing is written.
        let e = publish_list(&feed, ListKind::Blocklist, &key, &v3, &opts()).expect_err("wrong");
        assert!(
            matches!(
                e,
                PublishError::WrongList {
                    found: ListKind::Subscribers,
                    asked: ListKind::Blocklist,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("--list subscribers"), "{e}");
        assert!(!feed.join("manifest.json").exists());
        // A corrupt subscriber list is refused before anything is published.
        let bad = dir.path().join("bad.fwb");
        let mut bytes = std::fs::read(&v3).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&bad, bytes).expect("write");
        let e = publish_list(&feed, ListKind::Subscribers, &key, &bad, &opts()).expect_err("bad");
        assert!(matches!(e, PublishError::Unusable(_)), "{e}");
        let (m, _) = current_manifest(&feed.join("subscribers"), &key)
            .expect("manifest")
            .expect("present");
        assert_eq!(m.version, 3);
    }

    #[test]
    fn pinned_urls() {
        assert_eq!(
            pinned_manifest_url("http://h:8080/fw/manifest.json", 7),
            "http://h:8080/fw/manifest-7.json"
        );
    }
}
