//! `titan serve` as clients see it: the official `openai` Python client
//! (chat and completions, streaming and not, seeds, stop strings, usage),
//! OpenAI-style errors for bad input with the server still serving, 429 past
//! the session limit, and a client that vanishes mid-stream freeing its
//! session. A second titan with a draft model must answer identically.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use std::time::Duration;

use e2e::run_reference;
use e2e::server::{TitanServer, http, metric, open_stream, wait_for_metric};
use serde_json::{Value, json};

fn client_report(server: &TitanServer) -> Value {
    let out = run_reference(
        "openai_client.py",
        &[&server.base_url(), "smollm2-135m"],
        b"",
    )
    .unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn official_client_gets_correct_answers_with_and_without_speculation() {
    let plain = TitanServer::start(&["--model", "smollm2-135m", "--threads", "2"]).unwrap();
    let r = client_report(&plain);

    let chat = &r["chat"];
    assert!(
        chat["content"].as_str().unwrap().contains("Paris"),
        "{chat}"
    );
    assert_eq!(chat["role"], "assistant");
    assert_eq!(chat["finish_reason"], "stop");
    assert_eq!(chat["object"], "chat.completion");
    let usage = &chat["usage"];
    assert_eq!(usage["prompt_tokens"], 37);
    let completion_tokens = usage["completion_tokens"].as_u64().unwrap();
    assert!(completion_tokens > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        37 + completion_tokens
    );

    let stream = &r["chat_stream"];
    assert_eq!(stream["content"], chat["content"], "streamed text differs");
    assert_eq!(stream["first_role"], "assistant");
    let finishes = stream["finish_reasons"].as_array().unwrap();
    assert_eq!(finishes.last().unwrap(), "stop");
    assert!(finishes[..finishes.len() - 1].iter().all(Value::is_null));
    assert_eq!(stream["usage"], chat["usage"]);
    assert_eq!(stream["objects"], json!(["chat.completion.chunk"]));
    assert_eq!(
        stream["ids"].as_array().unwrap().len(),
        1,
        "one id per stream"
    );

    assert_eq!(r["completion"]["text"], r["completion_stream"]["text"]);
    assert!(
        r["completion"]["text"].as_str().unwrap().contains("Rome"),
        "{}",
        r["completion"]
    );
    assert_eq!(r["completion"]["finish_reason"], "length");
    assert_eq!(r["completion"]["usage"]["completion_tokens"], 12);

    let seeded = r["seeded"].as_array().unwrap();
    assert_eq!(seeded[0], seeded[1], "same seed, different text");
    assert_ne!(seeded[0][0], seeded[2][0], "another seed, same text");
    assert_eq!(seeded[0][1], 24, "max_completion_tokens");
    assert_eq!(seeded[0][2], "length");

    let stop = &r["stop"];
    assert_eq!(stop["finish_reason"], "stop");
    let text = stop["text"].as_str().unwrap();
    assert!(
        !text.contains(" six") && !text.contains("seven"),
        "{text:?}"
    );
    assert_eq!(
        r["chat_stop"]["content"], "The capital of ",
        "{}",
        r["chat_stop"]
    );
    assert_eq!(r["models"], json!(["smollm2-135m"]));

    let errors = &r["errors"];
    assert_eq!(errors["unknown_model"]["status"], 404);
    assert_eq!(errors["unknown_model"]["body"]["code"], "model_not_found");
    for (name, param) in [
        ("negative_max_tokens", "max_tokens"),
        ("huge_max_tokens", "max_tokens"),
        ("empty_messages", "messages"),
        ("bad_temperature", "temperature"),
    ] {
        assert_eq!(errors[name]["status"], 400, "{name}: {}", errors[name]);
        assert_eq!(
            errors[name]["body"]["param"], param,
            "{name}: {}",
            errors[name]
        );
        assert_eq!(errors[name]["body"]["type"], "invalid_request_error");
    }

    // The same requests through a titan that drafts with a model give the
    // same text: speculation is lossless, greedy and seeded alike.
    let spec = TitanServer::start(&[
        "--model",
        "smollm2-135m",
        "--draft",
        "smollm2-135m",
        "--threads",
        "2",
    ])
    .unwrap();
    let s = client_report(&spec);
    for key in ["chat", "completion", "stop", "chat_stop"] {
        let field = if key.starts_with("chat") {
            "content"
        } else {
            "text"
        };
        assert_eq!(
            s[key][field], r[key][field],
            "{key} differs with a draft model"
        );
    }
    assert_eq!(
        s["seeded"], r["seeded"],
        "seeded sampling differs with a draft model"
    );
    let drafted = metric(spec.addr, "vllm:spec_decode_num_draft_tokens_total").unwrap();
    let accepted = metric(spec.addr, "vllm:spec_decode_num_accepted_tokens_total").unwrap();
    let generated = metric(spec.addr, "vllm:generation_tokens_total").unwrap();
    let passes = metric(spec.addr, "shard:target_passes_total").unwrap();
    assert!(
        drafted > 0.0 && accepted == drafted,
        "drafted {drafted}, accepted {accepted}"
    );
    assert!(
        passes < generated / 2.0,
        "{passes} target passes for {generated} tokens"
    );
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let server = TitanServer::start(&[
        "--model",
        "smollm2-135m",
        "--threads",
        "2",
        "--max-tokens",
        "512",
    ])
    .unwrap();
    let addr = server.addr;
    let post = |path: &str, body: &[u8]| http(addr, "POST", path, body).unwrap();
    let chat = "/v1/chat/completions";

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", b"{\"model\": ".to_vec(), 400, "invalid request body"),
        ("wrong type", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}"#.to_vec(), 400, "invalid request body"),
        ("messages not a list", br#"{"model":"smollm2-135m","messages":"hi"}"#.to_vec(), 400, "invalid request body"),
        ("missing content", br#"{"model":"smollm2-135m","messages":[{"role":"user"}]}"#.to_vec(), 400, "content is required"),
        ("unknown role", br#"{"model":"smollm2-135m","messages":[{"role":"wizard","content":"hi"}]}"#.to_vec(), 400, "role"),
        ("n = 2", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"n":2}"#.to_vec(), 400, "n = 1"),
        ("zero max_tokens", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"max_tokens":0}"#.to_vec(), 400, "at least 1"),
        ("over the cap", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"max_tokens":513}"#.to_vec(), 400, "at most 512"),
        ("five stops", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}"#.to_vec(), 400, "stop"),
        ("image part", br#"{"model":"smollm2-135m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#.to_vec(), 400, "text only"),
        ("unknown model", br#"{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}"#.to_vec(), 404, "does not exist"),
    ];
    for (name, body, status, needle) in &cases {
        let r = post(chat, body);
        assert_eq!(r.status, *status, "{name}: {}", r.body);
        let err = &r.json().unwrap()["error"];
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{name}: {err}"
        );
        assert!(err["type"].is_string(), "{name}: {err}");
    }

    // A prompt longer than the 8192-token context.
    let long = json!({"model": "smollm2-135m", "prompt": "hello ".repeat(9000), "max_tokens": 4});
    let r = post("/v1/completions", long.to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.json().unwrap()["error"]["code"],
        "context_length_exceeded"
    );
    // A body over 1 MiB.
    let huge = json!({"model": "smollm2-135m", "prompt": "x".repeat(2 << 20)});
    let r = post("/v1/completions", huge.to_string().as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.json().unwrap()["error"]["message"].is_string());
    let r = http(addr, "GET", "/v1/nothing", b"").unwrap();
    assert_eq!(r.status, 404);

    // Still serving.
    let ok = post(
        "/v1/completions",
        br#"{"model":"smollm2-135m","prompt":"Hello","max_tokens":3,"temperature":0}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json().unwrap()["usage"]["completion_tokens"], 3);
    let health = http(addr, "GET", "/health", b"").unwrap();
    assert_eq!(health.json().unwrap()["status"], "ok");
}

#[test]
fn session_limit_gives_429_and_a_vanished_client_frees_its_session() {
    let server = TitanServer::start(&[
        "--model",
        "smollm2-135m",
        "--threads",
        "2",
        "--max-sessions",
        "1",
    ])
    .unwrap();
    let addr = server.addr;
    let long = json!({
        "model": "smollm2-135m", "prompt": "Write a very long story.", "max_tokens": 4000,
        "temperature": 0.8, "seed": 1, "stream": true,
    });
    let (conn, first) =
        open_stream(addr, "/v1/completions", long.to_string().as_bytes(), 200).unwrap();
    assert!(
        first.contains("200 OK") && first.contains("data: "),
        "{first}"
    );
    wait_for_metric(
        addr,
        "vllm:num_requests_running",
        |v| v == 1.0,
        Duration::from_secs(10),
    )
    .unwrap();

    let second = http(
        addr,
        "POST",
        "/v1/completions",
        br#"{"model":"smollm2-135m","prompt":"Hi","max_tokens":2}"#,
    )
    .unwrap();
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(second.json().unwrap()["error"]["type"], "rate_limit_error");

    // The client goes away mid-stream: its session ends and the slot frees.
    drop(conn);
    wait_for_metric(
        addr,
        "vllm:num_requests_running",
        |v| v == 0.0,
        Duration::from_secs(20),
    )
    .unwrap();
    let generated = metric(addr, "vllm:generation_tokens_total").unwrap();
    assert!(
        generated < 4000.0,
        "generation went on after the client left: {generated} tokens"
    );
    let third = http(
        addr,
        "POST",
        "/v1/completions",
        br#"{"model":"smollm2-135m","prompt":"Hi","max_tokens":2}"#,
    )
    .unwrap();
    assert_eq!(third.status, 200, "{}", third.body);
    assert!(
        server.log().contains("client went away"),
        "{}",
        server.log()
    );
}
