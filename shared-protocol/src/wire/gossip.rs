//! Gossipsub payloads. Topics: [`TOPIC_WORK`] (a titan has sessions that
//! want drafting), [`TOPIC_WORK_RESULT`] (what a scout's drafting of a
//! session came to), [`TOPIC_LEDGER`] (signed credit receipts, filled by the
//! trust issue; until then free-form notes).

use super::{DecodeError, Reader, Writer};

pub const TOPIC_WORK: &str = "shard-work";
pub const TOPIC_WORK_RESULT: &str = "shard-work-result";
pub const TOPIC_LEDGER: &str = "shard-ledger";

/// Largest gossip payload; gossipsub refuses bigger messages.
pub const MAX_GOSSIP: usize = 4096;
/// Longest note text.
pub const MAX_NOTE: usize = 1024;
/// Longest peer id in its binary form.
pub const MAX_PEER_ID: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipMessage {
    /// A titan serving `model` has `waiting` sessions that would take drafts:
    /// scouts connected to it should pull (`/shard/verify/1`).
    WorkOffer { model: String, waiting: u32 },
    /// A scout's drafting for a finished session.
    WorkResult {
        session: u64,
        scout: Vec<u8>,
        drafted: u32,
        accepted: u32,
    },
    /// Free-form text (ledger placeholder, diagnostics).
    Note { text: String },
}

const WORK_OFFER: u8 = 1;
const WORK_RESULT: u8 = 2;
const NOTE: u8 = 3;

impl GossipMessage {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            GossipMessage::WorkOffer { model, waiting } => {
                let mut w = Writer::message(WORK_OFFER);
                w.string(model);
                w.u32(*waiting);
                w.buf
            }
            GossipMessage::WorkResult {
                session,
                scout,
                drafted,
                accepted,
            } => {
                let mut w = Writer::message(WORK_RESULT);
                w.u64(*session);
                w.blob(scout);
                w.u32(*drafted);
                w.u32(*accepted);
                w.buf
            }
            GossipMessage::Note { text } => {
                let mut w = Writer::message(NOTE);
                w.string(text);
                w.buf
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_GOSSIP {
            return Err(DecodeError::FrameTooLarge {
                got: bytes.len() as u64,
                max: MAX_GOSSIP,
            });
        }
        let mut r = Reader::new(bytes);
        r.version()?;
        let msg = match r.u8("gossip kind")? {
            WORK_OFFER => GossipMessage::WorkOffer {
                model: r.string("model", super::verify::MAX_MODEL_NAME)?,
                waiting: r.u32("waiting")?,
            },
            WORK_RESULT => GossipMessage::WorkResult {
                session: r.u64("session")?,
                scout: r.blob("scout", MAX_PEER_ID)?,
                drafted: r.u32("drafted")?,
                accepted: r.u32("accepted")?,
            },
            NOTE => GossipMessage::Note {
                text: r.string("note", MAX_NOTE)?,
            },
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "gossip",
                    kind,
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }
}
