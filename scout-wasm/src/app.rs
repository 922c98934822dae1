//! The page: the draft model's download, the WebGPU engine, and a drafting
//! panel that runs the engine on a prompt.
//!
//! Elements carry `data-state` attributes (`loading`, `ready`, `failed`, ...)
//! so the browser tests can wait on them instead of on time.

use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared_protocol::sampling::SamplingParams;

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
        match DraftEngine::open(&bytes).await {
            Ok(e) => {
                engine_phase.set(Phase::new(
                    "ready",
                    format!(
                        "WebGPU on {} ({:.1} s to upload)",
                        e.adapter,
                        (js::now_ms() - started) / 1000.0
                    ),
                ));
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
                <p class="tagline">"This page drafts tokens on your GPU for the titan that served it."</p>
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
            <MeshPanel view=mesh_view/>
            <DraftPanel engine=engine ready=Signal::derive(move || engine_phase.get().state == "ready")/>
        </main>
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
