//! What the x86_64 quantized kernels share: decoded weights, the [`Format`] trait, the
//! float finish of a block lane, the argument checks, and [`q8_driver!`], which stamps out
//! the tile loops and the rows driver for one set of target features.

use std::arch::x86_64::*;

use crate::{
    QMatrix,
    activations::{Activations, Parts, row_layout},
};

/// One *item* of weight blocks decoded for the dot kernels: an octet (eight vectors of
/// bytes in the activation octet order: vector `v` holds values `4v..4v + 4` of each
/// block, in whatever form the format's integer step wants) or a pair (`w[0]`: values
/// 0..16 of both blocks, `w[1]`: values 16..32), and the per-lane scale and minimum.
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

/// One quantized weight format as the kernels of one instruction set see it.
pub(super) trait Format {
    /// Bytes per 32-value block (for formats with larger blocks, whatever
    /// [`Format::OCTET_BYTES`] and [`Format::decode_pair`] are defined with).
    const BLOCK_BYTES: usize;
    /// Bytes of an octet, the weights of 256 values.
    const OCTET_BYTES: usize = 8 * Self::BLOCK_BYTES;
    /// A stored minimum (Q4_1): a block lane is `d·P + m·S`.
    const MIN: bool;
    /// The weights are decoded with an offset of `2^SHIFT` (8 for Q4_0's nibbles, 128 for
    /// biased Q8_0 bytes, 1 for ternary codes), removed exactly in integers as
    /// `P − S·2^SHIFT` when [`Format::OFFSET`] is set.
    const SHIFT: i32;
    /// Whether there is an offset to remove (by default, when `SHIFT > 0`).
    const OFFSET: bool = Self::SHIFT > 0;
    /// The offset is removed after the conversion to f32, one instruction less than in
    /// integers and as exact when `|P|` and `S·2^SHIFT` stay below 2²⁴ (ternary codes:
    /// `|P| ≤ 3·32·32512`, `SHIFT = 0`), so the results are the same bits.
    const FLOAT_OFFSET: bool = false;
    /// [`Format::decode_row`] leaves the weights of block lane `k` scaled by
    /// `2^LANE_SHIFT[k]` (ternary 2-bit planes masked in place, not shifted down); the
    /// i32 sums are shifted back exactly (every product is a multiple of the scale)
    /// before anything else, so both decoders give the same integers.
    const LANE_SHIFT: Option<[i32; 8]> = None;
    /// The weight scale is one f32 for the whole tensor (I2_S): the lanes carry no
    /// weight scale (`d_a · P` per block), and the row sum is multiplied by the tensor
    /// scale once at the end.
    const TENSOR_SCALE: bool = false;
    /// Independent integer chains per (row, batch row) for int8 activations, to hide the
    /// latency of the integer step (int16 activations have a chain per part).
    const CHAINS: usize;

    /// Decodes the octet of weights at `p` into `out`.
    ///
    /// # Safety
    /// `p` must be readable for `OCTET_BYTES` bytes, and the CPU must have the
    /// features of the implementing module.
    unsafe fn decode(p: *const u8, out: &mut Decoded);

    /// [`Format::decode`] for a batch of one, where the octet is used once, straight
    /// from registers: it may leave lanes scaled by [`Format::LANE_SHIFT`] if that is
    /// cheaper.
    ///
    /// # Safety
    /// As [`Format::decode`].
    unsafe fn decode_row(p: *const u8, out: &mut Decoded);

    /// Decodes tail pair `t` of a row whose tail (the blocks after its octets) starts at
    /// `tail`: blocks `2t` and `2t + 1` of the tail (only the first if `!FULL`; the second
    /// half is then zero).
    ///
    /// # Safety
    /// The tail blocks up to block `2t + 1` (`2t` if `!FULL`) must be readable, and the
    /// CPU must have the features of the implementing module.
    unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded);

    /// `acc` plus the products of weight vector `w` with activation vector `a`, summed per
    /// 4-byte group (per i32 lane, or per i16 lane pair: see [`Format::widen`]).
    ///
    /// # Safety
    /// The CPU must have the features of the implementing module.
    unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i;

    /// The i32 lane sums of an accumulator of at most 8 steps.
    ///
    /// # Safety
    /// The CPU must have the features of the implementing module.
    unsafe fn widen(acc: __m256i) -> __m256i;
}

/// One activation row as raw pointers to its octets and tail pairs (`P` parts each).
#[derive(Clone, Copy)]
pub(super) struct Row {
    pub(super) octets: *const u8,
    pub(super) pairs: *const u8,
}

/// Bytes of an activation octet with `P` parts (`QOctet<P>`): the parts' 8 vectors each,
/// then 8 scales and 8 sums.
pub(super) const fn octet_bytes(p: usize) -> usize {
    256 * p + 64
}

/// Bytes of an activation pair with `P` parts (`QPair<P>`).
pub(super) const fn pair_bytes(p: usize) -> usize {
    64 * p + 64
}

/// Row `b` of `x` as raw pointers.
pub(super) fn act_row<const P: usize>(x: &Activations, b: usize) -> Row
where
    Activations: Parts<P>,
{
    Row {
        octets: Parts::<P>::octets(x, b).as_ptr().cast(),
        pairs: Parts::<P>::pairs(x, b).as_ptr().cast(),
    }
}

/// Adds the float value of block lanes to `acc[r][b]`, from the integer dot products
/// `s32[r][b]` and the activation scales `ad[b]` and sums `asum[b]`:
/// - `MIN` (Q4_1): `d_a · (d·P + m·S)`, with one rounding for `d·P + m·S`;
/// - with an offset, `d_a · d · (P − S·2^SHIFT)` (`d_a · (P − S·2^SHIFT)` for a tensor
///   scale, applied to the row sum later); otherwise `d_a · d · P`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn finish<K: Format, const R: usize, const B: usize>(
    w: [&Decoded; R],
    ad: [__m256; B],
    asum: [__m256; B],
    s32: [[__m256i; B]; R],
    acc: &mut [[__m256; B]; R],
) {
    for b in 0..B {
        let offset = _mm256_sll_epi32(_mm256_cvtps_epi32(asum[b]), _mm_cvtsi32_si128(K::SHIFT));
        // P − S·2^SHIFT as f32, in integers or (exact for small sums) in floats.
        let centered = |p: __m256i| {
            if K::FLOAT_OFFSET {
                _mm256_sub_ps(_mm256_cvtepi32_ps(p), asum[b])
            } else {
                _mm256_cvtepi32_ps(_mm256_sub_epi32(p, offset))
            }
        };
        for r in 0..R {
            let g = if K::MIN {
                _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(s32[r][b]),
                    w[r].d,
                    _mm256_mul_ps(w[r].m, asum[b]),
                )
            } else if K::TENSOR_SCALE {
                centered(s32[r][b])
            } else if K::OFFSET {
                _mm256_mul_ps(centered(s32[r][b]), w[r].d)
            } else {
                _mm256_mul_ps(_mm256_cvtepi32_ps(s32[r][b]), w[r].d)
            };
            acc[r][b] = _mm256_fmadd_ps(g, ad[b], acc[r][b]);
        }
    }
}

/// Checks what the unsafe kernels rely on; returns the number of rows in the chunk.
pub(super) fn check_q8<const P: usize>(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &[&mut [f32]],
) -> usize
where
    Activations: Parts<P>,
{
    let nrows = out.first().map_or(0, |o| o.len());
    assert!(out.iter().all(|o| o.len() == nrows), "ragged output chunk");
    assert!(
        row0 + nrows <= w.rows(),
        "rows {row0}+{nrows} of {}",
        w.rows()
    );
    assert_eq!(x.batch(), out.len(), "batch");
    assert_eq!(x.cols(), w.cols(), "cols");
    assert!(
        x.feeds(w.format()) && w.format().is_quantized(),
        "activation kind"
    );
    let layout = row_layout(w.cols() / 32);
    for b in 0..x.batch() {
        let got = (
            Parts::<P>::octets(x, b).len(),
            Parts::<P>::pairs(x, b).len(),
        );
        assert_eq!(got, layout, "activation layout");
    }
    nrows
}

/// Prefetches the 64-byte lines of the `len` bytes at `p` into every cache level. The
/// address may lie past the weights: prefetches never fault.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn prefetch(p: *const u8, len: usize) {
    let mut off = 0;
    while off < len {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast());
        off += 64;
    }
}

/// Octets per column block in batched tiles: the decoded octets of 2 weight rows (5 KiB)
/// and the activation octets of 4 batch rows (10 KiB at int8, 18 KiB at int16) stay in L1
/// while they meet. Without blocking, a batch of 8 over 6912 columns ran at half speed,
/// from L2.
pub(super) const COL_OCTETS: usize = 8;

/// Runs `$body` with the constant `$B` bound to `$n`, the size of a batch tile (1 to 4;
/// anything else runs as 1).
macro_rules! with_batch_tile {
    ($n:expr, |$B:ident| $body:block) => {{
        match $n {
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

pub(super) use with_batch_tile;

/// Defines, in the invoking module, the tile loops and `rows_q` (a chunk of rows for every
/// batch row) compiled for `$features`, with tiles of `$rows` weight rows (1 or 2) × up
/// to 4 batch rows.
///
/// - Batch of one: one weight row at a time, each octet and tail pair decoded in registers
///   and used at once. Several interleaved row streams defeat the hardware prefetcher on
///   long rows (measured on Zen 4: 21 GB/s with one stream, 7–10 GB/s with two or four on
///   960-byte rows).
/// - Larger batches: the rows of a tile are decoded once, octets and tail pairs alike,
///   into a scratch buffer (L1), then every batch tile streams the decoded items. Decoding
///   inside the batch loop made the loop body so long (about 250 instructions) that
///   out-of-order execution could not overlap iterations; interleaving the next rows'
///   decode with a tile's dot products (software pipelining) spilled the accumulators or,
///   behind a call, still ran 30–45% slower than decoding between tiles. While a tile's
///   rows are decoded, the same bytes of the rows two tiles on are prefetched: with
///   weights in DRAM the hardware prefetcher falls behind, since each tile of rows is
///   followed by hundreds of cycles of arithmetic (25–30% on the Q8_0 head at batch 8;
///   for a batch of one, software prefetch only cost time). Rows longer than
///   [`COL_OCTETS`] octets go by column blocks, with the batch tiles' accumulators parked
///   in memory between blocks and the next block's weight bytes prefetched while the
///   current one meets the batch (about 10% on 6912 columns). The activation row pointers
///   are looked up once per call and a tile's 8 results are reduced together
///   ([`super::avx2::hsum8`]): per tile, the lookups and 8 separate lane sums cost as
///   many instructions as the arithmetic of a 576-column tile.
///
/// Every (row, batch row) result comes from the same sequence of operations on its own
/// lanes whatever the tile shape, so results do not depend on the batch or the chunking.
///
/// Tried and measured slower on Zen 4: 512-bit `vpdpbusd`
/// over pairs of vectors (same multiplier throughput, 5–10% slower), and gathering the 4-bit
/// octets with AVX-512 word permutes instead of loads, unpacks and blends (up to 11%
/// slower for a batch of one).
///
/// Measured lessons kept in the code: no closures through generic std functions inside
/// `#[target_feature]` code (see [`crate::arch`]), and few function boundaries in the hot
/// path: splitting a tile into two functions that LLVM kept out of line, passing the
/// accumulators between them, cost a quarter of a batch-8 matmul on 576 columns.
macro_rules! q8_driver {
    ($features:literal, $rows:literal) => {
        /// Adds the dot products of `R` decoded items (`N` vectors each: 8 for an octet, 2
        /// for a pair) with the activation items of `P` parts at `a[b]` to `acc[r][b]`;
        /// `LS`: the items come from [`Format::decode_row`].
        ///
        /// # Safety
        /// Each `a[b]` must point to a valid activation octet (`N = 8`) or pair (`N = 2`)
        /// of `P` parts, and the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn dot_item<
            K: Format,
            const N: usize,
            const P: usize,
            const R: usize,
            const B: usize,
            const LS: bool,
        >(
            w: [&Decoded; R],
            a: [*const u8; B],
            acc: &mut [[__m256; B]; R],
        ) {
            // Independent integer chains: one per part, split in two by vector parity
            // (`K::CHAINS == 2`) when the tile is too small to hide the step's latency
            // with its other chains (a batch of one at int16 ran latency-bound with two
            // chains of 8). Integer sums are exact, so the split never changes a result.
            let split = K::CHAINS == 2 && R * B * P < 16;
            let ch = if split { 2 } else { 1 };
            let zero = _mm256_setzero_si256();
            let mut c = [[[zero; B]; R]; 4];
            for v in 0..N {
                for p in 0..P {
                    for b in 0..B {
                        // SAFETY: vector v of part p (caller).
                        let av =
                            unsafe { _mm256_load_si256(a[b].cast::<__m256i>().add(N * p + v)) };
                        let k = ch * p + v % ch;
                        for r in 0..R {
                            // SAFETY: the CPU has this module's features.
                            c[k][r][b] = unsafe { K::step(c[k][r][b], w[r].w[v], av) };
                        }
                    }
                }
            }
            let mut s32 = [[zero; B]; R];
            for r in 0..R {
                for b in 0..B {
                    let mut part = [zero; P];
                    for p in 0..P {
                        // SAFETY: the CPU has this module's features.
                        part[p] = unsafe { K::widen(c[ch * p][r][b]) };
                        if split {
                            // SAFETY: as above.
                            let odd = unsafe { K::widen(c[ch * p + 1][r][b]) };
                            part[p] = _mm256_add_epi32(part[p], odd);
                        }
                    }
                    s32[r][b] = part[0];
                    if P == 2 {
                        // q = 255·h + l, so Σw·q = 256·Σw·h − Σw·h + Σw·l, exactly.
                        let hi = part[0];
                        s32[r][b] = _mm256_sub_epi32(
                            _mm256_add_epi32(_mm256_slli_epi32::<8>(hi), part[P - 1]),
                            hi,
                        );
                    }
                    if let (true, Some(sh)) = (LS, K::LANE_SHIFT) {
                        // Exact: every product in lane k is a multiple of 2^sh[k].
                        let sh = _mm256_setr_epi32(
                            sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], sh[6], sh[7],
                        );
                        s32[r][b] = _mm256_srav_epi32(s32[r][b], sh);
                    }
                }
            }
            let mut ad = [_mm256_setzero_ps(); B];
            let mut asum = [_mm256_setzero_ps(); B];
            for b in 0..B {
                // SAFETY: the scales and sums follow the P parts of N vectors, 32-byte
                // aligned (caller).
                unsafe {
                    let f = a[b].add(32 * N * P).cast::<f32>();
                    ad[b] = _mm256_load_ps(f);
                    asum[b] = _mm256_load_ps(f.add(8));
                }
            }
            finish::<K, R, B>(w, ad, asum, s32, acc);
        }

        /// The dot product of one weight row with one activation row of `nb` blocks,
        /// decoding each item in registers.
        ///
        /// # Safety
        /// `w` must be readable for `nb` blocks, `a` must point to the [`row_layout`] of
        /// `nb` blocks with `P` parts, and the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn dot_row<K: Format, const P: usize>(
            w: *const u8,
            a: Row,
            nb: usize,
            scale: f32,
        ) -> f32 {
            let mut acc = [[_mm256_setzero_ps(); 1]; 1];
            let (octets, pairs) = row_layout(nb);
            let ob = K::OCTET_BYTES;
            for o in 0..octets {
                let mut d = Decoded::zero();
                // SAFETY: octet o lies within the row and exists in the activation row.
                unsafe {
                    K::decode_row(w.add(o * ob), &mut d);
                    dot_item::<K, 8, P, 1, 1, true>(
                        [&d],
                        [a.octets.add(o * octet_bytes(P))],
                        &mut acc,
                    );
                }
            }
            let tail = nb - 8 * octets;
            for t in 0..pairs {
                let mut d = Decoded::zero();
                // SAFETY: blocks 2t (and 2t + 1 if within the tail) are tail blocks of the
                // row; pair t exists in the activation row.
                unsafe {
                    let p = w.add(octets * ob);
                    if 2 * t + 1 < tail {
                        K::decode_pair::<true>(p, t, &mut d);
                    } else {
                        K::decode_pair::<false>(p, t, &mut d);
                    }
                    dot_item::<K, 2, P, 1, 1, false>(
                        [&d],
                        [a.pairs.add(t * pair_bytes(P))],
                        &mut acc,
                    );
                }
            }
            let y = super::avx2::hsum(acc[0][0]);
            if K::TENSOR_SCALE { y * scale } else { y }
        }

        /// Adds the dot products of `R` rows of decoded items with `B` activation rows to
        /// `acc`: octets `dec[r][..n]` (octets `o0..o0 + n` of the rows), then, if
        /// `pairs > 0`, the tail pairs `dec[r][COL_OCTETS..COL_OCTETS + pairs]`.
        ///
        /// # Safety
        /// Each `a[b]` must point to the [`row_layout`] of a row with at least `o0 + n`
        /// octets and `pairs` pairs of `P` parts, `dec[r]` must hold `COL_OCTETS + pairs`
        /// items, and the CPU must have this module's features.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn tile<K: Format, const P: usize, const R: usize, const B: usize>(
            dec: [&[Decoded]; R],
            a: [Row; B],
            o0: usize,
            n: usize,
            pairs: usize,
            mut acc: [[__m256; B]; R],
        ) -> [[__m256; B]; R] {
            // Accumulators by value, not behind a pointer: if LLVM declines to inline this
            // function, they still live in registers across the loop.
            for r in 0..R {
                assert!(
                    dec[r].len() >= COL_OCTETS + pairs && n <= COL_OCTETS,
                    "decoded items"
                );
            }
            let mut ao = [std::ptr::null(); B];
            for o in 0..n {
                let mut wo = [&dec[0][0]; R];
                for r in 0..R {
                    // SAFETY: o < n <= COL_OCTETS <= dec[r].len() (asserted above).
                    wo[r] = unsafe { dec[r].get_unchecked(o) };
                }
                for b in 0..B {
                    // SAFETY: octet o0 + o exists in every activation row (caller).
                    ao[b] = unsafe { a[b].octets.add((o0 + o) * octet_bytes(P)) };
                }
                // SAFETY: as above.
                unsafe { dot_item::<K, 8, P, R, B, false>(wo, ao, &mut acc) };
            }
            for t in 0..pairs {
                let mut wo = [&dec[0][0]; R];
                for r in 0..R {
                    // SAFETY: COL_OCTETS + t < dec[r].len() (asserted above).
                    wo[r] = unsafe { dec[r].get_unchecked(COL_OCTETS + t) };
                }
                for b in 0..B {
                    // SAFETY: pair t exists in every activation row (caller).
                    ao[b] = unsafe { a[b].pairs.add(t * pair_bytes(P)) };
                }
                // SAFETY: as above.
                unsafe { dot_item::<K, 2, P, R, B, false>(wo, ao, &mut acc) };
            }
            acc
        }

        /// Rows `row0 .. row0 + out[b].len()` of `w · x` for the quantized format `K` and
        /// activations of `P` parts.
        ///
        /// # Safety
        /// The CPU must have this module's features.
        #[target_feature(enable = $features)]
        unsafe fn rows_q<K: Format, const P: usize>(
            w: &QMatrix<'_>,
            row0: usize,
            x: &Activations,
            out: &mut [&mut [f32]],
        ) where
            Activations: Parts<P>,
        {
            let nrows = check_q8::<P>(w, row0, x, out);
            let batch = out.len();
            let scale = w.scale();
            let nb = w.cols() / 32;
            let rb = w.row_bytes();
            let rows = &w.data()[row0 * rb..(row0 + nrows) * rb];
            let row = |r: usize| rows[r * rb..].as_ptr();
            if batch == 1 {
                let a = act_row::<P>(x, 0);
                for r in 0..nrows {
                    // SAFETY: row r is a whole row of nb blocks inside `rows`, and check_q8
                    // verified the activation layout.
                    out[0][r] = unsafe { dot_row::<K, P>(row(r), a, nb, scale) };
                }
                return;
            }
            let (octets, pairs) = row_layout(nb);
            let tail = nb - 8 * octets;
            let ob = K::OCTET_BYTES;
            let slots = COL_OCTETS + pairs;
            // Once per call: looked up per tile, the rows' slices cost as many
            // instructions as the arithmetic of a 576-column tile.
            let acts: Vec<Row> = (0..batch).map(|b| act_row::<P>(x, b)).collect();
            let outs: Vec<*mut f32> = out.iter_mut().map(|o| o.as_mut_ptr()).collect();
            let mut scratch = vec![Decoded::zero(); $rows * slots];
            // One accumulator set per batch tile of 4, kept across column blocks.
            let mut accs = vec![[[_mm256_setzero_ps(); 4]; $rows]; batch.div_ceil(4)];
            // Rows r..r+R against every batch row: column block by column block, the
            // rows' items are decoded into `scratch` and meet every batch tile; the last
            // block carries the tail pairs.
            macro_rules! rows_tile {
                ($r:expr, $R:literal) => {{
                    let r = $r;
                    let mut wr = [std::ptr::null(); $R];
                    for i in 0..$R {
                        wr[i] = row(r + i);
                    }
                    let mut o0 = 0;
                    loop {
                        let n = COL_OCTETS.min(octets - o0);
                        let last = o0 + n == octets;
                        let np = if last { pairs } else { 0 };
                        for i in 0..$R {
                            // The same bytes of the rows two tiles on.
                            let from = wr[i].wrapping_add(o0 * ob + 2 * $R * rb);
                            prefetch(from, if last { rb - o0 * ob } else { n * ob });
                            let d = &mut scratch[i * slots..(i + 1) * slots];
                            for o in 0..n {
                                // SAFETY: octet o0 + o of row r + i lies within `rows`.
                                unsafe { K::decode(wr[i].add((o0 + o) * ob), &mut d[o]) };
                            }
                            for t in 0..np {
                                // SAFETY: blocks 2t (and 2t + 1 if in the tail) of the
                                // row's tail lie within `rows`.
                                unsafe {
                                    let p = wr[i].add(octets * ob);
                                    if 2 * t + 1 < tail {
                                        K::decode_pair::<true>(p, t, &mut d[COL_OCTETS + t]);
                                    } else {
                                        K::decode_pair::<false>(p, t, &mut d[COL_OCTETS + t]);
                                    }
                                }
                            }
                        }
                        if !last {
                            // The next column block's bytes, requested while this one
                            // meets the batch, so its decode does not wait on DRAM.
                            for i in 0..$R {
                                let row_bytes = &rows[(r + i) * rb..(r + i + 1) * rb];
                                let next =
                                    &row_bytes[(o0 + n) * ob..((o0 + n + COL_OCTETS) * ob).min(rb)];
                                for line in next.chunks(64) {
                                    _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                                }
                            }
                        }
                        let mut dec: [&[Decoded]; $R] = [&[]; $R];
                        for i in 0..$R {
                            dec[i] = &scratch[i * slots..(i + 1) * slots];
                        }
                        for (t, tile_acc) in accs.iter_mut().enumerate() {
                            super::tiles::with_batch_tile!((batch - 4 * t).min(4), |B| {
                                let mut a = [acts[4 * t]; B];
                                let mut acc = [[_mm256_setzero_ps(); B]; $R];
                                for j in 0..B {
                                    a[j] = acts[4 * t + j];
                                    if o0 > 0 {
                                        for i in 0..$R {
                                            acc[i][j] = tile_acc[i][j];
                                        }
                                    }
                                }
                                // SAFETY: check_q8 verified the activation layout, so
                                // octets o0..o0 + n and the pairs exist in every row, and
                                // dec holds `slots` items per row.
                                acc = unsafe { tile::<K, P, $R, B>(dec, a, o0, n, np, acc) };
                                if last {
                                    let mut v = [_mm256_setzero_ps(); 8];
                                    for i in 0..$R {
                                        for j in 0..B {
                                            v[4 * i + j] = acc[i][j];
                                        }
                                    }
                                    let mut y = super::avx2::hsum8(v);
                                    if K::TENSOR_SCALE {
                                        for y in &mut y {
                                            *y *= scale;
                                        }
                                    }
                                    for i in 0..$R {
                                        for j in 0..B {
                                            // SAFETY: batch row 4t + j < batch and row r + i
                                            // < nrows, the length of every output row.
                                            unsafe { *outs[4 * t + j].add(r + i) = y[4 * i + j] };
                                        }
                                    }
                                } else {
                                    for j in 0..B {
                                        for i in 0..$R {
                                            tile_acc[i][j] = acc[i][j];
                                        }
                                    }
                                }
                            });
                        }
                        if last {
                            break;
                        }
                        o0 += n;
                    }
                }};
            }
            let pairs_end = nrows / $rows * $rows;
            for r in (0..pairs_end).step_by($rows) {
                rows_tile!(r, $rows);
            }
            for r in pairs_end..nrows {
                rows_tile!(r, 1);
            }
        }
    };
}

pub(super) use q8_driver;
