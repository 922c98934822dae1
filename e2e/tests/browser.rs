//! The browser scout in a real browser: Debian's Chromium, headless, with WebGPU on its
//! SwiftShader adapter (`--enable-unsafe-webgpu`), driven by Playwright
//! (`e2e/js/browser.mjs`) against a real `titan serve` that serves the app Trunk built
//! (`cargo xtask app`, which `cargo xtask ci` runs first) and the default model. On a
//! software adapter the page drafts on the CPU worker unless its address says
//! `?engine=webgpu`, so the tests that are about WebGPU ask for it.
//!
//! Screenshots land in `$CARGO_TARGET_DIR/e2e-artifacts/browser/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use e2e::mesh::{get_json, wait_until};
use e2e::server::{TitanServer, http, metric};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn app_dir() -> PathBuf {
    let dist = e2e::crate_dir()
        .parent()
        .expect("the workspace root")
        .join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "{} has no built app; run `cargo xtask app` (Trunk) first",
        dist.display()
    );
    dist
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::crate_dir().join("..").join("target"));
    let dir = target.join("e2e-artifacts").join("browser");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// One drafting browser at a time. SwiftShader drafts on the CPU, so two pages drafting
/// at once on a 2-core runner each take twice as long; a chat's first unit (a 35-token
/// prefill and 4 drafts) took 37 s alone and over the titan's 120 s deadline beside the
/// scout-mode test, which then decoded alone and the test saw no drafts.
fn one_drafting_browser() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens the titan's page in Chromium and reports what it showed.
/// The page's address asking for WebGPU whatever the adapter (by default the page drafts
/// on the CPU where the adapter is software, as SwiftShader is here).
const WEBGPU: &str = "?engine=webgpu";

fn open_page(titan: &TitanServer, query: &str, extra: &[&str]) -> Value {
    let (node, script) = e2e::js_script("browser.mjs").expect("the browser driver");
    let js = script.parent().expect("the js folder").to_path_buf();
    let url = format!("http://{}/{query}", titan.addr);
    let out_dir = artifacts();
    let out = std::process::Command::new(&node)
        .arg(&script)
        .args(["--url", &url, "--out"])
        .arg(&out_dir)
        .args(extra)
        .current_dir(&js)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not a report ({e}): {stdout}"));
    assert!(
        report["error"].is_null(),
        "the page driver failed: {report:#}"
    );
    report
}

/// A titan serving the app and the default model on `listen` (loopback), waiting long
/// for scouts' drafts (SwiftShader drafts take seconds a token).
fn meshed_titan(listen: &[&str]) -> TitanServer {
    let app = app_dir().to_string_lossy().into_owned();
    let mut args = vec!["--model", "smollm2-135m", "--app", &app, "--listen"];
    args.extend_from_slice(listen);
    args.extend(["--draft-deadline-ms", "120000"]);
    TitanServer::start(&args).expect("titan serve")
}

const WEBRTC: &str = "/ip4/127.0.0.1/udp/0/webrtc-direct";
const WEBSOCKET: &str = "/ip4/127.0.0.1/tcp/0/ws";

/// One greedy completion's text.
fn complete(titan: &TitanServer, prompt: &str, max_tokens: u32) -> String {
    e2e::server::complete(titan, prompt, max_tokens, 0.0).expect("a completion")
}

/// One of the page's scout counters (`data-*` attributes of `#scout-counts`).
fn count(report: &Value, name: &str) -> u64 {
    report["counts"][name]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn text(report: &Value, what: &str) -> String {
    report[what]["text"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn the_page_loads_the_model_checks_and_caches_it_and_drafts_on_webgpu_like_the_cpu() {
    let _browser = one_drafting_browser();
    let model = e2e::default_model().expect("the default model");
    let model_arg = model.to_string_lossy().into_owned();
    let app = app_dir();
    let prompt = "The capital of France is";
    let drafts = 8;

    let cpu = e2e::titan(&[
        "generate",
        "--model",
        &model_arg,
        "--prompt",
        prompt,
        "--temperature",
        "0",
        "--max-tokens",
        &drafts.to_string(),
        "--json",
    ])
    .expect("titan generate");
    assert!(cpu.status.success(), "{}", cpu.stderr);
    let cpu: Value = serde_json::from_str(cpu.stdout.trim()).expect("generate JSON");
    let expected: Vec<u64> = cpu["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(
        expected.len(),
        drafts,
        "no end of generation within {drafts} tokens"
    );

    let titan = TitanServer::start(&[
        "--model",
        &model_arg,
        "--no-mesh",
        "--app",
        &app.to_string_lossy(),
    ])
    .expect("titan serve");
    // SwiftShader is slower than the CPU worker, so the page would pick the CPU; the
    // address asks for WebGPU.
    let report = open_page(
        &titan,
        WEBGPU,
        &[
            "--count",
            &drafts.to_string(),
            "--prompt",
            prompt,
            "--reload",
        ],
    );
    eprintln!("{report:#}");

    assert_eq!(report["model"]["state"], "ready", "{report:#}");
    assert!(text(&report, "model").contains("downloaded"), "{report:#}");
    assert_eq!(report["engine"]["state"], "ready", "{report:#}");
    assert!(text(&report, "engine").starts_with("WebGPU"), "{report:#}");
    assert_eq!(report["draft"]["state"], "done", "{report:#}");
    let got: Vec<u64> = report["draft"]["tokens"]
        .as_str()
        .expect("data-tokens")
        .split(',')
        .map(|t| t.parse().expect("a token id"))
        .collect();
    assert_eq!(
        got, expected,
        "greedy drafts on WebGPU differ from the CPU engine's tokens"
    );
    assert!(text(&report, "draft").contains("Paris"), "{report:#}");
    // The reload found the model in Cache Storage, checked, without a download.
    assert_eq!(report["reload_model"]["state"], "ready", "{report:#}");
    assert!(
        text(&report, "reload_model").contains("from the browser's cache"),
        "{report:#}"
    );
    assert!(artifacts().join("scout-page.png").is_file());
}

#[test]
fn the_titan_offers_the_scout_model_with_its_sha256_and_byte_ranges() {
    let model = e2e::default_model().expect("the default model");
    let bytes = std::fs::read(&model).expect("model bytes");
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let titan =
        TitanServer::start(&["--model", &model.to_string_lossy(), "--no-mesh"]).expect("titan");
    let models = http(titan.addr, "GET", "/v1/models", b"")
        .and_then(|r| r.json())
        .expect("models");
    let offer = &models["data"][0]["scout_model"];
    assert_eq!(offer["sha256"], sha.as_str());
    assert_eq!(offer["bytes"], bytes.len() as u64);
    let url = offer["url"].as_str().expect("url");

    let ranged = |range: &str| {
        let request =
            format!("GET {url} HTTP/1.1\r\nHost: x\r\nRange: {range}\r\nConnection: close\r\n\r\n");
        raw(titan.addr, request.as_bytes())
    };
    let (head, body) = ranged("bytes=0-3");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-range: bytes 0-3/{}", bytes.len())),
        "{head}"
    );
    assert_eq!(body, b"GGUF");
    let (head, body) = ranged("bytes=-5");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(body, &bytes[bytes.len() - 5..]);
    let (head, _) = ranged(&format!("bytes={}-", bytes.len()));
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");

    // No app built into this titan: `/` says how to build it; API paths stay JSON.
    let page = http(titan.addr, "GET", "/", b"").expect("page");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("cargo xtask app"), "{}", page.body);
    let missing = http(titan.addr, "GET", "/v1/nothing", b"").expect("404");
    assert_eq!(missing.status, 404);
    assert!(missing.json().is_ok());
}

#[test]
fn a_titan_that_offers_no_model_gets_a_clear_message_on_the_page() {
    let model = e2e::default_model().expect("the default model");
    let titan = TitanServer::start(&[
        "--model",
        &model.to_string_lossy(),
        "--no-mesh",
        "--no-scout-model",
        "--app",
        &app_dir().to_string_lossy(),
    ])
    .expect("titan");
    let report = open_page(&titan, "", &[]);
    assert_eq!(report["model"]["state"], "failed", "{report:#}");
    assert!(
        text(&report, "model").contains("offers no draft model"),
        "{report:#}"
    );
    assert_eq!(report["engine"]["state"], "failed", "{report:#}");
}

/// One raw HTTP exchange: the head as text and the body's bytes.
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(request).expect("write");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    (
        String::from_utf8_lossy(&all[..split]).into_owned(),
        all[split + 4..].to_vec(),
    )
}

#[test]
fn in_scout_mode_the_browser_drafts_an_api_clients_completion_over_webrtc_direct_losslessly() {
    scout_mode(
        &[WEBRTC, WEBSOCKET],
        &[],
        "webrtc-direct",
        "/webrtc-direct",
        "scout-mode.png",
    );
}

/// Chrome is to stop letting pages change the ICE credentials in their SDP, which
/// rust-libp2p's browser webrtc-direct does (../shared/notes/browser-scout.md, pitfall
/// 4); with that field trial on, webrtc-direct is refused and the page must scout
/// over WebSocket.
#[test]
fn when_webrtc_direct_is_refused_the_browser_scouts_over_websocket() {
    scout_mode(
        &[WEBRTC, WEBSOCKET],
        &[
            "--chromium-arg",
            "--force-fieldtrials=WebRTC-NoSdpMangleUfrag/Enabled/",
        ],
        "WebSocket",
        "/ws",
        "scout-mode-websocket.png",
    );
}

/// A titan with the page as its scout on `transport` (the page's words; `marker`
/// is in the address the titan sees): an API client's greedy completion is drafted
/// by the page and equals plain decoding.
fn scout_mode(listen: &[&str], page_flags: &[&str], transport: &str, marker: &str, shot: &str) {
    let _browser = one_drafting_browser();
    let prompt = "The three most important inventions of the 20th century were";
    let max_tokens = 12;
    let plain = TitanServer::start(&["--model", "smollm2-135m", "--no-mesh"]).expect("plain titan");
    let reference = complete(&plain, prompt, max_tokens);
    drop(plain);

    let titan = meshed_titan(listen);
    let (node, script) = e2e::js_script("browser.mjs").expect("the browser driver");
    let mut driver = Command::new(&node)
        .arg(&script)
        .args(["--url", &format!("http://{}/", titan.addr), "--out"])
        .arg(artifacts())
        .args(["--scout", "--shot", shot])
        .args(page_flags)
        .current_dir(script.parent().expect("js dir"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the browser driver");
    let mut lines = BufReader::new(driver.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("a line");
    let scouting: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(scouting["event"], "scouting", "{scouting:#}");
    assert!(
        scouting["mesh"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("over {transport}")),
        "{scouting:#}"
    );
    let browser = scouting["peer_id"]
        .as_str()
        .expect("the page's PeerId")
        .to_owned();

    // The titan knows the browser as a scout on an address of that transport.
    wait_until(
        Duration::from_secs(60),
        "the browser to identify as a scout",
        || {
            let peers = get_json(&titan, "/v1/system/peers")?;
            let found = peers["peers"].as_array().is_some_and(|ps| {
                ps.iter().any(|p| {
                    p["peer_id"] == browser.as_str()
                        && p["role"] == "scout"
                        && p["connected"] == true
                        && p["addresses"].as_array().is_some_and(|a| {
                            a.iter()
                                .any(|x| x.as_str().is_some_and(|x| x.contains(marker)))
                        })
                })
            });
            if found {
                Ok(Some(()))
            } else {
                anyhow::bail!("not yet; the titan's peers: {peers}")
            }
        },
    )
    .expect("the browser among the titan's peers");

    let answer = complete(&titan, prompt, max_tokens);
    assert_eq!(answer, reference, "the browser's drafts changed the text");
    let remote = metric(titan.addr, "shard:remote_draft_tokens_total").expect("metric");
    if remote == 0.0 {
        // Let the page go so its console says why it drafted nothing.
        drop(driver.stdin.take());
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let _ = driver.wait();
        panic!(
            "the titan counted no drafts from scouts; the page's report: {}",
            rest.last().map_or("(none)", String::as_str)
        );
    }
    let by_browser = wait_until(
        Duration::from_secs(10),
        "the peer book to count the drafts",
        || {
            let peers = get_json(&titan, "/v1/system/peers")?;
            let drafted = peers["peers"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["peer_id"] == browser.as_str()))
                .and_then(|p| p["drafted"].as_u64())
                .unwrap_or(0);
            Ok((drafted as f64 == remote).then_some(drafted))
        },
    )
    .expect("drafts counted for the browser's PeerId");

    // Let the page go and read what it counted.
    drop(driver.stdin.take());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let _ = driver.wait();
    let report: Value = serde_json::from_str(rest.last().expect("a report")).expect("report JSON");
    eprintln!("{report:#}");
    assert!(report["error"].is_null(), "{report:#}");
    // The page picked the faster engine: WebGPU on a hardware adapter, the CPU worker
    // where the adapter is software (SwiftShader, as here).
    let engine = text(&report, "engine");
    if engine.starts_with("WebGPU") {
        assert!(!engine.contains("(software)"), "{report:#}");
    } else {
        assert!(
            engine.starts_with("CPU (simd128 kernels, in a Web Worker)")
                && engine.contains("is software"),
            "{report:#}"
        );
    }
    let drafted = count(&report, "drafted");
    let accepted = count(&report, "accepted");
    assert_eq!(
        drafted, by_browser,
        "the page and the titan count the same drafts"
    );
    assert!(accepted > 0 && accepted <= drafted, "{report:#}");
    assert!(artifacts().join(shot).is_file());
}

/// A short question (8 tokens of answer).
const CAPITAL: (&str, usize) = ("What is the capital of France?", 8);

/// Sends `question` from the page's chat (greedy, `max_tokens`) to a meshed titan while
/// the page scouts for it, and checks what every chat test checks: the streamed answer is
/// plain decoding's, the page drafted and the titan counted it, and the conversation and
/// the page's libp2p identity came back after a reload. Returns the page's report.
fn chat_from_the_page(
    query: &str,
    page_flags: &[&str],
    shot: &str,
    (question, max_tokens): (&str, usize),
) -> Value {
    let plain = TitanServer::start(&["--model", "smollm2-135m", "--no-mesh"]).expect("plain titan");
    let body = serde_json::json!({
        "model": "smollm2-135m",
        "messages": [{ "role": "user", "content": question }],
        "temperature": 0.0,
        "max_tokens": max_tokens,
    });
    let r = http(
        plain.addr,
        "POST",
        "/v1/chat/completions",
        body.to_string().as_bytes(),
    )
    .expect("chat completion");
    assert_eq!(r.status, 200, "{}", r.body);
    let reference = r.json().expect("JSON")["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    drop(plain);

    let titan = meshed_titan(&[WEBRTC]);
    let max = max_tokens.to_string();
    let mut flags = vec!["--chat", question, "--max-tokens", &max, "--shot", shot];
    flags.extend_from_slice(page_flags);
    let report = open_page(&titan, query, &flags);
    eprintln!("{report:#}");
    assert_eq!(report["chat_status"]["state"], "done", "{report:#}");
    let chat = report["chat"].as_array().expect("the chat log");
    assert_eq!(chat.len(), 2, "{report:#}");
    assert_eq!(chat[0]["role"], "user");
    assert_eq!(chat[0]["content"], question);
    assert_eq!(chat[1]["role"], "assistant");
    assert_eq!(
        chat[1]["content"].as_str().unwrap_or_default(),
        reference,
        "the page's streamed answer differs from plain decoding"
    );
    // The page drafted (its own chat, pulled like any unit) and the titan counted it.
    let drafted = count(&report, "drafted");
    assert!(drafted > 0, "{report:#}");
    let remote = metric(titan.addr, "shard:remote_draft_tokens_total").expect("metric");
    assert!(remote > 0.0, "{report:#}");
    // The conversation came back after the reload.
    assert_eq!(report["chat_after_reload"], report["chat"], "{report:#}");
    // And so did the page's libp2p identity: one scout across reloads.
    assert!(
        report["scout_peer_id"]
            .as_str()
            .is_some_and(|p| p.starts_with("12D3")),
        "{report:#}"
    );
    assert_eq!(
        report["scout_peer_id_after_reload"], report["scout_peer_id"],
        "{report:#}"
    );
    assert!(artifacts().join(shot).is_file());
    report
}

#[test]
fn a_chat_from_the_page_streams_the_titans_greedy_answer_drafted_by_the_page_and_survives_a_reload()
{
    let _browser = one_drafting_browser();
    let report = chat_from_the_page(WEBGPU, &[], "chat.png", CAPITAL);
    assert!(text(&report, "engine").starts_with("WebGPU"), "{report:#}");
}

#[test]
fn without_webgpu_the_page_drafts_on_the_cpu_in_a_web_worker_and_the_chat_is_the_same() {
    let _browser = one_drafting_browser();
    // No `--enable-unsafe-webgpu`, and WebGPU switched off outright, so the page
    // finds no `navigator.gpu` at all.
    let report = chat_from_the_page(
        "",
        &[
            "--no-webgpu",
            "--chromium-arg",
            "--disable-blink-features=WebGPU",
        ],
        "chat-cpu.png",
        CAPITAL,
    );
    let engine = text(&report, "engine");
    assert!(
        engine.starts_with("CPU (simd128 kernels, in a Web Worker)"),
        "{report:#}"
    );
    assert!(engine.contains("WebGPU is not available"), "{report:#}");
    // The CPU model drafts what the titan would pick: greedy drafts are accepted.
    assert!(count(&report, "accepted") > 0, "{report:#}");
}

#[test]
fn when_the_titan_drops_the_page_mid_answer_the_page_reconnects_and_the_answer_is_whole() {
    let _browser = one_drafting_browser();
    // A long answer, so the connection goes while most of it is still to come.
    let report = chat_from_the_page(
        "",
        &["--drop-mid-answer"],
        "chat-dropped.png",
        ("Write a short story about a robot who learns to paint.", 96),
    );
    assert_eq!(report["drop"]["status"], 200, "{report:#}");
    // The drop came mid-answer: the answer grew after it.
    let at_drop = report["answer_at_drop"].as_str().unwrap_or_default();
    let whole = report["chat"][1]["content"].as_str().unwrap_or_default();
    assert!(
        !at_drop.is_empty() && at_drop.len() < whole.len() && whole.starts_with(at_drop),
        "{report:#}"
    );
    // The page saw the connection go, and dialed again.
    let states: Vec<&str> = report["mesh_states"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        states
            .iter()
            .any(|s| *s == "reconnecting" || *s == "connecting"),
        "{report:#}"
    );
    assert_eq!(report["mesh_after_drop"]["state"], "scouting", "{report:#}");
}

#[test]
fn when_the_gpu_is_lost_the_page_moves_to_the_cpu_worker_and_drafts_the_same() {
    let _browser = one_drafting_browser();
    let model = e2e::default_model().expect("the default model");
    let titan = TitanServer::start(&[
        "--model",
        &model.to_string_lossy(),
        "--no-mesh",
        "--app",
        &app_dir().to_string_lossy(),
    ])
    .expect("titan serve");
    let report = open_page(
        &titan,
        WEBGPU,
        &[
            "--count",
            "6",
            "--prompt",
            "The capital of France is",
            "--lose-gpu",
        ],
    );
    eprintln!("{report:#}");
    assert!(report["error"].is_null(), "{report:#}");
    assert!(text(&report, "engine").starts_with("WebGPU"), "{report:#}");
    assert_eq!(report["draft"]["state"], "done", "{report:#}");
    assert!(
        report["devices_destroyed"].as_u64() >= Some(1),
        "{report:#}"
    );
    // The draft the lost GPU could not finish ran on the CPU worker: the same tokens,
    // and the page says where it drafts now and why.
    assert_eq!(report["draft_after_loss"]["state"], "done", "{report:#}");
    assert_eq!(
        report["draft_after_loss"]["tokens"], report["draft"]["tokens"],
        "{report:#}"
    );
    let engine = report["engine_after_loss"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        engine.starts_with("CPU (simd128 kernels, in a Web Worker): WebGPU failed while drafting"),
        "{report:#}"
    );
}
