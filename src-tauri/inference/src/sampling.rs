//! Choosing the next token from logits: greedy at temperature 0, otherwise temperature, top-k and
//! top-p (nucleus) sampling driven by a seeded generator.
//!
//! The generator is a small xoshiro256** written here rather than `rand`'s `StdRng`, whose algorithm
//! may change between releases: "same seed, same request, same model → same tokens" must survive
//! dependency upgrades.

use crate::job::SamplingParams;

/// xoshiro256** seeded through splitmix64.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    /// A generator seeded from the clock and the process's hash randomness.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Self::seeded(h.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Picks tokens for one job.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        let rng = params.seed.map(Rng::seeded).unwrap_or_else(Rng::from_entropy);
        Self { params: params.clone(), rng }
    }

    pub fn is_greedy(&self) -> bool {
        self.params.temperature <= 0.0
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.is_greedy() || logits.len() < 2 {
            return argmax(logits);
        }
        let t = f64::from(self.params.temperature);
        // Candidates as (id, scaled logit), best first, cut by top-k.
        let mut cand: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, f64::from(l) / t))
            .collect();
        if cand.is_empty() {
            return argmax(logits);
        }
        let by_logit_desc = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if let Some(k) = self.params.top_k.map(|k| k as usize).filter(|&k| k > 0 && k < cand.len()) {
            cand.select_nth_unstable_by(k - 1, by_logit_desc);
            cand.truncate(k);
        }
        cand.sort_by(by_logit_desc);
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let top_p = f64::from(self.params.top_p);
        let mut keep = probs.len();
        if top_p > 0.0 && top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        let mass: f64 = probs[..keep].iter().sum();
        let mut u = self.rng.next_f64() * mass;
        for i in 0..keep {
            u -= probs[i];
            if u < 0.0 {
                return cand[i].0;
            }
        }
        cand[keep - 1].0
    }
}

/// Index of the largest logit; the first one on ties (as MLX's argmax).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, top_k: Option<u32>, seed: u64) -> SamplingParams {
        SamplingParams { temperature, top_p, top_k, seed: Some(seed) }
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(&SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(&params(1.0, 0.95, Some(20), seed));
            (0..64).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(&params(5.0, 1.0, Some(1), 3));
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 1.0, 0.5]), 1);
        }
    }

    #[test]
    fn top_p_excludes_tail() {
        // p ≈ [0.87, 0.12, 0.0…]: with top_p 0.5 only the first survives.
        let mut s = Sampler::new(&params(1.0, 0.5, None, 11));
        for _ in 0..50 {
            assert_eq!(s.sample(&[4.0, 2.0, -5.0, -5.0]), 0);
        }
    }

    #[test]
    fn sampling_follows_distribution() {
        let mut s = Sampler::new(&params(1.0, 1.0, None, 5));
        let logits = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        let ones = (0..4000).filter(|_| s.sample(&logits) == 1).count();
        assert!((2800..3200).contains(&ones), "{ones}");
    }
}
