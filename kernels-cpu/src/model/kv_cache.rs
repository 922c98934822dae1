//! The key/value cache of one sequence.
//!
//! Layout per layer: token-major `[position][kv_head][head_dim]` in f32, so
//! appending a batch of tokens is a copy onto the end and rolling back
//! rejected draft positions is a truncate. Capacity grows with the sequence
//! (up to the model's context length), so short sessions stay small.

#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    kv_dim: usize,
    len: usize,
}

impl KvCache {
    pub fn new(n_layer: usize, kv_dim: usize) -> Self {
        Self {
            k: vec![Vec::new(); n_layer],
            v: vec![Vec::new(); n_layer],
            kv_dim,
            len: 0,
        }
    }

    /// Number of positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every position from `len` on (rollback of rejected drafts), and
    /// anything appended but not committed.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            layer.truncate(len * self.kv_dim);
        }
        self.len = len;
    }

    /// Appends the keys and values of `n` new positions to `layer`. All layers
    /// must be given the same `n` before [`KvCache::commit`].
    pub fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        debug_assert_eq!(self.k[layer].len(), self.len * self.kv_dim);
        self.k[layer].extend_from_slice(k);
        self.v[layer].extend_from_slice(v);
    }

    /// Makes `n` appended positions part of the sequence.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.k.iter().all(|l| l.len() == self.len * self.kv_dim));
    }

    /// Keys and values of `layer`, including positions appended but not yet committed.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.k[layer], &self.v[layer])
    }

    /// Bytes held, for logs and limits.
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|l| l.capacity() * size_of::<f32>())
            .sum()
    }
}
