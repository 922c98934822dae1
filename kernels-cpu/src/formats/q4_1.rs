//! Q4_1: blocks of 32 4-bit values with an f16 scale and an f16 minimum;
//! value = `d · q + m`.
//!
//! Layout (20 bytes, [`block_q4_1` in ggml-common.h]):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | `d: f16` | scale |
//! | 2..4 | `m: f16` | minimum |
//! | 4..20 | `qs: [u8; 16]` | byte `i` holds value `i` in its low nibble and value `i + 16` in its high nibble |
//!
//! Quantization ([`quantize_row_q4_1_ref`], gguf-py `Q4_1.quantize_blocks`):
//! `d = (max − min) / 15`, `q = min(15, trunc((x − min) / d + 0.5))`, `m = min`.
//!
//! The dot product against int8 activations (`x ≈ d_a · q_a`, block sum `S = Σ q_a`) is
//! `d · d_a · Σ q·q_a + m · d_a · S`: ggml's `q8_1` carries `d_a · S` for the second term.
//!
//! [`block_q4_1` in ggml-common.h]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h
//! [`quantize_row_q4_1_ref`]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c

use half::f16;

use super::{f16_at, q4_0::nibble};
use crate::activations::QRow;

/// Values per block.
pub const BLOCK_LEN: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 20;

/// One Q4_1 block, as ggml's `block_q4_1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum (value of nibble 0).
    pub m: f16,
    /// Nibbles: low nibble of byte `i` is value `i`, high nibble is value `i + 16`.
    pub qs: [u8; BLOCK_LEN / 2],
}

const _: () = assert!(size_of::<BlockQ4_1>() == BLOCK_BYTES);

impl BlockQ4_1 {
    /// Reads a block from its little-endian bytes.
    pub fn from_bytes(b: &[u8; BLOCK_BYTES]) -> Self {
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs: std::array::from_fn(|i| b[4 + i]),
        }
    }

    /// The block's little-endian bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_BYTES] {
        let mut b = [0u8; BLOCK_BYTES];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        b[2..4].copy_from_slice(&self.m.to_le_bytes());
        b[4..].copy_from_slice(&self.qs);
        b
    }

    /// Quantizes 32 values.
    pub fn quantize(x: &[f32; BLOCK_LEN]) -> Self {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in x {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| (((v - min) * id + 0.5) as u8).min(15);
        Self {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
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
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        std::array::from_fn(|i| d * f32::from(self.nibble(i)) + m)
    }
}

/// Quantizes `x` (a multiple of 32 values) into `out` (`x.len() / 32` blocks).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row(x: &[f32], out: &mut [BlockQ4_1]) {
    assert_eq!(x.len(), out.len() * BLOCK_LEN, "q4_1::quantize_row lengths");
    for (blk, o) in x.as_chunks::<BLOCK_LEN>().0.iter().zip(out) {
        *o = BlockQ4_1::quantize(blk);
    }
}

/// Dequantizes `blocks` into `out` (`blocks.len() * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(blocks: &[BlockQ4_1], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * BLOCK_LEN,
        "q4_1::dequantize_row lengths"
    );
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(BLOCK_LEN)) {
        o.copy_from_slice(&b.dequantize());
    }
}

/// Quantizes `x` straight into ggml bytes (`x.len() / 32 * 20` bytes).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row_bytes(x: &[f32], out: &mut [u8]) {
    assert_eq!(x.len() % BLOCK_LEN, 0, "q4_1 needs whole blocks");
    assert_eq!(
        x.len() / BLOCK_LEN * BLOCK_BYTES,
        out.len(),
        "q4_1 byte lengths"
    );
    let blocks = x.as_chunks::<BLOCK_LEN>().0;
    for (blk, o) in blocks.iter().zip(out.as_chunks_mut::<BLOCK_BYTES>().0) {
        *o = BlockQ4_1::quantize(blk).to_bytes();
    }
}

/// Dequantizes ggml bytes (whole blocks) into `out` (`bytes.len() / 20 * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row_bytes(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        bytes.len() / BLOCK_BYTES * BLOCK_LEN,
        out.len(),
        "q4_1 byte lengths"
    );
    for (b, o) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_LEN))
    {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (i, o) in o.iter_mut().enumerate() {
            *o = d * f32::from(nibble(&b[4..], i)) + m;
        }
    }
}

/// Scalar reference: `Σ_j (d_w,j · d_a,j · Σ_i q_w,ji · q_a,ji + m_j · d_a,j · S_j)` over
/// the blocks of one weight row (`w`, ggml bytes) and one prepared activation row, where
/// `S_j = Σ_i q_a,ji`.
///
/// # Panics
/// If `w` is not `a.blocks()` blocks long.
pub fn vec_dot(w: &[u8], a: QRow<'_>) -> f32 {
    assert_eq!(w.len(), a.blocks() * BLOCK_BYTES, "q4_1::vec_dot lengths");
    let mut sum = 0.0f32;
    for (j, b) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let ab = a.block(j);
        let p: i32 = (0..BLOCK_LEN)
            .map(|i| i32::from(nibble(&b[4..], i)) * i32::from(ab.qs[i]))
            .sum();
        sum += f16_at(b, 0) * ab.d * p as f32 + f16_at(b, 2) * ab.d * ab.sum as f32;
    }
    sum
}
