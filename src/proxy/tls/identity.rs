//! A peer certificate's identity: its DNS subject alternative names, else its subject CN.

use rustls_pki_types::CertificateDer;
use x509_cert::der::{self, Decode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// Who is at the other end of an accepted connection, from its verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    /// The DNS SANs of the leaf certificate, else its CN; empty when the client presented no
    /// certificate (or one whose names cannot be read).
    pub names: Vec<String>,
    /// Whether one of `names` is in `tls.trusted_identities`: its P-Asserted-Identity is believed.
    pub trusted: bool,
}

impl PeerIdentity {
    /// The identity of a leaf certificate, matched (ASCII case-insensitively) against the trusted
    /// list. The chain must already have been verified (rustls did, against `tls.client_ca`).
    pub fn of(leaf: Option<&CertificateDer<'_>>, trusted_identities: &[String]) -> PeerIdentity {
        let names = leaf.map(certificate_identity).unwrap_or_default();
        let trusted = names
            .iter()
            .any(|n| trusted_identities.iter().any(|t| t.eq_ignore_ascii_case(n)));
        PeerIdentity { names, trusted }
    }

    /// The first name, for logs (`-` when none).
    pub fn display_name(&self) -> &str {
        self.names.first().map_or("-", String::as_str)
    }
}

/// The DNS SANs of a DER certificate, else its subject's common names; empty if unreadable.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok(cert) = Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let tbs = &cert.tbs_certificate;
    if let Ok(Some((_, san))) = tbs.get::<SubjectAltName>() {
        let dns: Vec<String> = san
            .0
            .iter()
            .filter_map(|g| match g {
                GeneralName::DnsName(n) => Some(n.as_str().to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        if !dns.is_empty() {
            return dns;
        }
    }
    let mut cns = Vec::new();
    for rdn in tbs.subject.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != der::oid::db::rfc4519::CN {
                continue;
            }
            let text = atv
                .value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                })
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::Ia5StringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                });
            if let Ok(t) = text {
                cns.push(t.to_ascii_lowercase());
            }
        }
    }
    cns
}
