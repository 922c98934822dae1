//! The plain float formats: F32, F16 and BF16 (one value per "block", little-endian).
//!
//! Their dot kernels read f32 activations unchanged. Conversions from f32 round to
//! nearest even, as numpy's `astype(np.float16)` and gguf-py's `BF16.quantize_blocks`
//! (ggml's `ggml_compute_fp32_to_bf16`, which also turns a NaN into a quiet NaN).

use half::{bf16, f16};

/// f32 → bf16 bits exactly as ggml / gguf-py: NaN made quiet, otherwise round to nearest
/// even.
pub fn f32_to_bf16(v: f32) -> bf16 {
    let n = v.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((n >> 16) | 64) as u16);
    }
    bf16::from_bits(((u64::from(n) + u64::from(0x7fff + ((n >> 16) & 1))) >> 16) as u16)
}

/// Writes `x` as little-endian f32 bytes.
///
/// # Panics
/// If `out.len() != 4 * x.len()`.
pub fn quantize_row_f32(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 4 * x.len(), "f32 byte lengths");
    for (v, o) in x.iter().zip(out.as_chunks_mut::<4>().0) {
        *o = v.to_le_bytes();
    }
}

/// Writes `x` as little-endian f16 bytes.
///
/// # Panics
/// If `out.len() != 2 * x.len()`.
pub fn quantize_row_f16(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * x.len(), "f16 byte lengths");
    for (v, o) in x.iter().zip(out.as_chunks_mut::<2>().0) {
        *o = f16::from_f32(*v).to_le_bytes();
    }
}

/// Writes `x` as little-endian bf16 bytes.
///
/// # Panics
/// If `out.len() != 2 * x.len()`.
pub fn quantize_row_bf16(x: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * x.len(), "bf16 byte lengths");
    for (v, o) in x.iter().zip(out.as_chunks_mut::<2>().0) {
        *o = f32_to_bf16(*v).to_le_bytes();
    }
}

/// Reads little-endian f32 bytes.
///
/// # Panics
/// If `bytes.len() != 4 * out.len()`.
pub fn dequantize_row_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 4 * out.len(), "f32 byte lengths");
    for (b, o) in bytes.as_chunks::<4>().0.iter().zip(out) {
        *o = f32::from_le_bytes(*b);
    }
}

/// Reads little-endian f16 bytes.
///
/// # Panics
/// If `bytes.len() != 2 * out.len()`.
pub fn dequantize_row_f16(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "f16 byte lengths");
    for (b, o) in bytes.as_chunks::<2>().0.iter().zip(out) {
        *o = f16::from_le_bytes(*b).to_f32();
    }
}

/// Reads little-endian bf16 bytes.
///
/// # Panics
/// If `bytes.len() != 2 * out.len()`.
pub fn dequantize_row_bf16(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "bf16 byte lengths");
    for (b, o) in bytes.as_chunks::<2>().0.iter().zip(out) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16);
    }
}

/// Scalar reference: `Σ_c w_c · x_c` in f32, in column order, for a row of f32 bytes.
///
/// # Panics
/// If `w.len() != 4 * x.len()`.
pub fn vec_dot_f32(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), 4 * x.len(), "f32 vec_dot lengths");
    w.as_chunks::<4>()
        .0
        .iter()
        .zip(x)
        .fold(0.0, |s, (b, x)| s + f32::from_le_bytes(*b) * x)
}

/// Scalar reference: `Σ_c w_c · x_c` in f32, in column order, for a row of f16 bytes.
///
/// # Panics
/// If `w.len() != 2 * x.len()`.
pub fn vec_dot_f16(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), 2 * x.len(), "f16 vec_dot lengths");
    w.as_chunks::<2>()
        .0
        .iter()
        .zip(x)
        .fold(0.0, |s, (b, x)| s + f16::from_le_bytes(*b).to_f32() * x)
}

/// Scalar reference: `Σ_c w_c · x_c` in f32, in column order, for a row of bf16 bytes.
///
/// # Panics
/// If `w.len() != 2 * x.len()`.
pub fn vec_dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    assert_eq!(w.len(), 2 * x.len(), "bf16 vec_dot lengths");
    w.as_chunks::<2>().0.iter().zip(x).fold(0.0, |s, (b, x)| {
        s + f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16) * x
    })
}
