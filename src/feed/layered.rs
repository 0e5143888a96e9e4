//! The layered blocklist a node screens calls against: a base and the deltas since it.
//!
//! A lookup must answer exactly as the operator's whole new list would. Each layer reports
//! every entry matching the number (prefixes and the exact entry, via
//! [`Snapshot::lookup_all`]); for each key the **newest** layer that has it decides, and a
//! tombstone there hides the key in every older layer; of the keys left, the longest match
//! wins as in a single snapshot (the exact entry before any prefix, longer prefixes before
//! shorter). So a delta can add a number, change its action, remove it (tombstone), carve an
//! exact `allow` out of a base range, or remove a range while a longer base entry stays.
//!
//! Cost: with no deltas, one plain [`Snapshot::lookup`]. With deltas, one walk per layer and
//! a fixed 16-slot table on the stack: no allocation, and deltas are small and hot in cache.
//!
//! [`SnapshotLoader`] is the [`Loader`] that opens a manifest's files into a [`Layered`],
//! reusing the active base (already mapped and verified) when only deltas were added, and
//! refusing a delta whose header names another base.

use super::cache::CacheDir;
use super::manifest::{FileRef, Hash, Manifest};
use super::node::{LoadError, Loader};
use crate::blocklist::format::Kind;
use crate::blocklist::snapshot::{Match, Snapshot};
use crate::numbers::E164;
use std::sync::Arc;

/// A base snapshot and its deltas (oldest first), as one lookup.
#[derive(Debug, Clone)]
pub struct Layered {
    base: Layer,
    deltas: Vec<Layer>,
    version: u64,
}

/// One snapshot file of a [`Layered`] view.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The file name (as in the manifest).
    pub name: String,
    /// The file's blake3 as the signed manifest states it (`None` for a local file).
    pub blake3: Option<Hash>,
    /// The opened, verified snapshot.
    pub snapshot: Arc<Snapshot>,
}

impl Layer {
    /// A layer for a manifest file.
    pub fn new(name: impl Into<String>, blake3: Option<Hash>, snapshot: Arc<Snapshot>) -> Self {
        Layer {
            name: name.into(),
            blake3,
            snapshot,
        }
    }
}

/// Why snapshots do not stack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    /// The base file is a delta.
    #[error("{0} is a delta, not a base snapshot")]
    BaseIsDelta(String),
    /// A delta file is a base.
    #[error("{0} is a base snapshot, not a delta")]
    NotADelta(String),
    /// A delta built on another base.
    #[error("{delta} was built on base version {expected_version}, not on {base} (version {base_version})")]
    WrongBase {
        /// The delta.
        delta: String,
        /// The base.
        base: String,
        /// The base's version.
        base_version: u64,
        /// The version the delta names.
        expected_version: u64,
    },
}

impl Layered {
    /// A single snapshot (a base, or a local file) at `version`.
    pub fn single(base: Layer, version: u64) -> Self {
        Layered {
            base,
            deltas: vec![],
            version,
        }
    }

    /// Stacks `deltas` (oldest first) on `base`, checking that each delta names this base.
    pub fn new(base: Layer, deltas: Vec<Layer>, version: u64) -> Result<Self, LayerError> {
        if base.snapshot.kind() != Kind::Base {
            return Err(LayerError::BaseIsDelta(base.name));
        }
        let hash = base.snapshot.hash();
        for d in &deltas {
            match d.snapshot.kind() {
                Kind::Base => return Err(LayerError::NotADelta(d.name.clone())),
                Kind::Delta {
                    base_version,
                    base_hash,
                } if base_hash != hash => {
                    return Err(LayerError::WrongBase {
                        delta: d.name.clone(),
                        base: base.name,
                        base_version: base.snapshot.version(),
                        expected_version: base_version,
                    })
                }
                Kind::Delta { .. } => {}
            }
        }
        Ok(Layered {
            base,
            deltas,
            version,
        })
    }

    /// The feed version this view is.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The base.
    pub fn base(&self) -> &Layer {
        &self.base
    }

    /// The deltas, oldest first.
    pub fn deltas(&self) -> &[Layer] {
        &self.deltas
    }

    /// The entry the whole list would match for `number`, or `None`. Never a tombstone.
    #[inline]
    pub fn lookup(&self, number: &E164) -> Option<Match<'_>> {
        if self.deltas.is_empty() {
            return self.base.snapshot.lookup(number).filter(|m| !m.tombstone);
        }
        // Slot i < 15: the prefix of i + 1 digits; slot 15: the exact number. The first
        // (newest) layer to report a key decides it: Some(m), or None for a tombstone.
        let mut slots: [Option<Option<Match<'_>>>; 16] = [None; 16];
        let mut in_deltas = false;
        for layer in self.deltas.iter().rev() {
            layer.snapshot.lookup_all(number, |m| {
                in_deltas = true;
                record(&mut slots, m);
            });
        }
        if !in_deltas {
            // The common case: no delta touches this number, the base answers alone.
            return self.base.snapshot.lookup(number).filter(|m| !m.tombstone);
        }
        self.base
            .snapshot
            .lookup_all(number, |m| record(&mut slots, m));
        slots.iter().rev().find_map(|s| s.flatten())
    }
}

/// Records `m` in its slot (prefix length, or 15 for the exact number) unless a newer layer
/// already decided that key.
#[inline]
fn record<'a>(slots: &mut [Option<Option<Match<'a>>>; 16], m: Match<'a>) {
    let slot = if m.entry.is_exact() {
        15
    } else {
        m.entry.digits().len().saturating_sub(1).min(14)
    };
    if slots[slot].is_none() {
        slots[slot] = Some((!m.tombstone).then_some(m));
    }
}

impl crate::policy::Lookup for Layered {
    fn version(&self) -> u64 {
        self.version
    }
    fn lookup(&self, number: &E164) -> Option<Match<'_>> {
        Layered::lookup(self, number)
    }
}

/// Opens a manifest's snapshot files (from the cache) into a [`Layered`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotLoader;

fn open(cache: &CacheDir, name: &str) -> Result<Arc<Snapshot>, LoadError> {
    Snapshot::open(cache.path(name))
        .map(Arc::new)
        .map_err(|e| LoadError::of(name, e))
}

impl Loader for SnapshotLoader {
    type View = Layered;

    fn load(
        &self,
        previous: Option<&Layered>,
        manifest: &Manifest,
        cache: &CacheDir,
    ) -> Result<Layered, LoadError> {
        // The same name and blake3 as a layer in use: the same, already verified bytes.
        let get = |f: &FileRef| -> Result<Layer, LoadError> {
            let reused = previous.and_then(|p| {
                std::iter::once(&p.base)
                    .chain(&p.deltas)
                    .find(|l| l.name == f.name && l.blake3 == Some(f.blake3))
            });
            let snapshot = match reused {
                Some(l) => Arc::clone(&l.snapshot),
                None => open(cache, &f.name)?,
            };
            Ok(Layer::new(f.name.clone(), Some(f.blake3), snapshot))
        };
        let base = get(&manifest.base)?;
        let deltas = manifest
            .deltas
            .iter()
            .map(get)
            .collect::<Result<Vec<_>, _>>()?;
        Layered::new(base, deltas, manifest.version)
            .map_err(|e| LoadError::of(&manifest.base.name, e))
    }
}
