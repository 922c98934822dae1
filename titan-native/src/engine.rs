//! The titan's model: a GGUF file opened through a memory map, its tokenizer and
//! chat template, and the thread pool the forward pass runs on.
//!
//! The graph itself (the batched forward pass, the KV cache) is
//! [`kernels_cpu::model::CpuModel`], which the browser scout's CPU fallback runs too;
//! [`Model`] is that model plus what only the titan has: a file, a tokenizer for its
//! users, and threads.

mod load;

pub use kernels_cpu::model::{
    ConfigError, CpuModel, CpuModelError, Family, FfnActivation, KvCache, LayerWeights, Logits,
    MatrixView, ModelConfig, ModelWeights, PassBuffers, PassInput, RopeStyle, Session, TensorRef,
    WeightError, default_precision, load_weights,
};
pub use load::{LoadOptions, Model, map_file};

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
    #[error("cannot re-encode the output head as {reason}")]
    OutputHeadFormat { reason: String },
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

impl From<CpuModelError> for ModelError {
    fn from(e: CpuModelError) -> Self {
        match e {
            CpuModelError::Gguf(e) => Self::Gguf(e),
            CpuModelError::Config(e) => Self::Config(e),
            CpuModelError::Weights(e) => Self::Weights(e),
            CpuModelError::OutputHeadFormat { reason } => Self::OutputHeadFormat { reason },
            CpuModelError::ContextOverflow { needed, limit } => {
                Self::ContextOverflow { needed, limit }
            }
            CpuModelError::InvalidToken { id, vocab } => Self::InvalidToken { id, vocab },
            CpuModelError::EmptyInput => Self::EmptyInput,
        }
    }
}
