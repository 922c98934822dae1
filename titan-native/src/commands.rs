//! One module per `titan` subcommand.

pub mod bench;
pub mod chat;
pub mod generate;
pub mod inspect;
pub mod perplexity;

use anyhow::{Context, Result};

use crate::cli::{ModelArgs, SamplingArgs};
use crate::engine::{LoadOptions, Model};
use shared_protocol::sampling::SamplingParams;

/// Loads the model named on the command line, with a progress bar.
pub(crate) fn load_model(args: &ModelArgs) -> Result<Model> {
    let path = crate::model_name::resolve(&args.model)?;
    Model::load(
        &path,
        &LoadOptions {
            threads: args.threads,
            progress: true,
            dequantize_weights: false,
            precision: args.activations,
        },
    )
    .with_context(|| format!("loading {}", path.display()))
}

/// Sampler parameters from the flags; a missing seed is drawn from the clock.
pub(crate) fn sampling_params(args: &SamplingArgs) -> Result<SamplingParams> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let params = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed,
    };
    params.validate()?;
    Ok(params)
}
