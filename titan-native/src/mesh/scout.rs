//! The native scout: drafts for titans with a small model on this machine,
//! speaking exactly what the browser scout speaks. It opens every stream:
//! `PullWork` (held by the titan until work comes), then `Drafts` for each
//! unit, whose answer carries the verdict and usually the session's next
//! unit. It finds titans serving its model through the DHT (provider
//! records) from the address it was given, and drafts for all of them, one
//! unit at a time. The protocol's rules (what it holds of each session, when
//! it pulls, how verdicts apply) are [`ScoutState`]'s, shared with the
//! browser scout; this file is the swarm and the drafting thread around it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use kernels_wgsl::{GpuModel, GpuSession};
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad};
use shared_protocol::drafting::scout::{DraftJob, Drafted, ScoutAction, ScoutConfig, ScoutState};
use shared_protocol::sampling::SamplingParams;
use shared_protocol::wire::gossip::GossipMessage;
use shared_protocol::wire::verify::{Response, VERIFY_PROTOCOL};
use tokio::sync::mpsc;

use super::behaviour::{Behaviour, BehaviourEvent, Limits, build_swarm};
use super::codec::VerifyRequest;
use super::{Role, identity, model_key};

use crate::device::{Engine, draft_on_gpu};
use crate::engine::{Model, Session};

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
    let (jobs_tx, jobs_rx) = std::sync::mpsc::sync_channel::<DraftJob<PeerId>>(4);
    let (done_tx, done_rx) = mpsc::channel::<Drafted<PeerId>>(4);
    std::thread::Builder::new()
        .name("scout-drafter".into())
        .spawn(move || drafter_thread(model, jobs_rx, done_tx))
        .context("starting the drafting thread")?;
    let state = ScoutState::new(ScoutConfig {
        model: options.model_id.clone(),
        max_k: options.max_k,
        max_sessions: MAX_SESSIONS,
    });
    let scout = Scout {
        swarm,
        options,
        stats,
        state,
        started: Instant::now(),
        jobs: jobs_tx,
        bootstrapped: false,
        dialed: HashSet::new(),
    };
    scout.run(done_rx).await
}

/// The swarm side of the scout: turns swarm events into [`ScoutState`]
/// inputs and carries out its actions.
struct Scout {
    swarm: Swarm<Behaviour>,
    options: ScoutOptions,
    stats: Arc<ScoutStats>,
    state: ScoutState<PeerId>,
    /// The state's clock starts here.
    started: Instant,
    jobs: std::sync::mpsc::SyncSender<DraftJob<PeerId>>,
    bootstrapped: bool,
    dialed: HashSet<PeerId>,
}

impl Scout {
    async fn run(mut self, mut done: mpsc::Receiver<Drafted<PeerId>>) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut discovery = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                d = done.recv() => match d {
                    Some(d) => self.state.drafted(d),
                    None => anyhow::bail!("the drafting thread stopped"),
                },
                _ = tick.tick() => {
                    let now = self.now_ms();
                    self.state.poll(now);
                }
                _ = discovery.tick() => self.discover(),
            }
            self.act();
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Carries out what the state asks for.
    fn act(&mut self) {
        while let Some(action) = self.state.next_action() {
            match action {
                ScoutAction::Send { titan, request } => {
                    // A titan that is not connected is dialed; if that
                    // fails, the failure comes back as an event.
                    self.swarm
                        .behaviour_mut()
                        .verify
                        .send_request(&titan, VerifyRequest::Msg(request));
                }
                ScoutAction::Draft(job) => {
                    // One job is out at a time, so the channel has room; if
                    // the drafter is gone, answer with no drafts.
                    if let Err(e) = self.jobs.try_send(job) {
                        let job = match e {
                            std::sync::mpsc::TrySendError::Full(j)
                            | std::sync::mpsc::TrySendError::Disconnected(j) => j,
                        };
                        self.state.drafted(job.answer(Vec::new()));
                    }
                }
            }
        }
        let c = self.state.counts();
        self.stats.units.store(c.units, Relaxed);
        self.stats.drafted.store(c.drafted, Relaxed);
        self.stats.accepted.store(c.accepted, Relaxed);
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
                if self.state.titan_lost(&peer_id) {
                    tracing::info!(%peer_id, "titan disconnected");
                }
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
        let now = self.now_ms();
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
                if titan && self.state.titan_found(peer_id, now) {
                    println!("scout: drafting for titan {peer_id}");
                    tracing::info!(%peer_id, "drafting for titan");
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
                    if let (GossipMessage::WorkOffer { .. }, Some(src)) = (&m, message.source) {
                        self.state.work_offered(&src, now);
                    }
                }
            }
            BehaviourEvent::Verify(request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                if let Response::Rejected { reason, detail } = &response {
                    tracing::info!(%peer, ?reason, "titan refused: {detail}");
                }
                self.state.response(&peer, response, now);
            }
            BehaviourEvent::Verify(request_response::Event::OutboundFailure {
                peer,
                error,
                ..
            }) => {
                tracing::debug!(%peer, "verify request failed: {error}");
                self.state.request_failed(&peer, now);
            }
            _ => {}
        }
    }

    fn discover(&mut self) {
        if self.bootstrapped {
            let key = model_key(&self.options.model_id);
            self.swarm.behaviour_mut().kad.get_providers(key);
        }
        // Keep trying the addresses we were given while nothing answers.
        if !self.state.has_titans() {
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
    jobs: std::sync::mpsc::Receiver<DraftJob<PeerId>>,
    done: mpsc::Sender<Drafted<PeerId>>,
) {
    match engine {
        DraftEngine::Cpu(model) => {
            serve_jobs(
                jobs,
                done,
                MAX_SESSIONS,
                |job, session: &mut Session| {
                    draft(&model, session, &job.context, &job.params, job.k)
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
    jobs: std::sync::mpsc::Receiver<DraftJob<PeerId>>,
    done: mpsc::Sender<Drafted<PeerId>>,
    max_sessions: usize,
    mut draft: impl FnMut(&DraftJob<PeerId>, &mut S) -> Vec<u32>,
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
        if done.blocking_send(job.answer(drafts)).is_err() {
            return;
        }
    }
}

/// Samples `k` tokens after `context` with the request's shared randomness at the
/// positions the titan will verify: [`kernels_cpu::model::CpuModel::draft`], the browser
/// scout's CPU drafting, on the model's thread pool.
fn draft(
    model: &Model,
    session: &mut Session,
    context: &[u32],
    params: &SamplingParams,
    k: usize,
) -> Vec<u32> {
    model
        .install(|| model.draft(session, context, params, k))
        .unwrap_or_else(|e| {
            tracing::warn!("drafting failed: {e}");
            Vec::new()
        })
}
