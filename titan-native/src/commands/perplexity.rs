//! `titan perplexity`: perplexity over non-overlapping windows of `--ctx`
//! tokens, each scored on its second half, as llama.cpp's llama-perplexity
//! does (the first half only gives the scored tokens some context).

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::PerplexityArgs;
use crate::engine::{Logits, Model};

pub fn run(args: PerplexityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let model = super::load_model(&args.model)?;
    if args.ctx < 4 || args.ctx > model.config.n_ctx {
        bail!(
            "--ctx must be between 4 and the model's context ({}), got {}",
            model.config.n_ctx,
            args.ctx
        );
    }
    let tokens = model.tokenizer.encode(&text, false);
    let available = tokens.len() / args.ctx;
    if available == 0 {
        bail!(
            "{} has {} tokens; at least --ctx = {} are needed",
            args.file.display(),
            tokens.len(),
            args.ctx
        );
    }
    let n_chunks = args.chunks.map_or(available, |c| c.min(available));
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{} tokens, {n_chunks} windows of {} tokens, scoring the second half of each",
        tokens.len(),
        args.ctx
    )?;
    let mut nll_sum = 0f64;
    let mut count = 0usize;
    for (i, window) in tokens.chunks_exact(args.ctx).take(n_chunks).enumerate() {
        let (nll, n) = score_window(&model, window)?;
        nll_sum += nll;
        count += n;
        writeln!(stdout, "[{}] {:.4}", i + 1, (nll_sum / count as f64).exp())?;
    }
    writeln!(stdout, "perplexity: {:.4}", (nll_sum / count as f64).exp())?;
    Ok(())
}

/// Negative log-likelihood summed over the second half of one window, and the
/// number of tokens scored.
pub fn score_window(model: &Model, window: &[u32]) -> Result<(f64, usize)> {
    let mut input = window.to_vec();
    if model.tokenizer.add_bos()
        && let Some(bos) = model.tokenizer.bos()
    {
        input[0] = bos;
    }
    let first = window.len() / 2;
    let mut session = model.new_session();
    let logits = model.forward(&mut session, &input, Logits::From(first))?;
    let vocab = model.config.n_vocab;
    let mut nll = 0f64;
    for (j, row) in logits.chunks_exact(vocab).enumerate() {
        let pos = first + j;
        if pos + 1 >= window.len() {
            break;
        }
        nll -= log_softmax_at(row, window[pos + 1] as usize);
    }
    Ok((nll, window.len() - 1 - first))
}

fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
    row[index] as f64 - max - sum.ln()
}
