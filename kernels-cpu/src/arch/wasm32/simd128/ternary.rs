//! TQ1_0, TQ2_0 and I2_S. TQ1_0 blocks are decoded to trits (two unsigned byte compares
//! per trit on `b·3ⁿ mod 256`) and repacked as TQ2_0 octets.
//!
//! A weight vector holds dword `v` of the 32-byte 2-bit half `h` in plane `k` for lane
//! `k` (NEON's layout, `arch/aarch64/neon/ternary.rs`). simd128 has no per-lane shifts,
//! so each 16-byte quarter of a half is shifted once per plane (`u8x16_shr`), masked,
//! and the four results are transposed. All integer, exact: `Σ(c − 1)·q = Σc·q − S`,
//! with int16 activations' parts combined as `255·Σc·h + Σc·l`. I2_S's tensor scale
//! multiplies the row sum once.

use core::arch::wasm32::*;

use super::{dot_halves, groups, hsum_f32, hsum_i32, load16, load16_i8, transpose4};
use crate::{
    QMatrix, WeightFormat,
    activations::{Activations, Parts, QOctet, QPair, row_layout},
};

/// One decoded 2-bit octet: `w[v][h]` holds values `4v..4v + 4` of blocks `4h..4h + 4`,
/// `d` the TQ2_0 block scale (1 for I2_S).
#[derive(Clone, Copy)]
struct Decoded {
    w: [[v128; 2]; 8],
    d: f32,
}

impl Decoded {
    fn zero() -> Self {
        Self {
            w: [[u8x16_splat(0); 2]; 8],
            d: 0.0,
        }
    }
}

/// Bit position of plane `l` in each byte (TQ2_0: `2l`; I2_S, `rev`: `6 − 2l`).
const fn plane_shift(rev: bool, l: usize) -> u32 {
    if rev { 6 - 2 * l as u32 } else { 2 * l as u32 }
}

/// The codes of plane `l` of 16 packed bytes.
#[inline]
fn plane(x: v128, rev: bool, l: usize) -> v128 {
    v128_and(u8x16_shr(x, plane_shift(rev, l)), u8x16_splat(3))
}

/// Decodes the 64 code bytes of an octet into `out.w`.
#[inline]
fn decode(rev: bool, code: &[u8], out: &mut Decoded) {
    for h in 0..2 {
        for quarter in 0..2 {
            let x = load16(code, 32 * h + 16 * quarter);
            // Lane k of r[i] is dword i of plane k.
            let r = transpose4([0, 1, 2, 3].map(|l| plane(x, rev, l)));
            for (i, r) in r.into_iter().enumerate() {
                out.w[4 * quarter + i][h] = r;
            }
        }
    }
}

/// Trit `n` of each byte `b`, given `x = b·3ⁿ mod 256`: `⌊3x / 256⌋`, that is 1 from 86
/// and 2 from 171.
#[inline]
fn trits(x: v128) -> v128 {
    let ge86 = u8x16_ge(x, u8x16_splat(86));
    let ge171 = u8x16_ge(x, u8x16_splat(171));
    i8x16_sub(i8x16_sub(u8x16_splat(0), ge86), ge171)
}

/// `3x mod 256` per byte.
#[inline]
fn times3(x: v128) -> v128 {
    i8x16_add(x, i8x16_add(x, x))
}

/// A TQ1_0 block (54 bytes) repacked as the 64 code bytes of a TQ2_0 octet (block
/// `4j + l` in plane `l` of half `j`), for [`decode`]: blocks 0..5 are the trits of
/// `qs[0..32]`, blocks 5, 6 and half of 7 those of `qs[32..48]`, and `qh[j]` times `3ⁿ` in
/// byte `4n + j` gives the rest of block 7 in order.
fn tq1_0_as_planes(block: &[u8]) -> [u8; 64] {
    let qh = u32::from_le_bytes([block[48], block[49], block[50], block[51]]);
    let z = u32x4_splat(qh);
    let z3 = times3(z);
    let z9 = times3(z3);
    let z27 = times3(z9);
    // Dword n of zh is qh·3ⁿ.
    let zh = i32x4_shuffle::<0, 1, 4, 5>(
        i32x4_shuffle::<0, 4, 0, 4>(z, z3),
        i32x4_shuffle::<0, 4, 0, 4>(z9, z27),
    );
    let mut x = [load16(block, 0), load16(block, 16), load16(block, 32)];
    let mut t = [[u8x16_splat(0); 3]; 5];
    for n in 0..5 {
        if n > 0 {
            for x in &mut x {
                *x = times3(*x);
            }
        }
        for i in 0..3 {
            t[n][i] = trits(x[i]);
        }
    }
    let blocks: [[v128; 2]; 8] = [
        [t[0][0], t[0][1]],
        [t[1][0], t[1][1]],
        [t[2][0], t[2][1]],
        [t[3][0], t[3][1]],
        [t[4][0], t[4][1]],
        [t[0][2], t[1][2]],
        [t[2][2], t[3][2]],
        [t[4][2], trits(zh)],
    ];
    let mut out = [0u8; 64];
    for j in 0..2 {
        for h in 0..2 {
            let b = |l: usize| blocks[4 * j + l][h];
            let v = v128_or(
                v128_or(b(0), u8x16_shl(b(1), 2)),
                v128_or(u8x16_shl(b(2), 4), u8x16_shl(b(3), 6)),
            );
            let o = &mut out[32 * j + 16 * h..32 * j + 16 * h + 16];
            // SAFETY: `o` holds 16 writable bytes; v128_store has no alignment need.
            unsafe { v128_store(o.as_mut_ptr().cast(), v) };
        }
    }
    out
}

/// 16 bytes of part `p` of an activation octet at byte `at`.
#[inline]
fn act<const P: usize>(a: &QOctet<P>, p: usize, at: usize) -> v128 {
    load16_i8(&a.qs[p], at)
}

/// Adds `d · d_a · (Σc·q − S)` per block lane of one decoded octet against one
/// activation octet of `P` parts to `acc`.
#[inline]
fn dot_octet<const P: usize>(w: &Decoded, a: &QOctet<P>, acc: &mut [v128; 2]) {
    let zero = i32x4_splat(0);
    for h in 0..2 {
        let mut s = [(zero, zero); 2];
        for v in 0..8 {
            for p in 0..P {
                s[p] = dot_halves(s[p], w.w[v][h], act(a, p, 32 * v + 16 * h));
            }
        }
        let mut e = groups(s[0]);
        if P == 2 {
            // q = 255·h + l, so Σc·q = 255·Σc·h + Σc·l, exactly.
            e = i32x4_add(i32x4_mul(e, i32x4_splat(255)), groups(s[1]));
        }
        let f = |x: &[f32; 8]| f32x4(x[4 * h], x[4 * h + 1], x[4 * h + 2], x[4 * h + 3]);
        let (ad, asum) = (f(&a.d), f(&a.s));
        let e = f32x4_convert_i32x4(i32x4_sub(e, i32x4_trunc_sat_f32x4(asum)));
        acc[h] = f32x4_add(acc[h], f32x4_mul(f32x4_mul(e, f32x4_splat(w.d)), ad));
    }
}

/// Block `j` (0..4) of an I2_S row's 32-byte tail group `g` against half `h` of an
/// activation pair: `d_a · (Σc·q − S)`.
fn dot_tail_block<const P: usize>(g: &[u8], j: usize, pair: &QPair<P>, h: usize) -> f32 {
    let (wlo, whi) = (plane(load16(g, 0), true, j), plane(load16(g, 16), true, j));
    let mut dot = 0i32;
    for part in 0..P {
        let q = &pair.qs[part];
        let zero = i32x4_splat(0);
        let s = dot_halves((zero, zero), wlo, load16_i8(q, 16 * h));
        let s = dot_halves(s, whi, load16_i8(q, 32 + 16 * h));
        let sum = hsum_i32(groups(s));
        // Integer, exact: Σc·q = 255·Σc·h + Σc·l for int16.
        dot = 255 * dot + sum;
    }
    pair.d[4 * h] * (dot - pair.s[4 * h] as i32) as f32
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
        x.feeds(w.format()) && w.format().is_ternary(),
        "activation kind"
    );
    nrows
}

fn rows<const P: usize>(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]])
where
    Activations: Parts<P>,
{
    let nrows = check::<P>(w, row0, x, out);
    let tensor = w.format() == WeightFormat::I2S;
    let (rev, ob, scale_at) = match w.format() {
        WeightFormat::Tq1_0 => (false, 54, Some(52)),
        WeightFormat::Tq2_0 => (false, 66, Some(64)),
        _ => (true, 64, None),
    };
    let nb = w.cols() / 32;
    let (octets, _) = row_layout(nb);
    let tail = nb - 8 * octets;
    let mut dec = vec![Decoded::zero(); octets];
    for r in 0..nrows {
        let row = w.row_data(row0 + r);
        for (o, d) in dec.iter_mut().enumerate() {
            let block = &row[o * ob..(o + 1) * ob];
            if ob == 54 {
                decode(rev, &tq1_0_as_planes(block), d);
            } else {
                decode(rev, &block[..64], d);
            }
            d.d = scale_at.map_or(1.0, |at| {
                half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
            });
        }
        for (b, y) in out.iter_mut().enumerate() {
            let ao = Parts::<P>::octets(x, b);
            let ap = Parts::<P>::pairs(x, b);
            let mut acc = [f32x4_splat(0.0); 2];
            for (d, ao) in dec.iter().zip(ao) {
                dot_octet(d, ao, &mut acc);
            }
            let v = f32x4_add(acc[0], acc[1]);
            let mut s = hsum_f32(v);
            // Only I2_S rows have a tail: one group of four blocks.
            let g = &row[octets * ob..];
            for j in 0..tail {
                s += dot_tail_block(g, j, &ap[j / 2], j % 2);
            }
            y[r] = if tensor { s * w.scale() } else { s };
        }
    }
}

fn rows_any(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    if x.parts() == 2 {
        rows::<2>(w, row0, x, out)
    } else {
        rows::<1>(w, row0, x, out)
    }
}

pub(super) fn rows_tq1_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(w, row0, x, out)
}

pub(super) fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(w, row0, x, out)
}

pub(super) fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    rows_any(w, row0, x, out)
}
