//! The native scout: drafts for titans with a small model on this machine,
//! speaking exactly what the browser scout speaks. It opens every stream:
//! `PullWork` (held by the titan until work comes), then `Drafts` for each
//! unit, whose answer carries the verdict and usually the session's next
//! unit. It finds titans serving its model through the DHT (provider
//! records) from the address it was given, and drafts for all of them, one
//! unit at a time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use kernels_wgsl::{GpuModel, GpuSession};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad};
use shared_protocol::sampling::{SamplingParams, sample_token};
use shared_protocol::wire::gossip::GossipMessage;
use shared_protocol::wire::verify::{Drafts, Request, Response, VERIFY_PROTOCOL, Work};
use tokio::sync::mpsc;

use super::behaviour::{Behaviour, BehaviourEvent, Limits, build_swarm};
use super::codec::VerifyRequest;
use super::{Role, identity, model_key};

use crate::device::{Engine, draft_on_gpu};
use crate::engine::{Model, PassBuffers, Session};
use crate::generate::feed_prompts;

/// Sessions whose tokens (and KV caches) a scout keeps.
const MAX_SESSIONS: usize = 64;

/// Draft caches a GPU scout keeps: each is allocated whole on the GPU
/// ([`crate::device::GPU_SESSION_POSITIONS`] positions), unlike the CPU's, which grow.
const MAX_GPU_SESSIONS: usize = 4;

#[derive(Clone, Debug)]
pub struct ScoutOptions {
    pub connect: Vec<Multiaddr>,
    /// The model id titans serve (what `PullWork` asks for).
    pub model_id: String,
    /// Keeps the identity across runs when set.
    pub data_dir: Option<std::path::PathBuf>,
    pub max_k: u8,
}

/// Counters of a scout's work.
#[derive(Debug, Default)]
pub struct ScoutStats {
    pub units: AtomicU64,
    pub drafted: AtomicU64,
    pub accepted: AtomicU64,
}

struct DraftJob {
    titan: PeerId,
    work: u64,
    session: u64,
    context: Vec<u32>,
    params: SamplingParams,
    k: usize,
}

struct DraftDone {
    titan: PeerId,
    work: u64,
    session: u64,
    position: u64,
    drafts: Vec<u32>,
}

enum Pending {
    Pull,
    Drafts {
        session: u64,
        position: u64,
        drafts: Vec<u32>,
    },
}

#[derive(Default)]
struct Titan {
    /// A request is outstanding (one at a time per titan).
    busy: bool,
    /// Pull again at this time when idle.
    next_pull: Option<Instant>,
}

/// Runs the scout until the process is stopped.
pub async fn run(options: ScoutOptions, model: DraftEngine, stats: Arc<ScoutStats>) -> Result<()> {
    let key = match &options.data_dir {
        Some(dir) => identity::load_or_create_keypair(dir)?,
        None => libp2p::identity::Keypair::generate_ed25519(),
    };
    let cert = libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())
        .context("webrtc certificate")?;
    let mut swarm = build_swarm(key, Role::Scout, cert, Limits::default()).await?;
    for addr in &options.connect {
        super::behaviour::prepare_dial(&mut swarm, addr)?;
    }
    for addr in &options.connect {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        swarm
            .dial(addr.clone())
            .with_context(|| format!("dialing {addr}"))?;
    }
    let (jobs_tx, jobs_rx) = std::sync::mpsc::sync_channel::<DraftJob>(4);
    let (done_tx, done_rx) = mpsc::channel::<DraftDone>(4);
    std::thread::Builder::new()
        .name("scout-drafter".into())
        .spawn(move || drafter_thread(model, jobs_rx, done_tx))
        .context("starting the drafting thread")?;
    let scout = Scout {
        swarm,
        options,
        stats,
        titans: HashMap::new(),
        pending: HashMap::new(),
        sessions: HashMap::new(),
        queue: VecDeque::new(),
        drafting: false,
        jobs: jobs_tx,
        bootstrapped: false,
        dialed: HashSet::new(),
    };
    scout.run(done_rx).await
}

struct Scout {
    swarm: Swarm<Behaviour>,
    options: ScoutOptions,
    stats: Arc<ScoutStats>,
    titans: HashMap<PeerId, Titan>,
    pending: HashMap<OutboundRequestId, (PeerId, Pending)>,
    /// Each session's tokens as this scout holds them.
    sessions: HashMap<(PeerId, u64), Vec<u32>>,
    /// Work waiting for the drafting thread.
    queue: VecDeque<(PeerId, Work)>,
    drafting: bool,
    jobs: std::sync::mpsc::SyncSender<DraftJob>,
    bootstrapped: bool,
    dialed: HashSet<PeerId>,
}

impl Scout {
    async fn run(mut self, mut done: mpsc::Receiver<DraftDone>) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut discovery = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                d = done.recv() => match d {
                    Some(d) => self.on_drafted(d),
                    None => anyhow::bail!("the drafting thread stopped"),
                },
                _ = tick.tick() => self.pull_due(),
                _ = discovery.tick() => self.discover(),
            }
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                tracing::info!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if self.titans.remove(&peer_id).is_some() {
                    tracing::info!(%peer_id, "titan disconnected");
                }
                self.sessions.retain(|(p, _), _| *p != peer_id);
                self.queue.retain(|(p, _)| *p != peer_id);
                self.dialed.remove(&peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, "dial failed: {error}");
                if let Some(p) = peer_id {
                    self.dialed.remove(&p);
                }
            }
            SwarmEvent::Behaviour(e) => self.on_behaviour(e),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let behaviour = self.swarm.behaviour_mut();
                if behaviour.learn_dht_peer(&peer_id, &info, &mut self.bootstrapped) {
                    behaviour
                        .kad
                        .get_providers(model_key(&self.options.model_id));
                }
                let titan = Role::from_agent_version(&info.agent_version) == Role::Titan
                    && info.protocols.iter().any(|p| p.as_ref() == VERIFY_PROTOCOL);
                if titan && !self.titans.contains_key(&peer_id) {
                    println!("scout: drafting for titan {peer_id}");
                    tracing::info!(%peer_id, "drafting for titan");
                    self.titans.insert(
                        peer_id,
                        Titan {
                            busy: false,
                            next_pull: Some(Instant::now()),
                        },
                    );
                }
            }
            BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result:
                    kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                        providers,
                        ..
                    })),
                ..
            }) => {
                for p in providers {
                    if p != *self.swarm.local_peer_id()
                        && !self.swarm.is_connected(&p)
                        && self.dialed.insert(p)
                    {
                        tracing::info!(peer = %p, "found a titan serving the model; dialing");
                        let _ = self.swarm.dial(p);
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. }) => {
                if let Ok(m) = GossipMessage::decode(&message.data) {
                    tracing::info!(topic = %message.topic, "gossip: {m:?}");
                    println!("scout: gossip on {}: {m:?}", message.topic);
                    if let (GossipMessage::WorkOffer { .. }, Some(src)) = (&m, message.source)
                        && let Some(t) = self.titans.get_mut(&src)
                        && !t.busy
                    {
                        t.next_pull = Some(Instant::now());
                    }
                }
            }
            BehaviourEvent::Verify(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => self.on_response(peer, request_id, response),
            BehaviourEvent::Verify(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                tracing::debug!(%peer, "verify request failed: {error}");
                self.pending.remove(&request_id);
                self.idle(peer, Duration::from_millis(500));
            }
            _ => {}
        }
    }

    fn idle(&mut self, titan: PeerId, after: Duration) {
        if let Some(t) = self.titans.get_mut(&titan) {
            t.busy = false;
            t.next_pull = Some(Instant::now() + after);
        }
    }

    fn send(&mut self, titan: PeerId, request: Request, pending: Pending) {
        let id = self
            .swarm
            .behaviour_mut()
            .verify
            .send_request(&titan, VerifyRequest::Msg(request));
        self.pending.insert(id, (titan, pending));
        if let Some(t) = self.titans.get_mut(&titan) {
            t.busy = true;
            t.next_pull = None;
        }
    }

    fn pull_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .titans
            .iter()
            .filter(|(_, t)| !t.busy && t.next_pull.is_some_and(|at| at <= now))
            .map(|(p, _)| *p)
            .collect();
        for titan in due {
            let request = Request::PullWork {
                model: self.options.model_id.clone(),
                max_k: self.options.max_k,
            };
            self.send(titan, request, Pending::Pull);
        }
    }

    fn on_response(&mut self, titan: PeerId, id: OutboundRequestId, response: Response) {
        let Some((_, pending)) = self.pending.remove(&id) else {
            return;
        };
        match response {
            Response::Work(work) => self.take_work(titan, work),
            Response::NoWork { retry_after_ms } => {
                self.idle(titan, Duration::from_millis(u64::from(retry_after_ms)));
            }
            Response::Verdict(v) => {
                if let Pending::Drafts {
                    session,
                    position,
                    drafts,
                } = pending
                {
                    let accepted = usize::from(v.accepted).min(drafts.len());
                    self.stats.accepted.fetch_add(accepted as u64, Relaxed);
                    let key = (titan, session);
                    if v.done {
                        self.sessions.remove(&key);
                    } else if let Some(tokens) = self.sessions.get_mut(&key) {
                        tokens.truncate(position as usize);
                        tokens.extend_from_slice(&drafts[..accepted]);
                        tokens.push(v.next_token);
                    }
                }
                match v.next {
                    Some(work) => self.take_work(titan, work),
                    None => self.idle(titan, Duration::ZERO),
                }
            }
            Response::Rejected { reason, detail } => {
                tracing::info!(%titan, ?reason, "titan refused: {detail}");
                self.idle(titan, Duration::from_millis(200));
            }
        }
    }

    /// Brings the session's tokens up to the unit's context and queues it.
    fn take_work(&mut self, titan: PeerId, work: Work) {
        let key = (titan, work.session);
        if !self.sessions.contains_key(&key)
            && self.sessions.len() >= MAX_SESSIONS
            && let Some(k) = self.sessions.keys().next().copied()
        {
            self.sessions.remove(&k);
        }
        let tokens = self.sessions.entry(key).or_default();
        let start = work.context_start as usize;
        if start > tokens.len() {
            // We lost the beginning of this session: draft nothing (the
            // titan decodes on its own) rather than guess.
            tracing::debug!(session = work.session, "context gap; sending no drafts");
            tokens.clear();
            let request = Request::Drafts(Drafts {
                work: work.work,
                session: work.session,
                position: work.position,
                tokens: Vec::new(),
            });
            self.send(
                titan,
                request,
                Pending::Drafts {
                    session: work.session,
                    position: work.position,
                    drafts: Vec::new(),
                },
            );
            return;
        }
        tokens.truncate(start);
        tokens.extend_from_slice(&work.context);
        if let Some(t) = self.titans.get_mut(&titan) {
            t.busy = true;
        }
        self.queue.push_back((titan, work));
        self.start_drafting();
    }

    fn start_drafting(&mut self) {
        if self.drafting {
            return;
        }
        while let Some((titan, work)) = self.queue.pop_front() {
            let Some(context) = self.sessions.get(&(titan, work.session)).cloned() else {
                continue;
            };
            let job = DraftJob {
                titan,
                work: work.work,
                session: work.session,
                context,
                params: work.sampling,
                k: usize::from(work.k),
            };
            if self.jobs.try_send(job).is_ok() {
                self.drafting = true;
            }
            return;
        }
    }

    fn on_drafted(&mut self, d: DraftDone) {
        self.drafting = false;
        self.stats.units.fetch_add(1, Relaxed);
        self.stats.drafted.fetch_add(d.drafts.len() as u64, Relaxed);
        if self.swarm.is_connected(&d.titan) {
            let request = Request::Drafts(Drafts {
                work: d.work,
                session: d.session,
                position: d.position,
                tokens: d.drafts.clone(),
            });
            self.send(
                d.titan,
                request,
                Pending::Drafts {
                    session: d.session,
                    position: d.position,
                    drafts: d.drafts,
                },
            );
        }
        self.start_drafting();
    }

    fn discover(&mut self) {
        if self.bootstrapped {
            let key = model_key(&self.options.model_id);
            self.swarm.behaviour_mut().kad.get_providers(key);
        }
        // Keep trying the addresses we were given while nothing answers.
        if self.titans.is_empty() {
            for addr in self.options.connect.clone() {
                let _ = self.swarm.dial(addr);
            }
        }
    }
}

/// Owns the draft model and the sessions' KV caches; drafts one unit at a
/// time with the unit's shared randomness.
/// The model the scout drafts with, and where it runs.
pub enum DraftEngine {
    Cpu(Box<Model>),
    /// On a GPU (`titan scout --device gpu`).
    Gpu(Box<GpuModel>),
}

fn drafter_thread(
    engine: DraftEngine,
    jobs: std::sync::mpsc::Receiver<DraftJob>,
    done: mpsc::Sender<DraftDone>,
) {
    match engine {
        DraftEngine::Cpu(model) => {
            let mut buffers = model.new_pass_buffers();
            serve_jobs(
                jobs,
                done,
                MAX_SESSIONS,
                |job, session: &mut Session| {
                    draft(
                        &model,
                        &mut buffers,
                        session,
                        &job.context,
                        &job.params,
                        job.k,
                    )
                },
                || Ok::<_, std::convert::Infallible>(model.new_session()),
            );
        }
        DraftEngine::Gpu(model) => {
            let capacity = Engine::capacity(model.as_ref());
            serve_jobs(
                jobs,
                done,
                MAX_GPU_SESSIONS,
                |job, session: &mut GpuSession| {
                    draft_on_gpu(&model, session, &job.context, &job.params, job.k).unwrap_or_else(
                        |e| {
                            tracing::warn!("drafting on the GPU failed: {e}");
                            Vec::new()
                        },
                    )
                },
                || model.new_session(capacity),
            );
        }
    }
}

/// Answers draft jobs one after another, keeping one draft cache per (titan, session)
/// (all dropped past `max_sessions`).
fn serve_jobs<S, E: std::fmt::Display>(
    jobs: std::sync::mpsc::Receiver<DraftJob>,
    done: mpsc::Sender<DraftDone>,
    max_sessions: usize,
    mut draft: impl FnMut(&DraftJob, &mut S) -> Vec<u32>,
    new_session: impl Fn() -> Result<S, E>,
) {
    let mut caches: HashMap<(PeerId, u64), S> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let key = (job.titan, job.session);
        if !caches.contains_key(&key) && caches.len() >= max_sessions {
            caches.clear();
        }
        let drafts = match caches.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => draft(&job, e.get_mut()),
            std::collections::hash_map::Entry::Vacant(e) => match new_session() {
                Ok(session) => draft(&job, e.insert(session)),
                Err(err) => {
                    tracing::warn!("no draft session: {err}");
                    Vec::new()
                }
            },
        };
        let result = DraftDone {
            titan: job.titan,
            work: job.work,
            session: job.session,
            position: job.context.len() as u64,
            drafts,
        };
        if done.blocking_send(result).is_err() {
            return;
        }
    }
}

/// Samples `k` tokens after `context` with the request's shared randomness
/// at the positions the titan will verify.
fn draft(
    model: &Model,
    buffers: &mut PassBuffers,
    session: &mut Session,
    context: &[u32],
    params: &SamplingParams,
    k: usize,
) -> Vec<u32> {
    let mut tokens = context.to_vec();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && !tokens.is_empty() && tokens.len() < model.config.n_ctx {
        let logits = match feed_prompts(model, buffers, &mut [(&mut *session, tokens.as_slice())]) {
            Ok(mut l) => l.pop().unwrap_or_default(),
            Err(e) => {
                tracing::warn!("drafting failed: {e}");
                break;
            }
        };
        if logits.is_empty() {
            break;
        }
        let t = sample_token(&logits, params, tokens.len() as u64);
        out.push(t);
        tokens.push(t);
    }
    out
}
