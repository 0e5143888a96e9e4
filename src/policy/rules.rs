//! `[policy]`: the rule chain's stages ([`Rule`]) and settings ([`PolicyConfig`]), checked
//! once into the form the chain reads ([`Rules`]).

use crate::blocklist::Action;
use crate::numbers::E164;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A stage of the chain, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Emergency and service numbers as callee are never screened.
    ProtectedCallee,
    /// A protected number presented by a peer group not entitled to it.
    Impersonation,
    /// A home-country number entering from an international group.
    InternationalSpoof,
    /// The callee's own entry for this caller.
    Personal,
    /// The blocklist, adjusted by the callee's level.
    Global,
    /// What the network asserts (`verstat`).
    Verstat,
    /// What the caller's own recent calls show: a finding of the behavioural detector
    /// ([`crate::detection`]).
    Behaviour,
    /// No usable identity.
    Anonymous,
    /// An identity that is not a number.
    Invalid,
    /// A call from abroad, labelled with its country.
    InternationalOrigin,
    /// Nothing decided: allow.
    Default,
}

impl Rule {
    /// Every rule, in precedence order.
    pub const ALL: [Rule; 11] = [
        Rule::ProtectedCallee,
        Rule::Impersonation,
        Rule::InternationalSpoof,
        Rule::Personal,
        Rule::Global,
        Rule::Verstat,
        Rule::Behaviour,
        Rule::Anonymous,
        Rule::Invalid,
        Rule::InternationalOrigin,
        Rule::Default,
    ];

    /// The name in logs, metrics, config and `explain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ProtectedCallee => "protected-callee",
            Rule::Impersonation => "impersonation",
            Rule::InternationalSpoof => "international-spoof",
            Rule::Personal => "personal",
            Rule::Global => "global",
            Rule::Verstat => "verstat",
            Rule::Behaviour => "behaviour",
            Rule::Anonymous => "anonymous",
            Rule::Invalid => "invalid",
            Rule::InternationalOrigin => "international-origin",
            Rule::Default => "default",
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Emergency and service numbers never screened as callees, by default: police, fire,
/// ambulance and traffic police in China, the European and NANP emergency numbers, the
/// NANP crisis line, and the UK, Australian and Chinese citizen hotlines.
pub const DEFAULT_PROTECTED_CALLEES: [&str; 12] = [
    "110", "112", "119", "120", "122", "911", "988", "999", "000", "12110", "12315", "12345",
];

/// `[policy]`: the rule chain's settings (the stages' order is fixed; see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The home country calling codes (`["86"]`): a caller with one of them entering from an
    /// `international` peer group is a spoofed domestic number.
    pub home_country: Vec<String>,
    /// What a spoofed domestic number gets (`international-spoof`); `allow` turns the
    /// stage off.
    pub international_spoof: Action,
    /// What a call the network marks `TN-Validation-Failed` gets (`verstat`); `allow` lets
    /// it pass on to the later stages (still counted by verstat value).
    pub verstat_failed: Action,
    /// `tag`: label calls from `international` groups with their country (`Intl: Myanmar`);
    /// `allow`: off.
    pub international_origin: Action,
    /// Callees never screened: short codes (`110`, `911`) and numbers (`+861012345`). A
    /// short code also matches in E.164 form behind a home country code (`+86110`).
    pub protected_callees: Vec<String>,
    /// Stages turned off (`["international-origin"]`): they pass. `default` cannot be.
    pub disabled_rules: Vec<Rule>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            home_country: Vec::new(),
            international_spoof: Action::Block,
            verstat_failed: Action::Allow,
            international_origin: Action::Allow,
            protected_callees: DEFAULT_PROTECTED_CALLEES.map(String::from).to_vec(),
            disabled_rules: Vec::new(),
        }
    }
}

/// Why `[policy]` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PolicyConfigError {
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn digits_of(s: &str) -> Option<Box<[u8]>> {
    let d = s.trim().strip_prefix('+').unwrap_or(s.trim());
    (!d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| d.as_bytes().into())
}

/// `[policy]` checked and in the form the chain reads.
#[derive(Debug, Clone)]
pub struct Rules {
    home: Vec<Box<[u8]>>,
    pub(crate) spoof: Action,
    pub(crate) verstat_failed: Action,
    pub(crate) origin: Action,
    pub(crate) callees: Vec<Box<[u8]>>,
    /// Bit `n` set when a protected callee has `n` digits: most callees are answered by
    /// their length alone, with no comparison (this stage runs on every call).
    callee_lengths: u32,
    disabled: u16,
}

impl PolicyConfig {
    /// Checks every value and compiles the chain's form.
    pub fn compile(&self) -> Result<Rules, PolicyConfigError> {
        let mut home = Vec::new();
        for c in &self.home_country {
            match digits_of(c) {
                Some(d) if d.len() <= 3 && d[0] != b'0' => home.push(d),
                _ => {
                    return Err(PolicyConfigError {
                        key: "policy.home_country",
                        message: format!(
                        "{c:?} is not a calling code: 1 to 3 digits, no leading 0 (\"86\", \"1\")"
                    ),
                    })
                }
            }
        }
        let mut callees = Vec::new();
        for c in &self.protected_callees {
            callees.push(digits_of(c).ok_or_else(|| PolicyConfigError {
                key: "policy.protected_callees",
                message: format!(
                    "{c:?} is not a number: 1 to 15 digits, optionally after + (\"110\", \"+86110\")"
                ),
            })?);
        }
        callees.sort_unstable();
        callees.dedup();
        if !matches!(self.international_origin, Action::Allow | Action::Tag) {
            return Err(PolicyConfigError {
                key: "policy.international_origin",
                message: format!(
                    "{} is not offered: \"tag\" labels calls from abroad with their country, \"allow\" is off",
                    self.international_origin
                ),
            });
        }
        let mut disabled = 0;
        for r in &self.disabled_rules {
            if *r == Rule::Default {
                return Err(PolicyConfigError {
                    key: "policy.disabled_rules",
                    message: "\"default\" ends the chain and cannot be turned off".into(),
                });
            }
            disabled |= r.bit();
        }
        Ok(Rules {
            home,
            spoof: self.international_spoof,
            verstat_failed: self.verstat_failed,
            origin: self.international_origin,
            callee_lengths: callees.iter().fold(0, |m, c| m | 1u32 << c.len().min(31)),
            callees,
            disabled,
        })
    }
}

impl Default for Rules {
    fn default() -> Self {
        // The default config is valid by construction.
        PolicyConfig::default().compile().unwrap_or(Rules {
            home: Vec::new(),
            spoof: Action::Block,
            verstat_failed: Action::Allow,
            origin: Action::Allow,
            callees: Vec::new(),
            callee_lengths: 0,
            disabled: 0,
        })
    }
}

impl Rules {
    /// Only the global list, anonymous/invalid and default run: today's single lookup, for
    /// comparisons (benchmarks, the property test).
    pub fn global_only() -> Rules {
        let mut r = Rules::default();
        r.disabled = Rule::ALL
            .iter()
            .filter(|r| {
                !matches!(
                    r,
                    Rule::Global | Rule::Anonymous | Rule::Invalid | Rule::Default
                )
            })
            .fold(0, |m, r| m | r.bit());
        r
    }

    pub(crate) fn enabled(&self, rule: Rule) -> bool {
        self.disabled & rule.bit() == 0
    }

    /// Whether `number`'s digits start with a home country code.
    pub(crate) fn is_home(&self, number: &[u8]) -> bool {
        self.home.iter().any(|cc| number.starts_with(cc))
    }

    /// Whether the callee is one of the protected callees: its user part as dialled, its
    /// E.164 form, or a short code behind a home country code.
    pub(crate) fn protected_callee(&self, user: &[u8], number: Option<&E164>) -> Option<usize> {
        let find = |d: &[u8]| {
            if self.callee_lengths & (1u32 << d.len().min(31)) == 0 {
                return None;
            }
            self.callees.binary_search_by(|c| (**c).cmp(d)).ok()
        };
        let user = user.strip_prefix(b"+").unwrap_or(user);
        if !user.is_empty() {
            if let Some(i) = find(user) {
                return Some(i);
            }
        }
        let n = number?.as_bytes();
        find(n).or_else(|| {
            self.home
                .iter()
                .filter(|cc| n.starts_with(cc))
                .find_map(|cc| find(&n[cc.len()..]))
        })
    }
}
