//! The one `NetworkBehaviour` composition of every Shard node, and the
//! swarm with its transports: TCP and WebSocket (noise + yamux) and
//! webrtc-direct.

use std::time::Duration;

use anyhow::{Context, Result};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    StreamProtocol, Swarm, Transport, connection_limits, gossipsub, identify, kad, noise, ping,
    tcp, yamux,
};
use shared_protocol::wire::gossip::{MAX_GOSSIP, TOPIC_LEDGER, TOPIC_WORK, TOPIC_WORK_RESULT};
use shared_protocol::wire::verify::VERIFY_PROTOCOL;

use super::codec::VerifyCodec;
use super::{IDENTIFY_PROTOCOL, KAD_PROTOCOL, Role};

/// Bounds on connections and streams. A titan serves many scouts, but a
/// single peer gets few connections, each with few streams.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_established: u32,
    pub max_pending_incoming: u32,
    pub max_per_peer: u32,
    /// Streams one yamux connection may have open.
    pub max_streams_per_connection: usize,
    /// Inbound `/shard/verify/1` streams handled at once per connection.
    pub max_verify_streams: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_established: 256,
            max_pending_incoming: 64,
            max_per_peer: 4,
            max_streams_per_connection: 128,
            max_verify_streams: 16,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub verify: request_response::Behaviour<VerifyCodec>,
}

impl Behaviour {
    fn new(key: &Keypair, role: Role, limits: &Limits) -> Result<Self> {
        let peer_id = key.public().to_peer_id();
        let connection_limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(limits.max_established))
            .with_max_pending_incoming(Some(limits.max_pending_incoming))
            .with_max_established_per_peer(Some(limits.max_per_peer));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                .with_agent_version(role.agent_version())
                .with_interval(Duration::from_secs(60)),
        );
        let ping = ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(5)));

        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        kad_config
            .set_query_timeout(Duration::from_secs(30))
            .set_periodic_bootstrap_interval(Some(Duration::from_secs(30)));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Titans answer DHT queries; scouts (often behind NATs, in browsers)
        // only ask.
        kad.set_mode(Some(if role == Role::Titan {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        }));

        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(MAX_GOSSIP + 1024)
            .build()
            .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
        gossipsub
            .with_peer_score(peer_score_params(), peer_score_thresholds())
            .map_err(|e| anyhow::anyhow!("gossipsub peer scoring: {e}"))?;
        for topic in [TOPIC_WORK, TOPIC_WORK_RESULT, TOPIC_LEDGER] {
            gossipsub
                .subscribe(&gossipsub::IdentTopic::new(topic))
                .map_err(|e| anyhow::anyhow!("subscribing to {topic}: {e}"))?;
        }

        // Titans answer the verify protocol; scouts and probes ask.
        let support = if role == Role::Titan {
            ProtocolSupport::Inbound
        } else {
            ProtocolSupport::Outbound
        };
        let verify = request_response::Behaviour::with_codec(
            VerifyCodec,
            [(StreamProtocol::new(VERIFY_PROTOCOL), support)],
            request_response::Config::default()
                .with_request_timeout(limits.request_timeout)
                .with_max_concurrent_streams(limits.max_verify_streams),
        );
        Ok(Self {
            limits: connection_limits::Behaviour::new(connection_limits),
            identify,
            ping,
            kad,
            gossipsub,
            verify,
        })
    }

    /// Puts an identified peer's listen addresses (at most 16) in the DHT
    /// routing table if it speaks kademlia, and, while `bootstrapped` is
    /// false, tries a bootstrap (setting it on success). Returns whether it
    /// tried, so a caller can start its first queries alongside.
    pub fn learn_dht_peer(
        &mut self,
        peer: &libp2p::PeerId,
        info: &identify::Info,
        bootstrapped: &mut bool,
    ) -> bool {
        if !info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL) {
            return false;
        }
        for addr in info.listen_addrs.iter().take(16) {
            self.kad.add_address(peer, addr.clone());
        }
        if *bootstrapped {
            return false;
        }
        *bootstrapped = self.kad.bootstrap().is_ok();
        true
    }
}

/// Peer scoring: invalid messages (bad signatures, undecodable payloads
/// reported by the application) weigh heavily; the thresholds gray-list a
/// misbehaving peer long before it can flood the mesh.
fn peer_score_params() -> gossipsub::PeerScoreParams {
    let mut params = gossipsub::PeerScoreParams::default();
    for topic in [TOPIC_WORK, TOPIC_WORK_RESULT, TOPIC_LEDGER] {
        let t = gossipsub::TopicScoreParams {
            invalid_message_deliveries_weight: -100.0,
            invalid_message_deliveries_decay: 0.5,
            ..Default::default()
        };
        params
            .topics
            .insert(gossipsub::IdentTopic::new(topic).hash(), t);
    }
    params
}

fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        ..Default::default()
    }
}

fn yamux_config(limits: &Limits) -> yamux::Config {
    let mut c = yamux::Config::default();
    c.set_max_num_streams(limits.max_streams_per_connection);
    c
}

/// A swarm with every transport. The webrtc-direct transport is added when
/// a certificate is given (titans; scouts and probes that want to dial
/// webrtc-direct pass a throwaway one).
pub async fn build_swarm(
    key: Keypair,
    role: Role,
    certificate: libp2p_webrtc::tokio::Certificate,
    limits: Limits,
) -> Result<Swarm<Behaviour>> {
    let l1 = limits.clone();
    let l2 = limits.clone();
    let l3 = limits.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            move || yamux_config(&l1),
        )
        .context("TCP transport")?
        .with_other_transport(|key| {
            Ok(
                libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                    .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn))),
            )
        })
        .context("webrtc-direct transport")?
        .with_dns()
        .context("DNS")?
        .with_websocket(noise::Config::new, move || yamux_config(&l2))
        .await
        .context("WebSocket transport")?
        .with_behaviour(|key| {
            Behaviour::new(key, role, &l3)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })
        })
        .context("behaviours")?
        .with_swarm_config(|c| c.with_idle_connection_timeout(limits.idle_timeout))
        .build();
    Ok(swarm)
}

/// The native webrtc-direct transport dials from a listening UDP socket:
/// listen on an ephemeral loopback or wildcard port before dialing `addr`
/// if it is a webrtc-direct address.
pub fn prepare_dial(swarm: &mut Swarm<Behaviour>, addr: &libp2p::Multiaddr) -> Result<()> {
    use libp2p::multiaddr::Protocol;
    if !addr.iter().any(|p| matches!(p, Protocol::WebRTCDirect)) {
        return Ok(());
    }
    let loopback = addr
        .iter()
        .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback()));
    let local: libp2p::Multiaddr = if loopback {
        "/ip4/127.0.0.1/udp/0/webrtc-direct"
    } else {
        "/ip4/0.0.0.0/udp/0/webrtc-direct"
    }
    .parse()
    .context("webrtc listen address")?;
    swarm
        .listen_on(local)
        .context("listening for webrtc-direct")?;
    Ok(())
}
