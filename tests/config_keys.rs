//! Every configuration key that the docs, comments or messages name (`limits.max_vias`,
//! `sip.advertise`, ...) is a key an operator can set, and is in `fraudwall config default`.
//! (Issue 10: an error message once told operators to "raise limits.max_header_line", a key
//! the file refused.)

use std::collections::BTreeSet;
use std::path::Path;

const SECTIONS: &[&str] = &[
    "sip",
    "proxy",
    "health",
    "actions",
    "redirect",
    "limits",
    "blocklist",
    "feed",
    "admin",
    "api",
    "decision_log",
    "log",
    "tls",
];

/// Dotted words that are not config keys: file names and example host names.
fn not_a_key(s: &str) -> bool {
    s.ends_with(".rs")
        || s.ends_with(".toml")
        || s.ends_with(".conf")
        || s.ends_with(".example")
        || s == "admin.tokens"
}

/// The keys `fraudwall config default` documents, as `section.key`.
fn documented() -> BTreeSet<String> {
    let table: toml::Table = toml::from_str(fraudwall::config::DEFAULT_CONFIG).unwrap();
    let mut keys = BTreeSet::new();
    for (section, v) in table {
        for key in v.as_table().unwrap().keys() {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// The prose of a Rust source line: a comment's text, or the string literals of code.
fn prose(line: &str) -> Vec<&str> {
    let t = line.trim_start();
    if t.starts_with("//") {
        return vec![t];
    }
    // Text between double quotes (escaped quotes are rare enough in messages to ignore).
    line.split('"').skip(1).step_by(2).collect()
}

/// `section.key` words in `text` (a key is lowercase letters, digits and underscores).
fn mentions(text: &str, out: &mut Vec<String>) {
    let bytes = text.as_bytes();
    for section in SECTIONS {
        let pat = format!("{section}.");
        let mut from = 0;
        while let Some(i) = text[from..].find(&pat) {
            let start = from + i;
            from = start + pat.len();
            let before_ok = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric()
                    || b"_.:/".contains(&bytes[start - 1]));
            if !before_ok {
                continue;
            }
            let key: String = text[from..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if key.is_empty() {
                continue;
            }
            let after = text[from + key.len()..].chars().next();
            // `sip.runs(`: a method; `proxy.example.net`: a host name.
            if matches!(after, Some('(') | Some('.')) {
                continue;
            }
            let word = format!("{section}.{key}");
            if !not_a_key(&word) {
                out.push(word);
            }
        }
    }
}

fn scan(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "rs" && ext != "md" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut words = Vec::new();
            if ext == "md" {
                mentions(line, &mut words);
            } else {
                for p in prose(line) {
                    mentions(p, &mut words);
                }
            }
            for w in words {
                found.push((w, format!("{}:{}", path.display(), n + 1)));
            }
        }
    }
}

#[test]
fn every_key_the_docs_and_messages_name_can_be_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = documented();
    let mut found = Vec::new();
    scan(&root.join("src"), &mut found);
    for doc in ["README.md", "blocklists/FORMAT.md", "integration/README.md"] {
        let p = root.join(doc);
        if p.exists() {
            let text = std::fs::read_to_string(&p).unwrap();
            for (n, line) in text.lines().enumerate() {
                let mut words = Vec::new();
                mentions(line, &mut words);
                for w in words {
                    found.push((w, format!("{doc}:{}", n + 1)));
                }
            }
        }
    }
    assert!(
        found.len() > 50,
        "the scan found too little: {}",
        found.len()
    );
    let missing: Vec<_> = found
        .iter()
        .filter(|(w, _)| !keys.contains(w))
        .map(|(w, at)| format!("{w} ({at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not a key of `fraudwall config default`:\n{}",
        missing.join("\n")
    );
}
