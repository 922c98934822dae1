//! Speculative decoding is lossless: with a good drafter (the default model
//! drafting for itself) or a useless one (random tokens), greedy and sampled
//! generations equal plain decoding token for token.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use e2e::default_model;
use shared_protocol::sampling::SamplingParams;
use titan_native::engine::{LoadOptions, Model};
use titan_native::generate::{Generation, GenerationOptions, generate};
use titan_native::speculative::Drafter;

const PROMPTS: [&str; 4] = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "def quicksort(items):\n",
    "The three most important inventions of the 20th century were",
];

fn load() -> Model {
    let options = LoadOptions {
        threads: 2,
        ..LoadOptions::default()
    };
    Model::load(&default_model().unwrap(), &options).unwrap()
}

fn run(
    model: &Model,
    drafter: &mut Drafter<'_>,
    prompt: &str,
    sampling: SamplingParams,
) -> Generation {
    let tokens = model.tokenizer.encode(prompt, true);
    let options = GenerationOptions {
        max_tokens: 40,
        sampling,
    };
    let mut session = model.new_session();
    generate(
        model,
        drafter,
        &mut session,
        &mut None,
        &tokens,
        &options,
        |_| true,
    )
    .unwrap()
}

fn sampled(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        seed,
    }
}

#[test]
fn speculation_with_the_model_itself_equals_plain_decoding() {
    let model = load();
    let draft = load();
    for (i, prompt) in PROMPTS.iter().enumerate() {
        for sampling in [SamplingParams::greedy(), sampled(i as u64 + 1)] {
            let plain = run(&model, &mut Drafter::None, prompt, sampling);
            let spec = run(&model, &mut Drafter::model(&draft), prompt, sampling);
            assert_eq!(
                spec.tokens, plain.tokens,
                "prompt {i} at temperature {}",
                sampling.temperature
            );
            assert_eq!(spec.finish, plain.finish);
            // A model drafting for itself is always right: every pass
            // verifies a whole draft.
            assert_eq!(
                spec.stats.accepted, spec.stats.drafted,
                "prompt {i}: {:?}",
                spec.stats
            );
            assert!(
                spec.stats.target_passes * 3 <= plain.stats.target_passes + 3,
                "prompt {i}: {} passes with drafts vs {} without",
                spec.stats.target_passes,
                plain.stats.target_passes
            );
        }
    }
}

#[test]
fn speculation_with_random_drafts_equals_plain_decoding() {
    let model = load();
    let vocab = model.config.n_vocab as u32;
    for (i, prompt) in PROMPTS.iter().enumerate() {
        for sampling in [SamplingParams::greedy(), sampled(100 + i as u64)] {
            let plain = run(&model, &mut Drafter::None, prompt, sampling);
            let mut random = Drafter::Random { seed: 7, vocab };
            let spec = run(&model, &mut random, prompt, sampling);
            assert_eq!(
                spec.tokens, plain.tokens,
                "prompt {i} at temperature {}",
                sampling.temperature
            );
            assert!(spec.stats.drafted > 0);
            assert!(
                spec.stats.accepted * 10 < spec.stats.drafted,
                "random drafts accepted: {:?}",
                spec.stats
            );
        }
    }
}
