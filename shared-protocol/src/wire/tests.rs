use super::gossip::GossipMessage;
use super::verify::{Drafts, RejectReason, Request, Response, VerdictMsg, Work};
use super::*;
use crate::sampling::SamplingParams;

fn work() -> Work {
    Work {
        work: 7,
        session: 3,
        position: 12,
        context_start: 9,
        context: vec![1, 2, 3],
        sampling: SamplingParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            seed: 99,
        },
        k: 8,
        deadline_ms: 500,
    }
}

/// Every kind of message, for round trips and the fuzz corpus seeds.
pub(crate) fn samples() -> (Vec<Request>, Vec<Response>, Vec<GossipMessage>) {
    let requests = vec![
        Request::PullWork {
            model: "smollm2-135m".into(),
            max_k: 16,
        },
        Request::Drafts(Drafts {
            work: 7,
            session: 3,
            position: 12,
            tokens: vec![5, 6, 7, 8, 9, 10, 11, 12],
        }),
    ];
    let responses = vec![
        Response::Work(work()),
        Response::NoWork {
            retry_after_ms: 250,
        },
        Response::Verdict(VerdictMsg {
            work: 7,
            session: 3,
            accepted: 4,
            next_token: 42,
            done: false,
            next: Some(Work {
                work: 8,
                position: 17,
                context_start: 17,
                context: vec![],
                ..work()
            }),
        }),
        Response::Verdict(VerdictMsg {
            work: 8,
            session: 3,
            accepted: 0,
            next_token: 2,
            done: true,
            next: None,
        }),
        Response::Rejected {
            reason: RejectReason::UnknownWork,
            detail: "work 9 is not in flight".into(),
        },
    ];
    let gossip = vec![
        GossipMessage::WorkOffer {
            model: "smollm2-135m".into(),
            waiting: 2,
        },
        GossipMessage::WorkResult {
            session: 3,
            scout: vec![0, 36, 8, 1],
            drafted: 80,
            accepted: 61,
        },
        GossipMessage::Note {
            text: "hello mesh".into(),
        },
    ];
    (requests, responses, gossip)
}

#[test]
fn every_message_round_trips_byte_for_byte() {
    let (requests, responses, gossip) = samples();
    for m in requests {
        let bytes = m.encode();
        assert_eq!(Request::decode(&bytes).unwrap(), m);
        assert_eq!(Request::decode(&bytes).unwrap().encode(), bytes);
    }
    for m in responses {
        let bytes = m.encode();
        assert_eq!(Response::decode(&bytes).unwrap(), m);
    }
    for m in gossip {
        let bytes = m.encode();
        assert_eq!(GossipMessage::decode(&bytes).unwrap(), m);
    }
}

#[test]
fn unknown_version_is_a_typed_error() {
    let mut bytes = Request::PullWork {
        model: "m".into(),
        max_k: 4,
    }
    .encode();
    bytes[0] = 2;
    assert_eq!(
        Request::decode(&bytes),
        Err(DecodeError::UnsupportedVersion { got: 2 })
    );
    assert_eq!(Request::decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn every_truncation_and_extension_is_refused() {
    let (requests, responses, gossip) = samples();
    for m in &requests {
        let bytes = m.encode();
        for n in 0..bytes.len() {
            assert!(Request::decode(&bytes[..n]).is_err(), "{m:?} cut at {n}");
        }
        assert!(Request::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    }
    for m in &responses {
        let bytes = m.encode();
        for n in 0..bytes.len() {
            assert!(Response::decode(&bytes[..n]).is_err(), "{m:?} cut at {n}");
        }
        assert!(Response::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    }
    for m in &gossip {
        let bytes = m.encode();
        for n in 0..bytes.len() {
            assert!(
                GossipMessage::decode(&bytes[..n]).is_err(),
                "{m:?} cut at {n}"
            );
        }
        assert!(GossipMessage::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    }
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    // Drafts claiming 4 billion tokens in a 30-byte message.
    let mut w = Writer::message(2);
    w.u64(1);
    w.u64(1);
    w.u64(1);
    w.u32(u32::MAX);
    assert!(matches!(
        Request::decode(&w.buf),
        Err(DecodeError::TooMany { .. })
    ));
    // 20 drafts claimed (allowed count) but only 2 present.
    let mut w = Writer::message(2);
    w.u64(1);
    w.u64(1);
    w.u64(1);
    w.u32(20);
    w.u32(5);
    w.u32(6);
    assert!(matches!(
        Request::decode(&w.buf),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn invalid_sampling_and_inconsistent_context_are_refused() {
    let mut bad = work();
    bad.sampling.temperature = f32::NAN;
    assert!(Response::decode(&Response::Work(bad).encode()).is_err());
    let mut bad = work();
    bad.position = 100;
    assert!(Response::decode(&Response::Work(bad).encode()).is_err());
    let mut bad = work();
    bad.k = 200;
    assert!(Response::decode(&Response::Work(bad).encode()).is_err());
}

#[test]
fn frames_past_the_limit_are_refused_unread() {
    let header = (MAX_FRAME as u32 + 1).to_le_bytes();
    assert!(frame_len(header, MAX_FRAME).is_err());
    assert_eq!(frame_len(8u32.to_le_bytes(), MAX_FRAME), Ok(8));
    let body = [1u8, 2, 3];
    assert_eq!(frame(&body), vec![3, 0, 0, 0, 1, 2, 3]);
}

#[test]
fn long_rejection_details_are_cut_at_a_char_boundary() {
    let m = Response::Rejected {
        reason: RejectReason::Malformed,
        detail: "é".repeat(300),
    };
    let Response::Rejected { detail, .. } = Response::decode(&m.encode()).unwrap() else {
        panic!("not a rejection");
    };
    assert!(detail.len() <= verify::MAX_DETAIL);
}

/// Writes the fuzz corpus seeds: every sample message, unframed and framed.
/// Run by hand: `cargo test -p shared-protocol write_wire_seed_corpus -- --ignored`.
#[test]
#[ignore]
fn write_wire_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode");
    std::fs::create_dir_all(&dir).unwrap();
    let (requests, responses, gossip) = samples();
    let all: Vec<Vec<u8>> = requests
        .iter()
        .map(Request::encode)
        .chain(responses.iter().map(Response::encode))
        .chain(gossip.iter().map(GossipMessage::encode))
        .collect();
    for (i, bytes) in all.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), bytes).unwrap();
        std::fs::write(dir.join(format!("seed-{i:02}-framed")), frame(bytes)).unwrap();
    }
}
