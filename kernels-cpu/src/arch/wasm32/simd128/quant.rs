//! Q4_0, Q4_1 and Q8_0 against integer activations (one int8 part per value, or two for
//! int16: `q = 255·h + l`).
//!
//! A block's value is `d·n + m` (Q4_0: `m = −8d`, Q8_0: `m = 0`, Q4_1: the stored
//! minimum), so one block against activations `d_a·q` is `d_a·(d·Σn·q + m·S)` with
//! `S = Σq` precomputed: nibbles stay unsigned (0..15, which multiply as int8 exactly) and
//! the integer dot product of a whole octet ends in one i32 lane per block.

use core::arch::wasm32::*;

use super::{
    dot_halves, f16_bits_to_f32, groups, hsum_f32, hsum_i32, load16, load16_i8, transpose4,
};
use crate::{
    QMatrix, WeightFormat,
    activations::{Activations, Parts, QOctet, QPair, row_layout},
};

/// One octet of weight blocks decoded for the dot kernels: `w[v][h]` holds values
/// `4v..4v + 4` of blocks `4h..4h + 4` (matching activation bytes `32v + 16h..`), `d[h]`
/// and `m[h]` the scales and offsets of those blocks.
#[derive(Clone, Copy)]
struct Decoded {
    w: [[v128; 2]; 8],
    d: [v128; 2],
    m: [v128; 2],
}

impl Decoded {
    fn zero() -> Self {
        let z = u8x16_splat(0);
        Self {
            w: [[z; 2]; 8],
            d: [z; 2],
            m: [z; 2],
        }
    }
}

/// Layout of a weight format: bytes per block, offset of the values, 4-bit or 8-bit
/// values, and whether a minimum is stored after the scale.
#[derive(Clone, Copy)]
struct Layout {
    bb: usize,
    qs: usize,
    nibbles: bool,
    min: bool,
}

fn layout(f: WeightFormat) -> Layout {
    match f {
        WeightFormat::Q4_0 => Layout {
            bb: 18,
            qs: 2,
            nibbles: true,
            min: false,
        },
        WeightFormat::Q4_1 => Layout {
            bb: 20,
            qs: 4,
            nibbles: true,
            min: true,
        },
        _ => Layout {
            bb: 34,
            qs: 2,
            nibbles: false,
            min: false,
        },
    }
}

impl Layout {
    /// The offset `m` of a block whose scale is `d` and whose (Q4_1) minimum is `min`.
    fn offset(self, d: v128, min: impl FnOnce() -> v128) -> v128 {
        if self.min {
            min()
        } else if self.nibbles {
            f32x4_mul(d, f32x4_splat(-8.0))
        } else {
            f32x4_splat(0.0)
        }
    }
}

/// The f16 at byte `at` of blocks `4h..4h + 4` of the octet `o`, as f32 lanes.
#[inline]
fn halves(o: &[u8], bb: usize, h: usize, at: usize) -> v128 {
    let bits = |k: usize| {
        let p = (4 * h + k) * bb + at;
        u32::from(u16::from_le_bytes([o[p], o[p + 1]]))
    };
    f16_bits_to_f32(u32x4(bits(0), bits(1), bits(2), bits(3)))
}

/// Decodes the octet `o` (`8 · l.bb` bytes) into `out`.
#[inline]
fn decode(l: Layout, o: &[u8], out: &mut Decoded) {
    for h in 0..2 {
        let block = |k: usize| (4 * h + k) * l.bb + l.qs;
        if l.nibbles {
            let g = transpose4([0, 1, 2, 3].map(|k| load16(o, block(k))));
            for i in 0..4 {
                out.w[i][h] = v128_and(g[i], u8x16_splat(0x0F));
                out.w[4 + i][h] = u8x16_shr(g[i], 4);
            }
        } else {
            let lo = transpose4([0, 1, 2, 3].map(|k| load16(o, block(k))));
            let hi = transpose4([0, 1, 2, 3].map(|k| load16(o, block(k) + 16)));
            for i in 0..4 {
                out.w[i][h] = lo[i];
                out.w[4 + i][h] = hi[i];
            }
        }
        out.d[h] = halves(o, l.bb, h, 0);
        out.m[h] = l.offset(out.d[h], || halves(o, l.bb, h, 2));
    }
}

/// Adds `d_a · (d·e + m·S)` per block lane of one decoded octet against one activation
/// octet of `P` parts to `acc`.
#[inline]
fn dot_octet<const P: usize>(w: &Decoded, a: &QOctet<P>, acc: &mut [v128; 2]) {
    let zero = i32x4_splat(0);
    for h in 0..2 {
        let mut s = [(zero, zero); 2];
        for v in 0..8 {
            for p in 0..P {
                s[p] = dot_halves(s[p], w.w[v][h], load16_i8(&a.qs[p], 32 * v + 16 * h));
            }
        }
        let mut e = groups(s[0]);
        if P == 2 {
            // q = 255·h + l, so Σw·q = 255·Σw·h + Σw·l, exactly.
            e = i32x4_add(i32x4_mul(e, i32x4_splat(255)), groups(s[1]));
        }
        let f = |x: &[f32; 8]| f32x4(x[4 * h], x[4 * h + 1], x[4 * h + 2], x[4 * h + 3]);
        let (ad, asum) = (f(&a.d), f(&a.s));
        let g = f32x4_add(
            f32x4_mul(w.m[h], asum),
            f32x4_mul(f32x4_convert_i32x4(e), w.d[h]),
        );
        acc[h] = f32x4_add(acc[h], f32x4_mul(g, ad));
    }
}

/// The tail block `block` (a whole block's bytes) against half `h` of `pair`.
fn dot_tail_block<const P: usize>(l: Layout, block: &[u8], pair: &QPair<P>, h: usize) -> f32 {
    let (wlo, whi) = if l.nibbles {
        let q = load16(block, l.qs);
        (v128_and(q, u8x16_splat(0x0F)), u8x16_shr(q, 4))
    } else {
        (load16(block, l.qs), load16(block, l.qs + 16))
    };
    let mut dot = 0i32;
    for part in 0..P {
        let q = &pair.qs[part];
        let zero = i32x4_splat(0);
        let s = dot_halves((zero, zero), wlo, load16_i8(q, 16 * h));
        let s = dot_halves(s, whi, load16_i8(q, 32 + 16 * h));
        // Integer, exact: Σw·q = 255·Σw·h + Σw·l for int16.
        dot = 255 * dot + hsum_i32(groups(s));
    }
    let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
    let d = f16(0);
    let m = if l.min {
        f16(2)
    } else if l.nibbles {
        -8.0 * d
    } else {
        0.0
    };
    let (ad, sum) = (pair.d[4 * h], pair.s[4 * h]);
    ad * (d * dot as f32 + m * sum)
}

/// Checks the chunk's shape; returns the number of rows in it.
fn check<const P: usize>(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &[&mut [f32]]) -> usize
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
    nrows
}

fn rows<const P: usize>(
    l: Layout,
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) where
    Activations: Parts<P>,
{
    let nrows = check::<P>(w, row0, x, out);
    let nb = w.cols() / 32;
    let (octets, _) = row_layout(nb);
    let tail = nb - 8 * octets;
    let ob = 8 * l.bb;
    let mut dec = vec![Decoded::zero(); octets];
    for r in 0..nrows {
        let row = w.row_data(row0 + r);
        for (o, d) in dec.iter_mut().enumerate() {
            decode(l, &row[o * ob..(o + 1) * ob], d);
        }
        for (b, y) in out.iter_mut().enumerate() {
            let ao = Parts::<P>::octets(x, b);
            let ap = Parts::<P>::pairs(x, b);
            let mut acc = [f32x4_splat(0.0); 2];
            for (d, ao) in dec.iter().zip(ao) {
                dot_octet(d, ao, &mut acc);
            }
            let mut s = hsum_f32(f32x4_add(acc[0], acc[1]));
            for j in 0..tail {
                let at = (8 * octets + j) * l.bb;
                s += dot_tail_block(l, &row[at..at + l.bb], &ap[j / 2], j % 2);
            }
            y[r] = s;
        }
    }
}

/// `rows` for the precision `x` was prepared with.
fn rows_any(
    f: WeightFormat,
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    if x.parts() == 2 {
        rows::<2>(layout(f), w, row0, x, out)
    } else {
        rows::<1>(layout(f), w, row0, x, out)
    }
}

pub(super) fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(WeightFormat::Q8_0, w, row0, x, out)
}

pub(super) fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(WeightFormat::Q4_0, w, row0, x, out)
}

pub(super) fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(WeightFormat::Q4_1, w, row0, x, out)
}
