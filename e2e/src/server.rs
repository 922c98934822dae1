//! A real `titan serve` process for tests, and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A running titan; killed when dropped. Its stderr goes to a log file that
/// is printed if the test fails while it runs.
pub struct TitanServer {
    child: Child,
    pub addr: SocketAddr,
    log: tempfile::NamedTempFile,
    /// The data dir (identity) when the test did not give one.
    _data: Option<tempfile::TempDir>,
}

impl TitanServer {
    /// Starts `titan serve` on a free loopback port with `args` appended and
    /// waits until it listens. Unless `args` say otherwise, the titan gets a
    /// fresh data dir (its own identity) and its mesh node listens on an
    /// ephemeral loopback TCP port (never the default ports).
    pub fn start(args: &[&str]) -> Result<Self> {
        let log = tempfile::NamedTempFile::new()?;
        let has = |flag: &str| args.contains(&flag);
        let data = if has("--data-dir") {
            None
        } else {
            Some(tempfile::tempdir()?)
        };
        let mut extra: Vec<String> = Vec::new();
        if let Some(d) = &data {
            extra.push("--data-dir".into());
            extra.push(d.path().to_string_lossy().into_owned());
        }
        if !has("--listen") && !has("--no-mesh") {
            extra.push("--listen".into());
            extra.push("/ip4/127.0.0.1/tcp/0".into());
        }
        let mut child = Command::new(crate::titan_bin()?)
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(args)
            .args(&extra)
            .env("SHARD_CACHE_DIR", crate::cache_dir())
            // `SHARD_E2E_TITAN_LOG` widens the titan's log for a failing test
            // (`info,titan_native::mesh=debug`); it is printed when the test fails.
            .env(
                "RUST_LOG",
                std::env::var("SHARD_E2E_TITAN_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log.reopen()?)
            .spawn()
            .context("starting titan serve")?;
        let stdout = child.stdout.take().context("titan stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let log_text = std::fs::read_to_string(log.path()).unwrap_or_default();
            bail!("titan serve did not start: {line:?}\n{log_text}");
        };
        Ok(Self {
            child,
            addr,
            log,
            _data: data,
        })
    }

    /// The process id (for memory readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for TitanServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- titan serve log ---\n{}", self.log());
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Joins an HTTP/1.1 chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Opens a streaming request and returns the connection after `min_bytes`
/// of the response have arrived (the caller may then drop it mid-stream).
pub fn open_stream(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    min_bytes: usize,
) -> Result<(TcpStream, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < min_bytes && Instant::now() < deadline {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok((stream, String::from_utf8_lossy(&got).into_owned()))
}

/// Polls `/metrics` until `name`'s value satisfies `pred` or the timeout passes.
pub fn wait_for_metric(
    addr: SocketAddr,
    name: &str,
    pred: impl Fn(f64) -> bool,
    timeout: Duration,
) -> Result<f64> {
    let deadline = Instant::now() + timeout;
    loop {
        let value = metric(addr, name)?;
        if pred(value) {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("metric {name} stayed at {value}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the first sample of metric `name` (summed over labels).
pub fn metric(addr: SocketAddr, name: &str) -> Result<f64> {
    let r = http(addr, "GET", "/metrics", b"")?;
    Ok(r.body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// The text of one `/v1/completions` call for the `smollm2-135m` model id (seed 11).
pub fn complete(
    server: &TitanServer,
    prompt: &str,
    max_tokens: u32,
    temperature: f32,
) -> Result<String> {
    let body = serde_json::json!({
        "model": "smollm2-135m",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": 11,
    });
    let r = http(
        server.addr,
        "POST",
        "/v1/completions",
        body.to_string().as_bytes(),
    )?;
    if r.status != 200 {
        bail!("completion: {} {}", r.status, r.body);
    }
    r.json()?["choices"][0]["text"]
        .as_str()
        .map(str::to_owned)
        .context("no text in the completion")
}
