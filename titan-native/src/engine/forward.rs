//! The batched forward pass.

use kernels_cpu::{Activations, QMatrix, WeightFormat, matmul, matmul_many};

use super::attention::{AttentionShape, attention};
use super::ops::{rms_norm, silu_mul};
use super::{KvCache, Model, ModelError, TensorRef};

/// Which positions of a pass need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (prefilling a prefix whose continuation is known).
    None,
    /// Only the last new position (plain decoding).
    Last,
    /// Every new position (verifying drafts, perplexity).
    All,
    /// New positions from this index (within the pass) on.
    From(usize),
}

/// One sequence's state: its tokens, KV cache and reusable scratch buffers.
#[derive(Debug)]
pub struct Session {
    pub(crate) cache: KvCache,
    tokens: Vec<u32>,
    scratch: Scratch,
}

#[derive(Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    proj: Vec<f32>,
    acts: Activations,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Session {
    /// Tokens whose keys and values are in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Forgets every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.cache.truncate(len);
    }

    /// Bytes held by the KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }
}

impl Model {
    pub fn new_session(&self) -> Session {
        Session {
            cache: KvCache::new(self.config.n_layer, self.config.kv_dim()),
            tokens: Vec::new(),
            scratch: Scratch {
                acts: Activations::with_precision(self.precision),
                ..Scratch::default()
            },
        }
    }

    /// Runs `tokens` through the model after the session's cached positions,
    /// appends them to the session and returns the logits asked for,
    /// `n_rows × n_vocab` row-major.
    pub fn forward(
        &self,
        session: &mut Session,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        let cfg = &self.config;
        let needed = session.len() + tokens.len();
        if needed > cfg.n_ctx {
            return Err(ModelError::ContextOverflow {
                needed,
                limit: cfg.n_ctx,
            });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
            return Err(ModelError::InvalidToken {
                id,
                vocab: cfg.n_vocab,
            });
        }
        let first_logit = match which {
            Logits::None => tokens.len(),
            Logits::Last => tokens.len() - 1,
            Logits::All => 0,
            Logits::From(i) => i.min(tokens.len()),
        };
        let logits = self
            .pool
            .install(|| self.forward_inner(session, tokens, first_logit));
        session.tokens.extend_from_slice(tokens);
        Ok(logits)
    }

    fn forward_inner(&self, session: &mut Session, tokens: &[u32], first_logit: usize) -> Vec<f32> {
        let cfg = &self.config;
        let bytes = self.bytes();
        let n = tokens.len();
        let d = cfg.n_embd;
        let q_dim = cfg.n_head * cfg.head_dim;
        let kv_dim = cfg.kv_dim();
        let start = session.cache.len();
        // Discard anything a previous, interrupted pass appended.
        session.cache.truncate(start);
        let s = &mut session.scratch;

        s.x.resize(n * d, 0.0);
        let embd = self.weights.token_embd.view(bytes);
        for (row, &t) in s.x.chunks_exact_mut(d).zip(tokens) {
            embd.dequantize_row(t as usize, row);
        }
        s.h.resize(n * d, 0.0);
        s.q.resize(n * q_dim, 0.0);
        s.k.resize(n * kv_dim, 0.0);
        s.v.resize(n * kv_dim, 0.0);
        s.att.resize(n * q_dim, 0.0);
        s.gate.resize(n * cfg.n_ff, 0.0);
        s.up.resize(n * cfg.n_ff, 0.0);
        s.proj.resize(n * d, 0.0);

        for (l, w) in self.weights.layers.iter().enumerate() {
            for (h, x) in s.h.chunks_exact_mut(d).zip(s.x.chunks_exact(d)) {
                rms_norm(h, x, &w.attn_norm, cfg.rms_eps);
            }
            project(
                bytes,
                &mut s.acts,
                &s.h,
                n,
                &mut [(&w.wq, &mut s.q), (&w.wk, &mut s.k), (&w.wv, &mut s.v)],
            );
            for t in 0..n {
                self.rope.table(start + t, &mut s.cos, &mut s.sin);
                self.rope
                    .apply(&mut s.q[t * q_dim..(t + 1) * q_dim], &s.cos, &s.sin);
                self.rope
                    .apply(&mut s.k[t * kv_dim..(t + 1) * kv_dim], &s.cos, &s.sin);
            }
            session.cache.append(l, &s.k, &s.v);
            let (k_all, v_all) = session.cache.layer(l);
            let shape = AttentionShape {
                n_head: cfg.n_head,
                n_head_kv: cfg.n_head_kv,
                head_dim: cfg.head_dim,
                start,
            };
            attention(&shape, &s.q, k_all, v_all, &mut s.att);
            project(bytes, &mut s.acts, &s.att, n, &mut [(&w.wo, &mut s.proj)]);
            add_in_place(&mut s.x, &s.proj);

            for (h, x) in s.h.chunks_exact_mut(d).zip(s.x.chunks_exact(d)) {
                rms_norm(h, x, &w.ffn_norm, cfg.rms_eps);
            }
            project(
                bytes,
                &mut s.acts,
                &s.h,
                n,
                &mut [(&w.w_gate, &mut s.gate), (&w.w_up, &mut s.up)],
            );
            silu_mul(&mut s.gate, &s.up);
            project(
                bytes,
                &mut s.acts,
                &s.gate,
                n,
                &mut [(&w.w_down, &mut s.proj)],
            );
            add_in_place(&mut s.x, &s.proj);
        }
        session.cache.commit(n);

        let rows = n - first_logit;
        if rows == 0 {
            return Vec::new();
        }
        let h = &mut s.h[..rows * d];
        for (h, x) in h
            .chunks_exact_mut(d)
            .zip(s.x[first_logit * d..].chunks_exact(d))
        {
            rms_norm(h, x, &self.weights.output_norm, cfg.rms_eps);
        }
        let mut logits = vec![0f32; rows * cfg.n_vocab];
        project(
            bytes,
            &mut s.acts,
            &s.h[..rows * d],
            rows,
            &mut [(&self.weights.output, &mut logits)],
        );
        logits
    }
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// `out_i = W_i · input` for matrices that share one input, `n` rows of it.
/// Matrices of one format share a single activation conversion and a single
/// parallel dispatch.
fn project(
    bytes: &[u8],
    acts: &mut Activations,
    input: &[f32],
    n: usize,
    jobs: &mut [(&TensorRef, &mut Vec<f32>)],
) {
    let cols = jobs[0].0.cols;
    let mut done = vec![false; jobs.len()];
    for i in 0..jobs.len() {
        if done[i] {
            continue;
        }
        let format: WeightFormat = jobs[i].0.format;
        acts.prepare(format, input, n, cols);
        let views: Vec<QMatrix<'_>> = jobs.iter().map(|(t, _)| t.view(bytes)).collect();
        let mut batch: Vec<(&QMatrix<'_>, &mut [f32])> = Vec::with_capacity(jobs.len());
        for (j, ((t, out), view)) in jobs.iter_mut().zip(&views).enumerate() {
            if !done[j] && t.format == format {
                done[j] = true;
                batch.push((view, &mut out[..n * t.rows]));
            }
        }
        let result = if batch.len() == 1 {
            let (w, y) = batch.pop().expect("one job");
            matmul(w, acts, y)
        } else {
            matmul_many(&mut batch, acts)
        };
        // Shapes were validated at load and buffers sized above.
        result.expect("matmul shapes are validated at load");
    }
}
