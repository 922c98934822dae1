//! Mesh plumbing for tests: native scout processes, the titans' mesh
//! endpoints, and waiting for the mesh to settle.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::server::{TitanServer, http};

/// A `titan scout` process; killed when dropped. Its stdout lines are
/// collected; stderr goes to a log printed if the test fails.
pub struct Scout {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    log: tempfile::NamedTempFile,
}

impl Scout {
    /// Starts a scout drafting with the default model for the titan at
    /// `connect` (and whatever the DHT finds).
    pub fn start(connect: &str) -> Result<Self> {
        Self::start_with(connect, &[])
    }

    /// As [`Scout::start`], with more `titan scout` arguments (`--device gpu`).
    pub fn start_with(connect: &str, extra: &[&str]) -> Result<Self> {
        let log = tempfile::NamedTempFile::new()?;
        let mut child = Command::new(crate::titan_bin()?)
            .args([
                "scout",
                "--draft",
                "smollm2-135m",
                "--threads",
                "1",
                "--connect",
                connect,
            ])
            .args(extra)
            .env("SHARD_CACHE_DIR", crate::cache_dir())
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log.reopen()?)
            .spawn()
            .context("starting titan scout")?;
        let stdout = child.stdout.take().context("scout stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Self { child, lines, log })
    }

    /// What the scout printed so far.
    pub fn output(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Kills the process now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Scout {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- scout log ---\n{}", self.log());
        }
    }
}

/// GETs a JSON endpoint of a titan.
pub fn get_json(titan: &TitanServer, path: &str) -> Result<Value> {
    let r = http(titan.addr, "GET", path, b"")?;
    if r.status != 200 {
        bail!("GET {path}: {} {}", r.status, r.body);
    }
    r.json()
}

/// The titan's listen address on the given transport (`"tcp"`, `"ws"`,
/// `"webrtc-direct"`), with its /p2p/ id.
pub fn listen_addr(titan: &TitanServer, transport: &str) -> Result<String> {
    let topology = get_json(titan, "/v1/system/topology")?;
    let addrs = topology["listen_addrs"]
        .as_array()
        .context("listen_addrs")?;
    addrs
        .iter()
        .filter_map(Value::as_str)
        .find(|a| match transport {
            "tcp" => a.contains("/tcp/") && !a.contains("/ws"),
            "ws" => a.contains("/ws"),
            other => a.contains(other),
        })
        .map(str::to_owned)
        .with_context(|| format!("no {transport} address in {topology}"))
}

pub fn peer_id(titan: &TitanServer) -> Result<String> {
    let topology = get_json(titan, "/v1/system/topology")?;
    topology["peer_id"]
        .as_str()
        .map(str::to_owned)
        .context("peer_id")
}

/// The titan's connected peers with their role.
pub fn connected_peers(titan: &TitanServer) -> Result<Vec<(String, String)>> {
    let peers = get_json(titan, "/v1/system/peers")?;
    Ok(peers["peers"]
        .as_array()
        .context("peers")?
        .iter()
        .filter(|p| p["connected"] == true)
        .map(|p| {
            (
                p["peer_id"].as_str().unwrap_or_default().to_owned(),
                p["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// Polls `check` until it returns `Ok(Some(_))` or the timeout passes.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what} {last}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
