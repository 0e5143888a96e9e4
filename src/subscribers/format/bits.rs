//! Bits and varints: the LSB-first bit fields of the records and the varints of the key
//! sections.

use super::Odd;

/// Appends LSB-first bit fields to a byte vector.
#[derive(Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    bits: u32,
    pub(super) total: u64,
}

impl BitWriter {
    /// Appends the low `n` bits of `v` (`n <= 56`).
    pub(super) fn put(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 56 && (n == 64 || v >> n == 0));
        self.acc |= v << self.bits;
        self.bits += n;
        self.total += u64::from(n);
        while self.bits >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }
    pub(super) fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Reads LSB-first bit fields from `buf`, between bit `pos` and bit `end`.
pub(super) struct BitReader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: u64,
    pub(super) end: u64,
}

impl BitReader<'_> {
    /// The next `n` bits (`n <= 56`), or `Odd` past the end.
    #[inline]
    pub(super) fn get(&mut self, n: u32) -> Result<u64, Odd> {
        let next = self.pos + u64::from(n);
        if next > self.end {
            return Err(Odd);
        }
        let byte = (self.pos / 8) as usize;
        let shift = (self.pos % 8) as u32;
        let word = match self.buf.get(byte..byte + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().map_err(|_| Odd)?),
            None => {
                let mut w = [0u8; 8];
                let tail = self.buf.get(byte..).ok_or(Odd)?;
                w[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(w)
            }
        };
        self.pos = next;
        Ok((word >> shift) & ((1u64 << n) - 1))
    }
    pub(super) fn left(&self) -> u64 {
        self.end - self.pos
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(super) fn get_varint(buf: &[u8], at: &mut usize) -> Result<u64, Odd> {
    // Key deltas and record lengths are nearly always one byte.
    let first = *buf.get(*at).ok_or(Odd)?;
    if first < 0x80 {
        *at += 1;
        return Ok(u64::from(first));
    }
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or(Odd)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Odd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_varints_round_trip_at_every_offset() {
        let mut w = BitWriter::default();
        let fields: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let n = (i % 56 + 1) as u32;
                ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) & ((1 << n) - 1), n)
            })
            .collect();
        for &(v, n) in &fields {
            w.put(v, n);
        }
        let total = w.total;
        let bytes = w.finish();
        let mut r = BitReader {
            buf: &bytes,
            pos: 0,
            end: total,
        };
        for &(v, n) in &fields {
            assert_eq!(r.get(n), Ok(v));
        }
        assert_eq!(r.get(1), Err(Odd));
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        let mut at = 0;
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(get_varint(&out, &mut at), Ok(v));
        }
        assert_eq!(get_varint(&out, &mut at), Err(Odd));
        assert_eq!(get_varint(&[0xff; 11], &mut 0), Err(Odd));
    }
}
