//! Differences between two snapshots: entries added, removed and changed.
//!
//! Both snapshots stream their entries in key order, so a diff is one merge pass in constant
//! memory (only the listed changes, up to a limit, are kept).

use super::snapshot::{Entries, Match, Snapshot, SnapshotError};
use super::{Action, EntryKey};
use std::cmp::Ordering;

/// An entry as shown in a diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffEntry {
    /// `+8613800000001` or `+8617012*`.
    pub entry: EntryKey,
    /// Action.
    pub action: Action,
    /// Category.
    pub category: String,
    /// Score.
    pub score: u8,
    /// Source.
    pub source: String,
    /// Delta removal.
    pub tombstone: bool,
}

impl From<Match<'_>> for DiffEntry {
    fn from(m: Match<'_>) -> Self {
        DiffEntry {
            entry: m.entry,
            action: m.action,
            category: m.category.to_string(),
            score: m.score,
            source: m.source.to_string(),
            tombstone: m.tombstone,
        }
    }
}

/// One changed entry: before and after.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// In the old snapshot.
    pub old: DiffEntry,
    /// In the new snapshot.
    pub new: DiffEntry,
}

/// The result of [`diff`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diff {
    /// Entries only in the new snapshot.
    pub added_count: u64,
    /// Entries only in the old snapshot.
    pub removed_count: u64,
    /// Entries in both with a different value.
    pub changed_count: u64,
    /// Entries in both, equal.
    pub unchanged_count: u64,
    /// The first `limit` added entries.
    pub added: Vec<DiffEntry>,
    /// The first `limit` removed entries.
    pub removed: Vec<DiffEntry>,
    /// The first `limit` changed entries.
    pub changed: Vec<Change>,
}

/// One step of walking two snapshots' entries together in key order.
#[derive(Debug)]
pub enum Paired<'a, 'b> {
    /// Only in the old snapshot.
    Removed(Match<'a>),
    /// Only in the new snapshot.
    Added(Match<'b>),
    /// The same key in both (values may differ).
    Both(Match<'a>, Match<'b>),
}

/// Merge-join of two snapshots' entries (each sorted by encoded key), so `diff` and the
/// feed's delta builder walk them the same way. See [`paired_entries`].
pub struct PairedEntries<'a, 'b> {
    old: Entries<'a>,
    new: Entries<'b>,
    x: Option<Match<'a>>,
    y: Option<Match<'b>>,
    started: bool,
}

/// Walks `old` and `new` together in key order: one [`Paired`] per distinct key.
pub fn paired_entries<'a, 'b>(old: &'a Snapshot, new: &'b Snapshot) -> PairedEntries<'a, 'b> {
    PairedEntries {
        old: old.entries(),
        new: new.entries(),
        x: None,
        y: None,
        started: false,
    }
}

impl<'a, 'b> PairedEntries<'a, 'b> {
    fn step(&mut self) -> Result<Option<Paired<'a, 'b>>, SnapshotError> {
        if !self.started {
            self.started = true;
            self.x = self.old.next().transpose()?;
            self.y = self.new.next().transpose()?;
        }
        let ord = match (&self.x, &self.y) {
            (None, None) => return Ok(None),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(p), Some(q)) => p.entry.encode().as_slice().cmp(q.entry.encode().as_slice()),
        };
        let item = match (ord, self.x.take(), self.y.take()) {
            (Ordering::Less, Some(p), y) => {
                self.y = y;
                self.x = self.old.next().transpose()?;
                Paired::Removed(p)
            }
            (Ordering::Greater, x, Some(q)) => {
                self.x = x;
                self.y = self.new.next().transpose()?;
                Paired::Added(q)
            }
            (Ordering::Equal, Some(p), Some(q)) => {
                self.x = self.old.next().transpose()?;
                self.y = self.new.next().transpose()?;
                Paired::Both(p, q)
            }
            // Unreachable by the orderings above: both sides were consumed.
            _ => return Ok(None),
        };
        Ok(Some(item))
    }
}

impl<'a, 'b> Iterator for PairedEntries<'a, 'b> {
    type Item = Result<Paired<'a, 'b>, SnapshotError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// Compares two snapshots, keeping at most `limit` entries of each list.
pub fn diff(old: &Snapshot, new: &Snapshot, limit: usize) -> Result<Diff, SnapshotError> {
    let mut d = Diff::default();
    for pair in paired_entries(old, new) {
        match pair? {
            Paired::Removed(p) => {
                d.removed_count += 1;
                if d.removed.len() < limit {
                    d.removed.push(p.into());
                }
            }
            Paired::Added(q) => {
                d.added_count += 1;
                if d.added.len() < limit {
                    d.added.push(q.into());
                }
            }
            Paired::Both(p, q) => {
                let (p, q): (DiffEntry, DiffEntry) = (p.into(), q.into());
                if p == q {
                    d.unchanged_count += 1;
                } else {
                    d.changed_count += 1;
                    if d.changed.len() < limit {
                        d.changed.push(Change { old: p, new: q });
                    }
                }
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::{compile_csv_text, CompileOptions};

    #[test]
    fn added_removed_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.fwb"), dir.path().join("b.fwb"));
        let h = "number,action,category,score,source\n";
        let opts = CompileOptions::default();
        compile_csv_text(
            &format!("{h}+331111111,block,x,1,s\n+332222222,tag,x,1,s\n+333*,warn,x,1,s\n"),
            &opts,
            &a,
        )
        .unwrap();
        compile_csv_text(
            &format!("{h}+331111111,block,x,1,s\n+332222222,block,x,1,s\n+334444444,block,x,1,s\n"),
            &opts,
            &b,
        )
        .unwrap();
        let d = diff(
            &Snapshot::open(&a).unwrap(),
            &Snapshot::open(&b).unwrap(),
            10,
        )
        .unwrap();
        assert_eq!(
            (
                d.added_count,
                d.removed_count,
                d.changed_count,
                d.unchanged_count
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(d.added[0].entry.to_string(), "+334444444");
        assert_eq!(d.removed[0].entry.to_string(), "+333*");
        assert_eq!(d.changed[0].new.action, Action::Block);
    }
}
