//! TQ1_0: ternary blocks of 256 values packed five to a byte in base 3 (1.6875 bits per
//! value) with one f16 scale; value = `d · (t − 1)` for the trit `t ∈ {0, 1, 2}`.
//!
//! Layout (54 bytes, [`block_tq1_0` in ggml-common.h]):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0..48 | `qs: [u8; 48]` | trit `n` (0..5) of `qs[m]`: value `32·n + m` for `m < 32`, `160 + 16·n + (m − 32)` for `m ≥ 32` |
//! | 48..52 | `qh: [u8; 4]` | trit `n` (0..4) of `qh[j]`: value `240 + 4·n + j` |
//! | 52..54 | `d: f16` | scale |
//!
//! A byte does not store its trits in base 3 directly but as the fixed-point fraction
//! `⌈256 · t₀t₁t₂t₃t₄ / 243⌉` (the trits read as a base-3 number, most significant
//! first), so trit `n` is the integer part of three times the fraction left after
//! dropping `n` trits: `((b · 3ⁿ mod 256) · 3) >> 8`. Every byte decodes to trits in
//! 0..=2, so TQ1_0 has no invalid codes.
//!
//! Quantization ([`quantize_row_tq1_0_ref`], gguf-py `TQ1_0.quantize_blocks`):
//! `d = max|x|` per block, `t = lroundf(x / d) + 1`.
//!
//! [`block_tq1_0` in ggml-common.h]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-common.h
//! [`quantize_row_tq1_0_ref`]: https://github.com/ggml-org/llama.cpp/blob/master/ggml/src/ggml-quants.c

use half::f16;

use super::round_half_away;
use crate::activations::QRow;

/// This format's block layout for the code shared with TQ2_0.
const LAYOUT: super::ternary_blocks::Layout = super::ternary_blocks::Layout {
    name: "tq1_0",
    block_bytes: BLOCK_BYTES,
    scale_at: 52,
    code,
};

/// Values per block (ggml's `QK_K`).
pub const BLOCK_LEN: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 54;

/// One TQ1_0 block, as ggml's `block_tq1_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockTQ1_0 {
    /// Five trits per byte (values 0..240).
    pub qs: [u8; 48],
    /// Four trits per byte (values 240..256).
    pub qh: [u8; 4],
    /// Scale.
    pub d: f16,
}

const _: () = assert!(size_of::<BlockTQ1_0>() == BLOCK_BYTES);

/// `3ⁿ mod 256` for `n` in 0..5.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Trit `n` of the packed byte `b`.
#[inline]
pub(crate) fn trit(b: u8, n: usize) -> u8 {
    ((u16::from(b.wrapping_mul(POW3[n])) * 3) >> 8) as u8
}

/// Byte and trit index of value `i` (0..256) in the 52 packed bytes (`qs` then `qh`).
#[inline]
fn position(i: usize) -> (usize, usize) {
    match i {
        0..160 => (i % 32, i / 32),
        160..240 => (32 + (i - 160) % 16, (i - 160) / 16),
        _ => (48 + (i - 240) % 4, (i - 240) / 4),
    }
}

/// The trit (0..=2) of value `i` (0..256) of a block's 52 packed bytes.
#[inline]
pub(crate) fn code(packed: &[u8], i: usize) -> u8 {
    let (byte, n) = position(i);
    trit(packed[byte], n)
}

/// Packs up to five trits, first most significant, as ggml's fixed-point byte.
fn pack(trits: &[u8]) -> u8 {
    let mut q = trits.iter().fold(0u16, |q, &t| q * 3 + u16::from(t));
    for _ in trits.len()..5 {
        q *= 3;
    }
    // Ceiling division: 243 = 3⁵.
    (q * 256).div_ceil(243) as u8
}

impl BlockTQ1_0 {
    /// Reads a block from its little-endian bytes.
    pub fn from_bytes(b: &[u8; BLOCK_BYTES]) -> Self {
        Self {
            qs: std::array::from_fn(|i| b[i]),
            qh: std::array::from_fn(|i| b[48 + i]),
            d: f16::from_le_bytes([b[52], b[53]]),
        }
    }

    /// The block's little-endian bytes.
    pub fn to_bytes(&self) -> [u8; BLOCK_BYTES] {
        let mut b = [0u8; BLOCK_BYTES];
        b[..48].copy_from_slice(&self.qs);
        b[48..52].copy_from_slice(&self.qh);
        b[52..].copy_from_slice(&self.d.to_le_bytes());
        b
    }

    /// Quantizes 256 values.
    pub fn quantize(x: &[f32; BLOCK_LEN]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
        let t: [u8; BLOCK_LEN] = std::array::from_fn(|i| (round_half_away(x[i] * id) + 1) as u8);
        let mut packed = [0u8; 52];
        for (byte, p) in packed.iter_mut().enumerate() {
            let (first, stride, n) = match byte {
                0..32 => (byte, 32, 5),
                32..48 => (160 + byte - 32, 16, 5),
                _ => (240 + byte - 48, 4, 4),
            };
            let trits: [u8; 5] = std::array::from_fn(|k| t[(first + k * stride).min(255)]);
            *p = pack(&trits[..n]);
        }
        Self {
            qs: std::array::from_fn(|i| packed[i]),
            qh: std::array::from_fn(|i| packed[48 + i]),
            d: f16::from_f32(amax),
        }
    }

    /// The trit (0..=2) of value `i`.
    pub fn code(&self, i: usize) -> u8 {
        let (byte, n) = position(i);
        trit(
            if byte < 48 {
                self.qs[byte]
            } else {
                self.qh[byte - 48]
            },
            n,
        )
    }

    /// The 256 values this block stands for.
    pub fn dequantize(&self) -> [f32; BLOCK_LEN] {
        let d = self.d.to_f32();
        std::array::from_fn(|i| d * f32::from(self.code(i) as i8 - 1))
    }
}

/// Quantizes `x` straight into ggml bytes (`x.len() / 256 * 54` bytes), as
/// `quantize_row_tq1_0_ref`.
///
/// # Panics
/// If `x.len()` is not a multiple of 256.
pub fn quantize_row_bytes(x: &[f32]) -> Vec<u8> {
    assert_eq!(x.len() % BLOCK_LEN, 0, "tq1_0 needs whole blocks of 256");
    x.as_chunks::<BLOCK_LEN>()
        .0
        .iter()
        .flat_map(|blk| BlockTQ1_0::quantize(blk).to_bytes())
        .collect()
}

/// Dequantizes ggml bytes (whole blocks) into `out` (`bytes.len() / 54 * 256` values).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(bytes: &[u8], out: &mut [f32]) {
    LAYOUT.dequantize_row(bytes, out);
}

/// Scalar reference: `Σ_j d_w · d_a,j · Σ_i (t_ji − 1) · q_a,ji` over the 32-value
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
    fn every_packing_of_five_trits_decodes_back() {
        for v in 0..243u16 {
            let trits: [u8; 5] = std::array::from_fn(|k| (v / 3u16.pow(4 - k as u32) % 3) as u8);
            let b = pack(&trits);
            for (n, &t) in trits.iter().enumerate() {
                assert_eq!(trit(b, n), t, "{trits:?} trit {n}");
            }
        }
        for v in 0..81u16 {
            let trits: [u8; 4] = std::array::from_fn(|k| (v / 3u16.pow(3 - k as u32) % 3) as u8);
            let b = pack(&trits);
            for (n, &t) in trits.iter().enumerate() {
                assert_eq!(trit(b, n), t, "{trits:?} trit {n}");
            }
        }
    }

    #[test]
    fn every_byte_decodes_to_valid_trits() {
        for b in 0..=255u8 {
            assert!((0..5).all(|n| trit(b, n) <= 2));
        }
    }
}
