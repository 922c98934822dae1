//! Opening a model file: memory map, validation, tokenizer, thread pool.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kernels_cpu::{Precision, WeightFormat};
use memmap2::Mmap;
use shared_protocol::chat::ChatTemplate;
use shared_protocol::gguf::GgufFile;
use shared_protocol::model::Rope;
use shared_protocol::tokenizer::Tokenizer;

use super::{ModelConfig, ModelError, ModelWeights};

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Compute threads; 0 means one per available core.
    pub threads: usize,
    /// Show a progress bar on stderr while the file is paged in.
    pub progress: bool,
    /// Convert every weight to F32 at load so no activation is quantized:
    /// slow and 4 bytes per weight, for checking against float references.
    pub dequantize_weights: bool,
    /// How matmul inputs are rounded for the integer kernels; `None` picks the
    /// model family's default ([`default_precision`]). Int16 keeps the float
    /// model's results (mean KL < 1e-5 nats from a float64 reference on
    /// SmolLM2-135M); int8 is llama.cpp's choice, faster on batches but 0.005
    /// nats off, enough to flip near-tied greedy picks.
    pub precision: Option<Precision>,
    /// Re-encode the output head in this format at load (kept in memory beside the map).
    /// The head is the largest single matrix of small and ternary models (a tied F16
    /// embedding: 252 MB per token for a 2560-wide, 49152-token vocabulary), so Q8_0
    /// halves its bytes per token; it changes the logits slightly, so it is off by default.
    pub output_head: Option<WeightFormat>,
}

/// Where the weight bytes live: the mapped file, or an owned copy converted
/// at load.
enum WeightBytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A loaded model: the mapped file, where its weights are, its tokenizer and
/// the thread pool its kernels run on.
pub struct Model {
    store: WeightBytes,
    /// The output head re-encoded at load ([`LoadOptions::output_head`]): its bytes and
    /// where it lies in them.
    pub(super) head: Option<(Vec<u8>, super::TensorRef)>,
    pub path: PathBuf,
    pub config: ModelConfig,
    pub weights: ModelWeights,
    pub tokenizer: Tokenizer,
    /// The chat template from the file, or why it could not be used.
    pub chat_template: Result<ChatTemplate, String>,
    pub(super) pool: rayon::ThreadPool,
    pub(super) rope: Rope,
    pub precision: Precision,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Model {
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self, ModelError> {
        let started = Instant::now();
        let map = map_file(path)?;
        let gguf = GgufFile::parse(&map)?;
        let config = ModelConfig::from_gguf(&gguf)?;
        let mut weights = super::load_weights(&gguf, &config)?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        if tokenizer.vocab_size() > config.n_vocab {
            return Err(ModelError::VocabMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: config.n_vocab,
            });
        }
        let chat_template = ChatTemplate::from_gguf(&gguf).map_err(|e| e.to_string());
        drop(gguf);

        let store = if options.dequantize_weights {
            let (bytes, converted) = super::weights::dequantized(&weights, &map);
            weights = converted;
            WeightBytes::Owned(bytes)
        } else {
            page_in(&map, options.progress);
            WeightBytes::Mapped(map)
        };
        let precision = options
            .precision
            .unwrap_or_else(|| default_precision(config.family));
        let head = match options.output_head {
            Some(format) if !options.dequantize_weights && format != weights.output.format => Some(
                super::weights::requantize(&weights.output, store_bytes(&store), format)?,
            ),
            _ => None,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .thread_name(|i| format!("titan-compute-{i}"))
            .build()
            .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
        let rope = Rope::for_model(&config, weights.rope_freqs.as_deref());
        tracing::info!(
            path = %path.display(),
            layers = config.n_layer,
            embd = config.n_embd,
            vocab = config.n_vocab,
            threads = pool.current_num_threads(),
            kernels = kernels_cpu::active_path(),
            activations = precision.name(),
            output_head = ?head.as_ref().map_or(weights.output.format, |(_, t)| t.format),
            secs = started.elapsed().as_secs_f32(),
            "model loaded"
        );
        Ok(Self {
            store,
            head,
            path: path.to_owned(),
            config,
            weights,
            tokenizer,
            chat_template,
            pool,
            rope,
            precision,
        })
    }

    /// The bytes [`TensorRef`](super::TensorRef) offsets point into.
    pub fn bytes(&self) -> &[u8] {
        store_bytes(&self.store)
    }

    /// The output head as the forward pass reads it: its bytes and its place in them.
    pub fn output_head(&self) -> (&[u8], &super::TensorRef) {
        match &self.head {
            Some((bytes, t)) => (bytes, t),
            None => (self.bytes(), &self.weights.output),
        }
    }

    /// Runs `f` on the model's compute pool (for parallel work beside the
    /// forward pass, such as sampling many sequences).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
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
pub fn default_precision(family: super::Family) -> Precision {
    match family {
        super::Family::BitNet => Precision::Int8PerToken,
        super::Family::Llama => Precision::Int16,
    }
}

fn store_bytes(store: &WeightBytes) -> &[u8] {
    match store {
        WeightBytes::Mapped(map) => map,
        WeightBytes::Owned(bytes) => bytes,
    }
}

/// Maps a file read-only.
pub fn map_file(path: &Path) -> Result<Mmap, ModelError> {
    let io = |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only and private to this process. If another
    // process truncates or rewrites the file while we run, reads may fault or
    // see new bytes; model files are not modified in place in practice, and
    // llama.cpp makes the same trade.
    unsafe { Mmap::map(&file) }.map_err(io)
}

/// Touches every page so the first forward pass does not stall on page
/// faults, with a progress bar when asked.
fn page_in(map: &Mmap, progress: bool) {
    let _ = map.advise(memmap2::Advice::WillNeed);
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(map.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "loading {bar:40} {bytes}/{total_bytes} ({bytes_per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    const PAGE: usize = 4096;
    const CHUNK: usize = 8 << 20;
    let mut sum = 0u8;
    for chunk in map.chunks(CHUNK) {
        for page in chunk.chunks(PAGE) {
            sum = sum.wrapping_add(page[0]);
        }
        bar.inc(chunk.len() as u64);
    }
    std::hint::black_box(sum);
    bar.finish_and_clear();
}
