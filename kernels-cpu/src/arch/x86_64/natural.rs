//! TQ2_0 and I2_S rows times per-token int8 activations in plain value order
//! ([`crate::activations::NaturalRow`]), AVX-512 VNNI on 256-bit vectors.
//!
//! A 2-bit byte holds four *planes*, each a run of 32 consecutive values (TQ2_0: plane `l`
//! at bit `2l` of bytes `0..32` is values `32l..32l + 32` of the first half of a 256-value
//! block, bytes `32..64` the second half; I2_S: plane `l` at bit `6 − 2l` of a 32-byte
//! group of 128 values). So a loaded byte vector, masked to one plane, multiplies a plain
//! run of 32 activations with no shuffle, and since per-token activations have one scale
//! per row, a whole 256-value block (TQ2_0: one weight scale) is summed in integers before
//! anything becomes a float: `Σ(c − 1)·q = Σc·q − Σq` per i32 lane, one conversion and one
//! FMA per block (I2_S, with one scale for the tensor: one conversion per row). The
//! octet-order kernels ([`super::avx512`]) decode with 10 shuffles per block and finish
//! every 32 values in floats; this saves both (measured on 2B4T's FFN matrices: 18–19 GB/s
//! on one thread against 13–16).
//!
//! - A batch of one masks the planes in place (plane `l` scaled by `2^shift_l`), keeps one
//!   accumulator per plane and shifts the four sums back before adding them: exact, as
//!   every product in them is a multiple of `2^shift_l`.
//! - Larger batches decode two rows at a time into L1 (planes shifted down to codes), by
//!   column chunks of at most 2048 values, and run each chunk against 4 batch rows at a
//!   time, each weight vector loaded once per batch tile; the next chunk's bytes are
//!   prefetched meanwhile. Measured against the octet-order kernels on 2B4T's shapes
//!   (one thread, best of 5): 9–14% less time for a batch of one, 5% for a batch of 8,
//!   ±3% for a batch of 64.
//!
//! Both give the same i32 lane sums per block, then the same float steps, so a (row,
//! batch row) result does not depend on the batch (tested with every other path in
//! `tests/conformance.rs`).

use std::arch::x86_64::*;

use super::{
    avx2::hsum,
    tiles::{check_q8, prefetch},
};
use crate::{
    QMatrix,
    activations::{Activations, NaturalRow},
};

/// The bit position of plane `l` (`REV`: I2_S).
const fn shift(rev: bool, l: usize) -> i32 {
    if rev { 6 - 2 * l as i32 } else { 2 * l as i32 }
}

/// Bytes of a TQ2_0 block (64 code bytes, then the f16 scale).
const TQ2_0_BLOCK: usize = 66;

/// Byte masks of the four planes, `3 << shift_l`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn plane_masks<const REV: bool>() -> [__m256i; 4] {
    let mut m = [_mm256_setzero_si256(); 4];
    for (l, m) in m.iter_mut().enumerate() {
        *m = _mm256_set1_epi8((3u8 << shift(REV, l)) as i8);
    }
    m
}

/// The lane sums `Σ (c·2^shift_l)·q` of plane `l` of the 32-byte groups `x0` (with run
/// `l` at `a`) and `x1` (run `4 + l`; `None` for a missing half), planes masked in place.
///
/// # Safety
/// `a` must be readable for 256 bytes (128 without `x1`); the CPU must have this module's
/// features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn block_masked(
    x0: __m256i,
    x1: Option<__m256i>,
    masks: &[__m256i; 4],
    a: *const i8,
) -> [__m256i; 4] {
    let mut c = [_mm256_setzero_si256(); 4];
    for l in 0..4 {
        // SAFETY: runs l and 4 + l of the block (caller).
        unsafe {
            let a0 = _mm256_loadu_si256(a.add(32 * l).cast());
            c[l] = _mm256_dpbusd_epi32(c[l], _mm256_and_si256(x0, masks[l]), a0);
            if let Some(x1) = x1 {
                let a1 = _mm256_loadu_si256(a.add(128 + 32 * l).cast());
                c[l] = _mm256_dpbusd_epi32(c[l], _mm256_and_si256(x1, masks[l]), a1);
            }
        }
    }
    c
}

/// `Σ_l c_l >> shift_l`: the per-plane sums of [`group_masked`] back at code scale.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn combine<const REV: bool>(c: [__m256i; 4]) -> __m256i {
    let s = |l: usize| _mm256_sra_epi32(c[l], _mm_cvtsi32_si128(shift(REV, l)));
    _mm256_add_epi32(_mm256_add_epi32(s(0), s(1)), _mm256_add_epi32(s(2), s(3)))
}

/// The 32 codes of plane `l` of group `x`, shifted down.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn plane<const REV: bool>(x: __m256i, l: usize) -> __m256i {
    _mm256_and_si256(
        _mm256_srl_epi16(x, _mm_cvtsi32_si128(shift(REV, l))),
        _mm256_set1_epi8(3),
    )
}

/// The TQ2_0 block scale at `p` (a block start), in every lane.
///
/// # Safety
/// `p` must be readable for a block.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn block_scale(p: *const u8) -> __m256 {
    // SAFETY: the f16 scale follows the 64 code bytes (caller).
    let bits = unsafe { p.add(64).cast::<i16>().read_unaligned() };
    _mm256_cvtph_ps(_mm_set1_epi16(bits))
}

/// Loads 8 lane sums.
///
/// # Safety
/// `p` must be readable for 8 values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn lanes(p: *const i32) -> __m256i {
    // SAFETY: caller.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// One TQ2_0 row of `blocks` blocks at `w` against `a`, for a batch of one.
///
/// # Safety
/// `w` must be readable for `blocks` blocks, `a` must hold `blocks` blocks of values and
/// lane sums, and the CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_row_tq2_0(w: *const u8, blocks: usize, a: NaturalRow<'_>) -> f32 {
    let masks = plane_masks::<false>();
    let mut acc = _mm256_setzero_ps();
    // Three pointers bumped per block (not one scaled index): measured 30% faster.
    let (mut p, mut q, mut sums) = (w, a.q.as_ptr(), a.lane_sums.as_ptr());
    for _ in 0..blocks {
        // SAFETY: the block at p of the row and of the activations (caller).
        unsafe {
            let x0 = _mm256_loadu_si256(p.cast());
            let x1 = _mm256_loadu_si256(p.add(32).cast());
            let c = block_masked(x0, Some(x1), &masks, q);
            let t = _mm256_sub_epi32(combine::<false>(c), lanes(sums));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), block_scale(p), acc);
            p = p.add(TQ2_0_BLOCK);
            q = q.add(256);
            sums = sums.add(8);
        }
    }
    hsum(acc) * a.scale
}

/// One I2_S row of `groups` 128-value groups at `w` against `a` (times the tensor scale
/// `scale`), for a batch of one.
///
/// # Safety
/// `w` must be readable for `groups` groups, `a` must hold as many values (padded to 256)
/// and their lane sums, and the CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_row_i2_s(w: *const u8, groups: usize, a: NaturalRow<'_>, scale: f32) -> f32 {
    let (q, sums) = (a.q.as_ptr(), a.lane_sums.as_ptr());
    let masks = plane_masks::<true>();
    let mut acc = _mm256_setzero_si256();
    for o in 0..groups.div_ceil(2) {
        // SAFETY: group 2o (and 2o + 1 when it exists) of the row; block o of the
        // activations, zero-padded past the row (caller).
        unsafe {
            let p = w.add(64 * o);
            let x0 = _mm256_loadu_si256(p.cast());
            let x1 = if 2 * o + 1 < groups {
                Some(_mm256_loadu_si256(p.add(32).cast()))
            } else {
                None
            };
            let c = block_masked(x0, x1, &masks, q.add(256 * o));
            let t = _mm256_sub_epi32(combine::<true>(c), lanes(sums.add(8 * o)));
            acc = _mm256_add_epi32(acc, t);
        }
    }
    hsum(_mm256_cvtepi32_ps(acc)) * a.scale * scale
}

/// Rows `row0 ..` of a TQ2_0 (`I2S = false`) or I2_S matrix times natural activations.
///
/// # Safety
/// The CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn rows<const I2S: bool>(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    let nrows = check_q8::<1>(w, row0, x, out);
    let batch = out.len();
    let cols = w.cols();
    let acts: Vec<NaturalRow<'_>> = (0..batch)
        .map(|b| {
            x.natural_row(b)
                .expect("natural activations (checked by the caller)")
        })
        .collect();
    for a in &acts {
        assert!(
            a.q.len() >= cols.next_multiple_of(256) && a.lane_sums.len() * 32 >= a.q.len(),
            "natural activation row"
        );
    }
    let rb = w.row_bytes();
    let rows = &w.data()[row0 * rb..(row0 + nrows) * rb];
    // TQ2_0: 256-value blocks; I2_S: 128-value groups, two per block.
    let (units, blocks) = if I2S {
        (cols / 128, (cols / 128).div_ceil(2))
    } else {
        (cols / 256, cols / 256)
    };
    let scale = w.scale();
    if batch == 1 {
        for r in 0..nrows {
            let p = rows[r * rb..].as_ptr();
            // SAFETY: row r is a whole row inside `rows`; the activation row holds every
            // block (asserted above).
            out[0][r] = unsafe {
                if I2S {
                    dot_row_i2_s(p, units, acts[0], scale)
                } else {
                    dot_row_tq2_0(p, units, acts[0])
                }
            };
        }
        return;
    }
    // Larger batches: two rows at a time decoded into codes (8 vectors per block), in
    // equal column chunks of at most CHUNK_BLOCKS blocks so the codes (4 KiB) and the 4
    // activation rows of a batch tile (8 KiB) meet in L1, each weight vector loaded once
    // per batch tile and used against all 4 rows. The accumulators of every batch tile are parked
    // between chunks: each (row, batch row) still adds its blocks in order, as a batch of
    // one does. (Whole rows of 6912 columns spilled to L2 and ran 20–30% slower.)
    let zero = _mm256_setzero_si256();
    let mut codes = vec![[zero; 8]; 2 * CHUNK_BLOCKS];
    let mut scales = vec![_mm256_setzero_ps(); 2 * CHUNK_BLOCKS];
    let mut parked = vec![([[_mm256_setzero_ps(); 4]; 2], [[zero; 4]; 2]); batch.div_ceil(4)];
    // Equal chunks of at most CHUNK_BLOCKS.
    let block_bytes = if I2S { 64 } else { TQ2_0_BLOCK };
    let chunk = blocks.div_ceil(blocks.div_ceil(CHUNK_BLOCKS).max(1)).max(1);
    let mut r = 0;
    while r < nrows {
        let pair = nrows - r >= 2;
        let mut o0 = 0;
        while o0 < blocks {
            let n = chunk.min(blocks - o0);
            for i in 0..1 + usize::from(pair) {
                let p = rows[(r + i) * rb..].as_ptr();
                for o in 0..n {
                    let k = i * CHUNK_BLOCKS + o;
                    // SAFETY: group 2(o0 + o) and, when it exists, the next (I2_S), or
                    // block o0 + o (TQ2_0), lie inside row r + i.
                    unsafe { decode_block::<I2S>(p, o0 + o, units, &mut codes[k], &mut scales[k]) };
                }
            }
            let last = o0 + n == blocks;
            // The next chunk's weight bytes (of these rows, or the first of the next
            // pair), requested while this one meets the batch: behind hundreds of cycles
            // of arithmetic per chunk, the hardware prefetcher falls behind on long rows.
            let (next_row, next_o) = if last { (r + 2, 0) } else { (r, o0 + n) };
            for i in 0..2 {
                let row = next_row + i;
                if row < nrows {
                    // next_o < blocks, so the chunk starts inside the row.
                    let from = row * rb + next_o * block_bytes;
                    let len = (chunk * block_bytes).min((row + 1) * rb - from);
                    prefetch(rows.as_ptr().wrapping_add(from), len);
                }
            }
            for (t, tile) in acts.chunks(4).enumerate() {
                macro_rules! run {
                    ($R:literal, $B:literal) => {{
                        let mut a = [acts[4 * t]; $B];
                        a.copy_from_slice(&tile[..$B]);
                        let mut accf = [[_mm256_setzero_ps(); $B]; $R];
                        let mut acci = [[zero; $B]; $R];
                        if o0 > 0 {
                            for i in 0..$R {
                                for j in 0..$B {
                                    accf[i][j] = parked[t].0[i][j];
                                    acci[i][j] = parked[t].1[i][j];
                                }
                            }
                        }
                        // SAFETY: every activation row holds `blocks` blocks (asserted
                        // above); `codes` and `scales` hold the chunk's `n` blocks of each
                        // of the `$R` rows.
                        (accf, acci) = unsafe {
                            tile_rows::<I2S, $R, $B>(&codes, &scales, o0, n, a, accf, acci)
                        };
                        for i in 0..$R {
                            for j in 0..$B {
                                if last {
                                    out[4 * t + j][r + i] = if I2S {
                                        hsum(_mm256_cvtepi32_ps(acci[i][j])) * a[j].scale * scale
                                    } else {
                                        hsum(accf[i][j]) * a[j].scale
                                    };
                                } else {
                                    parked[t].0[i][j] = accf[i][j];
                                    parked[t].1[i][j] = acci[i][j];
                                }
                            }
                        }
                    }};
                }
                match (pair, tile.len()) {
                    (true, 4) => run!(2, 4),
                    (true, 3) => run!(2, 3),
                    (true, 2) => run!(2, 2),
                    (true, _) => run!(2, 1),
                    (false, 4) => run!(1, 4),
                    (false, 3) => run!(1, 3),
                    (false, 2) => run!(1, 2),
                    (false, _) => run!(1, 1),
                }
            }
            o0 += n;
        }
        r += 1 + usize::from(pair);
    }
}

/// Most blocks per column chunk of the batched kernel (2048 values).
const CHUNK_BLOCKS: usize = 8;

/// Decodes block `o` of the row at `p` (`units` TQ2_0 blocks or I2_S groups) into its 8
/// code vectors (planes shifted down) and, for TQ2_0, its scale.
///
/// # Safety
/// Block `o` must lie inside the row; the CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn decode_block<const I2S: bool>(
    p: *const u8,
    o: usize,
    units: usize,
    codes: &mut [__m256i; 8],
    scale: &mut __m256,
) {
    let zero = _mm256_setzero_si256();
    let (off, has_hi) = if I2S {
        (64 * o, 2 * o + 1 < units)
    } else {
        (TQ2_0_BLOCK * o, true)
    };
    // SAFETY: caller.
    unsafe {
        let lo = _mm256_loadu_si256(p.add(off).cast());
        let hi = if has_hi {
            _mm256_loadu_si256(p.add(off + 32).cast())
        } else {
            zero
        };
        for l in 0..4 {
            codes[l] = plane::<I2S>(lo, l);
            codes[4 + l] = plane::<I2S>(hi, l);
        }
        if !I2S {
            *scale = block_scale(p.add(off));
        }
    }
}

/// Adds blocks `o0 .. o0 + n` of `R` rows, decoded at `codes[i · CHUNK_BLOCKS ..]`, times
/// `B` activation rows to the accumulators: per block and (row, batch row), one i32 chain
/// of 8 `vpdpbusd` minus the lane sums, then (TQ2_0) one conversion and FMA with the block
/// scale or (I2_S) an integer sum, exactly as the batch-of-one kernels. Accumulators by
/// value, so they stay in registers across the loop.
///
/// # Safety
/// `codes` and `scales` must hold the `n` blocks of each row, every `a[j]` blocks
/// `o0 .. o0 + n` of values and lane sums, and the CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_rows<const I2S: bool, const R: usize, const B: usize>(
    codes: &[[__m256i; 8]],
    scales: &[__m256],
    o0: usize,
    n: usize,
    a: [NaturalRow<'_>; B],
    mut accf: [[__m256; B]; R],
    mut acci: [[__m256i; B]; R],
) -> ([[__m256; B]; R], [[__m256i; B]; R]) {
    assert!(
        n <= CHUNK_BLOCKS && codes.len() >= R * CHUNK_BLOCKS && scales.len() >= R * CHUNK_BLOCKS
    );
    let zero = _mm256_setzero_si256();
    let mut q = [std::ptr::null::<i8>(); B];
    let mut sums = [std::ptr::null::<i32>(); B];
    for j in 0..B {
        q[j] = a[j].q.as_ptr();
        sums[j] = a[j].lane_sums.as_ptr();
    }
    for o in 0..n {
        let mut c = [[zero; B]; R];
        for v in 0..8 {
            let mut wv = [zero; R];
            for i in 0..R {
                wv[i] = codes[i * CHUNK_BLOCKS + o][v];
            }
            for j in 0..B {
                // SAFETY: block o0 + o of every activation row (caller); rows are 64-byte
                // aligned and 256 values long per block.
                let av = unsafe { _mm256_load_si256(q[j].add(256 * (o0 + o) + 32 * v).cast()) };
                for i in 0..R {
                    c[i][j] = _mm256_dpbusd_epi32(c[i][j], wv[i], av);
                }
            }
        }
        for j in 0..B {
            // SAFETY: as above.
            let s = unsafe { lanes(sums[j].add(8 * (o0 + o))) };
            for i in 0..R {
                let t = _mm256_sub_epi32(c[i][j], s);
                if I2S {
                    acci[i][j] = _mm256_add_epi32(acci[i][j], t);
                } else {
                    accf[i][j] = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(t),
                        scales[i * CHUNK_BLOCKS + o],
                        accf[i][j],
                    );
                }
            }
        }
    }
    (accf, acci)
}

// SAFETY (the functions below): reachable only through the AVX-512 VNNI table, which is
// handed out after detecting every feature this module is compiled for.

/// TQ2_0 rows for natural activations ([`Activations::natural_row`] is `Some`).
pub(super) fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows::<false>(w, row0, x, out) }
}

/// I2_S rows for natural activations ([`Activations::natural_row`] is `Some`).
pub(super) fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows::<true>(w, row0, x, out) }
}
