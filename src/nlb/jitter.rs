//! dmfc_rsg's window jitter, drawn exactly as nlb_tools draws it: legacy numpy MT19937 seeded
//! with 0 at every builder call, one `random()` per trial of the mask (test trials included).

use super::time::np_round;

/// The Mersenne Twister MT19937 with numpy's legacy `random()` (53-bit doubles).
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    /// `init_genrand` seeding, as `np.random.seed(int)` does.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `random()`: a double in [0, 1) from two draws.
    pub fn random(&mut self) -> f64 {
        let a = u64::from(self.next_u32() >> 5);
        let b = u64::from(self.next_u32() >> 6);
        (a * 67_108_864 + b) as f64 / 9_007_199_254_740_992.0
    }
}

/// Jitter in ms for each masked trial (table order); `None` where `tp` is NaN.
pub fn dmfc_jitter(tp: &[f64], split: &[String], mask: &[bool], bw_ms: i64) -> Vec<Option<i64>> {
    let mut rng = Mt19937::new(0);
    let bw = bw_ms as f64;
    (0..tp.len())
        .filter(|&r| mask[r])
        .map(|r| {
            let hi = if split[r] == "test" {
                0.0
            } else {
                (1500.0 - tp[r]).clamp(0.0, 300.0)
            };
            let lo_b = np_round(0.0 / bw, 4).floor();
            let hi_b = np_round(hi / bw, 4).floor();
            let u = rng.random();
            let bins = (u * (hi_b - lo_b) + lo_b).round_ties_even();
            bins.is_finite().then(|| bins as i64 * bw_ms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_legacy_stream() {
        // np.random.seed(0); np.random.random(3)
        let mut rng = Mt19937::new(0);
        let expected = [0.5488135039273248, 0.7151893663724195, 0.6027633760716439];
        for e in expected {
            assert_eq!(rng.random(), e);
        }
    }

    #[test]
    fn test_trials_draw_but_get_no_jitter() {
        let split = vec!["train".to_string(), "test".to_string(), "train".to_string()];
        let j = dmfc_jitter(&[1400.0, 1000.0, f64::NAN], &split, &[true; 3], 20);
        // u = 0.5488 * 5 bins = 2.74 -> 3 bins -> 60 ms
        assert_eq!(j, vec![Some(60), Some(0), None]);
    }
}
