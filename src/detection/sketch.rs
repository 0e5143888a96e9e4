//! The raw layer: a blocked count-min sketch with lazy exponential decay, a 128-bit
//! linear-counting cardinality sketch, and the hash they share.
//!
//! The count-min sketch answers "about how many calls did this caller make recently?" for
//! every caller in fixed memory. It is blocked: all four counters of a key live in one
//! 64-byte block (one cache miss per update), whose first lane is the block's decay epoch;
//! a block is halved once per elapsed half-life when it is next written (no global sweep).
//! Counters saturate at `u16::MAX` (never wrap).
//!
//! The sketch takes no lock. A block is eight relaxed atomic words, read (the epoch word and
//! the key's words; all eight when a halving is due) and written back word by word with
//! plain stores, never a read-modify-write instruction: on x86 a
//! locked instruction is a full barrier that would stop the processor from overlapping one
//! call's cache miss with the next call's work. The price is that two threads updating the
//! *same block at the same instant* can lose one of the two increments (a lost race
//! underestimates a key by one call, at odds of about one in a million per call at a
//! hundred thousand calls a second over the default sketch's 262,144 blocks). Nothing
//! else can go wrong: each word is written whole, so a reader sees every counter as some
//! value it held.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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

/// Counters per block after the epoch lane.
const COUNTERS: u64 = 31;
/// Counters updated per key.
const DEPTH: usize = 4;

/// One cache line: eight words of four 16-bit lanes, lane 0 the epoch.
#[derive(Default)]
#[repr(C, align(64))]
pub(crate) struct Block([AtomicU64; 8]);

/// Bytes per sketch block.
pub(crate) const BLOCK_BYTES: usize = std::mem::size_of::<Block>();

/// A block's words as read: lane `i` is bits `16 * (i % 4)..` of word `i / 4`.
#[derive(Clone, Copy)]
struct Words([u64; 8]);

impl Words {
    #[inline]
    fn lane(&self, i: usize) -> u16 {
        (self.0[i / 4] >> (16 * (i % 4))) as u16
    }

    #[inline]
    fn set_lane(&mut self, i: usize, v: u16) {
        let sh = 16 * (i % 4);
        let w = &mut self.0[i / 4];
        *w = (*w & !(0xffff << sh)) | (u64::from(v) << sh);
    }
}

/// What an update saw and left: the key's estimate before and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub before: u16,
    pub after: u16,
}

/// The blocked count-min sketch: one allocation, aligned to 2 MiB so that transparent
/// huge pages cover it whole (every call touches a random block of it: on 4 KiB pages
/// nearly every call would also pay a TLB miss, a costly two-level walk in a VM).
pub(crate) struct CountMin {
    blocks: HugeBlocks,
}

/// Huge-page size and alignment of the sketch.
const HUGE: usize = 2 << 20;

/// `len` zeroed blocks at a 2 MiB-aligned address, advised as huge pages before the first
/// touch.
struct HugeBlocks {
    ptr: std::ptr::NonNull<Block>,
    len: usize,
}

// SAFETY: the blocks are atomics, shared by reference like a `Box<[Block]>`.
unsafe impl Send for HugeBlocks {}
// SAFETY: as above: `Block` is `Sync`.
unsafe impl Sync for HugeBlocks {}

impl HugeBlocks {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(len * BLOCK_BYTES, HUGE)
            .expect("a sketch size validated by DetectionConfig (at most 4 GiB)")
    }

    fn new(len: usize) -> HugeBlocks {
        let len = len.max(1);
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw.cast::<Block>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        // SAFETY: advice on this allocation's own pages (it starts on a 2 MiB boundary);
        // MADV_HUGEPAGE changes no content and no mapping the program relies on.
        unsafe {
            libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE);
        }
        // SAFETY: `len` blocks fit in the allocation; all-zero bytes are valid atomics.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, len) };
        HugeBlocks { ptr, len }
    }
}

impl std::ops::Deref for HugeBlocks {
    type Target = [Block];
    fn deref(&self) -> &[Block] {
        // SAFETY: `len` initialized blocks live at `ptr` until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeBlocks {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; blocks need no drop.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len)) }
    }
}

impl CountMin {
    /// A sketch of `blocks` blocks (at least one).
    pub(crate) fn new(blocks: usize) -> CountMin {
        CountMin {
            blocks: HugeBlocks::new(blocks),
        }
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.len() * BLOCK_BYTES
    }

    /// The key's four counters (lanes 1 to 31) from the hash's low four bytes, all in one
    /// multiply: each byte goes to its own 16-bit lane, times 31 (at most 7,905: no carry
    /// into the next lane), and the high byte of each lane is the byte mapped onto `0..31`
    /// (Lemire's multiply-shift; as even as `% 31` of a byte: 8 or 9 byte values a
    /// counter).
    #[inline]
    fn positions(h: u64) -> [usize; DEPTH] {
        let b = h & 0xffff_ffff;
        let lanes =
            (b & 0xff) | ((b & 0xff00) << 8) | ((b & 0xff_0000) << 16) | ((b & 0xff00_0000) << 24);
        let m = (lanes * COUNTERS) >> 8;
        let at = |i: u32| 1 + ((m >> (16 * i)) & 0xff) as usize;
        [at(0), at(1), at(2), at(3)]
    }

    #[inline]
    fn block_of(&self, h: u64) -> &Block {
        &self.blocks[reduce((h >> 32) as u32, self.blocks.len())]
    }

    /// The block's words at `epoch` (every counter halved once per elapsed epoch; a block
    /// from the "future", after a clock went back, is taken as it is) and whether they
    /// changed.
    #[inline]
    fn read(b: &Block, epoch: u16) -> (Words, bool) {
        let mut w = Words([0; 8]);
        for (v, a) in w.0.iter_mut().zip(&b.0) {
            *v = a.load(Relaxed);
        }
        let age = epoch.wrapping_sub(w.lane(0));
        if age == 0 || age >= u16::MAX / 2 {
            return (w, false);
        }
        // Halve all 31 counters at once, four lanes to a word.
        let shift = u32::from(age.min(16));
        let keep = (0xffff_u64 >> shift.min(16)) * 0x0001_0001_0001_0001;
        for v in &mut w.0 {
            *v = v.checked_shr(shift).unwrap_or(0) & keep;
        }
        w.set_lane(0, epoch);
        (w, true)
    }

    /// Lane `p` of a block as it is now (no decay applied).
    #[inline]
    fn lane_of(b: &Block, p: usize) -> u16 {
        (b.0[(p / 4) % 8].load(Relaxed) >> (16 * (p % 4))) as u16
    }

    /// Is the block at `epoch` already (no halving due, or a block from the "future")?
    #[inline]
    fn current(b: &Block, epoch: u16) -> bool {
        let age = epoch.wrapping_sub(b.0[0].load(Relaxed) as u16);
        age == 0 || age >= u16::MAX / 2
    }

    /// Adds `n` to the key (hash `h`): its estimate before and after.
    #[inline(always)]
    pub(crate) fn add(&self, h: u64, n: u16, epoch: u16) -> Counted {
        let pos = Self::positions(h);
        let b = self.block_of(h);
        if !Self::current(b, epoch) {
            return Self::add_decayed(b, pos, n, epoch);
        }
        // The common case: read the key's four lanes, write back only those raised (a word
        // holding two of them is read again after the first store: program order).
        let before = pos.iter().map(|&p| Self::lane_of(b, p)).min().unwrap_or(0);
        let after = before.saturating_add(n);
        for &p in &pos {
            // `% 8`: a position is below 32; this spares a bounds check.
            let a = &b.0[(p / 4) % 8];
            let w = a.load(Relaxed);
            let sh = 16 * (p % 4);
            if ((w >> sh) as u16) < after {
                a.store((w & !(0xffff << sh)) | (u64::from(after) << sh), Relaxed);
            }
        }
        Counted { before, after }
    }

    /// [`CountMin::add`] to a block whose halving is due: all its counters decoded, halved
    /// and written back.
    #[inline(never)]
    fn add_decayed(b: &Block, pos: [usize; DEPTH], n: u16, epoch: u16) -> Counted {
        let (mut w, decayed) = Self::read(b, epoch);
        let before = pos.iter().map(|&p| w.lane(p)).min().unwrap_or(0);
        let after = before.saturating_add(n);
        // Conservative update: raise only the counters below the new minimum.
        let mut dirty = if decayed { 0xff_u8 } else { 0 };
        for &p in &pos {
            if w.lane(p) < after {
                w.set_lane(p, after);
                dirty |= 1 << (p / 4);
            }
        }
        // Only the words that changed, each with a plain store.
        for (i, (v, a)) in w.0.iter().zip(&b.0).enumerate() {
            if dirty & (1 << i) != 0 {
                a.store(*v, Relaxed);
            }
        }
        Counted { before, after }
    }

    /// The estimate for a key without adding (and without writing anything).
    #[inline]
    pub(crate) fn estimate(&self, h: u64, epoch: u16) -> u16 {
        let pos = Self::positions(h);
        let b = self.block_of(h);
        if Self::current(b, epoch) {
            return pos.iter().map(|&p| Self::lane_of(b, p)).min().unwrap_or(0);
        }
        let (w, _) = Self::read(b, epoch);
        pos.iter().map(|&p| w.lane(p)).min().unwrap_or(0)
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
        let s = CountMin::new(4);
        let h = mix64(8613800000001);
        for i in 1..=5 {
            assert_eq!(
                s.add(h, 1, 0),
                Counted {
                    before: i - 1,
                    after: i
                }
            );
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
        let s = CountMin::new(16);
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
