//! TQ2_0: ternary blocks of 256 values, 2 bits each, with one f16 scale; value =
//! `d · (c − 1)` for the code `c ∈ {0, 1, 2}` (3 is never written; [`crate::QMatrix::validate`]
//! rejects it).
//!
//! Layout (66 bytes, [`block_tq2_0` in ggml-common.h]):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..64 | `qs: [u8; 64]` | value `128·j + 32·l + m` is bits `2l..2l + 2` of `qs[32·j + m]` |
//! | 64..66 | `d: f16` | scale |
//!
//! So a 32-byte half `qs[32j..32j + 32]` holds four runs of 32 values (activation blocks
//! `4j..4j + 4`), value `m` of run `l` in byte `m` at bit `2l`: the kernels meet one
//! activation block per 2-bit plane.
//!
//! Quantization ([`quantize_row_tq2_0_ref`], gguf-py `TQ2_0.quantize_blocks`):
//! `d = max|x|` per block, `c = lroundf(x / d) + 1`.
//!
//! [`block_tq2_0` in ggml-common.h]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h
//! [`quantize_row_tq2_0_ref`]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c

use half::f16;

use super::round_half_away;
use crate::activations::QRow;

/// This format's block layout for the code shared with TQ1_0.
const LAYOUT: super::ternary_blocks::Layout = super::ternary_blocks::Layout {
    name: "tq2_0",
    block_bytes: BLOCK_BYTES,
    scale_at: 64,
    code,
};

/// Values per block (ggml's `QK_K`).
pub const BLOCK_LEN: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 66;

/// One TQ2_0 block, as ggml's `block_tq2_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockTQ2_0 {
    /// 2-bit codes: value `128·j + 32·l + m` is bits `2l..2l + 2` of `qs[32·j + m]`.
    pub qs: [u8; BLOCK_LEN / 4],
    /// Scale.
    pub d: f16,
}

const _: () = assert!(size_of::<BlockTQ2_0>() == BLOCK_BYTES);

impl BlockTQ2_0 {
    /// Reads a block from its little-endian bytes.
    pub fn from_bytes(b: &[u8; BLOCK_BYTES]) -> Self {
        Self {
            qs: std::array::from_fn(|i| b[i]),
            d: f16::from_le_bytes([b[64], b[65]]),
        }
    }

    /// The block's little-endian bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_BYTES] {
        let mut b = [0u8; BLOCK_BYTES];
        b[..64].copy_from_slice(&self.qs);
        b[64..].copy_from_slice(&self.d.to_le_bytes());
        b
    }

    /// Quantizes 256 values.
    pub fn quantize(x: &[f32; BLOCK_LEN]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
        let mut qs = [0u8; BLOCK_LEN / 4];
        for (i, &v) in x.iter().enumerate() {
            let c = (round_half_away(v * id) + 1) as u8 & 3;
            let (byte, shift) = position(i);
            qs[byte] |= c << shift;
        }
        Self {
            qs,
            d: f16::from_f32(amax),
        }
    }

    /// The code (0..=3) of value `i`.
    #[inline]
    pub fn code(&self, i: usize) -> u8 {
        code(&self.qs, i)
    }

    /// The 256 values this block stands for (a code 3 reads as `+2·d`, as in ggml).
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let d = self.d.to_f32();
        std::array::from_fn(|i| d * f32::from(self.code(i) as i8 - 1))
    }
}

/// Byte and bit position of value `i` (0..256) in `qs`.
#[inline]
fn position(i: usize) -> (usize, u32) {
    (32 * (i / 128) + i % 32, 2 * ((i / 32) % 4) as u32)
}

/// The code of value `i` (0..256) of a block's `qs`.
#[inline]
pub(crate) fn code(qs: &[u8], i: usize) -> u8 {
    let (byte, shift) = position(i);
    (qs[byte] >> shift) & 3
}

/// Quantizes `x` straight into ggml bytes (`x.len() / 256 * 66` bytes), as
/// `quantize_row_tq2_0_ref`.
///
/// # Panics
/// If `x.len()` is not a multiple of 256.
pub fn quantize_row_bytes(x: &[f32]) -> Vec<u8> {
    assert_eq!(x.len() % BLOCK_LEN, 0, "tq2_0 needs whole blocks of 256");
    x.as_chunks::<BLOCK_LEN>()
        .0
        .iter()
        .flat_map(|blk| BlockTQ2_0::quantize(blk).to_bytes())
        .collect()
}

/// Dequantizes ggml bytes (whole blocks) into `out` (`bytes.len() / 66 * 256` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(bytes: &[u8], out: &mut [f32]) {
    LAYOUT.dequantize_row(bytes, out);
}

/// Scalar reference: `Σ_j d_w · d_a,j · Σ_i (c_ji − 1) · q_a,ji` over the 32-value
/// activation blocks `j` of one weight row (`w`, ggml bytes; `d_w` the scale of the
/// 256-value block holding `j`) and one prepared activation row.
///
/// # Panics
/// If `w` is not `a.blocks() / 8` blocks long.
pub fn vec_dot(w: &[u8], a: QRow<'_>) -> f32 {
    LAYOUT.vec_dot(w, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_ggml_comment() {
        // Value 128·j + 32·l + m sits in qs[32j + m] at bit 2l.
        let mut qs = [0u8; 64];
        qs[32 + 5] = 0b10_00_01_00; // l = 1 → code 1, l = 3 → code 2
        assert_eq!(code(&qs, 128 + 32 + 5), 1);
        assert_eq!(code(&qs, 128 + 96 + 5), 2);
        assert_eq!(code(&qs, 128 + 5), 0);
    }
}
