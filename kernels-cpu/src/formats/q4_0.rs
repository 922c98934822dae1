//! Q4_0: blocks of 32 4-bit values with one f16 scale; value = `d · (q − 8)`.
//!
//! Layout (18 bytes, [`block_q4_0` in ggml-common.h]):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | `d: f16` | scale |
//! | 2..18 | `qs: [u8; 16]` | byte `i` holds value `i` in its low nibble and value `i + 16` in its high nibble |
//!
//! Quantization ([`quantize_row_q4_0_ref`], gguf-py `Q4_0.quantize_blocks`): `max` is the
//! value of largest magnitude (first one on ties), `d = max / −8`,
//! `q = min(15, trunc(x / d + 8.5))`.
//!
//! [`block_q4_0` in ggml-common.h]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h
//! [`quantize_row_q4_0_ref`]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c

use half::f16;

use super::f16_at;
use crate::activations::QRow;

/// Values per block.
pub const BLOCK_LEN: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 18;

/// One Q4_0 block, as ggml's `block_q4_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Nibbles: low nibble of byte `i` is value `i`, high nibble is value `i + 16`.
    pub qs: [u8; BLOCK_LEN / 2],
}

const _: () = assert!(size_of::<BlockQ4_0>() == BLOCK_BYTES);

impl BlockQ4_0 {
    /// Reads a block from its little-endian bytes.
    pub fn from_bytes(b: &[u8; BLOCK_BYTES]) -> Self {
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: std::array::from_fn(|i| b[2 + i]),
        }
    }

    /// The block's little-endian bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_BYTES] {
        let mut b = [0u8; BLOCK_BYTES];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..].copy_from_slice(&self.qs);
        b
    }

    /// Quantizes 32 values.
    pub fn quantize(x: &[f32; BLOCK_LEN]) -> Self {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| ((v * id + 8.5) as u8).min(15);
        Self {
            d: f16::from_f32(d),
            qs: std::array::from_fn(|i| q(x[i]) | (q(x[i + BLOCK_LEN / 2]) << 4)),
        }
    }

    /// The unsigned nibble (0..=15) of value `i`.
    #[inline]
    pub fn nibble(&self, i: usize) -> u8 {
        nibble(&self.qs, i)
    }

    /// The 32 values this block stands for.
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let d = self.d.to_f32();
        std::array::from_fn(|i| d * f32::from(self.nibble(i) as i8 - 8))
    }
}

/// Value `i` (0..32) of a 16-byte nibble array, as ggml packs it.
#[inline]
pub(crate) fn nibble(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0x0F
    } else {
        qs[i - 16] >> 4
    }
}

/// Quantizes `x` (a multiple of 32 values) into `out` (`x.len() / 32` blocks).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row(x: &[f32], out: &mut [BlockQ4_0]) {
    assert_eq!(x.len(), out.len() * BLOCK_LEN, "q4_0::quantize_row lengths");
    for (blk, o) in x.as_chunks::<BLOCK_LEN>().0.iter().zip(out) {
        *o = BlockQ4_0::quantize(blk);
    }
}

/// Dequantizes `blocks` into `out` (`blocks.len() * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(blocks: &[BlockQ4_0], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * BLOCK_LEN,
        "q4_0::dequantize_row lengths"
    );
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(BLOCK_LEN)) {
        o.copy_from_slice(&b.dequantize());
    }
}

/// Quantizes `x` straight into ggml bytes (`x.len() / 32 * 18` bytes).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row_bytes(x: &[f32], out: &mut [u8]) {
    assert_eq!(x.len() % BLOCK_LEN, 0, "q4_0 needs whole blocks");
    assert_eq!(
        x.len() / BLOCK_LEN * BLOCK_BYTES,
        out.len(),
        "q4_0 byte lengths"
    );
    let blocks = x.as_chunks::<BLOCK_LEN>().0;
    for (blk, o) in blocks.iter().zip(out.as_chunks_mut::<BLOCK_BYTES>().0) {
        *o = BlockQ4_0::quantize(blk).to_bytes();
    }
}

/// Dequantizes ggml bytes (whole blocks) into `out` (`bytes.len() / 18 * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row_bytes(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        bytes.len() / BLOCK_BYTES * BLOCK_LEN,
        out.len(),
        "q4_0 byte lengths"
    );
    for (b, o) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_LEN))
    {
        let d = f16_at(b, 0);
        for (i, o) in o.iter_mut().enumerate() {
            *o = d * f32::from(nibble(&b[2..], i) as i8 - 8);
        }
    }
}

/// Scalar reference: `Σ_j d_w,j · d_a,j · Σ_i (q_w,ji − 8) · q_a,ji` over the blocks of
/// one weight row (`w`, ggml bytes) and one prepared activation row.
///
/// # Panics
/// If `w` is not `a.blocks()` blocks long.
pub fn vec_dot(w: &[u8], a: QRow<'_>) -> f32 {
    assert_eq!(w.len(), a.blocks() * BLOCK_BYTES, "q4_0::vec_dot lengths");
    let mut sum = 0.0f32;
    for (j, b) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let ab = a.block(j);
        let p: i32 = (0..BLOCK_LEN)
            .map(|i| (i32::from(nibble(&b[2..], i)) - 8) * i32::from(ab.qs[i]))
            .sum();
        sum += f16_at(b, 0) * ab.d * p as f32;
    }
    sum
}
