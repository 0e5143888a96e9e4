//! The directory over the blocks: built by [`DirectoryBuilder`], checked and read through
//! [`Layout`], whose per-node [`Guess`]es let a lookup fetch its block with the node.

use super::block::block_reach;
use super::Odd;
use std::ops::Range;

/// Blocks per directory node.
const NODE_BLOCKS: usize = 16;
/// Bytes per directory node: the data offset of block 0 (u64), then for blocks 1 to 15
/// their first key less the node's first key (u32, `u32::MAX`: no such block), then their
/// start less the node's data offset (u32).
const NODE_LEN: usize = 128;
const HEADS_AT: usize = 8;
const STARTS_AT: usize = HEADS_AT + 4 * (NODE_BLOCKS - 1);
/// Sections after the data start on a cache line (counted from the start of the file).
pub(in crate::subscribers) const ALIGN: usize = 64;

/// Builds the directory while blocks are written: the top keys and the nodes.
#[derive(Default)]
pub(in crate::subscribers) struct DirectoryBuilder {
    pub top: Vec<u64>,
    pub nodes: Vec<u8>,
    in_node: usize,
    base: u64,
}

impl DirectoryBuilder {
    /// Notes a block whose first key is `first` (ascending) at data offset `at`.
    pub fn block(&mut self, first: u64, at: u64) {
        let node_first = self.top.last().copied().unwrap_or(0);
        let head = first - node_first;
        let start = at - self.base;
        if self.in_node == 0
            || self.in_node == NODE_BLOCKS
            || head >= u64::from(u32::MAX)
            || start > u64::from(u32::MAX)
        {
            self.top.push(first);
            let mut node = [0u8; NODE_LEN];
            node[..8].copy_from_slice(&at.to_le_bytes());
            node[HEADS_AT..STARTS_AT].fill(0xff);
            self.nodes.extend_from_slice(&node);
            self.base = at;
            self.in_node = 1;
            return;
        }
        let node = self.nodes.len() - NODE_LEN;
        let i = self.in_node - 1;
        let h = node + HEADS_AT + 4 * i;
        self.nodes[h..h + 4].copy_from_slice(&(head as u32).to_le_bytes());
        let s = node + STARTS_AT + 4 * i;
        self.nodes[s..s + 4].copy_from_slice(&(start as u32).to_le_bytes());
        self.in_node += 1;
    }
}

/// Cache lines of a block fetched at once: a typical block (64 subscribers with two entries
/// each) is about 600 bytes, and the record is found only after the key section is read,
/// so fetching the block's lines together costs one memory round trip instead of two.
const PREFETCH_LINES: usize = 12;

/// Asks the CPU to bring the first [`PREFETCH_LINES`] cache lines of `bytes` in.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for at in (0..bytes.len().min(PREFETCH_LINES * 64)).step_by(64) {
        // SAFETY: a prefetch is a hint: it reads nothing into the program and never faults;
        // the address is inside `bytes` anyway. SSE is part of the x86_64 baseline.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Asks the CPU to bring in every cache line that holds a byte of `items`.
#[inline]
fn prefetch_all<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = items.as_ptr().cast::<u8>();
        let start = bytes as usize;
        let end = start + std::mem::size_of_val(items);
        let mut line = start & !63;
        while line < end {
            // SAFETY: as in `prefetch`: a hint that never faults. The address is the byte of
            // `items` that starts this line (the first byte for the first line).
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let at = line.max(start) - start;
                _mm_prefetch::<_MM_HINT_T0>(bytes.add(at).cast());
            }
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, Odd> {
    Ok(u64::from_le_bytes(
        b.get(at..at + 8).ok_or(Odd)?.try_into().map_err(|_| Odd)?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, Odd> {
    Ok(u32::from_le_bytes(
        b.get(at..at + 4).ok_or(Odd)?.try_into().map_err(|_| Odd)?,
    ))
}

/// Where the sections are in the body, and the top level of the directory (copied out at
/// open: a few hundred kilobytes at 100M subscribers, which stay in cache).
#[derive(Debug)]
pub(in crate::subscribers) struct Layout {
    pub data: Range<usize>,
    pub nodes: Range<usize>,
    pub top: Vec<u64>,
    /// Every [`SUMMARY_STEP`]th top key: searched first, so a lookup touches a few cache
    /// lines of `top` instead of one per step of a binary search over all of it.
    summary: Vec<u64>,
    /// Per node (and one past the last): where its data starts, in cache lines, and how far
    /// around the line a key is predicted at its block may lie ([`Guess`]).
    guesses: Vec<Guess>,
    /// The body's address modulo a cache line, when the guesses were made: lines are the
    /// machine's, not the file's.
    skew: usize,
}

/// Top keys per summary key.
const SUMMARY_STEP: usize = 16;

/// Most cache lines a predicted window may span; a node whose blocks cannot be predicted
/// within that (a gap in its numbers, a long block) is looked up through its node first.
const GUESS_LINES: i64 = 20;

/// The directory's prediction for one node: numbers are allocated in dense ranges, so
/// within a node a key's data position is nearly linear in the key. From the node's first
/// key and line and the next node's, a key's line is interpolated; every block of the node
/// reads within `lo..=hi` lines of the line predicted for any key it could hold (from the
/// block's first line to the end of its key section, and of the key's record: checked at
/// open against every block and record, so the bound holds whatever the numbers). A lookup then
/// fetches the block's lines together with the node, in one memory round trip, instead of
/// reading the node first. 8 bytes per node (781 KB at 100M subscribers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guess {
    /// The node's first data line (its block 0's offset, in the machine's cache lines).
    line: u32,
    /// Lines before the predicted one where a block may start ([`NO_GUESS`]: none; look
    /// the node up first).
    lo: i16,
    /// Lines after the predicted one where a block may end.
    hi: i16,
}

const NO_GUESS: i16 = i16::MIN;

/// The line predicted for `key` in a node whose keys start at `k0` and data at line `l0`,
/// the next node's at `k1` and `l1` (`k0 <= key < k1`, `l0 <= l1`). Monotone in `key`.
#[inline]
fn predict(key: u64, k0: u64, k1: u64, l0: u32, l1: u32) -> i64 {
    let f = (key - k0) as f64 / (k1 - k0) as f64;
    i64::from(l0) + (f * f64::from(l1 - l0)) as i64
}

impl Layout {
    /// Checks the directory of `body` (data, nodes and top, of the given sizes): every
    /// node's offsets inside the data and ascending, every key ascending. Blocks are
    /// checked when read.
    pub fn check(body: &[u8], data_len: u64, node_count: u64) -> Result<Layout, String> {
        let n = usize::try_from(node_count).map_err(|_| "node count too large")?;
        let data_len = usize::try_from(data_len).map_err(|_| "data too large")?;
        let nodes_len = n.checked_mul(NODE_LEN).ok_or("node count too large")?;
        let top_len = n * 8;
        let want = data_len
            .checked_add(nodes_len)
            .and_then(|l| l.checked_add(top_len))
            .ok_or("sections too large")?;
        if want != body.len() {
            return Err(format!(
                "the sections ({data_len} + {nodes_len} + {top_len} bytes) do not fill the body ({} bytes)",
                body.len()
            ));
        }
        if (data_len == 0) != (n == 0) {
            return Err("data without a directory, or a directory without data".into());
        }
        let nodes = data_len..data_len + nodes_len;
        let top: Vec<u64> = body[nodes.end..]
            .chunks_exact(8)
            .map(|c| u64_at(c, 0).unwrap_or(0))
            .collect();
        if top.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the top-level keys are not ascending".into());
        }
        let mut prev_end = 0u64;
        for i in 0..n {
            let node = &body[nodes.start + i * NODE_LEN..nodes.start + (i + 1) * NODE_LEN];
            let base = u64_at(node, 0).map_err(|_| "node")?;
            if (i == 0 && base != 0) || (i > 0 && base <= prev_end) {
                return Err(format!("node {i}: its data offset {base} is out of order"));
            }
            let end = match i + 1 < n {
                true => u64_at(body, nodes.start + (i + 1) * NODE_LEN).map_err(|_| "node")?,
                false => data_len as u64,
            };
            if base >= end {
                return Err(format!("node {i}: no data"));
            }
            let (mut last_head, mut last_start, mut ended) = (0u64, 0u64, false);
            for b in 0..NODE_BLOCKS - 1 {
                let head = u32_at(node, HEADS_AT + 4 * b).map_err(|_| "node")?;
                let start = u64::from(u32_at(node, STARTS_AT + 4 * b).map_err(|_| "node")?);
                if head == u32::MAX {
                    ended = true;
                    continue;
                }
                let head = u64::from(head);
                if ended
                    || head <= last_head
                    || start <= last_start
                    || base + start >= end
                    || (i + 1 < n && top[i] + head >= top[i + 1])
                {
                    return Err(format!("node {i}: block {} is out of order", b + 1));
                }
                (last_head, last_start) = (head, start);
            }
            prev_end = base;
        }
        let skew = body.as_ptr() as usize % 64;
        let guesses = guesses(body, data_len, &nodes, &top, skew);
        Ok(Layout {
            data: 0..data_len,
            nodes,
            summary: top.iter().step_by(SUMMARY_STEP).copied().collect(),
            top,
            guesses,
            skew,
        })
    }

    /// The node whose key range holds `key`, or `None` below the first key.
    #[inline]
    fn node_of(&self, key: u64) -> Result<Option<usize>, Odd> {
        let s = self.summary.partition_point(|&t| t <= key);
        if s == 0 {
            return Ok(None);
        }
        let from = (s - 1) * SUMMARY_STEP;
        // The span's guesses are read next: fetch them while the span is searched.
        if let Some(g) = self
            .guesses
            .get(from..(from + SUMMARY_STEP + 1).min(self.guesses.len()))
        {
            prefetch_all(g);
        }
        let span = self
            .top
            .get(from..(from + SUMMARY_STEP).min(self.top.len()))
            .ok_or(Odd)?;
        // The span's first key is at most `key`, so the node is in the span.
        Ok(Some(from + span.partition_point(|&t| t <= key).max(1) - 1))
    }

    /// The data bytes predicted to hold `key`'s block in node `i` (already checked to lie
    /// inside the data), or `None` where the node has no guess.
    #[inline]
    fn window(&self, i: usize, key: u64) -> Option<Range<usize>> {
        let g = *self.guesses.get(i)?;
        if g.lo == NO_GUESS {
            return None;
        }
        let next = self.guesses.get(i + 1)?;
        let k1 = *self.top.get(i + 1)?;
        let p = predict(key, self.top[i], k1, g.line, next.line);
        let from = ((p + i64::from(g.lo)) * 64 - self.skew as i64).max(0) as usize;
        let to = ((p + i64::from(g.hi) + 1) * 64 - self.skew as i64).max(0) as usize;
        Some(from.min(self.data.end)..to.min(self.data.end))
    }

    /// Whether the predicted window of `key`'s node holds what a lookup of `key` reads in
    /// the block the node names: its start through its key section, and through the key's
    /// record (`None`: the node has no guess, or no block holds the key).
    #[cfg(test)]
    pub fn covers(&self, body: &[u8], key: u64) -> Option<bool> {
        let i = self.node_of(key).ok()??;
        let w = self.window(i, key)?;
        let (block, first) = self.block(body, key).ok()??;
        let start = block.as_ptr() as usize - body.as_ptr() as usize;
        let mut end = None;
        let keys_end = block_reach(block, first, |k, record_end| {
            if k == key {
                end = Some(record_end);
            }
        })
        .ok()?;
        let end = start + end.unwrap_or(keys_end).max(keys_end);
        // Lines, not bytes: the window is whole lines.
        let line = |at: usize| (at + self.skew) / 64;
        Some(line(w.start) <= line(start) && line(end - 1) < line(w.end - 1) + 1)
    }

    /// Nodes with a guess, of all nodes.
    #[cfg(test)]
    pub fn guessed(&self) -> (usize, usize) {
        let n = self.top.len();
        let g = self.guesses[..n]
            .iter()
            .filter(|g| g.lo != NO_GUESS)
            .count();
        (g, n)
    }

    /// The block that would hold `key` and its first key, or `None` below the first key.
    #[inline]
    pub fn block<'b>(&self, body: &'b [u8], key: u64) -> Result<Option<(&'b [u8], u64)>, Odd> {
        let Some(i) = self.node_of(key)? else {
            return Ok(None);
        };
        let at = self.nodes.start + i * NODE_LEN;
        // The predicted block lines travel with the node's (asked for first).
        let predicted = match self.window(i, key).and_then(|w| body.get(w)) {
            Some(block) => {
                if let Some(node) = body.get(at..at + NODE_LEN + 8) {
                    prefetch_all(node);
                }
                prefetch_all(block);
                true
            }
            None => false,
        };
        let node = body.get(at..at + NODE_LEN).ok_or(Odd)?;
        let base = u64_at(node, 0)?;
        let node_end = match i + 1 < self.top.len() {
            true => u64_at(body, at + NODE_LEN)?,
            false => self.data.end as u64,
        };
        let delta = key - self.top[i];
        // Blocks 1.. whose first key is at most the key: the last of them holds it.
        let mut b = 0usize;
        while b < NODE_BLOCKS - 1 {
            let h = u32_at(node, HEADS_AT + 4 * b)?;
            if h == u32::MAX || u64::from(h) > delta {
                break;
            }
            b += 1;
        }
        let (start, first) = match b {
            0 => (base, self.top[i]),
            _ => (
                base + u64::from(u32_at(node, STARTS_AT + 4 * (b - 1))?),
                self.top[i] + u64::from(u32_at(node, HEADS_AT + 4 * (b - 1))?),
            ),
        };
        let next = match b < NODE_BLOCKS - 1 {
            true => match u32_at(node, HEADS_AT + 4 * b)? {
                u32::MAX => node_end,
                _ => base + u64::from(u32_at(node, STARTS_AT + 4 * b)?),
            },
            false => node_end,
        };
        let (start, next) = (
            usize::try_from(start).map_err(|_| Odd)?,
            usize::try_from(next).map_err(|_| Odd)?,
        );
        if start >= next || next > self.data.end {
            return Err(Odd);
        }
        let block = body.get(start..next).ok_or(Odd)?;
        if !predicted {
            prefetch(block);
        }
        Ok(Some((block, first)))
    }
}

impl Layout {
    /// Directory nodes.
    pub fn node_count(&self) -> usize {
        self.top.len()
    }

    /// Calls `f` with each block of node `node`, in order (an odd offset: `Odd`).
    pub fn node_blocks(
        &self,
        body: &[u8],
        node: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<(), Odd> {
        let at = self.nodes.start + node * NODE_LEN;
        let n = body.get(at..at + NODE_LEN).ok_or(Odd)?;
        let base = u64_at(n, 0)?;
        let end = match node + 1 < self.top.len() {
            true => u64_at(body, at + NODE_LEN)?,
            false => self.data.end as u64,
        };
        let slice = |from: u64, to: u64| -> Result<&[u8], Odd> {
            let from = usize::try_from(from).map_err(|_| Odd)?;
            let to = usize::try_from(to).map_err(|_| Odd)?;
            body.get(from..to.min(self.data.end)).ok_or(Odd)
        };
        let mut start = base;
        for b in 0..NODE_BLOCKS - 1 {
            if u32_at(n, HEADS_AT + 4 * b)? == u32::MAX {
                break;
            }
            let next = base + u64::from(u32_at(n, STARTS_AT + 4 * b)?);
            f(slice(start, next)?);
            start = next;
        }
        f(slice(start, end)?);
        Ok(())
    }
}

/// Makes the per-node [`Guess`]es of a checked directory: for each block of a node, the
/// lines it spans against the lines predicted for its smallest and largest possible key.
fn guesses(
    body: &[u8],
    data_len: usize,
    nodes: &Range<usize>,
    top: &[u64],
    skew: usize,
) -> Vec<Guess> {
    let n = top.len();
    let line = |offset: u64| (offset + skew as u64) / 64;
    let base = |i: usize| -> u64 {
        match i < n {
            true => u64_at(body, nodes.start + i * NODE_LEN).unwrap_or(0),
            false => data_len as u64,
        }
    };
    // Lines past u32 (data over 256 GB): no guesses at all.
    if line(data_len as u64) > u64::from(u32::MAX) {
        return vec![
            Guess {
                line: 0,
                lo: NO_GUESS,
                hi: 0,
            };
            n + 1
        ];
    }
    let mut out: Vec<Guess> = (0..=n)
        .map(|i| Guess {
            line: line(base(i)) as u32,
            lo: NO_GUESS,
            hi: 0,
        })
        .collect();
    // The last node's keys have no upper bound to interpolate to: it has no guess.
    for i in 0..n.saturating_sub(1) {
        let node = &body[nodes.start + i * NODE_LEN..nodes.start + (i + 1) * NODE_LEN];
        let (k0, k1, b0) = (top[i], top[i + 1], base(i));
        let (l0, l1) = (out[i].line, out[i + 1].line);
        // Blocks as (first key, start), then the node's end.
        let mut blocks = vec![(k0, b0)];
        for b in 0..NODE_BLOCKS - 1 {
            let head = u32_at(node, HEADS_AT + 4 * b).unwrap_or(u32::MAX);
            if head == u32::MAX {
                break;
            }
            let start = u64::from(u32_at(node, STARTS_AT + 4 * b).unwrap_or(0));
            blocks.push((k0 + u64::from(head), b0 + start));
        }
        blocks.push((k1, base(i + 1)));
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        let mut odd = false;
        for w in blocks.windows(2) {
            let ((first, start), (next_first, end)) = (w[0], w[1]);
            // A key of this block (first..next_first) reads from the block's first line to
            // the end of the key section, and to the end of its record if it has one.
            let p = |k: u64| predict(k, k0, k1, l0, l1);
            let p_low = p(first);
            lo = lo.min(line(start) as i64 - p(next_first - 1));
            let Some(block) = body.get(start as usize..end as usize) else {
                odd = true;
                break;
            };
            let line_of = |at: usize| line(start + at.saturating_sub(1) as u64) as i64;
            let reach = block_reach(block, first, |k, record_end| {
                hi = hi.max(line_of(record_end) - p(k));
            });
            match reach {
                Ok(keys_end) => hi = hi.max(line_of(keys_end) - p_low),
                Err(Odd) => {
                    odd = true;
                    break;
                }
            }
        }
        if !odd && hi - lo < GUESS_LINES {
            out[i].lo = lo as i16;
            out[i].hi = hi as i16;
        }
    }
    out
}
