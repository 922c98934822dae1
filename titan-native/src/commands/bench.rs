//! `titan bench`: prefill, decode and verify-pass speed, beside the memory
//! bandwidth roofline of this machine.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::BenchArgs;
use shared_protocol::sampling::SamplingParams;

use crate::device::{Engine, open_gpu};
use crate::engine::{Logits, Model};
use crate::generate::GenerationOptions;

/// Verify-pass sizes: K new tokens on top of the prompt context.
const VERIFY_KS: [usize; 5] = [1, 2, 4, 8, 16];

pub fn run(args: BenchArgs) -> Result<()> {
    if args.reps == 0 || args.prompt_tokens == 0 || args.gen_tokens == 0 {
        bail!("--reps, --prompt-tokens and --gen-tokens must be at least 1");
    }
    let model = super::load_model(&args.model)?;
    let cfg = &model.config;
    if args.prompt_tokens + args.gen_tokens.max(16) > cfg.n_ctx {
        bail!(
            "--prompt-tokens + --gen-tokens exceed the context of {}",
            cfg.n_ctx
        );
    }
    // Any tokens do: speed does not depend on them. A fixed pseudo-random
    // sequence avoids special tokens and repetition.
    let tokens: Vec<u32> = (0..(args.prompt_tokens + args.gen_tokens + 16) as u64)
        .map(|i| {
            (100.0 + shared_protocol::sampling::uniform(7, 0, i) * (cfg.n_vocab - 200) as f64)
                as u32
        })
        .collect();
    let gpu = open_gpu(args.device, &model)?;
    let (measured, device, bytes_per_token, bandwidth) = match &gpu {
        Some(gpu) => (
            measure(gpu, &tokens, &args)?,
            gpu.device_name(),
            gpu.weight_bytes() as f64,
            // The adapter's memory bandwidth is not measured here; the achieved rate is
            // printed instead.
            None,
        ),
        None => (
            measure(&model, &tokens, &args)?,
            model.device_name(),
            model.weight_bytes_per_pass() as f64,
            Some(measure_read_bandwidth(&model)),
        ),
    };
    let Measured {
        prefill,
        decode,
        verify,
    } = measured;
    let roofline = bandwidth.map(|b| b / bytes_per_token);
    let prefill_tps = args.prompt_tokens as f64 / prefill.as_secs_f64();
    let decode_tps = args.gen_tokens as f64 / decode.as_secs_f64();
    let k1 = verify[0].1.as_secs_f64();
    if args.json {
        let out = json!({
            "model": model.path.display().to_string(),
            "device": device,
            "threads": model.threads(),
            "kernels": kernels_cpu::active_path(),
            "activations": model.precision.name(),
            "weight_bytes_per_token": bytes_per_token,
            "read_bandwidth_bytes_per_second": bandwidth,
            "roofline_tokens_per_second": roofline,
            "achieved_bytes_per_second": bytes_per_token * decode_tps,
            "prefill_tokens": args.prompt_tokens,
            "prefill_tokens_per_second": prefill_tps,
            "decode_tokens": args.gen_tokens,
            "decode_tokens_per_second": decode_tps,
            "decode_fraction_of_roofline": roofline.map(|r| decode_tps / r),
            "verify_context": args.prompt_tokens,
            "verify_pass_seconds": verify.iter().map(|(k, t)| (k.to_string(), json!(t.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{out}");
        return Ok(());
    }
    match gpu {
        Some(_) => println!("model      {} on {device}", model.path.display()),
        None => println!(
            "model      {} on {device} ({} threads, {} activations)",
            model.path.display(),
            model.threads(),
            model.precision.name()
        ),
    }
    match (bandwidth, roofline) {
        (Some(bandwidth), Some(roofline)) => println!(
            "roofline   {:.1} MB of weights per token / {:.1} GB/s read bandwidth = {:.1} tok/s",
            bytes_per_token / 1e6,
            bandwidth / 1e9,
            roofline
        ),
        _ => println!(
            "weights    {:.1} MB per token (adapter bandwidth not measured)",
            bytes_per_token / 1e6
        ),
    }
    println!(
        "prefill    {prefill_tps:>8.1} tok/s  ({} tokens)",
        args.prompt_tokens
    );
    match roofline {
        Some(roofline) => println!(
            "decode     {decode_tps:>8.1} tok/s  ({} tokens, {:.0}% of roofline)",
            args.gen_tokens,
            100.0 * decode_tps / roofline
        ),
        None => println!(
            "decode     {decode_tps:>8.1} tok/s  ({} tokens, {:.1} GB/s of weights)",
            args.gen_tokens,
            bytes_per_token * decode_tps / 1e9
        ),
    }
    println!(
        "verify     one pass of K new tokens after {} cached:",
        args.prompt_tokens
    );
    for (k, t) in &verify {
        println!(
            "  K={k:<3} {:>8.2} ms  {:>5.2}x K=1",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / k1
        );
    }
    Ok(())
}

/// Median times of a prefill of `args.prompt_tokens`, a decode of `args.gen_tokens`
/// (greedy picks, as a drafter makes them), and verify passes of each K.
struct Measured {
    prefill: Duration,
    decode: Duration,
    verify: Vec<(usize, Duration)>,
}

fn measure<E: Engine>(engine: &E, tokens: &[u32], args: &BenchArgs) -> Result<Measured> {
    let prompt = &tokens[..args.prompt_tokens];
    let greedy = GenerationOptions {
        max_tokens: args.gen_tokens,
        sampling: SamplingParams::greedy(),
    };
    // Warm-up: one pass so page faults, first-touch allocations and shader compiles
    // are done.
    let mut session = engine.new_session()?;
    engine.forward(&mut session, &prompt[..1], Logits::Last)?;
    for k in VERIFY_KS {
        let mut s = engine.new_session()?;
        engine.forward(&mut s, &tokens[..k], Logits::All)?;
    }

    let prefill = median(args.reps, || {
        let mut s = engine.new_session()?;
        let t = Instant::now();
        engine.forward(&mut s, prompt, Logits::Last)?;
        Ok(t.elapsed())
    })?;
    let decode = median(args.reps, || {
        let mut s = engine.new_session()?;
        engine.forward(&mut s, &tokens[..1], Logits::Last)?;
        let t = Instant::now();
        for &tok in &tokens[1..=args.gen_tokens] {
            engine.next_token(&mut s, &[tok], &greedy)?;
        }
        Ok(t.elapsed())
    })?;
    let mut context = engine.new_session()?;
    engine.forward(&mut context, prompt, Logits::None)?;
    let mut verify = Vec::new();
    for k in VERIFY_KS {
        let drafts = &tokens[args.prompt_tokens..args.prompt_tokens + k];
        let t = median(args.reps * 2, || {
            let t = Instant::now();
            engine.forward(&mut context, drafts, Logits::All)?;
            let elapsed = t.elapsed();
            E::truncate(&mut context, args.prompt_tokens);
            Ok(elapsed)
        })?;
        verify.push((k, t));
    }
    Ok(Measured {
        prefill,
        decode,
        verify,
    })
}

fn median(reps: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = (0..reps).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

/// Read bandwidth with the model's thread count: each thread sums its share
/// of a 512 MiB buffer (far beyond the caches); best of three.
fn measure_read_bandwidth(model: &Model) -> f64 {
    const BYTES: usize = 512 << 20;
    let threads = model.threads();
    let buf: Vec<u64> = vec![1; BYTES / 8];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
    let Ok(pool) = pool else { return f64::NAN };
    let chunk = buf.len().div_ceil(threads);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let total: u64 = pool.install(|| {
            buf.par_chunks(chunk)
                .map(|c| {
                    // Four independent lanes keep the loads flowing.
                    let mut acc = [0u64; 4];
                    for q in c.chunks_exact(4) {
                        for i in 0..4 {
                            acc[i] = acc[i].wrapping_add(q[i]);
                        }
                    }
                    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
                })
                .sum()
        });
        std::hint::black_box(total);
        best = best.min(t.elapsed().as_secs_f64());
    }
    BYTES as f64 / best
}
