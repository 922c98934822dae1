//! The verify step of speculative decoding, as a pure function.
//!
//! A drafter proposes `K` tokens after a sequence; the target model runs one
//! forward pass over the last accepted token and the `K` drafts, giving `K+1`
//! rows of logits: row `i` is the target's distribution for the token after
//! `drafts[..i]`. With shared randomness ([`crate::sampling`]) the target's
//! choice at each position is a deterministic function of its logits, the
//! request's seed and the position, so verification is plain comparison:
//! drafts are accepted while they equal what the target picks, and the
//! target's own pick at the first mismatch (or after the last draft, the
//! "bonus" token) comes for free. The output is therefore exactly what the
//! target alone would have produced, token for token, at any temperature:
//! a wrong or malicious draft costs speed, never correctness (DESIGN.md §3).

use crate::sampling::{SamplingParams, sample_token};

/// The outcome of verifying one batch of drafts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// How many drafts, from the first, the target agrees with.
    pub accepted: usize,
    /// The target's own token after the accepted drafts: the correction of
    /// the first rejected draft, or the bonus token when all were accepted.
    pub next: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("expected {expected} logits ({rows} rows of {vocab}), got {got}")]
    LogitsShape {
        expected: usize,
        rows: usize,
        vocab: usize,
        got: usize,
    },
}

/// Verifies `drafts` against `target_logits` (`drafts.len() + 1` rows of
/// `vocab` values). `position` is the sequence position of `drafts[0]`,
/// i.e. the index the first new token will have.
pub fn verify_drafts(
    target_logits: &[f32],
    vocab: usize,
    drafts: &[u32],
    params: &SamplingParams,
    position: u64,
) -> Result<Verdict, VerifyError> {
    let rows = drafts.len() + 1;
    if vocab == 0 || target_logits.len() != rows * vocab {
        return Err(VerifyError::LogitsShape {
            expected: rows * vocab,
            rows,
            vocab,
            got: target_logits.len(),
        });
    }
    let pick = |i: usize| {
        sample_token(
            &target_logits[i * vocab..(i + 1) * vocab],
            params,
            position + i as u64,
        )
    };
    for (i, &draft) in drafts.iter().enumerate() {
        let target = pick(i);
        if target != draft {
            return Ok(Verdict {
                accepted: i,
                next: target,
            });
        }
    }
    Ok(Verdict {
        accepted: drafts.len(),
        next: pick(drafts.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits that make `tokens[i]` the greedy pick of row `i`.
    fn peaked(tokens: &[u32], vocab: usize) -> Vec<f32> {
        let mut out = vec![0.0; tokens.len() * vocab];
        for (i, &t) in tokens.iter().enumerate() {
            out[i * vocab + t as usize] = 5.0;
        }
        out
    }

    #[test]
    fn accepts_the_agreeing_prefix_and_corrects_the_rest() {
        let greedy = SamplingParams::greedy();
        let logits = peaked(&[3, 1, 4, 1], 8);
        let v = |drafts: &[u32]| verify_drafts(&logits, 8, drafts, &greedy, 10).unwrap();
        assert_eq!(
            v(&[3, 1, 4]),
            Verdict {
                accepted: 3,
                next: 1
            }
        );
        assert_eq!(
            v(&[3, 1, 5]),
            Verdict {
                accepted: 2,
                next: 4
            }
        );
        assert_eq!(
            v(&[0, 1, 4]),
            Verdict {
                accepted: 0,
                next: 3
            }
        );
        let one = peaked(&[6], 8);
        assert_eq!(
            verify_drafts(&one, 8, &[], &greedy, 0).unwrap(),
            Verdict {
                accepted: 0,
                next: 6
            }
        );
    }

    #[test]
    fn sampled_verdicts_equal_sampling_position_by_position() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: 77,
        };
        let vocab = 5;
        let logits: Vec<f32> = (0..4 * vocab).map(|i| ((i * 7) % 5) as f32 * 0.3).collect();
        let picks: Vec<u32> = logits
            .chunks(vocab)
            .enumerate()
            .map(|(i, r)| sample_token(r, &params, 100 + i as u64))
            .collect();
        let v = verify_drafts(&logits, vocab, &picks[..3], &params, 100).unwrap();
        assert_eq!(
            v,
            Verdict {
                accepted: 3,
                next: picks[3]
            }
        );
        let mut wrong = picks[..3].to_vec();
        wrong[1] = (wrong[1] + 1) % vocab as u32;
        let v = verify_drafts(&logits, vocab, &wrong, &params, 100).unwrap();
        assert_eq!(
            v,
            Verdict {
                accepted: 1,
                next: picks[1]
            }
        );
    }

    /// Drafts from a different distribution with independent noise: the
    /// verified tokens must still follow the target's softmax (chi-square,
    /// fixed seeds, 4000 requests of up to 4 tokens each).
    #[test]
    fn verified_tokens_follow_the_target_distribution_whatever_the_drafts() {
        let vocab = 6;
        let target_row = [1.0f32, 0.2, -0.5, 2.0, 0.0, 1.2];
        let draft_row = [0.0f32, 2.5, 1.0, -1.0, 0.5, 0.0];
        let t = 0.9;
        let k = 3;
        let target: Vec<f32> = target_row.repeat(k + 1);
        let mut counts = [0u64; 6];
        for request in 0..4000u64 {
            let params = SamplingParams {
                temperature: t,
                top_k: 0,
                top_p: 1.0,
                seed: request,
            };
            let drafter = SamplingParams {
                seed: request ^ 0xdead_beef,
                ..params
            };
            let drafts: Vec<u32> = (0..k as u64)
                .map(|j| sample_token(&draft_row, &drafter, 50 + j))
                .collect();
            let v = verify_drafts(&target, vocab, &drafts, &params, 50).unwrap();
            for &tok in drafts[..v.accepted].iter().chain([&v.next]) {
                counts[tok as usize] += 1;
            }
        }
        let total: u64 = counts.iter().sum();
        let w: Vec<f64> = target_row
            .iter()
            .map(|&l| (f64::from(l) / f64::from(t)).exp())
            .collect();
        let z: f64 = w.iter().sum();
        let chi2: f64 = (0..vocab)
            .map(|i| {
                let e = total as f64 * w[i] / z;
                (counts[i] as f64 - e).powi(2) / e
            })
            .sum();
        // 5 degrees of freedom: p = 0.001 at 20.5.
        assert!(chi2 < 20.5, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn rejects_logits_of_the_wrong_shape() {
        let err = verify_drafts(&[0.0; 10], 5, &[1, 2], &SamplingParams::greedy(), 0);
        assert!(matches!(
            err,
            Err(VerifyError::LogitsShape { expected: 15, .. })
        ));
    }
}
