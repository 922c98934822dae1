//! `titan chat`: an interactive conversation on the terminal. The KV cache of
//! the conversation so far is reused between turns.

use std::io::{BufRead, Write};

use anyhow::Result;
use shared_protocol::chat::{ChatMessage, ChatTemplate};
use shared_protocol::tokenizer::StreamDecoder;

use crate::cli::ChatArgs;
use crate::engine::Model;
use crate::generate::{GenerationOptions, generate};
use crate::speculative::{Drafter, FinishReason};

/// Renders messages with the model's template; a model without a usable
/// template gets ChatML, with a warning.
pub(crate) fn render(model: &Model, messages: &[ChatMessage]) -> String {
    match &model.chat_template {
        Ok(t) => t.render(messages, true),
        Err(e) => {
            tracing::warn!("{e}; using ChatML");
            ChatTemplate::ChatMl {
                default_system: None,
            }
            .render(messages, true)
        }
    }
}

pub fn run(args: ChatArgs) -> Result<()> {
    let sampling = super::sampling_params(&args.sampling)?;
    let model = super::load_model(&args.model)?;
    let draft = super::load_draft(args.draft.as_deref(), &args.model, &model)?;
    let mut drafter = Drafter::from_optional(draft.as_ref());
    let mut draft_session = None;
    let options = GenerationOptions {
        max_tokens: args.sampling.max_tokens,
        sampling,
    };
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(ChatMessage {
            role: "system".into(),
            content: system.clone(),
        });
    }
    let mut session = model.new_session();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    eprintln!(
        "chatting with {} ({} threads). Empty line or Ctrl-D quits, /reset starts over.",
        model.path.display(),
        model.threads()
    );
    loop {
        write!(stdout, "\n> ")?;
        stdout.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if line.trim() == "/reset" {
            messages.retain(|m: &ChatMessage| m.role == "system");
            continue;
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: line.trim_end().to_owned(),
        });
        let prompt = super::generate::prompt_tokens_from_text(&model, &render(&model, &messages));
        if prompt.len() >= model.config.n_ctx {
            eprintln!("the conversation no longer fits the context; use /reset");
            messages.pop();
            continue;
        }
        let mut decoder = StreamDecoder::new();
        let mut reply = String::new();
        let generation = generate(
            &model,
            &mut drafter,
            &mut session,
            &mut draft_session,
            &prompt,
            &options,
            |t| {
                let piece = decoder.push(&model.tokenizer, t);
                reply.push_str(&piece);
                print!("{piece}");
                let _ = stdout.flush();
                true
            },
        )?;
        let tail = decoder.finish();
        reply.push_str(&tail);
        println!("{tail}");
        if generation.finish == FinishReason::Length {
            eprintln!("[reply cut at {} tokens]", options.max_tokens);
        }
        messages.push(ChatMessage {
            role: "assistant".into(),
            content: reply,
        });
    }
    Ok(())
}
