//! Shard's project workflows, run as `cargo xtask <command>`.
//!
//! Every workflow installs what it needs itself, from the package registries
//! only (crates.io, PyPI, npm, Debian), and caches it outside the clone under
//! `$SHARD_CACHE_DIR` (default `~/.cache/shard`), so a fresh machine needs
//! nothing but cargo and a rerun is quick.

mod bench;
mod bench_mesh;
mod models;
mod setup;
mod util;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo            fetch the default model, build the scout app and the titan, and serve both on 127.0.0.1:8080
  app             build the browser scout (Trunk, offline) into dist/
  ci              install everything, then run the whole test suite (what .ci/run runs)
  setup           install test prerequisites (Rust targets, Debian packages incl. lavapipe, Python venv, models)
  fetch-models    download the default model (SmolLM2-135M-Instruct Q4_1) into the cache
  bench [WHAT]    benchmarks: kernels, titan (prefill/decode/verify), bitnet, spec, load, mesh; all by default
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(&rest),
        Some("ci") => ci(),
        Some("app") => {
            setup::cargo_tools()?;
            app()
        }
        Some("setup") => setup::all(),
        Some("fetch-models") => models::fetch_default().map(|_| ()),
        Some("bench") => bench::run(&rest),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// Builds the browser scout (Leptos, scout-wasm) with web/ into dist/ by Trunk,
/// offline: wasm-bindgen comes from PATH at the locked version, and wasm-opt is
/// off in web/index.html (Trunk would download it).
fn app() -> Result<()> {
    util::step("the browser scout (trunk build --release)");
    setup::rust_target("wasm32-unknown-unknown")?;
    util::run(
        "trunk",
        &["build", "--release", "--locked=true", "--offline=true"],
    )
}

/// The main job: a titan serving the scout app and the default model (the OpenAI
/// API, and the model file browser scouts draft with). Extra arguments go to
/// `titan serve`.
fn demo(extra: &[&str]) -> Result<()> {
    models::fetch_default()?;
    setup::cargo_tools()?;
    app()?;
    util::run(
        "cargo",
        &["build", "--release", "--locked", "-p", "titan-native"],
    )?;
    let titan = util::target_dir().join("release").join("titan");
    eprintln!(
        "\nTry:\n  curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"smollm2-135m\",\"messages\":[{{\"role\":\"user\",\"content\":\"What is the capital of France?\"}}]}}'\n\
         or chat on the terminal:\n  {} chat --model smollm2-135m\n",
        titan.display()
    );
    eprintln!("Open http://127.0.0.1:8080 in a browser with WebGPU to become a scout.\n");
    let dist = util::workspace_root().join("dist");
    let dist = dist.to_string_lossy();
    let mut args = vec!["serve", "--model", "smollm2-135m", "--app", &dist];
    args.extend_from_slice(extra);
    util::run(&titan.to_string_lossy(), &args)
}

/// The whole test suite, as CI runs it.
fn ci() -> Result<()> {
    setup::all()?;
    util::step("format");
    util::run("cargo", &["fmt", "--all", "--check"])?;
    util::step("clippy");
    util::run(
        "cargo",
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    app()?;
    util::step("tests (x86_64, every kernel path the host has)");
    util::run(
        "cargo",
        &["test", "--locked", "--workspace", "--no-fail-fast"],
    )?;
    util::step("kernel tests on aarch64 under qemu (NEON paths)");
    util::run(
        "cargo",
        &[
            "test",
            "--locked",
            "-p",
            "kernels-cpu",
            "--target",
            "aarch64-unknown-linux-gnu",
        ],
    )?;
    util::step(
        "the GPU kernels and the scout app for the browser (wasm32-unknown-unknown, WebGPU)",
    );
    util::run(
        "cargo",
        &[
            "clippy",
            "--locked",
            "-p",
            "kernels-wgsl",
            "-p",
            "scout-wasm",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    util::step("kernel tests on wasm32 simd128 under Node's WASI");
    wasm_kernel_tests()?;
    util::step("all checks passed");
    Ok(())
}

/// The wasm32 simd128 kernels: the kernel tests built for `wasm32-wasip1` with simd128
/// on, run by Node's WASI (Node 22 from the interop peer's packages if Debian's is
/// older than the 20 that `node:wasi` needs).
fn wasm_kernel_tests() -> Result<()> {
    let node22 = util::cache_dir()
        .join("js")
        .join("node_modules")
        .join(".bin")
        .join("node");
    let node = if node22.exists() {
        node22.to_string_lossy().into_owned()
    } else {
        "node".to_owned()
    };
    let runner = util::workspace_root()
        .join("kernels-cpu")
        .join("tools")
        .join("wasi-run.mjs");
    let status = std::process::Command::new("cargo")
        .args([
            "test",
            "--locked",
            "-p",
            "kernels-cpu",
            "--target",
            "wasm32-wasip1",
        ])
        .env(
            "CARGO_TARGET_WASM32_WASIP1_RUNNER",
            format!("{node} {}", runner.display()),
        )
        .env(
            "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS",
            "-C target-feature=+simd128",
        )
        .current_dir(util::workspace_root())
        .status()
        .context("running cargo test for wasm32-wasip1")?;
    if !status.success() {
        bail!("wasm32 kernel tests failed");
    }
    Ok(())
}
