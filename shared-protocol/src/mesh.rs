//! What every Shard node says about itself on the mesh, and (with the `libp2p`
//! feature) `/shard/verify/1`'s libp2p codec, so the titan, the native scout and
//! the browser scout frame the protocol with one piece of code.

#[cfg(feature = "libp2p")]
pub mod codec;

/// identify's protocol version string of Shard nodes.
pub const IDENTIFY_PROTOCOL: &str = "/shard/1.0.0";

/// The kademlia protocol of the Shard DHT (kept apart from the IPFS DHT).
pub const KAD_PROTOCOL: &str = "/shard/kad/1.0.0";

/// What a node is in the mesh, told to others through identify's agent
/// version (`shard-titan/0.1.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Titan,
    Scout,
    Probe,
    /// Another libp2p implementation or an unidentified peer.
    Unknown,
}

impl Role {
    /// The role's name, as JSON and agent versions write it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Titan => "titan",
            Role::Scout => "scout",
            Role::Probe => "probe",
            Role::Unknown => "unknown",
        }
    }

    pub fn agent_version(self) -> String {
        format!("shard-{}/{}", self.name(), env!("CARGO_PKG_VERSION"))
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

#[cfg(test)]
mod tests {
    use super::Role;

    #[test]
    fn roles_survive_their_agent_version() {
        for role in [Role::Titan, Role::Scout, Role::Probe] {
            assert_eq!(Role::from_agent_version(&role.agent_version()), role);
        }
        assert_eq!(Role::from_agent_version("rust-libp2p/0.57"), Role::Unknown);
        assert_eq!(
            Role::Scout.agent_version(),
            format!("shard-scout/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
