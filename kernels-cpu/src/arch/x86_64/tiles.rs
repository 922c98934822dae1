//! What the x86_64 quantized kernels share: the [`Format`] trait, the argument checks,
//! and [`q8_driver!`], which stamps out the tile loop and the rows driver for one set of
//! target features.

use std::arch::x86_64::*;

use crate::{
    QMatrix,
    activations::{Activations, Q8Octet, Q8Pair, row_layout},
};

/// One octet of weight blocks decoded for the dot kernels: eight vectors of bytes in the
/// activation octet order (vector `v` holds values `4v..4v + 4` of each block, in whatever
/// form the format's dot product wants), and the per-block scale and minimum.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(super) struct Decoded {
    pub(super) w: [__m256i; 8],
    pub(super) d: __m256,
    pub(super) m: __m256,
}

impl Decoded {
    /// All lanes zero.
    pub(super) fn zero() -> Self {
        // SAFETY: Decoded is plain vector data, for which all-zero bits are a valid value.
        unsafe { std::mem::zeroed() }
    }
}

/// One quantized weight format as the kernels see it.
pub(super) trait Format {
    /// Bytes per block.
    const BLOCK_BYTES: usize;
    /// A decoded weight pair, kept in registers while it meets every batch row.
    type Pair: Copy;

    /// Decodes the octet of weight blocks at `p` into `out`.
    ///
    /// # Safety
    /// `p` must be readable for `8 * BLOCK_BYTES` bytes, and the CPU must have the
    /// features of the implementing module.
    unsafe fn decode(p: *const u8, out: &mut Decoded);

    /// Adds the dot products of decoded weight octets `w[r]` with activation octets `a[b]`
    /// to the lanes of `acc[r][b]`.
    ///
    /// # Safety
    /// Each `a[b]` must point to a valid octet, and the CPU must have the features of the
    /// implementing module.
    unsafe fn dot<const R: usize, const B: usize>(
        w: [&Decoded; R],
        a: [*const Q8Octet; B],
        acc: &mut [[__m256; B]; R],
    );

    /// Decodes blocks `2p` and `2p + 1` (only `2p` if `!FULL`; the other half is zero).
    ///
    /// # Safety
    /// `p` must be readable for `2 * BLOCK_BYTES` bytes (`BLOCK_BYTES` if `!FULL`), and
    /// the CPU must have AVX2, FMA and F16C.
    unsafe fn load_pair<const FULL: bool>(p: *const u8) -> Self::Pair;

    /// `acc` plus the lane products of `w` with activation pair `a`.
    ///
    /// # Safety
    /// `a` must point to a valid [`Q8Pair`], and the CPU must have AVX2, FMA and F16C.
    unsafe fn dot_pair(w: Self::Pair, a: *const Q8Pair, acc: __m256) -> __m256;
}

/// One activation row as raw pointers to its octets and tail pairs.
#[derive(Clone, Copy)]
pub(super) struct Row {
    pub(super) octets: *const Q8Octet,
    pub(super) pairs: *const Q8Pair,
}

/// Checks what the unsafe kernels rely on; returns the number of rows in the chunk.
pub(super) fn check_q8(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &[&mut [f32]]) -> usize {
    let nrows = out.first().map_or(0, |o| o.len());
    assert!(out.iter().all(|o| o.len() == nrows), "ragged output chunk");
    assert!(
        row0 + nrows <= w.rows(),
        "rows {row0}+{nrows} of {}",
        w.rows()
    );
    assert_eq!(x.rows(), out.len(), "batch");
    assert_eq!(x.cols(), w.cols(), "cols");
    assert!(
        x.feeds(w.format()) && w.format().is_quantized(),
        "activation kind"
    );
    let layout = row_layout(w.cols() / 32);
    for b in 0..x.rows() {
        let q = x.q8(b);
        assert_eq!(
            (q.octets().len(), q.pairs().len()),
            layout,
            "activation layout"
        );
    }
    nrows
}

/// Octets per column block in batched tiles: the decoded octets of 2 weight rows (5 KiB)
/// and the activation octets of 4 batch rows (10 KiB) stay in L1 while they meet. Without
/// blocking, a batch of 8 over 6912 columns ran at half speed, from L2.
pub(super) const COL_OCTETS: usize = 8;

/// Defines, in the invoking module, the tile loops and `rows_q8` (a chunk of rows for
/// every batch row) compiled for `$features`. With `$two_rows`, batches of 2 or more run 2
/// weight rows per tile, so each activation load serves both.
///
/// - Batch of one: one weight row at a time, each octet decoded in registers and used at
///   once. Several interleaved row streams defeat the hardware prefetcher on long rows
///   (measured on Zen 4: 21 GB/s with one stream, 7–10 GB/s with two or four on 960-byte
///   rows).
/// - Larger batches: the rows of a tile are decoded once into a scratch buffer (L1), then
///   every batch tile streams the decoded octets. Decoding inside the batch loop made the
///   loop body so long (about 250 instructions) that out-of-order execution could not
///   overlap iterations, and the 4-cycle `vpdpbusd` chains ran at half speed. Rows longer
///   than [`COL_OCTETS`] octets go by column blocks, with the batch tiles' accumulators
///   parked in memory between blocks and the next block's weight bytes prefetched while
///   the current one meets the batch (about 10% on 6912 columns).
///
/// Measured lessons kept in the code: no closures through generic std functions inside
/// `#[target_feature]` code (see [`crate::arch`]), and few function boundaries in the hot
/// path: splitting a tile into two functions that LLVM kept out of line, passing the
/// accumulators between them, cost a quarter of a batch-8 matmul on 576 columns.
macro_rules! q8_driver {
    ($features:literal, $two_rows:expr) => {
        /// Adds pair `p` of the tail to `acc[r][b]`.
        ///
        /// # Safety
        /// `w[r]` must point to the first tail block of a row with `tail` tail blocks,
        /// `p < tail.div_ceil(2)`, each `a[b]` must point to that row's tail pairs, and the
        /// CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn tail_pair<K: Format, const R: usize, const B: usize>(
            w: [*const u8; R],
            a: [*const Q8Pair; B],
            p: usize,
            tail: usize,
            acc: &mut [[__m256; B]; R],
        ) {
            for r in 0..R {
                // SAFETY: blocks 2p (and 2p + 1 when FULL) are tail blocks of the row.
                let wp = unsafe {
                    let q = w[r].add(2 * p * K::BLOCK_BYTES);
                    if 2 * p + 1 < tail {
                        K::load_pair::<true>(q)
                    } else {
                        K::load_pair::<false>(q)
                    }
                };
                for b in 0..B {
                    // SAFETY: pair p exists in every activation row.
                    acc[r][b] = unsafe { K::dot_pair(wp, a[b].add(p), acc[r][b]) };
                }
            }
        }

        /// The dot product of one weight row with one activation row of `nb` blocks,
        /// decoding each octet in registers.
        ///
        /// # Safety
        /// `w` must be readable for `nb` blocks, `a` must point to the [`row_layout`] of
        /// `nb` blocks, and the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn dot_row<K: Format>(w: *const u8, a: Row, nb: usize) -> f32 {
            let mut acc = [[_mm256_setzero_ps(); 1]; 1];
            let (octets, pairs) = row_layout(nb);
            let ob = 8 * K::BLOCK_BYTES;
            for o in 0..octets {
                let mut d = Decoded::zero();
                // SAFETY: octet o lies within the row and exists in the activation row.
                unsafe {
                    K::decode(w.add(o * ob), &mut d);
                    K::dot::<1, 1>([&d], [a.octets.add(o)], &mut acc);
                }
            }
            for p in 0..pairs {
                // SAFETY: the tail starts after the octets, in both rows.
                unsafe {
                    tail_pair::<K, 1, 1>(
                        [w.add(octets * ob)],
                        [a.pairs],
                        p,
                        nb - 8 * octets,
                        &mut acc,
                    )
                };
            }
            super::avx2::hsum(acc[0][0])
        }

        /// Adds the dot products of `R` rows of decoded octets (`dec[r]`, octets
        /// `o0..o0 + dec[r].len()` of their rows) with `B` activation rows to `acc`.
        ///
        /// # Safety
        /// Each `a[b]` must point to the [`row_layout`] of a row with at least
        /// `o0 + dec[r].len()` octets, all `dec[r]` have the same length, and the CPU must
        /// have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn tile_octets<K: Format, const R: usize, const B: usize>(
            dec: [&[Decoded]; R],
            a: [Row; B],
            o0: usize,
            mut acc: [[__m256; B]; R],
        ) -> [[__m256; B]; R] {
            // Accumulators by value, not behind a pointer: if LLVM declines to inline this
            // function, they still live in registers across the loop.
            // No closures (`array::map`, `from_fn`) in these loops: a closure inherits the
            // target features, so LLVM cannot inline it into the generic std function and
            // calls it per element.
            let n = dec[0].len();
            for r in 0..R {
                assert_eq!(dec[r].len(), n, "decoded octets");
            }
            let mut ao = [std::ptr::null(); B];
            for o in 0..n {
                let mut wo = [&dec[0][0]; R];
                for r in 0..R {
                    // SAFETY: o < n = dec[r].len() (asserted above).
                    wo[r] = unsafe { dec[r].get_unchecked(o) };
                }
                for b in 0..B {
                    // SAFETY: octet o0 + o exists in every activation row (caller).
                    ao[b] = unsafe { a[b].octets.add(o0 + o) };
                }
                // SAFETY: as above.
                unsafe { K::dot::<R, B>(wo, ao, &mut acc) };
            }
            acc
        }

        /// Adds the tail pairs of `R` weight rows (raw bytes `w[r]`) with `B` activation
        /// rows of `nb` blocks to `acc`, and returns the lane sums.
        ///
        /// # Safety
        /// Each `w[r]` must be readable for `nb` blocks, each `a[b]` must point to the
        /// [`row_layout`] of `nb` blocks, and the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn tile_finish<K: Format, const R: usize, const B: usize>(
            w: [*const u8; R],
            a: [Row; B],
            nb: usize,
            mut acc: [[__m256; B]; R],
        ) -> [[f32; B]; R] {
            let (octets, pairs) = row_layout(nb);
            let mut ap = [std::ptr::null(); B];
            for b in 0..B {
                ap[b] = a[b].pairs;
            }
            let mut tw = w;
            for r in 0..R {
                // SAFETY: the tail starts after the octets, inside the row.
                tw[r] = unsafe { w[r].add(8 * octets * K::BLOCK_BYTES) };
            }
            for p in 0..pairs {
                // SAFETY: the tail pairs exist in every row.
                unsafe { tail_pair::<K, R, B>(tw, ap, p, nb - 8 * octets, &mut acc) };
            }
            let mut y = [[0.0; B]; R];
            for r in 0..R {
                for b in 0..B {
                    y[r][b] = super::avx2::hsum(acc[r][b]);
                }
            }
            y
        }

        /// [`tile_octets`] over all octets then [`tile_finish`], written out as one
        /// self-contained function: for rows of at most [`COL_OCTETS`] octets, the common
        /// case. (Calling the two, which LLVM keeps out of line, cost a quarter of a
        /// batch-8 matmul of 576 columns.)
        ///
        /// # Safety
        /// Each `w[r]` must be readable for `nb` blocks, each `a[b]` must point to the
        /// [`row_layout`] of `nb` blocks, `dec[r]` must hold all of the row's octets, and
        /// the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn tile_full<K: Format, const R: usize, const B: usize>(
            dec: [&[Decoded]; R],
            w: [*const u8; R],
            a: [Row; B],
            nb: usize,
        ) -> [[f32; B]; R] {
            let (octets, pairs) = row_layout(nb);
            for r in 0..R {
                assert_eq!(dec[r].len(), octets, "decoded octets");
            }
            let mut acc = [[_mm256_setzero_ps(); B]; R];
            let mut ao = [std::ptr::null(); B];
            for o in 0..octets {
                let mut wo = [&dec[0][0]; R];
                for r in 0..R {
                    // SAFETY: o < octets = dec[r].len() (asserted above).
                    wo[r] = unsafe { dec[r].get_unchecked(o) };
                }
                for b in 0..B {
                    // SAFETY: octet o exists in every activation row (caller).
                    ao[b] = unsafe { a[b].octets.add(o) };
                }
                // SAFETY: as above.
                unsafe { K::dot::<R, B>(wo, ao, &mut acc) };
            }
            let mut ap = [std::ptr::null(); B];
            for b in 0..B {
                ap[b] = a[b].pairs;
            }
            let mut tw = w;
            for r in 0..R {
                // SAFETY: the tail starts after the octets, inside the row.
                tw[r] = unsafe { w[r].add(8 * octets * K::BLOCK_BYTES) };
            }
            for p in 0..pairs {
                // SAFETY: the tail pairs exist in every row.
                unsafe { tail_pair::<K, R, B>(tw, ap, p, nb - 8 * octets, &mut acc) };
            }
            let mut y = [[0.0; B]; R];
            for r in 0..R {
                for b in 0..B {
                    y[r][b] = super::avx2::hsum(acc[r][b]);
                }
            }
            y
        }

        /// Rows `row0 .. row0 + out[b].len()` of `w · x` for the quantized format `K`.
        ///
        /// # Safety
        /// The CPU must have this module's features.
        #[target_feature(enable = $features)]
        unsafe fn rows_q8<K: Format>(
            w: &QMatrix<'_>,
            row0: usize,
            x: &Activations,
            out: &mut [&mut [f32]],
        ) {
            let nrows = check_q8(w, row0, x, out);
            let batch = out.len();
            let nb = w.cols() / 32;
            let rb = w.row_bytes();
            let rows = &w.data()[row0 * rb..(row0 + nrows) * rb];
            let row = |r: usize| rows[r * rb..].as_ptr();
            let act = |b: usize| {
                let q = x.q8(b);
                Row {
                    octets: q.octets().as_ptr(),
                    pairs: q.pairs().as_ptr(),
                }
            };
            if batch == 1 {
                let a = act(0);
                for r in 0..nrows {
                    // SAFETY: row r is a whole row of nb blocks inside `rows`, and check_q8
                    // verified the activation layout.
                    out[0][r] = unsafe { dot_row::<K>(row(r), a, nb) };
                }
                return;
            }
            let octets = nb / 8;
            let mut scratch = vec![Decoded::zero(); 2 * COL_OCTETS];
            // One accumulator set per batch tile of 4, kept across column blocks.
            let mut accs = vec![[[_mm256_setzero_ps(); 4]; 2]; batch.div_ceil(4)];
            // Runs `$body` with `$B` bound to the size of batch tile `$t` (4, or the rest).
            macro_rules! with_tile {
                ($t:expr, |$B:ident| $body:block) => {{
                    match (batch - 4 * $t).min(4) {
                        4 => {
                            const $B: usize = 4;
                            $body
                        }
                        3 => {
                            const $B: usize = 3;
                            $body
                        }
                        2 => {
                            const $B: usize = 2;
                            $body
                        }
                        _ => {
                            const $B: usize = 1;
                            $body
                        }
                    }
                }};
            }
            // Rows r..r+R against every batch row: column block by column block, the
            // rows' octets are decoded into `scratch` and meet every batch tile.
            macro_rules! rows_tile {
                ($r:expr, $R:literal) => {{
                    let r = $r;
                    let mut wr = [std::ptr::null(); $R];
                    for i in 0..$R {
                        wr[i] = row(r + i);
                    }
                    // Rows short enough for one column block skip the accumulator store.
                    if octets <= COL_OCTETS {
                        let mut dec: [&[Decoded]; $R] = [&[]; $R];
                        for i in 0..$R {
                            let d = &mut scratch[i * COL_OCTETS..i * COL_OCTETS + octets];
                            for (o, d) in d.iter_mut().enumerate() {
                                // SAFETY: octet o of row r + i lies within `rows`.
                                unsafe { K::decode(wr[i].add(o * 8 * K::BLOCK_BYTES), d) };
                            }
                        }
                        for i in 0..$R {
                            dec[i] = &scratch[i * COL_OCTETS..i * COL_OCTETS + octets];
                        }
                        for t in 0..batch.div_ceil(4) {
                            with_tile!(t, |B| {
                                let mut a = [act(4 * t); B];
                                for (j, a) in a.iter_mut().enumerate().skip(1) {
                                    *a = act(4 * t + j);
                                }
                                // SAFETY: rows r..r+R are whole rows of nb blocks inside
                                // `rows`, dec holds all their octets, and check_q8 verified
                                // the activation layout.
                                let y = unsafe { tile_full::<K, $R, B>(dec, wr, a, nb) };
                                for i in 0..$R {
                                    for j in 0..B {
                                        out[4 * t + j][r + i] = y[i][j];
                                    }
                                }
                            });
                        }
                        continue;
                    }
                    for acc in accs.iter_mut() {
                        *acc = [[_mm256_setzero_ps(); 4]; 2];
                    }
                    for o0 in (0..octets).step_by(COL_OCTETS) {
                        let n = COL_OCTETS.min(octets - o0);
                        let mut dec: [&[Decoded]; $R] = [&[]; $R];
                        for i in 0..$R {
                            let d = &mut scratch[i * COL_OCTETS..i * COL_OCTETS + n];
                            for (o, d) in d.iter_mut().enumerate() {
                                // SAFETY: octet o0 + o of row r + i lies within `rows`.
                                unsafe { K::decode(wr[i].add((o0 + o) * 8 * K::BLOCK_BYTES), d) };
                            }
                        }
                        for i in 0..$R {
                            dec[i] = &scratch[i * COL_OCTETS..i * COL_OCTETS + n];
                        }
                        // The next column block's bytes, requested while this one meets
                        // the batch, so its decode does not wait on DRAM.
                        let ob = 8 * K::BLOCK_BYTES;
                        for i in 0..$R {
                            let row_bytes = &rows[(r + i) * rb..(r + i + 1) * rb];
                            let next = &row_bytes
                                [((o0 + n) * ob).min(rb)..((o0 + n + COL_OCTETS) * ob).min(rb)];
                            for line in next.chunks(64) {
                                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                            }
                        }
                        for (t, tile_acc) in accs.iter_mut().enumerate() {
                            with_tile!(t, |B| {
                                let mut a = [act(4 * t); B];
                                let mut acc = [[_mm256_setzero_ps(); B]; $R];
                                for j in 0..B {
                                    a[j] = act(4 * t + j);
                                    for i in 0..$R {
                                        acc[i][j] = tile_acc[i][j];
                                    }
                                }
                                // SAFETY: check_q8 verified the activation layout, so
                                // octets o0..o0 + n exist in every activation row.
                                acc = unsafe { tile_octets::<K, $R, B>(dec, a, o0, acc) };
                                for j in 0..B {
                                    for i in 0..$R {
                                        tile_acc[i][j] = acc[i][j];
                                    }
                                }
                            });
                        }
                    }
                    for (t, tile_acc) in accs.iter().enumerate() {
                        with_tile!(t, |B| {
                            let mut a = [act(4 * t); B];
                            let mut acc = [[_mm256_setzero_ps(); B]; $R];
                            for j in 0..B {
                                a[j] = act(4 * t + j);
                                for i in 0..$R {
                                    acc[i][j] = tile_acc[i][j];
                                }
                            }
                            // SAFETY: rows r..r+R are whole rows of nb blocks inside
                            // `rows`, and check_q8 verified the activation layout.
                            let y = unsafe { tile_finish::<K, $R, B>(wr, a, nb, acc) };
                            for i in 0..$R {
                                for j in 0..B {
                                    out[4 * t + j][r + i] = y[i][j];
                                }
                            }
                        });
                    }
                }};
            }
            let pairs_end = if $two_rows { nrows / 2 * 2 } else { 0 };
            for r in (0..pairs_end).step_by(2) {
                rows_tile!(r, 2);
            }
            for r in pairs_end..nrows {
                rows_tile!(r, 1);
            }
        }
    };
}

pub(super) use q8_driver;
