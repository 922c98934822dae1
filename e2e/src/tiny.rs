//! Small llama-family models with seeded random weights, written as real GGUF files,
//! for tests that need shapes, tensor types or limits the default model does
//! not have. The tokenizer is borrowed from the default model, so prompts
//! tokenize as they do for SmolLM2.

use anyhow::{Context, Result};
use kernels_cpu::WeightFormat;
use shared_protocol::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue};

/// Shape and storage of a tiny llama model.
#[derive(Clone, Debug)]
pub struct TinyLlama {
    /// `llama`, or a BitNet architecture (`bitnet`, `bitnet-b1.58`,
    /// `bitnet-25`), which adds the sub-norms.
    pub arch: &'static str,
    /// BitNet `bitnet` only: write `blk.N.*.scale` tensors.
    pub scales: bool,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ctx: usize,
    /// Formats of q, k, v, o, gate, up, down, in that order; cycled per layer
    /// so every format meets every role.
    pub formats: Vec<WeightFormat>,
    pub embedding: WeightFormat,
    /// Whether the output head is a separate tensor (else tied to the embedding).
    pub output: Option<WeightFormat>,
    pub seed: u64,
}

impl Default for TinyLlama {
    fn default() -> Self {
        Self {
            arch: "llama",
            scales: false,
            n_layer: 2,
            n_embd: 64,
            n_ff: 96,
            n_head: 4,
            n_head_kv: 2,
            n_ctx: 256,
            formats: vec![WeightFormat::F32],
            embedding: WeightFormat::Q8_0,
            output: None,
            seed: 1,
        }
    }
}

fn ggml_type(f: WeightFormat) -> GgmlType {
    match f {
        WeightFormat::F32 => GgmlType::F32,
        WeightFormat::F16 => GgmlType::F16,
        WeightFormat::BF16 => GgmlType::BF16,
        WeightFormat::Q8_0 => GgmlType::Q8_0,
        WeightFormat::Q4_0 => GgmlType::Q4_0,
        WeightFormat::Q4_1 => GgmlType::Q4_1,
        WeightFormat::Tq1_0 => GgmlType::TQ1_0,
        WeightFormat::Tq2_0 => GgmlType::TQ2_0,
        WeightFormat::I2S => GgmlType::I2_S,
    }
}

/// Deterministic values in [-scale, scale] for tensor number `stream`.
fn random(seed: u64, stream: u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n as u64)
        .map(|i| (shared_protocol::sampling::uniform(seed, stream, i) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

impl TinyLlama {
    /// Writes the model as GGUF bytes, copying every `tokenizer.*` key from `vocab_source`.
    pub fn to_gguf(&self, vocab_source: &GgufFile<'_>) -> Result<Vec<u8>> {
        let n_vocab = vocab_source
            .require_array("tokenizer.ggml.tokens")
            .context("vocabulary source")?
            .len();
        let head_dim = self.n_embd / self.n_head;
        let kv = self.n_head_kv * head_dim;
        let arch = self.arch;
        let bitnet = arch != "llama";
        let k = |name: &str| format!("{arch}.{name}");
        let u32_of = |v: usize| MetaValue::U32(v as u32);
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", MetaValue::String(arch.into()))
            .metadata(
                "general.name",
                MetaValue::String(format!("tiny-{arch}-test")),
            )
            .metadata(k("block_count"), u32_of(self.n_layer))
            .metadata(k("context_length"), u32_of(self.n_ctx))
            .metadata(k("embedding_length"), u32_of(self.n_embd))
            .metadata(k("feed_forward_length"), u32_of(self.n_ff))
            .metadata(k("attention.head_count"), u32_of(self.n_head))
            .metadata(k("attention.head_count_kv"), u32_of(self.n_head_kv))
            .metadata(k("rope.freq_base"), MetaValue::F32(10_000.0))
            .metadata(k("attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-5));
        for (k, v) in &vocab_source.metadata {
            if k.starts_with("tokenizer.") {
                w.metadata(*k, MetaValue::from(v.clone()));
            }
        }
        let mut stream = 0u64;
        let mut matrix = |w: &mut GgufWriter,
                          name: &str,
                          rows: usize,
                          cols: usize,
                          f: WeightFormat|
         -> Result<()> {
            stream += 1;
            let values = random(self.seed, stream, rows * cols, (3.0 / cols as f32).sqrt());
            let bytes = crate::quantize(f, &values, cols);
            w.tensor(name, &[cols as u64, rows as u64], ggml_type(f), bytes)?;
            Ok(())
        };
        let norm = |stream: u64, n: usize| -> Vec<u8> {
            random(self.seed, 1000 + stream, n, 0.2)
                .iter()
                .flat_map(|v| (1.0 + v).to_le_bytes())
                .collect()
        };
        matrix(
            &mut w,
            "token_embd.weight",
            n_vocab,
            self.n_embd,
            self.embedding,
        )?;
        let mut fmt = self.formats.iter().copied().cycle();
        for l in 0..self.n_layer {
            let p = |n: &str| format!("blk.{l}.{n}");
            let roles = [
                ("attn_q.weight", self.n_embd, self.n_embd),
                ("attn_k.weight", kv, self.n_embd),
                ("attn_v.weight", kv, self.n_embd),
                ("attn_output.weight", self.n_embd, self.n_embd),
                ("ffn_gate.weight", self.n_ff, self.n_embd),
                ("ffn_up.weight", self.n_ff, self.n_embd),
                ("ffn_down.weight", self.n_embd, self.n_ff),
            ];
            for (name, rows, cols) in roles {
                let f = fmt.next().unwrap_or(WeightFormat::F32);
                matrix(&mut w, &p(name), rows, cols, f)?;
            }
            if bitnet {
                w.tensor(
                    p("attn_sub_norm.weight"),
                    &[self.n_embd as u64],
                    GgmlType::F32,
                    norm(500 + 2 * l as u64, self.n_embd),
                )?;
                w.tensor(
                    p("ffn_sub_norm.weight"),
                    &[self.n_ff as u64],
                    GgmlType::F32,
                    norm(501 + 2 * l as u64, self.n_ff),
                )?;
            }
            if self.scales {
                for (i, name) in [
                    "attn_q",
                    "attn_k",
                    "attn_v",
                    "attn_output",
                    "ffn_gate",
                    "ffn_up",
                    "ffn_down",
                ]
                .iter()
                .enumerate()
                {
                    let scale = 0.5 + 0.1 * (i + l) as f32;
                    w.tensor(
                        p(&format!("{name}.scale")),
                        &[1],
                        GgmlType::F32,
                        scale.to_le_bytes().to_vec(),
                    )?;
                }
            }
            w.tensor(
                p("attn_norm.weight"),
                &[self.n_embd as u64],
                GgmlType::F32,
                norm(2 * l as u64, self.n_embd),
            )?;
            w.tensor(
                p("ffn_norm.weight"),
                &[self.n_embd as u64],
                GgmlType::F32,
                norm(2 * l as u64 + 1, self.n_embd),
            )?;
        }
        w.tensor(
            "output_norm.weight",
            &[self.n_embd as u64],
            GgmlType::F32,
            norm(999, self.n_embd),
        )?;
        if let Some(f) = self.output {
            matrix(&mut w, "output.weight", n_vocab, self.n_embd, f)?;
        }
        Ok(w.to_bytes()?)
    }
}
