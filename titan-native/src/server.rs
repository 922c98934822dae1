//! `titan serve`: the OpenAI-compatible HTTP API over the scheduler.
//!
//! Threads: the scheduler runs on its own OS thread and computes on the
//! model's rayon pool; HTTP runs on a small tokio runtime. Requests reach the
//! scheduler through a bounded queue, and at most `max_sessions` run at once
//! (more get 429 with `Retry-After`). Bodies are capped at 1 MiB.

mod app;
mod error;
pub mod metrics;
mod openai;
mod routes;
pub mod scheduler;
mod scout_model;
mod stop;
mod system;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::{get, post};
use shared_protocol::chat::ChatTemplate;
use shared_protocol::tokenizer::Tokenizer;
use tokio::sync::Semaphore;

use crate::engine::Model;
use crate::mesh::node::{MeshOptions, MeshShared};
use error::ApiError;
use metrics::Metrics;
use scheduler::Inbox;
pub use scout_model::{SCOUT_MODEL_PATH, ScoutModel};

/// Settings of a running server.
#[derive(Debug)]
pub struct ServeOptions {
    pub http: SocketAddr,
    /// The id clients use in `model`.
    pub model_id: String,
    pub max_sessions: usize,
    pub max_tokens_cap: usize,
    /// The libp2p node; `None` serves the API alone.
    pub mesh: Option<MeshOptions>,
    /// The built scout app, served at `/`.
    pub app_dir: Option<std::path::PathBuf>,
    /// The model file browser scouts draft with.
    pub scout_model: Option<ScoutModel>,
}

/// What the HTTP handlers share.
pub struct AppState {
    pub model_id: String,
    pub created: u64,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub n_ctx: usize,
    pub max_tokens_cap: usize,
    pub jobs: std::sync::mpsc::SyncSender<Inbox>,
    pub sessions: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    pub mesh: Option<Arc<MeshShared>>,
    pub app_dir: Option<std::path::PathBuf>,
    pub scout_model: Option<ScoutModel>,
}

impl AppState {
    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if model == self.model_id {
            Ok(())
        } else {
            Err(ApiError::model_not_found(model))
        }
    }

    /// Prompt text to tokens (BOS first where the model wants it; special
    /// tokens written by the chat template are recognised).
    fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode_prompt(text)
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/models", get(routes::models))
        .route(SCOUT_MODEL_PATH, get(scout_model::download))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/system/topology", get(system::topology))
        .route("/v1/system/peers", get(system::peers))
        .route(
            "/v1/system/peers/{peer_id}",
            axum::routing::delete(system::disconnect),
        )
        .route(
            "/v1/system/gossip",
            get(system::gossip).post(system::publish),
        )
        .fallback(app::files)
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM; `on_listening` is told the bound address.
pub fn serve(
    target: Model,
    draft: Option<Model>,
    options: ServeOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let template = target.chat_template.clone().unwrap_or_else(|e| {
        tracing::warn!("{e}; chat requests use ChatML");
        ChatTemplate::default()
    });
    // Queue room for one burst of every session slot, and for the mesh's
    // drafts (one per session at most).
    let (jobs_tx, jobs_rx) = std::sync::mpsc::sync_channel(2 * options.max_sessions.max(1) + 16);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("titan-http")
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let (mesh, link) = match options.mesh.clone() {
        Some(mesh_options) => {
            let (shared, link) = runtime.block_on(crate::mesh::node::start(
                mesh_options,
                jobs_tx.clone(),
                metrics.clone(),
            ))?;
            (Some(shared), Some(link))
        }
        None => (None, None),
    };
    let state = Arc::new(AppState {
        model_id: options.model_id.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        tokenizer: target.tokenizer.clone(),
        template,
        n_ctx: target.config.n_ctx,
        max_tokens_cap: options.max_tokens_cap,
        jobs: jobs_tx,
        sessions: Arc::new(Semaphore::new(options.max_sessions.max(1))),
        metrics: metrics.clone(),
        mesh,
        app_dir: options.app_dir,
        scout_model: options.scout_model,
    });
    let scheduler_metrics = metrics.clone();
    let scheduler = std::thread::Builder::new()
        .name("titan-scheduler".into())
        .spawn(move || scheduler::run(target, draft, jobs_rx, scheduler_metrics, link))
        .context("starting the scheduler thread")?;

    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.http)
            .await
            .with_context(|| format!("binding {}", options.http))?;
        let addr = listener.local_addr()?;
        on_listening(addr);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("HTTP server")
    })?;
    // Stopping the runtime ends the swarm task; with the state dropped that
    // closes the scheduler's inbox, and it finishes its running jobs.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if scheduler.join().is_err() {
        anyhow::bail!("the scheduler thread panicked");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
