//! Q4_0, Q4_1 and Q8_0 against integer activations (one int8 part per value, or two for
//! int16: `q = 255·h + l`): decoding (shared) and the row drivers, stamped out once
//! without and once with `dotprod` by [`q8_neon!`].

use std::arch::aarch64::*;

use super::{f16_bits_to_f32, hsum};
use crate::{
    QMatrix, WeightFormat,
    activations::{Activations, Parts, QOctet, QPair, row_layout},
};

/// One octet of weight blocks decoded for the dot kernels: `w[v][h]` holds values
/// `4v..4v + 4` of blocks `4h..4h + 4` (matching activation bytes `32v + 16h..`), `d[h]`
/// and `m[h]` the scales and minimums of those blocks.
#[derive(Clone, Copy)]
pub(super) struct Decoded {
    w: [[int8x16_t; 2]; 8],
    d: [float32x4_t; 2],
    m: [float32x4_t; 2],
}

impl Decoded {
    fn zero() -> Self {
        // SAFETY: plain vector data, for which all-zero bits are a valid value.
        unsafe { std::mem::zeroed() }
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

/// Transposes 4-byte groups of four 16-byte rows: lane `k` of result `i` is group `i`
/// of `q[k]`.
#[target_feature(enable = "neon")]
#[inline]
fn transpose4(q: [uint8x16_t; 4]) -> [int8x16_t; 4] {
    let q = q.map(|q| vreinterpretq_u32_u8(q));
    let t0 = vreinterpretq_u64_u32(vtrn1q_u32(q[0], q[1]));
    let t1 = vreinterpretq_u64_u32(vtrn2q_u32(q[0], q[1]));
    let t2 = vreinterpretq_u64_u32(vtrn1q_u32(q[2], q[3]));
    let t3 = vreinterpretq_u64_u32(vtrn2q_u32(q[2], q[3]));
    [
        vreinterpretq_s8_u64(vtrn1q_u64(t0, t2)),
        vreinterpretq_s8_u64(vtrn1q_u64(t1, t3)),
        vreinterpretq_s8_u64(vtrn2q_u64(t0, t2)),
        vreinterpretq_s8_u64(vtrn2q_u64(t1, t3)),
    ]
}

/// The f16 at byte offset `at` of blocks `4h..4h + 4` as f32 lanes.
///
/// # Safety
/// The 8 blocks of `bb` bytes at `p` must be readable, `at + 2 <= bb`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn halves(p: *const u8, bb: usize, h: usize, at: usize) -> float32x4_t {
    let mut bits = [0u32; 4];
    for (k, b) in bits.iter_mut().enumerate() {
        // SAFETY: inside block 4h + k (caller).
        *b = u32::from(unsafe { p.add((4 * h + k) * bb + at).cast::<u16>().read_unaligned() });
    }
    // SAFETY: `bits` holds 4 u32.
    f16_bits_to_f32(unsafe { vld1q_u32(bits.as_ptr()) })
}

/// Decodes the octet at `p` into `out`.
///
/// # Safety
/// `p` must be readable for `8 * l.bb` bytes.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn decode(l: Layout, p: *const u8, out: &mut Decoded) {
    for h in 0..2 {
        let block = |k: usize| p.wrapping_add((4 * h + k) * l.bb + l.qs);
        if l.nibbles {
            // SAFETY: 16 nibble bytes per block (caller).
            let q = [0, 1, 2, 3].map(|k| unsafe { vld1q_u8(block(k)) });
            let g = transpose4(q);
            for i in 0..4 {
                let g = vreinterpretq_u8_s8(g[i]);
                out.w[i][h] = vreinterpretq_s8_u8(vandq_u8(g, vdupq_n_u8(0x0F)));
                out.w[4 + i][h] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(g));
            }
        } else {
            // SAFETY: 32 values per block (caller).
            let lo = [0, 1, 2, 3].map(|k| unsafe { vld1q_u8(block(k)) });
            // SAFETY: as above.
            let hi = [0, 1, 2, 3].map(|k| unsafe { vld1q_u8(block(k).wrapping_add(16)) });
            let (glo, ghi) = (transpose4(lo), transpose4(hi));
            for i in 0..4 {
                out.w[i][h] = glo[i];
                out.w[4 + i][h] = ghi[i];
            }
        }
        // SAFETY: the scale (and minimum) are the first bytes of each block.
        out.d[h] = unsafe { halves(p, l.bb, h, 0) };
        out.m[h] = if l.min {
            // SAFETY: as above.
            unsafe { halves(p, l.bb, h, 2) }
        } else if l.nibbles {
            vmulq_n_f32(out.d[h], -8.0)
        } else {
            vdupq_n_f32(0.0)
        };
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

/// Stamps out the dot kernels and row drivers for one 4-byte dot product (`$dot4`) and
/// its target features.
macro_rules! q8_neon {
    ($module:ident, $features:literal, $dot4:path) => {
        pub(super) mod $module {
            use std::arch::aarch64::*;

            use super::*;

            /// Adds `d_a · (d·e + m·S)` per block lane of one decoded octet against one
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
                        // q = 255·h + l, so Σw·q = 255·Σw·h + Σw·l, exactly.
                        vmlaq_n_s32(s[1], s[0], 255)
                    };
                    let e = vcvtq_f32_s32(e);
                    // SAFETY: lanes 4h..4h + 4 of the 8-float arrays.
                    let (ad, asum) = unsafe {
                        (
                            vld1q_f32(a.d.as_ptr().add(4 * h)),
                            vld1q_f32(a.s.as_ptr().add(4 * h)),
                        )
                    };
                    let g = vfmaq_f32(vmulq_f32(w.m[h], asum), e, w.d[h]);
                    acc[h] = vfmaq_f32(acc[h], g, ad);
                }
            }

            /// The tail block `j` (`h` = 0 or 1 of `pair`) of one weight row, whose bytes
            /// start at `p`.
            ///
            /// # Safety
            /// `p` must be readable for `l.bb` bytes.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn dot_tail_block<const P: usize>(
                l: Layout,
                p: *const u8,
                pair: &QPair<P>,
                h: usize,
            ) -> f32 {
                // SAFETY: the block's values are in range (caller).
                let (wlo, whi) = unsafe {
                    if l.nibbles {
                        let q = vld1q_u8(p.add(l.qs));
                        (
                            vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))),
                            vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)),
                        )
                    } else {
                        (
                            vld1q_s8(p.add(l.qs).cast()),
                            vld1q_s8(p.add(l.qs + 16).cast()),
                        )
                    }
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
                    // Integer, exact: Σw·q = 255·Σw·h + Σw·l for int16.
                    dot = 255 * dot + vaddvq_s32($dot4($dot4(vdupq_n_s32(0), wlo, alo), whi, ahi));
                }
                let dot = dot as f32;
                let f16 = |at: usize| {
                    // SAFETY: inside the block (caller).
                    half::f16::from_bits(unsafe { p.add(at).cast::<u16>().read_unaligned() })
                        .to_f32()
                };
                let d = f16(0);
                let m = if l.min {
                    f16(2)
                } else if l.nibbles {
                    -8.0 * d
                } else {
                    0.0
                };
                let (ad, sum) = (pair.d[4 * h], pair.s[4 * h]);
                ad * d.mul_add(dot, m * sum)
            }

            #[target_feature(enable = $features)]
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
                let (octets, pairs) = row_layout(nb);
                let tail = nb - 8 * octets;
                let mut dec = vec![Decoded::zero(); octets];
                for r in 0..nrows {
                    let row = w.row_data(row0 + r);
                    for (o, d) in dec.iter_mut().enumerate() {
                        // SAFETY: octet o lies within the row (8 · bb bytes each).
                        unsafe { decode(l, row[o * 8 * l.bb..].as_ptr(), d) };
                    }
                    for (b, y) in out.iter_mut().enumerate() {
                        let ao = Parts::<P>::octets(x, b);
                        let ap = Parts::<P>::pairs(x, b);
                        let mut acc = [vdupq_n_f32(0.0); 2];
                        for (d, ao) in dec.iter().zip(ao) {
                            dot_octet(d, ao, &mut acc);
                        }
                        let mut s = hsum(vaddq_f32(acc[0], acc[1]));
                        for j in 0..tail {
                            let p = row[(8 * octets + j) * l.bb..].as_ptr();
                            // SAFETY: tail block j is a whole block of the row.
                            s += unsafe { dot_tail_block(l, p, &ap[j / 2], j % 2) };
                        }
                        debug_assert!(tail.div_ceil(2) == pairs);
                        y[r] = s;
                    }
                }
            }

            /// `rows` for the precision `x` was prepared with.
            #[target_feature(enable = $features)]
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

            // SAFETY (the three functions below): each is reachable only through the table
            // of this module's path, handed out after detecting its features.

            pub(in crate::arch::aarch64) fn rows_q8_0(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(WeightFormat::Q8_0, w, row0, x, out) }
            }

            pub(in crate::arch::aarch64) fn rows_q4_0(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(WeightFormat::Q4_0, w, row0, x, out) }
            }

            pub(in crate::arch::aarch64) fn rows_q4_1(
                w: &QMatrix<'_>,
                row0: usize,
                x: &Activations,
                out: &mut [&mut [f32]],
            ) {
                // SAFETY: see above.
                unsafe { rows_any(WeightFormat::Q4_1, w, row0, x, out) }
            }
        }
    };
}

q8_neon!(plain, "neon", super::super::dot4_plain);
q8_neon!(dotprod, "neon,dotprod", super::super::dot4_sdot);
