//! Remote drafting between the scheduler (one OS thread) and the swarm task
//! (tokio): the messages they exchange over bounded channels, and the
//! scheduler's handle.
//!
//! The scheduler decides per step and per sequence whether a scout drafts:
//! it claims an idle scout (one whose `PullWork` the swarm task is holding),
//! hands the swarm task a [`WorkUnit`] and parks the sequence until drafts
//! come back or the unit's deadline passes. Drafts are verified in the same
//! batched pass as every other sequence; the verdict goes back with the
//! session's next unit for the same scout, saving a round trip. A unit
//! whose scout is slow or gone is taken back ("Rerouting") and the sequence
//! drafts locally, so the client sees neither an error nor a different text.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared_protocol::wire::gossip::GossipMessage;

pub use shared_protocol::drafting::WorkUnit;

/// Scheduler (and HTTP) → swarm task.
#[derive(Debug)]
pub enum ToMesh {
    /// Give this unit to the scout whose pull the scheduler claimed.
    Offer(WorkUnit),
    /// The verdict on a unit's drafts, and the session's next unit.
    Verdict {
        work: u64,
        accepted: usize,
        next: u32,
        done: bool,
        next_unit: Option<WorkUnit>,
    },
    /// The unit was taken back; late drafts for it are refused.
    Cancel { work: u64 },
    /// Close every connection to this peer (an operator's `DELETE
    /// /v1/system/peers/{peer}`); it may dial again.
    Disconnect { peer: libp2p::PeerId },
    /// Publish on a gossip topic.
    Publish {
        topic: &'static str,
        message: GossipMessage,
    },
}

/// Swarm task → scheduler.
#[derive(Debug)]
pub enum FromMesh {
    Drafts {
        work: u64,
        tokens: Vec<u32>,
    },
    /// The unit's scout went away before answering.
    Abandoned {
        work: u64,
        reason: String,
    },
}

/// The scheduler's view of the mesh.
#[derive(Clone, Debug)]
pub struct MeshLink {
    pub to_mesh: tokio::sync::mpsc::Sender<ToMesh>,
    /// Pulls held by the swarm task that no unit has claimed yet.
    pub idle_scouts: Arc<AtomicUsize>,
    /// How long a scout may take to answer a unit.
    pub deadline: Duration,
}

impl MeshLink {
    /// Claims one idle scout; the caller must then send an `Offer`.
    pub fn claim_scout(&self) -> bool {
        claim(&self.idle_scouts)
    }
}

/// Decrements `n` if it is positive.
pub fn claim(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
        .is_ok()
}
