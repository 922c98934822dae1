//! The paired test: a scout's [`ScoutState`] and a titan's [`ScoutsView`]
//! wired back to back, with a titan that verifies against a known token
//! sequence. After every exchange the scout must draft from exactly the
//! context the titan verifies against, whatever either side forgot.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::scout::{ScoutAction, ScoutConfig, ScoutState};
use super::titan::ScoutsView;
use super::{WorkUnit, common_prefix, draft_prefix};
use crate::sampling::SamplingParams;
use crate::wire::verify::{Request, Response, VerdictMsg, Work};

const TITAN: u8 = 1;
const SCOUT: u8 = 9;
const PROMPT: usize = 5;

/// The target's token at `position` of `session`.
fn truth(session: u64, position: usize) -> u32 {
    ((session * 1000 + position as u64 * 7) % 49_152) as u32
}

struct Sim {
    scout: ScoutState<u8>,
    view: ScoutsView<u8>,
    /// Each live session's context on the titan.
    contexts: HashMap<u64, Vec<u32>>,
    /// Sessions in the order they get units.
    schedule: VecDeque<u64>,
    length: usize,
    next_work: u64,
    units: HashMap<u64, WorkUnit>,
    /// Drop the titan's answer to the next `Drafts` (a lost stream).
    lose_next_verdict: bool,
    now: u64,
    jobs: u64,
    empty_drafts: u64,
    finished: Vec<u64>,
}

impl Sim {
    fn new(sessions: u64, length: usize, scout_sessions: usize, titan_contexts: usize) -> Self {
        let contexts: HashMap<u64, Vec<u32>> = (0..sessions)
            .map(|s| (s, (0..PROMPT).map(|p| truth(s, p)).collect()))
            .collect();
        let config = ScoutConfig {
            model: "m".into(),
            max_k: 4,
            max_sessions: scout_sessions,
        };
        Self {
            scout: ScoutState::new(config),
            view: ScoutsView::new(titan_contexts),
            contexts,
            schedule: (0..sessions).collect(),
            length,
            next_work: 1,
            units: HashMap::new(),
            lose_next_verdict: false,
            now: 0,
            jobs: 0,
            empty_drafts: 0,
            finished: Vec::new(),
        }
    }

    /// The next session's unit, for the scout.
    fn next_unit(&mut self) -> Option<Work> {
        let session = self.schedule.pop_front()?;
        self.schedule.push_back(session);
        let unit = WorkUnit {
            work: self.next_work,
            session,
            context: self.contexts[&session].clone(),
            params: SamplingParams::greedy(),
            k: 4,
            deadline: Duration::from_secs(1),
        };
        self.next_work += 1;
        let work = self.view.work_for(SCOUT, &unit);
        self.units.insert(unit.work, unit);
        Some(work)
    }

    /// What the titan answers to `request`.
    fn answer(&mut self, request: Request) -> Option<Response> {
        match request {
            Request::PullWork { .. } => Some(match self.next_unit() {
                Some(w) => Response::Work(w),
                None => Response::NoWork { retry_after_ms: 10 },
            }),
            Request::Drafts(d) => {
                self.view
                    .take_drafts(&SCOUT, &d)
                    .expect("drafts for a unit out with the scout");
                let unit = self.units.remove(&d.work).expect("a known unit");
                if d.tokens.is_empty() {
                    self.empty_drafts += 1;
                }
                let position = unit.context.len();
                let accepted = d
                    .tokens
                    .iter()
                    .enumerate()
                    .take_while(|(i, t)| **t == truth(unit.session, position + i))
                    .count();
                let next = truth(unit.session, position + accepted);
                let ctx = self.contexts.get_mut(&unit.session).expect("live session");
                ctx.extend_from_slice(&d.tokens[..accepted]);
                ctx.push(next);
                let done = ctx.len() >= self.length;
                if done {
                    self.contexts.remove(&unit.session);
                    self.schedule.retain(|s| *s != unit.session);
                    self.finished.push(unit.session);
                }
                self.view
                    .verdict(&SCOUT, unit.session, &d.tokens, accepted, next, done);
                let next_unit = self.next_unit();
                if self.lose_next_verdict {
                    self.lose_next_verdict = false;
                    if let Some(w) = &next_unit {
                        self.view.unassign(w.work);
                        self.units.remove(&w.work);
                    }
                    return None;
                }
                Some(Response::Verdict(VerdictMsg {
                    work: d.work,
                    session: unit.session,
                    accepted: accepted as u8,
                    next_token: next,
                    done,
                    next: next_unit,
                }))
            }
        }
    }

    /// Carries out the scout's actions until it has nothing to do; the
    /// drafter proposes the truth with a wrong token every third unit.
    fn run(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            self.now += 1;
            self.scout.poll(self.now);
            let Some(action) = self.scout.next_action() else {
                if self.contexts.is_empty() {
                    return;
                }
                continue;
            };
            match action {
                ScoutAction::Send { titan, request } => {
                    assert_eq!(titan, TITAN);
                    match self.answer(request) {
                        Some(r) => self.scout.response(&TITAN, r, self.now),
                        None => self.scout.request_failed(&TITAN, self.now),
                    }
                }
                ScoutAction::Draft(job) => {
                    self.jobs += 1;
                    let unit = &self.units[&job.work];
                    assert_eq!(
                        job.context, unit.context,
                        "the scout drafts from the titan's context"
                    );
                    let p = job.context.len();
                    let mut drafts: Vec<u32> =
                        (0..job.k).map(|i| truth(job.session, p + i)).collect();
                    if job.work % 3 == 0 {
                        drafts[1] ^= 1;
                    }
                    self.scout.drafted(job.answer(drafts));
                }
            }
            self.check_agreement();
        }
    }

    /// Where both sides hold a session, the scout's tokens are a prefix of
    /// what the titan thinks it holds: equal once the scout has the titan's
    /// last message, shorter while a message is on its way or was lost. A
    /// shorter scout is what a unit starting past its end reveals (a gap);
    /// a longer or different one would go unnoticed, and must never happen.
    fn check_agreement(&self) {
        for session in self.contexts.keys() {
            if let (Some(s), Some(t)) = (
                self.scout.session_tokens(&TITAN, *session),
                self.view.known(&SCOUT, *session),
            ) {
                assert_eq!(
                    common_prefix(s, t),
                    s.len(),
                    "session {session}: scout holds {s:?}, titan thinks {t:?}"
                );
            }
        }
    }
}

#[test]
fn scout_and_titan_agree_through_verdicts() {
    let mut sim = Sim::new(3, 40, 8, 8);
    assert!(sim.scout.titan_found(TITAN, 0));
    sim.run(10_000);
    assert_eq!(sim.finished.len(), 3, "every session finished");
    let counts = sim.scout.counts();
    assert_eq!(counts.context_gaps, 0);
    assert_eq!(sim.empty_drafts, 0);
    assert!(counts.accepted > 0 && counts.accepted < counts.drafted);
    assert_eq!(counts.units, sim.jobs);
    // Done sessions are dropped on both sides.
    for s in 0..3 {
        assert_eq!(sim.scout.session_tokens(&TITAN, s), None);
        assert_eq!(sim.view.known(&SCOUT, s), None);
    }
}

#[test]
fn a_unit_sends_only_what_the_scout_lacks() {
    let mut sim = Sim::new(1, 20, 8, 8);
    sim.scout.titan_found(TITAN, 0);
    let first = sim.next_unit().expect("a unit");
    assert_eq!((first.context_start, first.context.len()), (0, PROMPT));
    // The verdict's next unit starts where the scout's tokens end.
    sim.units.clear();
    sim.view.verdict(&SCOUT, 0, &[], 0, 77, false);
    sim.contexts.get_mut(&0).expect("live").push(77);
    let second = sim.next_unit().expect("a unit");
    assert_eq!(second.context_start as usize, PROMPT + 1);
    assert!(second.context.is_empty());
    assert_eq!(second.position as usize, PROMPT + 1);
}

#[test]
fn a_scout_that_evicted_a_session_reports_a_gap_and_both_recover() {
    // Round-robin over 3 sessions with room for 2 on the scout: the least
    // recently used session is always the next one to come back.
    let mut sim = Sim::new(3, 30, 2, 64);
    sim.scout.titan_found(TITAN, 0);
    sim.run(20_000);
    assert_eq!(sim.finished.len(), 3);
    let counts = sim.scout.counts();
    assert!(counts.context_gaps > 0, "the scout evicted sessions");
    assert_eq!(sim.empty_drafts, counts.context_gaps);
    assert!(counts.accepted > 0);
}

#[test]
fn a_titan_that_forgot_a_context_sends_it_whole() {
    let mut sim = Sim::new(3, 30, 64, 1);
    sim.scout.titan_found(TITAN, 0);
    sim.run(20_000);
    assert_eq!(sim.finished.len(), 3);
    assert_eq!(sim.scout.counts().context_gaps, 0);
}

#[test]
fn a_lost_verdict_costs_one_gap_and_no_wrong_context() {
    let mut sim = Sim::new(1, 200, 8, 8);
    sim.scout.titan_found(TITAN, 0);
    sim.run(12);
    assert!(sim.finished.is_empty());
    sim.lose_next_verdict = true;
    sim.run(20_000);
    assert!(!sim.lose_next_verdict, "a verdict was lost");
    assert_eq!(sim.finished.len(), 1);
    // The scout missed a verdict: the titan's view ran ahead of it, so the
    // next unit started past the scout's tokens.
    assert_eq!(sim.scout.counts().context_gaps, 1);
}

#[test]
fn a_unit_that_does_not_add_up_is_answered_with_no_drafts() {
    let mut scout = ScoutState::new(ScoutConfig {
        model: "m".into(),
        max_k: 4,
        max_sessions: 4,
    });
    scout.titan_found(TITAN, 0);
    let Some(ScoutAction::Send { .. }) = scout.next_action() else {
        panic!("a pull");
    };
    let work = Work {
        work: 5,
        session: 2,
        position: 9, // context_start + context.len() is 3
        context_start: 0,
        context: vec![1, 2, 3],
        sampling: SamplingParams::greedy(),
        k: 4,
        deadline_ms: 100,
    };
    scout.response(&TITAN, Response::Work(work), 1);
    match scout.next_action() {
        Some(ScoutAction::Send {
            request: Request::Drafts(d),
            ..
        }) => assert!(d.tokens.is_empty() && d.work == 5),
        other => panic!("expected empty drafts, got {other:?}"),
    }
    assert_eq!(scout.session_tokens(&TITAN, 2), None);
}

#[test]
fn the_scout_pulls_once_per_titan_and_backs_off() {
    let mut scout = ScoutState::new(ScoutConfig {
        model: "m".into(),
        max_k: 8,
        max_sessions: 4,
    });
    scout.titan_found(TITAN, 100);
    assert!(!scout.titan_found(TITAN, 100), "found twice");
    assert!(matches!(
        scout.next_action(),
        Some(ScoutAction::Send {
            request: Request::PullWork { max_k: 8, .. },
            ..
        })
    ));
    scout.poll(10_000);
    assert_eq!(scout.next_action(), None, "one request in flight per titan");
    scout.response(&TITAN, Response::NoWork { retry_after_ms: 50 }, 200);
    assert_eq!(scout.next_wakeup_ms(), Some(250));
    scout.poll(249);
    assert_eq!(scout.next_action(), None);
    scout.poll(250);
    assert!(scout.next_action().is_some());
    scout.request_failed(&TITAN, 300);
    assert_eq!(scout.next_wakeup_ms(), Some(800));
    assert!(scout.titan_lost(&TITAN));
    assert!(!scout.has_titans());
    scout.poll(10_000);
    assert_eq!(scout.next_action(), None);
}

#[test]
fn the_titan_takes_drafts_only_from_the_scout_it_gave_the_unit() {
    let mut view = ScoutsView::new(8);
    let unit = WorkUnit {
        work: 3,
        session: 1,
        context: vec![1, 2, 3],
        params: SamplingParams::greedy(),
        k: 40,
        deadline: Duration::from_millis(1500),
    };
    let work = view.work_for(SCOUT, &unit);
    assert_eq!(usize::from(work.k), crate::wire::verify::MAX_DRAFT_TOKENS);
    assert_eq!(work.deadline_ms, 1500);
    let drafts = |work, position| crate::wire::verify::Drafts {
        work,
        session: 1,
        position,
        tokens: vec![4],
    };
    assert!(view.take_drafts(&(SCOUT + 1), &drafts(3, 3)).is_err());
    assert!(view.take_drafts(&SCOUT, &drafts(3, 2)).is_err());
    assert!(view.take_drafts(&SCOUT, &drafts(4, 3)).is_err());
    assert!(view.take_drafts(&SCOUT, &drafts(3, 3)).is_ok());
    assert!(
        view.take_drafts(&SCOUT, &drafts(3, 3)).is_err(),
        "taken once"
    );
    let again = WorkUnit { work: 4, ..unit };
    view.work_for(SCOUT, &again);
    assert_eq!(view.peer_gone(&SCOUT), vec![4]);
    assert_eq!(view.known(&SCOUT, 1), None);
}

#[test]
fn a_draft_keeps_the_cached_prefix_but_refeeds_the_last_context_token() {
    // Nothing cached, a longer cache, a diverging cache, the whole context cached.
    assert_eq!(draft_prefix(&[], &[1, 2, 3], 4, 16), Some(0));
    assert_eq!(
        draft_prefix(&[1, 2, 3, 9, 9], &[1, 2, 3, 4], 4, 16),
        Some(3)
    );
    assert_eq!(draft_prefix(&[1, 7], &[1, 2, 3], 4, 16), Some(1));
    assert_eq!(draft_prefix(&[1, 2, 3], &[1, 2, 3], 4, 16), Some(2));
    // Nothing to draft from, and drafts past the session's capacity.
    assert_eq!(draft_prefix(&[1], &[], 4, 16), None);
    assert_eq!(draft_prefix(&[], &[1, 2, 3], 4, 7), Some(0));
    assert_eq!(draft_prefix(&[], &[1, 2, 3], 5, 7), None);
}
