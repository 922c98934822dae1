//! The page's handle on its CPU worker (`src/bin/scout-cpu-worker`): starts it,
//! hands it the model, and turns draft requests into futures answered by its
//! messages. Drafting there keeps the page responsive: a forward pass on the CPU
//! takes a tenth of a second or more, which on the page's thread would freeze it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use shared_protocol::sampling::SamplingParams;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{ErrorEvent, MessageEvent, Worker};

use crate::js;
use crate::worker_messages::{FromWorker, ToWorker};

/// Trunk names a worker's loader after its bin (`web/index.html`).
const WORKER_SCRIPT: &str = "./scout-cpu-worker_loader.js";

type Pending = Rc<RefCell<HashMap<u64, oneshot::Sender<Result<Vec<u32>, String>>>>>;

pub(crate) struct CpuWorker {
    worker: Worker,
    pending: Pending,
    next_id: Cell<u64>,
    /// The kernel path the worker runs (`simd128`, `scalar`).
    pub(crate) kernels: String,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl CpuWorker {
    /// Starts the worker and loads `bytes` (a whole GGUF file) into it; resolves when
    /// the worker has checked the model, or with why it could not.
    pub(crate) async fn start(bytes: &[u8]) -> Result<Self> {
        let worker = Worker::new(WORKER_SCRIPT)
            .map_err(|e| js::error(&format!("starting the CPU worker {WORKER_SCRIPT}"), &e))?;
        // Started, Ready or Failed: a handful of messages in a worker's life.
        let (life_tx, mut life) = mpsc::channel::<FromWorker>(4);
        let pending: Pending = Rc::default();

        let answers = pending.clone();
        let mut events = life_tx.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let text = event.data().as_string().unwrap_or_default();
            let message =
                serde_json::from_str::<FromWorker>(&text).unwrap_or_else(|e| FromWorker::Failed {
                    reason: format!("an answer the page cannot read ({e}): {text}"),
                });
            match message {
                FromWorker::Drafted { id, tokens } => {
                    if let Some(tx) = answers.borrow_mut().remove(&id) {
                        let _ = tx.send(Ok(tokens));
                    }
                }
                FromWorker::DraftFailed { id, reason } => {
                    if let Some(tx) = answers.borrow_mut().remove(&id) {
                        let _ = tx.send(Err(reason));
                    }
                }
                other => {
                    let _ = events.try_send(other);
                }
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));

        // A script that does not load or a panic in the worker: every waiting
        // request fails (its sender is dropped) and so does a start in progress.
        let failed = pending.clone();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            let reason = match event.message() {
                m if m.is_empty() => "the CPU worker stopped".to_owned(),
                m => format!("the CPU worker stopped: {m}"),
            };
            js::log(&reason);
            failed.borrow_mut().clear();
            let _ = life_tx.clone().try_send(FromWorker::Failed { reason });
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        // Dropping the handle terminates the worker, whatever goes wrong below.
        let mut this = Self {
            worker,
            pending,
            next_id: Cell::new(0),
            kernels: String::new(),
            _on_message: on_message,
            _on_error: on_error,
        };
        match life.next().await {
            Some(FromWorker::Started) => {}
            Some(FromWorker::Failed { reason }) => bail!("{reason}"),
            other => bail!("the CPU worker did not start: {other:?}"),
        }
        // The model crosses once, transferred rather than copied a second time.
        let array = js_sys::Uint8Array::new_with_length(
            u32::try_from(bytes.len()).context("a model over 4 GB")?,
        );
        array.copy_from(bytes);
        let buffer = array.buffer();
        this.worker
            .post_message_with_transfer(&buffer, &js_sys::Array::of1(&buffer))
            .map_err(|e| js::error("handing the model to the CPU worker", &e))?;
        match life.next().await {
            Some(FromWorker::Ready { kernels, load_ms }) => {
                js::log(&format!(
                    "CPU worker ready in {:.1} s on {kernels} kernels",
                    load_ms / 1000.0
                ));
                this.kernels = kernels;
                Ok(this)
            }
            Some(FromWorker::Failed { reason }) => bail!("{reason}"),
            other => bail!("the CPU worker did not load the model: {other:?}"),
        }
    }

    /// `k` drafts after `context`, drafted in the worker.
    pub(crate) async fn draft(
        &self,
        context: &[u32],
        params: &SamplingParams,
        k: usize,
    ) -> Result<Vec<u32>> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let request = serde_json::to_string(&ToWorker::Draft {
            id,
            context: context.to_vec(),
            params: params.into(),
            k,
        })?;
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if let Err(e) = self.worker.post_message(&request.into()) {
            self.pending.borrow_mut().remove(&id);
            return Err(js::error("asking the CPU worker", &e));
        }
        rx.await
            .map_err(|_| anyhow!("the CPU worker stopped"))?
            .map_err(|reason| anyhow!("drafting on the CPU failed: {reason}"))
    }
}

impl Drop for CpuWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
