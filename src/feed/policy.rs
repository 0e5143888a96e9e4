//! The publisher's decision: a delta, a new base, or only a refreshed manifest.
//!
//! The operator always compiles the whole list; `fraudwall publish` compares it with what the
//! feed already holds. A small change becomes a delta (kilobytes for every node to fetch); but
//! each delta is one more layer a lookup consults and one more file a new node downloads, so
//! once the deltas together grow past [`PublishPolicy::max_delta_fraction`] of the base, or
//! their number past [`PublishPolicy::max_deltas`], the publisher folds them into a new base:
//! the whole new list, published as the base, with no deltas.
//!
//! An unchanged list still gets a new manifest version with a fresh expiry, so nodes do not
//! warn that the feed looks frozen.
//!
//! Pure functions: the caller passes the current manifest, the sizes and the time.

use super::manifest::{FileRef, Manifest, MANIFEST_FORMAT};
use std::time::Duration;

/// When `publish` writes a delta and when a new base.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishPolicy {
    /// Fold into a new base once all deltas (with the new one) exceed this fraction of the
    /// base's size.
    pub max_delta_fraction: f64,
    /// Fold into a new base once there would be more deltas than this.
    pub max_deltas: usize,
    /// How long a manifest stays fresh; nodes warn (feed frozen) past it.
    pub ttl: Duration,
}

impl Default for PublishPolicy {
    fn default() -> Self {
        PublishPolicy {
            max_delta_fraction: 0.25,
            max_deltas: 32,
            ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why `publish` writes a new base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseReason {
    /// The feed is empty.
    FirstPublish,
    /// The deltas would add up to more than the configured fraction of the base.
    DeltasTooLarge {
        /// Bytes of all deltas, the new one included.
        deltas: u64,
        /// Bytes of the base.
        base: u64,
    },
    /// The delta outgrew what is left of the delta budget while it was being compiled.
    DeltaOverBudget {
        /// Bytes the delta was allowed.
        budget: u64,
    },
    /// More deltas than configured.
    TooManyDeltas(usize),
    /// The operator asked for it (`--base`).
    Forced,
    /// The feed's current files are in a snapshot format this build no longer reads (an
    /// upgrade): no delta can be layered on them.
    FormatUpgrade {
        /// The format version found in the feed.
        found: u32,
    },
    /// The list has no delta form ([`super::ListKind::has_deltas`]): every change is a new
    /// whole base.
    WholeList(super::ListKind),
}

impl std::fmt::Display for BaseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseReason::FirstPublish => f.write_str("first publish of this feed"),
            BaseReason::DeltasTooLarge { deltas, base } => write!(
                f,
                "deltas would total {deltas} bytes, past the configured fraction of the {base}-byte base"
            ),
            BaseReason::DeltaOverBudget { budget } => write!(
                f,
                "the change needs more than the {budget} bytes left in the delta budget"
            ),
            BaseReason::TooManyDeltas(n) => write!(f, "{n} deltas would exceed the configured maximum"),
            BaseReason::Forced => f.write_str("--base given"),
            BaseReason::FormatUpgrade { found } => write!(
                f,
                "the feed holds snapshot format {found}, this build writes format {}",
                crate::blocklist::format::FORMAT_VERSION
            ),
            BaseReason::WholeList(list) => {
                write!(f, "the {list} list is published whole (it has no deltas)")
            }
        }
    }
}

/// What `publish` will write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishKind {
    /// The whole list as a new base; deltas folded away.
    Base(BaseReason),
    /// A delta on top of the current base and deltas.
    Delta,
    /// No entry changed: only a new manifest (new version, fresh expiry).
    Unchanged,
}

/// Decides between a delta and a new base.
///
/// `changes` is the number of added, changed and removed entries between the feed's current
/// list and the new one; `delta_size` the size of the delta file that would carry them.
pub fn decide(
    policy: &PublishPolicy,
    current: Option<&Manifest>,
    changes: u64,
    delta_size: u64,
    force_base: bool,
) -> PublishKind {
    let Some(current) = current else {
        return PublishKind::Base(BaseReason::FirstPublish);
    };
    if force_base {
        return PublishKind::Base(BaseReason::Forced);
    }
    if changes == 0 {
        return PublishKind::Unchanged;
    }
    let count = current.deltas.len() + 1;
    if count > policy.max_deltas {
        return PublishKind::Base(BaseReason::TooManyDeltas(count));
    }
    let deltas: u64 = current.deltas.iter().map(|d| d.size).sum::<u64>() + delta_size;
    if deltas as f64 > policy.max_delta_fraction * current.base.size as f64 {
        return PublishKind::Base(BaseReason::DeltasTooLarge {
            deltas,
            base: current.base.size,
        });
    }
    PublishKind::Delta
}

/// The file name a new base or delta gets at feed version `version`.
pub fn file_name(kind: &PublishKind, version: u64) -> String {
    match kind {
        PublishKind::Delta => format!("delta-{version}.fwb"),
        _ => format!("base-{version}.fwb"),
    }
}

/// Builds the next manifest. `file` is the new base or delta (its `version` must be the
/// next feed version, `current.version + 1`), `None` for [`PublishKind::Unchanged`].
pub fn next_manifest(
    policy: &PublishPolicy,
    feed: &str,
    current: Option<&Manifest>,
    kind: &PublishKind,
    file: Option<FileRef>,
    now_unix: u64,
) -> Option<Manifest> {
    let version = next_version(current);
    let (base, deltas) = match (kind, current, file) {
        (PublishKind::Base(_), _, Some(base)) => (base, vec![]),
        (PublishKind::Delta, Some(cur), Some(delta)) => {
            let mut deltas = cur.deltas.clone();
            deltas.push(delta);
            (cur.base.clone(), deltas)
        }
        (PublishKind::Unchanged, Some(cur), None) => (cur.base.clone(), cur.deltas.clone()),
        _ => return None,
    };
    Some(Manifest {
        format: MANIFEST_FORMAT,
        feed: feed.to_string(),
        version,
        created: now_unix,
        expires: now_unix.saturating_add(policy.ttl.as_secs().max(1)),
        base,
        deltas,
    })
}

/// The version the next publish gets.
pub fn next_version(current: Option<&Manifest>) -> u64 {
    current.map_or(1, |m| m.version + 1)
}

#[cfg(test)]
mod tests {
    use super::super::manifest::tests::{file, manifest};
    use super::*;

    fn sized(mut m: Manifest, base: u64, deltas: &[u64]) -> Manifest {
        m.base.size = base;
        for (d, s) in m.deltas.iter_mut().zip(deltas) {
            d.size = *s;
        }
        m
    }

    #[test]
    fn first_publish_is_a_base() {
        let p = PublishPolicy::default();
        assert_eq!(
            decide(&p, None, 10, 10, false),
            PublishKind::Base(BaseReason::FirstPublish)
        );
    }

    #[test]
    fn small_change_is_a_delta_until_the_deltas_outgrow_the_fraction() {
        let p = PublishPolicy::default();
        let cur = sized(manifest(3, &[2, 3]), 1_000, &[100, 100]);
        assert_eq!(decide(&p, Some(&cur), 5, 50, false), PublishKind::Delta);
        assert_eq!(
            decide(&p, Some(&cur), 5, 50 + 1, false),
            PublishKind::Base(BaseReason::DeltasTooLarge {
                deltas: 251,
                base: 1_000
            })
        );
    }

    #[test]
    fn too_many_deltas_fold() {
        let p = PublishPolicy {
            max_deltas: 2,
            ..PublishPolicy::default()
        };
        let cur = sized(manifest(3, &[2, 3]), 1_000_000, &[1, 1]);
        assert_eq!(
            decide(&p, Some(&cur), 1, 1, false),
            PublishKind::Base(BaseReason::TooManyDeltas(3))
        );
    }

    #[test]
    fn unchanged_and_forced() {
        let p = PublishPolicy::default();
        let cur = manifest(3, &[]);
        assert_eq!(decide(&p, Some(&cur), 0, 0, false), PublishKind::Unchanged);
        assert_eq!(
            decide(&p, Some(&cur), 0, 0, true),
            PublishKind::Base(BaseReason::Forced)
        );
    }

    #[test]
    fn next_manifests() {
        let p = PublishPolicy::default();
        let cur = manifest(3, &[2, 3]);
        let d = file("delta-4.fwb", 4, b"d4");
        let m = next_manifest(
            &p,
            "f",
            Some(&cur),
            &PublishKind::Delta,
            Some(d.clone()),
            50,
        )
        .expect("delta manifest");
        assert_eq!(m.version, 4);
        assert_eq!(m.base, cur.base);
        assert_eq!(m.deltas.last(), Some(&d));
        assert_eq!(m.expires, 50 + 7 * 24 * 3600);
        assert_eq!(m.validate(), Ok(()));

        let b = file("base-4.fwb", 4, b"b4");
        let kind = PublishKind::Base(BaseReason::Forced);
        let m = next_manifest(&p, "f", Some(&cur), &kind, Some(b.clone()), 50).expect("base");
        assert_eq!((m.base, m.deltas.len()), (b, 0));

        let m =
            next_manifest(&p, "f", Some(&cur), &PublishKind::Unchanged, None, 50).expect("refresh");
        assert_eq!((m.version, m.deltas), (4, cur.deltas.clone()));
        assert_eq!(
            next_manifest(&p, "f", None, &PublishKind::Delta, Some(d), 50),
            None
        );
        assert_eq!(file_name(&PublishKind::Delta, 7), "delta-7.fwb");
        assert_eq!(file_name(&kind, 7), "base-7.fwb");
    }
}
