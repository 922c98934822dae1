//! The titan's libp2p node and the native scout (DESIGN.md §4).
//!
//! - [`identity`]: the ed25519 key and the webrtc-direct certificate,
//!   persisted in the data dir (stable PeerId and certhash).
//! - [`codec`]: `/shard/verify/1` framing over the wire messages of
//!   [`shared_protocol::wire`] (shared with the browser scout).
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
pub mod identity;
pub mod node;
pub mod peers;
pub mod probe;
pub mod scout;
pub mod work;

use libp2p::Multiaddr;

pub use shared_protocol::mesh::codec;
pub use shared_protocol::mesh::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, Role};

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
