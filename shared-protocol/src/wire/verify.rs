//! `/shard/verify/1`: the draft ↔ verdict loop between a scout and a titan.
//!
//! The **scout opens every stream** (in the browser, streams opened by the
//! titan fail over rust-libp2p's WebRTC transport; DESIGN.md §4): it pulls
//! work and pushes drafts, and the titan answers on the same stream.
//!
//! ```text
//! scout                                   titan
//!   PullWork{model, max_k}          ──▶
//!                                   ◀──   Work{work, session, position, context delta, sampling, k, deadline}
//!                                         | NoWork{retry_after_ms}
//!   Drafts{work, session, position, tokens} ──▶
//!                                   ◀──   Verdict{accepted, next_token, done, next: Option<Work>}
//!                                         | Rejected{reason}
//! ```
//!
//! A work unit's `context` is the session's tokens from `context_start` to
//! `position` (exclusive): the titan sends only what the scout does not hold
//! yet (0 for a scout new to the session). After a verdict the scout appends
//! its accepted drafts and `next_token` itself, which is what the titan
//! assumes when it sends the next unit of the session in the same answer.
//! Drafts are sampled at positions `position, position + 1, ...` with the
//! work's sampling parameters and shared randomness.

use super::{DecodeError, Reader, Writer};
use crate::sampling::SamplingParams;

/// The protocol name negotiated by multistream-select.
pub const VERIFY_PROTOCOL: &str = "/shard/verify/1";

/// Most draft tokens in one work unit (the titan's adaptive K stays in 2..16).
pub const MAX_DRAFT_TOKENS: usize = 32;
/// Most context tokens one work unit carries.
pub const MAX_CONTEXT_TOKENS: usize = 32 * 1024;
/// Longest model id.
pub const MAX_MODEL_NAME: usize = 128;
/// Longest detail text of a rejection.
pub const MAX_DETAIL: usize = 256;

/// What a scout sends (it opens the stream).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// "Give me something to draft for `model`, at most `max_k` tokens."
    PullWork { model: String, max_k: u8 },
    /// Drafts for a work unit.
    Drafts(Drafts),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drafts {
    pub work: u64,
    pub session: u64,
    /// Position of `tokens[0]` (the work unit's `position`).
    pub position: u64,
    pub tokens: Vec<u32>,
}

/// What a titan answers on the same stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Work(Work),
    /// Nothing to draft now; pull again after `retry_after_ms`.
    NoWork {
        retry_after_ms: u32,
    },
    Verdict(VerdictMsg),
    Rejected {
        reason: RejectReason,
        detail: String,
    },
}

/// One unit of drafting.
#[derive(Clone, Debug, PartialEq)]
pub struct Work {
    pub work: u64,
    pub session: u64,
    /// Position of the first token to draft: the length of the context.
    pub position: u64,
    /// Position of `context[0]`; the scout keeps its tokens before it.
    pub context_start: u64,
    pub context: Vec<u32>,
    pub sampling: SamplingParams,
    /// How many tokens to draft.
    pub k: u8,
    /// Drafts arriving later than this (from when the unit was sent) are
    /// not waited for: the titan drafts on its own.
    pub deadline_ms: u32,
}

/// The titan's answer to a batch of drafts.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictMsg {
    pub work: u64,
    pub session: u64,
    /// How many drafts, from the first, the target agreed with.
    pub accepted: u8,
    /// The target's own token after them.
    pub next_token: u32,
    /// The session is finished (no more work follows for it).
    pub done: bool,
    /// The session's next unit, for the same scout.
    pub next: Option<Work>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RejectReason {
    /// The work id is unknown or its deadline passed.
    UnknownWork = 1,
    /// The titan does not serve that model.
    UnknownModel = 2,
    /// Too much in flight; try later.
    Busy = 3,
    /// The request was not a valid message.
    Malformed = 4,
    /// The request's protocol version is not spoken here.
    UnsupportedVersion = 5,
}

impl RejectReason {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            1 => Self::UnknownWork,
            2 => Self::UnknownModel,
            3 => Self::Busy,
            4 => Self::Malformed,
            5 => Self::UnsupportedVersion,
            _ => {
                return Err(DecodeError::UnknownKind {
                    what: "reject reason",
                    kind: v,
                });
            }
        })
    }
}

const PULL_WORK: u8 = 1;
const DRAFTS: u8 = 2;
const WORK: u8 = 1;
const NO_WORK: u8 = 2;
const VERDICT: u8 = 3;
const REJECTED: u8 = 4;

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::PullWork { model, max_k } => {
                let mut w = Writer::message(PULL_WORK);
                w.string(model);
                w.u8(*max_k);
                w.buf
            }
            Request::Drafts(d) => {
                let mut w = Writer::message(DRAFTS);
                w.u64(d.work);
                w.u64(d.session);
                w.u64(d.position);
                w.tokens(&d.tokens);
                w.buf
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let msg = match r.u8("request kind")? {
            PULL_WORK => Request::PullWork {
                model: r.string("model", MAX_MODEL_NAME)?,
                max_k: r.u8("max_k")?,
            },
            DRAFTS => Request::Drafts(Drafts {
                work: r.u64("work")?,
                session: r.u64("session")?,
                position: r.u64("position")?,
                tokens: r.tokens("drafts", MAX_DRAFT_TOKENS)?,
            }),
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "request",
                    kind,
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

fn write_work(w: &mut Writer, work: &Work) {
    w.u64(work.work);
    w.u64(work.session);
    w.u64(work.position);
    w.u64(work.context_start);
    w.tokens(&work.context);
    let s = &work.sampling;
    w.f32(s.temperature);
    w.u32(u32::try_from(s.top_k).unwrap_or(u32::MAX));
    w.f32(s.top_p);
    w.u64(s.seed);
    w.u8(work.k);
    w.u32(work.deadline_ms);
}

fn read_work(r: &mut Reader<'_>) -> Result<Work, DecodeError> {
    let work = r.u64("work")?;
    let session = r.u64("session")?;
    let position = r.u64("position")?;
    let context_start = r.u64("context_start")?;
    let context = r.tokens("context", MAX_CONTEXT_TOKENS)?;
    if context_start.checked_add(context.len() as u64) != Some(position) {
        return Err(DecodeError::Invalid {
            what: "work context",
            value: format!(
                "{} tokens from {context_start} do not end at position {position}",
                context.len()
            ),
        });
    }
    let sampling = SamplingParams {
        temperature: r.f32("temperature")?,
        top_k: r.u32("top_k")? as usize,
        top_p: r.f32("top_p")?,
        seed: r.u64("seed")?,
    };
    if let Err(e) = sampling.validate() {
        return Err(DecodeError::Invalid {
            what: "sampling",
            value: e.to_string(),
        });
    }
    let k = r.u8("k")?;
    if usize::from(k) > MAX_DRAFT_TOKENS {
        return Err(DecodeError::TooMany {
            what: "k",
            got: u64::from(k),
            max: MAX_DRAFT_TOKENS,
        });
    }
    Ok(Work {
        work,
        session,
        position,
        context_start,
        context,
        sampling,
        k,
        deadline_ms: r.u32("deadline_ms")?,
    })
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Response::Work(work) => {
                let mut w = Writer::message(WORK);
                write_work(&mut w, work);
                w.buf
            }
            Response::NoWork { retry_after_ms } => {
                let mut w = Writer::message(NO_WORK);
                w.u32(*retry_after_ms);
                w.buf
            }
            Response::Verdict(v) => {
                let mut w = Writer::message(VERDICT);
                w.u64(v.work);
                w.u64(v.session);
                w.u8(v.accepted);
                w.u32(v.next_token);
                w.bool(v.done);
                match &v.next {
                    None => w.u8(0),
                    Some(work) => {
                        w.u8(1);
                        write_work(&mut w, work);
                    }
                }
                w.buf
            }
            Response::Rejected { reason, detail } => {
                let mut w = Writer::message(REJECTED);
                w.u8(*reason as u8);
                let end = detail.floor_char_boundary(MAX_DETAIL);
                w.string(&detail[..end]);
                w.buf
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.version()?;
        let msg = match r.u8("response kind")? {
            WORK => Response::Work(read_work(&mut r)?),
            NO_WORK => Response::NoWork {
                retry_after_ms: r.u32("retry_after_ms")?,
            },
            VERDICT => {
                let work = r.u64("work")?;
                let session = r.u64("session")?;
                let accepted = r.u8("accepted")?;
                if usize::from(accepted) > MAX_DRAFT_TOKENS {
                    return Err(DecodeError::TooMany {
                        what: "accepted",
                        got: u64::from(accepted),
                        max: MAX_DRAFT_TOKENS,
                    });
                }
                let next_token = r.u32("next_token")?;
                let done = r.bool("done")?;
                let next = match r.u8("next work tag")? {
                    0 => None,
                    1 => Some(read_work(&mut r)?),
                    v => {
                        return Err(DecodeError::Invalid {
                            what: "next work tag",
                            value: v.to_string(),
                        });
                    }
                };
                Response::Verdict(VerdictMsg {
                    work,
                    session,
                    accepted,
                    next_token,
                    done,
                    next,
                })
            }
            REJECTED => Response::Rejected {
                reason: RejectReason::from_u8(r.u8("reject reason")?)?,
                detail: r.string("detail", MAX_DETAIL)?,
            },
            kind => {
                return Err(DecodeError::UnknownKind {
                    what: "response",
                    kind,
                });
            }
        };
        r.finish()?;
        Ok(msg)
    }
}
