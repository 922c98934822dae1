//! TQ1_0, TQ2_0 and I2_S (ternary codes) against integer activations, stamped out once
//! without and once with `dotprod` by [`ternary_neon!`]. TQ1_0 blocks are decoded to
//! trits (`vmulq_u8` by 3ⁿ, then the top byte of `·3`) and repacked as a TQ2_0 octet.
//!
//! An octet of 256 values is two 32-byte halves (TQ2_0's `qs`, or two I2_S groups); block
//! `k` of the octet is 2-bit plane `k % 4` of half `k / 4` (TQ2_0: plane `l` at bit `2l`,
//! I2_S at bit `6 − 2l`). The activation octet's 16-byte vector `(v, h)` holds values
//! `4v..4v + 4` of blocks `4h..4h + 4`, so the matching weight vector is dword `v` of half
//! `h` repeated in all four lanes (`vdupq_laneq_u32`), shifted right by each lane's plane
//! (`vshlq_u32` by negative counts) and masked to the code `c ∈ {0, 1, 2}`. The dot
//! products are signed (SDOT or SMULL), so the codes go in as they are, and the offset of
//! 1 is removed exactly in integers: `Σ(c − 1)·q = Σc·q − S`.
//!
//! Each weight row is decoded once per call and then meets every batch row, with the
//! same instruction sequence for every (row, batch row), as for the other formats. I2_S's
//! per-tensor scale multiplies the row sum once (the block lanes are `d_a · (P − S)`).

use std::arch::aarch64::*;

use super::hsum;
use crate::{
    QMatrix, WeightFormat,
    activations::{Activations, Parts, QOctet, QPair, row_layout},
};

/// One decoded 2-bit octet: `w[v][h]` holds values `4v..4v + 4` of blocks `4h..4h + 4`,
/// and `d` the TQ2_0 block scale (1 for I2_S).
#[derive(Clone, Copy)]
struct Decoded {
    w: [[int8x16_t; 2]; 8],
    d: f32,
}

impl Decoded {
    fn zero() -> Self {
        // SAFETY: plain vector data, for which all-zero bits are a valid value.
        unsafe { std::mem::zeroed() }
    }
}

/// Bit position of plane `l` in each byte.
const fn plane_shift(rev: bool, l: usize) -> i32 {
    if rev { 6 - 2 * l as i32 } else { 2 * l as i32 }
}

/// Decodes the octet at `p` (64 code bytes) into `out.w`.
///
/// # Safety
/// `p` must be readable for 64 bytes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn decode(rev: bool, p: *const u8, out: &mut Decoded) {
    let sh: [i32; 4] = [0, 1, 2, 3].map(|l| -plane_shift(rev, l));
    // SAFETY: `sh` holds 4 i32.
    let sh = unsafe { vld1q_s32(sh.as_ptr()) };
    let three = vdupq_n_u8(3);
    for h in 0..2 {
        // SAFETY: the 32 bytes of half h (caller).
        let (lo, hi) = unsafe {
            (
                vreinterpretq_u32_u8(vld1q_u8(p.add(32 * h))),
                vreinterpretq_u32_u8(vld1q_u8(p.add(32 * h + 16))),
            )
        };
        let bcast = [
            vdupq_laneq_u32::<0>(lo),
            vdupq_laneq_u32::<1>(lo),
            vdupq_laneq_u32::<2>(lo),
            vdupq_laneq_u32::<3>(lo),
            vdupq_laneq_u32::<0>(hi),
            vdupq_laneq_u32::<1>(hi),
            vdupq_laneq_u32::<2>(hi),
            vdupq_laneq_u32::<3>(hi),
        ];
        for v in 0..8 {
            let c = vandq_u8(vreinterpretq_u8_u32(vshlq_u32(bcast[v], sh)), three);
            out.w[v][h] = vreinterpretq_s8_u8(c);
        }
    }
}

/// Trit `n` of each byte of `b`, given `x = b·3ⁿ mod 256`: `(x·3) >> 8`.
#[target_feature(enable = "neon")]
#[inline]
fn trits(x: uint8x16_t) -> uint8x16_t {
    let three = vdup_n_u8(3);
    vcombine_u8(
        vshrn_n_u16::<8>(vmull_u8(vget_low_u8(x), three)),
        vshrn_n_u16::<8>(vmull_high_u8(x, vdupq_n_u8(3))),
    )
}

/// Repacks the TQ1_0 block at `p` (54 bytes) as the 64 code bytes of a TQ2_0 octet
/// (block `4j + l` of the octet in plane `l` of half `j`), so [`decode`] reads it.
///
/// The trits of `qs[0..32]` are blocks 0..5; those of `qs[32..48]` blocks 5, 6 and the
/// first half of 7; `qh[j]` premultiplied by `3ⁿ` in byte `4n + j` gives the rest of
/// block 7 in order.
///
/// # Safety
/// `p` must be readable for 54 bytes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tq1_0_as_planes(p: *const u8) -> [u8; 64] {
    // SAFETY: qs is bytes 0..48, qh 48..52 (caller).
    let (q0, q1, q2, qh) = unsafe {
        (
            vld1q_u8(p),
            vld1q_u8(p.add(16)),
            vld1q_u8(p.add(32)),
            p.add(48).cast::<u32>().read_unaligned(),
        )
    };
    let pow: [u8; 16] = [1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27];
    // SAFETY: `pow` holds 16 bytes.
    let zh = vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(qh)), unsafe {
        vld1q_u8(pow.as_ptr())
    });
    // t[n][i]: trit n of the 16 bytes i (q0, q1, q2).
    let mut x = [q0, q1, q2];
    let mut t = [[vdupq_n_u8(0); 3]; 5];
    for n in 0..5 {
        if n > 0 {
            for x in &mut x {
                *x = vmulq_u8(*x, vdupq_n_u8(3));
            }
        }
        for i in 0..3 {
            t[n][i] = trits(x[i]);
        }
    }
    // Each block as two 16-byte halves, in plain order.
    let blocks: [[uint8x16_t; 2]; 8] = [
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
            let v = vorrq_u8(
                vorrq_u8(b(0), vshlq_n_u8::<2>(b(1))),
                vorrq_u8(vshlq_n_u8::<4>(b(2)), vshlq_n_u8::<6>(b(3))),
            );
            // SAFETY: bytes 32j + 16h .. + 16 of `out`.
            unsafe { vst1q_u8(out.as_mut_ptr().add(32 * j + 16 * h), v) };
        }
    }
    out
}

/// The format's plane order, its bytes per octet, and where its f16 block scale is (none
/// for I2_S).
fn params(f: WeightFormat) -> (bool, usize, Option<usize>) {
    match f {
        WeightFormat::Tq1_0 => (false, 54, Some(52)),
        WeightFormat::Tq2_0 => (false, 66, Some(64)),
        _ => (true, 64, None),
    }
}

/// Checks what the unsafe kernels rely on; returns the number of rows in the chunk.
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

/// Stamps out the dot kernels and row drivers for one 4-byte dot product (`$dot4`) and
/// its target features.
macro_rules! ternary_neon {
    ($module:ident, $features:literal, $dot4:path) => {
        pub(super) mod $module {
            use std::arch::aarch64::*;

            use super::*;

            /// Adds `d · d_a · (Σc·q − S)` per block lane of one decoded octet against one
            /// activation octet of `P` parts to `acc`.
            #[target_feature(enable = $features)]
            #[inline]
            fn dot_octet<const P: usize>(w: &Decoded, a: &QOctet<P>, acc: &mut [float32x4_t; 2]) {
                for h in 0..2 {
                    // Two chains: by vector parity for int8, by part for int16.
                    let mut s = [vdupq_n_s32(0); 2];
                    for v in 0..8 {
                        for p in 0..P {
                            // SAFETY: bytes 32v + 16h .. + 16 of the 256-byte qs[p].
                            let av = unsafe { vld1q_s8(a.qs[p].as_ptr().add(32 * v + 16 * h)) };
                            let c = if P == 1 { v % 2 } else { p };
                            s[c] = $dot4(s[c], w.w[v][h], av);
                        }
                    }
                    let e = if P == 1 {
                        vaddq_s32(s[0], s[1])
                    } else {
                        // q = 255·h + l, so Σc·q = 255·Σc·h + Σc·l, exactly.
                        vmlaq_n_s32(s[1], s[0], 255)
                    };
                    // SAFETY: lanes 4h..4h + 4 of the 8-float arrays.
                    let (ad, asum) = unsafe {
                        (
                            vld1q_f32(a.d.as_ptr().add(4 * h)),
                            vld1q_f32(a.s.as_ptr().add(4 * h)),
                        )
                    };
                    let e = vcvtq_f32_s32(vsubq_s32(e, vcvtq_s32_f32(asum)));
                    acc[h] = vfmaq_f32(acc[h], vmulq_n_f32(e, w.d), ad);
                }
            }

            /// Block `j` (0..4) of an I2_S row's tail group at `g` against half `h` of an
            /// activation pair: `d_a · (Σc·q − S)`.
            ///
            /// # Safety
            /// `g` must be readable for 32 bytes.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn dot_tail_block<const P: usize>(
                g: *const u8,
                j: usize,
                pair: &QPair<P>,
                h: usize,
            ) -> f32 {
                let sh = vdupq_n_s8(-plane_shift(true, j) as i8);
                let three = vdupq_n_u8(3);
                // SAFETY: the group's 32 bytes (caller).
                let (wlo, whi) = unsafe {
                    (
                        vreinterpretq_s8_u8(vandq_u8(vshlq_u8(vld1q_u8(g), sh), three)),
                        vreinterpretq_s8_u8(vandq_u8(vshlq_u8(vld1q_u8(g.add(16)), sh), three)),
                    )
                };
                let mut dot = 0i32;
                for part in 0..P {
                    // SAFETY: each part of the pair has 64 bytes.
                    let (alo, ahi) = unsafe {
                        (
                            vld1q_s8(pair.qs[part].as_ptr().add(16 * h)),
                            vld1q_s8(pair.qs[part].as_ptr().add(32 + 16 * h)),
                        )
                    };
                    // Integer, exact: Σc·q = 255·Σc·h + Σc·l for int16.
                    dot = 255 * dot + vaddvq_s32($dot4($dot4(vdupq_n_s32(0), wlo, alo), whi, ahi));
                }
                let (ad, sum) = (pair.d[4 * h], pair.s[4 * h]);
                ad * (dot - sum as i32) as f32
            }

            #[target_feature(enable = $features)]
            fn rows<const P: usize>(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) where
                Activations: Parts<P>,
            {
                let nrows = check::<P>(w, row0, x, out);
                let (rev, ob, scale_at) = params(w.format());
                let tensor = w.format() == WeightFormat::I2S;
                let tq1 = w.format() == WeightFormat::Tq1_0;
                let nb = w.cols() / 32;
                let (octets, pairs) = row_layout(nb);
                let tail = nb - 8 * octets;
                let mut dec = vec![Decoded::zero(); octets];
                for r in 0..nrows {
                    let row = w.row_data(row0 + r);
                    for (o, d) in dec.iter_mut().enumerate() {
                        let block = &row[o * ob..(o + 1) * ob];
                        if tq1 {
                            // SAFETY: the block is 54 bytes; the planes 64.
                            unsafe { decode(rev, tq1_0_as_planes(block.as_ptr()).as_ptr(), d) };
                        } else {
                            // SAFETY: octet o (64 code bytes, and TQ2_0's scale) lies
                            // within the row.
                            unsafe { decode(rev, block.as_ptr(), d) };
                        }
                        d.d = scale_at.map_or(1.0, |at| {
                            half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
                        });
                    }
                    for (b, y) in out.iter_mut().enumerate() {
                        let ao = Parts::<P>::octets(x, b);
                        let ap = Parts::<P>::pairs(x, b);
                        let mut acc = [vdupq_n_f32(0.0); 2];
                        for (d, ao) in dec.iter().zip(ao) {
                            dot_octet(d, ao, &mut acc);
                        }
                        let mut s = hsum(vaddq_f32(acc[0], acc[1]));
                        // Only I2_S rows have a tail: one group of four blocks.
                        let g = &row[octets * ob..];
                        assert!(tail == 0 || (tensor && g.len() == 32), "tail group");
                        for j in 0..tail {
                            // SAFETY: the tail group is 32 bytes (asserted).
                            s += unsafe { dot_tail_block(g.as_ptr(), j, &ap[j / 2], j % 2) };
                        }
                        debug_assert!(tail.div_ceil(2) == pairs);
                        y[r] = if tensor { s * w.scale() } else { s };
                    }
                }
            }

            /// `rows` for the precision `x` was prepared with.
            #[target_feature(enable = $features)]
            fn rows_any(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
                if x.parts() == 2 {
                    rows::<2>(w, row0, x, out)
                } else {
                    rows::<1>(w, row0, x, out)
                }
            }

            // SAFETY (the functions below): each is reachable only through the table
            // of this module's path, handed out after detecting its features.

            pub(in crate::arch::aarch64) fn rows_tq2_0(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(w, row0, x, out) }
            }

            pub(in crate::arch::aarch64) fn rows_tq1_0(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(w, row0, x, out) }
            }

            pub(in crate::arch::aarch64) fn rows_i2_s(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(w, row0, x, out) }
            }
        }
    };
}

ternary_neon!(plain, "neon", super::super::dot4_plain);
ternary_neon!(dotprod, "neon,dotprod", super::super::dot4_sdot);
