//! Causal grouped-query attention over the KV cache.

use rayon::prelude::*;

use super::ops::{axpy, dot, softmax};

/// Shapes for one attention call.
pub(super) struct AttentionShape {
    pub(super) n_head: usize,
    pub(super) n_head_kv: usize,
    pub(super) head_dim: usize,
    /// Absolute position of the first query row.
    pub(super) start: usize,
}

/// `out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g] / √d) · v[j,g]` over positions
/// `j ≤ start + t`, where `g = h / (n_head / n_head_kv)` is the query head's
/// KV group. `q` and `out` are `T × n_head·head_dim`; `k`, `v` hold every
/// cached position, token-major, `n_head_kv·head_dim` wide.
///
/// Each (token, head) pair is computed by one thread in a fixed order, so the
/// result does not depend on the thread count.
pub(super) fn attention(shape: &AttentionShape, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32]) {
    let AttentionShape {
        n_head,
        n_head_kv,
        head_dim,
        start,
    } = *shape;
    let q_width = n_head * head_dim;
    let kv_width = n_head_kv * head_dim;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (head_dim as f32).sqrt();
    out.par_chunks_mut(head_dim)
        .enumerate()
        .for_each_init(Vec::new, |scores, (i, o)| {
            let (t, h) = (i / n_head, i % n_head);
            let n_ctx = start + t + 1;
            let g = h / group;
            let qh = &q[t * q_width + h * head_dim..][..head_dim];
            scores.clear();
            scores.extend(
                (0..n_ctx).map(|j| dot(qh, &k[j * kv_width + g * head_dim..][..head_dim]) * scale),
            );
            softmax(scores);
            o.fill(0.0);
            for (j, &p) in scores.iter().enumerate() {
                axpy(o, p, &v[j * kv_width + g * head_dim..][..head_dim]);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_position_returns_its_value() {
        let shape = AttentionShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
            start: 0,
        };
        let q = [1.0, 0.0, 0.0, 1.0];
        let k = [0.3, 0.7];
        let v = [5.0, -2.0];
        let mut out = [0f32; 4];
        attention(&shape, &q, &k, &v, &mut out);
        assert_eq!(out, [5.0, -2.0, 5.0, -2.0]);
    }

    #[test]
    fn later_rows_see_more_positions_and_groups_pick_their_kv_head() {
        // Two query heads, two KV heads, two positions queried at once.
        let shape = AttentionShape {
            n_head: 2,
            n_head_kv: 2,
            head_dim: 1,
            start: 0,
        };
        let q = [0.0, 0.0, 0.0, 0.0]; // uniform attention
        let k = [0.0, 0.0, 0.0, 0.0];
        let v = [1.0, 10.0, 3.0, 30.0];
        let mut out = [0f32; 4];
        attention(&shape, &q, &k, &v, &mut out);
        assert_eq!(out, [1.0, 10.0, 2.0, 20.0]);
    }
}
