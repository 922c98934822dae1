//! Causal grouped-query attention over the KV caches of one or more
//! sequences in a batched pass.

use rayon::prelude::*;

use crate::{HeadRows, attend};

/// Head layout shared by every sequence of a pass.
pub(super) struct HeadShape {
    pub(super) n_head: usize,
    pub(super) n_head_kv: usize,
    pub(super) head_dim: usize,
}

/// One sequence's share of a pass: its query rows are `rows` (indices into
/// the pass), the first at absolute position `start`; `k`, `v` hold every
/// cached position of the sequence including the new ones, token-major,
/// `n_head_kv·head_dim` wide.
pub(super) struct SequenceKv<'a> {
    pub(super) rows: std::ops::Range<usize>,
    pub(super) start: usize,
    pub(super) k: &'a [f32],
    pub(super) v: &'a [f32],
}

/// `out[t, h] = Σ_j softmax_j(q[t,h]·k[j,g] / √d) · v[j,g]` over positions
/// `j ≤ start + t` of row `t`'s own sequence, where `g = h / (n_head /
/// n_head_kv)` is the query head's KV group. `q` and `out` are
/// `rows × n_head·head_dim`.
///
/// Each (row, head) pair is computed by one thread in a fixed order, so the
/// result depends neither on the thread count nor on which other sequences
/// share the pass.
pub(super) fn attention(shape: &HeadShape, seqs: &[SequenceKv<'_>], q: &[f32], out: &mut [f32]) {
    let HeadShape {
        n_head,
        n_head_kv,
        head_dim,
    } = *shape;
    let q_width = n_head * head_dim;
    let kv_width = n_head_kv * head_dim;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (head_dim as f32).sqrt();
    out.par_chunks_mut(head_dim)
        .enumerate()
        .for_each_init(Vec::new, |scores, (i, o)| {
            let (row, h) = (i / n_head, i % n_head);
            let Some(seq) = seqs.iter().find(|s| s.rows.contains(&row)) else {
                return;
            };
            let n_ctx = seq.start + (row - seq.rows.start) + 1;
            let g = h / group;
            let qh = &q[row * q_width + h * head_dim..][..head_dim];
            // The cache holds every position up to the pass's last row, each row
            // `kv_width` wide: the views and the call cannot fail.
            let k = HeadRows::new(seq.k, kv_width, g * head_dim, head_dim, n_ctx)
                .expect("the key cache holds every position of the pass");
            let v = HeadRows::new(seq.v, kv_width, g * head_dim, head_dim, n_ctx)
                .expect("the value cache holds every position of the pass");
            attend(qh, k, v, scale, scores, o).expect("head shapes agree");
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_position_returns_its_value() {
        let shape = HeadShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
        };
        let seqs = [SequenceKv {
            rows: 0..1,
            start: 0,
            k: &[0.3, 0.7],
            v: &[5.0, -2.0],
        }];
        let mut out = [0f32; 4];
        attention(&shape, &seqs, &[1.0, 0.0, 0.0, 1.0], &mut out);
        assert_eq!(out, [5.0, -2.0, 5.0, -2.0]);
    }

    #[test]
    fn later_rows_see_more_positions_and_groups_pick_their_kv_head() {
        // Two query heads, two KV heads, two positions queried at once.
        let shape = HeadShape {
            n_head: 2,
            n_head_kv: 2,
            head_dim: 1,
        };
        let seqs = [SequenceKv {
            rows: 0..2,
            start: 0,
            k: &[0.0; 4],
            v: &[1.0, 10.0, 3.0, 30.0],
        }];
        let mut out = [0f32; 4];
        attention(&shape, &seqs, &[0.0; 4], &mut out); // uniform attention
        assert_eq!(out, [1.0, 10.0, 2.0, 20.0]);
    }

    #[test]
    fn sequences_in_one_pass_do_not_see_each_other() {
        let shape = HeadShape {
            n_head: 1,
            n_head_kv: 1,
            head_dim: 1,
        };
        let seqs = [
            SequenceKv {
                rows: 0..1,
                start: 1,
                k: &[0.0, 0.0],
                v: &[2.0, 4.0],
            },
            SequenceKv {
                rows: 1..2,
                start: 0,
                k: &[0.0],
                v: &[100.0],
            },
        ];
        let mut out = [0f32; 2];
        attention(&shape, &seqs, &[0.0; 2], &mut out);
        assert_eq!(out, [3.0, 100.0]);
    }
}
