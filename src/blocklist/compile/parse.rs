//! Parsing: input layout, rows into records, blocks into chunks for the cores.

use super::records::record;
use super::strings::LocalStrings;
use super::CompileOptions;
use crate::blocklist::format::Kind;
use crate::blocklist::key::EntryKey;
use crate::blocklist::value::{PackedValue, MAX_SCORE};
use crate::blocklist::Action;
use crate::numbers::{Caller, NumberingProfile, E164};

/// Column layout of an input.
#[derive(Debug, Clone, Copy)]
pub(super) enum Layout {
    Csv {
        number: usize,
        action: usize,
        category: Option<usize>,
        score: Option<usize>,
        source: Option<usize>,
        columns: usize,
    },
    Plain,
}

pub(super) struct ParseCtx<'a> {
    pub(super) opts: &'a CompileOptions,
    pub(super) layout: Layout,
    pub(super) default_action: Action,
    pub(super) default_source: &'a str,
}

pub(super) struct ChunkOut {
    pub(super) records: Vec<u128>,
    pub(super) categories: LocalStrings,
    pub(super) sources: LocalStrings,
    pub(super) errors: Vec<(u64, String)>,
    pub(super) rejected: u64,
    pub(super) rows: u64,
    pub(super) lines: u64,
}

fn unquote(f: &[u8]) -> &[u8] {
    let f = f.trim_ascii();
    match f {
        [b'"', inner @ .., b'"'] => inner.trim_ascii(),
        _ => f,
    }
}

/// Parses a number field: an exact number or a prefix ending in `*`.
pub fn parse_key(profile: &NumberingProfile, field: &[u8]) -> Result<EntryKey, String> {
    if let Some(p) = field.strip_suffix(b"*") {
        let digits = profile
            .normalize_prefix(p)
            .map_err(|e| format!("bad prefix {:?}: {e}", String::from_utf8_lossy(field)))?;
        return EntryKey::prefix(&digits).ok_or_else(|| {
            format!(
                "bad prefix {:?}: 1 to 15 digits expected",
                String::from_utf8_lossy(field)
            )
        });
    }
    // Fast path for the common `+<digits>` row: the same plan checks as `normalize`, without
    // URI scanning. Anything else (or a rejected number, for the full reason) goes through
    // the profile.
    if let [b'+', rest @ ..] = field {
        if let Ok(n) = E164::from_international(rest) {
            return Ok(EntryKey::from_e164(&n));
        }
    }
    match profile.normalize(field) {
        Caller::Number(n) => Ok(EntryKey::from_e164(&n)),
        Caller::Anonymous => Err(format!(
            "{:?} is an anonymous caller, not a number",
            String::from_utf8_lossy(field)
        )),
        Caller::Invalid(r) | Caller::Decorated { reason: r, .. } => Err(format!(
            "invalid number {:?} for profile {}: {r}",
            String::from_utf8_lossy(field),
            profile.name()
        )),
    }
}

fn parse_row(ctx: &ParseCtx<'_>, line: &[u8], out: &mut ChunkOut) -> Result<(), String> {
    let (number, action, category, score, source) = match ctx.layout {
        Layout::Plain => {
            let n = line.split(|&b| b == b',').next().unwrap_or(line);
            (unquote(n), None, None, None, None)
        }
        Layout::Csv {
            number,
            action,
            category,
            score,
            source,
            columns,
        } => {
            let mut fields: [&[u8]; 16] = [&[]; 16];
            let mut n = 0;
            for f in line.split(|&b| b == b',').take(fields.len()) {
                fields[n] = unquote(f);
                n += 1;
            }
            if n <= number.max(action) {
                return Err(format!("{n} fields, expected {columns}"));
            }
            let get = |i: Option<usize>| {
                i.and_then(|i| fields.get(i).copied())
                    .filter(|f| !f.is_empty())
            };
            (
                fields.get(number).copied().unwrap_or_default(),
                Some(fields.get(action).copied().unwrap_or_default()),
                get(category),
                get(score),
                get(source),
            )
        }
    };
    let key = parse_key(&ctx.opts.profile, number)?;
    let mut tombstone = false;
    let action = match action {
        None => ctx.default_action,
        Some(a) => {
            let s = std::str::from_utf8(a).map_err(|_| "action is not UTF-8".to_string())?;
            if s.is_empty() {
                ctx.opts
                    .default_action
                    .ok_or("empty action and no --default-action")?
            } else if s.eq_ignore_ascii_case("remove") {
                if !matches!(ctx.opts.kind, Kind::Delta { .. }) {
                    return Err("action `remove` is only valid in a delta (--delta-of BASE)".into());
                }
                tombstone = true;
                Action::Allow
            } else {
                s.parse::<Action>().map_err(|e| e.to_string())?
            }
        }
    };
    let score = match score {
        None => ctx.opts.default_score,
        Some(s) => std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|&v| v <= MAX_SCORE)
            .ok_or_else(|| format!("score {:?} is not 0..=100", String::from_utf8_lossy(s)))?,
    };
    fn text<'b>(b: &'b [u8], what: &str) -> Result<&'b str, String> {
        std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8"))
    }
    let category = match category {
        None => out.categories.id(&ctx.opts.default_category),
        Some(c) => out.categories.id(text(c, "category")?),
    };
    let source = match source {
        None => out.sources.id(ctx.default_source),
        Some(s) => out.sources.id(text(s, "source")?),
    };
    let v = PackedValue {
        action,
        tombstone,
        score,
        category,
        source,
    };
    out.records.push(record(&key, v, false));
    Ok(())
}

pub(super) fn parse_chunk(ctx: &ParseCtx<'_>, chunk: &[u8], keep_errors: usize) -> ChunkOut {
    let mut out = ChunkOut {
        records: Vec::with_capacity(chunk.len() / 24),
        categories: LocalStrings::default(),
        sources: LocalStrings::default(),
        errors: Vec::new(),
        rejected: 0,
        rows: 0,
        lines: 0,
    };
    for line in chunk.split(|&b| b == b'\n') {
        out.lines += 1;
        let l = line.trim_ascii();
        if l.is_empty() || l[0] == b'#' {
            continue;
        }
        out.rows += 1;
        if let Err(reason) = parse_row(ctx, l, &mut out) {
            out.rejected += 1;
            if out.errors.len() < keep_errors {
                out.errors.push((out.lines, reason));
            }
        }
    }
    // `split` yields one piece after a trailing newline: not a line.
    if chunk.last() == Some(&b'\n') {
        out.lines -= 1;
    }
    out
}

/// Reads the layout from the first line; returns it and whether that line is a header.
pub(super) fn detect_layout(first: &[u8]) -> (Layout, bool) {
    let l = first.trim_ascii();
    let lower = l.to_ascii_lowercase();
    let cols: Vec<&[u8]> = lower.split(|&b| b == b',').map(unquote).collect();
    let find = |name: &[u8]| cols.iter().position(|c| *c == name);
    if let (Some(number @ 0..16), Some(action @ 0..16)) = (find(b"number"), find(b"action")) {
        return (
            Layout::Csv {
                number,
                action,
                category: find(b"category"),
                score: find(b"score"),
                source: find(b"source"),
                columns: cols.len(),
            },
            true,
        );
    }
    let header = l.iter().any(|b| b.is_ascii_alphabetic()) && !l.contains(&b'*');
    let header = header && !l.starts_with(b"sip") && !l.starts_with(b"tel");
    (Layout::Plain, header)
}

/// Splits at line ends into about `n` pieces.
pub(super) fn split_lines(body: &[u8], n: usize) -> Vec<&[u8]> {
    let target = (body.len() / n.max(1)).max(64 << 10);
    let mut out = Vec::with_capacity(n + 1);
    let mut rest = body;
    while rest.len() > target {
        let cut = match rest[target..].iter().position(|&b| b == b'\n') {
            Some(i) => target + i + 1,
            None => rest.len(),
        };
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_keeps_every_byte() {
        let text: Vec<u8> = (0..100_000)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let pieces = split_lines(&text, 7);
        assert!(pieces.len() > 1);
        assert_eq!(pieces.concat(), text);
        assert!(pieces.iter().all(|p| p.ends_with(b"\n")));
    }
}
