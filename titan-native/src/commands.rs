//! One module per `titan` subcommand.

pub mod bench;
pub mod chat;
pub mod gen_bitnet;
pub mod generate;
pub mod inspect;
pub mod perplexity;
pub mod probe;
pub mod scout;
pub mod serve;

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
            output_head: args.output_head,
        },
    )
    .with_context(|| format!("loading {}", path.display()))
}

/// Loads the draft model named by `--draft`, refusing one whose tokenizer
/// differs from the target's (its token ids would mean other text).
pub(crate) fn load_draft(
    name: Option<&str>,
    args: &ModelArgs,
    target: &Model,
) -> Result<Option<Model>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let draft = load_model(&ModelArgs {
        model: name.to_owned(),
        threads: args.threads,
        activations: args.activations,
        output_head: args.output_head,
    })?;
    check_same_tokenizer(target, &draft)?;
    Ok(Some(draft))
}

/// Draft and target must map every token id to the same text.
pub(crate) fn check_same_tokenizer(target: &Model, draft: &Model) -> Result<()> {
    let (t, d) = (&target.tokenizer, &draft.tokenizer);
    if t.vocab_size() != d.vocab_size() {
        anyhow::bail!(
            "draft model {} has {} tokens, target {} has {}: they must share a tokenizer",
            draft.path.display(),
            d.vocab_size(),
            target.path.display(),
            t.vocab_size()
        );
    }
    for id in 0..t.vocab_size() as u32 {
        if t.token_piece(id) != d.token_piece(id) {
            anyhow::bail!(
                "draft model {} and target {} do not share a tokenizer: token {id} is {:?} vs {:?}",
                draft.path.display(),
                target.path.display(),
                d.token_piece(id).unwrap_or_default(),
                t.token_piece(id).unwrap_or_default()
            );
        }
    }
    Ok(())
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
