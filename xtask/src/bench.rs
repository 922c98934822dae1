//! `cargo xtask bench [kernels|titan|bitnet|spec|load|mesh]`: the numbers the issues ask
//! for, measured back to back in one run (machines here are noisy; compare
//! ratios within a run). With `LLAMA_BENCH=/path/to/llama-bench` set,
//! llama.cpp's numbers for the same file are printed alongside.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{models, util};

pub(crate) fn run(what: &[&str]) -> Result<()> {
    let all = what.is_empty();
    let wants = |name: &str| all || what.contains(&name);
    let model = models::fetch_default()?;
    let model = model.to_string_lossy().into_owned();
    util::run(
        "cargo",
        &["build", "--release", "--locked", "-p", "titan-native"],
    )?;
    let titan = util::target_dir().join("release").join("titan");
    let titan = titan.to_string_lossy().into_owned();
    if wants("kernels") {
        util::step("kernels (criterion)");
        util::run("cargo", &["bench", "--locked", "-p", "kernels-cpu"])?;
    }
    if wants("titan") {
        util::step("end to end: prefill, decode, verify passes");
        if let Some(llama) = std::env::var_os("LLAMA_BENCH") {
            let llama = llama.to_string_lossy().into_owned();
            util::run(
                &llama,
                &[
                    "-m", &model, "-t", "1,2", "-p", "128", "-n", "64", "-r", "3",
                ],
            )?;
        }
        for activations in ["int16", "int8"] {
            for threads in ["1", "2"] {
                util::run(
                    &titan,
                    &[
                        "bench",
                        "--model",
                        &model,
                        "--threads",
                        threads,
                        "--activations",
                        activations,
                    ],
                )?;
            }
        }
    }
    if wants("bitnet") {
        util::step("BitNet b1.58 2B4T shapes: TQ2_0 and I2_S, 1 and 2 threads");
        bitnet(&titan)?;
    }
    if wants("spec") {
        util::step("speculative decoding: the default model drafting for itself, temperature 0");
        spec(&titan, &model)?;
    }
    if wants("load") {
        util::step("aggregate throughput with concurrent streams (loopback, bounded)");
        load(&titan, &model)?;
    }
    if wants("mesh") {
        util::step("mesh: verify round trip (K=8, no compute) and connection setup per transport");
        crate::bench_mesh::run(&titan, &model)?;
    }
    Ok(())
}

/// Random BitNet models with 2B4T's shapes (written once into the cache; speed does not
/// depend on the values): the TQ2_0 one with llama.cpp's architecture name so
/// `llama-bench` reads the very same file.
fn bitnet(titan: &str) -> Result<()> {
    let dir = util::cache_dir().join("models").join("bench");
    std::fs::create_dir_all(&dir)?;
    let files = [
        ("tq2_0", "bitnet", dir.join("bitnet-2b4t-tq2_0.gguf")),
        ("i2_s", "bitnet-b1.58", dir.join("bitnet-2b4t-i2_s.gguf")),
    ];
    for (ty, arch, path) in &files {
        if !path.is_file() {
            let out = path.to_string_lossy();
            util::run(
                titan,
                &[
                    "gen-bitnet",
                    "--shape",
                    "2b4t",
                    "--type",
                    ty,
                    "--arch",
                    arch,
                    "--seed",
                    "1",
                    "--out",
                    &out,
                ],
            )?;
        }
    }
    if let Some(llama) = std::env::var_os("LLAMA_BENCH") {
        let llama = llama.to_string_lossy().into_owned();
        let tq2 = files[0].2.to_string_lossy();
        util::run(
            &llama,
            &["-m", &tq2, "-t", "1,2", "-p", "128", "-n", "32", "-r", "3"],
        )?;
    }
    for (_, _, path) in &files {
        let path = path.to_string_lossy();
        for threads in ["1", "2"] {
            for head in [None, Some("q8_0")] {
                let mut args = vec!["bench", "--model", &path, "--threads", threads];
                if let Some(head) = head {
                    args.extend(["--output-head", head]);
                }
                util::run(titan, &args)?;
            }
        }
    }
    Ok(())
}

pub(crate) fn json_of(program: &str, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("{program} {} failed", args.join(" "));
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("output of {program} {}", args.join(" ")))
}

const SPEC_PROMPTS: [&str; 3] = [
    "Write a short poem about the ocean.",
    "Explain how vaccines work in three sentences.",
    "List five animals that live in the desert.",
];

fn spec(titan: &str, model: &str) -> Result<()> {
    println!(
        "{:<44} {:>9} {:>9} {:>11} {:>10} {:>10}",
        "prompt", "tokens", "accept", "passes/tok", "plain t/s", "spec t/s"
    );
    for prompt in SPEC_PROMPTS {
        let base = [
            "generate",
            "--model",
            model,
            "--chat",
            "--prompt",
            prompt,
            "--temperature",
            "0",
            "--max-tokens",
            "128",
            "--json",
        ];
        let plain = json_of(titan, &base)?;
        let mut with_draft = base.to_vec();
        with_draft.extend(["--draft", model]);
        let spec = json_of(titan, &with_draft)?;
        if plain["tokens"] != spec["tokens"] {
            bail!("speculative output differs from plain decoding for {prompt:?}");
        }
        let s = &spec["stats"];
        println!(
            "{:<44} {:>9} {:>9.3} {:>11.3} {:>10.1} {:>10.1}",
            prompt,
            s["generated_tokens"],
            s["acceptance_rate"].as_f64().unwrap_or(0.0),
            s["target_passes_per_token"].as_f64().unwrap_or(0.0),
            plain["stats"]["decode_tokens_per_second"]
                .as_f64()
                .unwrap_or(0.0),
            s["decode_tokens_per_second"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

fn load(titan: &str, model: &str) -> Result<()> {
    let python = util::cache_dir().join("venv").join("bin").join("python");
    let loadgen = util::workspace_root()
        .join("e2e")
        .join("reference")
        .join("loadgen.py");
    let mut server = Command::new(titan)
        .args([
            "serve",
            "--model",
            model,
            "--model-id",
            "bench",
            "--http",
            "127.0.0.1:0",
            "--max-sessions",
            "64",
            "--no-mesh",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("titan stdout")?).read_line(&mut line)?;
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_owned);
    let result = (|| -> Result<()> {
        let base = format!("{}/v1", addr.context("titan serve did not start")?);
        let mut single = 0.0;
        println!(
            "{:>8} {:>9} {:>8} {:>10} {:>9}",
            "streams", "requests", "tokens", "tok/s", "vs 1"
        );
        // The single stream is the baseline of every ratio: 8 requests, not 2, so one
        // slow request does not swing it.
        for (streams, requests) in [("1", "8"), ("8", "2"), ("32", "2")] {
            let r = json_of(
                &python.to_string_lossy(),
                &[
                    &loadgen.to_string_lossy(),
                    &base,
                    "bench",
                    streams,
                    requests,
                    "64",
                ],
            )?;
            let tps = r["tokens_per_second"].as_f64().unwrap_or(0.0);
            if streams == "1" {
                single = tps;
            }
            println!(
                "{:>8} {:>9} {:>8} {:>10.1} {:>8.2}x",
                streams,
                r["requests"],
                r["completion_tokens"],
                tps,
                tps / single
            );
        }
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
