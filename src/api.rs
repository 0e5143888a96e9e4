//! The HTTP verdict API: the proxy's screening for switches that ask a service per call.
//!
//! Kamailio (`http_client`), OpenSIPS (`rest_client`), Asterisk (`CURL()`) and FreeSWITCH
//! (`mod_curl`) can ask an HTTP service what to do with a call. With `[api] listen` set,
//! fraudwall answers them on a listener of its own (not the admin one), with the same rule
//! chain, lists and feed as the inline proxy (one screen shared by both fronts):
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/screen` `{"caller", "callee", "peer", "verstat", "call_id", "headers"}` | one verdict |
//! | `GET /v1/screen?caller=&callee=&peer=&verstat=&call_id=` | one verdict |
//! | `POST /v1/screen/batch` `{"calls": [{...}, ...]}` (at most `api.max_batch`) | `{"results": [...]}` in order |
//!
//! Only `caller` is required; unknown fields are ignored. `caller` and `callee` are in any
//! form the proxy reads (`+8613800000001`, `sip:+8613800000001@h;user=phone`, `tel:...`,
//! national forms by the numbering profile). `peer` is the IP address the call came from: it
//! picks the peer group (trust, origin, numbering profile) as a SIP source address would;
//! without it the call is from the `default` group. `verstat` (`TN-Validation-Passed`, ...)
//! counts only when that group has `trust_identity`, as on the wire (and as `fraudwall
//! explain` reads it). `call_id` is written to the decision log. `headers` carries the raw
//! identity values the switch received (`{"From": "<sip:...>", "P-Asserted-Identity": "..."
//! or [...], "Remote-Party-ID": ...}`): they are read exactly as the proxy reads an INVITE
//! (PAI and RPID believed only from a `trust_identity` group, every value screened, the most
//! severe verdict kept, `proxy.identity_order` breaking ties), and `caller` is then optional
//! (it stands in for a missing From). A value with CR, LF or NUL is refused (400).
//!
//! Behavioural detection (`[detection] enabled`): the API *judges* with the detector (the
//! `behaviour` stage gives a flagged caller its tag or block here too) but does not *count*
//! its requests as calls. The API sees no call outcome (ringing, answer, CANCEL, BYE) and a
//! switch may ask more than once per call, so counting would skew the ratios the rules rest
//! on; the counts come from the fronts that see the call stream (the proxy, the redirect
//! server), shared between nodes over `detection.redis`.
//!
//! A verdict:
//!
//! ```json
//! {"action":"block","rule":"global","reason":"listed","category":"impersonation","score":95,
//!  "label":null,"snapshot_version":1,
//!  "sip":{"code":608,"reason_phrase":"Rejected","headers":{"Call-Info":"<https://...>;purpose=jcard"}}}
//! ```
//!
//! `sip` is what the proxy would have done, so a switch needs no logic of its own: block
//! answers `code` and `reason_phrase` (608, or `603 Network Blocked` with its `Reason` under
//! `actions.block_response = 603`) with the headers the proxy writes into that answer; tag
//! gives `code` null and the tag header (`X-Fraud-Label: suspected-fraud;category=..;score=..`)
//! to add to the forwarded INVITE, and `label` the display name the proxy would show; warn
//! gives `code` null, `target` (the announcement service, `actions.warn_uri`) and the reason
//! header (warn without a warn service is tagged, as in the proxy); allow gives `code` null
//! and no headers. The header texts come from the proxy's own action code.
//!
//! # Authentication, limits, failures
//!
//! Every request needs `Authorization: Bearer <token>` with a token of `api.tokens_file`
//! (same format and rotation as the admin tokens: [`crate::admin::tokens`]); the API does not
//! start without the file. Refusals: no or a wrong token 401, tokens file broken 503, a body
//! over `api.max_body` 413, malformed JSON or a field of the wrong type 400 naming the field
//! (`{"error": "...", "field": "calls[3].caller"}`), a batch over `api.max_batch` 413 naming
//! the limit, a request not complete within `api.request_timeout` 408 (headers that do not
//! arrive in time close the connection). Each answer is counted in
//! `fraudwall_api_requests_total{endpoint, status}`; tokens are never logged. A screen that
//! fails (a panic) answers allow with reason `internal_error`, logged and counted
//! (`fraudwall_fail_open_total`), like the proxy. Every verdict goes to the decision log
//! (with `front` = `api`) and the verdict metrics exactly like a proxied call.

use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use metrics::{Counter, Key, Label, Metadata, Recorder};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::admin::tokens::{TokenFile, TokenRefusal};
use crate::blocklist::Action;
use crate::numbers::{Caller, NumberingProfile};
use crate::peers::PeerGroups;
use crate::policy::{CallContext, Callee, IdentitySource, Screen, Verdict, Verstat};
use crate::proxy::core::actions::{self, BlockShape, Label as TagLabel};
use crate::proxy::core::config::Compiled;
use crate::proxy::runtime::{CoreHandler, Screened};

/// Largest `api.max_body` accepted (1 MiB).
pub const MAX_BODY_LIMIT: usize = 1 << 20;
/// Largest `api.max_batch` accepted.
pub const MAX_BATCH_LIMIT: usize = 100_000;
/// Longest `call_id` kept for the decision log; longer ones are cut.
const MAX_CALL_ID: usize = 256;

/// `[api]`: the HTTP verdict API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Where it listens (`None`, written `""`: off).
    #[serde(with = "crate::config::value::opt_socket_addr")]
    pub listen: Option<SocketAddr>,
    /// Bearer tokens, one per line (required when `listen` is set; reread on change).
    #[serde(with = "crate::config::value::empty_none")]
    pub tokens_file: Option<PathBuf>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Most calls in one batch request.
    pub max_batch: usize,
    /// Time a request may take to arrive and be answered.
    #[serde(with = "crate::config::value::duration")]
    pub request_timeout: Duration,
    /// Serve HTTPS with the `[tls]` certificate and key (rustls; re-read when the files
    /// change), instead of plain HTTP.
    pub tls: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: None,
            tokens_file: None,
            max_body: 64 * 1024,
            max_batch: 1000,
            request_timeout: Duration::from_secs(2),
            tls: false,
        }
    }
}

impl ApiConfig {
    /// Checks the ranges and, when the API is on, that the tokens file is set and holds at
    /// least one well-formed token (the error names the key, never a token).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        let invalid = |key: &str, reason: String| crate::config::ConfigError::Invalid {
            key: key.into(),
            reason,
        };
        if !(1..=MAX_BODY_LIMIT).contains(&self.max_body) {
            return Err(invalid(
                "api.max_body",
                format!(
                    "{} is out of range 1 to {MAX_BODY_LIMIT} (bytes)",
                    self.max_body
                ),
            ));
        }
        if !(1..=MAX_BATCH_LIMIT).contains(&self.max_batch) {
            return Err(invalid(
                "api.max_batch",
                format!("{} is out of range 1 to {MAX_BATCH_LIMIT}", self.max_batch),
            ));
        }
        if self.request_timeout < Duration::from_millis(10)
            || self.request_timeout > Duration::from_secs(300)
        {
            return Err(invalid(
                "api.request_timeout",
                format!(
                    "{} is out of range 10ms to 5m",
                    humantime::format_duration(self.request_timeout)
                ),
            ));
        }
        if self.listen.is_some() {
            let Some(path) = &self.tokens_file else {
                return Err(invalid(
                    "api.tokens_file",
                    "the API needs bearer tokens: set api.tokens_file (or --api-tokens) to a \
                     file with one token per line (`openssl rand -hex 32` makes one)"
                        .into(),
                ));
            };
            crate::admin::tokens::read_tokens(path)
                .map_err(|e| invalid("api.tokens_file", e.to_string()))?;
        }
        Ok(())
    }
}

/// A request field that is missing or of the wrong type: answered 400, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (`caller`, `calls[3].peer`; empty for the body as a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One call to screen, as read from a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallRequest {
    /// The caller, as given (a number or a URI).
    pub caller: String,
    /// The callee, as given (empty: unknown).
    pub callee: String,
    /// The address the call came from (`None`: the default peer group).
    pub peer: Option<IpAddr>,
    /// The `verstat` value, as given.
    pub verstat: Option<String>,
    /// The switch's Call-ID, for the decision log (cut to 256 bytes).
    pub call_id: String,
    /// Raw identity header values (`"headers"`), read as the proxy reads them off the wire.
    pub headers: Option<IdentityHeaders>,
}

/// Identity header values as the switch received them (`"headers": {"From": "...",
/// "P-Asserted-Identity": "..." or [...], "Remote-Party-ID": ...}`, names in any case,
/// other names ignored). They are read exactly as the proxy reads an INVITE: P-Asserted-Identity
/// and Remote-Party-ID only when the `peer`'s group has `trust_identity`, every believable
/// value screened, the most severe verdict kept, in `proxy.identity_order`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityHeaders {
    /// The From value (`None`: built from `caller`).
    pub from: Option<String>,
    /// P-Asserted-Identity values.
    pub pai: Vec<String>,
    /// Remote-Party-ID values.
    pub rpid: Vec<String>,
}

impl IdentityHeaders {
    /// Reads `"headers"`; `prefix` names where it sits.
    fn from_json(v: &Value, prefix: &str) -> Result<IdentityHeaders, FieldError> {
        let Value::Object(obj) = v else {
            return Err(FieldError::new(
                format!("{prefix}headers"),
                format!("expected an object of header values, got {}", type_name(v)),
            ));
        };
        let mut out = IdentityHeaders::default();
        for (name, value) in obj {
            let field = format!("{prefix}headers.{name}");
            let values: Vec<String> = match value {
                Value::Null => continue,
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(FieldError::new(
                            field.clone(),
                            format!("expected strings, got {}", type_name(other)),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(FieldError::new(
                        field,
                        format!(
                            "expected a string or an array of strings, got {}",
                            type_name(other)
                        ),
                    ))
                }
            };
            // A header value is one line: a line break would smuggle in another header.
            if values
                .iter()
                .any(|v| v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
            {
                return Err(FieldError::new(
                    field,
                    "a header value may not contain CR, LF or NUL",
                ));
            }
            if name.eq_ignore_ascii_case("From") || name.eq_ignore_ascii_case("f") {
                if values.len() > 1 {
                    return Err(FieldError::new(
                        field,
                        "one From value (a second From is refused, as on the wire)",
                    ));
                }
                out.from = values.into_iter().next();
            } else if name.eq_ignore_ascii_case("P-Asserted-Identity") {
                out.pai.extend(values);
            } else if name.eq_ignore_ascii_case("Remote-Party-ID") {
                out.rpid.extend(values);
            }
        }
        Ok(out)
    }

    /// Whether any identity value is given.
    fn is_empty(&self) -> bool {
        self.from.is_none() && self.pai.is_empty() && self.rpid.is_empty()
    }

    /// The INVITE the proxy would have received with these values (`caller` as From when no
    /// From is given).
    fn invite(&self, caller: &str) -> Vec<u8> {
        let from = match &self.from {
            Some(f) => f.clone(),
            None if caller.trim().is_empty() => "<sip:anonymous@anonymous.invalid>".into(),
            None if caller.contains(':') => format!("<{}>", caller.trim()),
            None => format!("<sip:{}@screen.invalid;user=phone>", caller.trim()),
        };
        let mut m = format!(
            "INVITE sip:api@screen.invalid SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKapi\r\n\
             From: {from}\r\nTo: <sip:api@screen.invalid>\r\nCall-ID: api\r\nCSeq: 1 INVITE\r\n\
             Max-Forwards: 70\r\n"
        );
        for v in &self.pai {
            m.push_str(&format!("P-Asserted-Identity: {v}\r\n"));
        }
        for v in &self.rpid {
            m.push_str(&format!("Remote-Party-ID: {v}\r\n"));
        }
        m.push_str("Content-Length: 0\r\n\r\n");
        m.into_bytes()
    }
}

/// A string field, or `None` when absent or `null`.
fn string_field(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, FieldError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldError::new(
            format!("{prefix}{name}"),
            format!("expected a string, got {}", type_name(other)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl CallRequest {
    /// Reads one call from a JSON value; `prefix` names where it sits (`""`, `calls[2].`).
    pub fn from_json(v: &Value, prefix: &str) -> Result<CallRequest, FieldError> {
        let Value::Object(obj) = v else {
            let at = prefix.trim_end_matches('.');
            return Err(FieldError::new(
                at,
                format!("expected an object, got {}", type_name(v)),
            ));
        };
        let headers = match obj.get("headers") {
            None | Some(Value::Null) => None,
            Some(h) => Some(IdentityHeaders::from_json(h, prefix)?),
        }
        .filter(|h| !h.is_empty());
        let caller = match (string_field(obj, "caller", prefix)?, &headers) {
            (Some(c), _) => c,
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(FieldError::new(
                    format!("{prefix}caller"),
                    "required (the calling number or URI), unless headers carry the identity",
                ))
            }
        };
        let peer =
            match string_field(obj, "peer", prefix)? {
                None => None,
                Some(p) if p.trim().is_empty() => None,
                Some(p) => Some(p.trim().parse::<IpAddr>().map_err(|_| {
                    FieldError::new(format!("{prefix}peer"), "expected an IP address")
                })?),
            };
        let mut call_id = string_field(obj, "call_id", prefix)?.unwrap_or_default();
        if call_id.len() > MAX_CALL_ID {
            let mut cut = MAX_CALL_ID;
            while !call_id.is_char_boundary(cut) {
                cut -= 1;
            }
            call_id.truncate(cut);
        }
        Ok(CallRequest {
            caller,
            callee: string_field(obj, "callee", prefix)?.unwrap_or_default(),
            peer,
            verstat: string_field(obj, "verstat", prefix)?,
            call_id,
            headers,
        })
    }

    /// Reads one call from a query string's pairs (the first of a repeated name counts).
    pub fn from_query(pairs: &[(String, String)]) -> Result<CallRequest, FieldError> {
        let mut obj = Map::new();
        for (k, v) in pairs {
            obj.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        CallRequest::from_json(&Value::Object(obj), "")
    }
}

/// Reads a batch body: `{"calls": [...]}` with at most `max_batch` calls.
pub fn batch_from_json(v: &Value, max_batch: usize) -> Result<Vec<CallRequest>, RequestError> {
    let Value::Object(obj) = v else {
        return Err(RequestError::Field(FieldError::new(
            "",
            format!(
                "expected an object {{\"calls\": [...]}}, got {}",
                type_name(v)
            ),
        )));
    };
    let calls = match obj.get("calls") {
        Some(Value::Array(a)) => a,
        None => {
            return Err(RequestError::Field(FieldError::new(
                "calls",
                "required (an array of calls)",
            )))
        }
        Some(other) => {
            return Err(RequestError::Field(FieldError::new(
                "calls",
                format!("expected an array, got {}", type_name(other)),
            )))
        }
    };
    if calls.len() > max_batch {
        return Err(RequestError::BatchTooLarge {
            calls: calls.len(),
            limit: max_batch,
        });
    }
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| CallRequest::from_json(c, &format!("calls[{i}].")).map_err(Into::into))
        .collect()
}

/// Why a request was refused before screening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A field missing or of the wrong type.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// More calls than `api.max_batch`.
    #[error("batch of {calls} calls is over the limit of {limit} (api.max_batch)")]
    BatchTooLarge {
        /// Calls sent.
        calls: usize,
        /// `api.max_batch`.
        limit: usize,
    },
    /// A body larger than `api.max_body`.
    #[error("body over the limit of {limit} bytes (api.max_body)")]
    BodyTooLarge {
        /// `api.max_body`.
        limit: usize,
    },
}

impl RequestError {
    fn status(&self) -> StatusCode {
        match self {
            RequestError::Json(_) | RequestError::Field(_) => StatusCode::BAD_REQUEST,
            RequestError::BatchTooLarge { .. } | RequestError::BodyTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
        }
    }

    fn body(&self) -> Value {
        let mut o = Map::new();
        o.insert("error".into(), Value::String(self.to_string()));
        match self {
            RequestError::Field(f) => {
                o.insert("field".into(), Value::String(f.field.clone()));
            }
            RequestError::BatchTooLarge { limit, .. } => {
                o.insert("limit".into(), Value::from(*limit));
            }
            RequestError::BodyTooLarge { limit } => {
                o.insert("limit".into(), Value::from(*limit));
            }
            RequestError::Json(_) => {}
        }
        Value::Object(o)
    }
}

/// Parses a body as JSON.
pub fn parse_json(body: &[u8]) -> Result<Value, RequestError> {
    serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))
}

/// Header name and value pairs, written as a JSON object in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// What the switch does in SIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SipAnswer {
    /// The status to answer the call with (block), or `null`: let it continue.
    pub code: Option<u16>,
    /// The status line's reason phrase (`Rejected`, `Network Blocked`), with `code`.
    pub reason_phrase: Option<&'static str>,
    /// Headers to write: into the answer (block) or the forwarded INVITE (tag, warn).
    pub headers: Headers,
    /// Where to send a warned call: the announcement service's URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One verdict as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The action applied: allow, tag, warn, block.
    pub action: &'static str,
    /// The rule-chain stage that decided.
    pub rule: &'static str,
    /// Why, within that stage.
    pub reason: &'static str,
    /// The matched entry's category.
    pub category: Option<String>,
    /// The matched entry's score.
    pub score: Option<u8>,
    /// The display-name label the proxy would write for a tagged call.
    pub label: Option<String>,
    /// The list version that decided.
    pub snapshot_version: Option<u64>,
    /// What to do in SIP.
    pub sip: SipAnswer,
}

/// The action settings the answers are built from (the proxy's, compiled once).
pub(crate) struct Actions {
    compiled: Compiled,
}

impl Actions {
    /// The action applied for a verdict: warn without a warn service is tagged.
    fn applied(&self, v: &Verdict) -> Action {
        match v.action {
            Action::Warn if self.compiled.warn_dest.is_none() => Action::Tag,
            a => a,
        }
    }

    /// The answer for `v`, applied as `applied`.
    fn answer(&self, v: &Verdict, applied: Action) -> Answer {
        let c = &self.compiled;
        let label_value = || {
            TagLabel {
                value: &c.tag.value,
                verdict: v,
            }
            .to_string()
        };
        let mut label = None;
        let sip = match applied {
            Action::Block => {
                let (code, phrase) = actions::block_status(&c.block);
                SipAnswer {
                    code: Some(code),
                    reason_phrase: Some(phrase),
                    headers: Headers(
                        actions::block_headers(&c.block, v, BlockShape::Full)
                            .into_iter()
                            .map(|(n, v)| (n.to_string(), v))
                            .collect(),
                    ),
                    target: None,
                }
            }
            Action::Tag => {
                let l = v.label.as_deref().unwrap_or(&c.tag.display_label);
                label = (!l.is_empty()).then(|| l.to_string());
                SipAnswer {
                    code: None,
                    reason_phrase: None,
                    headers: Headers(vec![(c.tag.header.clone(), label_value())]),
                    target: None,
                }
            }
            Action::Warn => SipAnswer {
                code: None,
                reason_phrase: None,
                headers: Headers(vec![(c.warn.reason_header.clone(), label_value())]),
                target: Some(c.warn.service_uri.clone()),
            },
            Action::Allow => SipAnswer {
                code: None,
                reason_phrase: None,
                headers: Headers::default(),
                target: None,
            },
        };
        Answer {
            action: applied.as_str(),
            rule: v.rule.as_str(),
            reason: v.reason.as_str(),
            category: v.category.as_deref().map(str::to_string),
            score: v.score,
            label,
            snapshot_version: v.snapshot_version,
            sip,
        }
    }
}

/// The callee's user part: a URI's user, or the value itself.
fn callee_user(raw: &[u8]) -> &[u8] {
    match crate::sip::Uri::parse(raw) {
        Ok(u) => u.user().unwrap_or(raw),
        Err(_) => raw,
    }
}

/// The screening side of the API: the shared screen, the peer groups and profile, the
/// actions, and where verdicts are accounted.
pub(crate) struct Screener {
    pub(crate) screen: Arc<dyn Screen>,
    pub(crate) actions: Actions,
    pub(crate) handler: Option<Arc<CoreHandler>>,
    /// `proxy.identity_order`, for requests that carry raw identity headers.
    pub(crate) identity_order: Vec<IdentitySource>,
}

impl Screener {
    /// Builds the screener from the proxy's compiled configuration.
    pub(crate) fn new(
        screen: Arc<dyn Screen>,
        compiled: Compiled,
        handler: Option<Arc<CoreHandler>>,
    ) -> Screener {
        Screener {
            screen,
            actions: Actions { compiled },
            handler,
            identity_order: crate::proxy::core::config::ProxyConfig::default().identity_order,
        }
    }

    /// The identity headers' order (`proxy.identity_order`), as the proxy reads them.
    pub(crate) fn with_identity_order(mut self, order: Vec<IdentitySource>) -> Screener {
        self.identity_order = order;
        self
    }

    fn peers(&self) -> &PeerGroups {
        &self.actions.compiled.peers
    }

    fn profile(&self) -> &NumberingProfile {
        &self.actions.compiled.profile
    }

    /// Screens one call, accounts it (metrics, decision log) and builds its answer. A
    /// screen that panics fails open (allow, `internal_error`).
    pub(crate) fn screen_one(&self, req: &CallRequest) -> Answer {
        let default_group = crate::peers::PeerGroup::default_group();
        let group = match req.peer {
            Some(ip) => self.peers().of(ip),
            None => self
                .peers()
                .by_name(crate::peers::DEFAULT_GROUP)
                .unwrap_or(&default_group),
        };
        let profile = group.profile.as_ref().unwrap_or(self.profile());
        let callee_raw = req.callee.trim().as_bytes();
        let user = callee_user(callee_raw);
        let callee = Callee {
            user,
            number: match profile.normalize(callee_raw) {
                Caller::Number(n) => Some(n),
                _ => None,
            },
        };
        let verstat = match (&req.verstat, group.trust_identity) {
            (Some(v), true) => Verstat::parse(v.trim().as_bytes()),
            _ => Verstat::Absent,
        };
        // Raw identity headers: the INVITE the proxy would have read, screened its way.
        let invite = req.headers.as_ref().map(|h| h.invite(&req.caller));
        let parsed = invite.map(|m| {
            crate::sip::SipMessage::parse(bytes::Bytes::from(m), &crate::sip::Limits::default())
        });
        let (caller, caller_raw, identity, verdict) = match &parsed {
            Some(Ok(msg)) => {
                let from = match msg.from() {
                    Ok(Some(f)) => Some(f),
                    _ => None,
                };
                match from {
                    Some(from) => {
                        let mut call = CallContext::for_caller(&Caller::Anonymous, group);
                        call.callee = callee;
                        call.verstat = verstat;
                        let id = catch_unwind(AssertUnwindSafe(|| {
                            self.actions.compiled.screen_identity(
                                &self.identity_order,
                                msg,
                                &from,
                                &call,
                                group.trust_identity,
                                profile,
                                &*self.screen,
                                None,
                            )
                        }));
                        match id {
                            Ok(id) => (
                                id.caller,
                                String::from_utf8_lossy(id.raw).into_owned(),
                                id.source.map_or("none", IdentitySource::as_str),
                                id.verdict,
                            ),
                            Err(_) => {
                                tracing::error!(
                                    "api: the screen failed; answering allow (fail open)"
                                );
                                (
                                    Caller::Anonymous,
                                    String::new(),
                                    "none",
                                    Verdict::internal_error(),
                                )
                            }
                        }
                    }
                    // A From that does not parse: the proxy answers 400; here the call is
                    // screened as one with an invalid identity.
                    None => {
                        let caller = Caller::Invalid(crate::numbers::InvalidReason::MalformedUri);
                        let mut call = CallContext::for_caller(&caller, group);
                        call.callee = callee;
                        call.verstat = verstat;
                        let verdict = catch_unwind(AssertUnwindSafe(|| self.screen.screen(&call)))
                            .unwrap_or_else(|_| Verdict::internal_error());
                        (caller, String::new(), "from", verdict)
                    }
                }
            }
            _ => {
                // No headers (or values that make no SIP message: screened as the caller
                // field alone).
                let caller_raw = req.caller.trim().as_bytes();
                let caller = profile.normalize(caller_raw);
                let mut call = CallContext::for_caller(&caller, group);
                call.caller_raw = caller_raw;
                call.callee = callee;
                call.verstat = verstat;
                let verdict = catch_unwind(AssertUnwindSafe(|| self.screen.screen(&call)))
                    .unwrap_or_else(|_| {
                        tracing::error!("api: the screen failed; answering allow (fail open)");
                        Verdict::internal_error()
                    });
                (caller, req.caller.clone(), "api", verdict)
            }
        };
        let applied = self.actions.applied(&verdict);
        if let Some(h) = &self.handler {
            h.record(&Screened {
                front: crate::decision_log::Front::Api,
                call_id: &req.call_id,
                identity,
                caller_raw: &caller_raw,
                caller: &caller,
                callee: callee.number.as_ref(),
                callee_raw: &req.callee,
                peer_group: &group.name,
                verstat,
                verdict: &verdict,
                applied,
            });
        }
        self.actions.answer(&verdict, applied)
    }
}

/// The endpoints, as the `endpoint` label of `fraudwall_api_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/screen`.
    Screen = 0,
    /// `/v1/screen/batch`.
    Batch = 1,
    /// Any other path.
    Other = 2,
}

impl Endpoint {
    const ALL: [Endpoint; 3] = [Endpoint::Screen, Endpoint::Batch, Endpoint::Other];

    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Screen => "screen",
            Endpoint::Batch => "batch",
            Endpoint::Other => "other",
        }
    }
}

/// The statuses the API answers with (anything else is counted as `other`).
const STATUSES: [u16; 10] = [200, 400, 401, 404, 405, 408, 413, 500, 503, 0];

/// `fraudwall_api_requests_total{endpoint, status}`, registered up front.
pub struct ApiMetrics {
    requests: [[Counter; STATUSES.len()]; Endpoint::ALL.len()],
}

impl ApiMetrics {
    /// Registers every series on `recorder` (the runtime's Telemetry recorder).
    pub fn register<R: Recorder + ?Sized>(recorder: &R) -> ApiMetrics {
        let meta = Metadata::new(module_path!(), metrics::Level::INFO, None);
        ApiMetrics {
            requests: Endpoint::ALL.map(|e| {
                STATUSES.map(|s| {
                    let status = if s == 0 {
                        "other".to_string()
                    } else {
                        s.to_string()
                    };
                    recorder.register_counter(
                        &Key::from_parts(
                            "fraudwall_api_requests_total",
                            vec![
                                Label::new("endpoint", e.as_str()),
                                Label::new("status", status),
                            ],
                        ),
                        &meta,
                    )
                })
            }),
        }
    }

    /// Counts one answer.
    pub fn count(&self, endpoint: Endpoint, status: StatusCode) {
        let i = STATUSES
            .iter()
            .position(|&s| s == status.as_u16())
            .unwrap_or(STATUSES.len() - 1);
        self.requests[endpoint as usize][i].increment(1);
    }
}

/// Shared state of the API handlers.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) screener: Arc<Screener>,
    pub(crate) tokens: Arc<TokenFile>,
    pub(crate) metrics: Arc<ApiMetrics>,
    pub(crate) telemetry: Arc<crate::telemetry::Telemetry>,
    pub(crate) max_body: usize,
    pub(crate) max_batch: usize,
    pub(crate) timeout: Duration,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            b,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// The router: every path goes through [`handle`], which counts every answer.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(s): State<ApiState>, req: Request) -> Response {
    let endpoint = match req.uri().path() {
        "/v1/screen" => Endpoint::Screen,
        "/v1/screen/batch" => Endpoint::Batch,
        _ => Endpoint::Other,
    };
    let timeout = s.timeout;
    let response = match tokio::time::timeout(timeout, answer(&s, endpoint, req)).await {
        Ok(r) => r,
        Err(_) => error_response(
            StatusCode::REQUEST_TIMEOUT,
            "request not complete within api.request_timeout",
        ),
    };
    s.metrics.count(endpoint, response.status());
    response
}

async fn answer(s: &ApiState, endpoint: Endpoint, req: Request) -> Response {
    // Authentication first: nothing else is read for an unauthenticated client.
    let mut auth = req.headers().get_all(header::AUTHORIZATION).iter();
    let presented = match (auth.next(), auth.next()) {
        (None, _) => Ok(&b""[..]),
        (Some(_), Some(_)) => Err(TokenRefusal::Invalid),
        (Some(v), None) => Ok(crate::admin::bearer(v.as_bytes())),
    };
    if let Err(r) = presented.and_then(|p| s.tokens.check(p, Instant::now())) {
        tracing::warn!(
            "api {} {} refused: {}",
            req.method(),
            req.uri().path(),
            match r {
                TokenRefusal::Missing => "missing token",
                TokenRefusal::Invalid => "invalid token",
                TokenRefusal::FileError => "tokens file unreadable",
            }
        );
        return match r {
            TokenRefusal::FileError => error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the API tokens file is unreadable or malformed (see the log)",
            ),
            TokenRefusal::Missing | TokenRefusal::Invalid => {
                let mut r = error_response(
                    StatusCode::UNAUTHORIZED,
                    "send Authorization: Bearer <token>, a token from api.tokens_file",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"fraudwall-api\""),
                );
                r
            }
        };
    }
    let method = req.method().clone();
    match (endpoint, &method) {
        (Endpoint::Other, _) => error_response(
            StatusCode::NOT_FOUND,
            "no such endpoint: use /v1/screen or /v1/screen/batch",
        ),
        (Endpoint::Screen, &Method::GET) => {
            let pairs = match Query::<Vec<(String, String)>>::try_from_uri(req.uri()) {
                Ok(Query(p)) => p,
                Err(e) => {
                    return refused(&RequestError::Json(format!("bad query string: {e}")));
                }
            };
            match CallRequest::from_query(&pairs) {
                Ok(c) => screen(s, vec![c], false).await,
                Err(e) => refused(&e.into()),
            }
        }
        (Endpoint::Screen | Endpoint::Batch, &Method::POST) => {
            let body = match axum::body::to_bytes(req.into_body(), s.max_body).await {
                Ok(b) => b,
                Err(_) => return refused(&RequestError::BodyTooLarge { limit: s.max_body }),
            };
            let calls = parse_json(&body).and_then(|v| {
                if endpoint == Endpoint::Batch {
                    batch_from_json(&v, s.max_batch)
                } else {
                    Ok(vec![CallRequest::from_json(&v, "")?])
                }
            });
            match calls {
                Ok(c) => screen(s, c, endpoint == Endpoint::Batch).await,
                Err(e) => refused(&e),
            }
        }
        _ => {
            let allow = if endpoint == Endpoint::Batch {
                "POST"
            } else {
                "GET, POST"
            };
            let mut r = error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            r
        }
    }
}

fn refused(e: &RequestError) -> Response {
    json_response(e.status(), &e.body())
}

/// The batch answer: `{"results": [...]}`, each verdict in the order of the calls.
#[derive(Serialize)]
struct Results<'a> {
    results: &'a [Answer],
}

/// Screens `calls` off the async workers (a large batch takes a while) and answers one
/// verdict, or `{"results": [...]}`.
async fn screen(s: &ApiState, calls: Vec<CallRequest>, batch: bool) -> Response {
    let screener = Arc::clone(&s.screener);
    let n = calls.len();
    let run = move || -> Vec<Answer> { calls.iter().map(|c| screener.screen_one(c)).collect() };
    let answers = if batch {
        tokio::task::spawn_blocking(run).await
    } else {
        Ok(run())
    };
    if answers.is_err() {
        for _ in 0..n {
            s.telemetry.fail_open();
        }
    }
    match answers {
        Ok(a) if batch => json_response(StatusCode::OK, &Results { results: &a }),
        Ok(mut a) => match a.pop() {
            Some(one) => json_response(StatusCode::OK, &one),
            None => json_response(StatusCode::OK, &fail_open()),
        },
        Err(_) if batch => {
            let results = vec![fail_open(); n];
            json_response(StatusCode::OK, &Results { results: &results })
        }
        Err(_) => json_response(StatusCode::OK, &fail_open()),
    }
}

/// The answer to a call whose screening could not run (the blocking task was lost): allow,
/// reason `internal_error`, logged (the caller counts it in `fraudwall_fail_open_total`).
fn fail_open() -> Answer {
    tracing::error!("api: screening failed; answering allow (fail open)");
    let v = Verdict::internal_error();
    Answer {
        action: Action::Allow.as_str(),
        rule: v.rule.as_str(),
        reason: v.reason.as_str(),
        category: None,
        score: None,
        label: None,
        snapshot_version: None,
        sip: SipAnswer {
            code: None,
            reason_phrase: None,
            headers: Headers::default(),
            target: None,
        },
    }
}

/// Serves the API on `listener` until `shutdown` completes. Each connection is HTTP/1.1
/// with keep-alive (over TLS when `tls` is given: the handshake in the connection's own task,
/// bounded by `tls.handshake_timeout`); a client that does not send a request's headers
/// within `timeout` is disconnected.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    tls: Option<Arc<crate::proxy::tls::TlsServer>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let timeout = state.timeout;
    let app = router(state);
    tokio::pin!(shutdown);
    // The certificate pair is looked at again at most once a second, on new connections.
    let mut checked = Instant::now();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a little rather than spin.
                    tracing::warn!("api accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        if let Some(t) = tls
            .as_ref()
            .filter(|_| checked.elapsed() >= Duration::from_secs(1))
        {
            checked = Instant::now();
            let _ = t.reload_if_changed();
        }
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout)
                .keep_alive(true);
            match tls {
                None => {
                    let _ = b
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                }
                Some(t) => {
                    // A failed handshake is counted by the TLS metrics and closes the stream.
                    let Ok(accepted) = t.accept(stream).await else {
                        return;
                    };
                    let _ = b
                        .serve_connection(hyper_util::rt::TokioIo::new(accepted.stream), svc)
                        .await;
                }
            }
        });
    }
}

/// Starts the API on `tokio` when `[api] listen` is set: binds, and returns the bound
/// address and the sender that stops it.
pub(crate) fn start(
    cfg: &ApiConfig,
    tls_cfg: &crate::proxy::tls::TlsConfig,
    tokio: &tokio::runtime::Runtime,
    screener: Screener,
    telemetry: &Arc<crate::telemetry::Telemetry>,
) -> Result<Option<(SocketAddr, tokio::sync::oneshot::Sender<()>)>, ApiStartError> {
    let Some(addr) = cfg.listen else {
        return Ok(None);
    };
    let Some(path) = &cfg.tokens_file else {
        return Err(ApiStartError::NoTokens);
    };
    let tokens = Arc::new(TokenFile::open(path, Instant::now())?);
    let tls = if cfg.tls {
        let metrics = crate::proxy::tls::TlsMetrics::register(telemetry.recorder());
        Some(Arc::new(
            crate::proxy::tls::TlsServer::new(tls_cfg, metrics)
                .map_err(|e| ApiStartError::Tls(Box::new(e)))?,
        ))
    } else {
        None
    };
    let listener = tokio
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|source| ApiStartError::Bind {
            address: addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let state = ApiState {
        screener: Arc::new(screener),
        tokens,
        metrics: Arc::new(ApiMetrics::register(telemetry.recorder())),
        telemetry: Arc::clone(telemetry),
        max_body: cfg.max_body,
        max_batch: cfg.max_batch,
        timeout: cfg.request_timeout,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio.spawn(serve(listener, state, tls, async move {
        let _ = rx.await;
    }));
    Ok(Some((bound, tx)))
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    /// `api.listen` without `api.tokens_file`.
    #[error("api.tokens_file: the API needs bearer tokens (set api.tokens_file or --api-tokens)")]
    NoTokens,
    /// The tokens file could not be read or holds no usable token.
    #[error("api.tokens_file: {0}")]
    Tokens(#[from] crate::admin::tokens::TokenFileError),
    /// `api.tls` is set but the `[tls]` certificate or key does not load.
    #[error("api.tls: {0} (api.tls serves the [tls] certificate and private_key)")]
    Tls(Box<crate::proxy::tls::TlsConfigError>),
    /// The listener could not be bound.
    #[error("cannot listen on api {address}: {source} (is another process using it?)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::compile_csv_text;
    use crate::blocklist::Snapshot;
    use crate::policy::Policy;
    use arc_swap::ArcSwapOption;

    fn compiled(actions: &str) -> Compiled {
        let c = crate::config::Config::from_toml_str(actions).unwrap();
        c.core().unwrap().compile().unwrap()
    }

    fn screener(actions: &str) -> (Screener, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.fwsnap");
        let csv = "number,action,category,score,source\n\
                   +8613800000001,block,impersonation,95,police\n\
                   +8613800000002,tag,loan,70,reports\n\
                   +8613800000003,warn,investment,80,reports\n";
        compile_csv_text(csv, &Default::default(), &p).unwrap();
        let slot = Arc::new(ArcSwapOption::from_pointee(Snapshot::open(&p).unwrap()));
        let c = compiled(actions);
        let screen: Arc<dyn Screen> = Arc::new(Policy::<Snapshot>::over(slot, Default::default()));
        (Screener::new(screen, c, None), dir)
    }

    fn call(caller: &str) -> CallRequest {
        CallRequest {
            caller: caller.into(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_a_call_and_names_the_bad_field() {
        let v = parse_json(
            br#"{"caller":"+8613800000001","callee":"sip:+8613900000001@h","peer":"10.0.0.1","verstat":"TN-Validation-Passed","extra":[1,2]}"#,
        )
        .unwrap();
        let c = CallRequest::from_json(&v, "").unwrap();
        assert_eq!(c.caller, "+8613800000001");
        assert_eq!(c.callee, "sip:+8613900000001@h");
        assert_eq!(c.peer, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(c.verstat.as_deref(), Some("TN-Validation-Passed"));

        let e = CallRequest::from_json(&parse_json(br#"{"caller":5}"#).unwrap(), "").unwrap_err();
        assert_eq!(e.field, "caller");
        assert!(e.message.contains("expected a string"), "{e}");
        let e = CallRequest::from_json(&parse_json(br#"{"callee":"1"}"#).unwrap(), "").unwrap_err();
        assert_eq!(e.field, "caller");
        let e =
            CallRequest::from_json(&parse_json(br#"{"caller":"1","peer":"nope"}"#).unwrap(), "")
                .unwrap_err();
        assert_eq!(e.field, "peer");
        let e = CallRequest::from_json(&parse_json(b"[1]").unwrap(), "").unwrap_err();
        assert_eq!(e.field, "");
        assert!(matches!(
            parse_json(b"{\"caller\":"),
            Err(RequestError::Json(_))
        ));
        let q = CallRequest::from_query(&[("caller".into(), "+8613800000002".into())]).unwrap();
        assert_eq!(q.caller, "+8613800000002");
        let long = format!(r#"{{"caller":"1","call_id":"{}"}}"#, "é".repeat(200));
        let c = CallRequest::from_json(&parse_json(long.as_bytes()).unwrap(), "").unwrap();
        assert!(c.call_id.len() <= MAX_CALL_ID);
    }

    #[test]
    fn identity_headers_are_read_with_their_field_names() {
        let v = parse_json(
            br#"{"headers":{"from":"<sip:+8613800000009@h>","P-Asserted-Identity":["<sip:+8613800000001@h>","<tel:+8613800000002>"],"X-Other":"ignored"}}"#,
        )
        .unwrap();
        let c = CallRequest::from_json(&v, "").unwrap();
        assert_eq!(
            c.caller, "",
            "caller is optional when headers carry the identity"
        );
        let h = c.headers.expect("headers");
        assert_eq!(h.from.as_deref(), Some("<sip:+8613800000009@h>"));
        assert_eq!(h.pai.len(), 2);
        let bad =
            parse_json(br#"{"headers":{"From":"<sip:1@h>\r\nP-Asserted-Identity: <sip:2@h>"}}"#)
                .unwrap();
        let e = CallRequest::from_json(&bad, "").unwrap_err();
        assert_eq!(e.field, "headers.From");
        let e = CallRequest::from_json(
            &parse_json(br#"{"headers":{"From":["a","b"]}}"#).unwrap(),
            "",
        )
        .unwrap_err();
        assert_eq!(e.field, "headers.From");
        let e = CallRequest::from_json(
            &parse_json(br#"{"headers":{"Remote-Party-ID":5}}"#).unwrap(),
            "",
        )
        .unwrap_err();
        assert_eq!(e.field, "headers.Remote-Party-ID");
        // Empty headers are no identity: the caller is required again.
        let e = CallRequest::from_json(&parse_json(br#"{"headers":{}}"#).unwrap(), "").unwrap_err();
        assert_eq!(e.field, "caller");
    }

    #[test]
    fn identity_headers_are_screened_as_the_proxy_reads_them() {
        let peers =
            "[[peers]]\nname = \"core\"\naddresses = [\"10.0.0.1\"]\ntrust_identity = true\n";
        let (s, _dir) = screener(peers);
        let req = |peer: Option<&str>| CallRequest {
            peer: peer.map(|p| p.parse().unwrap()),
            headers: Some(IdentityHeaders {
                from: Some("<sip:+8613800000009@h;user=phone>".into()),
                pai: vec!["<sip:+8613800000001@h;user=phone>".into()],
                rpid: vec![],
            }),
            ..Default::default()
        };
        // From a trusted group the asserted (listed) identity decides.
        let a = s.screen_one(&req(Some("10.0.0.1")));
        assert_eq!((a.action, a.sip.code), ("block", Some(608)));
        // From anyone else PAI is not believed: the clean From decides.
        let a = s.screen_one(&req(None));
        assert_eq!(a.action, "allow");
        // The most severe of several values wins, whatever the order given.
        let mut r = req(Some("10.0.0.1"));
        if let Some(h) = r.headers.as_mut() {
            h.pai = vec![
                "<sip:+8613800000002@h>".into(),
                "<sip:+8613800000001@h>".into(),
            ];
        }
        assert_eq!(s.screen_one(&r).action, "block");
        // A From that is not a URI reads as an invalid identity (the proxy answers 400).
        let mut r = req(None);
        if let Some(h) = r.headers.as_mut() {
            h.from = Some("not a uri <<<".into());
            h.pai.clear();
        }
        assert_eq!(s.screen_one(&r).action, "allow");
    }

    #[test]
    fn reads_a_batch_up_to_the_limit() {
        let v = parse_json(br#"{"calls":[{"caller":"1"},{"caller":"2"}]}"#).unwrap();
        assert_eq!(batch_from_json(&v, 2).unwrap().len(), 2);
        assert_eq!(
            batch_from_json(&v, 1).unwrap_err(),
            RequestError::BatchTooLarge { calls: 2, limit: 1 }
        );
        let v = parse_json(br#"{"calls":[{"caller":"1"},{"caller":true}]}"#).unwrap();
        match batch_from_json(&v, 10) {
            Err(RequestError::Field(f)) => assert_eq!(f.field, "calls[1].caller"),
            other => panic!("{other:?}"),
        }
        let v = parse_json(br#"{"calls":{}}"#).unwrap();
        match batch_from_json(&v, 10) {
            Err(RequestError::Field(f)) => assert_eq!(f.field, "calls"),
            other => panic!("{other:?}"),
        }
        let e = RequestError::BatchTooLarge { calls: 5, limit: 1 };
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.body()["limit"], 1);
    }

    #[test]
    fn answers_carry_the_proxy_sip_texts() {
        let (s, _d) = screener("[actions]\nredress_url = \"https://r.example/{category}\"\n");
        let a = s.screen_one(&call("sip:+8613800000001@gw;user=phone"));
        assert_eq!((a.action, a.reason), ("block", "listed"));
        assert_eq!(a.sip.code, Some(608));
        assert_eq!(a.sip.reason_phrase, Some("Rejected"));
        assert_eq!(
            a.sip.headers.0,
            vec![(
                "Call-Info".to_string(),
                "<https://r.example/impersonation>;purpose=jcard".to_string()
            )]
        );
        assert_eq!(a.score, Some(95));

        let a = s.screen_one(&call("%2B8613800000002"));
        assert_eq!(a.action, "tag");
        assert_eq!(a.category.as_deref(), Some("loan"));
        assert_eq!(a.sip.code, None);
        assert_eq!(
            a.sip.headers.0,
            vec![(
                "X-Fraud-Label".to_string(),
                "suspected-fraud;category=loan;score=70".to_string()
            )]
        );
        // Warn without a warn service is tagged, as in the proxy.
        assert_eq!(s.screen_one(&call("+8613800000003")).action, "tag");
        let a = s.screen_one(&call("tel:+8613800000009"));
        assert_eq!((a.action, a.sip.code), ("allow", None));
        assert!(a.sip.headers.0.is_empty());
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["sip"]["headers"], serde_json::json!({}));
        assert!(json["sip"]["code"].is_null());
    }

    #[test]
    fn block_603_and_warn_targets() {
        let (s, _d) = screener(
            "[actions]\nblock_response = 603\nredress_url = \"https://r.example/x\"\n\
             warn_uri = \"sip:announce@127.0.0.1:5090\"\n",
        );
        let a = s.screen_one(&call("+8613800000001"));
        assert_eq!(a.sip.code, Some(603));
        assert_eq!(a.sip.reason_phrase, Some("Network Blocked"));
        assert_eq!(
            a.sip.headers.0[0],
            (
                "Reason".to_string(),
                "SIP;cause=603;text=\"v=analytics1;url=https://r.example/x\";location=RLN"
                    .to_string()
            )
        );
        let a = s.screen_one(&call("+8613800000003"));
        assert_eq!(a.action, "warn");
        assert_eq!(a.sip.target.as_deref(), Some("sip:announce@127.0.0.1:5090"));
        assert_eq!(a.sip.headers.0[0].0, "X-Fraud-Reason");
    }

    struct Panics;
    impl Screen for Panics {
        fn screen(&self, _: &CallContext<'_>) -> Verdict {
            panic!("boom")
        }
    }

    #[test]
    fn a_failing_screen_answers_allow() {
        let s = Screener::new(Arc::new(Panics), compiled(""), None);
        let a = s.screen_one(&call("+8613800000001"));
        assert_eq!((a.action, a.reason), ("allow", "internal_error"));
    }

    #[test]
    fn config_ranges_and_tokens_are_checked() {
        let ok = ApiConfig::default();
        assert!(ok.validate().is_ok());
        let key = |c: ApiConfig| c.validate().unwrap_err().key();
        assert_eq!(
            key(ApiConfig {
                max_body: 0,
                ..ApiConfig::default()
            })
            .as_deref(),
            Some("api.max_body")
        );
        assert_eq!(
            key(ApiConfig {
                max_batch: 0,
                ..ApiConfig::default()
            })
            .as_deref(),
            Some("api.max_batch")
        );
        assert_eq!(
            key(ApiConfig {
                request_timeout: Duration::ZERO,
                ..ApiConfig::default()
            })
            .as_deref(),
            Some("api.request_timeout")
        );
        assert_eq!(
            key(ApiConfig {
                listen: Some("127.0.0.1:8081".parse().unwrap()),
                ..ApiConfig::default()
            })
            .as_deref(),
            Some("api.tokens_file")
        );
    }
}
