//! The deterministic generator behind the fault rates (`fake-faults`' `*-rate` keys).
//!
//! splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
//! 2014; the generator that seeds xoshiro): a 64-bit counter stepped by the golden ratio and
//! put through a mixing function. A few lines, no dependency, and good enough statistics for
//! deciding whether a call fails.
//!
//! Each cloud handle seeds its own generator from `fault-seed` and a stream number: the
//! process id, so launchers of one run that share a seed do not fail in lockstep. Given the
//! seed, the stream and the order of the calls, the faults are always the same; two clouds
//! of one process with the same seed draw the same sequence.

/// Added to the state at each step: 2^64 divided by the golden ratio.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One fault generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultRng {
    state: u64,
}

impl FaultRng {
    /// A generator for `seed` and `stream`; the same pair always gives the same sequence.
    pub(crate) fn new(seed: u64, stream: u64) -> FaultRng {
        // The stream is mixed first so that neighbouring process ids give unrelated sequences
        // rather than ones shifted by a few steps.
        FaultRng {
            state: seed ^ mix(stream.wrapping_add(GOLDEN_GAMMA)),
        }
    }

    /// The generator of this process for `seed` (the stream is the process id).
    pub(crate) fn for_this_process(seed: u64) -> FaultRng {
        FaultRng::new(seed, u64::from(std::process::id()))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }

    /// A draw from [0, 1) with 53 random bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `rate`: never at 0 (and nothing is drawn, so a rate that is not
    /// set leaves the sequence of the others alone), always at 1.
    pub(crate) fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.next_unit() < rate
    }
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(rng: &mut FaultRng, rate: f64, draws: usize) -> usize {
        (0..draws).filter(|_| rng.chance(rate)).count()
    }

    #[test]
    fn it_is_splitmix64() {
        // The reference implementation's first outputs from state 0.
        let mut rng = FaultRng { state: 0 };
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn a_rate_of_zero_never_fires_and_one_always_does() {
        let mut rng = FaultRng::new(7, 1);
        assert_eq!(hits(&mut rng, 0.0, 10_000), 0);
        assert_eq!(
            rng,
            FaultRng::new(7, 1),
            "a zero rate draws nothing from the sequence"
        );
        assert_eq!(hits(&mut rng, 1.0, 10_000), 10_000);
    }

    #[test]
    fn a_rate_of_three_tenths_fires_about_three_times_in_ten() {
        for seed in [0, 1, 42, u64::MAX] {
            let fired = hits(&mut FaultRng::new(seed, 12345), 0.3, 10_000);
            // The standard deviation is 46; this bound is more than six of them.
            assert!(
                (2_700..=3_300).contains(&fired),
                "seed {seed}: {fired} of 10,000"
            );
        }
    }

    #[test]
    fn the_seed_and_stream_fix_the_sequence() {
        let sequence = |seed, stream| {
            let mut rng = FaultRng::new(seed, stream);
            (0..64).map(|_| rng.chance(0.5)).collect::<Vec<bool>>()
        };
        assert_eq!(sequence(3, 100), sequence(3, 100));
        assert_ne!(sequence(3, 100), sequence(4, 100), "another seed");
        assert_ne!(sequence(3, 100), sequence(3, 101), "another process");
        assert_eq!(
            FaultRng::for_this_process(3),
            FaultRng::new(3, u64::from(std::process::id()))
        );
    }
}
