//! What TQ1_0 and TQ2_0 share: 256 ternary codes per block, read by a format's `code`
//! function, and one f16 scale at a fixed byte offset of the block. Dequantization and the
//! scalar reference dot product are the same given those two.

use super::f16_at;
use crate::activations::QRow;

/// Values per block of both formats.
pub(super) const BLOCK_LEN: usize = 256;

/// A TQ block layout: its byte length, where its f16 scale sits, and how code `i`
/// (0, 1 or 2 for −1, 0, +1) is read from its bytes.
pub(super) struct Layout {
    pub(super) name: &'static str,
    pub(super) block_bytes: usize,
    pub(super) scale_at: usize,
    pub(super) code: fn(&[u8], usize) -> u8,
}

impl Layout {
    /// Dequantizes whole blocks of `bytes` into `out` (`bytes.len() / block_bytes · 256`
    /// values).
    pub(super) fn dequantize_row(&self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(
            bytes.len() / self.block_bytes * BLOCK_LEN,
            out.len(),
            "{} byte lengths",
            self.name
        );
        for (b, o) in bytes
            .chunks_exact(self.block_bytes)
            .zip(out.chunks_exact_mut(BLOCK_LEN))
        {
            let d = f16_at(b, self.scale_at);
            for (i, o) in o.iter_mut().enumerate() {
                *o = d * f32::from((self.code)(b, i) as i8 - 1);
            }
        }
    }

    /// Scalar reference: `Σ_j d_w · d_a,j · Σ_i (c_ji − 1) · q_a,ji` over the 32-value
    /// activation blocks `j` of one weight row (`w`, ggml bytes; `d_w` the scale of the
    /// 256-value block holding `j`) and one prepared activation row.
    pub(super) fn vec_dot(&self, w: &[u8], a: QRow<'_>) -> f32 {
        assert_eq!(
            w.len() * 8,
            a.blocks() * self.block_bytes,
            "{}::vec_dot lengths",
            self.name
        );
        let mut sum = 0.0f32;
        for (i, b) in w.chunks_exact(self.block_bytes).enumerate() {
            let dw = f16_at(b, self.scale_at);
            for s in 0..8 {
                let ab = a.block(8 * i + s);
                let p: i32 = (0..32)
                    .map(|e| (i32::from((self.code)(b, 32 * s + e)) - 1) * i32::from(ab.qs[e]))
                    .sum();
                sum += dw * ab.d * p as f32;
            }
        }
        sum
    }
}
