//! The titan's swarm task: listens, joins the DHT from bootstrap addresses,
//! provides its model, gossips, and answers `/shard/verify/1` for the
//! scheduler's remote drafting ([`super::work`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, ping};
use shared_protocol::wire::DecodeError;
use shared_protocol::wire::gossip::{GossipMessage, TOPIC_WORK, TOPIC_WORK_RESULT};
use shared_protocol::wire::verify::{Drafts, RejectReason, Request, Response, VerdictMsg};
use tokio::sync::mpsc;

use super::behaviour::{Behaviour, BehaviourEvent, Limits, build_swarm};
use super::codec::VerifyRequest;
use super::peers::{GossipEntry, PeerBook, now_secs};
use super::work::{FromMesh, MeshLink, ToMesh, WorkUnit, claim};
use super::{Role, identity, model_key};
use crate::server::metrics::Metrics;
use crate::server::scheduler::Inbox;
use shared_protocol::drafting::titan::ScoutsView;

/// Pulls held at once (over all scouts), and per scout.
const MAX_HELD_PULLS: usize = 256;
const MAX_PULLS_PER_PEER: usize = 2;
/// A held pull is answered `NoWork` after this long.
const PULL_HOLD: Duration = Duration::from_secs(2);
/// Units waiting for a pull, and sessions whose scout-side context we track.
const MAX_QUEUED: usize = 256;
const MAX_KNOWN_CONTEXTS: usize = 1024;
/// Messages between the scheduler/HTTP and the swarm task.
const CHANNEL: usize = 1024;

/// How a titan joins the mesh.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    pub data_dir: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    /// How long a scout may take to answer a work unit.
    pub deadline: Duration,
    pub model_id: String,
    pub n_layers: usize,
    pub limits: Limits,
}

/// What the HTTP API reads of the node.
pub struct MeshShared {
    pub peer_id: PeerId,
    pub model_id: String,
    pub n_layers: usize,
    pub listen_addrs: Mutex<Vec<Multiaddr>>,
    pub book: Mutex<PeerBook>,
    pub to_mesh: mpsc::Sender<ToMesh>,
}

impl MeshShared {
    pub fn topology(&self) -> serde_json::Value {
        let addrs: Vec<String> = self
            .listen_addrs
            .lock()
            .map(|a| a.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let webrtc: Vec<&String> = addrs
            .iter()
            .filter(|a| a.contains("/webrtc-direct"))
            .collect();
        serde_json::json!({
            "peer_id": self.peer_id.to_string(),
            "role": Role::Titan.name(),
            "agent_version": Role::Titan.agent_version(),
            "listen_addrs": addrs,
            "webrtc_direct": webrtc,
            "model": self.model_id,
            "layers": { "start": 0, "end": self.n_layers },
            "n_layers": self.n_layers,
        })
    }
}

/// Starts the titan's node on the current tokio runtime. Returns what the
/// HTTP API reads and the scheduler's handle.
pub async fn start(
    options: MeshOptions,
    inbox: SyncSender<Inbox>,
    metrics: Arc<Metrics>,
) -> Result<(Arc<MeshShared>, MeshLink)> {
    let key = identity::load_or_create_keypair(&options.data_dir)?;
    let cert = identity::load_or_create_certificate(&options.data_dir)?;
    let peer_id = key.public().to_peer_id();
    let mut swarm = build_swarm(key, Role::Titan, cert, options.limits.clone()).await?;
    for addr in &options.listen {
        swarm
            .listen_on(addr.clone())
            .with_context(|| format!("listening on {addr}"))?;
    }
    for addr in &options.bootstrap {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!("cannot dial bootstrap address {addr}: {e}");
        }
    }
    if let Err(e) = swarm
        .behaviour_mut()
        .kad
        .start_providing(model_key(&options.model_id))
    {
        tracing::warn!("cannot provide the model record: {e}");
    }
    let (to_mesh, rx) = mpsc::channel(CHANNEL);
    let idle_scouts = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(MeshShared {
        peer_id,
        model_id: options.model_id.clone(),
        n_layers: options.n_layers,
        listen_addrs: Mutex::new(Vec::new()),
        book: Mutex::new(PeerBook::default()),
        to_mesh: to_mesh.clone(),
    });
    let link = MeshLink {
        to_mesh,
        idle_scouts: idle_scouts.clone(),
        deadline: options.deadline,
    };
    let node = Node {
        swarm,
        rx,
        inbox,
        idle_scouts,
        shared: shared.clone(),
        metrics,
        model_id: options.model_id,
        held: VecDeque::new(),
        queued: VecDeque::new(),
        scouts: ScoutsView::new(MAX_KNOWN_CONTEXTS),
        awaiting: HashMap::new(),
        results: HashMap::new(),
        bootstrapped: false,
    };
    tokio::spawn(node.run());
    Ok((shared, link))
}

struct HeldPull {
    peer: PeerId,
    channel: ResponseChannel<Response>,
    since: Instant,
}

struct Awaiting {
    peer: PeerId,
    session: u64,
    channel: ResponseChannel<Response>,
    drafts: Vec<u32>,
}

struct Node {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<ToMesh>,
    inbox: SyncSender<Inbox>,
    idle_scouts: Arc<AtomicUsize>,
    shared: Arc<MeshShared>,
    metrics: Arc<Metrics>,
    model_id: String,
    /// Pulls waiting for work, oldest first.
    held: VecDeque<HeldPull>,
    /// Units whose claimed pull vanished, for the next pull.
    queued: VecDeque<WorkUnit>,
    /// What each scout holds of each session, and the units out with them.
    scouts: ScoutsView<PeerId>,
    /// Drafts handed to the scheduler, waiting for its verdict.
    awaiting: HashMap<u64, Awaiting>,
    /// Drafted and accepted tokens per scout and session, published on
    /// `shard-work-result` when the session ends.
    results: HashMap<(PeerId, u64), (u64, u64)>,
    bootstrapped: bool,
}

impl Node {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut discovery = tokio::time::interval(Duration::from_secs(5));
        let mut offers = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                msg = self.rx.recv() => match msg {
                    Some(m) => self.on_scheduler(m),
                    None => return,
                },
                _ = tick.tick() => self.expire_pulls(),
                _ = discovery.tick() => self.discover(),
                _ = offers.tick() => self.publish_offer(),
            }
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, PeerBook> {
        self.shared
            .book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with_p2p(self.shared.peer_id).unwrap_or_else(|a| a);
                tracing::info!("listening on {full}");
                if let Ok(mut a) = self.shared.listen_addrs.lock() {
                    a.push(full);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Ok(mut a) = self.shared.listen_addrs.lock() {
                    a.retain(|x| !x.to_string().starts_with(&address.to_string()));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let addr = endpoint.get_remote_address().clone();
                tracing::debug!(%peer_id, %addr, "connected");
                self.book().connected(&peer_id, &addr);
                self.count_peers();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                self.book().disconnected(&peer_id, num_established);
                self.count_peers();
                if num_established == 0 {
                    self.peer_gone(peer_id);
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn count_peers(&self) {
        self.metrics
            .mesh_peers
            .store(self.swarm.connected_peers().count() as u64, Relaxed);
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.book().identified(&peer_id, &info);
                self.swarm
                    .behaviour_mut()
                    .learn_dht_peer(&peer_id, &info, &mut self.bootstrapped);
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => self.book().rtt(&peer, rtt),
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })
                if !self.swarm.is_connected(&peer) =>
            {
                let _ = self.swarm.dial(peer);
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(Ok(_)),
                ..
            }) => {
                // Re-announce the model to the peers now known.
                let key = model_key(&self.model_id);
                let _ = self.swarm.behaviour_mut().kad.start_providing(key);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let text = match GossipMessage::decode(&message.data) {
                    Ok(m) => format!("{m:?}"),
                    Err(e) => format!("undecodable: {e}"),
                };
                tracing::info!(topic = %message.topic, from = %propagation_source, "gossip: {text}");
                self.book().gossip_received(GossipEntry {
                    topic: message.topic.to_string(),
                    source: message.source.map(|p| p.to_string()),
                    message_id: message_id.to_string(),
                    message: text,
                    received_at: now_secs(),
                });
            }
            BehaviourEvent::Verify(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) => self.on_request(peer, request, channel),
            BehaviourEvent::Verify(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::debug!(%peer, "verify stream failed: {error}");
            }
            _ => {}
        }
    }

    fn reject(&mut self, channel: ResponseChannel<Response>, reason: RejectReason, detail: String) {
        let _ = self
            .swarm
            .behaviour_mut()
            .verify
            .send_response(channel, Response::Rejected { reason, detail });
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: VerifyRequest,
        channel: ResponseChannel<Response>,
    ) {
        match request {
            VerifyRequest::Invalid(DecodeError::UnsupportedVersion { got }) => {
                tracing::debug!(%peer, "verify request in protocol version {got}");
                self.reject(
                    channel,
                    RejectReason::UnsupportedVersion,
                    format!(
                        "version {got} is not supported; this titan speaks {}",
                        shared_protocol::wire::PROTOCOL_VERSION
                    ),
                );
            }
            VerifyRequest::Invalid(e) => {
                tracing::debug!(%peer, "malformed verify request: {e}");
                self.reject(channel, RejectReason::Malformed, e.to_string());
            }
            VerifyRequest::Raw(_) | VerifyRequest::RawUnframed(_) => {
                self.reject(channel, RejectReason::Malformed, "not a request".into());
            }
            VerifyRequest::Msg(Request::PullWork { model, .. }) => {
                self.book().pulled_work(&peer);
                if model != self.model_id {
                    let detail = format!("this titan serves {}", self.model_id);
                    self.reject(channel, RejectReason::UnknownModel, detail);
                    return;
                }
                if let Some(unit) = self.queued.pop_front() {
                    self.assign(peer, channel, unit);
                    return;
                }
                let mine = self.held.iter().filter(|h| h.peer == peer).count();
                if self.held.len() >= MAX_HELD_PULLS || mine >= MAX_PULLS_PER_PEER {
                    self.reject(
                        channel,
                        RejectReason::Busy,
                        "too many pulls in flight".into(),
                    );
                    return;
                }
                self.held.push_back(HeldPull {
                    peer,
                    channel,
                    since: Instant::now(),
                });
                self.idle_scouts.fetch_add(1, Relaxed);
            }
            VerifyRequest::Msg(Request::Drafts(d)) => self.on_drafts(peer, d, channel),
        }
    }

    fn on_drafts(&mut self, peer: PeerId, d: Drafts, channel: ResponseChannel<Response>) {
        if let Err(e) = self.scouts.take_drafts(&peer, &d) {
            self.reject(channel, RejectReason::UnknownWork, e.to_string());
            return;
        }
        let msg = Inbox::Mesh(FromMesh::Drafts {
            work: d.work,
            tokens: d.tokens.clone(),
        });
        if self.inbox.try_send(msg).is_err() {
            self.reject(
                channel,
                RejectReason::Busy,
                "the titan is overloaded".into(),
            );
            return;
        }
        self.awaiting.insert(
            d.work,
            Awaiting {
                peer,
                session: d.session,
                channel,
                drafts: d.tokens,
            },
        );
    }

    fn assign(&mut self, peer: PeerId, channel: ResponseChannel<Response>, unit: WorkUnit) {
        let work = self.scouts.work_for(peer, &unit);
        let id = unit.work;
        if self
            .swarm
            .behaviour_mut()
            .verify
            .send_response(channel, Response::Work(work))
            .is_err()
        {
            self.scouts.unassign(id);
            self.abandon(id, format!("scout {peer} went away before taking the work"));
        }
    }

    fn abandon(&self, work: u64, reason: String) {
        let _ = self
            .inbox
            .try_send(Inbox::Mesh(FromMesh::Abandoned { work, reason }));
    }

    fn on_scheduler(&mut self, msg: ToMesh) {
        match msg {
            ToMesh::Offer(unit) => {
                while let Some(pull) = self.held.pop_front() {
                    if self.swarm.is_connected(&pull.peer) {
                        self.assign(pull.peer, pull.channel, unit);
                        return;
                    }
                }
                if self.queued.len() < MAX_QUEUED {
                    self.queued.push_back(unit);
                } else {
                    self.abandon(unit.work, "no scout took the work".into());
                }
            }
            ToMesh::Verdict {
                work,
                accepted,
                next,
                done,
                next_unit,
            } => {
                let Some(a) = self.awaiting.remove(&work) else {
                    if let Some(u) = next_unit {
                        self.abandon(u.work, "the scout's stream is gone".into());
                    }
                    return;
                };
                self.book().drafted(&a.peer, a.drafts.len(), accepted);
                let key = (a.peer, a.session);
                if self.results.len() < MAX_KNOWN_CONTEXTS || self.results.contains_key(&key) {
                    let r = self.results.entry(key).or_default();
                    r.0 += a.drafts.len() as u64;
                    r.1 += accepted as u64;
                }
                self.scouts
                    .verdict(&a.peer, a.session, &a.drafts, accepted, next, done);
                if done {
                    self.publish_result(key);
                }
                let next_id = next_unit.as_ref().map(|u| u.work);
                let next_work = next_unit.map(|u| self.scouts.work_for(a.peer, &u));
                let verdict = VerdictMsg {
                    work,
                    session: a.session,
                    accepted: accepted.min(255) as u8,
                    next_token: next,
                    done,
                    next: next_work,
                };
                let sent = self
                    .swarm
                    .behaviour_mut()
                    .verify
                    .send_response(a.channel, Response::Verdict(verdict));
                if sent.is_err()
                    && let Some(id) = next_id
                {
                    self.scouts.unassign(id);
                    self.abandon(id, format!("scout {} went away", a.peer));
                }
            }
            ToMesh::Cancel { work } => {
                self.scouts.unassign(work);
                self.queued.retain(|u| u.work != work);
                if let Some(a) = self.awaiting.remove(&work) {
                    self.reject(
                        a.channel,
                        RejectReason::UnknownWork,
                        "the deadline passed".into(),
                    );
                }
            }
            ToMesh::Disconnect { peer } => {
                // The close comes back as ConnectionClosed, which takes back its units.
                if self.swarm.disconnect_peer_id(peer).is_err() {
                    tracing::debug!(%peer, "asked to disconnect a peer that is not connected");
                }
            }
            ToMesh::Publish { topic, message } => {
                let topic = gossipsub::IdentTopic::new(topic);
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, message.encode())
                {
                    tracing::debug!("gossip publish: {e}");
                }
            }
        }
    }

    /// Answers pulls held too long (or whose scout left) with `NoWork`,
    /// unless the scheduler already claimed them (a unit is on its way).
    fn expire_pulls(&mut self) {
        let now = Instant::now();
        let mut keep = VecDeque::with_capacity(self.held.len());
        while let Some(pull) = self.held.pop_front() {
            let stale =
                now.duration_since(pull.since) >= PULL_HOLD || !self.swarm.is_connected(&pull.peer);
            if stale && claim(&self.idle_scouts) {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .verify
                    .send_response(pull.channel, Response::NoWork { retry_after_ms: 0 });
            } else {
                keep.push_back(pull);
            }
        }
        self.held = keep;
    }

    fn peer_gone(&mut self, peer: PeerId) {
        let mut gone = self.scouts.peer_gone(&peer);
        gone.extend(
            self.awaiting
                .iter()
                .filter(|(_, a)| a.peer == peer)
                .map(|(w, _)| *w),
        );
        for work in gone {
            self.awaiting.remove(&work);
            self.abandon(work, format!("scout {peer} disconnected"));
        }
        let ended: Vec<_> = self
            .results
            .keys()
            .filter(|(p, _)| *p == peer)
            .copied()
            .collect();
        for key in ended {
            self.publish_result(key);
        }
        self.expire_pulls();
    }

    fn discover(&mut self) {
        if self.bootstrapped {
            let me = self.shared.peer_id;
            self.swarm.behaviour_mut().kad.get_closest_peers(me);
        } else {
            self.bootstrapped = self.swarm.behaviour_mut().kad.bootstrap().is_ok();
        }
    }

    /// Tells the mesh what a scout's drafting for a session came to.
    fn publish_result(&mut self, key: (PeerId, u64)) {
        let Some((drafted, accepted)) = self.results.remove(&key) else {
            return;
        };
        let message = GossipMessage::WorkResult {
            session: key.1,
            scout: key.0.to_bytes(),
            drafted: drafted.min(u64::from(u32::MAX)) as u32,
            accepted: accepted.min(u64::from(u32::MAX)) as u32,
        };
        let _ = self.swarm.behaviour_mut().gossipsub.publish(
            gossipsub::IdentTopic::new(TOPIC_WORK_RESULT),
            message.encode(),
        );
    }

    fn publish_offer(&mut self) {
        let waiting = self.metrics.requests_running.load(Relaxed);
        if waiting == 0 || self.book().connected_scouts() == 0 {
            return;
        }
        let message = GossipMessage::WorkOffer {
            model: self.model_id.clone(),
            waiting: waiting.min(u64::from(u32::MAX)) as u32,
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(gossipsub::IdentTopic::new(TOPIC_WORK), message.encode());
    }
}
