//! The titan's libp2p node and the native scout (DESIGN.md §4).
//!
//! - [`identity`]: the ed25519 key and the webrtc-direct certificate,
//!   persisted in the data dir (stable PeerId and certhash).
//! - [`codec`]: `/shard/verify/1` framing over the wire messages of
//!   [`shared_protocol::wire`].
//! - [`behaviour`]: the one `NetworkBehaviour` composition (connection
//!   limits, identify, ping, kademlia, gossipsub, request-response) and the
//!   swarm with its transports (TCP and WebSocket with noise + yamux,
//!   webrtc-direct).
//! - [`peers`]: what a titan knows of its peers, for `/v1/system/peers`.
//! - [`work`]: the titan's side of remote drafting: work units offered to
//!   scouts, their deadlines and verdicts, between the swarm task and the
//!   scheduler (bounded channels both ways).
//! - [`node`]: the titan's swarm task.
//! - [`scout`]: the native scout, speaking exactly the protocol the browser
//!   scout speaks (it opens every stream).
//! - [`probe`]: a client for measurements and bad-input tests.

pub mod behaviour;
pub mod codec;
pub mod identity;
pub mod node;
pub mod peers;
pub mod probe;
pub mod scout;
pub mod work;

use libp2p::Multiaddr;

/// What a node is in the mesh, told to others through identify's agent
/// version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Titan,
    Scout,
    Probe,
    /// Another libp2p implementation or an unidentified peer.
    Unknown,
}

impl Role {
    pub fn agent_version(self) -> String {
        let name = match self {
            Role::Titan => "shard-titan",
            Role::Scout => "shard-scout",
            Role::Probe => "shard-probe",
            Role::Unknown => "shard-unknown",
        };
        format!("{name}/{}", env!("CARGO_PKG_VERSION"))
    }

    pub fn from_agent_version(agent: &str) -> Self {
        match agent.split('/').next() {
            Some("shard-titan") => Role::Titan,
            Some("shard-scout") => Role::Scout,
            Some("shard-probe") => Role::Probe,
            _ => Role::Unknown,
        }
    }
}

/// identify's protocol version string of Shard nodes.
pub const IDENTIFY_PROTOCOL: &str = "/shard/1.0.0";

/// The kademlia protocol of the Shard DHT (kept apart from the IPFS DHT).
pub const KAD_PROTOCOL: &str = "/shard/kad/1.0.0";

/// The DHT key under which titans serving `model` provide.
pub fn model_key(model: &str) -> libp2p::kad::RecordKey {
    libp2p::kad::RecordKey::new(&format!("/shard/model/{model}"))
}

/// The listen addresses DESIGN.md §4 gives a titan by default.
pub fn default_listen() -> Vec<Multiaddr> {
    [
        "/ip4/0.0.0.0/tcp/4101",
        "/ip4/0.0.0.0/tcp/4102/ws",
        "/ip4/0.0.0.0/udp/9090/webrtc-direct",
    ]
    .iter()
    .filter_map(|a| a.parse().ok())
    .collect()
}
