//! The browser scout (DESIGN.md §1, §3, §4): the page a titan serves at `/`.
//!
//! Today it downloads the draft model from the titan that served it (with
//! progress, checked against the sha256 the titan publishes, kept in the
//! browser's Cache Storage so a reload does not fetch it again), opens the
//! WebGPU engine of `kernels-wgsl` on it (or, without WebGPU, kernels-cpu's model
//! in a Web Worker, the `scout-cpu-worker` bin), and drafts greedy tokens for a prompt
//! with the exact rules the titan verifies by. Its libp2p node dials the titan
//! over webrtc-direct and drafts the work units it pulls (scout mode, on by
//! default). Chat builds on these parts.
//!
//! Built by Trunk from the workspace's `Trunk.toml` and `web/index.html`
//! (`cargo xtask app`); natively this binary only says so.

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod chat;
#[cfg(target_arch = "wasm32")]
mod cpu_worker;
#[cfg(target_arch = "wasm32")]
mod engine;
#[cfg(target_arch = "wasm32")]
mod identity;
#[cfg(target_arch = "wasm32")]
mod js;
#[cfg(target_arch = "wasm32")]
mod mesh;
#[cfg(target_arch = "wasm32")]
mod model_file;
#[cfg(target_arch = "wasm32")]
mod worker_messages;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "scout-wasm runs in a browser: build it with `cargo xtask app` (Trunk) and open the page `titan serve` serves"
    );
    std::process::exit(2);
}
