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

/// The token chosen at sequence `position` from the target's `logits`.
pub fn sample_token(logits: &[f32], params: &SamplingParams, position: u64) -> u32 {
    if params.is_greedy() || logits.len() <= 1 {
        return argmax(logits);
    }
    let inv_t = 1.0 / f64::from(params.temperature);
    let candidates = filter_candidates(logits, params);
    let mut best = candidates.first().copied().unwrap_or(0);
    let mut best_v = f64::NEG_INFINITY;
    for &i in &candidates {
        let scaled = f64::from(logits[i as usize]) * inv_t;
        if scaled + GUMBEL_MAX <= best_v || scaled.is_nan() {
            continue;
        }
        let v = scaled + gumbel(params.seed, position, u64::from(i));
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best
}

/// Token ids that survive top-k and top-p, in descending logit order when
/// filtering applies, else all ids in order.
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
    let mut ids: Vec<u32> = (0..n as u32).collect();
    let key = |&i: &u32| {
        let v = logits[i as usize];
        if v.is_nan() { f32::NEG_INFINITY } else { v }
    };
    let cmp = |a: &u32, b: &u32| key(b).total_cmp(&key(a)).then(a.cmp(b));
    if k < n {
        ids.select_nth_unstable_by(k - 1, cmp);
        ids.truncate(k);
    }
    ids.sort_unstable_by(cmp);
    if params.top_p < 1.0 {
        let inv_t = 1.0 / f64::from(params.temperature);
        let max = f64::from(key(&ids[0])) * inv_t;
        let weights: Vec<f64> = ids
            .iter()
            .map(|i| (f64::from(key(i)) * inv_t - max).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut keep = ids.len();
        for (j, w) in weights.iter().enumerate() {
            acc += w / total;
            if acc >= f64::from(params.top_p) {
                keep = j + 1;
                break;
            }
        }
        ids.truncate(keep);
    }
    ids
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
