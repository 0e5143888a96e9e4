//! The snapshot file format, version 2.
//!
//! ```text
//! offset size  field
//! 0      8     magic "FWBLKSNP"
//! 8      4     format version (2), little-endian like every integer here
//! 12     4     header length H (the body starts at H)
//! 16     8     snapshot version (the operator's, monotonically increasing)
//! 24     8     creation time, seconds since the Unix epoch
//! 32     1     kind: 0 base, 1 delta;  33 reserved (zero)
//! 34     2     prefix lengths: bit n set if a prefix entry of n digits exists;  36..40 zero
//! 40     8     base version (delta only, else 0)
//! 48     32    base blake3 hash (delta only, else zero)
//! 80     8     entries          88  8  exact entries     96  8  prefix entries
//! 104    32    entries per action: allow, tag, warn, block (4 x u64)
//! 136    8     tombstones
//! 144    8     body length B
//! 152    32    blake3 of the body
//! 184    8     FST offset F inside the body (the padding and leaves come first)
//! 192    ...   category table, then source table: u32 count, then per string u16 length + UTF-8
//!              value table: u32 count, then per value a u64 packed value (most frequent first)
//! H-32   32    blake3 of header bytes 0..H-32
//! H      B     the body (see [`super::body`]): zero padding to a 64-byte file offset, the
//!              leaves of dense allocation blocks, then from H+F an `fst` map from key (see
//!              [`super::key`]) to a value-table index or, for a dense block, a leaf reference
//! ```
//!
//! Version 1 (a per-number FST, no leaves) is refused with a hint to recompile: the body
//! layout and the key encoding both changed.
//!
//! The header hash catches a flipped byte in the header or string tables at open; the body
//! hash catches one in the FST. A detached ed25519 signature (`<file>.sig`, see
//! [`super::sign`]) covers the header bytes, which include the body hash: it authenticates
//! the whole file while signing never rewrites the big file.

use super::Action;

/// File magic.
pub const MAGIC: [u8; 8] = *b"FWBLKSNP";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
const FIXED_LEN: usize = 192;
const HASH_LEN: usize = 32;
/// Upper bound on the value table's length.
pub const MAX_VALUES: usize = 1 << 22;
/// Upper bound on a header (string tables included), to refuse absurd lengths early.
pub const MAX_HEADER_LEN: usize = 64 << 20;

/// Base snapshot or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Kind {
    /// A whole list.
    Base,
    /// Additions and removals (tombstones) on top of a base.
    Delta {
        /// The base's snapshot version.
        base_version: u64,
        /// The base's hash (see [`super::SnapshotInfo::hash`]).
        #[serde(serialize_with = "ser_hex")]
        base_hash: [u8; 32],
    },
}

fn ser_hex<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::hex::encode(h))
}

/// Entry counts stored in the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// All entries (tombstones included).
    pub entries: u64,
    /// Exact-number entries.
    pub exact: u64,
    /// Prefix (range) entries.
    pub prefixes: u64,
    /// Entries whose action is allow (tombstones excluded, as for the other actions).
    pub allow: u64,
    /// ... tag.
    pub tag: u64,
    /// ... warn.
    pub warn: u64,
    /// ... block.
    pub block: u64,
    /// Delta removals.
    pub tombstones: u64,
}

impl Counts {
    /// Counts one entry.
    pub fn add(&mut self, exact: bool, action: Action, tombstone: bool) {
        self.entries += 1;
        if exact {
            self.exact += 1;
        } else {
            self.prefixes += 1;
        }
        if tombstone {
            self.tombstones += 1;
            return;
        }
        match action {
            Action::Allow => self.allow += 1,
            Action::Tag => self.tag += 1,
            Action::Warn => self.warn += 1,
            Action::Block => self.block += 1,
        }
    }
}

/// A decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Snapshot version.
    pub version: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Base or delta.
    pub kind: Kind,
    /// Entry counts.
    pub counts: Counts,
    /// Bit `n` set when the snapshot holds a prefix entry of `n` digits (1..=15): lets a
    /// lookup skip the odd-digit peek at lengths where no prefix exists.
    pub prefix_lengths: u16,
    /// Body length in bytes.
    pub body_len: u64,
    /// Where the FST starts inside the body: after the padding and the leaves.
    pub fst_offset: u64,
    /// blake3 of the body.
    pub body_hash: [u8; 32],
    /// Category names, by id.
    pub categories: Vec<String>,
    /// Source names, by id.
    pub sources: Vec<String>,
    /// The value table: packed values ([`super::value::PackedValue::pack`]), most frequent
    /// first. An FST output is an index into it.
    pub values: Vec<u64>,
}

/// Why header bytes are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Shorter than a header.
    #[error("file is {actual} bytes, shorter than its header ({needed} bytes)")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },
    /// Not a fraudwall snapshot.
    #[error("bad magic: not a fraudwall snapshot")]
    BadMagic,
    /// A format this build does not read.
    #[error("format version {found}, this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
    },
    /// Structurally wrong or hash mismatch.
    #[error("header corrupt: {0}")]
    Corrupt(&'static str),
}

fn put_strings(out: &mut Vec<u8>, strings: &[String]) {
    out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    for s in strings {
        let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(b);
    }
}

impl Header {
    /// Serialises the header, header hash included.
    pub fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(FIXED_LEN + 64);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // patched below
        h.extend_from_slice(&self.version.to_le_bytes());
        h.extend_from_slice(&self.created.to_le_bytes());
        let (kind, base_version, base_hash) = match self.kind {
            Kind::Base => (0u8, 0u64, [0u8; 32]),
            Kind::Delta {
                base_version,
                base_hash,
            } => (1, base_version, base_hash),
        };
        h.push(kind);
        h.push(0);
        h.extend_from_slice(&self.prefix_lengths.to_le_bytes());
        h.extend_from_slice(&[0u8; 4]);
        h.extend_from_slice(&base_version.to_le_bytes());
        h.extend_from_slice(&base_hash);
        let c = &self.counts;
        for v in [
            c.entries,
            c.exact,
            c.prefixes,
            c.allow,
            c.tag,
            c.warn,
            c.block,
            c.tombstones,
            self.body_len,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&self.body_hash);
        h.extend_from_slice(&self.fst_offset.to_le_bytes());
        debug_assert_eq!(h.len(), FIXED_LEN);
        put_strings(&mut h, &self.categories);
        put_strings(&mut h, &self.sources);
        h.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for v in &self.values {
            h.extend_from_slice(&v.to_le_bytes());
        }
        let len = (h.len() + HASH_LEN) as u32;
        h[12..16].copy_from_slice(&len.to_le_bytes());
        let hash = blake3::hash(&h);
        h.extend_from_slice(hash.as_bytes());
        h
    }

    /// The header length claimed by the first 16 bytes, after checking magic and version.
    pub fn peek_len(b: &[u8]) -> Result<usize, HeaderError> {
        if b.len() < 16 {
            if b.len() >= 8 && b[..8] != MAGIC {
                return Err(HeaderError::BadMagic);
            }
            return Err(HeaderError::Truncated {
                needed: FIXED_LEN as u64,
                actual: b.len() as u64,
            });
        }
        if b[..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let found = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if found != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion { found });
        }
        let len = u32::from_le_bytes([b[12], b[13], b[14], b[15]]) as usize;
        if !(FIXED_LEN + 8 + HASH_LEN..=MAX_HEADER_LEN).contains(&len) {
            return Err(HeaderError::Corrupt("header length out of range"));
        }
        if b.len() < len {
            return Err(HeaderError::Truncated {
                needed: len as u64,
                actual: b.len() as u64,
            });
        }
        Ok(len)
    }

    /// Decodes and checks a header at the start of `b`; returns it and its length.
    pub fn decode(b: &[u8]) -> Result<(Header, usize), HeaderError> {
        let len = Header::peek_len(b)?;
        let (body, hash) = b[..len].split_at(len - HASH_LEN);
        if blake3::hash(body).as_bytes() != hash {
            return Err(HeaderError::Corrupt("header hash mismatch"));
        }
        let mut r = Reader { b: body, pos: 16 };
        let version = r.u64()?;
        let created = r.u64()?;
        let kind_bytes = r.take(8)?;
        let kind_byte = kind_bytes[0];
        let prefix_lengths = u16::from_le_bytes([kind_bytes[2], kind_bytes[3]]);
        let base_version = r.u64()?;
        let base_hash = r.hash()?;
        let kind = match kind_byte {
            0 => Kind::Base,
            1 => Kind::Delta {
                base_version,
                base_hash,
            },
            _ => return Err(HeaderError::Corrupt("unknown snapshot kind")),
        };
        let counts = Counts {
            entries: r.u64()?,
            exact: r.u64()?,
            prefixes: r.u64()?,
            allow: r.u64()?,
            tag: r.u64()?,
            warn: r.u64()?,
            block: r.u64()?,
            tombstones: r.u64()?,
        };
        let body_len = r.u64()?;
        let body_hash = r.hash()?;
        let fst_offset = r.u64()?;
        if fst_offset > body_len || fst_offset < super::body::padding(len) as u64 {
            return Err(HeaderError::Corrupt("FST offset outside the body"));
        }
        let categories = r.strings()?;
        let sources = r.strings()?;
        let n = r.take(4)?;
        let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
        if n > MAX_VALUES {
            return Err(HeaderError::Corrupt("value table too large"));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(r.u64()?);
        }
        if r.pos != body.len() {
            return Err(HeaderError::Corrupt(
                "trailing bytes after the string tables",
            ));
        }
        Ok((
            Header {
                version,
                created,
                kind,
                counts,
                prefix_lengths,
                body_len,
                fst_offset,
                body_hash,
                categories,
                sources,
                values,
            },
            len,
        ))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or(HeaderError::Corrupt("field runs past the header"))?;
        self.pos += n;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, HeaderError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn hash(&mut self) -> Result<[u8; 32], HeaderError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn strings(&mut self) -> Result<Vec<String>, HeaderError> {
        let s = self.take(4)?;
        let n = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        if n > super::value::MAX_STRINGS {
            return Err(HeaderError::Corrupt("string table too large"));
        }
        let mut out = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            let l = self.take(2)?;
            let l = u16::from_le_bytes([l[0], l[1]]) as usize;
            let bytes = self.take(l)?;
            let s = std::str::from_utf8(bytes)
                .map_err(|_| HeaderError::Corrupt("string table is not UTF-8"))?;
            out.push(s.to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: 7,
            created: 1_700_000_000,
            kind: Kind::Delta {
                base_version: 6,
                base_hash: [9; 32],
            },
            counts: Counts {
                entries: 3,
                exact: 2,
                prefixes: 1,
                block: 2,
                tombstones: 1,
                ..Counts::default()
            },
            prefix_lengths: 1 << 7,
            body_len: 1234,
            fst_offset: 64,
            body_hash: [5; 32],
            categories: vec!["loan".into(), "".into()],
            sources: vec!["police".into()],
            values: vec![3, 1 << 20],
        }
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let b = h.encode();
        let (d, len) = Header::decode(&b).unwrap();
        assert_eq!(d, h);
        assert_eq!(len, b.len());
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(Header::decode(&c).is_err(), "byte {i}");
        }
        for n in 0..b.len() {
            assert!(Header::decode(&b[..n]).is_err(), "truncated to {n}");
        }
    }
}
