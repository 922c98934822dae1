//! The ggml block formats and bitnet.cpp's I2_S: block types, quantize and dequantize
//! matching ggml's `quantize_row_*_ref` and gguf-py's `gguf/quants.py` byte for byte
//! (I2_S: bitnet.cpp's `quantize_i2_s`), and the scalar reference dot product of each
//! format against prepared activations.
//!
//! The scalar dot products are the reference every SIMD path is tested against; they are
//! written for clarity (exact integer block sums, then one f32 multiply-add per block).
//! The ternary formats ([`tq1_0`], [`tq2_0`], [`i2_s`]) store codes `c ∈ {0, 1, 2}` for
//! the weights `c − 1`; their dot products sum `(c − 1)·q` per 32-value activation block
//! whatever the size of the weight block (256 values for TQ1_0/TQ2_0, one scale for the
//! whole tensor for I2_S).

pub mod float;
pub mod i2_s;
pub mod q4_0;
pub mod q4_1;
pub mod q8_0;
mod ternary_blocks;
pub mod tq1_0;
pub mod tq2_0;

/// `roundf` (round half away from zero) of `v` as an integer, exact for `|v| < 2^31`.
///
/// `f32::round` is a libm call on baseline x86_64 (no SSE4.1); this is branch-free and
/// vectorizes. `v - trunc(v)` is exact, so the comparison with 0.5 is too.
#[inline]
pub(crate) fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// The f16 stored at `bytes[at..at + 2]` as f32.
#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn round_half_away_matches_f32_round() {
        let cases = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            126.5,
            -126.5,
            127.00001,
            -127.00001,
            3.4999998,
            1e-40,
            -1e-40,
            8388607.5,
            8388608.0,
        ];
        for v in cases {
            assert_eq!(round_half_away(v), v.round() as i32, "v = {v:e}");
        }
        let mut s = 0x1234_5678u32;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = (s as i32 as f32) / (1u32 << 24) as f32;
            assert_eq!(round_half_away(v), v.round() as i32, "v = {v:e}");
        }
    }
}
