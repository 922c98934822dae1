//! A client that measures a titan's verify protocol and throws bad input at
//! it (`titan probe`): connection setup time, the round trip of a K-token
//! `Drafts` message answered without compute (an unknown work id is refused
//! by the swarm task itself, so the time is transport + codec + task), and
//! garbage, oversized and wrong-version frames, floods of streams and of
//! connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use serde_json::{Value, json};
use shared_protocol::wire::verify::{Drafts, Request, Response};
use shared_protocol::wire::{PROTOCOL_VERSION, Writer};

use super::Role;
use super::behaviour::{Behaviour, BehaviourEvent, Limits, build_swarm};
use super::codec::VerifyRequest;

#[derive(Clone, Debug)]
pub struct ProbeOptions {
    pub connect: Multiaddr,
    /// Round trips to time.
    pub rounds: usize,
    /// Draft tokens per round trip.
    pub k: usize,
    /// Also send bad input and floods.
    pub abuse: bool,
    /// Streams opened at once in the stream flood.
    pub flood_streams: usize,
    /// Connections opened in the connection flood.
    pub flood_connections: usize,
}

type ProbeSwarm = Swarm<Behaviour>;

async fn new_swarm() -> Result<ProbeSwarm> {
    let key = libp2p::identity::Keypair::generate_ed25519();
    let cert = libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())
        .context("webrtc certificate")?;
    let limits = Limits {
        max_per_peer: 1024,
        max_established: 2048,
        max_streams_per_connection: 4096,
        max_verify_streams: 4096,
        request_timeout: Duration::from_secs(20),
        ..Limits::default()
    };
    build_swarm(key, Role::Probe, cert, limits).await
}

/// Runs until `f` returns a value, feeding it every swarm event.
async fn until<T>(
    swarm: &mut ProbeSwarm,
    timeout: Duration,
    what: &str,
    mut f: impl FnMut(&mut ProbeSwarm, SwarmEvent<BehaviourEvent>) -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .with_context(|| format!("timed out waiting for {what}"))?;
        if let Some(v) = f(swarm, event) {
            return Ok(v);
        }
    }
}

/// Sends one request and waits for its answer (`Err` text on failure).
async fn ask(
    swarm: &mut ProbeSwarm,
    peer: PeerId,
    request: VerifyRequest,
) -> Result<std::result::Result<Response, String>> {
    let id = swarm.behaviour_mut().verify.send_request(&peer, request);
    until(swarm, Duration::from_secs(30), "a verify answer", |_, e| {
        answer_of(e).filter(|(rid, _)| *rid == id).map(|(_, r)| r)
    })
    .await
}

fn answer_of(
    event: SwarmEvent<BehaviourEvent>,
) -> Option<(OutboundRequestId, std::result::Result<Response, String>)> {
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Verify(request_response::Event::Message {
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        })) => Some((request_id, Ok(response))),
        SwarmEvent::Behaviour(BehaviourEvent::Verify(
            request_response::Event::OutboundFailure {
                request_id, error, ..
            },
        )) => Some((request_id, Err(error.to_string()))),
        _ => None,
    }
}

fn describe(r: &std::result::Result<Response, String>) -> Value {
    match r {
        Ok(Response::Rejected { reason, detail }) => {
            json!({ "rejected": format!("{reason:?}"), "detail": detail })
        }
        Ok(other) => json!({ "answer": format!("{other:?}") }),
        Err(e) => json!({ "failed": e }),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Connects, identifies, measures, and (with `abuse`) misbehaves; returns
/// a JSON report.
pub async fn run(options: ProbeOptions) -> Result<Value> {
    // The native webrtc-direct transport (alpha) now and then stalls in the
    // handshake on a loaded machine, and a stalled attempt poisons its UDP
    // socket: up to three attempts, each from a fresh node, reported.
    let mut attempts = 0;
    let (mut swarm, t0, peer) = loop {
        attempts += 1;
        let mut swarm = new_swarm().await?;
        super::behaviour::prepare_dial(&mut swarm, &options.connect)?;
        // Let the listener come up before the clock starts.
        if options
            .connect
            .iter()
            .any(|p| matches!(p, Protocol::WebRTCDirect))
        {
            until(
                &mut swarm,
                Duration::from_secs(5),
                "a webrtc listener",
                |_, e| matches!(e, SwarmEvent::NewListenAddr { .. }).then_some(()),
            )
            .await?;
        }
        let t0 = Instant::now();
        swarm
            .dial(options.connect.clone())
            .with_context(|| format!("dialing {}", options.connect))?;
        let outcome = until(
            &mut swarm,
            Duration::from_secs(20),
            "a connection",
            |_, e| match e {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => Some(Ok(peer_id)),
                SwarmEvent::OutgoingConnectionError { error, .. } => Some(Err(error.to_string())),
                _ => None,
            },
        )
        .await?;
        match outcome {
            Ok(peer) => break (swarm, t0, peer),
            Err(e) if attempts >= 3 => bail!("connecting to {}: {e}", options.connect),
            Err(e) => tracing::warn!(
                "connecting to {} (attempt {attempts}): {e}",
                options.connect
            ),
        }
    };
    let connected_ms = t0.elapsed().as_secs_f64() * 1e3;
    let info = until(
        &mut swarm,
        Duration::from_secs(20),
        "identify",
        |_, e| match e {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if peer_id == peer => Some(info),
            _ => None,
        },
    )
    .await?;
    let identified_ms = t0.elapsed().as_secs_f64() * 1e3;

    // Round trips of K drafts for work no one assigned: answered by the
    // titan's swarm task without touching the model.
    let drafts = |i: usize| {
        VerifyRequest::Msg(Request::Drafts(Drafts {
            work: u64::MAX - i as u64,
            session: 0,
            position: 100,
            tokens: (0..options.k as u32).map(|t| 1000 + t).collect(),
        }))
    };
    let mut rtts = Vec::with_capacity(options.rounds);
    for i in 0..options.rounds + 5 {
        let t = Instant::now();
        let r = ask(&mut swarm, peer, drafts(i)).await?;
        if i >= 5 {
            // The first few warm up the stream machinery.
            rtts.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if let Err(e) = r {
            bail!("round trip {i} failed: {e}");
        }
    }
    rtts.sort_by(f64::total_cmp);
    let mut report = json!({
        "peer_id": peer.to_string(),
        "address": options.connect.to_string(),
        "agent_version": info.agent_version,
        "protocols": info.protocols.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connect_ms": connected_ms,
        "connect_attempts": attempts,
        "identify_ms": identified_ms,
        "k": options.k,
        "rounds": rtts.len(),
        "rtt_ms": {
            "p50": percentile(&rtts, 0.5),
            "p99": percentile(&rtts, 0.99),
            "min": rtts.first().copied().unwrap_or(f64::NAN),
            "max": rtts.last().copied().unwrap_or(f64::NAN),
        },
    });
    if options.abuse {
        report["abuse"] = abuse(&mut swarm, peer, &options).await?;
    }
    Ok(report)
}

async fn abuse(swarm: &mut ProbeSwarm, peer: PeerId, options: &ProbeOptions) -> Result<Value> {
    let mut out = json!({});
    out["garbage"] = describe(
        &ask(
            swarm,
            peer,
            VerifyRequest::Raw(b"\x01\xffnot a message".to_vec()),
        )
        .await?,
    );
    let mut future = Writer::message(1);
    future.buf[0] = PROTOCOL_VERSION + 1;
    future.string("smollm2-135m");
    out["unknown_version"] = describe(&ask(swarm, peer, VerifyRequest::Raw(future.buf)).await?);
    // A header claiming 1 GiB, followed by a few bytes.
    let mut huge = (1u32 << 30).to_le_bytes().to_vec();
    huge.extend_from_slice(&[1, 2, 3, 4]);
    out["oversized"] = describe(&ask(swarm, peer, VerifyRequest::RawUnframed(huge)).await?);
    out["unknown_work"] = describe(
        &ask(
            swarm,
            peer,
            VerifyRequest::Msg(Request::Drafts(Drafts {
                work: 424242,
                session: 77,
                position: 3,
                tokens: vec![1, 2, 3],
            })),
        )
        .await?,
    );

    // Hundreds of streams at once on one connection.
    let mut ids = HashMap::new();
    for i in 0..options.flood_streams {
        let id = swarm.behaviour_mut().verify.send_request(
            &peer,
            VerifyRequest::Msg(Request::Drafts(Drafts {
                work: 1_000_000 + i as u64,
                session: 1,
                position: 1,
                tokens: vec![1],
            })),
        );
        ids.insert(id, ());
    }
    let (mut answered, mut failed) = (0usize, 0usize);
    let total = ids.len();
    until(
        swarm,
        Duration::from_secs(60),
        "the stream flood",
        |_, e| {
            if let Some((id, r)) = answer_of(e)
                && ids.remove(&id).is_some()
            {
                if r.is_ok() {
                    answered += 1;
                } else {
                    failed += 1;
                }
            }
            ids.is_empty().then_some(())
        },
    )
    .await?;
    out["stream_flood"] = json!({ "sent": total, "answered": answered, "failed": failed });

    // Hundreds of connections to the same titan.
    let mut dialing = 0usize;
    for _ in 0..options.flood_connections {
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![options.connect.clone()])
            .condition(PeerCondition::Always)
            .build();
        if swarm.dial(opts).is_ok() {
            dialing += 1;
        }
    }
    let (mut established, mut refused, mut closed) = (0usize, 0usize, 0usize);
    let mut max_open = 0usize;
    let flood_end = tokio::time::Instant::now() + Duration::from_secs(20);
    while established + refused < dialing && tokio::time::Instant::now() < flood_end {
        let Ok(event) = tokio::time::timeout_at(flood_end, swarm.select_next_some()).await else {
            break;
        };
        match event {
            SwarmEvent::ConnectionEstablished { .. } => established += 1,
            SwarmEvent::OutgoingConnectionError { .. } => refused += 1,
            SwarmEvent::ConnectionClosed { .. } => closed += 1,
            _ => {}
        }
        max_open = max_open.max(established.saturating_sub(closed));
    }
    // Let the titan close what it refuses.
    let settle = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(event) = tokio::time::timeout_at(settle, swarm.select_next_some()).await {
        if let SwarmEvent::ConnectionClosed { .. } = event {
            closed += 1;
        }
    }
    let open_now = swarm.network_info().connection_counters().num_established();
    out["connection_flood"] = json!({
        "dialed": dialing,
        "established": established,
        "refused": refused,
        "closed": closed,
        "open_after": open_now,
    });

    // After all that, an honest request still gets its answer.
    if !swarm.is_connected(&peer) {
        swarm.dial(options.connect.clone())?;
        until(swarm, Duration::from_secs(10), "a reconnection", |_, e| {
            matches!(e, SwarmEvent::ConnectionEstablished { .. }).then_some(())
        })
        .await?;
    }
    let after = ask(
        swarm,
        peer,
        VerifyRequest::Msg(Request::PullWork {
            model: "no-such-model".into(),
            max_k: 8,
        }),
    )
    .await?;
    out["after"] = describe(&after);
    Ok(out)
}

/// The peer id at the end of a multiaddr, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}
