//! The llama-architecture model engine: loading a GGUF file through a memory
//! map, and the batched forward pass with a KV cache.
//!
//! One forward pass takes any number of new tokens for a [`Session`] (one
//! for decoding, K+1 for verifying drafts, hundreds for a prompt) and reads
//! every weight once, whatever that number; see `kernels_cpu::matmul`.

mod attention;
mod forward;
mod kv_cache;
mod load;
mod ops;
mod weights;

pub use forward::{Logits, PassBuffers, PassInput, Session};
pub use kv_cache::KvCache;
pub use load::{LoadOptions, Model, default_precision, map_file};
pub use shared_protocol::model::{ConfigError, Family, FfnActivation, ModelConfig, RopeStyle};
pub use weights::{LayerWeights, ModelWeights, TensorRef, weight_format};

use shared_protocol::gguf::{GgmlType, GgufError};
use shared_protocol::tokenizer::TokenizerError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid GGUF")]
    Gguf(#[from] GgufError),
    #[error("unusable tokenizer")]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("bad hyperparameter {key}: {value}")]
    BadHyperparameter { key: String, value: String },
    #[error(
        "tensor {name:?} has type {ty}, which Shard cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, TQ1_0, TQ2_0, I2_S)"
    )]
    UnsupportedTensorType { name: String, ty: GgmlType },
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("tokenizer has {tokenizer} tokens but the embedding has {model} rows")]
    VocabMismatch { tokenizer: usize, model: usize },
    #[error("{needed} positions exceed the context length of {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    InvalidToken { id: u32, vocab: usize },
    #[error("no input tokens")]
    EmptyInput,
    #[error("could not start the thread pool: {0}")]
    ThreadPool(String),
}
