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
pub use shared_protocol::model::{
    ConfigError, Family, FfnActivation, ModelConfig, RopeStyle, WeightError,
};
pub use weights::{LayerWeights, MatrixView, ModelWeights, TensorRef, load_weights};

use shared_protocol::gguf::GgufError;
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
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("the GPU model failed")]
    Gpu(#[from] kernels_wgsl::GpuModelError),
    #[error("{what}: {reason}")]
    BadLogits { what: String, reason: String },
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
