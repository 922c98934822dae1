//! Token sampling with shared randomness.
//!
//! Randomness is a pure function of `(seed, position, token id)`: a
//! counter-based generator (SplitMix64's finalizer over the three counters)
//! gives a uniform `u`, turned into Gumbel noise `g = -ln(-ln u)`. The sampled
//! token is `argmax(logits / T + g)` over the tokens that survive top-k and
//! top-p filtering, which is an exact sample from the filtered softmax
//! (the Gumbel-max trick). Because the noise depends only on the counters, a
//! drafter that knows the seed can propose the very token the target will
//! pick, and only token ids ever need to cross the wire: a lying drafter can
//! cost speed but cannot bias the output (DESIGN.md §3).

/// Parameters of one request's sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches
    /// `top_p`; 1 disables.
    pub top_p: f32,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplingError {
    #[error("temperature must be a finite number >= 0, got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    pub fn validate(&self) -> Result<(), SamplingError> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        Ok(())
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in the open interval (0, 1), determined by the counters.
pub fn uniform(seed: u64, position: u64, index: u64) -> f64 {
    let h = splitmix64(seed ^ splitmix64(position ^ splitmix64(index)));
    ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// Standard Gumbel noise determined by the counters.
pub fn gumbel(seed: u64, position: u64, index: u64) -> f64 {
    -(-uniform(seed, position, index).ln()).ln()
}

/// Largest Gumbel value [`gumbel`] can return (at `u = 1 - 2^-54`), used to
/// skip tokens that cannot win without computing their noise.
const GUMBEL_MAX: f64 = 37.5;

/// A cheap upper bound on [`gumbel`]`(seed, position, index)`, from the hash
/// bits alone: `-ln(-ln u) < -ln(1 - u)`, and `1 - u` is at least the power
/// of two below it, which a leading-zero count finds. For most tokens the
/// bound is about 0.7, so tokens more than a few units below the best score
/// are skipped without a logarithm.
fn gumbel_bound(seed: u64, position: u64, index: u64) -> f64 {
    let h = splitmix64(seed ^ splitmix64(position ^ splitmix64(index)));
    // u = (m + 0.5) / 2^53, so 1 - u = (r + 0.5) / 2^53.
    let r = (1u64 << 53) - 1 - (h >> 11);
    if r == 0 {
        GUMBEL_MAX
    } else {
        // r + 0.5 > 2^floor(log2 r) = 2^(63 - lz)
        f64::from(r.leading_zeros() - 10) * std::f64::consts::LN_2
    }
}

/// Index of the largest value; the lowest index wins ties. NaN never wins.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// The token chosen at sequence `position` from the target's `logits`:
/// `argmax(logits / T + gumbel)` over the candidates, the lowest id winning
/// (measure-zero) ties. Tokens that provably cannot win are skipped before
/// their noise is computed; the result is the same as scoring every token.
pub fn sample_token(logits: &[f32], params: &SamplingParams, position: u64) -> u32 {
    if params.is_greedy() || logits.len() <= 1 {
        return argmax(logits);
    }
    let inv_t = 1.0 / f64::from(params.temperature);
    let score = |i: u32| f64::from(logits[i as usize]) * inv_t;
    let candidates = filter_candidates(logits, params);
    // Start from the most likely candidate so the bound prunes early.
    let Some(&first) = candidates
        .iter()
        .filter(|&&i| !logits[i as usize].is_nan())
        .max_by(|&&a, &&b| {
            logits[a as usize]
                .total_cmp(&logits[b as usize])
                .then(b.cmp(&a))
        })
    else {
        return argmax(logits);
    };
    let mut best = first;
    let mut best_v = score(first) + gumbel(params.seed, position, u64::from(first));
    for &i in &candidates {
        let s = score(i);
        if i == first || s.is_nan() || s + GUMBEL_MAX <= best_v {
            continue;
        }
        if s + gumbel_bound(params.seed, position, u64::from(i)) <= best_v {
            continue;
        }
        let v = s + gumbel(params.seed, position, u64::from(i));
        if v > best_v || (v == best_v && i < best) {
            best_v = v;
            best = i;
        }
    }
    best
}

/// Token ids that survive top-k and top-p: all ids in order when neither
/// applies, else the survivors in descending logit order (ties by id). The
/// nucleus is found by sorting growing heads of the candidates, not the whole
/// vocabulary; the cut is the same as with a full sort.
fn filter_candidates(logits: &[f32], params: &SamplingParams) -> Vec<u32> {
    let n = logits.len();
    let k = if params.top_k == 0 {
        n
    } else {
        params.top_k.min(n)
    };
    if k == n && params.top_p >= 1.0 {
        return (0..n as u32).collect();
    }
    let key = |i: u32| {
        let v = logits[i as usize];
        if v.is_nan() { f32::NEG_INFINITY } else { v }
    };
    let cmp = |a: &u32, b: &u32| key(*b).total_cmp(&key(*a)).then(a.cmp(b));
    let mut ids: Vec<u32> = (0..n as u32).collect();
    if k < n {
        ids.select_nth_unstable_by(k - 1, cmp);
        ids.truncate(k);
    }
    if params.top_p >= 1.0 {
        ids.sort_unstable_by(cmp);
        return ids;
    }
    let inv_t = 1.0 / f64::from(params.temperature);
    let max = ids
        .iter()
        .map(|&i| key(i))
        .fold(f32::NEG_INFINITY, f32::max);
    let weight = |i: u32| ((f64::from(key(i)) - f64::from(max)) * inv_t).exp();
    // Summed in id order, so the total does not depend on how the selection
    // below happens to arrange the ids.
    let total: f64 = if ids.len() == n {
        ids.iter().map(|&i| weight(i)).sum()
    } else {
        let mut by_id = ids.clone();
        by_id.sort_unstable();
        by_id.iter().map(|&i| weight(i)).sum()
    };
    let mut head = 64.min(ids.len());
    loop {
        if head < ids.len() {
            ids.select_nth_unstable_by(head - 1, cmp);
        }
        ids[..head].sort_unstable_by(cmp);
        let mut acc = 0.0;
        for j in 0..head {
            acc += weight(ids[j]) / total;
            if acc >= f64::from(params.top_p) {
                ids.truncate(j + 1);
                return ids;
            }
        }
        if head == ids.len() {
            return ids;
        }
        head = (head * 4).min(ids.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
        assert_eq!(
            sample_token(&[0.0, 2.0, 1.0], &SamplingParams::greedy(), 7),
            1
        );
    }

    #[test]
    fn uniform_is_in_the_open_interval_and_deterministic() {
        for i in 0..10_000 {
            let u = uniform(42, 3, i);
            assert!(u > 0.0 && u < 1.0);
            assert_eq!(u, uniform(42, 3, i));
        }
        assert_ne!(uniform(1, 0, 0), uniform(2, 0, 0));
        assert_ne!(uniform(1, 0, 0), uniform(1, 1, 0));
        assert!(gumbel(0, 0, 0) < GUMBEL_MAX);
    }

    /// Chi-square test of Gumbel-max against the exact softmax.
    #[test]
    fn sampling_follows_the_softmax() {
        let logits = [0.5f32, 1.5, -0.3, 2.0, 0.0, 1.0];
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            seed: 1234,
        };
        let n = 60_000u64;
        let mut counts = [0u64; 6];
        for pos in 0..n {
            counts[sample_token(&logits, &params, pos) as usize] += 1;
        }
        let w: Vec<f64> = logits.iter().map(|&l| (f64::from(l) / 0.8).exp()).collect();
        let z: f64 = w.iter().sum();
        let chi2: f64 = (0..6)
            .map(|i| {
                let e = n as f64 * w[i] / z;
                (counts[i] as f64 - e).powi(2) / e
            })
            .sum();
        // 5 degrees of freedom: p = 0.001 at 20.5.
        assert!(chi2 < 20.5, "chi2 = {chi2}, counts = {counts:?}");
    }

    /// Scoring every candidate, no pruning: what `sample_token` must equal.
    fn sample_unpruned(logits: &[f32], params: &SamplingParams, position: u64) -> u32 {
        let inv_t = 1.0 / f64::from(params.temperature);
        let mut best = (f64::NEG_INFINITY, 0u32);
        for i in filter_candidates(logits, params) {
            let v =
                f64::from(logits[i as usize]) * inv_t + gumbel(params.seed, position, u64::from(i));
            if v > best.0 {
                best = (v, i);
            }
        }
        best.1
    }

    #[test]
    fn pruning_never_changes_the_pick() {
        let mut logits = vec![0f32; 3000];
        for (i, l) in logits.iter_mut().enumerate() {
            *l = (uniform(99, 1, i as u64) as f32 - 0.5) * 30.0;
        }
        for (t, top_k, top_p) in [
            (1.0, 0, 1.0),
            (0.3, 0, 1.0),
            (2.0, 0, 1.0),
            (1.0, 50, 0.9),
            (0.8, 0, 0.5),
        ] {
            let params = SamplingParams {
                temperature: t,
                top_k,
                top_p,
                seed: 5,
            };
            for pos in 0..300 {
                assert_eq!(
                    sample_token(&logits, &params, pos),
                    sample_unpruned(&logits, &params, pos),
                    "T {t} pos {pos}"
                );
            }
        }
        for i in 0..20_000u64 {
            assert!(gumbel(3, 4, i) < gumbel_bound(3, 4, i), "index {i}");
        }
    }

    #[test]
    fn nucleus_equals_a_full_sort() {
        let mut logits = vec![0f32; 5000];
        for (i, l) in logits.iter_mut().enumerate() {
            *l = (uniform(7, 2, i as u64) as f32 - 0.5) * 12.0;
        }
        for (t, top_k, top_p) in [
            (1.0f32, 0, 0.9f32),
            (0.5, 0, 0.99),
            (2.0, 0, 0.3),
            (1.0, 300, 0.95),
            (1.0, 0, 0.999_99),
        ] {
            let params = SamplingParams {
                temperature: t,
                top_k,
                top_p,
                seed: 0,
            };
            let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
            ids.sort_by(|a, b| {
                logits[*b as usize]
                    .total_cmp(&logits[*a as usize])
                    .then(a.cmp(b))
            });
            if top_k > 0 {
                ids.truncate(top_k);
            }
            let max = f64::from(logits[ids[0] as usize]);
            let w = |i: u32| ((f64::from(logits[i as usize]) - max) / f64::from(t)).exp();
            let mut by_id = ids.clone();
            by_id.sort_unstable();
            let total: f64 = by_id.iter().map(|&i| w(i)).sum();
            let mut acc = 0.0;
            let keep = ids.iter().position(|&i| {
                acc += w(i) / total;
                acc >= f64::from(top_p)
            });
            ids.truncate(keep.map_or(ids.len(), |k| k + 1));
            assert_eq!(
                filter_candidates(&logits, &params),
                ids,
                "T {t} top_k {top_k} top_p {top_p}"
            );
        }
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [3.0f32, 2.9, 0.0, -1.0, 2.8];
        let top_k = SamplingParams {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            seed: 9,
        };
        let top_p = SamplingParams {
            top_k: 0,
            top_p: 0.5,
            ..top_k
        };
        for pos in 0..2_000 {
            assert!(matches!(sample_token(&logits, &top_k, pos), 0 | 1));
            assert!(matches!(sample_token(&logits, &top_p, pos), 0 | 1));
        }
    }

    #[test]
    fn validation_rejects_nonsense() {
        let mut p = SamplingParams::greedy();
        p.temperature = -1.0;
        assert_eq!(p.validate(), Err(SamplingError::Temperature(-1.0)));
        p.temperature = 1.0;
        p.top_p = 0.0;
        assert_eq!(p.validate(), Err(SamplingError::TopP(0.0)));
        p.top_p = 1.0;
        assert_eq!(p.validate(), Ok(()));
    }
}
