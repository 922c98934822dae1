//! `titan scout`: a native scout drafting for titans over the mesh.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::cli::{ModelArgs, ScoutArgs};
use crate::mesh::scout::{DraftEngine, ScoutOptions, ScoutStats, run as run_scout};

pub fn run(args: ScoutArgs) -> Result<()> {
    let model = super::load_model(&ModelArgs {
        model: args.draft.clone(),
        threads: args.threads,
        activations: args.activations,
        output_head: None,
    })?;
    let engine = match crate::device::open_gpu(args.device, &model)? {
        Some(gpu) => DraftEngine::Gpu(Box::new(gpu)),
        None => DraftEngine::Cpu(Box::new(model)),
    };
    let options = ScoutOptions {
        connect: args.connect,
        model_id: args
            .model_id
            .unwrap_or_else(|| super::serve::default_model_id(&args.draft)),
        data_dir: args.data_dir,
        max_k: args.max_k.clamp(1, 32),
    };
    let stats = Arc::new(ScoutStats::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("scout-net")
        .enable_all()
        .build()
        .context("starting the network runtime")?;
    runtime.block_on(async move {
        tokio::select! {
            r = run_scout(options, engine, stats) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
