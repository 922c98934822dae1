//! Small helpers for running commands and locating caches.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `$SHARD_CACHE_DIR`, else `$XDG_CACHE_HOME/shard`, else `~/.cache/shard`.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHARD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("shard");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("shard")
}

/// The workspace root (the parent of xtask/).
///
/// Read from the environment `cargo run` sets, not baked in with `env!`: cargo fingerprints
/// workspace members by relative path, so a binary built in one clone is reused unchanged
/// by another clone sharing the target directory and would point back at the first.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory as cargo itself resolves it.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub(crate) fn step(name: &str) {
    eprintln!("\n==> {name}");
}

/// Runs a command in the workspace root, inheriting stdio; fails on non-zero exit.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed: {status}", args.join(" "));
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it could not start or failed.
pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
