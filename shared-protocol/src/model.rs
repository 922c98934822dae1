//! Hyperparameters of a llama-family model, read from GGUF metadata: the
//! `llama` architecture and the BitNet b1.58 ones (`bitnet` as llama.cpp
//! names it; `bitnet-b1.58` and its earlier name `bitnet-25` as bitnet.cpp
//! does; see docs/bitnet.md).
//!
//! This is the model's recipe as both engines read it (the CPU engine in
//! titan-native, the GPU model in kernels-wgsl), so a file is understood the same
//! way by both: the hyperparameters here, where each weight lives ([`ModelWeights`]),
//! and the rotary embedding's tables ([`Rope`]).

mod rope;
mod weights;

pub use rope::Rope;
pub use weights::{ContentCheck, LayerWeights, ModelWeights, TensorRef, WeightError};

use crate::gguf::{GgufError, GgufFile};

/// Why a file's metadata does not describe a model Shard runs.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid GGUF")]
    Gguf(#[from] GgufError),
    #[error(
        "architecture {0:?} is not supported (supported: llama, bitnet, bitnet-b1.58, bitnet-25)"
    )]
    UnsupportedArchitecture(String),
    #[error("bad hyperparameter {key}: {value}")]
    BadHyperparameter { key: String, value: String },
}

/// How RoPE pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: llama.cpp's `llama` (its converter
    /// permutes Q/K rows to match).
    Norm,
    /// Pairs `(i, i + n_rot/2)`, HF's rotate-half: the BitNet architectures.
    Neox,
}

/// The gate activation of the gated FFN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnActivation {
    /// `silu(gate) · up` (SwiGLU).
    Silu,
    /// `relu(gate)² · up` (BitNet b1.58).
    Relu2,
}

/// The block variants Shard runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Llama,
    /// BitNet: RMSNorm of the attention output before `attn_output` and of
    /// the FFN product before `ffn_down` (`attn_sub_norm`, `ffn_sub_norm`).
    BitNet,
}

/// What the forward pass needs to know about the model's shape. Keys are
/// `<arch>.<name>` as llama.cpp writes them (`llama.block_count`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub family: Family,
    pub rope_style: RopeStyle,
    pub ffn_activation: FfnActivation,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates (`rope.dimension_count`).
    pub n_rot: usize,
    /// Context length the model was trained for; also our KV-cache bound.
    pub n_ctx: usize,
    pub n_vocab: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// Linear RoPE scaling: positions are divided by this factor.
    pub rope_scale: f32,
}

/// Refuse shapes no real model has before sizing any buffer by them.
const MAX_DIM: u64 = 1 << 20;
const MAX_LAYERS: u64 = 1024;
const MAX_CTX: u64 = 1 << 24;

impl ModelConfig {
    /// Reads and checks the hyperparameters of `file`, refusing shapes no real model
    /// has before anything is sized by them.
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<Self, ConfigError> {
        let arch = file.architecture()?.to_owned();
        let key = |name: &str| format!("{arch}.{name}");
        let (family, rope_style, ffn_activation) = match arch.as_str() {
            "llama" => (Family::Llama, RopeStyle::Norm, FfnActivation::Silu),
            // llama.cpp hard-codes SiLU for `bitnet`, bitnet.cpp relu² for its names; a
            // `hidden_activation` key (proposed upstream, not merged) is honoured if
            // present, and an unknown one is an error rather than a silent default.
            "bitnet" | "bitnet-b1.58" | "bitnet-25" => {
                let default = if arch == "bitnet" {
                    FfnActivation::Silu
                } else {
                    FfnActivation::Relu2
                };
                let act = match file.get_str(&key("hidden_activation"))? {
                    None => default,
                    Some("silu") => FfnActivation::Silu,
                    Some("relu2" | "relu_sqr") => FfnActivation::Relu2,
                    Some(other) => {
                        return Err(ConfigError::BadHyperparameter {
                            key: key("hidden_activation"),
                            value: format!("{other:?} (supported: silu, relu2)"),
                        });
                    }
                };
                (Family::BitNet, RopeStyle::Neox, act)
            }
            _ => return Err(ConfigError::UnsupportedArchitecture(arch)),
        };
        let dim = |name: &str, max: u64| -> Result<usize, ConfigError> {
            let k = key(name);
            let v = file.require_u64(&k)?;
            if v == 0 || v > max {
                return Err(ConfigError::BadHyperparameter {
                    key: k,
                    value: v.to_string(),
                });
            }
            Ok(v as usize)
        };
        let n_layer = dim("block_count", MAX_LAYERS)?;
        let n_embd = dim("embedding_length", MAX_DIM)?;
        let n_ff = dim("feed_forward_length", MAX_DIM)?;
        let n_head = dim("attention.head_count", MAX_DIM)?;
        let n_head_kv = match file.get_u64(&key("attention.head_count_kv"))? {
            None => n_head,
            Some(_) => dim("attention.head_count_kv", MAX_DIM)?,
        };
        let n_ctx = dim("context_length", MAX_CTX)?;
        if n_embd % n_head != 0 || n_head % n_head_kv != 0 {
            return Err(ConfigError::BadHyperparameter {
                key: key("attention.head_count"),
                value: format!(
                    "{n_head} heads, {n_head_kv} KV heads for embedding length {n_embd}"
                ),
            });
        }
        let head_dim = match file.get_u64(&key("attention.key_length"))? {
            Some(k) if k as usize != n_embd / n_head => {
                return Err(ConfigError::BadHyperparameter {
                    key: key("attention.key_length"),
                    value: format!("{k} (separate head sizes are not supported)"),
                });
            }
            _ => n_embd / n_head,
        };
        let n_rot = match file.get_u64(&key("rope.dimension_count"))? {
            None => head_dim,
            Some(r) if r as usize <= head_dim && r % 2 == 0 => r as usize,
            Some(r) => {
                return Err(ConfigError::BadHyperparameter {
                    key: key("rope.dimension_count"),
                    value: r.to_string(),
                });
            }
        };
        let rms_eps = file
            .get_f64(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5) as f32;
        let rope_base = file.get_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f32;
        let rope_scale = match file.get_f64(&key("rope.scale_linear"))? {
            Some(s) => s as f32,
            None => match file.get_str(&key("rope.scaling.type"))? {
                Some("linear") => file
                    .get_f64(&key("rope.scaling.factor"))?
                    .map_or(1.0, |f| f as f32),
                Some("none") | None => 1.0,
                // "yarn" and friends change more than a factor; refuse rather
                // than compute something subtly wrong.
                Some(other) => {
                    return Err(ConfigError::BadHyperparameter {
                        key: key("rope.scaling.type"),
                        value: format!("{other} (supported: none, linear)"),
                    });
                }
            },
        };
        for (k, v) in [
            ("rms epsilon", rms_eps),
            ("rope base", rope_base),
            ("rope scale", rope_scale),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::BadHyperparameter {
                    key: k.into(),
                    value: v.to_string(),
                });
            }
        }
        let n_vocab = file.require_tensor("token_embd.weight")?.n_rows() as usize;
        Ok(Self {
            architecture: arch,
            family,
            rope_style,
            ffn_activation,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ctx,
            n_vocab,
            rms_eps,
            rope_base,
            rope_scale,
        })
    }

    /// Width of the K and V projections.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// Which new positions of a forward pass need logits (both engines take it).
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

impl Logits {
    /// Index of the first new position that gets logits, of `n` new ones.
    pub fn first(self, n: usize) -> usize {
        match self {
            Logits::None => n,
            Logits::Last => n.saturating_sub(1),
            Logits::All => 0,
            Logits::From(i) => i.min(n),
        }
    }
}
