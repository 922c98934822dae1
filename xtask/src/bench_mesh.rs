//! `cargo xtask bench mesh`: per transport (TCP, WebSocket, webrtc-direct),
//! the round trip of a `/shard/verify/1` exchange carrying K=8 drafts that
//! the titan answers without compute (an unknown work id, refused by its
//! swarm task: transport + codec + task), and the connection setup time
//! (dial to established, and to identify done), with `titan probe` against
//! a `titan serve` on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench::json_of;

const ROUNDS: &str = "2000";
const SETUPS: usize = 7;

fn get(addr: &str, path: &str) -> Result<Value> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let body = raw.split_once("\r\n\r\n").context("no HTTP body")?.1;
    serde_json::from_str(body).with_context(|| format!("GET {path}: {body}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(crate) fn run(titan: &str, model: &str) -> Result<()> {
    let data = std::env::temp_dir().join(format!("shard-bench-mesh-{}", std::process::id()));
    let mut server = Command::new(titan)
        .args([
            "serve",
            "--model",
            model,
            "--http",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "/ip4/127.0.0.1/tcp/0/ws",
            "/ip4/127.0.0.1/udp/0/webrtc-direct",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("titan stdout")?).read_line(&mut line)?;
    let result = (|| -> Result<()> {
        let http = line
            .strip_prefix("listening on http://")
            .and_then(|r| r.split_whitespace().next())
            .context("titan serve did not start")?;
        let topology = get(http, "/v1/system/topology")?;
        let addrs: Vec<String> = topology["listen_addrs"]
            .as_array()
            .context("listen_addrs")?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        println!(
            "{:<15} {:>7} {:>10} {:>10} {:>11} {:>11} {:>9}",
            "transport", "rounds", "rtt p50", "rtt p99", "connect", "+identify", "setups"
        );
        for (name, pick) in [
            ("tcp", "/tcp/"),
            ("websocket", "/ws/"),
            ("webrtc-direct", "/webrtc-direct/"),
        ] {
            let Some(addr) = addrs
                .iter()
                .find(|a| a.contains(pick) && (name != "tcp" || !a.contains("/ws")))
            else {
                bail!("no {name} address in {topology}");
            };
            let probe = |rounds: &str| {
                json_of(
                    titan,
                    &["probe", "--connect", addr, "--rounds", rounds, "--k", "8"],
                )
            };
            let main = probe(ROUNDS)?;
            let mut connect = vec![main["connect_ms"].as_f64().unwrap_or(f64::NAN)];
            let mut identify = vec![main["identify_ms"].as_f64().unwrap_or(f64::NAN)];
            for _ in 1..SETUPS {
                let r = probe("1")?;
                connect.push(r["connect_ms"].as_f64().unwrap_or(f64::NAN));
                identify.push(r["identify_ms"].as_f64().unwrap_or(f64::NAN));
            }
            let rtt = &main["rtt_ms"];
            println!(
                "{:<15} {:>7} {:>8.3}ms {:>8.3}ms {:>9.2}ms {:>9.2}ms {:>9}",
                name,
                main["rounds"],
                rtt["p50"].as_f64().unwrap_or(f64::NAN),
                rtt["p99"].as_f64().unwrap_or(f64::NAN),
                median(connect),
                median(identify),
                SETUPS
            );
        }
        println!(
            "(connect and +identify: medians of {SETUPS} fresh connections; rtt: K=8 drafts answered without compute)"
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}
