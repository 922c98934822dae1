//! What a node knows of its peers and of itself, shared with the HTTP API
//! (`/v1/system/peers`, `/v1/system/topology`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libp2p::{Multiaddr, PeerId};
use serde::Serialize;

use super::Role;

/// Most peers kept in the book (connected ones are never dropped; among
/// the others the oldest go first).
pub const MAX_PEERS: usize = 1024;
/// Gossip messages remembered for `/v1/system/gossip`.
pub const GOSSIP_LOG: usize = 64;

fn role_name<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.name())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Clone, Debug, Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    #[serde(serialize_with = "role_name")]
    pub role: Role,
    pub agent_version: Option<String>,
    pub addresses: Vec<String>,
    pub connected: bool,
    /// Unix seconds of the first of the current connections.
    pub connected_since: Option<u64>,
    pub rtt_ms: Option<f64>,
    /// Draft tokens this peer proposed to us and how many we accepted.
    pub drafted: u64,
    pub accepted: u64,
    pub acceptance_rate: Option<f64>,
    /// Work pulls (`PullWork`) this peer sent us: a scout asking for work.
    pub pulls: u64,
    /// Filled by the trust issue (golden tickets, timeliness).
    pub reputation: Option<f64>,
    /// Protocols it announced through identify.
    pub protocols: Vec<String>,
    #[serde(skip)]
    connections: u32,
    #[serde(skip)]
    last_seen: u64,
}

impl PeerInfo {
    fn new(peer: &PeerId) -> Self {
        Self {
            peer_id: peer.to_string(),
            role: Role::Unknown,
            agent_version: None,
            addresses: Vec::new(),
            connected: false,
            connected_since: None,
            rtt_ms: None,
            drafted: 0,
            pulls: 0,
            accepted: 0,
            acceptance_rate: None,
            reputation: None,
            protocols: Vec::new(),
            connections: 0,
            last_seen: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GossipEntry {
    pub topic: String,
    pub source: Option<String>,
    pub message_id: String,
    pub message: String,
    pub received_at: u64,
}

/// The peer book and the node's own description.
#[derive(Debug, Default)]
pub struct PeerBook {
    peers: BTreeMap<PeerId, PeerInfo>,
    pub gossip: VecDeque<GossipEntry>,
}

impl PeerBook {
    fn entry(&mut self, peer: &PeerId) -> &mut PeerInfo {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_PEERS {
            let oldest = self
                .peers
                .iter()
                .filter(|(_, p)| !p.connected)
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                self.peers.remove(&id);
            }
        }
        let info = self
            .peers
            .entry(*peer)
            .or_insert_with(|| PeerInfo::new(peer));
        info.last_seen = unix_secs(SystemTime::now());
        info
    }

    pub fn connected(&mut self, peer: &PeerId, addr: &Multiaddr) {
        let p = self.entry(peer);
        p.connections += 1;
        if !p.connected {
            p.connected = true;
            p.connected_since = Some(unix_secs(SystemTime::now()));
        }
        add_address(p, addr);
    }

    pub fn disconnected(&mut self, peer: &PeerId, remaining: u32) {
        let p = self.entry(peer);
        p.connections = remaining;
        if remaining == 0 {
            p.connected = false;
            p.connected_since = None;
        }
    }

    /// A peer that pulls work is a scout, whatever identify said or has not yet
    /// said: a browser's identify answer needs a stream the titan opens, which
    /// rust-libp2p's browser WebRTC transport may stall on (the scout opens every
    /// `/shard/verify/1` stream itself).
    pub fn pulled_work(&mut self, peer: &PeerId) {
        let p = self.entry(peer);
        p.pulls += 1;
        if p.role == Role::Unknown {
            p.role = Role::Scout;
        }
    }

    pub fn identified(&mut self, peer: &PeerId, info: &libp2p::identify::Info) {
        let p = self.entry(peer);
        p.role = Role::from_agent_version(&info.agent_version);
        p.agent_version = Some(info.agent_version.chars().take(128).collect());
        for a in info.listen_addrs.iter().take(16) {
            add_address(p, a);
        }
        p.protocols = info
            .protocols
            .iter()
            .take(64)
            .map(|s| s.to_string())
            .collect();
    }

    pub fn rtt(&mut self, peer: &PeerId, rtt: Duration) {
        self.entry(peer).rtt_ms = Some(rtt.as_secs_f64() * 1e3);
    }

    pub fn drafted(&mut self, peer: &PeerId, drafted: usize, accepted: usize) {
        let p = self.entry(peer);
        p.drafted += drafted as u64;
        p.accepted += accepted as u64;
        if p.drafted > 0 {
            p.acceptance_rate = Some(p.accepted as f64 / p.drafted as f64);
        }
    }

    pub fn role(&self, peer: &PeerId) -> Role {
        self.peers.get(peer).map_or(Role::Unknown, |p| p.role)
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.connected)
    }

    /// Peers we are connected to or have heard of, connected first.
    pub fn list(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.values().cloned().collect();
        v.sort_by_key(|p| !p.connected);
        v
    }

    pub fn connected_scouts(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.connected && p.role == Role::Scout)
            .count()
    }

    pub fn gossip_received(&mut self, entry: GossipEntry) {
        if self.gossip.len() >= GOSSIP_LOG {
            self.gossip.pop_front();
        }
        self.gossip.push_back(entry);
    }
}

fn add_address(p: &mut PeerInfo, addr: &Multiaddr) {
    let s = addr.to_string();
    if !p.addresses.contains(&s) {
        if p.addresses.len() >= 16 {
            p.addresses.remove(0);
        }
        p.addresses.push(s);
    }
}

pub fn now_secs() -> u64 {
    unix_secs(SystemTime::now())
}
