//! The small element-wise operations of the llama graph, in f32.
//!
//! These touch activations only (a few KB per token), so plain loops written
//! to auto-vectorize are enough; the weight-bound work is in `kernels-cpu`.

use super::RopeStyle;

/// Eight independent partial sums so the compiler can vectorize the
/// reduction without reassociating floats itself.
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `out = x / sqrt(mean(x²) + eps) * weight`
pub(super) fn rms_norm(out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let ss = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (ss + eps).sqrt();
    for ((o, x), w) in out.iter_mut().zip(x).zip(weight) {
        *o = x * scale * w;
    }
}

/// `gate = silu(gate) * up` (SwiGLU).
pub(super) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `gate = relu(gate)² * up` (BitNet b1.58's squared-ReLU gate).
pub(super) fn relu2_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        let r = g.max(0.0);
        *g = r * r * u;
    }
}

/// Rotary position embedding of the first `n_rot` dimensions of every head,
/// pair `i` rotated by `pos · θ_i`. The pairs are `(x[2i], x[2i+1])` in
/// llama.cpp's NORM mode (its converter permutes Q/K rows so this matches
/// HF's rotate-half form) and `(x[i], x[i + n_rot/2])` in NEOX mode.
#[derive(Clone, Debug)]
pub(super) struct Rope {
    /// θ_i for each pair, with frequency factors and linear scaling applied.
    inv_freq: Vec<f64>,
    head_dim: usize,
    style: RopeStyle,
}

impl Rope {
    pub(super) fn new(
        style: RopeStyle,
        head_dim: usize,
        n_rot: usize,
        base: f32,
        scale: f32,
        freq_factors: Option<&[f32]>,
    ) -> Self {
        let inv_freq = (0..n_rot / 2)
            .map(|i| {
                let theta = f64::from(base).powf(-2.0 * i as f64 / n_rot as f64);
                let factor = freq_factors.map_or(1.0, |f| f64::from(f[i]));
                theta / factor / f64::from(scale)
            })
            .collect();
        Self {
            inv_freq,
            head_dim,
            style,
        }
    }

    /// `(cos, sin)` for every pair at `pos`.
    #[cfg(test)]
    pub(super) fn table(&self, pos: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        cos.clear();
        sin.clear();
        self.extend_table(pos, cos, sin);
    }

    /// Rotation pairs per head: the length of one position's table.
    pub(super) fn pairs(&self) -> usize {
        self.inv_freq.len()
    }

    /// Appends the table of position `pos` to `cos` and `sin`.
    pub(super) fn extend_table(&self, pos: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        for &f in &self.inv_freq {
            let (s, c) = (pos as f64 * f).sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }

    /// Rotates every head in `x` (`n_heads × head_dim`) with a precomputed table.
    pub(super) fn apply(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = self.inv_freq.len();
        for head in x.chunks_exact_mut(self.head_dim) {
            for (i, (c, s)) in cos.iter().zip(sin).enumerate() {
                let (j, k) = match self.style {
                    RopeStyle::Norm => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (a, b) = (head[j], head[k]);
                head[j] = a * c - b * s;
                head[k] = a * s + b * c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_on_ragged_lengths() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() <= 1e-3 * naive.abs().max(1.0));
        }
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm() {
        for style in [RopeStyle::Norm, RopeStyle::Neox] {
            let rope = Rope::new(style, 8, 8, 10_000.0, 1.0, None);
            let (mut c, mut s) = (Vec::new(), Vec::new());
            let orig: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
            let mut x = orig.clone();
            rope.table(0, &mut c, &mut s);
            rope.apply(&mut x, &c, &s);
            assert_eq!(x, orig);
            rope.table(37, &mut c, &mut s);
            rope.apply(&mut x, &c, &s);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-3);
            assert_ne!(x, orig);
        }
    }

    #[test]
    fn neox_rotates_halves() {
        // One head of 4 dims, pair 0 = (x0, x2) with θ = 1, pair 1 = (x1, x3).
        let rope = Rope::new(RopeStyle::Neox, 4, 4, 10_000.0, 1.0, None);
        let (mut c, mut s) = (Vec::new(), Vec::new());
        rope.table(1, &mut c, &mut s);
        let mut x = [1.0f32, 0.0, 0.0, 0.0];
        rope.apply(&mut x, &c, &s);
        assert!(
            (x[0] - 1f32.cos()).abs() < 1e-6 && (x[2] - 1f32.sin()).abs() < 1e-6,
            "{x:?}"
        );
        assert_eq!(x[1], 0.0);
    }

    #[test]
    fn relu2_gates() {
        let mut g = [-1.0f32, 0.5, 2.0];
        relu2_mul(&mut g, &[3.0, 4.0, 0.5]);
        assert_eq!(g, [0.0, 1.0, 2.0]);
    }

    #[test]
    fn rms_norm_normalizes() {
        let x = [3.0f32, 4.0];
        let mut out = [0f32; 2];
        rms_norm(&mut out, &x, &[1.0, 2.0], 0.0);
        let rms = (12.5f32).sqrt();
        assert!((out[0] - 3.0 / rms).abs() < 1e-6);
        assert!((out[1] - 8.0 / rms).abs() < 1e-6);
    }
}
