//! The scout's draft engine in the browser: `kernels-wgsl`'s GPU model on WebGPU,
//! with the tokenizer from the same GGUF file.

use std::cell::RefCell;

use anyhow::{Context, Result};
use kernels_wgsl::{Gpu, GpuModel, GpuOptions, GpuSession, MatmulTiling};
use shared_protocol::gguf::GgufFile;
use shared_protocol::sampling::SamplingParams;
use shared_protocol::tokenizer::Tokenizer;

use crate::js;

/// Positions one draft session holds. A browser tab shares its GPU with the page
/// and everything else; 1024 positions of SmolLM2's KV cache are 47 MB.
pub(crate) const SESSION_POSITIONS: usize = 1024;

pub(crate) struct DraftEngine {
    model: GpuModel,
    session: RefCell<Option<GpuSession>>,
    pub(crate) tokenizer: Tokenizer,
    /// The adapter, as the browser names it.
    pub(crate) adapter: String,
}

impl DraftEngine {
    /// Opens WebGPU and uploads the model. Errors name what failed: no WebGPU
    /// (or no adapter), a device request refused, a file that is not a model.
    pub(crate) async fn open(bytes: &[u8]) -> Result<Self> {
        let file = GgufFile::parse(bytes).context("reading the model file")?;
        let tokenizer = Tokenizer::from_gguf(&file).context("reading the tokenizer")?;
        // wgpu cannot tell a software adapter on the web; the browser can. On one, each
        // invocation is a CPU SIMD lane and every barrier costs, so the matmul gets the
        // software tiling, as lavapipe does natively.
        let web = js::web_adapter_info().await.unwrap_or_default();
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
        Ok(Self {
            model,
            session: RefCell::new(None),
            tokenizer,
            adapter,
        })
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
        // Taken out while the GPU works, so no RefCell borrow is held across an await.
        let taken = self.session.borrow_mut().take();
        let mut session = match taken {
            Some(s) => s,
            None => self.model.new_session(SESSION_POSITIONS)?,
        };
        let drafts = self.model.draft(&mut session, context, params, k).await;
        *self.session.borrow_mut() = Some(session);
        Ok(drafts?)
    }
}
