//! I2_S: bitnet.cpp's ternary format, 2 bits per value with one f32 scale for the whole
//! tensor; value = `scale · (c − 1)` for the code `c ∈ {0, 1, 2}` (3 is never written;
//! [`crate::QMatrix::validate`] rejects it).
//!
//! Layout ([`quantize_i2_s` in bitnet.cpp's ggml-bitnet-mad.cpp], the x86 layout; GGUF
//! type 36 in bitnet.cpp's ggml fork): the tensor's `n` values, row after row, in groups
//! of 128 ([`BlockI2S`], 32 bytes), then a 32-byte tail:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | `32·g + m` (m < 32) | group `g` | value `128·g + 32·l + m` is bits `6 − 2l..8 − 2l` of the byte (`l` = 0..4, first run in the top bits) |
//! | `n/4 .. n/4 + 4` | `scale: f32` | per-tensor scale (little-endian) |
//! | `n/4 + 4 .. n/4 + 32` | padding | |
//!
//! Rows must hold whole groups (`cols` a multiple of 128), so row `r` is the bytes
//! `r·cols/4 .. (r + 1)·cols/4`. A group has the shape of half a TQ2_0 block with the
//! 2-bit planes in the opposite order.
//!
//! Quantization (`quantize_i2_s`): `scale = max|x|` over the tensor, `c = 1` if
//! `|x| < 1e-6`, else 2 for positive and 0 for negative `x`: the input is expected to be
//! ternary already (`{−s, 0, s}`), as BitNet's training leaves it.
//!
//! [`quantize_i2_s` in bitnet.cpp's ggml-bitnet-mad.cpp]: https://github.com/microsoft/BitNet/blob/main/src/ggml-bitnet-mad.cpp

use crate::{KernelError, WeightFormat, activations::QRow};

/// Values per group.
pub const BLOCK_LEN: usize = 128;
/// Bytes per group.
pub const BLOCK_BYTES: usize = 32;
/// Bytes of the tail after the packed values (the first 4 hold the f32 scale).
pub const TAIL_BYTES: usize = 32;

/// One I2_S group of 128 values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockI2S {
    /// 2-bit codes: value `32·l + m` is bits `6 − 2l..8 − 2l` of `qs[m]`.
    pub qs: [u8; BLOCK_BYTES],
}

const _: () = assert!(size_of::<BlockI2S>() == BLOCK_BYTES);

impl BlockI2S {
    /// The code (0..=3) of value `i` (0..128).
    #[inline]
    pub fn code(&self, i: usize) -> u8 {
        code(&self.qs, i)
    }
}

/// The code of value `i` of the packed bytes (`i` counted from the first group).
#[inline]
pub(crate) fn code(packed: &[u8], i: usize) -> u8 {
    let (g, l, m) = (i / BLOCK_LEN, (i / 32) % 4, i % 32);
    (packed[BLOCK_BYTES * g + m] >> (6 - 2 * l)) & 3
}

/// Bytes of an I2_S tensor of `n` values: `n / 4` packed bytes and the 32-byte tail.
pub fn tensor_bytes(n: usize) -> usize {
    n / 4 + TAIL_BYTES
}

/// The scale stored in the tail of a whole tensor's bytes of `n` values.
///
/// # Errors
/// [`KernelError::DataSize`] if `bytes` is not [`tensor_bytes`]`(n)` long,
/// [`KernelError::NonFiniteTensorScale`] if the scale is NaN or infinite.
pub fn tensor_scale(bytes: &[u8], rows: usize, cols: usize) -> Result<f32, KernelError> {
    let n = rows.checked_mul(cols).ok_or(KernelError::TooLarge {
        format: WeightFormat::I2S,
        rows,
        cols,
    })?;
    if bytes.len() != tensor_bytes(n) {
        return Err(KernelError::DataSize {
            format: WeightFormat::I2S,
            rows,
            cols,
            expected: tensor_bytes(n),
            got: bytes.len(),
        });
    }
    let at = n / 4;
    let scale = f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if !scale.is_finite() {
        return Err(KernelError::NonFiniteTensorScale {
            format: WeightFormat::I2S,
            bits: scale.to_bits(),
        });
    }
    Ok(scale)
}

/// Quantizes a `rows × cols` tensor (row-major) into I2_S bytes with its tail, as
/// bitnet.cpp's `quantize_i2_s` (x86 layout).
///
/// # Panics
/// If `x.len() != rows · cols` or `cols` is not a multiple of 128.
pub fn quantize_tensor(x: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    assert_eq!(x.len(), rows * cols, "i2_s::quantize_tensor lengths");
    assert_eq!(
        cols % BLOCK_LEN,
        0,
        "i2_s needs cols to be a multiple of 128"
    );
    let max = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let scale = max as f32;
    let mut out = vec![0u8; tensor_bytes(x.len())];
    for (i, &v) in x.iter().enumerate() {
        let v = f64::from(v);
        let c: u8 = if v.abs() < 1e-6 {
            1
        } else if v * max > 0.0 {
            2
        } else {
            0
        };
        let (g, l, m) = (i / BLOCK_LEN, (i / 32) % 4, i % 32);
        out[BLOCK_BYTES * g + m] |= c << (6 - 2 * l);
    }
    let at = x.len() / 4;
    out[at..at + 4].copy_from_slice(&scale.to_le_bytes());
    out
}

/// Dequantizes the packed bytes of whole groups (one or more rows, no tail) into `out`
/// (`bytes.len() * 4` values) with the tensor's `scale` (a code 3 reads as `+2·scale`,
/// as the generic decoding `scale · (c − 1)`).
///
/// # Panics
/// If the lengths do not match.
pub fn dequantize_row(bytes: &[u8], scale: f32, out: &mut [f32]) {
    assert_eq!(bytes.len() * 4, out.len(), "i2_s byte lengths");
    assert_eq!(bytes.len() % BLOCK_BYTES, 0, "i2_s needs whole groups");
    for (i, o) in out.iter_mut().enumerate() {
        *o = scale * f32::from(code(bytes, i) as i8 - 1);
    }
}

/// Dequantizes a whole I2_S tensor (packed bytes and tail) of `rows × cols` values.
///
/// # Errors
/// As [`tensor_scale`], and [`KernelError::ColsNotBlockMultiple`] if `cols` is not a
/// multiple of 128.
pub fn dequantize_tensor(bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>, KernelError> {
    if !cols.is_multiple_of(BLOCK_LEN) {
        return Err(KernelError::ColsNotBlockMultiple {
            format: WeightFormat::I2S,
            cols,
            block_len: BLOCK_LEN,
        });
    }
    let scale = tensor_scale(bytes, rows, cols)?;
    let mut out = vec![0.0; rows * cols];
    dequantize_row(&bytes[..rows * cols / 4], scale, &mut out);
    Ok(out)
}

/// Scalar reference: `scale · Σ_j d_a,j · Σ_i (c_ji − 1) · q_a,ji` over the 32-value
/// activation blocks `j` of one weight row (`w`, its packed bytes) and one prepared
/// activation row (the tensor scale multiplies the row sum once).
///
/// # Panics
/// If `w` is not `a.blocks() · 8` bytes long.
pub fn vec_dot(w: &[u8], scale: f32, a: QRow<'_>) -> f32 {
    assert_eq!(w.len(), a.blocks() * 8, "i2_s::vec_dot lengths");
    let mut sum = 0.0f32;
    for j in 0..a.blocks() {
        let ab = a.block(j);
        let p: i32 = (0..32)
            .map(|e| (i32::from(code(w, 32 * j + e)) - 1) * i32::from(ab.qs[e]))
            .sum();
        sum += ab.d * p as f32;
    }
    scale * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_bitnet_cpp() {
        // Byte g of a group: bits 7:6 → value g, 5:4 → 32 + g, 3:2 → 64 + g, 1:0 → 96 + g.
        let mut x = vec![0.0f32; 256];
        x[3] = 1.0;
        x[32 + 3] = -1.0;
        x[128 + 96 + 7] = 1.0;
        let b = quantize_tensor(&x, 1, 256);
        assert_eq!(b.len(), 64 + 32);
        assert_eq!(b[3], 0b10_00_01_01);
        assert_eq!(b[32 + 7], 0b01_01_01_10);
        assert_eq!(b[0], 0b01_01_01_01);
        assert_eq!(&b[64..68], &1.0f32.to_le_bytes());
        assert_eq!(dequantize_tensor(&b, 1, 256).unwrap(), x);
    }
}
