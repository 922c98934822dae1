//! Installs the test prerequisites on a fresh machine, skipping whatever is
//! already there.

use std::fs;

use anyhow::{Context, Result};

use crate::{models, util};

/// Debian packages the tests use, by the command that proves them present.
const DEBIAN: &[(&str, &[&str])] = &[
    // NEON kernel paths are tested on x86 hosts by running aarch64 test
    // binaries under qemu-user.
    (
        "aarch64-linux-gnu-gcc",
        &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
    ),
    ("qemu-aarch64", &["qemu-user"]),
    // npm installs the js-libp2p interop peer (with Node 22 from the `node` npm
    // package); Debian's nodejs also runs the wasm32 simd128 kernel tests (WASI).
    ("npm", &["npm", "nodejs"]),
    // The browser tests drive Debian's Chromium (WebGPU on SwiftShader) with
    // Playwright from npm; the driver is for tools that speak WebDriver.
    ("chromium", &["chromium", "chromium-driver"]),
];

/// Cargo-installed tools that build the scout app, at the versions that build it
/// offline: wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock (libp2p's
/// browser transport pins it), and Trunk 0.22 needs a newer Rust than ours
/// (../shared/notes/toolchain.md). By the binary, its `--version` line, the crate and
/// the version.
const CARGO_TOOLS: &[(&str, &str, &str, &str)] = &[
    (
        "wasm-bindgen",
        "wasm-bindgen 0.2.108",
        "wasm-bindgen-cli",
        "0.2.108",
    ),
    ("trunk", "trunk 0.21.14", "trunk", "0.21.14"),
];

/// Debian packages of the GPU tests: Mesa's lavapipe (a Vulkan driver on the CPU) and
/// the Vulkan loader, which wgpu opens. Proved present by lavapipe's ICD file.
const LAVAPIPE: &[&str] = &["mesa-vulkan-drivers", "libvulkan1"];
const LAVAPIPE_ICD_DIR: &str = "/usr/share/vulkan/icd.d";

/// aarch64 for the NEON kernel tests, wasm32-wasip1 for the simd128 ones, and
/// wasm32-unknown-unknown for the browser build of the GPU kernels.
const RUST_TARGETS: &[&str] = &[
    "aarch64-unknown-linux-gnu",
    "wasm32-wasip1",
    "wasm32-unknown-unknown",
];

pub(crate) fn all() -> Result<()> {
    rust_targets()?;
    debian_packages()?;
    cargo_tools()?;
    python_venv()?;
    js_packages()?;
    models::fetch_default()?;
    Ok(())
}

fn rust_targets() -> Result<()> {
    RUST_TARGETS.iter().try_for_each(|t| rust_target(t))
}

/// Adds one Rust target unless rustup has it.
pub(crate) fn rust_target(target: &str) -> Result<()> {
    let installed = util::output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == target) {
        util::step(&format!("adding Rust target {target}"));
        util::run("rustup", &["target", "add", target])?;
    }
    Ok(())
}

/// Installs the app's build tools that are missing or at another version (Trunk
/// takes ~14 minutes cold, so only when needed).
pub(crate) fn cargo_tools() -> Result<()> {
    for (bin, version_line, krate, version) in CARGO_TOOLS {
        let have = util::output(bin, &["--version"]).unwrap_or_default();
        if have.trim().starts_with(version_line) {
            continue;
        }
        util::step(&format!("installing {krate} {version} (cargo install)"));
        util::run(
            "cargo",
            &["install", "--locked", "--version", version, krate],
        )?;
    }
    Ok(())
}

fn debian_packages() -> Result<()> {
    let mut missing: Vec<&str> = DEBIAN
        .iter()
        .filter(|(cmd, _)| !util::have(cmd))
        .flat_map(|(_, pkgs)| pkgs.iter().copied())
        .collect();
    if !have_lavapipe() {
        missing.extend(LAVAPIPE);
    }
    if missing.is_empty() {
        return Ok(());
    }
    util::step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    let root = util::output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
    let (program, prefix): (&str, &[&str]) = if root {
        ("apt-get", &[])
    } else {
        ("sudo", &["apt-get"])
    };
    let mut update = prefix.to_vec();
    update.extend(["update", "-qq"]);
    util::run(program, &update)?;
    let mut install = prefix.to_vec();
    install.extend(["install", "-y", "-qq", "--no-install-recommends"]);
    install.extend(&missing);
    util::run(program, &install)
}

/// Whether Mesa's lavapipe ICD is installed (`lvp_icd.<arch>.json`).
fn have_lavapipe() -> bool {
    fs::read_dir(LAVAPIPE_ICD_DIR).is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
    })
}

/// A venv with the pinned reference packages; reinstalled when the pins change.
fn python_venv() -> Result<()> {
    let venv = util::cache_dir().join("venv");
    let requirements = util::workspace_root()
        .join("e2e")
        .join("reference")
        .join("requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join("shard-requirements.txt");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    util::step(&format!(
        "creating the reference Python venv at {}",
        venv.display()
    ));
    let python = if util::have("python3") {
        "python3"
    } else {
        "python"
    };
    util::run(python, &["-m", "venv", &venv.to_string_lossy()])?;
    let pip = venv.join("bin").join("pip");
    util::run(
        &pip.to_string_lossy(),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            &requirements.to_string_lossy(),
        ],
    )?;
    fs::write(&stamp, wanted)?;
    Ok(())
}

/// The js-libp2p peer of the interop test: `npm ci` of `e2e/js` into the
/// cache (with Node 22 from the `node` npm package), redone only when the
/// lock file changes.
fn js_packages() -> Result<()> {
    let src = util::workspace_root().join("e2e").join("js");
    let dest = util::cache_dir().join("js");
    let lock = fs::read_to_string(src.join("package-lock.json"))
        .with_context(|| format!("reading {}", src.join("package-lock.json").display()))?;
    let stamp = dest.join("shard-package-lock.json");
    let node = dest.join("node_modules").join(".bin").join("node");
    if node.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(());
    }
    if !util::have("npm") {
        anyhow::bail!("npm is needed for the js-libp2p interop test (Debian: apt-get install npm)");
    }
    util::step(&format!(
        "installing the js-libp2p test peer into {}",
        dest.display()
    ));
    fs::create_dir_all(&dest)?;
    fs::copy(src.join("package.json"), dest.join("package.json"))?;
    fs::copy(
        src.join("package-lock.json"),
        dest.join("package-lock.json"),
    )?;
    let npm_cache = util::cache_dir().join("npm");
    let status = std::process::Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--cache",
        ])
        .arg(&npm_cache)
        .current_dir(&dest)
        .status()
        .context("running npm ci")?;
    if !status.success() {
        anyhow::bail!("npm ci in {} failed", dest.display());
    }
    fs::write(&stamp, lock)?;
    Ok(())
}
