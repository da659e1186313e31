//! Randomness for timing jitter ("fudge"): a tiny seedable generator, so policies stay
//! deterministic under test while devices in a house spread their retries apart.

/// A source of random 32-bit words. The platform seeds it from hardware entropy.
pub trait Rng {
    /// The next random word.
    fn next_u32(&mut self) -> u32;

    /// A uniform value in `[0, max)`; `0` when `max` is zero.
    fn below(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let wide = ((self.next_u32() as u64) << 32) | self.next_u32() as u64;
        wide % max
    }
}

/// SplitMix64: small, fast, and good enough for jitter (not for cryptography).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed; equal seeds give equal sequences.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Rng for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = rng.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "every bucket drawn in 1000 tries");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u32(), b.next_u32());
        }
    }
}
