//! The mesh, with real processes on loopback: titans and native scouts find
//! each other through kademlia and gossip; a remote scout's drafts give the
//! same text as plain decoding, and killing it mid-generation (or a scout
//! slower than the deadline) changes nothing the client sees; bad input on
//! `/shard/verify/1` is refused and bounded; a js-libp2p node dials,
//! identifies and pings a titan; identity and webrtc certhash survive a
//! restart.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use std::io::Read;
use std::time::{Duration, Instant};

use e2e::mesh::{Scout, connected_peers, get_json, listen_addr, peer_id, wait_until};
use e2e::server::{TitanServer, http, metric, open_stream};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(90);

fn titan(extra: &[&str]) -> TitanServer {
    let mut args = vec!["--model", "smollm2-135m", "--threads", "1"];
    args.extend_from_slice(extra);
    TitanServer::start(&args).unwrap()
}

fn complete(server: &TitanServer, prompt: &str, max_tokens: u32, temperature: f32) -> String {
    e2e::server::complete(server, prompt, max_tokens, temperature).unwrap()
}

/// Reads an SSE response (chunked, kept alive) until `[DONE]`; returns
/// the de-chunked body.
fn read_sse(stream: &mut std::net::TcpStream, head: String) -> String {
    let mut raw = head.into_bytes();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !String::from_utf8_lossy(&raw).contains("data: [DONE]") {
        assert!(Instant::now() < deadline, "the stream did not finish");
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the stream closed early");
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut body = text.split_once("\r\n\r\n").unwrap().1;
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            out.push_str(rest);
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The text of a streamed completion's SSE body.
fn sse_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
        .collect()
}

fn scout_drafted(titan: &TitanServer) -> u64 {
    let peers = get_json(titan, "/v1/system/peers").unwrap();
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "scout")
        .map(|p| p["drafted"].as_u64().unwrap_or(0))
        .sum()
}

fn wait_for_scouts(titan: &TitanServer, n: usize) {
    wait_until(SETTLE, "scouts to connect", || {
        let scouts = connected_peers(titan)?
            .into_iter()
            .filter(|(_, role)| role == "scout")
            .count();
        Ok((scouts >= n).then_some(()))
    })
    .unwrap();
}

#[test]
fn three_titans_and_two_scouts_find_each_other_and_gossip_reaches_all() {
    let a = titan(&[]);
    let boot = listen_addr(&a, "tcp").unwrap();
    let b = titan(&["--bootstrap", &boot]);
    let c = titan(&["--bootstrap", &boot]);
    let scouts = [Scout::start(&boot).unwrap(), Scout::start(&boot).unwrap()];
    let titans = [&a, &b, &c];
    let ids: Vec<String> = titans.iter().map(|t| peer_id(t).unwrap()).collect();

    // B and C know only A; each titan must end up connected to the other
    // two titans (DHT routing) and to both scouts (which find B and C as
    // providers of the model).
    for (i, t) in titans.iter().enumerate() {
        wait_until(SETTLE, "the mesh to form", || {
            let peers = connected_peers(t)?;
            let other_titans = ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .all(|(_, id)| peers.iter().any(|(p, r)| p == id && r == "titan"));
            let scouts = peers.iter().filter(|(_, r)| r == "scout").count();
            Ok((other_titans && scouts == 2).then_some(()))
        })
        .unwrap_or_else(|e| {
            panic!(
                "titan {i}: {e}\n{}",
                get_json(t, "/v1/system/peers").unwrap()
            )
        });
    }
    for s in &scouts {
        for id in &ids {
            wait_until(SETTLE, "scouts to draft for every titan", || {
                Ok(s.output()
                    .contains(&format!("drafting for titan {id}"))
                    .then_some(()))
            })
            .unwrap();
        }
    }

    // A note published on B reaches A, C and both scouts.
    let text = format!("hello from B at {:?}", Instant::now());
    let r = http(
        b.addr,
        "POST",
        "/v1/system/gossip",
        json!({ "text": text }).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    for t in [&a, &c] {
        wait_until(Duration::from_secs(30), "gossip at the titans", || {
            let log = get_json(t, "/v1/system/gossip")?;
            Ok(log.to_string().contains(&text).then_some(()))
        })
        .unwrap();
    }
    for s in &scouts {
        wait_until(Duration::from_secs(30), "gossip at the scouts", || {
            Ok(s.output().contains(&text).then_some(()))
        })
        .unwrap();
    }
    // Oversized notes are refused.
    let r = http(
        b.addr,
        "POST",
        "/v1/system/gossip",
        json!({ "text": "x".repeat(2000) }).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 400);
}

const PROMPTS: [&str; 2] = [
    "The three most important inventions of the 20th century were",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
];

#[test]
fn a_remote_scout_drafts_losslessly_and_a_killed_scout_is_rerouted() {
    let plain = titan(&["--no-mesh"]);
    let reference: Vec<(String, String)> = PROMPTS
        .iter()
        .map(|p| (complete(&plain, p, 32, 0.0), complete(&plain, p, 32, 0.9)))
        .collect();
    let long_reference = complete(&plain, PROMPTS[0], 160, 0.0);
    drop(plain);

    let meshed = titan(&["--draft-deadline-ms", "5000"]);
    let addr = listen_addr(&meshed, "tcp").unwrap();
    let mut scout = Scout::start(&addr).unwrap();
    wait_for_scouts(&meshed, 1);

    for (p, (greedy, sampled)) in PROMPTS.iter().zip(&reference) {
        assert_eq!(&complete(&meshed, p, 32, 0.0), greedy, "greedy, {p:?}");
        assert_eq!(&complete(&meshed, p, 32, 0.9), sampled, "sampled, {p:?}");
    }
    // The scout really drafted: per-peer counters and the metrics agree
    // (the peer book hears of the last verdict just after the client).
    let drafted = wait_until(Duration::from_secs(10), "counters to agree", || {
        let remote = metric(meshed.addr, "shard:remote_draft_tokens_total")? as u64;
        let drafted = scout_drafted(&meshed);
        Ok((remote == drafted).then_some(drafted))
    })
    .unwrap();
    assert!(drafted > 30, "the scout drafted only {drafted} tokens");
    assert!(metric(meshed.addr, "shard:remote_accepted_tokens_total").unwrap() > 0.0);
    // Finished sessions are reported on shard-work-result.
    wait_until(Duration::from_secs(30), "a work result on gossip", || {
        Ok(scout.output().contains("WorkResult").then_some(()))
    })
    .unwrap();

    // Kill the scout while a long generation streams; the text must not
    // change and the titan must say it rerouted.
    let body = json!({
        "model": "smollm2-135m",
        "prompt": PROMPTS[0],
        "max_tokens": 160,
        "temperature": 0.0,
        "stream": true,
    });
    let (mut stream, head) = open_stream(
        meshed.addr,
        "/v1/completions",
        body.to_string().as_bytes(),
        1200,
    )
    .unwrap();
    // Kill it once it has verdicts on this generation (the stream waits in
    // the socket buffers meanwhile).
    wait_until(Duration::from_secs(20), "the scout to draft", || {
        Ok((scout_drafted(&meshed) > drafted).then_some(()))
    })
    .unwrap();
    scout.kill();
    let text = sse_text(&read_sse(&mut stream, head));
    assert_eq!(text, long_reference);
    wait_until(Duration::from_secs(10), "the reroute log line", || {
        Ok(meshed.log().contains("Rerouting").then_some(()))
    })
    .unwrap();
    assert!(metric(meshed.addr, "shard:reroutes_total").unwrap() >= 1.0);
    // Without scouts the titan decodes on its own, same text.
    assert_eq!(complete(&meshed, PROMPTS[1], 32, 0.0), reference[1].0);
}

/// A scout drafting on the GPU (lavapipe here) over the mesh: the titan's text is
/// plain decoding's, greedy and seeded, and the GPU's drafts are accepted.
#[test]
fn a_scout_drafting_on_the_gpu_is_lossless() {
    let plain = titan(&["--no-mesh"]);
    // One prompt, few tokens: lavapipe drafts at a few tokens per second.
    let prompt = PROMPTS[0];
    let (greedy, sampled) = (
        complete(&plain, prompt, 16, 0.0),
        complete(&plain, prompt, 16, 0.9),
    );
    drop(plain);

    let meshed = titan(&["--draft-deadline-ms", "20000"]);
    let addr = listen_addr(&meshed, "tcp").unwrap();
    let scout = Scout::start_with(&addr, &["--device", "gpu"]).unwrap();
    wait_for_scouts(&meshed, 1);
    assert_eq!(complete(&meshed, prompt, 16, 0.0), greedy, "greedy");
    assert_eq!(complete(&meshed, prompt, 16, 0.9), sampled, "sampled");
    let accepted = wait_until(Duration::from_secs(10), "accepted GPU drafts", || {
        let accepted = metric(meshed.addr, "shard:remote_accepted_tokens_total")?;
        Ok((accepted > 0.0).then_some(accepted))
    })
    .unwrap();
    assert!(
        scout.log().contains("model on the GPU"),
        "the scout did not draft on the GPU: {}",
        scout.log()
    );
    eprintln!("GPU scout: {accepted} drafted tokens accepted");
}

#[test]
fn a_scout_slower_than_the_deadline_is_rerouted_without_changing_the_text() {
    let plain = titan(&["--no-mesh"]);
    let reference = complete(&plain, PROMPTS[1], 32, 0.0);
    drop(plain);
    // No scout can answer within a millisecond: every unit is taken back,
    // its late drafts are refused, and the titan drafts on its own.
    let impatient = titan(&["--draft-deadline-ms", "1"]);
    let addr = listen_addr(&impatient, "tcp").unwrap();
    let _scout = Scout::start(&addr).unwrap();
    wait_for_scouts(&impatient, 1);
    assert_eq!(complete(&impatient, PROMPTS[1], 32, 0.0), reference);
    wait_until(Duration::from_secs(10), "the reroute log line", || {
        Ok(impatient
            .log()
            .contains("no drafts within 1 ms")
            .then_some(()))
    })
    .unwrap();
    assert!(metric(impatient.addr, "shard:reroutes_total").unwrap() >= 1.0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn probe(args: &[&str]) -> Value {
    let out = e2e::titan(&[&["probe"], args].concat()).unwrap();
    assert!(out.status.success(), "probe failed: {}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

#[test]
fn bad_input_on_the_verify_protocol_is_refused_and_bounded() {
    let t = titan(&[]);
    let addr = listen_addr(&t, "tcp").unwrap();
    let rss_before = rss_kib(t.pid());
    let report = probe(&["--connect", &addr, "--rounds", "20", "--abuse"]);
    let abuse = &report["abuse"];
    assert_eq!(abuse["garbage"]["rejected"], "Malformed", "{abuse}");
    assert_eq!(abuse["unknown_version"]["rejected"], "UnsupportedVersion");
    // A frame header claiming 1 GiB: the stream is dropped unread.
    assert!(abuse["oversized"]["failed"].is_string(), "{abuse}");
    assert_eq!(abuse["unknown_work"]["rejected"], "UnknownWork");
    let flood = &abuse["stream_flood"];
    let (answered, failed) = (
        flood["answered"].as_u64().unwrap(),
        flood["failed"].as_u64().unwrap(),
    );
    assert_eq!(answered + failed, 300, "{flood}");
    assert!(answered >= 16, "{flood}");
    let conns = &abuse["connection_flood"];
    assert!(conns["open_after"].as_u64().unwrap() <= 4, "{conns}");
    // The abuser still gets answers, and others are served.
    assert_eq!(abuse["after"]["rejected"], "UnknownModel");
    let fresh = probe(&["--connect", &addr, "--rounds", "20"]);
    assert!(fresh["rtt_ms"]["p50"].as_f64().unwrap() < 100.0, "{fresh}");
    assert!(!complete(&t, PROMPTS[0], 8, 0.0).is_empty());
    let health = http(t.addr, "GET", "/health", b"").unwrap();
    assert_eq!(health.status, 200);
    let rss_after = rss_kib(t.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn js_libp2p_dials_identifies_and_pings_a_titan_over_tcp_and_websocket() {
    let (node, script) = e2e::js_script("interop.mjs").unwrap();
    let js = script.parent().unwrap().to_path_buf();
    let t = titan(&[
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/127.0.0.1/tcp/0/ws",
    ]);
    let id = peer_id(&t).unwrap();
    let addrs = [
        listen_addr(&t, "tcp").unwrap(),
        listen_addr(&t, "ws").unwrap(),
    ];
    let out = std::process::Command::new(&node)
        .arg(&script)
        .args(&addrs)
        .current_dir(&js)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r["peer_id"], id.as_str(), "{r}");
        assert!(
            r["agent_version"]
                .as_str()
                .unwrap()
                .starts_with("shard-titan/")
        );
        let protocols = r["protocols"].as_array().unwrap();
        assert!(protocols.contains(&json!("/shard/verify/1")), "{r}");
        assert!(r["ping_ms"].as_f64().is_some(), "{r}");
    }
    // The titan saw it, as a peer of unknown role with js-libp2p's agent.
    let peers = get_json(&t, "/v1/system/peers").unwrap();
    assert!(peers.to_string().contains("js-libp2p"), "{peers}");
}

#[test]
fn identity_and_webrtc_certhash_survive_a_restart_and_a_native_webrtc_client_connects() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let listen = [
        "--data-dir",
        dir,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/127.0.0.1/udp/0/webrtc-direct",
    ];
    let certhash = |t: &TitanServer| {
        let a = listen_addr(t, "webrtc-direct").unwrap();
        a.split("/certhash/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let first = titan(&listen);
    let (id1, hash1) = (peer_id(&first).unwrap(), certhash(&first));
    drop(first);
    let second = titan(&listen);
    assert_eq!(peer_id(&second).unwrap(), id1);
    assert_eq!(certhash(&second), hash1);
    let topology = get_json(&second, "/v1/system/topology").unwrap();
    assert_eq!(topology["role"], "titan");
    assert_eq!(topology["model"], "smollm2-135m");
    assert_eq!(topology["layers"], json!({ "start": 0, "end": 30 }));
    let webrtc = listen_addr(&second, "webrtc-direct").unwrap();
    let report = probe(&["--connect", &webrtc, "--rounds", "10"]);
    assert_eq!(report["peer_id"], id1.as_str());
}

#[test]
fn an_operator_can_disconnect_a_peer_and_bad_peer_ids_are_named() {
    let t = titan(&[]);
    let addr = listen_addr(&t, "tcp").unwrap();
    let scout = Scout::start(&addr).unwrap();
    wait_for_scouts(&t, 1);
    let peers = get_json(&t, "/v1/system/peers").unwrap();
    let scout_id = peers["peers"][0]["peer_id"].as_str().unwrap().to_owned();

    let r = http(t.addr, "DELETE", "/v1/system/peers/not-a-peer", b"").unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is not a PeerId"), "{}", r.body);
    // A well-formed PeerId the titan is not connected to: its own.
    let own = peers["peer_id"].as_str().unwrap();
    let r = http(t.addr, "DELETE", &format!("/v1/system/peers/{own}"), b"").unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("is not connected"), "{}", r.body);

    let r = http(
        t.addr,
        "DELETE",
        &format!("/v1/system/peers/{scout_id}"),
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The scout sees the titan go, and joins again by itself.
    wait_until(
        Duration::from_secs(20),
        "the scout to lose the titan",
        || Ok(scout.log().contains("titan disconnected").then_some(())),
    )
    .unwrap();
    wait_for_scouts(&t, 1);
}
