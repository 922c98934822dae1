//! Q8_0: blocks of 32 int8 values with one f16 scale; value = `d · q`.
//!
//! Layout (34 bytes, [`block_q8_0` in ggml-common.h]):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..2 | `d: f16` | scale |
//! | 2..34 | `qs: [i8; 32]` | values, in order |
//!
//! Quantization ([`quantize_row_q8_0_ref`], gguf-py `Q8_0.quantize_blocks`):
//! `d = max|x| / 127`, `q = roundf(x / d)` (half away from zero), `d` stored as f16.
//!
//! [`block_q8_0` in ggml-common.h]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h
//! [`quantize_row_q8_0_ref`]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c

use half::f16;

use super::{f16_at, round_half_away};
use crate::activations::QRow;

/// Values per block.
pub const BLOCK_LEN: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 34;

/// One Q8_0 block, as ggml's `block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; BLOCK_LEN],
}

const _: () = assert!(size_of::<BlockQ8_0>() == BLOCK_BYTES);

impl BlockQ8_0 {
    /// Reads a block from its little-endian bytes.
    pub fn from_bytes(b: &[u8; BLOCK_BYTES]) -> Self {
        Self {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: std::array::from_fn(|i| b[2 + i] as i8),
        }
    }

    /// The block's little-endian bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_BYTES] {
        let mut b = [0u8; BLOCK_BYTES];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, q) in b[2..].iter_mut().zip(self.qs) {
            *o = q as u8;
        }
        b
    }

    /// Quantizes 32 values.
    pub fn quantize(x: &[f32; BLOCK_LEN]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        Self {
            d: f16::from_f32(d),
            qs: x.map(|v| round_half_away(v * id) as i8),
        }
    }

    /// The 32 values this block stands for.
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let d = self.d.to_f32();
        self.qs.map(|q| d * f32::from(q))
    }
}

/// Quantizes `x` (a multiple of 32 values) into `out` (`x.len() / 32` blocks).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row(x: &[f32], out: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), out.len() * BLOCK_LEN, "q8_0::quantize_row lengths");
    for (blk, o) in x.as_chunks::<BLOCK_LEN>().0.iter().zip(out) {
        *o = BlockQ8_0::quantize(blk);
    }
}

/// Dequantizes `blocks` into `out` (`blocks.len() * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(blocks: &[BlockQ8_0], out: &mut [f32]) {
    assert_eq!(
        out.len(),
        blocks.len() * BLOCK_LEN,
        "q8_0::dequantize_row lengths"
    );
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(BLOCK_LEN)) {
        o.copy_from_slice(&b.dequantize());
    }
}

/// Quantizes `x` straight into ggml bytes (`x.len() / 32 * 34` bytes).
///
/// # Panics
/// If the lengths do not match.
pub fn quantize_row_bytes(x: &[f32], out: &mut [u8]) {
    assert_eq!(
        x.len() / BLOCK_LEN * BLOCK_BYTES,
        out.len(),
        "q8_0 byte lengths"
    );
    assert_eq!(x.len() % BLOCK_LEN, 0, "q8_0 needs whole blocks");
    let blocks = x.as_chunks::<BLOCK_LEN>().0;
    for (blk, o) in blocks.iter().zip(out.as_chunks_mut::<BLOCK_BYTES>().0) {
        *o = BlockQ8_0::quantize(blk).to_bytes();
    }
}

/// Dequantizes ggml bytes (whole blocks) into `out` (`bytes.len() / 34 * 32` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row_bytes(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(
        bytes.len() / BLOCK_BYTES * BLOCK_LEN,
        out.len(),
        "q8_0 byte lengths"
    );
    for (b, o) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_LEN))
    {
        let d = f16_at(b, 0);
        for (o, &q) in o.iter_mut().zip(&b[2..]) {
            *o = d * f32::from(q as i8);
        }
    }
}

/// Scalar reference: `Σ_j d_w,j · d_a,j · Σ_i q_w,ji · q_a,ji` over the blocks of one
/// weight row (`w`, ggml bytes) and one prepared activation row.
///
/// # Panics
/// If `w` is not `a.blocks()` blocks long.
pub fn vec_dot(w: &[u8], a: QRow<'_>) -> f32 {
    assert_eq!(w.len(), a.blocks() * BLOCK_BYTES, "q8_0::vec_dot lengths");
    let mut sum = 0.0f32;
    for (j, b) in w.chunks_exact(BLOCK_BYTES).enumerate() {
        let ab = a.block(j);
        let p: i32 = b[2..]
            .iter()
            .zip(ab.qs)
            .map(|(&w, a)| i32::from(w as i8) * i32::from(a))
            .sum();
        sum += f16_at(b, 0) * ab.d * p as f32;
    }
    sum
}
