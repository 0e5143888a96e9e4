//! Peer groups: where a call entered the network.
//!
//! A carrier's fraudwall sees calls from its own core, from interconnect partners and from
//! international gateways, and what a call may claim depends on where it came from: a
//! P-Asserted-Identity is believed only from the carrier's own trust domain (RFC 3325 §5);
//! a domestic mobile number arriving on an international gateway is spoofed (China's
//! Anti-Telecom-Network-Fraud Law, art. 13); a bank's service number may only come from the
//! bank's trunk. So every source address belongs to one group, named in the config:
//!
//! ```toml
//! [[peers]]
//! name = "core"
//! addresses = ["10.0.0.0/8"]
//! trust_identity = true        # P-Asserted-Identity and Remote-Party-ID are believed
//! [[peers]]
//! name = "intl-gw"
//! addresses = ["192.0.2.10", "192.0.2.11"]
//! trust_identity = true
//! international = true         # carries calls from abroad
//! numbering_profile = "generic" # national forms read as this profile, not proxy.numbering_profile
//! ```
//!
//! A source in no group belongs to the group `default` (untrusted, domestic). A `[[peers]]`
//! entry named `default` with no addresses sets that group's properties. The older key
//! `proxy.trusted_peers` still works: its networks form a group of their own,
//! `trusted_peers`, with `trust_identity = true`.
//!
//! Checked once, when the config is: a bad name or network, a name used twice, an address
//! in two groups, or an unknown numbering profile is an error naming the key.

use crate::config::value::Cidr;
use crate::numbers::NumberingProfile;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

/// The name of the group of sources in no configured group.
pub const DEFAULT_GROUP: &str = "default";
/// The name of the group `proxy.trusted_peers` forms.
pub const TRUSTED_PEERS_GROUP: &str = "trusted_peers";

/// One `[[peers]]` entry of the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerGroupConfig {
    /// The group's name (`[A-Za-z0-9_.-]`, 1 to 64 characters), as the protected list's
    /// `entitled` column, the decision log and the metrics name it.
    pub name: String,
    /// Addresses and networks (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default)]
    pub addresses: Vec<Cidr>,
    /// P-Asserted-Identity and Remote-Party-ID from this group are believed (and
    /// forwarded); from any other group they are removed.
    #[serde(default)]
    pub trust_identity: bool,
    /// The group carries calls from abroad (an international gateway).
    #[serde(default)]
    pub international: bool,
    /// The numbering profile for national forms from this group (`cn`, `nanp`, `generic`);
    /// empty: `proxy.numbering_profile`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub numbering_profile: String,
}

/// A peer group as the call path uses it.
#[derive(Debug, Clone)]
pub struct PeerGroup {
    /// The configured name (shared: every decision about a call names its group).
    pub name: Arc<str>,
    /// Identity headers from this group are believed.
    pub trust_identity: bool,
    /// The group carries calls from abroad.
    pub international: bool,
    /// Its own numbering profile, if it has one.
    pub profile: Option<NumberingProfile>,
}

impl PeerGroup {
    /// The group of sources in no configured group: untrusted, domestic.
    pub fn default_group() -> PeerGroup {
        PeerGroup {
            name: DEFAULT_GROUP.into(),
            trust_identity: false,
            international: false,
            profile: None,
        }
    }
}

/// Why the `[[peers]]` configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PeersError {
    /// The key at fault (`peers[1].addresses`).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every peer group, and which address belongs to which.
#[derive(Debug, Clone)]
pub struct PeerGroups {
    /// Index 0 is `default`.
    groups: Vec<PeerGroup>,
    /// Networks and the group each belongs to, in config order.
    networks: Vec<(Cidr, usize)>,
}

impl Default for PeerGroups {
    fn default() -> Self {
        PeerGroups {
            groups: vec![PeerGroup::default_group()],
            networks: Vec::new(),
        }
    }
}

/// Whether `name` is a valid peer-group name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl PeerGroups {
    /// Checks and compiles `[[peers]]` and the legacy `proxy.trusted_peers`.
    pub fn new(peers: &[PeerGroupConfig], trusted_peers: &[Cidr]) -> Result<Self, PeersError> {
        let mut out = PeerGroups::default();
        let add = |out: &mut PeerGroups, key: String, group: PeerGroup, nets: &[Cidr]| {
            let index = if &*group.name == DEFAULT_GROUP {
                if !nets.is_empty() {
                    return Err(PeersError {
                        key: format!("{key}.addresses"),
                        message: "the group \"default\" is every source in no other group: \
                                  it takes no addresses (set only its properties, or rename it)"
                            .into(),
                    });
                }
                out.groups[0] = group;
                0
            } else {
                if out.groups.iter().any(|g| g.name == group.name) {
                    return Err(PeersError {
                        key: format!("{key}.name"),
                        message: format!(
                            "{:?} names two groups: give each [[peers]] entry its own name",
                            group.name
                        ),
                    });
                }
                out.groups.push(group);
                out.groups.len() - 1
            };
            for net in nets {
                if let Some((other, g)) = out.networks.iter().find(|(n, _)| n.overlaps(net)) {
                    return Err(PeersError {
                        key: format!("{key}.addresses"),
                        message: format!(
                            "{net} is also in group {:?} ({other}): an address belongs to one group only",
                            out.groups[*g].name
                        ),
                    });
                }
                out.networks.push((*net, index));
            }
            Ok(())
        };
        for (i, p) in peers.iter().enumerate() {
            let key = format!("peers[{i}]");
            if !valid_name(&p.name) {
                return Err(PeersError {
                    key: format!("{key}.name"),
                    message: format!(
                        "{:?} is not a group name: use 1 to 64 of A-Z a-z 0-9 _ - .",
                        p.name
                    ),
                });
            }
            let profile = match p.numbering_profile.trim() {
                "" => None,
                name => Some(NumberingProfile::by_name(name).map_err(|e| PeersError {
                    key: format!("{key}.numbering_profile"),
                    message: e.to_string(),
                })?),
            };
            let group = PeerGroup {
                name: p.name.as_str().into(),
                trust_identity: p.trust_identity,
                international: p.international,
                profile,
            };
            add(&mut out, key, group, &p.addresses)?;
        }
        if !trusted_peers.is_empty() {
            let group = PeerGroup {
                name: TRUSTED_PEERS_GROUP.into(),
                trust_identity: true,
                international: false,
                profile: None,
            };
            add(&mut out, "proxy.trusted_peers".into(), group, trusted_peers).map_err(|e| {
                PeersError {
                    key: "proxy.trusted_peers".into(),
                    message: e.message,
                }
            })?;
        }
        Ok(out)
    }

    /// The group `ip` belongs to (`default` when none).
    pub fn of(&self, ip: IpAddr) -> &PeerGroup {
        let index = self
            .networks
            .iter()
            .find(|(n, _)| n.contains(ip))
            .map_or(0, |(_, g)| *g);
        &self.groups[index]
    }

    /// Whether `ip` is in a configured group (not `default`).
    pub fn configured(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|(n, _)| n.contains(ip))
    }

    /// Whether identity headers from `ip` are believed.
    pub fn trusted(&self, ip: IpAddr) -> bool {
        self.of(ip).trust_identity
    }

    /// The group named `name`.
    pub fn by_name(&self, name: &str) -> Option<&PeerGroup> {
        self.groups.iter().find(|g| &*g.name == name)
    }

    /// Every group, `default` first.
    pub fn iter(&self) -> impl Iterator<Item = &PeerGroup> {
        self.groups.iter()
    }

    /// Every configured network with its group, in config order.
    pub fn networks(&self) -> impl Iterator<Item = (&Cidr, &PeerGroup)> {
        self.networks.iter().map(|(n, g)| (n, &self.groups[*g]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, nets: &[&str]) -> PeerGroupConfig {
        PeerGroupConfig {
            name: name.into(),
            addresses: nets.iter().map(|n| n.parse().expect("cidr")).collect(),
            trust_identity: false,
            international: false,
            numbering_profile: String::new(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn sources_map_to_their_group_and_the_rest_to_default() {
        let mut core = group("core", &["10.0.0.0/8"]);
        core.trust_identity = true;
        let mut gw = group("intl-gw", &["192.0.2.10", "2001:db8::/32"]);
        gw.international = true;
        gw.numbering_profile = "generic".into();
        let g = PeerGroups::new(&[core, gw], &[]).expect("valid");
        assert_eq!(&*g.of(ip("10.1.2.3")).name, "core");
        assert!(g.trusted(ip("10.1.2.3")));
        assert_eq!(&*g.of(ip("192.0.2.10")).name, "intl-gw");
        assert!(g.of(ip("2001:db8::5")).international);
        assert_eq!(
            g.of(ip("192.0.2.10")).profile.as_ref().map(|p| p.name()),
            Some("generic")
        );
        assert_eq!(&*g.of(ip("192.0.2.11")).name, DEFAULT_GROUP);
        assert!(!g.trusted(ip("192.0.2.11")));
        assert!(!g.configured(ip("192.0.2.11")));
        assert!(g.configured(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn trusted_peers_is_a_group_of_its_own() {
        let nets = ["192.0.2.0/24".parse().expect("cidr")];
        let g = PeerGroups::new(&[], &nets).expect("valid");
        let p = g.of(ip("192.0.2.7"));
        assert_eq!(&*p.name, TRUSTED_PEERS_GROUP);
        assert!(p.trust_identity);
        let clash = PeerGroups::new(&[group("core", &["192.0.2.7"])], &nets).unwrap_err();
        assert_eq!(clash.key, "proxy.trusted_peers");
        assert!(clash.message.contains("core"), "{clash}");
    }

    #[test]
    fn the_default_group_takes_properties_but_no_addresses() {
        let mut d = group("default", &[]);
        d.international = true;
        let g = PeerGroups::new(&[d], &[]).expect("valid");
        assert!(g.of(ip("203.0.113.1")).international);
        let e = PeerGroups::new(&[group("default", &["10.0.0.1"])], &[]).unwrap_err();
        assert_eq!(e.key, "peers[0].addresses");
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = PeerGroups::new(
            &[group("a", &["10.0.0.0/8"]), group("b", &["10.2.0.0/16"])],
            &[],
        )
        .unwrap_err();
        assert_eq!(e.key, "peers[1].addresses");
        assert!(e.message.contains("\"a\""), "{e}");
        let e = PeerGroups::new(&[group("a", &[]), group("a", &[])], &[]).unwrap_err();
        assert_eq!(e.key, "peers[1].name");
        let e = PeerGroups::new(&[group("bad name", &[])], &[]).unwrap_err();
        assert_eq!(e.key, "peers[0].name");
        let mut p = group("x", &[]);
        p.numbering_profile = "xx".into();
        let e = PeerGroups::new(&[p], &[]).unwrap_err();
        assert_eq!(e.key, "peers[0].numbering_profile");
        let bad: Result<PeerGroupConfig, _> =
            toml::from_str("name = \"x\"\naddresses = [\"10.0.0.300\"]");
        assert!(bad.is_err());
    }
}
