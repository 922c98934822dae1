//! The batched forward pass: any number of new tokens for any number of
//! sequences in one pass over the weights.

use crate::{Activations, QMatrix, matmul, matmul_many};

use super::attention::{HeadShape, SequenceKv, attention};
use super::ops::{relu2_mul, rms_norm, silu_mul};
use shared_protocol::model::Logits;

use super::{CpuModel, CpuModelError, FfnActivation, KvCache, MatrixView, TensorRef};

/// One sequence's state: its tokens and KV cache, plus scratch buffers for
/// passes that run it alone.
#[derive(Debug)]
pub struct Session {
    pub(crate) cache: KvCache,
    tokens: Vec<u32>,
    buffers: PassBuffers,
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

/// One sequence's part of a batched pass.
#[derive(Debug)]
pub struct PassInput<'s, 't> {
    pub session: &'s mut Session,
    pub tokens: &'t [u32],
    pub logits: Logits,
}

/// Activation buffers of a pass, reused across passes (they grow to the
/// largest pass seen and stay).
#[derive(Debug, Default)]
pub struct PassBuffers {
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

impl CpuModel {
    pub fn new_session(&self) -> Session {
        Session {
            cache: KvCache::new(self.config.n_layer, self.config.kv_dim()),
            tokens: Vec::new(),
            buffers: self.new_pass_buffers(),
        }
    }

    /// Buffers for [`CpuModel::forward_batch`].
    pub fn new_pass_buffers(&self) -> PassBuffers {
        PassBuffers {
            acts: Activations::with_precision(self.precision),
            ..PassBuffers::default()
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
    ) -> Result<Vec<f32>, CpuModelError> {
        let mut buffers = std::mem::take(&mut session.buffers);
        let mut inputs = [PassInput {
            session,
            tokens,
            logits: which,
        }];
        let result = self.forward_batch(&mut buffers, &mut inputs);
        inputs[0].session.buffers = buffers;
        result.map(|mut all| all.pop().unwrap_or_default())
    }

    /// One pass over the weights for several sequences (continuous
    /// batching): every input's tokens are appended to its session, and the
    /// logits each input asked for are returned in input order. A sequence's
    /// results are bit-identical to running it alone: the kernels compute
    /// every (weight row, token) pair the same way whatever the batch. Runs on
    /// the current rayon pool (the titan wraps it in its own pool's `install`).
    pub fn forward_batch(
        &self,
        buffers: &mut PassBuffers,
        inputs: &mut [PassInput<'_, '_>],
    ) -> Result<Vec<Vec<f32>>, CpuModelError> {
        let cfg = &self.config;
        for input in inputs.iter() {
            if input.tokens.is_empty() {
                return Err(CpuModelError::EmptyInput);
            }
            let needed = input.session.len() + input.tokens.len();
            if needed > cfg.n_ctx {
                return Err(CpuModelError::ContextOverflow {
                    needed,
                    limit: cfg.n_ctx,
                });
            }
            if let Some(&id) = input.tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
                return Err(CpuModelError::InvalidToken {
                    id,
                    vocab: cfg.n_vocab,
                });
            }
        }
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.pass(buffers, inputs);
        for input in inputs.iter_mut() {
            input.session.tokens.extend_from_slice(input.tokens);
        }
        Ok(logits)
    }

    fn pass(&self, s: &mut PassBuffers, inputs: &mut [PassInput<'_, '_>]) -> Vec<Vec<f32>> {
        let cfg = &self.config;
        let bytes = self.bytes();
        let d = cfg.n_embd;
        let q_dim = cfg.n_head * cfg.head_dim;
        let kv_dim = cfg.kv_dim();
        // Row ranges and start positions of each sequence within the pass.
        let mut spans = Vec::with_capacity(inputs.len());
        let mut n = 0;
        for input in inputs.iter_mut() {
            let start = input.session.cache.len();
            // Discard anything a previous, interrupted pass appended.
            input.session.cache.truncate(start);
            spans.push((n..n + input.tokens.len(), start));
            n += input.tokens.len();
        }

        s.x.resize(n * d, 0.0);
        let embd = self.weights.token_embd.view(bytes);
        let all_tokens = inputs.iter().flat_map(|i| i.tokens.iter());
        for (row, &t) in s.x.chunks_exact_mut(d).zip(all_tokens) {
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
        let heads = HeadShape {
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim: cfg.head_dim,
        };

        // RoPE angles depend only on the position: one table per row, shared
        // by every layer (the sines and cosines were 0.5% of a verify pass).
        let half = self.rope.pairs();
        s.cos.clear();
        s.sin.clear();
        for (rows, start) in &spans {
            for t in 0..rows.len() {
                self.rope.extend_table(start + t, &mut s.cos, &mut s.sin);
            }
        }

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
            for row in 0..n {
                let (cos, sin) = (&s.cos[row * half..][..half], &s.sin[row * half..][..half]);
                self.rope
                    .apply(&mut s.q[row * q_dim..(row + 1) * q_dim], cos, sin);
                self.rope
                    .apply(&mut s.k[row * kv_dim..(row + 1) * kv_dim], cos, sin);
            }
            for (input, (rows, _)) in inputs.iter_mut().zip(&spans) {
                let kv = rows.start * kv_dim..rows.end * kv_dim;
                input.session.cache.append(l, &s.k[kv.clone()], &s.v[kv]);
            }
            let seqs: Vec<SequenceKv<'_>> = inputs
                .iter()
                .zip(&spans)
                .map(|(input, (rows, start))| {
                    let (k, v) = input.session.cache.layer(l);
                    SequenceKv {
                        rows: rows.clone(),
                        start: *start,
                        k,
                        v,
                    }
                })
                .collect();
            attention(&heads, &seqs, &s.q, &mut s.att);
            drop(seqs);
            if let Some(norm) = &w.attn_sub_norm {
                rms_norm_rows(&mut s.att, norm, cfg.rms_eps);
            }
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
            match cfg.ffn_activation {
                FfnActivation::Silu => silu_mul(&mut s.gate, &s.up),
                FfnActivation::Relu2 => relu2_mul(&mut s.gate, &s.up),
            }
            if let Some(norm) = &w.ffn_sub_norm {
                rms_norm_rows(&mut s.gate, norm, cfg.rms_eps);
            }
            project(
                bytes,
                &mut s.acts,
                &s.gate,
                n,
                &mut [(&w.w_down, &mut s.proj)],
            );
            add_in_place(&mut s.x, &s.proj);
        }
        for (input, (rows, _)) in inputs.iter_mut().zip(&spans) {
            input.session.cache.commit(rows.len());
        }

        // Final norm and output head for the rows that need logits, all
        // sequences in one matmul.
        let mut wanted = Vec::new();
        for (input, (rows, _)) in inputs.iter().zip(&spans) {
            let first = input.logits.first(rows.len());
            wanted.push(rows.start + first..rows.end);
        }
        let n_out: usize = wanted.iter().map(|r| r.len()).sum();
        let mut per_input = vec![Vec::new(); inputs.len()];
        if n_out == 0 {
            return per_input;
        }
        let rows_out = wanted.iter().flat_map(|r| r.clone());
        for (h, row) in s.h.chunks_exact_mut(d).zip(rows_out) {
            rms_norm(
                h,
                &s.x[row * d..(row + 1) * d],
                &self.weights.output_norm,
                cfg.rms_eps,
            );
        }
        let vocab = cfg.n_vocab;
        let mut logits = vec![0f32; n_out * vocab];
        let (head_bytes, head) = self.output_head();
        project(
            head_bytes,
            &mut s.acts,
            &s.h[..n_out * d],
            n_out,
            &mut [(head, &mut logits)],
        );
        if let [only] = per_input.as_mut_slice() {
            // One sequence: its logits are the whole buffer, no copy.
            *only = logits;
            return per_input;
        }
        let mut offset = 0;
        for (out, range) in per_input.iter_mut().zip(&wanted) {
            let len = range.len() * vocab;
            *out = logits[offset..offset + len].to_vec();
            offset += len;
        }
        per_input
    }
}

/// RMSNorm of every row of `x` in place (rows as long as `weight`).
fn rms_norm_rows(x: &mut [f32], weight: &[f32], eps: f32) {
    let mut row = vec![0f32; weight.len()];
    for r in x.chunks_exact_mut(weight.len()) {
        row.copy_from_slice(r);
        rms_norm(r, &row, weight, eps);
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
    let views: Vec<QMatrix<'_>> = jobs.iter().map(|(t, _)| t.view(bytes)).collect();
    let mut done = vec![false; jobs.len()];
    for i in 0..jobs.len() {
        if done[i] {
            continue;
        }
        let format = views[i].format();
        acts.prepare(format, input, n, cols);
        let mut batch: Vec<(&QMatrix<'_>, &mut [f32])> = Vec::with_capacity(jobs.len());
        for (j, ((t, out), view)) in jobs.iter_mut().zip(&views).enumerate() {
            if !done[j] && acts.feeds(view.format()) {
                done[j] = true;
                batch.push((view, &mut out[..n * t.rows]));
            }
        }
        let result = match batch.as_mut_slice() {
            [(w, y)] => matmul(w, acts, y),
            jobs => matmul_many(jobs, acts),
        };
        // Shapes were validated at load and buffers sized by the caller.
        result.expect("matmul shapes are validated at load");
    }
    for (t, out) in jobs.iter_mut() {
        if let Some(scale) = t.scale {
            out[..n * t.rows].iter_mut().for_each(|v| *v *= scale);
        }
    }
}
