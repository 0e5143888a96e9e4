//! The protected list: numbers only some peer groups may present.
//!
//! Banks' service lines (95588…), the police (110), courts and government hotlines, a bank's
//! +1 800 number: these call out only from their owners' own trunks, and a call presenting
//! one from anywhere else is impersonation, the most harmful scam there is. The same holds
//! for inbound-only numbers (the US and UK Do Not Originate lists), which no one may present.
//!
//! # Source
//!
//! CSV with a header row: `number,entitled,category`.
//!
//! ```text
//! number,entitled,category
//! +8695588,bank-icbc|core,bank-impersonation
//! +86110,,police-impersonation          # never a caller ID (entitled: nobody)
//! +1800555*,bank-trunk,
//! ```
//!
//! `number` is an exact number or a prefix (national forms and short codes read by the
//! numbering profile, as in the blocklist); `entitled` names the peer groups (`[[peers]]`)
//! allowed to present it, `|`-separated, possibly none; `category` is what the call is blocked
//! as (empty: `impersonation`). Bad rows are reported `file:line: reason`.
//!
//! # Snapshot
//!
//! The blocklist's own format (FST and leaves, value table, blake3, `.sig`): each row is
//! stored as a `block` entry whose source is `entitled:<groups>`, so lookups, signatures,
//! deltas and the feed work as for the blocklist. [`ProtectedList::open`] refuses a file
//! whose entries are not all of that form, and the blocklist loader refuses a protected list
//! (`entitled:` sources), so neither can be loaded as the other.

use crate::blocklist::{
    compile, CompileError, CompileOptions, CompileReport, Input, RowError, Snapshot, SnapshotError,
};
use crate::numbers::E164;
use crate::peers::PeerGroups;
use crate::policy::lists::{ProtectedLookup, ProtectedMatch};
use std::path::{Path, PathBuf};

/// The source prefix that marks a protected entry.
pub const ENTITLED: &str = "entitled:";

/// Why a protected list was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProtectedListError {
    /// The snapshot itself.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A snapshot, but a blocklist.
    #[error("{0}: not a protected list (compile one with `fraudwall compile --kind protected`)")]
    NotProtected(PathBuf),
    /// It names a peer group the configuration does not have.
    #[error("{path}: entitles peer group {group:?}, which is not a [[peers]] name: add the group or fix the list")]
    UnknownGroup {
        /// The file.
        path: PathBuf,
        /// The group.
        group: String,
    },
}

/// A protected list snapshot.
#[derive(Debug)]
pub struct ProtectedList {
    snapshot: Snapshot,
}

impl ProtectedList {
    /// Opens a protected list and checks that every peer group it names is in `groups`
    /// (`None`: not checked, e.g. `inspect`).
    pub fn open(
        path: &Path,
        groups: Option<&PeerGroups>,
    ) -> Result<ProtectedList, ProtectedListError> {
        let snapshot = Snapshot::open(path)?;
        ProtectedList::from_snapshot(snapshot, path, groups)
    }

    /// Wraps an opened (e.g. signature-checked) snapshot after the same checks.
    pub fn from_snapshot(
        snapshot: Snapshot,
        path: &Path,
        groups: Option<&PeerGroups>,
    ) -> Result<ProtectedList, ProtectedListError> {
        let sources = snapshot.source_names();
        if sources.is_empty() && !snapshot.is_empty()
            || sources.iter().any(|s| !s.starts_with(ENTITLED))
        {
            return Err(ProtectedListError::NotProtected(path.to_path_buf()));
        }
        if let Some(groups) = groups {
            for s in sources {
                for g in s[ENTITLED.len()..].split('|').filter(|g| !g.is_empty()) {
                    if groups.by_name(g).is_none() {
                        return Err(ProtectedListError::UnknownGroup {
                            path: path.to_path_buf(),
                            group: g.to_string(),
                        });
                    }
                }
            }
        }
        Ok(ProtectedList { snapshot })
    }

    /// The snapshot underneath.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

impl ProtectedLookup for ProtectedList {
    fn version(&self) -> u64 {
        self.snapshot.version()
    }
    fn lookup(&self, caller: &E164) -> Option<ProtectedMatch<'_>> {
        let m = self.snapshot.lookup(caller)?;
        if m.tombstone {
            return None;
        }
        // Checked at open; a stray source is read as "nobody entitled" (blocks: the list
        // says the number is protected).
        let entitled = m.source.strip_prefix(ENTITLED).unwrap_or("");
        Some(ProtectedMatch {
            entry: m.entry,
            entitled,
            category: m.category,
        })
    }
}

/// Compiles protected-list CSV files into a snapshot at `out`. Rows are checked here
/// (`entitled` names) and by the blocklist compiler (numbers), each error naming the
/// input file and line.
pub fn compile_protected(
    inputs: &[PathBuf],
    opts: &CompileOptions,
    out: &Path,
) -> Result<CompileReport, CompileError> {
    let mut texts = Vec::new();
    let mut early = Vec::new();
    for path in inputs {
        let data = std::fs::read_to_string(path).map_err(|source| CompileError::Io {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        let mut text = String::with_capacity(data.len() + data.len() / 2);
        for (i, line) in data.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if i == 0 {
                if !line
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .eq_ignore_ascii_case("number,entitled,category")
                {
                    early.push(RowError {
                        file: name.clone(),
                        line: 1,
                        reason: "the header row must be `number,entitled,category`".into(),
                    });
                }
                text.push_str("number,action,category,score,source\n");
                continue;
            }
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                text.push_str("#\n");
                continue;
            }
            let fields: Vec<&str> = t.split(',').map(str::trim).collect();
            let reason = match fields.as_slice() {
                [number, entitled, category] => {
                    match entitled
                        .split('|')
                        .find(|g| !g.is_empty() && !crate::peers::valid_name(g))
                    {
                        Some(g) => Some(format!(
                            "entitled group {g:?} is not a group name (A-Z a-z 0-9 _ - .)"
                        )),
                        None => {
                            let category = if category.is_empty() {
                                "impersonation"
                            } else {
                                category
                            };
                            text.push_str(&format!(
                                "{number},block,{category},100,{ENTITLED}{entitled}\n"
                            ));
                            None
                        }
                    }
                }
                _ => Some("expected 3 fields: number,entitled,category".into()),
            };
            if let Some(r) = reason {
                early.push(RowError {
                    file: name.clone(),
                    line: i as u64 + 1,
                    reason: r,
                });
                // Kept as a comment so the compiler's line numbers stay the file's.
                text.push_str("#\n");
            }
        }
        texts.push((name, text));
    }
    if !early.is_empty() && early.len() as u64 > opts.max_errors {
        let text: Vec<String> = early.iter().map(ToString::to_string).collect();
        return Err(CompileError::Protected(text.join("\n")));
    }
    let inputs: Vec<Input<'_>> = texts
        .iter()
        .map(|(name, text)| Input::Text { name, text })
        .collect();
    let opts = CompileOptions {
        builtin_protect: false,
        protect: Vec::new(),
        ..opts.clone()
    };
    let mut report = compile(&inputs, &opts, out)?;
    report.rejected += early.len() as u64;
    report.errors.extend(early);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::PeerGroupConfig;

    fn groups(names: &[&str]) -> PeerGroups {
        let cfgs: Vec<PeerGroupConfig> = names
            .iter()
            .map(|n| PeerGroupConfig {
                name: n.to_string(),
                addresses: Vec::new(),
                trust_identity: false,
                international: false,
                numbering_profile: String::new(),
            })
            .collect();
        PeerGroups::new(&cfgs, &[]).expect("groups")
    }

    fn compile_text(csv: &str) -> (tempfile::TempDir, PathBuf, CompileReport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("protected.csv");
        std::fs::write(&src, csv).expect("write");
        let out = dir.path().join("prot.fwb");
        let r = compile_protected(&[src], &CompileOptions::default(), &out).expect("compile");
        (dir, out, r)
    }

    #[test]
    fn entries_name_their_entitled_groups_and_category() {
        let (_d, out, r) = compile_text(
            "number,entitled,category\n+8695588,bank-icbc|core,bank-impersonation\n+86110,,\n+1800555*,bank,\n",
        );
        assert_eq!(r.entries, 3);
        let l =
            ProtectedList::open(&out, Some(&groups(&["bank-icbc", "core", "bank"]))).expect("open");
        let m = l.lookup(&"+8695588".parse().expect("n")).expect("listed");
        assert!(m.entitles("core") && m.entitles("bank-icbc") && !m.entitles("intl"));
        assert_eq!(m.category, "bank-impersonation");
        let m = l.lookup(&"+86110".parse().expect("n")).expect("listed");
        assert!(!m.entitles("core"));
        assert_eq!(m.category, "impersonation");
        let m = l
            .lookup(&"+18005551234".parse().expect("n"))
            .expect("prefix");
        assert_eq!(m.entry.to_string(), "+1800555*");
        assert!(l.lookup(&"+8613800000001".parse().expect("n")).is_none());
    }

    #[test]
    fn unknown_groups_bad_rows_and_blocklists_are_refused() {
        let (_d, out, r) = compile_text(
            "number,entitled,category\n+8695588,core,\nnonsense\n+8695599,bad name,\n+86abc,core,\n",
        );
        let lines: Vec<u64> = {
            let mut l: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
            l.sort_unstable();
            l
        };
        assert_eq!(lines, [3, 4, 5], "{:?}", r.errors);
        let e = ProtectedList::open(&out, Some(&groups(&["other"]))).unwrap_err();
        assert!(e.to_string().contains("\"core\""), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let bl = dir.path().join("bl.fwb");
        crate::blocklist::compile_csv_text(
            "number,action,category,score,source\n+8613800000001,block,x,1,police\n",
            &CompileOptions::default(),
            &bl,
        )
        .expect("compile");
        let e = ProtectedList::open(&bl, None).unwrap_err();
        assert!(e.to_string().contains("--kind protected"), "{e}");
    }
}
