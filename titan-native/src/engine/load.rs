//! Opening a model file: memory map, validation, tokenizer, thread pool.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kernels_cpu::model::{CpuModel, CpuOptions, Session};
use kernels_cpu::{Precision, WeightFormat};
use memmap2::Mmap;
use shared_protocol::chat::ChatTemplate;
use shared_protocol::gguf::GgufFile;
use shared_protocol::tokenizer::Tokenizer;

use super::{Logits, ModelError, PassBuffers, PassInput};

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Compute threads; 0 means one per available core.
    pub threads: usize,
    /// Show a progress bar on stderr while the file is paged in.
    pub progress: bool,
    /// Convert every weight to F32 at load ([`CpuOptions::dequantize_weights`]).
    pub dequantize_weights: bool,
    /// How matmul inputs are rounded ([`CpuOptions::precision`]); `None` picks the
    /// model family's default.
    pub precision: Option<Precision>,
    /// Re-encode the output head in this format at load ([`CpuOptions::output_head`]).
    pub output_head: Option<WeightFormat>,
}

/// A loaded model: the graph over the mapped file, its tokenizer and the thread
/// pool its kernels run on.
///
/// It dereferences to its [`CpuModel`] (config, weights, sessions, bytes); its own
/// [`Model::forward`] and [`Model::forward_batch`] run that model's passes on the
/// titan's pool.
pub struct Model {
    cpu: CpuModel,
    pub path: PathBuf,
    pub tokenizer: Tokenizer,
    /// The chat template from the file, or why it could not be used.
    pub chat_template: Result<ChatTemplate, String>,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("config", &self.cpu.config)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Model {
    type Target = CpuModel;

    fn deref(&self) -> &CpuModel {
        &self.cpu
    }
}

impl Model {
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self, ModelError> {
        let started = Instant::now();
        let map = map_file(path)?;
        let (tokenizer, chat_template) = {
            let gguf = GgufFile::parse(&map)?;
            let tokenizer = Tokenizer::from_gguf(&gguf)?;
            let template = ChatTemplate::from_gguf(&gguf).map_err(|e| e.to_string());
            (tokenizer, template)
        };
        if !options.dequantize_weights {
            page_in(&map, options.progress);
        }
        let cpu = CpuModel::load(
            Box::new(map),
            &CpuOptions {
                dequantize_weights: options.dequantize_weights,
                precision: options.precision,
                output_head: options.output_head,
            },
        )?;
        if tokenizer.vocab_size() > cpu.config.n_vocab {
            return Err(ModelError::VocabMismatch {
                tokenizer: tokenizer.vocab_size(),
                model: cpu.config.n_vocab,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .thread_name(|i| format!("titan-compute-{i}"))
            .build()
            .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
        tracing::info!(
            path = %path.display(),
            layers = cpu.config.n_layer,
            embd = cpu.config.n_embd,
            vocab = cpu.config.n_vocab,
            threads = pool.current_num_threads(),
            kernels = kernels_cpu::active_path(),
            activations = cpu.precision.name(),
            output_head = ?cpu.output_head().1.format,
            secs = started.elapsed().as_secs_f32(),
            "model loaded"
        );
        Ok(Self {
            cpu,
            path: path.to_owned(),
            tokenizer,
            chat_template,
            pool,
        })
    }

    /// A new sequence ([`CpuModel::new_session`]). Inherent here, so it is the one
    /// `model.new_session()` means wherever the `Engine` trait is also in scope.
    pub fn new_session(&self) -> Session {
        self.cpu.new_session()
    }

    /// [`CpuModel::forward`] on the model's pool.
    pub fn forward(
        &self,
        session: &mut Session,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        Ok(self
            .pool
            .install(|| self.cpu.forward(session, tokens, which))?)
    }

    /// [`CpuModel::forward_batch`] on the model's pool.
    pub fn forward_batch(
        &self,
        buffers: &mut PassBuffers,
        inputs: &mut [PassInput<'_, '_>],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        Ok(self
            .pool
            .install(|| self.cpu.forward_batch(buffers, inputs))?)
    }

    /// Runs `f` on the model's compute pool (for parallel work beside the
    /// forward pass, such as sampling many sequences).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
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
