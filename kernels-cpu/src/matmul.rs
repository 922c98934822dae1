//! The matmul drivers: argument checks, row chunking and the rayon dispatch.
//!
//! Every chunk is a range of weight rows; its task computes those rows for every batch
//! row, so each weight byte is read from memory once per call. A (row, batch) result is
//! computed by the same instruction sequence whatever the chunk, tile or thread count,
//! so outputs are bit-identical across `--threads` values.

use rayon::prelude::*;

use crate::{KernelError, QMatrix, activations::Activations, dispatch::Kernels};

/// Chunks start at multiples of this many rows (the widest row tile of the kernels).
const ROW_ALIGN: usize = 4;

/// A chunk should carry at least this many bytes of weights (per 4 rows of int8 work,
/// roughly the work of one pass over them), or rayon's hand-off costs more than it saves.
/// Measured on the 2-core test machine: 16 KiB made 576×192 matvecs slower, 64 KiB gave
/// the best small-matrix times (one chunk per thread for the K/V projections).
const MIN_CHUNK_BYTES: usize = 64 * 1024;

/// At most this many chunks per thread, for load balance: on shared machines the cores do
/// not run at the same speed, and with 2 chunks per thread a batch-8 matmul was up to 40%
/// slower than with 8.
const CHUNKS_PER_THREAD: usize = 8;

/// Rows per chunk for a matrix of `rows` rows of `row_bytes` bytes and `work` rows of int8
/// work (batch rows × activation parts): as many chunks as the work allows (at least
/// [`MIN_CHUNK_BYTES`] each, at most [`CHUNKS_PER_THREAD`] per thread), a multiple of the
/// thread count when there are enough, all of the same size but the last. (Fixed-size
/// chunks split a 576-row matvec into 184 + 184 + 184 + 24 rows, 368 rows for one of two
/// threads.)
fn chunk_rows(rows: usize, row_bytes: usize, work: usize, threads: usize) -> usize {
    if threads <= 1 || rows <= ROW_ALIGN {
        return rows.max(1);
    }
    let total = rows
        .saturating_mul(row_bytes.max(1))
        .saturating_mul(work.div_ceil(4).max(1));
    let wanted = (total / MIN_CHUNK_BYTES).clamp(1, threads * CHUNKS_PER_THREAD);
    let n = if wanted >= threads {
        wanted / threads * threads
    } else {
        wanted
    };
    rows.div_ceil(n).next_multiple_of(ROW_ALIGN).min(rows)
}

fn check(w: &QMatrix<'_>, x: &Activations, y_len: usize) -> Result<(), KernelError> {
    if !x.feeds(w.format()) {
        return Err(KernelError::ActivationFormat {
            prepared: x.format(),
            matrix: w.format(),
        });
    }
    if x.cols() != w.cols() {
        return Err(KernelError::ColsMismatch {
            matrix_cols: w.cols(),
            activation_cols: x.cols(),
        });
    }
    let expected = x.batch() * w.rows();
    if y_len != expected {
        return Err(KernelError::OutputSize {
            batch: x.batch(),
            rows: w.rows(),
            expected,
            got: y_len,
        });
    }
    Ok(())
}

/// Splits `y` (`batch × rows`, row-major) into chunk-major pieces: for chunk `c` the
/// `batch` slices `y[b * rows + c * chunk ..][..len_c]`, appended to `pieces`.
fn split_output<'y>(
    y: &'y mut [f32],
    rows: usize,
    chunk: usize,
    batch: usize,
    pieces: &mut Vec<&'y mut [f32]>,
) {
    if batch == 1 {
        pieces.extend(y.chunks_mut(chunk));
        return;
    }
    let mut per_batch: Vec<_> = y.chunks_mut(rows).map(|r| r.chunks_mut(chunk)).collect();
    for _ in 0..rows.div_ceil(chunk) {
        for it in &mut per_batch {
            pieces.extend(it.next());
        }
    }
}

pub(crate) fn matmul(
    k: &Kernels,
    w: &QMatrix<'_>,
    x: &Activations,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check(w, x, y.len())?;
    let (rows, batch) = (w.rows(), x.batch());
    if rows == 0 || batch == 0 {
        return Ok(());
    }
    let f = k.rows(w.format());
    let work = batch * x.parts();
    let chunk = chunk_rows(rows, w.row_bytes(), work, rayon::current_num_threads());
    if chunk >= rows {
        let mut outs: Vec<&mut [f32]> = y.chunks_mut(rows).collect();
        f(w, 0, x, &mut outs);
        return Ok(());
    }
    let mut pieces = Vec::with_capacity(rows.div_ceil(chunk) * batch);
    split_output(y, rows, chunk, batch, &mut pieces);
    pieces
        .par_chunks_mut(batch)
        .enumerate()
        .for_each(|(c, outs)| f(w, c * chunk, x, outs));
    Ok(())
}

pub(crate) fn matmul_many(
    k: &Kernels,
    jobs: &mut [(&QMatrix<'_>, &mut [f32])],
    x: &Activations,
) -> Result<(), KernelError> {
    for (w, y) in jobs.iter() {
        check(w, x, y.len())?;
    }
    let batch = x.batch();
    if batch == 0 {
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let mut pieces = Vec::new();
    let mut tasks = Vec::new();
    for (w, y) in jobs.iter_mut() {
        let rows = w.rows();
        if rows == 0 {
            continue;
        }
        let chunk = chunk_rows(rows, w.row_bytes(), batch * x.parts(), threads);
        split_output(y, rows, chunk, batch, &mut pieces);
        tasks.extend((0..rows.div_ceil(chunk)).map(|c| (*w, c * chunk)));
    }
    let run = |(w, row0): &(&QMatrix<'_>, usize), outs: &mut [&mut [f32]]| {
        k.rows(w.format())(w, *row0, x, outs);
    };
    if threads <= 1 || tasks.len() <= 1 {
        for (t, outs) in tasks.iter().zip(pieces.chunks_mut(batch)) {
            run(t, outs);
        }
    } else {
        pieces
            .par_chunks_mut(batch)
            .zip(tasks.par_iter())
            .for_each(|(outs, t)| run(t, outs));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_aligned_and_cover_small_matrices_in_few_pieces() {
        // 576×192 Q4_1 (K/V projection of SmolLM2-135M): 360 bytes per row.
        let c = chunk_rows(192, 360, 1, 2);
        assert_eq!(c % ROW_ALIGN, 0);
        assert!(192usize.div_ceil(c) <= 8, "chunk {c}");
        assert_eq!(chunk_rows(192, 360, 1, 1), 192);
        assert_eq!(chunk_rows(3, 360, 1, 2), 3);
        // 49152×576 Q8_0 output head: enough chunks to balance two threads.
        let c = chunk_rows(49152, 612, 1, 2);
        assert!(49152usize.div_ceil(c) >= 8, "chunk {c}");
        // 576×576 Q4_1: two equal chunks, one per thread.
        assert_eq!(chunk_rows(576, 360, 1, 2), 288);
        // A batch of 8 at int16 (16 rows of int8 work): more, still equal, chunks.
        let c = chunk_rows(576, 360, 16, 2);
        assert!(
            576usize.is_multiple_of(c) && (576 / c).is_multiple_of(2) && 576 / c >= 8,
            "chunk {c}"
        );
    }

    #[test]
    fn split_output_is_chunk_major() {
        let mut y: Vec<f32> = (0..2 * 10).map(|v| v as f32).collect();
        let mut pieces = Vec::new();
        split_output(&mut y, 10, 4, 2, &mut pieces);
        let firsts: Vec<_> = pieces.iter().map(|p| (p[0], p.len())).collect();
        assert_eq!(
            firsts,
            [
                (0.0, 4),
                (10.0, 4),
                (4.0, 4),
                (14.0, 4),
                (8.0, 2),
                (18.0, 2)
            ]
        );
    }
}
