//! The scout's draft engine in the browser: `kernels-wgsl`'s GPU model on WebGPU,
//! or kernels-cpu's model in a Web Worker ([`CpuWorker`]) where WebGPU is missing or
//! fails, or where the browser's adapter is software (SwiftShader runs the shaders on
//! the CPU, some 20× slower than the simd128 kernels: 0.4 against 9 tokens/s for the
//! default model on the CI machine). `?engine=webgpu` or `?engine=cpu` in the page's
//! address overrides the choice. The tokenizer comes from the same GGUF file either way.
//!
//! A GPU that fails while drafting (the device lost, a readback or validation error)
//! hands over to the CPU worker: the model's bytes come back from the browser's cache,
//! the worker starts, the failed draft runs again there, and the page is told.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{Context, Result};
use kernels_wgsl::{Gpu, GpuError, GpuModel, GpuModelError, GpuOptions, GpuSession, MatmulTiling};
use shared_protocol::gguf::GgufFile;
use shared_protocol::sampling::SamplingParams;
use shared_protocol::tokenizer::Tokenizer;

use crate::cpu_worker::CpuWorker;
use crate::js;
use crate::model_file::{self, ModelOffer};

/// Positions one draft session holds. A browser tab shares its GPU with the page
/// and everything else; 1024 positions of SmolLM2's KV cache are 47 MB.
pub(crate) const SESSION_POSITIONS: usize = 1024;

struct GpuEngine {
    model: GpuModel,
    session: RefCell<Option<GpuSession>>,
}

impl GpuEngine {
    async fn draft(
        &self,
        context: &[u32],
        params: &SamplingParams,
        k: usize,
    ) -> Result<Vec<u32>, GpuModelError> {
        // Taken out while the GPU works, so no RefCell borrow is held across an await.
        let taken = self.session.borrow_mut().take();
        let mut s = match taken {
            Some(s) => s,
            None => self.model.new_session(SESSION_POSITIONS)?,
        };
        let drafts = self.model.draft(&mut s, context, params, k).await;
        *self.session.borrow_mut() = Some(s);
        drafts
    }
}

/// Shared handles, so a draft holds its backend across awaits while a failed GPU is
/// swapped for the CPU worker.
#[derive(Clone)]
enum Backend {
    Gpu(Rc<GpuEngine>),
    Cpu(Rc<CpuWorker>),
}

/// Whether a failed GPU draft means the GPU is gone (rather than bad input).
fn gpu_is_broken(e: &GpuModelError) -> bool {
    matches!(
        e,
        GpuModelError::Gpu(
            GpuError::DeviceLost(_) | GpuError::Readback(_) | GpuError::Validation { .. }
        )
    )
}

/// What the page runs when the engine moves to the CPU: the new description.
type FallbackHook = Box<dyn Fn(&str)>;

pub(crate) struct DraftEngine {
    backend: RefCell<Backend>,
    /// Where the model's bytes come from again if the CPU worker must take over.
    offer: ModelOffer,
    pub(crate) tokenizer: Tokenizer,
    /// Where it drafts, for the page: "WebGPU on …" or "CPU …: why".
    description: RefCell<String>,
    /// Told the new description when a failed GPU hands over to the CPU.
    on_fallback: RefCell<Option<FallbackHook>>,
}

/// Which engine the page's address asks for (`?engine=webgpu|cpu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preference {
    /// WebGPU on a hardware adapter, else the CPU.
    Fastest,
    /// WebGPU whatever the adapter (the CPU only where WebGPU fails).
    WebGpu,
    /// The CPU worker.
    Cpu,
}

impl Preference {
    fn from_page() -> Self {
        match js::query_param("engine").as_deref() {
            Some("webgpu" | "gpu") => Self::WebGpu,
            Some("cpu") => Self::Cpu,
            _ => Self::Fastest,
        }
    }
}

/// The GPU model on WebGPU, and the adapter as the browser names it.
async fn open_gpu(bytes: &[u8], web: &js::WebAdapterInfo) -> Result<(GpuModel, String)> {
    // wgpu cannot tell a software adapter on the web; the browser can. On one, each
    // invocation is a CPU SIMD lane and every barrier costs, so the matmul gets the
    // software tiling, as lavapipe does natively.
    let software = web.is_software();
    let options = GpuOptions {
        matmul_tiling: software.then(|| MatmulTiling::for_adapter(true)),
        ..GpuOptions::default()
    };
    let gpu = Gpu::new(&options).await.context("opening WebGPU")?;
    let info = &gpu.info().adapter;
    // Browsers may hide the adapter's name; say so rather than print nothing.
    let named = [&info.name, &info.driver, &info.driver_info]
        .into_iter()
        .find(|s| !s.is_empty())
        .cloned()
        .or_else(|| web.label())
        .unwrap_or_else(|| "an adapter the browser does not name".into());
    let adapter = if software {
        format!("{named} (software)")
    } else {
        named
    };
    let model = GpuModel::load(gpu, bytes).context("loading the model onto the GPU")?;
    Ok((model, adapter))
}

impl DraftEngine {
    /// Opens the engine the page wants ([`Preference`]): WebGPU with the model
    /// uploaded, unless the adapter is software or the address asks for the CPU; where
    /// WebGPU fails (none, no adapter, a device request refused, a model the GPU cannot
    /// hold) it starts the CPU worker. [`DraftEngine::description`] says which and why.
    /// Errors when neither works, or the file is not a model.
    pub(crate) async fn open(bytes: &[u8], offer: &ModelOffer) -> Result<Self> {
        let file = GgufFile::parse(bytes).context("reading the model file")?;
        let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
        drop(file);
        let preference = Preference::from_page();
        let web = js::web_adapter_info().await;
        let why_cpu = match (preference, &web) {
            (Preference::Cpu, _) => Some("the page's address asks for it (engine=cpu)".to_owned()),
            (Preference::Fastest, Some(web)) if web.is_software() => Some(format!(
                "the browser's WebGPU adapter ({}) is software, slower than these kernels; \
                 add ?engine=webgpu to the address to use it anyway",
                web.label().unwrap_or_else(|| "unnamed".into())
            )),
            _ => None,
        };
        if let Some(why) = why_cpu {
            match CpuWorker::start(bytes).await {
                Ok(worker) => return Ok(Self::on_cpu(worker, offer, tokenizer, &why)),
                Err(e) => js::log(&format!("the CPU worker failed ({e:#}); trying WebGPU")),
            }
        }
        let gpu_failure = match open_gpu(bytes, &web.unwrap_or_default()).await {
            Ok((model, adapter)) => {
                return Ok(Self::new(
                    Backend::Gpu(Rc::new(GpuEngine {
                        model,
                        session: RefCell::new(None),
                    })),
                    offer,
                    tokenizer,
                    format!("WebGPU on {adapter}"),
                ));
            }
            Err(e) => e,
        };
        js::log(&format!(
            "no WebGPU engine ({gpu_failure:#}); drafting on the CPU"
        ));
        let worker = CpuWorker::start(bytes)
            .await
            .with_context(|| format!("no WebGPU ({gpu_failure:#}), and the CPU worker failed"))?;
        Ok(Self::on_cpu(
            worker,
            offer,
            tokenizer,
            &format!("WebGPU is not available here ({gpu_failure:#})"),
        ))
    }

    fn new(
        backend: Backend,
        offer: &ModelOffer,
        tokenizer: Tokenizer,
        description: String,
    ) -> Self {
        Self {
            backend: RefCell::new(backend),
            offer: offer.clone(),
            tokenizer,
            description: RefCell::new(description),
            on_fallback: RefCell::new(None),
        }
    }

    fn on_cpu(worker: CpuWorker, offer: &ModelOffer, tokenizer: Tokenizer, why: &str) -> Self {
        let description = cpu_description(&worker, why);
        Self::new(Backend::Cpu(Rc::new(worker)), offer, tokenizer, description)
    }

    /// Whether it drafts on the GPU.
    pub(crate) fn on_gpu(&self) -> bool {
        matches!(*self.backend.borrow(), Backend::Gpu(_))
    }

    /// Where it drafts, and why there.
    pub(crate) fn description(&self) -> String {
        self.description.borrow().clone()
    }

    /// `f` hears the new [`description`](Self::description) when a failed GPU hands
    /// over to the CPU worker.
    pub(crate) fn set_on_fallback(&self, f: impl Fn(&str) + 'static) {
        *self.on_fallback.borrow_mut() = Some(Box::new(f));
    }

    /// Swaps a broken GPU for the CPU worker (once: a second caller gets the worker
    /// the first one started).
    async fn fall_back(&self, failure: &GpuModelError) -> Result<Rc<CpuWorker>> {
        if let Backend::Cpu(w) = &*self.backend.borrow() {
            return Ok(w.clone());
        }
        js::log(&format!(
            "drafting on WebGPU failed ({failure}); moving to the CPU worker"
        ));
        let (bytes, _) = model_file::load(&self.offer, |_, _| {})
            .await
            .context("reading the model again for the CPU worker")?;
        let worker = CpuWorker::start(&bytes)
            .await
            .with_context(|| format!("WebGPU failed ({failure}), and so did the CPU worker"))?;
        drop(bytes);
        if let Backend::Cpu(w) = &*self.backend.borrow() {
            return Ok(w.clone());
        }
        let worker = Rc::new(worker);
        let description = cpu_description(
            &worker,
            &format!("WebGPU failed while drafting ({failure})"),
        );
        *self.backend.borrow_mut() = Backend::Cpu(worker.clone());
        *self.description.borrow_mut() = description.clone();
        if let Some(f) = &*self.on_fallback.borrow() {
            f(&description);
        }
        Ok(worker)
    }

    /// Prompt text to tokens as the titan tokenizes it (BOS first where the
    /// model wants it; special tokens in the text recognised).
    pub(crate) fn prompt_tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode_prompt(text)
    }

    /// `k` drafts after `context`, as a scout drafts for a titan; the session
    /// keeps its cached prefix between calls.
    pub(crate) async fn draft(
        &self,
        context: &[u32],
        params: &SamplingParams,
        k: usize,
    ) -> Result<Vec<u32>> {
        let backend = self.backend.borrow().clone();
        match backend {
            Backend::Gpu(gpu) => match gpu.draft(context, params, k).await {
                Ok(drafts) => Ok(drafts),
                Err(e) if gpu_is_broken(&e) => {
                    let worker = self.fall_back(&e).await?;
                    worker.draft(context, params, k).await
                }
                Err(e) => Err(e.into()),
            },
            Backend::Cpu(worker) => worker.draft(context, params, k).await,
        }
    }
}

/// The page's line for the CPU worker.
fn cpu_description(worker: &CpuWorker, why: &str) -> String {
    format!("CPU ({} kernels, in a Web Worker): {why}", worker.kernels)
}
