//! The page: the draft model's download, the WebGPU engine, and a drafting
//! panel that runs the engine on a prompt.
//!
//! Elements carry `data-state` attributes (`loading`, `ready`, `failed`, ...)
//! so the browser tests can wait on them instead of on time.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_protocol::sampling::SamplingParams;

use crate::chat::{self, ChatRequest, Message};
use crate::engine::DraftEngine;
use crate::js;
use crate::mesh::{self, MeshSignals};
use crate::model_file::{self, Source};

/// Greedy drafts the panel asks for by default.
const PANEL_DRAFTS: usize = 16;

#[derive(Clone, Debug, Default, PartialEq)]
struct Phase {
    /// `loading`, `ready` or `failed`.
    state: &'static str,
    text: String,
}

impl Phase {
    fn new(state: &'static str, text: impl Into<String>) -> Self {
        Self {
            state,
            text: text.into(),
        }
    }
}

// `#[component]` makes a public props struct beside the function.
#[allow(unreachable_pub)]
#[component]
pub(crate) fn App() -> impl IntoView {
    let model_phase = RwSignal::new(Phase::new(
        "loading",
        "asking the titan for its draft model",
    ));
    let received = RwSignal::new(0u64);
    let total = RwSignal::new(0u64);
    let engine_phase = RwSignal::new(Phase::new("waiting", "waiting for the model"));
    let engine = StoredValue::new_local(None::<Rc<DraftEngine>>);
    // Until the engine says otherwise, the page hopes for the GPU.
    let on_gpu = RwSignal::new(true);
    let mesh_view = MeshSignals::new();

    spawn_local(async move {
        let offer = match model_file::offer().await {
            Ok(o) => o,
            Err(e) => {
                model_phase.set(Phase::new("failed", format!("{e:#}")));
                engine_phase.set(Phase::new("failed", "no model"));
                return;
            }
        };
        total.set(offer.bytes);
        model_phase.set(Phase::new(
            "loading",
            format!("{} ({} MB)", offer.model_id, offer.bytes / 1_000_000),
        ));
        let started = js::now_ms();
        let loaded = model_file::load(&offer, move |got, of| {
            received.set(got);
            total.set(of);
        })
        .await;
        let (bytes, source) = match loaded {
            Ok(b) => b,
            Err(e) => {
                model_phase.set(Phase::new("failed", format!("{e:#}")));
                engine_phase.set(Phase::new("failed", "no model"));
                return;
            }
        };
        let from = match source {
            Source::BrowserCache => "from the browser's cache",
            Source::Download => "downloaded",
        };
        model_phase.set(Phase::new(
            "ready",
            format!(
                "{}: {} MB {from} in {:.1} s, sha256 {}… checked",
                offer.model_id,
                bytes.len() / 1_000_000,
                (js::now_ms() - started) / 1000.0,
                &offer.sha256[..12],
            ),
        ));
        engine_phase.set(Phase::new(
            "loading",
            "opening WebGPU and uploading the model",
        ));
        let started = js::now_ms();
        match DraftEngine::open(&bytes, &offer).await {
            Ok(e) => {
                drop(bytes);
                engine_phase.set(Phase::new(
                    "ready",
                    format!(
                        "{} (ready in {:.1} s)",
                        e.description(),
                        (js::now_ms() - started) / 1000.0
                    ),
                ));
                on_gpu.set(e.on_gpu());
                e.set_on_fallback(move |description| {
                    engine_phase.set(Phase::new("ready", description));
                    on_gpu.set(false);
                });
                let e = Rc::new(e);
                engine.set_value(Some(e.clone()));
                mesh::run(e, offer.model_id.clone(), mesh_view).await;
            }
            Err(e) => engine_phase.set(Phase::new("failed", format!("{e:#}"))),
        }
    });

    view! {
        <main>
            <header>
                <h1>"Shard scout"</h1>
                <p class="tagline">
                    {move || format!(
                        "This page drafts tokens on your {} for the titan that served it.",
                        if on_gpu.get() { "GPU" } else { "CPU" },
                    )}
                </p>
            </header>
            <section class="card">
                <h2>"Draft model"</h2>
                <div id="model-status" data-state=move || model_phase.get().state>
                    {move || model_phase.get().text}
                </div>
                <progress
                    id="model-progress"
                    max=move || total.get().max(1).to_string()
                    value=move || received.get().to_string()
                ></progress>
            </section>
            <section class="card">
                <h2>"Engine"</h2>
                <div id="engine-status" data-state=move || engine_phase.get().state>
                    {move || engine_phase.get().text}
                </div>
            </section>
            <ChatPanel/>
            <MeshPanel view=mesh_view/>
            <DraftPanel engine=engine ready=Signal::derive(move || engine_phase.get().state == "ready")/>
        </main>
    }
}

/// The conversation with the titan, streamed; kept across reloads.
#[allow(unreachable_pub)]
#[component]
fn ChatPanel() -> impl IntoView {
    let messages = RwSignal::new(chat::load());
    let input = RwSignal::new(String::new());
    let temperature = RwSignal::new(0.0f32);
    let max_tokens = RwSignal::new(256u32);
    let phase = RwSignal::new(Phase::new("idle", ""));
    let model = RwSignal::new(String::new());
    let abort = StoredValue::new_local(None::<web_sys::AbortController>);

    spawn_local(async move {
        let id = js::get_text("/v1/models")
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["data"][0]["id"].as_str().map(str::to_owned));
        match id {
            Some(id) => model.set(id),
            None => phase.set(Phase::new("failed", "the titan lists no model")),
        }
    });

    let send = move || {
        let text = input.get_untracked().trim().to_owned();
        if text.is_empty() || phase.get_untracked().state == "streaming" {
            return;
        }
        let Ok(controller) = web_sys::AbortController::new() else {
            phase.set(Phase::new("failed", "this browser cannot abort requests"));
            return;
        };
        abort.set_value(Some(controller.clone()));
        input.set(String::new());
        messages.update(|m| {
            m.push(Message {
                role: "user".into(),
                content: text,
            });
        });
        let history = messages.get_untracked();
        messages.update(|m| {
            m.push(Message {
                role: "assistant".into(),
                content: String::new(),
            })
        });
        chat::save(&messages.get_untracked());
        phase.set(Phase::new("streaming", "the titan is answering…"));
        spawn_local(async move {
            let model_id = model.get_untracked();
            let request = ChatRequest {
                model: &model_id,
                messages: &history,
                temperature: temperature.get_untracked(),
                max_tokens: max_tokens.get_untracked(),
            };
            let result = chat::stream(&request, &controller, |piece| {
                messages.update(|m| {
                    if let Some(last) = m.last_mut() {
                        last.content.push_str(piece);
                    }
                });
                chat::save(&messages.get_untracked());
            })
            .await;
            chat::save(&messages.get_untracked());
            abort.set_value(None);
            phase.set(match result {
                Ok(()) if controller.signal().aborted() => Phase::new("stopped", "stopped"),
                Ok(()) => Phase::new("done", ""),
                Err(e) => Phase::new("failed", format!("{e:#}")),
            });
        });
    };
    let stop = move |_| {
        if let Some(c) = abort.get_value() {
            c.abort();
        }
    };
    let clear = move |_| {
        messages.set(Vec::new());
        chat::save(&[]);
        phase.set(Phase::new("idle", ""));
    };

    view! {
        <section class="card">
            <h2>"Chat"</h2>
            <div id="chat-log">
                <For
                    each=move || messages.get().into_iter().enumerate()
                    key=|(i, m)| (*i, m.content.len())
                    children=move |(_, m)| {
                        view! { <div class="msg" data-role=m.role.clone()>{m.content.clone()}</div> }
                    }
                />
            </div>
            <div class="row">
                <input
                    id="chat-input"
                    type="text"
                    placeholder="Ask the titan…"
                    prop:value=move || input.get()
                    on:input=move |ev| input.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" {
                            send();
                        }
                    }
                />
                <button id="chat-send" on:click=move |_| send() disabled=move || phase.get().state == "streaming">
                    "Send"
                </button>
                <button id="chat-stop" on:click=stop disabled=move || phase.get().state != "streaming">
                    "Stop"
                </button>
                <button id="chat-clear" on:click=clear disabled=move || phase.get().state == "streaming">
                    "Clear"
                </button>
            </div>
            <div class="row settings">
                <label>
                    "temperature "
                    <input
                        id="chat-temperature"
                        type="number"
                        step="0.1"
                        min="0"
                        max="2"
                        prop:value=move || temperature.get().to_string()
                        on:input=move |ev| {
                            if let Ok(t) = event_target_value(&ev).parse() {
                                temperature.set(t);
                            }
                        }
                    />
                </label>
                <label>
                    "max tokens "
                    <input
                        id="chat-max-tokens"
                        type="number"
                        min="1"
                        prop:value=move || max_tokens.get().to_string()
                        on:input=move |ev| {
                            if let Ok(n) = event_target_value(&ev).parse() {
                                max_tokens.set(n);
                            }
                        }
                    />
                </label>
            </div>
            <div id="chat-status" data-state=move || phase.get().state>{move || phase.get().text}</div>
        </section>
    }
}

/// The libp2p node: the titan it drafts for, over which transport, and what
/// came of its drafts; the scout-mode switch.
#[allow(unreachable_pub)]
#[component]
fn MeshPanel(view: MeshSignals) -> impl IntoView {
    let rate = move || {
        let (d, a) = (view.drafted.get(), view.accepted.get());
        if d == 0 {
            "–".to_owned()
        } else {
            format!("{:.0}%", 100.0 * a as f64 / d as f64)
        }
    };
    view! {
        <section class="card">
            <h2>"Mesh"</h2>
            <div id="mesh-status" data-state=move || view.state.get()>{move || view.text.get()}</div>
            <div class="row counts">
                <label>
                    <input
                        id="scout-mode"
                        type="checkbox"
                        prop:checked=move || view.scouting.get()
                        on:change=move |ev| view.scouting.set(event_target_checked(&ev))
                    />
                    " scout mode (draft for other people's sessions)"
                </label>
            </div>
            <div
                id="scout-counts"
                data-units=move || view.units.get().to_string()
                data-drafted=move || view.drafted.get().to_string()
                data-accepted=move || view.accepted.get().to_string()
            >
                {move || format!(
                    "{} units, {} tokens drafted, {} accepted ({})",
                    view.units.get(), view.drafted.get(), view.accepted.get(), rate()
                )}
            </div>
            <div class="muted">"this scout is " {move || view.peer_id.get()}</div>
        </section>
    }
}

/// Runs the engine on a prompt: greedy drafts, exactly as a scout drafts a
/// unit at temperature 0, with the tokens and the rate shown.
#[allow(unreachable_pub)]
#[component]
fn DraftPanel(
    engine: StoredValue<Option<Rc<DraftEngine>>, LocalStorage>,
    ready: Signal<bool>,
) -> impl IntoView {
    let prompt = RwSignal::new(String::from("The capital of France is"));
    let count = RwSignal::new(PANEL_DRAFTS);
    let phase = RwSignal::new(Phase::new("idle", ""));
    let tokens = RwSignal::new(String::new());
    let speed = RwSignal::new(String::new());

    let run = move |_| {
        let Some(engine) = engine.get_value() else {
            return;
        };
        let text = prompt.get_untracked();
        let k = count.get_untracked().clamp(1, 256);
        phase.set(Phase::new("running", "drafting…"));
        spawn_local(async move {
            let context = engine.prompt_tokens(&text);
            let started = js::now_ms();
            match engine.draft(&context, &SamplingParams::greedy(), k).await {
                Ok(drafts) => {
                    let secs = (js::now_ms() - started) / 1000.0;
                    tokens.set(
                        drafts
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                    speed.set(format!(
                        "{} tokens in {secs:.2} s ({:.1} tok/s, prompt {} tokens)",
                        drafts.len(),
                        drafts.len() as f64 / secs.max(1e-9),
                        context.len()
                    ));
                    phase.set(Phase::new("done", engine.tokenizer.decode(&drafts, false)));
                }
                Err(e) => phase.set(Phase::new("failed", format!("{e:#}"))),
            }
        });
    };

    view! {
        <section class="card">
            <h2>"Try the draft engine"</h2>
            <div class="row">
                <input
                    id="draft-prompt"
                    type="text"
                    prop:value=move || prompt.get()
                    on:input=move |ev| prompt.set(event_target_value(&ev))
                />
                <input
                    id="draft-count"
                    type="number"
                    min="1"
                    max="256"
                    prop:value=move || count.get().to_string()
                    on:input=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse() {
                            count.set(n);
                        }
                    }
                />
                <button
                    id="draft-run"
                    on:click=run
                    disabled=move || !ready.get() || phase.get().state == "running"
                >
                    "Draft"
                </button>
            </div>
            <pre id="draft-output" data-state=move || phase.get().state data-tokens=move || tokens.get()>
                {move || phase.get().text}
            </pre>
            <div id="draft-speed">{move || speed.get()}</div>
        </section>
    }
}
