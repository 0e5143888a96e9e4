//! What to do with a listed caller.

use std::fmt;
use std::str::FromStr;

/// The action a blocklist entry asks for, in increasing severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Action {
    /// Forward untouched (also carves a number out of a listed range).
    Allow = 0,
    /// Forward with a "suspected fraud" label.
    Tag = 1,
    /// Forward through the warning announcement.
    Warn = 2,
    /// Reject; never ring.
    Block = 3,
}

impl Action {
    /// Every action, in order of severity.
    pub const ALL: [Action; 4] = [Action::Allow, Action::Tag, Action::Warn, Action::Block];

    /// The lowercase name used in CSV, config, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Tag => "tag",
            Action::Warn => "warn",
            Action::Block => "block",
        }
    }

    /// Decodes the two-bit form used inside packed FST values.
    pub fn from_bits(bits: u64) -> Action {
        match bits & 0b11 {
            0 => Action::Allow,
            1 => Action::Tag,
            2 => Action::Warn,
            _ => Action::Block,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of `allow`, `tag`, `warn`, `block`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}: expected allow, tag, warn or block")]
pub struct ActionParseError(pub String);

impl FromStr for Action {
    type Err = ActionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(Action::Allow),
            "tag" => Ok(Action::Tag),
            "warn" => Ok(Action::Warn),
            "block" => Ok(Action::Block),
            _ => Err(ActionParseError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(Action::from_bits(a as u64), a);
        }
        assert!("drop".parse::<Action>().is_err());
        assert_eq!(" BLOCK ".parse::<Action>(), Ok(Action::Block));
    }
}
