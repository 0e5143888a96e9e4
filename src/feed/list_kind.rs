//! The lists a feed carries, and where each lives in the feed directory.
//!
//! A feed directory holds several named lists, each with its own signed manifest, its own
//! base (and, for the blocklist, deltas) and its own version, so each is published, fetched,
//! verified and swapped atomically on its own (a new subscriber list never waits for, or
//! rolls back with, the blocklist):
//!
//! ```text
//! /srv/feed/manifest.json                 the blocklist (base and deltas)
//! /srv/feed/subscribers/manifest.json     the subscribers' own lists (whole bases)
//! /srv/feed/protected/manifest.json       the protected list (whole bases)
//! ```
//!
//! The blocklist stays at the root, so nodes and origins set up before named lists existed
//! keep working unchanged. A node follows the lists named in `feed.lists`; the manifest of
//! each is found beside the blocklist's (`…/manifest.json` → `…/subscribers/manifest.json`).

use std::fmt;

/// One of the lists fraudwall screens against: what `compile --kind`, `publish --list` and
/// `feed.lists` name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// The global blocklist: `number,action,category,score,source`.
    Blocklist,
    /// The subscribers' own lists: `subscriber,caller,action`.
    Subscribers,
    /// Numbers only some peer groups may present: `number,entitled,category`.
    Protected,
}

impl ListKind {
    /// Every list, in the order `/status` and the metrics show them.
    pub const ALL: [ListKind; 3] = [
        ListKind::Blocklist,
        ListKind::Subscribers,
        ListKind::Protected,
    ];

    /// The spelling in config, CLI flags, metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Blocklist => "blocklist",
            ListKind::Subscribers => "subscribers",
            ListKind::Protected => "protected",
        }
    }

    /// The list in a sentence: "the blocklist", "a subscriber list", "a protected list".
    pub fn describe(self) -> &'static str {
        match self {
            ListKind::Blocklist => "the blocklist",
            ListKind::Subscribers => "a subscriber list",
            ListKind::Protected => "a protected list",
        }
    }

    /// The list's directory inside a feed directory (`None`: the feed's root).
    pub fn feed_subdir(self) -> Option<&'static str> {
        match self {
            ListKind::Blocklist => None,
            other => Some(other.as_str()),
        }
    }

    /// Whether the publisher may write deltas for this list. The subscriber list has its own
    /// snapshot format with no delta form, and the protected list is small (thousands of
    /// numbers), so both are always published whole.
    pub fn has_deltas(self) -> bool {
        self == ListKind::Blocklist
    }

    /// The manifest URL of this list, from the blocklist's manifest URL `feed_url`: the last
    /// path segment replaced by `<list>/manifest.json`. The blocklist's is `feed_url` itself.
    pub fn manifest_url(self, feed_url: &str) -> String {
        match self.feed_subdir() {
            None => feed_url.to_string(),
            Some(sub) => {
                // Query and fragment are not part of the path.
                let end = feed_url.find(['?', '#']).unwrap_or(feed_url.len());
                let (path, rest) = feed_url.split_at(end);
                let dir = path.rfind('/').map_or(path, |i| &path[..=i]);
                format!("{dir}{sub}/manifest.json{rest}")
            }
        }
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_urls_sit_beside_the_blocklists() {
        let root = "http://feed.example/fw/manifest.json";
        assert_eq!(ListKind::Blocklist.manifest_url(root), root);
        assert_eq!(
            ListKind::Subscribers.manifest_url(root),
            "http://feed.example/fw/subscribers/manifest.json"
        );
        assert_eq!(
            ListKind::Protected.manifest_url("http://127.0.0.1:8080/manifest.json?k=v"),
            "http://127.0.0.1:8080/protected/manifest.json?k=v"
        );
    }

    #[test]
    fn spellings_round_trip_through_serde() {
        for k in ListKind::ALL {
            let s = serde_json::to_string(&k).expect("serialize");
            assert_eq!(s, format!("\"{}\"", k.as_str()));
            let back: ListKind = serde_json::from_str(&s).expect("deserialize");
            assert_eq!(back, k);
        }
        assert!(serde_json::from_str::<ListKind>("\"blocklists\"").is_err());
        assert!(ListKind::Blocklist.has_deltas());
        assert!(!ListKind::Subscribers.has_deltas());
        assert_eq!(ListKind::Blocklist.feed_subdir(), None);
        assert_eq!(ListKind::Protected.feed_subdir(), Some("protected"));
    }
}
