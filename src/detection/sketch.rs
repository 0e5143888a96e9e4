//! The raw layer: a blocked count-min sketch with lazy exponential decay, a 128-bit
//! linear-counting cardinality sketch, and the hash they share.
//!
//! The count-min sketch answers "about how many calls did this caller make recently?" for
//! every caller in fixed memory. It is blocked: all four counters of a key live in one
//! 64-byte block (one cache miss per update), whose first word is the block's decay epoch;
//! a block is halved once per elapsed half-life when it is next touched (no global sweep).
//! Counters saturate at `u16::MAX` (never wrap).

/// A 64-bit mixer (the splitmix64 finalizer): good avalanche for integer keys.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Maps a 32-bit hash onto `0..n` (Lemire's multiply-shift).
#[inline]
pub(crate) fn reduce(h: u32, n: usize) -> usize {
    ((u64::from(h) * n as u64) >> 32) as usize
}

/// Counters per block after the epoch word.
const COUNTERS: u64 = 31;
/// Counters updated per key.
const DEPTH: u32 = 4;

/// One cache line: `[epoch, c1 .. c31]`.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
pub(crate) struct Block([u16; 32]);

/// Bytes per sketch block.
pub(crate) const BLOCK_BYTES: usize = std::mem::size_of::<Block>();

/// The blocked count-min sketch of one shard.
pub(crate) struct CountMin {
    blocks: Vec<Block>,
}

impl CountMin {
    /// A sketch of `blocks` blocks (at least one).
    pub(crate) fn new(blocks: usize) -> CountMin {
        CountMin {
            blocks: huge_vec(blocks.max(1), Block::default()),
        }
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK_BYTES
    }

    fn positions(h: u64) -> [usize; DEPTH as usize] {
        let mut p = [0usize; DEPTH as usize];
        for (i, slot) in p.iter_mut().enumerate() {
            slot.clone_from(&(1 + ((h >> (8 * i)) % COUNTERS) as usize));
        }
        p
    }

    /// The address of the key's block, for a prefetch hint taken before the shard lock.
    pub(crate) fn block_addr(&self, h: u64) -> usize {
        let i = reduce((h >> 32) as u32, self.blocks.len());
        self.blocks.as_ptr() as usize + i * BLOCK_BYTES
    }

    fn block(&mut self, h: u64, epoch: u16) -> &mut Block {
        let i = reduce((h >> 32) as u32, self.blocks.len());
        let b = &mut self.blocks[i];
        let age = epoch.wrapping_sub(b.0[0]);
        // A block from the "future" (a clock that went back) is left as it is.
        if age != 0 && age < u16::MAX / 2 {
            let shift = u32::from(age.min(16));
            for c in &mut b.0[1..] {
                *c = c.checked_shr(shift).unwrap_or(0);
            }
            b.0[0] = epoch;
        }
        b
    }

    /// Adds `n` to the key (hash `h`) and returns its estimate afterwards.
    pub(crate) fn add(&mut self, h: u64, n: u16, epoch: u16) -> u16 {
        let pos = Self::positions(h);
        let b = self.block(h, epoch);
        let mut est = u16::MAX;
        // Conservative update: raise only the counters at the minimum.
        for &p in &pos {
            est = est.min(b.0[p]);
        }
        let target = est.saturating_add(n);
        for &p in &pos {
            if b.0[p] < target {
                b.0[p] = target;
            }
        }
        target
    }

    /// The estimate for a key without adding.
    pub(crate) fn estimate(&mut self, h: u64, epoch: u16) -> u16 {
        let pos = Self::positions(h);
        let b = self.block(h, epoch);
        pos.iter().map(|&p| b.0[p]).min().unwrap_or(0)
    }
}

/// A vector of `n` copies of `fill` whose buffer asks the kernel for transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`, before the first touch), so random lookups over tens of MiB
/// do not each pay a TLB miss. Only advice: without THP the vector is an ordinary one.
pub(crate) fn huge_vec<T: Copy>(n: usize, fill: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_ptr() as usize;
        let first = start.next_multiple_of(PAGE);
        let end = (start + n * std::mem::size_of::<T>()) & !(PAGE - 1);
        if end > first {
            // SAFETY: advice on whole pages inside this vector's own allocation; madvise
            // with MADV_HUGEPAGE changes no content and no mapping the program relies on.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(n, fill);
    v
}

/// Asks the CPU to fetch the cache line at `addr` (a hint: never dereferenced, never
/// faults), so the misses of one call overlap instead of queueing behind the shard locks.
#[inline]
pub(crate) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is part of SSE, which every x86_64 CPU has; a prefetch reads
    // nothing into the program and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The linear-counting estimate of the distinct items hashed into a 128-bit map
/// (`-m ln(z/m)`; saturates at about 620 when the map is full).
pub(crate) fn distinct_estimate(bits: u128) -> f32 {
    let m = 128.0f32;
    let zeros = bits.count_zeros() as f32;
    if zeros == 0.0 {
        return m * m.ln();
    }
    m * (m / zeros).ln()
}

/// The bit a callee sets in the distinct-callee map.
#[inline]
pub(crate) fn callee_bit(callee: u64) -> u128 {
    1u128 << (mix64(callee ^ 0x5bd1_e995) & 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_min_counts_decays_and_saturates() {
        let mut s = CountMin::new(4);
        let h = mix64(8613800000001);
        for i in 1..=5 {
            assert_eq!(s.add(h, 1, 0), i);
        }
        assert_eq!(s.estimate(h, 0), 5);
        // One half-life later: halved; sixteen later: gone.
        assert_eq!(s.estimate(h, 1), 2);
        assert_eq!(s.estimate(h, 17), 0);
        // A clock that goes back leaves the block alone.
        s.add(h, 3, 17);
        assert_eq!(s.estimate(h, 5), 3);
        for _ in 0..10 {
            s.add(h, u16::MAX / 4, 17);
        }
        assert_eq!(s.estimate(h, 17), u16::MAX);
    }

    #[test]
    fn count_min_never_underestimates() {
        let mut s = CountMin::new(16);
        let keys: Vec<u64> = (0..2000u64).map(|k| mix64(k + 1)).collect();
        for (i, &h) in keys.iter().enumerate() {
            for _ in 0..(i % 5) {
                s.add(h, 1, 0);
            }
        }
        for (i, &h) in keys.iter().enumerate() {
            assert!(usize::from(s.estimate(h, 0)) >= i % 5);
        }
    }

    #[test]
    fn linear_counting_is_close_for_small_sets() {
        let mut bits = 0u128;
        for c in 0..40u64 {
            bits |= callee_bit(8613900000000 + c * 7919);
        }
        let e = distinct_estimate(bits);
        assert!((30.0..=52.0).contains(&e), "{e}");
        assert_eq!(distinct_estimate(0), 0.0);
        assert!(distinct_estimate(callee_bit(5)) < 1.1);
        assert!(distinct_estimate(u128::MAX) > 600.0);
    }
}
