//! Properties of the forward pass that need no reference: batching, caching,
//! rollback and thread count do not change results.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use e2e::default_model;
use shared_protocol::sampling::SamplingParams;
use titan_native::engine::{LoadOptions, Logits, Model};
use titan_native::generate::{GenerationOptions, generate};
use titan_native::speculative::Drafter;

fn load(threads: usize) -> Model {
    Model::load(
        &default_model().unwrap(),
        &LoadOptions {
            threads,
            ..LoadOptions::default()
        },
    )
    .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batched_pass_equals_token_by_token_and_rollback_restores_state() {
    let model = load(2);
    let tokens = model
        .tokenizer
        .encode("One pass or many, the answer must be the same.", true);
    let mut batched = model.new_session();
    let all = model.forward(&mut batched, &tokens, Logits::All).unwrap();

    let mut stepwise = model.new_session();
    let vocab = model.config.n_vocab;
    for (i, &t) in tokens.iter().enumerate() {
        let row = model.forward(&mut stepwise, &[t], Logits::Last).unwrap();
        let diff = max_abs_diff(&row, &all[i * vocab..(i + 1) * vocab]);
        assert!(
            diff < 1e-3,
            "position {i}: batched and stepwise differ by {diff}"
        );
    }

    // Roll back three positions and recompute them: same logits.
    let keep = tokens.len() - 3;
    batched.truncate(keep);
    let again = model
        .forward(&mut batched, &tokens[keep..], Logits::All)
        .unwrap();
    assert_eq!(
        again,
        all[keep * vocab..].to_vec(),
        "recomputing after rollback changed logits"
    );
}

#[test]
fn greedy_generation_is_deterministic_across_runs_and_thread_counts() {
    let prompt_text = "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\n";
    let options = GenerationOptions {
        max_tokens: 24,
        sampling: SamplingParams::greedy(),
    };
    let mut outputs = Vec::new();
    for threads in [1, 2, 2] {
        let model = load(threads);
        let prompt = model.tokenizer.encode(prompt_text, true);
        let mut session = model.new_session();
        let g = generate(
            &model,
            &mut Drafter::None,
            &mut session,
            &mut None,
            &prompt,
            &options,
            |_| true,
        )
        .unwrap();
        assert!(!g.tokens.is_empty());
        outputs.push(g.tokens);
    }
    assert_eq!(outputs[0], outputs[1], "1 thread vs 2 threads");
    assert_eq!(outputs[1], outputs[2], "two runs with 2 threads");
}

#[test]
fn sequences_batched_in_one_pass_equal_running_each_alone() {
    use titan_native::engine::PassInput;
    let model = load(2);
    let prompts = [
        "The first sequence",
        "A second, longer sequence of words",
        "3",
    ];
    let tokens: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| model.tokenizer.encode(p, true))
        .collect();
    let alone: Vec<Vec<f32>> = tokens
        .iter()
        .map(|t| {
            model
                .forward(&mut model.new_session(), t, Logits::All)
                .unwrap()
        })
        .collect();

    let mut sessions: Vec<_> = tokens.iter().map(|_| model.new_session()).collect();
    let mut buffers = model.new_pass_buffers();
    // Prefill everything but the last two tokens of each, then finish all in one pass.
    let mut inputs: Vec<PassInput<'_, '_>> = sessions
        .iter_mut()
        .zip(&tokens)
        .filter(|(_, t)| t.len() > 2)
        .map(|(s, t)| PassInput {
            session: s,
            tokens: &t[..t.len() - 2],
            logits: Logits::None,
        })
        .collect();
    model.forward_batch(&mut buffers, &mut inputs).unwrap();
    let mut inputs: Vec<PassInput<'_, '_>> = sessions
        .iter_mut()
        .zip(&tokens)
        .map(|(s, t)| {
            let done = s.len();
            PassInput {
                session: s,
                tokens: &t[done..],
                logits: Logits::All,
            }
        })
        .collect();
    let batched = model.forward_batch(&mut buffers, &mut inputs).unwrap();
    let vocab = model.config.n_vocab;
    for (i, (b, a)) in batched.iter().zip(&alone).enumerate() {
        let skip = a.len() - b.len();
        assert_eq!(
            b.as_slice(),
            &a[skip..],
            "sequence {i} differs when batched"
        );
        assert_eq!(b.len() % vocab, 0);
    }
}
