//! [`QMatrix::validate`]: a load-time scan for codes and scales a format cannot hold.
//!
//! Word-at-a-time: a byte holds a 2-bit code 3 exactly when some bit pair has both bits
//! set, so a u64 `w` has one iff `w & (w >> 1) & 0x5555…` is non-zero; an f16 is NaN or
//! infinite iff its exponent bits `0x7c00` are all set. The fast scan ORs these over a
//! row (LLVM vectorizes the loops); only a row that fails is scanned again to name the
//! column or block. Rows are split over the current rayon pool.

use rayon::prelude::*;

use crate::{KernelError, QMatrix, WeightFormat};

/// Low bit of every bit pair.
const PAIRS: u64 = 0x5555_5555_5555_5555;

/// Rows per rayon task (about 1 MB of the largest BitNet rows).
const ROWS_PER_TASK: usize = 256;

/// The load-time check of one tensor of a model's weight map, as both engines pass it to
/// [`shared_protocol::model::ModelWeights::from_gguf`]: its bytes as a [`QMatrix`] of its
/// shape, then [`QMatrix::validate`].
///
/// # Errors
/// Why the bytes are refused, in words.
pub fn check_tensor(t: &shared_protocol::model::TensorRef, data: &[u8]) -> Result<(), String> {
    QMatrix::new(t.format, t.rows, t.cols, data)
        .and_then(|m| m.validate())
        .map_err(|e| e.to_string())
}

pub(crate) fn validate(m: &QMatrix<'_>) -> Result<(), KernelError> {
    let check: fn(&QMatrix<'_>, usize) -> Result<(), KernelError> = match m.format() {
        WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => return Ok(()),
        WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4_1 | WeightFormat::Tq1_0 => {
            check_scales
        }
        WeightFormat::Tq2_0 => check_tq2_0,
        WeightFormat::I2S => check_i2_s,
    };
    let rows = m.rows();
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    // The first error by row: each task stops at its first bad row, and the lowest task
    // with an error wins.
    (0..tasks)
        .into_par_iter()
        .map(|t| {
            (t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(rows)).try_for_each(|r| check(m, r))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// Byte offsets of the f16 scales in a block of `f`.
fn scale_offsets(f: WeightFormat) -> &'static [usize] {
    match f {
        WeightFormat::Q8_0 | WeightFormat::Q4_0 => &[0],
        WeightFormat::Q4_1 => &[0, 2],
        WeightFormat::Tq1_0 => &[52],
        WeightFormat::Tq2_0 => &[64],
        _ => &[],
    }
}

#[inline]
fn non_finite_f16(b: &[u8], at: usize) -> bool {
    u16::from_le_bytes([b[at], b[at + 1]]) & 0x7c00 == 0x7c00
}

fn check_scales(m: &QMatrix<'_>, row: usize) -> Result<(), KernelError> {
    let f = m.format();
    let offsets = scale_offsets(f);
    let blocks = m.row_data(row).chunks_exact(f.block_bytes());
    let bad = blocks.clone().fold(false, |bad, b| {
        offsets
            .iter()
            .fold(bad, |bad, &at| bad | non_finite_f16(b, at))
    });
    if !bad {
        return Ok(());
    }
    for (block, b) in blocks.enumerate() {
        for &at in offsets {
            if non_finite_f16(b, at) {
                return Err(KernelError::NonFiniteScale {
                    format: f,
                    row,
                    block,
                    bits: u16::from_le_bytes([b[at], b[at + 1]]),
                });
            }
        }
    }
    unreachable!("a bad scale was seen")
}

/// OR over `bytes` (a multiple of 8 long) of the code-3 bit pairs.
#[inline]
fn code3_bits(bytes: &[u8]) -> u64 {
    bytes.as_chunks::<8>().0.iter().fold(0, |acc, w| {
        let w = u64::from_le_bytes(*w);
        acc | (w & (w >> 1) & PAIRS)
    })
}

/// The column of the first code 3 in the packed codes `qs` of `values` values in the
/// 2-bit layout shared by TQ2_0 halves and I2_S groups: value `32·l + m` of a 32-byte
/// group at plane `l`, at bit `plane_shift(l)` of byte `m`.
fn first_code3(qs: &[u8], plane_shift: fn(usize) -> usize) -> Option<usize> {
    for (g, group) in qs.chunks_exact(32).enumerate() {
        for l in 0..4 {
            for (m, &b) in group.iter().enumerate() {
                if (b >> plane_shift(l)) & 3 == 3 {
                    return Some(128 * g + 32 * l + m);
                }
            }
        }
    }
    None
}

fn check_tq2_0(m: &QMatrix<'_>, row: usize) -> Result<(), KernelError> {
    check_scales(m, row)?;
    let bytes = m.row_data(row);
    let bad = bytes
        .chunks_exact(66)
        .fold(0, |acc, b| acc | code3_bits(&b[..64]));
    if bad == 0 {
        return Ok(());
    }
    for (block, b) in bytes.chunks_exact(66).enumerate() {
        if let Some(c) = first_code3(&b[..64], |l| 2 * l) {
            return Err(KernelError::InvalidTernaryCode {
                format: WeightFormat::Tq2_0,
                row,
                col: 256 * block + c,
            });
        }
    }
    unreachable!("a code 3 was seen")
}

fn check_i2_s(m: &QMatrix<'_>, row: usize) -> Result<(), KernelError> {
    let bytes = m.row_data(row);
    if code3_bits(bytes) == 0 {
        return Ok(());
    }
    let col = first_code3(bytes, |l| 6 - 2 * l).expect("a code 3 was seen");
    Err(KernelError::InvalidTernaryCode {
        format: WeightFormat::I2S,
        row,
        col,
    })
}
