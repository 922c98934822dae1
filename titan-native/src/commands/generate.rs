//! `titan generate`: one completion, streamed to stdout or as one JSON object.

use std::io::Write;

use anyhow::{Result, bail};
use serde_json::json;
use shared_protocol::chat::ChatMessage;
use shared_protocol::tokenizer::StreamDecoder;

use crate::cli::GenerateArgs;
use crate::device::{Engine, generate_plain, open_gpu};
use crate::engine::Model;
use crate::generate::{GenerationOptions, generate};
use crate::speculative::Drafter;

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.prompt.trim().is_empty() {
        bail!("the prompt is empty");
    }
    let sampling = super::sampling_params(&args.sampling)?;
    let model = super::load_model(&args.model)?;
    let gpu = open_gpu(args.device, &model)?;
    if gpu.is_some() && args.draft.is_some() {
        bail!("--draft runs on the CPU engine and cannot be combined with a GPU target yet");
    }
    let draft = super::load_draft(args.draft.as_deref(), &args.model, &model)?;
    let gpu_draft = match &draft {
        Some(d) => open_gpu(args.draft_device, d)?,
        None => None,
    };
    let mut drafter = match &gpu_draft {
        Some(model) => Drafter::Gpu { model },
        None => Drafter::from_optional(draft.as_ref()),
    };
    let prompt = prompt_tokens(&model, &args.prompt, args.chat, args.system.as_deref())?;
    if prompt.len() >= model.config.n_ctx {
        bail!(
            "the prompt is {} tokens long; the model's context is {} tokens",
            prompt.len(),
            model.config.n_ctx
        );
    }
    let options = GenerationOptions {
        max_tokens: args.sampling.max_tokens,
        sampling,
    };
    let mut session = model.new_session();
    let mut decoder = StreamDecoder::new();
    let mut stdout = std::io::stdout().lock();
    let mut text = String::new();
    let mut write_error = None;
    let mut draft_session = None;
    let on_token = |token| {
        let piece = decoder.push(&model.tokenizer, token);
        text.push_str(&piece);
        if !args.json
            && let Err(e) = stdout
                .write_all(piece.as_bytes())
                .and_then(|()| stdout.flush())
        {
            write_error = Some(e);
            return false;
        }
        true
    };
    let generation = match &gpu {
        Some(gpu) => generate_plain(gpu, &model, &prompt, &options, on_token)?,
        None => generate(
            &model,
            &mut drafter,
            &mut session,
            &mut draft_session,
            &prompt,
            &options,
            on_token,
        )?,
    };
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let tail = decoder.finish();
    text.push_str(&tail);

    let prefill_secs = generation.prefill_time.as_secs_f64();
    let decode_secs = generation.decode_time.as_secs_f64();
    let stats = json!({
        "prompt_tokens": prompt.len(),
        "generated_tokens": generation.tokens.len(),
        "prefill_seconds": prefill_secs,
        "prefill_tokens_per_second": rate(generation.prompt_computed, prefill_secs),
        "decode_seconds": decode_secs,
        "decode_tokens_per_second": rate(generation.tokens.len().saturating_sub(1), decode_secs),
        "finish_reason": generation.finish,
        "draft_model": draft.as_ref().map(|d| d.path.display().to_string()),
        "draft_device": gpu_draft.as_ref().map(|g| g.device_name()).or_else(|| draft.as_ref().map(|d| d.device_name())),
        "drafted": generation.stats.drafted,
        "accepted": generation.stats.accepted,
        "acceptance_rate": if generation.stats.drafted > 0 { generation.stats.accepted as f64 / generation.stats.drafted as f64 } else { 0.0 },
        "target_passes": generation.stats.target_passes,
        "target_passes_per_token": if generation.tokens.is_empty() { 0.0 } else { generation.stats.target_passes as f64 / generation.tokens.len() as f64 },
        "seed": sampling.seed,
        "temperature": sampling.temperature,
        "device": gpu.as_ref().map_or_else(|| model.device_name(), |g| g.device_name()),
        "threads": model.threads(),
        "activations": model.precision.name(),
    });
    if args.json {
        let out = json!({ "text": text, "tokens": generation.tokens, "stats": stats });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout, "{tail}")?;
        tracing::info!(%stats, "done");
    }
    Ok(())
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// The prompt as tokens: raw text (plus BOS where the model wants it), or a
/// user turn in the model's chat template.
pub(crate) fn prompt_tokens(
    model: &Model,
    prompt: &str,
    chat: bool,
    system: Option<&str>,
) -> Result<Vec<u32>> {
    let text = if chat {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: system.into(),
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: prompt.into(),
        });
        super::chat::render(model, &messages)
    } else {
        prompt.to_owned()
    };
    Ok(prompt_tokens_from_text(model, &text))
}

/// Tokenizes prompt text, with BOS first where the model wants it. Special
/// tokens written in the text (as chat templates produce) are recognised.
pub(crate) fn prompt_tokens_from_text(model: &Model, text: &str) -> Vec<u32> {
    model.tokenizer.encode_prompt(text)
}
