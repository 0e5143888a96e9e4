//! Carrying out a verdict on an initial INVITE: tag, warn and block.
//!
//! Allow needs nothing here. Block answers 608 (RFC 8688) or 603+.
//!
//! # 603+
//!
//! ATIS-1000099 ("Robocall Call Blocking Notification", August 2022) profiles the SIP 603
//! for calls blocked on analytics; the FCC made it the required answer for such calls on IP
//! networks (FCC 25-15, 47 CFR 64.1200(k)(9), in force since 25 March 2026). A 603+ differs
//! from a plain 603 in two ways: its status line reads `603 Network Blocked` instead of
//! `603 Decline`, and it carries an RFC 3326 Reason header whose `text` is the profile's
//! list of attribute-value pairs, `v=analytics1` first, then at least one redress contact
//! (`url`, `tel` or `email`), and whose `location` (RFC 8606 values) says which network
//! blocked. fraudwall writes
//!
//! ```text
//! SIP/2.0 603 Network Blocked
//! Reason: SIP;cause=603;text="v=analytics1;url=https://redress.example/...";location=RLN
//! Call-Info: <https://redress.example/...>;purpose=jcard
//! ```
//!
//! (the Call-Info only with a redress URL: the profile does not ask for it, but it is the
//! same jCard redress pointer a 608 carries). The form matches what deployed implementations
//! send and detect: FreeSWITCH's 603+ detection keys on the phrase and a Reason text
//! starting `v=analytics1;`, Asterisk's `NetworkBlocking()` writes the same shape, and
//! carriers (Telnyx, Twilio) document `Reason: SIP;cause=603;text="v=analytics1;url=...";
//! location=RLN`. `RLN` (the network serving the called party) because fraudwall stands in
//! front of the terminating switch. Without a redress URL the text is `v=analytics1` alone,
//! which the profile does not allow: configure `redress_url` with `block_response = 603`. Every value written comes from validated config or is
//! sanitized (a category from the list keeps only token characters), so nothing a list or a
//! caller supplies can inject a header line.

use super::config::{BlockConfig, TagConfig, WarnConfig, MAX_DISPLAY_LABEL};
use crate::policy::Verdict;
use crate::sip::{HeaderName, RequestEditor, ResponseBuilder, SipMessage};
use bytes::BytesMut;
use std::fmt;

/// An edit the sip editor refused (a header name, value or label it considers unsafe).
/// Config validation rules these out; the caller fails open if one happens anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EditFailed;

/// Maps the editor's error (its type is private to the sip module) to [`EditFailed`].
pub(crate) fn edit<T, E>(r: Result<T, E>) -> Result<T, EditFailed> {
    r.map_err(|_| EditFailed)
}

/// Longest category written into a header; longer ones are cut.
const MAX_CATEGORY: usize = 64;

/// A category as a header token: characters outside the token set become `_`.
struct Token<'a>(&'a str);

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(MAX_CATEGORY) {
            let ok = c.is_ascii_alphanumeric()
                || matches!(c, '-' | '.' | '_' | '+' | '!' | '%' | '*' | '~');
            fmt::Write::write_char(f, if ok { c } else { '_' })?;
        }
        Ok(())
    }
}

/// `suspected-fraud;category=<c>;score=<s>`: the tag header's value (and warn's reason).
pub(crate) struct Label<'a> {
    pub(crate) value: &'a str,
    pub(crate) verdict: &'a Verdict,
}

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.value)?;
        LabelParams(self.verdict).fmt(f)
    }
}

/// `;category=<c>;score=<s>` (each only when the verdict has it): the parameters of
/// [`Label`], also written on the Contact of redirect mode's tag answer.
pub(crate) struct LabelParams<'a>(pub(crate) &'a Verdict);

impl fmt::Display for LabelParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.0.category {
            write!(f, ";category={}", Token(c))?;
        }
        if let Some(s) = self.0.score {
            write!(f, ";score={s}")?;
        }
        Ok(())
    }
}

/// The tag action: the label header, and the display-name label if configured.
pub(crate) fn tag(
    ed: &mut RequestEditor<'_>,
    msg: &SipMessage,
    cfg: &TagConfig,
    verdict: &Verdict,
) -> Result<(), EditFailed> {
    edit(ed.add_header_fmt(
        &cfg.header,
        format_args!(
            "{}",
            Label {
                value: &cfg.value,
                verdict
            }
        ),
    ))?;
    // A verdict's own label (`Intl: Myanmar`) is shown even without a configured one.
    let label = verdict.label.as_deref().unwrap_or(&cfg.display_label);
    if label.is_empty() {
        return Ok(());
    }
    let pai = msg.p_asserted_identities().next().and_then(Result::ok);
    if let Some(na) = pai {
        let name = prefixed(label, na.display_name());
        edit(ed.set_display_name(HeaderName::PAssertedIdentity, &name))?;
    }
    if cfg.label_from || verdict.label.is_some() {
        if let Ok(Some(from)) = msg.from() {
            let name = prefixed(label, from.display_name());
            edit(ed.set_display_name(HeaderName::From, &name))?;
        }
    }
    Ok(())
}

/// `label` followed by a space and the old display name (unquoted, unescaped), cut to
/// [`MAX_DISPLAY_LABEL`] characters in all. A non-UTF-8 or empty old name gives `label`; an
/// old name that already starts with the label is kept as it is (cut to the cap).
pub(crate) fn prefixed(label: &str, old: Option<&[u8]>) -> String {
    let old = old
        .and_then(|o| std::str::from_utf8(o).ok())
        .map(|o| o.trim().trim_matches('"'))
        .unwrap_or("");
    let mut out = String::with_capacity(MAX_DISPLAY_LABEL + 4);
    if !old.starts_with(label) {
        out.push_str(label);
        if !old.is_empty() {
            out.push(' ');
        }
    }
    let mut escaped = false;
    for c in old.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        if !c.is_control() {
            out.push(c);
        }
    }
    if let Some((cut, _)) = out.char_indices().nth(MAX_DISPLAY_LABEL) {
        out.truncate(cut);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// The warn action: the Request-URI becomes the announcement service; the original
/// Request-URI and the reason travel in headers.
pub(crate) fn warn(
    ed: &mut RequestEditor<'_>,
    cfg: &WarnConfig,
    tag_value: &str,
    verdict: &Verdict,
    original_uri: &[u8],
) -> Result<(), EditFailed> {
    edit(ed.set_request_uri(cfg.service_uri.as_bytes()))?;
    let mut to = Vec::with_capacity(original_uri.len() + 2);
    to.push(b'<');
    to.extend_from_slice(original_uri);
    to.push(b'>');
    edit(ed.add_header(&cfg.original_to_header, &to))?;
    edit(ed.add_header_fmt(
        &cfg.reason_header,
        format_args!(
            "{}",
            Label {
                value: tag_value,
                verdict
            }
        ),
    ))?;
    Ok(())
}

/// The 603+ Reason (ATIS-1000099): `SIP;cause=603;text="v=analytics1[;url=URL]";location=RLN`.
///
/// The `text` is the profile's list of attribute-value pairs: the version `v=analytics1`
/// first, then the redress contact (`url`, an HTTPS page where a wrongly blocked caller
/// asks for redress). `location=RLN` says the block happened in the network serving the
/// called party (RFC 8606 location values; fraudwall stands in front of the terminating
/// switch). In the URL, `;` (the pair separator), `"` and `\` (which would end or escape
/// the quoted string) are percent-encoded.
pub(crate) struct AnalyticsReason<'a> {
    /// The redress URL with `{category}` filled in; `None`: no `url` pair.
    pub(crate) url: Option<&'a str>,
}

impl fmt::Display for AnalyticsReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SIP;cause=603;text=\"v=analytics1")?;
        if let Some(url) = self.url {
            f.write_str(";url=")?;
            for c in url.chars() {
                match c {
                    ';' => f.write_str("%3B")?,
                    '"' => f.write_str("%22")?,
                    '\\' => f.write_str("%5C")?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
        }
        f.write_str("\";location=RLN")
    }
}

/// How much of the block answer to build: all of it, or less to fit under the reflection
/// cap (rule 9), dropping first what matters least downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockShape {
    /// Every header: the 603+ Reason with its redress `url`, and the jCard Call-Info.
    Full,
    /// 603+ without Call-Info; the 608 bare.
    NoCallInfo,
    /// 603+ with `text="v=analytics1"` only (no `url`) and no Call-Info; the 608 bare.
    NoRedress,
    /// Status line and the copied headers only.
    Bare,
}

impl BlockShape {
    /// From the fullest to the barest.
    pub(crate) const LADDER: [BlockShape; 4] = [
        BlockShape::Full,
        BlockShape::NoCallInfo,
        BlockShape::NoRedress,
        BlockShape::Bare,
    ];
}

/// The 603 reason phrase of the 603+ profile (ATIS-1000099), instead of RFC 3261's "Decline".
pub(crate) const NETWORK_BLOCKED: &str = "Network Blocked";

/// The block answer's status and reason phrase: `603 Network Blocked` or `608 Rejected`.
pub(crate) fn block_status(cfg: &BlockConfig) -> (u16, &'static str) {
    if cfg.status == 603 {
        (603, NETWORK_BLOCKED)
    } else {
        (608, "Rejected")
    }
}

/// The headers the block answer adds in `shape`, in order: the 603+ Reason (see
/// [`AnalyticsReason`]) for a 603, then the jCard redress `Call-Info` when a redress URL is
/// configured. The proxy writes them into its response; the HTTP API hands them to the
/// switch (one copy of the texts).
pub(crate) fn block_headers(
    cfg: &BlockConfig,
    verdict: &Verdict,
    shape: BlockShape,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(2);
    let url = (!cfg.redress_url.is_empty()).then(|| {
        let category = verdict.category.as_deref().unwrap_or("");
        cfg.redress_url
            .replace("{category}", &Token(category).to_string())
    });
    if cfg.status == 603 && shape != BlockShape::Bare {
        let reason = AnalyticsReason {
            url: url.as_deref().filter(|_| shape != BlockShape::NoRedress),
        };
        out.push(("Reason", reason.to_string()));
    }
    if let Some(u) = url.as_deref().filter(|_| shape == BlockShape::Full) {
        out.push(("Call-Info", format!("<{u}>;purpose=jcard")));
    }
    out
}

/// The block action's response in `shape`: `608 Rejected` with a jCard redress Call-Info
/// (RFC 8688), or 603+ (ATIS-1000099): `603 Network Blocked` with the analytics Reason (see
/// [`AnalyticsReason`]) first and, with a redress URL, the same jCard Call-Info as the 608
/// (which the profile does not require but a 608-aware caller can use). The headers are
/// [`block_headers`].
pub(crate) fn block(
    msg: &SipMessage,
    cfg: &BlockConfig,
    verdict: &Verdict,
    shape: BlockShape,
) -> Result<BytesMut, EditFailed> {
    let (status, phrase) = block_status(cfg);
    let mut b = ResponseBuilder::new(msg, status, phrase);
    for (name, value) in block_headers(cfg, verdict, shape) {
        edit(b.header(name, value.as_bytes()))?;
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::Action;

    #[test]
    fn label_value_with_and_without_list_data() {
        let v = Verdict::listed(Action::Tag, "loan", 70);
        let l = Label {
            value: "suspected-fraud",
            verdict: &v,
        };
        assert_eq!(l.to_string(), "suspected-fraud;category=loan;score=70");
        let v = Verdict::listed(Action::Tag, "bad cat;x=\r\n1", 5);
        let l = Label {
            value: "suspected-fraud",
            verdict: &v,
        };
        assert_eq!(
            l.to_string(),
            "suspected-fraud;category=bad_cat_x___1;score=5"
        );
        let v = Verdict::new(Action::Tag, crate::policy::Reason::Anonymous);
        let l = Label {
            value: "suspected-fraud",
            verdict: &v,
        };
        assert_eq!(l.to_string(), "suspected-fraud");
    }

    #[test]
    fn the_analytics_reason_is_one_quoted_text() {
        assert_eq!(
            AnalyticsReason { url: None }.to_string(),
            "SIP;cause=603;text=\"v=analytics1\";location=RLN"
        );
        assert_eq!(
            AnalyticsReason {
                url: Some("https://r.example/a;b\"c\\d?x=1")
            }
            .to_string(),
            "SIP;cause=603;text=\"v=analytics1;url=https://r.example/a%3Bb%22c%5Cd?x=1\";location=RLN"
        );
    }

    #[test]
    fn display_prefix_is_capped_at_15() {
        assert_eq!(prefixed("FRAUD?", None), "FRAUD?");
        assert_eq!(prefixed("FRAUD?", Some(b"\"Bank\"")), "FRAUD? Bank");
        assert_eq!(
            prefixed("FRAUD?", Some(b"\"Bank of Somewhere\"")),
            "FRAUD? Bank of"
        );
        assert_eq!(prefixed("FRAUD?", Some(b"\"a\\\"b\"")), "FRAUD? a\"b");
        assert_eq!(prefixed("FRAUD?", Some(b"FRAUD? Bank")), "FRAUD? Bank");
        assert_eq!(prefixed("FRAUD?", Some(&[0xff, 0xfe])), "FRAUD?");
        assert!(prefixed("0123456789abcde", Some(b"x")).chars().count() <= 15);
    }
}
