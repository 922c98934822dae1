//! The CPU model: a llama-family model's recipe (`shared_protocol::model`) executed on
//! the kernels of this crate, from a GGUF file's bytes, with a KV cache and the
//! batched forward pass. It is the CPU twin of kernels-wgsl's `GpuModel`.
//!
//! It lives here, beside the kernels, rather than in the titan, because two hosts run
//! it: the titan (over a memory map, on its own thread pool) and the browser scout's
//! CPU fallback (over a fetched `ArrayBuffer`, in a Web Worker, where rayon runs on the
//! worker's thread alone). Nothing here opens files or starts threads.
//!
//! One forward pass takes any number of new tokens for any number of [`Session`]s (one
//! for decoding, K+1 for verifying drafts, hundreds for a prompt) and reads every
//! weight once, whatever that number; see [`crate::matmul`].

mod attention;
mod draft;
mod forward;
mod kv_cache;
mod ops;
mod weights;

pub use forward::{PassBuffers, PassInput, Session};
pub use kv_cache::KvCache;
pub use shared_protocol::model::{
    ConfigError, Family, FfnActivation, Logits, ModelConfig, RopeStyle, WeightError,
};
pub use weights::{LayerWeights, MatrixView, ModelWeights, TensorRef, load_weights};

use shared_protocol::gguf::{GgufError, GgufFile};
use shared_protocol::model::Rope;

use crate::{Precision, WeightFormat};

/// Long inputs are fed in slices of at most this many tokens, bounding scratch memory
/// (a slice of 512 needs ~5 MB of activations for the default model).
pub const PREFILL_CHUNK: usize = 512;

/// Why a model cannot be loaded or a pass cannot run on the CPU.
#[derive(Debug, thiserror::Error)]
pub enum CpuModelError {
    #[error("invalid GGUF")]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("cannot re-encode the output head as {reason}")]
    OutputHeadFormat { reason: String },
    #[error("{needed} positions exceed the context length of {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    InvalidToken { id: u32, vocab: usize },
    #[error("no input tokens")]
    EmptyInput,
}

/// How a [`CpuModel`] computes: what its host chose at load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuOptions {
    /// Convert every weight to F32 at load so no activation is quantized:
    /// slow and 4 bytes per weight, for checking against float references.
    pub dequantize_weights: bool,
    /// How matmul inputs are rounded for the integer kernels; `None` picks the
    /// model family's default ([`default_precision`]). Int16 keeps the float
    /// model's results (mean KL < 1e-5 nats from a float64 reference on
    /// SmolLM2-135M); int8 is llama.cpp's choice, faster on batches but 0.005
    /// nats off, enough to flip near-tied greedy picks.
    pub precision: Option<Precision>,
    /// Re-encode the output head in this format at load (kept in memory beside the file).
    /// The head is the largest single matrix of small and ternary models (a tied F16
    /// embedding: 252 MB per token for a 2560-wide, 49152-token vocabulary), so Q8_0
    /// halves its bytes per token; it changes the logits slightly, so it is off by default.
    pub output_head: Option<WeightFormat>,
}

/// The bytes a model computes from: a memory map in the titan, a fetched buffer in
/// the browser, an owned F32 copy in exact-arithmetic mode.
pub type WeightStore = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A model whose weights are read, in their file format, straight from one buffer.
pub struct CpuModel {
    store: WeightStore,
    /// The output head re-encoded at load ([`CpuOptions::output_head`]): its bytes and
    /// where it lies in them.
    head: Option<(Vec<u8>, TensorRef)>,
    pub config: ModelConfig,
    pub weights: ModelWeights,
    rope: Rope,
    pub precision: Precision,
}

impl std::fmt::Debug for CpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuModel")
            .field("config", &self.config)
            .field("precision", &self.precision)
            .finish_non_exhaustive()
    }
}

impl CpuModel {
    /// Reads the model in `store` (a whole GGUF file) and checks every weight block
    /// ([`load_weights`]). The bytes are kept and computed from; nothing is copied
    /// unless `options` asks for converted weights.
    pub fn load(store: WeightStore, options: &CpuOptions) -> Result<Self, CpuModelError> {
        let (config, mut weights) = {
            let gguf = GgufFile::parse((*store).as_ref())?;
            let config = ModelConfig::from_gguf(&gguf)?;
            let weights = load_weights(&gguf, &config)?;
            (config, weights)
        };
        let store = if options.dequantize_weights {
            let (bytes, converted) = weights::dequantized(&weights, (*store).as_ref());
            weights = converted;
            Box::new(bytes)
        } else {
            store
        };
        let precision = options
            .precision
            .unwrap_or_else(|| default_precision(config.family));
        let head = match options.output_head {
            Some(format) if !options.dequantize_weights && format != weights.output.format => Some(
                weights::requantize(&weights.output, (*store).as_ref(), format)?,
            ),
            _ => None,
        };
        let rope = Rope::for_model(&config, weights.rope_freqs.as_deref());
        Ok(Self {
            store,
            head,
            config,
            weights,
            rope,
            precision,
        })
    }

    /// The bytes [`TensorRef`] offsets point into.
    pub fn bytes(&self) -> &[u8] {
        (*self.store).as_ref()
    }

    /// The output head as the forward pass reads it: its bytes and its place in them.
    pub fn output_head(&self) -> (&[u8], &TensorRef) {
        match &self.head {
            Some((bytes, t)) => (bytes, t),
            None => (self.bytes(), &self.weights.output),
        }
    }

    /// Bytes of weights one forward pass reads (every matrix once, plus one
    /// embedding row per token, which is negligible).
    pub fn weight_bytes_per_pass(&self) -> usize {
        let head = &self.weights.output;
        self.weights.matrices().map(|t| t.len).sum::<usize>() - head.len + self.output_head().1.len
    }
}

/// The activation precision a model family computes with unless told otherwise:
/// BitNet b1.58 was trained with per-token int8 activations (and bitnet.cpp computes
/// them so), so its forward pass is defined with them; everything else gets int16, the
/// float model's results.
pub fn default_precision(family: Family) -> Precision {
    match family {
        Family::BitNet => Precision::Int8PerToken,
        Family::Llama => Precision::Int16,
    }
}
