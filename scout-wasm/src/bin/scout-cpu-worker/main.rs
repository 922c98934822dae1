//! The page's CPU fallback, as a dedicated Web Worker: kernels-cpu's model (its
//! simd128 kernels where it has them) drafting off the page's thread, for browsers
//! without WebGPU or where the GPU engine failed.
//!
//! Trunk builds this bin as a worker (`data-type="worker"` in `web/index.html`) into
//! `scout-cpu-worker_loader.js`; the page starts it with `new Worker(...)`. What the
//! two say is `worker_messages.rs`. It runs one job at a time, in arrival order:
//! `postMessage` queues them.

#[cfg(target_arch = "wasm32")]
#[path = "../../worker_messages.rs"]
mod worker_messages;

#[cfg(target_arch = "wasm32")]
mod worker {
    use std::cell::RefCell;
    use std::error::Error;

    use js_sys::{ArrayBuffer, Uint8Array};
    use kernels_cpu::model::{CpuModel, CpuOptions, Session};
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;
    use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

    use crate::worker_messages::{FromWorker, ToWorker};

    struct Loaded {
        model: CpuModel,
        /// One draft session for every context: its cached prefix is kept while
        /// consecutive jobs share it, as the GPU engine's is.
        session: Session,
    }

    /// An error with its causes, one line.
    fn chain(e: &dyn Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }

    fn post(scope: &DedicatedWorkerGlobalScope, message: &FromWorker) {
        match serde_json::to_string(message) {
            Ok(text) => {
                if let Err(e) = scope.post_message(&text.into()) {
                    web_sys::console::error_2(&"the CPU worker could not answer".into(), &e);
                }
            }
            Err(e) => web_sys::console::error_1(&format!("unencodable answer: {e}").into()),
        }
    }

    fn now_ms() -> f64 {
        js_sys::Date::now()
    }

    fn load(buffer: &ArrayBuffer, loaded: &RefCell<Option<Loaded>>) -> FromWorker {
        let started = now_ms();
        let bytes = Uint8Array::new(buffer).to_vec();
        match CpuModel::load(Box::new(bytes), &CpuOptions::default()) {
            Ok(model) => {
                let session = model.new_session();
                *loaded.borrow_mut() = Some(Loaded { model, session });
                FromWorker::Ready {
                    kernels: kernels_cpu::active_path().to_owned(),
                    load_ms: now_ms() - started,
                }
            }
            Err(e) => FromWorker::Failed {
                reason: format!("the model does not load on the CPU: {}", chain(&e)),
            },
        }
    }

    fn answer(text: &str, loaded: &RefCell<Option<Loaded>>) -> FromWorker {
        let request = match serde_json::from_str::<ToWorker>(text) {
            Ok(r) => r,
            Err(e) => {
                return FromWorker::Failed {
                    reason: format!("unreadable request: {e}"),
                };
            }
        };
        let ToWorker::Draft {
            id,
            context,
            params,
            k,
        } = request;
        let mut loaded = loaded.borrow_mut();
        let Some(Loaded { model, session }) = loaded.as_mut() else {
            return FromWorker::DraftFailed {
                id,
                reason: "no model loaded yet".into(),
            };
        };
        match model.draft(session, &context, &params.into(), k) {
            Ok(tokens) => FromWorker::Drafted { id, tokens },
            Err(e) => FromWorker::DraftFailed {
                id,
                reason: chain(&e),
            },
        }
    }

    pub(crate) fn run() {
        console_error_panic_hook::set_once();
        let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
        let loaded = RefCell::new(None::<Loaded>);
        let replies = scope.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            let reply = if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
                load(buffer, &loaded)
            } else if let Some(text) = data.as_string() {
                answer(&text, &loaded)
            } else {
                FromWorker::Failed {
                    reason: "a message that is neither the model nor a request".into(),
                }
            };
            post(&replies, &reply);
        });
        scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // The handler lives as long as the worker.
        on_message.forget();
        post(&scope, &FromWorker::Started);
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {
    worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("scout-cpu-worker is the browser scout's CPU worker: `cargo xtask app` builds it");
    std::process::exit(2);
}
