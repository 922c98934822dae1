//! Rotary position embedding as both engines compute it: the frequencies from the
//! model's base, linear scaling and optional per-dimension factors, and each position's
//! `(cos, sin)` table in f64 rounded once to f32, so the CPU engine and the GPU model
//! rotate by the same values bit for bit.

use super::{ModelConfig, RopeStyle};

/// Rotary position embedding of the first `n_rot` dimensions of every head,
/// pair `i` rotated by `pos · θ_i`. The pairs are `(x[2i], x[2i+1])` in
/// llama.cpp's NORM mode (its converter permutes Q/K rows so this matches
/// HF's rotate-half form) and `(x[i], x[i + n_rot/2])` in NEOX mode.
#[derive(Clone, Debug)]
pub struct Rope {
    /// θ_i for each pair, with frequency factors and linear scaling applied.
    inv_freq: Vec<f64>,
    head_dim: usize,
    style: RopeStyle,
}

impl Rope {
    pub fn new(
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

    /// The rotation `cfg` describes, with the file's frequency factors if it has them
    /// ([`super::ModelWeights::rope_freqs`]).
    pub fn for_model(cfg: &ModelConfig, freq_factors: Option<&[f32]>) -> Self {
        Self::new(
            cfg.rope_style,
            cfg.head_dim,
            cfg.n_rot,
            cfg.rope_base,
            cfg.rope_scale,
            freq_factors,
        )
    }

    pub fn style(&self) -> RopeStyle {
        self.style
    }

    /// `(cos, sin)` for every pair at `pos`.
    pub fn table(&self, pos: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        cos.clear();
        sin.clear();
        self.extend_table(pos, cos, sin);
    }

    /// Rotation pairs per head: the length of one position's table.
    pub fn pairs(&self) -> usize {
        self.inv_freq.len()
    }

    /// Appends the table of position `pos` to `cos` and `sin`.
    pub fn extend_table(&self, pos: usize, cos: &mut Vec<f32>, sin: &mut Vec<f32>) {
        for &f in &self.inv_freq {
            let (s, c) = (pos as f64 * f).sin_cos();
            cos.push(c as f32);
            sin.push(s as f32);
        }
    }

    /// Rotates every head in `x` (`n_heads × head_dim`) with a precomputed table.
    pub fn apply(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
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
}
