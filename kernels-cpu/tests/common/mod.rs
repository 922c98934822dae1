//! Shared test helpers: seeded data, weight bytes per format, magnitudes for tolerances,
//! and padded, misaligned copies (the memchr trick).

#![allow(dead_code, clippy::unwrap_used)]

use half::{bf16, f16};
use kernels_cpu::{
    Activations, KernelPath, Kernels, QMatrix, WeightFormat,
    formats::{float, i2_s, q4_0, q4_1, q8_0, tq1_0, tq2_0},
};
use rand::{RngExt, SeedableRng, rngs::StdRng};

pub(crate) const QUANTIZED: [WeightFormat; 3] =
    [WeightFormat::Q8_0, WeightFormat::Q4_0, WeightFormat::Q4_1];

/// The ternary formats.
pub(crate) const TERNARY: [WeightFormat; 3] = WeightFormat::TERNARY;

/// `cols` rounded up to a whole number of `f`'s blocks (so one list of shapes serves
/// every format: 288 columns are 512 for TQ2_0 and 384 for I2_S).
pub(crate) fn fit_cols(f: WeightFormat, cols: usize) -> usize {
    cols.next_multiple_of(f.block_len())
}

pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The tables of every path this host runs.
pub(crate) fn tables() -> Vec<&'static Kernels> {
    kernels_cpu::available_paths()
        .into_iter()
        .map(|p| kernels_cpu::kernels(p).expect("available"))
        .collect()
}

pub(crate) fn scalar() -> &'static Kernels {
    kernels_cpu::kernels(KernelPath::Scalar).expect("scalar is always available")
}

/// Values with a different scale in every run of 32, some blocks all zero, some with
/// exact rounding ties.
pub(crate) fn activations(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; n];
    for blk in x.chunks_mut(32) {
        match rng.random_range(0..10) {
            0 => {}
            1 => {
                // amax 63.5 makes the scale 0.5: every j + 0.25 lands on a tie.
                for (i, v) in blk.iter_mut().enumerate() {
                    *v = (i as f32 - 16.0) + 0.25;
                }
                blk[0] = 63.5;
            }
            2 => blk.fill(-3.0),
            _ => {
                let scale = 10f32.powf(rng.random_range(-3.0..3.0));
                for v in blk.iter_mut() {
                    *v = rng.random_range(-1.0..1.0) * scale;
                }
            }
        }
    }
    x
}

/// Random weight bytes: raw random blocks for the quantized formats (every nibble and
/// int8 value, −128 included; scales of either sign), random finite values otherwise.
pub(crate) fn raw_weights(
    rng: &mut StdRng,
    format: WeightFormat,
    rows: usize,
    cols: usize,
) -> Vec<u8> {
    let n = rows * cols;
    let mut out = vec![0u8; format.tensor_bytes(rows, cols)];
    let scale = |rng: &mut StdRng| f16::from_f32(rng.random_range(-2.0f32..2.0)).to_le_bytes();
    match format {
        WeightFormat::F32 => {
            let x: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
            float::quantize_row_f32(&x, &mut out);
        }
        WeightFormat::F16 | WeightFormat::BF16 => {
            for o in out.chunks_exact_mut(2) {
                let v = rng.random_range(-2.0f32..2.0);
                o.copy_from_slice(&if format == WeightFormat::F16 {
                    f16::from_f32(v).to_le_bytes()
                } else {
                    bf16::from_f32(v).to_le_bytes()
                });
            }
        }
        WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            rng.fill(&mut out[..]);
            let heads = if format == WeightFormat::Q4_1 { 2 } else { 1 };
            for blk in out.chunks_exact_mut(format.block_bytes()) {
                for h in 0..heads {
                    blk[2 * h..2 * h + 2].copy_from_slice(&scale(rng));
                }
            }
        }
        // Every code, 3 included: the kernels must agree on bytes `validate` rejects too.
        WeightFormat::Tq1_0 | WeightFormat::Tq2_0 => {
            rng.fill(&mut out[..]);
            let at = format.block_bytes() - 2;
            for blk in out.chunks_exact_mut(format.block_bytes()) {
                blk[at..].copy_from_slice(&scale(rng));
            }
        }
        WeightFormat::I2S => {
            rng.fill(&mut out[..]);
            let at = n / 4;
            let s = rng.random_range(-2.0f32..2.0);
            out[at..].fill(0);
            out[at..at + 4].copy_from_slice(&s.to_le_bytes());
        }
    }
    out
}

/// Random ternary weights with valid codes only (what `validate` accepts), with block
/// scales in ±2 (or a tensor scale for I2_S).
pub(crate) fn ternary_weights(
    rng: &mut StdRng,
    format: WeightFormat,
    rows: usize,
    cols: usize,
) -> Vec<u8> {
    let x: Vec<f32> = (0..rows * cols)
        .map(|_| f32::from(rng.random_range(-1i8..=1)) * rng.random_range(0.5f32..2.0))
        .collect();
    quantize_matrix(format, &x, rows, cols)
}

/// A `rows × cols` matrix quantized with the crate's quantizers (per row, or per tensor
/// for I2_S).
pub(crate) fn quantize_matrix(
    format: WeightFormat,
    x: &[f32],
    rows: usize,
    cols: usize,
) -> Vec<u8> {
    if format == WeightFormat::I2S {
        return i2_s::quantize_tensor(x, rows, cols);
    }
    x.chunks(cols.max(1))
        .take(rows)
        .flat_map(|r| quantize(format, r))
        .collect()
}

/// `x` quantized into `format`'s bytes with the crate's quantizers.
pub(crate) fn quantize(format: WeightFormat, x: &[f32]) -> Vec<u8> {
    match format {
        WeightFormat::Tq1_0 => return tq1_0::quantize_row_bytes(x),
        WeightFormat::Tq2_0 => return tq2_0::quantize_row_bytes(x),
        WeightFormat::I2S => return i2_s::quantize_tensor(x, 1, x.len()),
        _ => {}
    }
    let mut out = vec![0u8; format.row_bytes(x.len())];
    match format {
        WeightFormat::F32 => float::quantize_row_f32(x, &mut out),
        WeightFormat::F16 => float::quantize_row_f16(x, &mut out),
        WeightFormat::BF16 => float::quantize_row_bf16(x, &mut out),
        WeightFormat::Q8_0 => q8_0::quantize_row_bytes(x, &mut out),
        WeightFormat::Q4_0 => q4_0::quantize_row_bytes(x, &mut out),
        WeightFormat::Q4_1 => q4_1::quantize_row_bytes(x, &mut out),
        WeightFormat::Tq1_0 | WeightFormat::Tq2_0 | WeightFormat::I2S => unreachable!(),
    }
    out
}

/// Per-value magnitudes of the weights: the sum of the magnitudes of the terms a kernel
/// adds up for each value (`|d|·q + |m|` for Q4_1, `|d|·|q − 8|` for Q4_0, ...).
pub(crate) fn weight_magnitudes(format: WeightFormat, bytes: &[u8], cols: usize) -> Vec<f32> {
    if format.is_ternary() {
        // |d·(c − 1)|: the dequantized values.
        let tail = format.tensor_bytes(0, cols);
        let rows = (bytes.len() - tail) / format.row_bytes(cols).max(1);
        let m = QMatrix::new(format, rows, cols, bytes).unwrap();
        let mut out = vec![0.0f32; rows * cols];
        for (r, o) in out.chunks_exact_mut(cols.max(1)).enumerate() {
            m.dequantize_row(r, o);
        }
        return out.iter().map(|v| v.abs()).collect();
    }
    let rows = bytes.len() / format.row_bytes(cols).max(1);
    let mut out = vec![0.0f32; rows * cols];
    let blocks = bytes.chunks_exact(format.block_bytes());
    let vals = out.chunks_exact_mut(format.block_len());
    for (b, o) in blocks.zip(vals) {
        match format {
            WeightFormat::F32 => o[0] = f32::from_le_bytes(b.try_into().unwrap()).abs(),
            WeightFormat::F16 => o[0] = f16::from_le_bytes([b[0], b[1]]).to_f32().abs(),
            WeightFormat::BF16 => o[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32().abs(),
            WeightFormat::Q8_0 => {
                let blk = q8_0::BlockQ8_0::from_bytes(b.try_into().unwrap());
                for (o, q) in o.iter_mut().zip(blk.qs) {
                    *o = blk.d.to_f32().abs() * f32::from(q).abs();
                }
            }
            WeightFormat::Q4_0 => {
                let blk = q4_0::BlockQ4_0::from_bytes(b.try_into().unwrap());
                for (i, o) in o.iter_mut().enumerate() {
                    *o = blk.d.to_f32().abs() * (f32::from(blk.nibble(i)) - 8.0).abs();
                }
            }
            WeightFormat::Q4_1 => {
                let blk = q4_1::BlockQ4_1::from_bytes(b.try_into().unwrap());
                for (i, o) in o.iter_mut().enumerate() {
                    *o = blk.d.to_f32().abs() * f32::from(blk.nibble(i)) + blk.m.to_f32().abs();
                }
            }
            WeightFormat::Tq1_0 | WeightFormat::Tq2_0 | WeightFormat::I2S => unreachable!(),
        }
    }
    out
}

/// Per-value magnitudes of prepared activation row `b`.
pub(crate) fn activation_magnitudes(x: &Activations, b: usize) -> Vec<f32> {
    if let Some(r) = x.f32_row(b) {
        return r.iter().map(|v| v.abs()).collect();
    }
    let r = x.quantized_row(b).expect("prepared");
    (0..r.blocks())
        .flat_map(|j| {
            let blk = r.block(j);
            blk.qs.map(|q| blk.d.abs() * f32::from(q).abs())
        })
        .collect()
}

/// Tolerance between two paths for one output: each computes a sum of `terms` rounded
/// products whose magnitudes add up to `mag`; two such sums in different orders differ by
/// at most about `2 · (terms + 16) · ε · mag` (the textbook bound for recursive summation,
/// plus a few roundings for the scale products and the final lane sum).
pub(crate) fn tolerance(format: WeightFormat, cols: usize, mag: f32) -> f32 {
    let terms = if format.is_quantized() {
        2 * cols / 32
    } else {
        cols
    };
    2.0 * (terms as f32 + 16.0) * f32::EPSILON * mag + f32::MIN_POSITIVE
}

/// `data` copied into a buffer at byte offset `off` with `pad` bytes after it, so the
/// kernels see a misaligned start and foreign bytes on both sides.
pub(crate) fn padded(data: &[u8], off: usize, pad: usize) -> Vec<u8> {
    let mut buf = vec![0xA5u8; off + data.len() + pad];
    buf[off..off + data.len()].copy_from_slice(data);
    buf
}

/// `x` copied into an f32 buffer at element offset `off` with `pad` values after it.
pub(crate) fn padded_f32(x: &[f32], off: usize, pad: usize) -> Vec<f32> {
    let mut buf = vec![f32::NAN; off + x.len() + pad];
    buf[off..off + x.len()].copy_from_slice(x);
    buf
}
