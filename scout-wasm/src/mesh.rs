//! The browser's libp2p node: dials the titan that served the page over
//! webrtc-direct (its address and certhash from `GET /v1/system/topology`), or
//! over WebSocket (noise + yamux) when that fails or is all the titan offers, and
//! drafts the work units it pulls, as every scout does. The protocol's rules are
//! `shared_protocol::drafting::scout::ScoutState`'s; this file only turns swarm
//! events into its inputs and carries out its actions, as the native scout does.
//! The scout opens every stream (browsers' WebRTC transport fails on streams the
//! remote opens; ../shared/notes/browser-scout.md).
//!
//! The browser's webrtc-direct transport never reports a connection the titan
//! closed (libp2p-webrtc-websys 0.5 does not watch the peer connection's state),
//! so the page judges the connection itself: a failed ping ([`PING_EVERY`]) or a
//! failed verify request closes it, and the page dials again.

use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use leptos::prelude::*;
use leptos::task::spawn_local;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, Transport, identify, ping};
use shared_protocol::drafting::scout::{DraftJob, Drafted, ScoutAction, ScoutConfig, ScoutState};
use shared_protocol::mesh::codec::{VerifyCodec, VerifyRequest};
use shared_protocol::mesh::{IDENTIFY_PROTOCOL, Role};
use shared_protocol::wire::verify::{Response, VERIFY_PROTOCOL};

use crate::engine::DraftEngine;
use crate::js;

/// Largest draft this scout offers: drafting in a browser tab is slow, and the
/// titan waits for a unit only until its deadline.
const MAX_K: u8 = 4;
/// Sessions whose tokens the scout keeps (one GPU draft session serves them all).
const MAX_SESSIONS: usize = 16;
/// How often the titan is pinged, and how long a ping may take before the
/// connection counts as dead.
const PING_EVERY: Duration = Duration::from_secs(3);
/// How long a verify request may take (the titan holds a pull for 2 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Redial backoff after a failed dial or a lost connection.
const REDIAL_MS: [u64; 6] = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000];

/// What the page shows of the node.
#[derive(Clone, Copy)]
pub(crate) struct MeshSignals {
    /// `connecting`, `scouting`, `paused`, `reconnecting` or `failed`, and a line.
    pub(crate) state: RwSignal<&'static str>,
    pub(crate) text: RwSignal<String>,
    pub(crate) peer_id: RwSignal<String>,
    pub(crate) units: RwSignal<u64>,
    pub(crate) drafted: RwSignal<u64>,
    pub(crate) accepted: RwSignal<u64>,
    /// Scout mode: pull work for the titan's sessions.
    pub(crate) scouting: RwSignal<bool>,
}

impl MeshSignals {
    pub(crate) fn new() -> Self {
        Self {
            state: RwSignal::new("waiting"),
            text: RwSignal::new("waiting for the engine".into()),
            peer_id: RwSignal::new(String::new()),
            units: RwSignal::new(0),
            drafted: RwSignal::new(0),
            accepted: RwSignal::new(0),
            scouting: RwSignal::new(true),
        }
    }

    fn set(&self, state: &'static str, text: impl Into<String>) {
        self.state.set(state);
        self.text.set(text.into());
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    verify: request_response::Behaviour<VerifyCodec>,
}

/// The titan's addresses a browser can dial: webrtc-direct first, then WebSocket,
/// each the one on the page's host first.
async fn titan_addresses() -> Result<Vec<Multiaddr>> {
    let text = js::get_text("/v1/system/topology").await?;
    let topology: serde_json::Value =
        serde_json::from_str(&text).context("parsing /v1/system/topology")?;
    let host = js::window()?.location().hostname().unwrap_or_default();
    let mut addrs: Vec<Multiaddr> = topology["listen_addrs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str()?.parse().ok())
                .filter(|a: &Multiaddr| transport(a).is_some())
                .collect()
        })
        .unwrap_or_default();
    if addrs.is_empty() {
        bail!(
            "the titan offers no webrtc-direct or WebSocket address (is it serving with --no-mesh?)"
        );
    }
    let rank = |a: &Multiaddr| {
        let on_host = match a.iter().next() {
            Some(Protocol::Ip4(ip)) if ip.to_string() == host => 0,
            Some(Protocol::Ip4(ip)) if ip.is_loopback() => 1,
            _ => 2,
        };
        (transport(a) != Some("webrtc-direct"), on_host)
    };
    addrs.sort_by_key(rank);
    Ok(addrs)
}

/// The browser transport that can dial `addr`, if any (a browser dials neither
/// plain TCP nor wildcard addresses).
fn transport(addr: &Multiaddr) -> Option<&'static str> {
    let unspecified = addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    });
    if unspecified {
        return None;
    }
    if addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect)) {
        Some("webrtc-direct")
    } else if addr.iter().any(|p| matches!(p, Protocol::Ws(_))) {
        Some("WebSocket")
    } else {
        None
    }
}

fn build_swarm() -> Result<Swarm<Behaviour>> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(crate::identity::load_or_create())
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            libp2p_webrtc_websys::Transport::new(libp2p_webrtc_websys::Config::new(key))
        })
        .context("the webrtc-direct transport")?
        .with_other_transport(|key| {
            Ok(libp2p::websocket_websys::Transport::default()
                .upgrade(libp2p::core::upgrade::Version::V1)
                .authenticate(libp2p::noise::Config::new(key)?)
                .multiplex(libp2p::yamux::Config::default()))
        })
        .context("the WebSocket transport")?
        .with_behaviour(|key| Behaviour {
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                    .with_agent_version(Role::Scout.agent_version()),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_EVERY)
                    .with_timeout(PING_EVERY),
            ),
            verify: request_response::Behaviour::with_codec(
                VerifyCodec,
                [(
                    StreamProtocol::new(VERIFY_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(REQUEST_TIMEOUT),
            ),
        })
        .context("the behaviours")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

fn now_ms() -> u64 {
    // `performance.now()` is non-negative and far below 2^53.
    js::now_ms().max(0.0) as u64
}

/// Runs the node for the life of the page.
pub(crate) async fn run(engine: Rc<DraftEngine>, model_id: String, view: MeshSignals) {
    let addrs = match titan_addresses().await {
        Ok(a) => a,
        Err(e) => {
            view.set("failed", format!("{e:#}"));
            return;
        }
    };
    let mut swarm = match build_swarm() {
        Ok(s) => s,
        Err(e) => {
            view.set("failed", format!("{e:#}"));
            return;
        }
    };
    view.peer_id.set(swarm.local_peer_id().to_string());
    let titan = addrs.iter().find_map(|a| match a.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    });
    let Some(titan) = titan else {
        view.set("failed", "the titan's address names no peer id");
        return;
    };

    // One job is out at a time (the state waits for its answer), so these never fill.
    let (mut jobs_tx, jobs_rx) = mpsc::channel::<DraftJob<PeerId>>(2);
    let (done_tx, mut done_rx) = mpsc::channel::<Drafted<PeerId>>(2);
    spawn_local(drafter(engine, jobs_rx, done_tx));

    let mut state = ScoutState::new(ScoutConfig {
        model: model_id,
        max_k: MAX_K,
        max_sessions: MAX_SESSIONS,
    });
    let mut dial = Redial::default();
    let mut connected_via: Option<Multiaddr> = None;
    let mut scouting = view.scouting.get_untracked();
    let mut tick = gloo_timers::future::IntervalStream::new(50).fuse();
    loop {
        let now = now_ms();
        if connected_via.is_none() && dial.due(now) {
            let addr = &addrs[dial.attempt % addrs.len()];
            view.set("connecting", format!("dialing the titan at {addr}"));
            if let Err(e) = swarm.dial(addr.clone()) {
                view.set("reconnecting", format!("cannot dial {addr}: {e}"));
                dial.failed(now);
            } else {
                dial.pending = true;
            }
        }
        futures::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if peer_id == titan => {
                    dial.connected();
                    let addr = endpoint.get_remote_address().clone();
                    connected_via = Some(addr.clone());
                    js::log(&format!("connected to the titan {peer_id} over {addr}"));
                    if scouting {
                        state.titan_found(titan, now_ms());
                    }
                    view.set(if scouting { "scouting" } else { "paused" }, describe(&titan, &addr, scouting));
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } if peer_id == titan => {
                    state.titan_lost(&titan);
                    connected_via = None;
                    dial.failed(now_ms());
                    view.set("reconnecting", format!(
                        "the connection to the titan closed ({}); reconnecting",
                        cause.map_or_else(|| "no error".to_owned(), |c| c.to_string())
                    ));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    dial.failed(now_ms());
                    view.set("reconnecting", format!("could not reach the titan: {error}; retrying"));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Verify(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Response { response, .. },
                    ..
                })) => {
                    if let Response::Rejected { reason, detail } = &response {
                        js::log(&format!("the titan refused: {reason:?}: {detail}"));
                    }
                    state.response(&peer, response, now_ms());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Verify(request_response::Event::OutboundFailure {
                    peer, error, ..
                })) => {
                    js::log(&format!("a verify request failed: {error}; closing the connection"));
                    state.request_failed(&peer, now_ms());
                    // The ConnectionClosed that follows redials.
                    let _ = swarm.disconnect_peer_id(peer);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                    peer, result: Err(error), ..
                })) if peer == titan => {
                    js::log(&format!("a ping to the titan failed: {error}; closing the connection"));
                    let _ = swarm.disconnect_peer_id(peer);
                }
                _ => {}
            },
            d = done_rx.next() => match d {
                Some(d) => state.drafted(d),
                None => {
                    view.set("failed", "the drafting task stopped");
                    return;
                }
            },
            _ = tick.next() => {
                let wanted = view.scouting.get_untracked();
                if wanted != scouting {
                    scouting = wanted;
                    if let Some(addr) = &connected_via {
                        if scouting {
                            state.titan_found(titan, now_ms());
                        } else {
                            state.titan_lost(&titan);
                        }
                        view.set(if scouting { "scouting" } else { "paused" }, describe(&titan, addr, scouting));
                    }
                }
                state.poll(now_ms());
            }
        }
        while let Some(action) = state.next_action() {
            match action {
                ScoutAction::Send { titan, request } => {
                    swarm
                        .behaviour_mut()
                        .verify
                        .send_request(&titan, VerifyRequest::Msg(request));
                }
                ScoutAction::Draft(job) => {
                    if let Err(e) = jobs_tx.try_send(job) {
                        let job = e.into_inner();
                        state.drafted(job.answer(Vec::new()));
                    }
                }
            }
        }
        let c = state.counts();
        view.units.set(c.units);
        view.drafted.set(c.drafted);
        view.accepted.set(c.accepted);
    }
}

fn describe(titan: &PeerId, addr: &Multiaddr, scouting: bool) -> String {
    let transport = transport(addr).unwrap_or("another transport");
    let short = titan.to_string();
    let short = &short[short.len().saturating_sub(8)..];
    if scouting {
        format!("drafting for titan …{short} over {transport}")
    } else {
        format!("connected to titan …{short} over {transport}; scout mode is off")
    }
}

/// Drafts the units one after another on the GPU.
async fn drafter(
    engine: Rc<DraftEngine>,
    mut jobs: mpsc::Receiver<DraftJob<PeerId>>,
    mut done: mpsc::Sender<Drafted<PeerId>>,
) {
    while let Some(job) = jobs.next().await {
        let drafts = match engine.draft(&job.context, &job.params, job.k).await {
            Ok(d) => d,
            Err(e) => {
                js::log(&format!("drafting failed: {e:#}"));
                Vec::new()
            }
        };
        if done.send(job.answer(drafts)).await.is_err() {
            return;
        }
    }
}

/// When to dial the titan again.
#[derive(Default)]
struct Redial {
    attempt: usize,
    next_ms: u64,
    pending: bool,
}

impl Redial {
    fn due(&self, now: u64) -> bool {
        !self.pending && now >= self.next_ms
    }

    fn failed(&mut self, now: u64) {
        self.pending = false;
        self.next_ms = now + REDIAL_MS[self.attempt.min(REDIAL_MS.len() - 1)];
        self.attempt += 1;
    }

    fn connected(&mut self) {
        self.pending = false;
        self.attempt = 0;
    }
}
