//! Loaders for the lists a feed carries whole: the subscriber list and the protected list.
//!
//! Their manifests name a base and never a delta ([`super::ListKind::has_deltas`]): each new
//! version is the whole list, verified (header, blake3 of the body, index; for the protected
//! list, every `entitled` group known to this node) before it is swapped in. A manifest that
//! names deltas for them is refused as `snapshot_invalid`, the active list keeps answering.

use super::cache::CacheDir;
use super::list_kind::ListKind;
use super::manifest::{FileRef, Manifest};
use super::node::{LoadError, Loader};
use crate::peers::PeerGroups;
use crate::protected::ProtectedList;
use crate::subscribers::SubscriberList;

/// The base of a whole-list manifest, or why it is not one.
fn whole_base(manifest: &Manifest, list: ListKind) -> Result<&FileRef, LoadError> {
    match manifest.deltas.first() {
        None => Ok(&manifest.base),
        Some(d) => Err(LoadError::of(
            &d.name,
            format!(
                "the {list} list is published whole and has no deltas: republish it with `fraudwall publish --list {list}`"
            ),
        )),
    }
}

/// Opens a feed's subscriber list (`subscribers/manifest.json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriberLoader;

impl Loader for SubscriberLoader {
    type View = SubscriberList;

    fn load(
        &self,
        _previous: Option<&SubscriberList>,
        manifest: &Manifest,
        cache: &CacheDir,
    ) -> Result<SubscriberList, LoadError> {
        let base = whole_base(manifest, ListKind::Subscribers)?;
        SubscriberList::open(cache.path(&base.name)).map_err(|e| LoadError::of(&base.name, e))
    }
}

/// Opens a feed's protected list (`protected/manifest.json`), refusing one that names a peer
/// group this node does not have.
#[derive(Debug, Clone)]
pub struct ProtectedLoader {
    /// This node's peer groups.
    pub groups: PeerGroups,
}

impl Loader for ProtectedLoader {
    type View = ProtectedList;

    fn load(
        &self,
        _previous: Option<&ProtectedList>,
        manifest: &Manifest,
        cache: &CacheDir,
    ) -> Result<ProtectedList, LoadError> {
        let base = whole_base(manifest, ListKind::Protected)?;
        ProtectedList::open(&cache.path(&base.name), Some(&self.groups))
            .map_err(|e| LoadError::of(&base.name, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::manifest::{Hash, MANIFEST_FORMAT};

    fn file(name: &str, version: u64) -> FileRef {
        FileRef {
            name: name.into(),
            size: 1,
            blake3: Hash([0; 32]),
            version,
        }
    }

    #[test]
    fn a_whole_list_manifest_with_deltas_is_refused_naming_the_delta() {
        let mut m = Manifest {
            format: MANIFEST_FORMAT,
            feed: "f".into(),
            version: 2,
            created: 1,
            expires: 2,
            base: file("base-1.fwb", 1),
            deltas: vec![],
        };
        assert_eq!(
            whole_base(&m, ListKind::Subscribers).map(|f| f.name.clone()),
            Ok("base-1.fwb".to_string())
        );
        m.deltas.push(file("delta-2.fwb", 2));
        let e = whole_base(&m, ListKind::Subscribers).expect_err("deltas refused");
        assert_eq!(e.file, "delta-2.fwb");
        assert!(e.message.contains("--list subscribers"), "{}", e.message);
    }
}
