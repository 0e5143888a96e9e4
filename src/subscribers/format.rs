//! The raw layer of the subscriber snapshot: number keys, bit-packed records, blocks and
//! the directory over them. The parent module describes the format as a whole; this one
//! holds the encoder ([`BlockEncoder`], [`DirectoryBuilder`]) and the decoder
//! ([`Layout`], [`answer_in_block`]), which never panics: every offset read from the body
//! is checked, and anything odd is an [`Odd`] (the caller fails open).

mod bits;
mod block;
mod directory;
mod keys;

pub(super) use block::{answer_in_block, block_entries, BlockEncoder, Record};
pub(super) use directory::{DirectoryBuilder, Layout, ALIGN};
pub(super) use keys::{Digits, Kind};

/// Something in the body is not what the encoder writes: the lookup fails open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Odd;
