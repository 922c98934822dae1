//! `titan gen-bitnet`: a valid BitNet b1.58 GGUF with seeded random ternary weights and
//! SmolLM2's real tokenizer, for tests (`tiny`) and for speed measurements with BitNet
//! b1.58 2B4T's shapes (`2b4t`). Speed does not depend on the weight values, and nothing
//! is downloaded.
//!
//! The ternary values are a pure function of `(seed, tensor)`, whatever the `--type`, so
//! the same seed written as TQ1_0, TQ2_0 and I2_S holds the same model (up to the f16
//! rounding of the TQ block scales).

use std::io::Write;

use anyhow::{Context, Result, bail};
use kernels_cpu::formats::{i2_s, tq1_0, tq2_0};
use rayon::prelude::*;
use shared_protocol::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue};
use shared_protocol::sampling::uniform;

use crate::cli::{BitnetShape, GenBitnetArgs, TernaryType};

/// Hyperparameters of a generated model.
struct Shape {
    n_layer: usize,
    n_embd: usize,
    n_ff: usize,
    n_head: usize,
    n_head_kv: usize,
    n_ctx: usize,
    rope_base: f32,
}

impl Shape {
    fn of(s: BitnetShape) -> Self {
        match s {
            // Every row length a multiple of 256, as the TQ blocks require.
            BitnetShape::Tiny => Shape {
                n_layer: 2,
                n_embd: 256,
                n_ff: 512,
                n_head: 4,
                n_head_kv: 2,
                n_ctx: 512,
                rope_base: 10_000.0,
            },
            // microsoft/bitnet-b1.58-2B-4T's config.json.
            BitnetShape::B2b4t => Shape {
                n_layer: 30,
                n_embd: 2560,
                n_ff: 6912,
                n_head: 20,
                n_head_kv: 5,
                n_ctx: 4096,
                rope_base: 500_000.0,
            },
        }
    }
}

pub fn run(args: GenBitnetArgs) -> Result<()> {
    let arch = args.arch.as_str();
    if !matches!(arch, "bitnet" | "bitnet-b1.58" | "bitnet-25") {
        bail!("--arch must be bitnet, bitnet-b1.58 or bitnet-25, got {arch:?}");
    }
    let vocab_path = crate::model_name::resolve(&args.vocab_from)
        .context("the tokenizer is copied from --vocab-from")?;
    let vocab_bytes = crate::engine::map_file(&vocab_path)?;
    let vocab = GgufFile::parse(&vocab_bytes)
        .with_context(|| format!("parsing {}", vocab_path.display()))?;
    let n_vocab = vocab.require_array("tokenizer.ggml.tokens")?.len();
    let sh = Shape::of(args.shape);
    let head_dim = sh.n_embd / sh.n_head;
    let kv_dim = sh.n_head_kv * head_dim;

    let mut w = GgufWriter::new();
    let key = |k: &str| format!("{arch}.{k}");
    let count = |v: usize| MetaValue::U32(v as u32);
    w.metadata("general.architecture", MetaValue::String(arch.into()))
        .metadata(
            "general.name",
            MetaValue::String(format!(
                "shard random BitNet {} seed {}",
                args.shape.name(),
                args.seed
            )),
        )
        .metadata(key("vocab_size"), count(n_vocab))
        .metadata(key("block_count"), count(sh.n_layer))
        .metadata(key("context_length"), count(sh.n_ctx))
        .metadata(key("embedding_length"), count(sh.n_embd))
        .metadata(key("feed_forward_length"), count(sh.n_ff))
        .metadata(key("attention.head_count"), count(sh.n_head))
        .metadata(key("attention.head_count_kv"), count(sh.n_head_kv))
        .metadata(key("rope.dimension_count"), count(head_dim))
        .metadata(key("rope.freq_base"), MetaValue::F32(sh.rope_base))
        .metadata(
            key("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(1e-5),
        );
    for (k, v) in &vocab.metadata {
        if k.starts_with("tokenizer.") {
            w.metadata(*k, MetaValue::from(v.clone()));
        }
    }

    let seed = args.seed;
    let mut stream = 0u64;
    let mut next_stream = || {
        stream += 1;
        stream
    };
    // The embedding doubles as the output head (tied), in F16 as bitnet.cpp's 2B4T file.
    // Its scale gives logits of standard deviation about √3 after the final norm, a
    // spread like a trained model's rather than a one-hot distribution.
    let embd_scale = 3.0 / (sh.n_embd as f32).sqrt();
    let embd: Vec<u8> = random_f32(seed, next_stream(), n_vocab * sh.n_embd, embd_scale)
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    w.tensor(
        "token_embd.weight",
        &[sh.n_embd as u64, n_vocab as u64],
        GgmlType::F16,
        embd,
    )?;
    w.tensor(
        "output_norm.weight",
        &[sh.n_embd as u64],
        GgmlType::F32,
        norm(seed, next_stream(), sh.n_embd),
    )?;
    for l in 0..sh.n_layer {
        let p = |n: &str| format!("blk.{l}.{n}");
        for (name, len) in [
            ("attn_norm.weight", sh.n_embd),
            ("attn_sub_norm.weight", sh.n_embd),
            ("ffn_norm.weight", sh.n_embd),
            ("ffn_sub_norm.weight", sh.n_ff),
        ] {
            w.tensor(
                p(name),
                &[len as u64],
                GgmlType::F32,
                norm(seed, next_stream(), len),
            )?;
        }
        for (name, rows, cols) in [
            ("attn_q.weight", sh.n_embd, sh.n_embd),
            ("attn_k.weight", kv_dim, sh.n_embd),
            ("attn_v.weight", kv_dim, sh.n_embd),
            ("attn_output.weight", sh.n_embd, sh.n_embd),
            ("ffn_gate.weight", sh.n_ff, sh.n_embd),
            ("ffn_up.weight", sh.n_ff, sh.n_embd),
            ("ffn_down.weight", sh.n_embd, sh.n_ff),
        ] {
            let (ty, bytes) = ternary_tensor(args.ty, seed, next_stream(), rows, cols);
            w.tensor(p(name), &[cols as u64, rows as u64], ty, bytes)?;
        }
    }
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    w.write_to(&mut out)
        .and_then(|()| out.flush())
        .with_context(|| format!("writing {}", args.out.display()))?;
    tracing::info!(
        path = %args.out.display(),
        shape = args.shape.name(),
        "wrote a random BitNet model"
    );
    Ok(())
}

/// Uniform values in `[-scale, scale]`, a pure function of `(seed, stream)`.
fn random_f32(seed: u64, stream: u64, n: usize, scale: f32) -> Vec<f32> {
    (0..n as u64)
        .into_par_iter()
        .map(|i| (uniform(seed, stream, i) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

/// Norm weights near 1, as little-endian f32 bytes.
fn norm(seed: u64, stream: u64, n: usize) -> Vec<u8> {
    random_f32(seed, stream, n, 0.2)
        .iter()
        .flat_map(|v| (1.0 + v).to_le_bytes())
        .collect()
}

/// A `rows × cols` matrix `s · t` with `t ∈ {−1, 0, +1}` equally likely and one scale `s`
/// per tensor (what BitNet b1.58's absmean quantization produces), in `ty`'s layout.
fn ternary_tensor(
    ty: TernaryType,
    seed: u64,
    stream: u64,
    rows: usize,
    cols: usize,
) -> (GgmlType, Vec<u8>) {
    // Trained BitNet layers have scales of a few 1e-2.
    let s = 0.02 + 0.02 * uniform(seed, stream, u64::MAX) as f32;
    let values: Vec<f32> = (0..(rows * cols) as u64)
        .into_par_iter()
        .map(|i| s * ((uniform(seed, stream, i) * 3.0) as i32 - 1).clamp(-1, 1) as f32)
        .collect();
    match ty {
        TernaryType::Tq2_0 => (
            GgmlType::TQ2_0,
            by_rows(&values, cols, tq2_0::quantize_row_bytes),
        ),
        TernaryType::Tq1_0 => (
            GgmlType::TQ1_0,
            by_rows(&values, cols, tq1_0::quantize_row_bytes),
        ),
        TernaryType::I2S => (GgmlType::I2_S, i2_s::quantize_tensor(&values, rows, cols)),
    }
}

/// Quantizes each row of `values` in parallel and concatenates the rows' bytes.
fn by_rows(values: &[f32], cols: usize, quantize: fn(&[f32]) -> Vec<u8>) -> Vec<u8> {
    let rows: Vec<Vec<u8>> = values.par_chunks(cols).map(quantize).collect();
    rows.concat()
}
