//! The stored form of prepared integer activations, and the scalar quantizers that define
//! it bit for bit.
//!
//! A row of `blocks` blocks of 32 values is stored as `blocks / 8` [`QOctet`]s, then the
//! last `blocks % 8` two at a time in [`QPair`]s. Each holds `P` *parts*: `P = 1` for
//! [`Precision::Int8`](super::Precision::Int8) (the value itself, −127..=127) and `P = 2`
//! for [`Precision::Int16`](super::Precision::Int16) (a value `q` in ±[`Q16_MAX`] written
//! in balanced base 255, `q = 255·h + l`: part 0 the high digit `h`, part 1 the low digit
//! `l`, both in −127..=127). Every part is an int8 vector that never holds −128, so every
//! SIMD path multiplies it with the weight bytes exactly as it does int8 activations
//! (including the AVX2 sign trick for Q8_0, which cannot negate −128) and combines the
//! integer sums (`255·Σw·h + Σw·l = Σw·q`) before anything becomes a float.

/// Values per activation block.
pub(crate) const QK: usize = 32;

/// Largest magnitude of a 16-bit activation value: `127·255 + 127` (= 127·256), the
/// largest whose two balanced base-255 digits both stay within ±127.
pub const Q16_MAX: i32 = 127 * 255 + 127;

/// Eight consecutive activation blocks `k = 0..8` of one row, transposed in 4-byte groups.
///
/// `qs[p][32·v + 4·k + i]` is part `p` of value `4·v + i` of block `k`: the 32-byte vector
/// `v` holds values `4v..4v + 4` of every block, so it meets dword `v` of eight weight
/// blocks gathered into one register (for 4-bit weights, dword `v % 4` of their nibbles,
/// low nibbles for `v < 4`). `d[k]` and `s[k]` are block `k`'s scale and sum `S = Σ q`.
///
/// Part `p` of vector `v` is at byte `32·(8·p + v)`, the scales at `256·P`, the sums 32
/// bytes later: the SIMD kernels rely on this.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct QOctet<const P: usize> {
    pub(crate) qs: [[i8; 256]; P],
    pub(crate) d: [f32; 8],
    pub(crate) s: [f32; 8],
}

const _: () = assert!(size_of::<QOctet<1>>() == 320 && size_of::<QOctet<2>>() == 576);

impl<const P: usize> QOctet<P> {
    pub(crate) const ZERO: Self = Self {
        qs: [[0; 256]; P],
        d: [0.0; 8],
        s: [0.0; 8],
    };

    /// Index in `qs[p]` of value `e` (0..32) of block `k` (0..8).
    #[inline]
    pub(crate) fn pos(k: usize, e: usize) -> usize {
        32 * (e / 4) + 4 * k + e % 4
    }
}

/// Two consecutive activation blocks `j = 2t` and `j + 1` of one row.
///
/// Each part `qs[p]` holds `a_j[0..16]`, `a_{j+1}[0..16]`, `a_j[16..32]`, `a_{j+1}[16..32]`:
/// a 256-bit load of `qs[p][0..32]` meets the low nibbles (values 0..16) of weight blocks
/// `j` and `j + 1`, a load of `qs[p][32..64]` their high nibbles. `d` is `[d_j; 4] ++
/// [d_{j+1}; 4]` and `s` is `[S_j, 0, 0, 0, S_{j+1}, 0, 0, 0]`, both ready to be used as
/// 8-lane vectors. A row with an odd number of blocks ends with a pair whose second block
/// is all zeros. Part `p` of vector `v` is at byte `32·(2·p + v)`, the scales at `64·P`.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct QPair<const P: usize> {
    pub(crate) qs: [[i8; 64]; P],
    pub(crate) d: [f32; 8],
    pub(crate) s: [f32; 8],
}

const _: () = assert!(size_of::<QPair<1>>() == 128 && size_of::<QPair<2>>() == 192);

impl<const P: usize> QPair<P> {
    pub(crate) const ZERO: Self = Self {
        qs: [[0; 64]; P],
        d: [0.0; 8],
        s: [0.0; 8],
    };

    /// Index in `qs[p]` of value `e` (0..32) of half `h` (0 for block `2t`, 1 for `2t + 1`).
    #[inline]
    pub(crate) fn pos(h: usize, e: usize) -> usize {
        (e / 16) * 32 + h * 16 + e % 16
    }
}

/// Number of octets and of tail pairs in a row of `blocks` blocks.
pub(crate) fn row_layout(blocks: usize) -> (usize, usize) {
    (blocks / 8, (blocks % 8).div_ceil(2))
}

/// One activation block in plain order: the values stand for `d · qs[i]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QBlock {
    /// Quantized values: within ±127 for int8 activations, ±[`Q16_MAX`] for int16.
    pub qs: [i16; QK],
    /// Scale.
    pub d: f32,
    /// `Σ qs`.
    pub sum: i32,
}

/// One prepared activation row of either precision.
#[derive(Clone, Copy, Debug)]
pub struct QRow<'a> {
    parts: RowParts<'a>,
    blocks: usize,
}

#[derive(Clone, Copy, Debug)]
enum RowParts<'a> {
    Int8(&'a [QOctet<1>], &'a [QPair<1>]),
    Int16(&'a [QOctet<2>], &'a [QPair<2>]),
}

impl<'a> QRow<'a> {
    pub(crate) fn int8(octets: &'a [QOctet<1>], pairs: &'a [QPair<1>], blocks: usize) -> Self {
        Self {
            parts: RowParts::Int8(octets, pairs),
            blocks,
        }
    }

    pub(crate) fn int16(octets: &'a [QOctet<2>], pairs: &'a [QPair<2>], blocks: usize) -> Self {
        Self {
            parts: RowParts::Int16(octets, pairs),
            blocks,
        }
    }

    /// Number of 32-value blocks.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Block `j`.
    ///
    /// # Panics
    /// If `j >= blocks()`.
    pub fn block(&self, j: usize) -> QBlock {
        assert!(j < self.blocks, "block {j} of {}", self.blocks);
        match self.parts {
            RowParts::Int8(o, p) => block_of(o, p, j),
            RowParts::Int16(o, p) => block_of(o, p, j),
        }
    }
}

/// Value `q` from its parts: `q` itself, or `255·h + l`.
fn join<const P: usize>(parts: [i8; P]) -> i16 {
    parts.iter().fold(0, |q, &v| 255 * q + i16::from(v))
}

fn block_of<const P: usize>(octets: &[QOctet<P>], pairs: &[QPair<P>], j: usize) -> QBlock {
    if j < 8 * octets.len() {
        let (o, k) = (&octets[j / 8], j % 8);
        return QBlock {
            qs: std::array::from_fn(|e| join(o.qs.map(|q| q[QOctet::<P>::pos(k, e)]))),
            d: o.d[k],
            sum: o.s[k] as i32,
        };
    }
    let j = j - 8 * octets.len();
    let (pair, h) = (&pairs[j / 2], j % 2);
    QBlock {
        qs: std::array::from_fn(|e| join(pair.qs.map(|q| q[QPair::<P>::pos(h, e)]))),
        d: pair.d[4 * h],
        sum: pair.s[4 * h] as i32,
    }
}

/// One block quantized to `±qmax`: values, scale, sum. `d = max|x| / qmax`,
/// `q = roundf(x / d)` (as ggml's `quantize_row_q8_0_ref` for `qmax = 127`).
pub(crate) fn quantize_block(x: &[f32; QK], qmax: f32) -> ([i32; QK], f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / qmax;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = x.map(|v| crate::formats::round_half_away(v * id));
    (q, d, q.iter().sum())
}

/// The parts of a value: `[q]` for int8, `[h, l]` for int16 with `q = 255·h + l`,
/// `h = round(q / 255) = ⌊(q + 127) / 255⌋` and `l = q − 255·h`, both within ±127 for
/// `|q| <=` [`Q16_MAX`].
#[inline]
pub(crate) fn split<const P: usize>(q: i32) -> [i8; P] {
    if P == 1 {
        return [q as i8; P];
    }
    let h = (q + 127).div_euclid(255);
    let l = q - 255 * h;
    let mut out = [0; P];
    out[0] = h as i8;
    out[P - 1] = l as i8;
    out
}

/// Scalar activation quantizer: one row of `x` (whole blocks) into its octets and tail
/// pairs ([`row_layout`]), int8 (`P = 1`, `qmax = 127`) or int16 (`P = 2`,
/// `qmax =` [`Q16_MAX`]). Every SIMD quantizer must write the same bits.
pub(crate) fn quantize_row<const P: usize>(
    x: &[f32],
    octets: &mut [QOctet<P>],
    pairs: &mut [QPair<P>],
) {
    let qmax = if P == 1 { 127.0 } else { Q16_MAX as f32 };
    fill_row(x, octets, pairs, |blk| quantize_block(blk, qmax));
}

/// Int8 activations with one scale for the whole row (one token), as BitNet b1.58 was
/// trained and bitnet.cpp computes (`quantize_row_i8_s`): `d = max|x| / 127` over the
/// row, `q = roundf(x / d)`. Stored in the int8 layout, every block carrying the row's
/// `d`, so every int8 kernel consumes it unchanged.
pub(crate) fn quantize_row_per_token(x: &[f32], octets: &mut [QOctet<1>], pairs: &mut [QPair<1>]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    fill_row(x, octets, pairs, |blk| {
        let q = blk.map(|v| crate::formats::round_half_away(v * id));
        (q, d, q.iter().sum())
    });
}

/// Writes each block of `x`, quantized by `quantize` (values, scale, sum), into the
/// row's octets and tail pairs.
fn fill_row<const P: usize>(
    x: &[f32],
    octets: &mut [QOctet<P>],
    pairs: &mut [QPair<P>],
    quantize: impl Fn(&[f32; QK]) -> ([i32; QK], f32, i32),
) {
    let blocks = x.as_chunks::<QK>().0;
    debug_assert_eq!((octets.len(), pairs.len()), row_layout(blocks.len()));
    let (head, tail) = blocks.split_at(8 * octets.len());
    for (o, blks) in octets.iter_mut().zip(head.chunks_exact(8)) {
        for (k, blk) in blks.iter().enumerate() {
            let (q, d, sum) = quantize(blk);
            for (e, q) in q.into_iter().enumerate() {
                for (p, v) in split::<P>(q).into_iter().enumerate() {
                    o.qs[p][QOctet::<P>::pos(k, e)] = v;
                }
            }
            o.d[k] = d;
            o.s[k] = sum as f32;
        }
    }
    for (t, pair) in pairs.iter_mut().enumerate() {
        *pair = QPair::ZERO;
        for h in 0..2 {
            let Some(blk) = tail.get(2 * t + h) else {
                continue;
            };
            let (q, d, sum) = quantize(blk);
            for (e, q) in q.into_iter().enumerate() {
                for (p, v) in split::<P>(q).into_iter().enumerate() {
                    pair.qs[p][QPair::<P>::pos(h, e)] = v;
                }
            }
            pair.d[4 * h..4 * h + 4].fill(d);
            pair.s[4 * h] = sum as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int16_parts_rebuild_every_value_within_int8_ranges() {
        for q in -Q16_MAX..=Q16_MAX {
            let [h, l] = split::<2>(q);
            assert_eq!(i32::from(join([h, l])), q);
            assert!(
                (-127..=127).contains(&h) && (-127..=127).contains(&l),
                "{q}"
            );
        }
        assert_eq!(split::<1>(-127), [-127]);
    }

    #[test]
    fn per_token_blocks_share_the_row_scale() {
        // 11 blocks: one octet and two tail pairs (the last half empty).
        let x: Vec<f32> = (0..QK * 11)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * if i == 200 { 9.0 } else { 0.1 })
            .collect();
        let (no, np) = row_layout(11);
        let mut octets = vec![QOctet::<1>::ZERO; no];
        let mut pairs = vec![QPair::<1>::ZERO; np];
        quantize_row_per_token(&x, &mut octets, &mut pairs);
        let row = QRow::int8(&octets, &pairs, 11);
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        for j in 0..11 {
            let b = row.block(j);
            assert_eq!(b.d, amax / 127.0, "block {j}");
            for (e, &q) in b.qs.iter().enumerate() {
                let want = crate::formats::round_half_away(x[QK * j + e] * (127.0 / amax));
                assert_eq!(i32::from(q), want, "block {j} value {e}");
            }
            assert_eq!(b.sum, b.qs.iter().map(|&q| i32::from(q)).sum::<i32>());
        }
    }
}
