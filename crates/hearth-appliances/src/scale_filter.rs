//! The scale sensor's sample filter, sans-IO: it is given weights one at a time and decides when
//! a measurement round is complete, whether it was stable enough, and when to give up.
//!
//! The rule, from the reference's `scale_sensor`: a round is [`SAMPLES_PER_ROUND`] samples.
//! A sample survives if it lies within [`MAX_DEVIATION_KG`] of the round's provisional mean;
//! with at least [`MIN_SURVIVORS`] survivors the weight is the survivors' mean, otherwise the
//! round is discarded and counted as a retry; more than [`MAX_RETRIES`] retries in a row is
//! malfunction [`MALFUNCTION_UNSTABLE`]. A successful round resets the retries and sampling goes
//! on: later rounds refine the weight.
//!
//! One deviation, for inputs the reference never produces: a sample that is not finite (NaN,
//! infinity) never survives and is left out of the provisional mean, instead of poisoning the
//! whole round.

/// Malfunction code: the HX711 was absent or not ready when the sensor was enabled.
pub const MALFUNCTION_ABSENT: u32 = 1;
/// Malfunction code: reading a sample failed.
pub const MALFUNCTION_READ: u32 = 4;
/// Malfunction code: the readings never settled (too many failed rounds).
pub const MALFUNCTION_UNSTABLE: u32 = 8;

/// Samples per measurement round.
pub const SAMPLES_PER_ROUND: usize = 12;
/// Survivors a round needs to produce a weight.
pub const MIN_SURVIVORS: usize = 8;
/// A sample survives if it is strictly closer than this to the round's provisional mean (kg).
pub const MAX_DEVIATION_KG: f32 = 0.050;
/// Failed rounds in a row that are tolerated; one more is [`MALFUNCTION_UNSTABLE`].
pub const MAX_RETRIES: u8 = 3;

/// What a sample led to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The round is not complete, or it failed and a new round has begun.
    NeedMore,
    /// The round is complete and stable: the mean of its survivors, in kg.
    Weight(f32),
    /// The readings did not settle: [`MALFUNCTION_UNSTABLE`]. Final until [`ScaleFilter::reset`].
    Malfunction(u32),
}

/// The state of the filter: the current round's samples, the retries, the last weight.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleFilter {
    samples: [f32; SAMPLES_PER_ROUND],
    len: usize,
    retries: u8,
    weight: Option<f32>,
    malfunction: Option<u32>,
}

impl Default for ScaleFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl ScaleFilter {
    /// An empty filter: no samples, no retries, no weight.
    pub const fn new() -> Self {
        ScaleFilter {
            samples: [0.0; SAMPLES_PER_ROUND],
            len: 0,
            retries: 0,
            weight: None,
            malfunction: None,
        }
    }

    /// Adds one sample (kg). Completes a round every [`SAMPLES_PER_ROUND`] samples; after a
    /// malfunction the sample is ignored and the malfunction returned again.
    pub fn push(&mut self, kg: f32) -> Outcome {
        if let Some(code) = self.malfunction {
            return Outcome::Malfunction(code);
        }
        if let Some(slot) = self.samples.get_mut(self.len) {
            *slot = kg;
            self.len += 1;
        }
        if self.len < SAMPLES_PER_ROUND {
            return Outcome::NeedMore;
        }
        let round = evaluate(&self.samples);
        self.len = 0;
        match round {
            Some(weight) => {
                self.retries = 0;
                self.weight = Some(weight);
                Outcome::Weight(weight)
            }
            None => {
                self.retries = self.retries.saturating_add(1);
                if self.retries > MAX_RETRIES {
                    self.malfunction = Some(MALFUNCTION_UNSTABLE);
                    Outcome::Malfunction(MALFUNCTION_UNSTABLE)
                } else {
                    Outcome::NeedMore
                }
            }
        }
    }

    /// The weight of the last stable round, if any (kept after a later malfunction).
    pub fn weight(&self) -> Option<f32> {
        self.weight
    }

    /// The malfunction code, once the readings were declared unstable.
    pub fn malfunction(&self) -> Option<u32> {
        self.malfunction
    }

    /// Failed rounds since the last stable one.
    pub fn retries(&self) -> u8 {
        self.retries
    }

    /// Samples collected in the current round.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Forgets everything (the sensor was enabled again).
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

/// The weight of a complete round, or `None` if fewer than [`MIN_SURVIVORS`] samples survive.
fn evaluate(samples: &[f32]) -> Option<f32> {
    let provisional = mean(samples.iter().copied().filter(|w| w.is_finite()))?;
    let survivors = samples.iter().copied().filter(|&w| {
        let d = w - provisional;
        // |d| < MAX without `abs`, which needs std on some toolchains; false for NaN.
        d < MAX_DEVIATION_KG && d > -MAX_DEVIATION_KG
    });
    if survivors.clone().count() < MIN_SURVIVORS {
        return None;
    }
    mean(survivors).filter(|w| w.is_finite())
}

/// The mean of the values (accumulated in f64), `None` for none.
fn mean(values: impl Iterator<Item = f32>) -> Option<f32> {
    let (sum, n) = values.fold((0.0f64, 0u32), |(sum, n), w| {
        (sum + f64::from(w), n.saturating_add(1))
    });
    if n == 0 {
        return None;
    }
    let mean = (sum / f64::from(n)) as f32;
    mean.is_finite().then_some(mean)
}

/// Converts a raw HX711 reading to kg with the appliance's calibration:
/// `weight_kg = (raw + b) / a`, where `b` is the negated raw zero offset and `a` the raw counts
/// per kg (`calibration_b`, `calibration_a` in `config.txt`). `None` if `a` is zero or either
/// constant is not finite, or the result is not a finite `f32`. Computed in f64, so large raw
/// values and offsets do not lose precision.
pub fn calibrate(raw: i32, a: f32, b: f32) -> Option<f32> {
    if a == 0.0 || !a.is_finite() || !b.is_finite() {
        return None;
    }
    let kg = (f64::from(raw) + f64::from(b)) / f64::from(a);
    let kg = kg as f32;
    kg.is_finite().then_some(kg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        let d = a - b;
        d < 1e-5 && d > -1e-5
    }

    fn weight(outcome: Outcome) -> f32 {
        match outcome {
            Outcome::Weight(w) => w,
            other => panic!("expected a weight, got {other:?}"),
        }
    }

    /// Pushes a whole round; every sample but the last must ask for more.
    fn round(filter: &mut ScaleFilter, samples: &[f32; SAMPLES_PER_ROUND]) -> Outcome {
        for (i, &w) in samples[..SAMPLES_PER_ROUND - 1].iter().enumerate() {
            assert_eq!(filter.push(w), Outcome::NeedMore, "sample {i}");
        }
        filter.push(samples[SAMPLES_PER_ROUND - 1])
    }

    #[test]
    fn all_samples_equal() {
        let mut f = ScaleFilter::new();
        assert_eq!(f.weight(), None);
        assert_eq!(round(&mut f, &[72.4; 12]), Outcome::Weight(72.4));
        assert_eq!(f.weight(), Some(72.4));
        assert_eq!((f.retries(), f.pending(), f.malfunction()), (0, 0, None));
    }

    #[test]
    fn two_outliers_are_rejected() {
        let mut f = ScaleFilter::new();
        let mut samples = [10.0; 12];
        samples[3] = 11.0;
        samples[8] = 9.5;
        // Provisional mean 10.041 667: the ten good samples deviate by 0.042 < 0.05.
        let w = weight(round(&mut f, &samples));
        assert!(close(w, 10.0), "{w}");
    }

    #[test]
    fn survivors_are_averaged() {
        let mut f = ScaleFilter::new();
        let samples = [
            5.00, 5.01, 5.02, 4.99, 4.98, 5.00, 5.01, 5.02, 4.99, 4.98, 7.0, 5.0,
        ];
        // Mean of all 5.166..., so every sample but 7.0 is out by > 0.05: the round fails.
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        assert_eq!(f.retries(), 1);
        // Without the outlier the noisy samples average exactly 5.0.
        let mut samples = samples;
        samples[10] = 5.0;
        let w = weight(round(&mut f, &samples));
        assert!(close(w, 5.0), "{w}");
        assert_eq!(f.retries(), 0, "a stable round clears the retries");
    }

    #[test]
    fn borderline_deviation_is_exclusive() {
        // 8 samples at 0.0 and 4 at 0.15: mean 0.05, so the zeros deviate by exactly 0.05 and
        // do not survive (the rule is strict), the 0.15s by 0.10.
        let mut f = ScaleFilter::new();
        let mut samples = [0.0; 12];
        samples[8..].fill(0.15);
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        assert_eq!(f.retries(), 1);
        // 8 at 0.0 and 4 at 0.12: mean 0.04, the zeros survive, the mean of survivors is 0.
        samples[8..].fill(0.12);
        assert_eq!(round(&mut f, &samples), Outcome::Weight(0.0));
    }

    #[test]
    fn five_outliers_cause_a_retry() {
        let mut f = ScaleFilter::new();
        let mut samples = [20.0; 12];
        samples[..5].fill(20.3);
        // Mean 20.125: the 7 good samples deviate by 0.125 too; nothing survives.
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        assert_eq!((f.retries(), f.pending(), f.weight()), (1, 0, None));
        // With 4 symmetric outliers the 8 good samples survive.
        let mut samples = [20.0; 12];
        samples[..2].fill(20.5);
        samples[2..4].fill(19.5);
        let w = weight(round(&mut f, &samples));
        assert!(close(w, 20.0), "{w}");
        // ...but with 5 symmetric-ish outliers only 7 survive: a retry.
        let mut samples = [20.0; 12];
        samples[..3].fill(20.5);
        samples[3..5].fill(19.25);
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        assert_eq!(f.retries(), 1);
    }

    #[test]
    fn four_failed_rounds_are_malfunction_8() {
        let mut f = ScaleFilter::new();
        let unstable: [f32; 12] = core::array::from_fn(|i| if i % 2 == 0 { 1.0 } else { 2.0 });
        for retry in 1..=3 {
            assert_eq!(round(&mut f, &unstable), Outcome::NeedMore);
            assert_eq!(f.retries(), retry);
        }
        assert_eq!(round(&mut f, &unstable), Outcome::Malfunction(8));
        assert_eq!(f.malfunction(), Some(MALFUNCTION_UNSTABLE));
        // Final: even a perfect round is ignored now.
        for _ in 0..24 {
            assert_eq!(f.push(1.0), Outcome::Malfunction(8));
        }
        assert_eq!(f.weight(), None);
        f.reset();
        assert_eq!(f, ScaleFilter::new());
        assert_eq!(round(&mut f, &[1.0; 12]), Outcome::Weight(1.0));
    }

    #[test]
    fn three_failed_rounds_then_a_good_one_is_fine() {
        let mut f = ScaleFilter::new();
        let unstable: [f32; 12] = core::array::from_fn(|i| i as f32);
        for _ in 0..3 {
            assert_eq!(round(&mut f, &unstable), Outcome::NeedMore);
        }
        assert_eq!(round(&mut f, &[3.25; 12]), Outcome::Weight(3.25));
        // The retries start over: three more failures are again tolerated.
        for _ in 0..3 {
            assert_eq!(round(&mut f, &unstable), Outcome::NeedMore);
        }
        assert_eq!(round(&mut f, &unstable), Outcome::Malfunction(8));
        assert_eq!(f.weight(), Some(3.25), "the last good weight is kept");
    }

    #[test]
    fn negative_weights() {
        let mut f = ScaleFilter::new();
        let mut samples = [-0.75; 12];
        samples[0] = -0.72;
        samples[1] = -0.78;
        samples[11] = 3.0;
        // One outlier at 3.0 drags the provisional mean to -0.4375: every sample is out.
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        samples[11] = -0.75;
        let w = weight(round(&mut f, &samples));
        assert!(close(w, -0.75), "{w}");
        let mut samples = [-1.2; 12];
        samples[5] = -1.5;
        let w = weight(round(&mut f, &samples));
        assert!(close(w, -1.2), "{w}");
    }

    #[test]
    fn a_later_round_refines_the_weight() {
        let mut f = ScaleFilter::new();
        assert_eq!(round(&mut f, &[60.0; 12]), Outcome::Weight(60.0));
        assert_eq!(f.pending(), 0);
        // Sampling goes on: a partial round does not change the weight.
        for _ in 0..5 {
            assert_eq!(f.push(60.2), Outcome::NeedMore);
        }
        assert_eq!(f.weight(), Some(60.0));
        assert_eq!(f.pending(), 5);
        for _ in 0..6 {
            assert_eq!(f.push(60.2), Outcome::NeedMore);
        }
        let w = weight(f.push(60.2));
        assert!(close(w, 60.2), "{w}");
        assert_eq!(f.weight(), Some(w));
    }

    #[test]
    fn non_finite_samples_never_survive() {
        let mut f = ScaleFilter::new();
        let mut samples = [2.0; 12];
        samples[0] = f32::NAN;
        samples[1] = f32::INFINITY;
        samples[2] = f32::NEG_INFINITY;
        samples[3] = f32::MAX;
        // f32::MAX is finite but pulls the mean far away: nothing survives.
        assert_eq!(round(&mut f, &samples), Outcome::NeedMore);
        samples[3] = 2.0;
        assert_eq!(round(&mut f, &samples), Outcome::Weight(2.0));
        assert_eq!(round(&mut f, &[f32::NAN; 12]), Outcome::NeedMore);
        let extreme: [f32; 12] = core::array::from_fn(|i| if i < 6 { f32::MAX } else { -f32::MAX });
        assert_eq!(round(&mut f, &extreme), Outcome::NeedMore);
        assert_eq!(round(&mut f, &[f32::MAX; 12]), Outcome::Weight(f32::MAX));
    }

    #[test]
    fn calibration() {
        // b = -zero offset, a = counts per kg.
        assert_eq!(calibrate(50_000, 20_000.0, -50_000.0), Some(0.0));
        assert_eq!(calibrate(70_000, 20_000.0, -50_000.0), Some(1.0));
        assert_eq!(calibrate(30_000, 20_000.0, -50_000.0), Some(-1.0));
        assert_eq!(calibrate(1_497_000, 20_000.0, -50_000.0), Some(72.35));
        // Negative a (a load cell wired the other way round).
        assert_eq!(calibrate(-10_000, -20_000.0, 0.0), Some(0.5));
        // The 24-bit limits and beyond, computed without overflow or precision loss.
        assert_eq!(calibrate(8_388_607, 1.0, 1.0), Some(8_388_608.0));
        assert_eq!(calibrate(-8_388_608, 1.0, 8_388_608.0), Some(0.0));
        assert_eq!(calibrate(i32::MAX, 1.0, 0.0), Some(2_147_483_600.0));
        assert_eq!(calibrate(i32::MIN, 1.0, 0.0), Some(-2_147_483_600.0));
        assert_eq!(calibrate(16_777_217, 1.0, -16_777_216.0), Some(1.0));
        // Impossible calibrations.
        assert_eq!(calibrate(1, 0.0, 0.0), None);
        assert_eq!(calibrate(1, -0.0, 0.0), None);
        assert_eq!(calibrate(1, f32::NAN, 0.0), None);
        assert_eq!(calibrate(1, f32::INFINITY, 0.0), None);
        assert_eq!(calibrate(1, 1.0, f32::NAN), None);
        assert_eq!(calibrate(1, 1.0, f32::NEG_INFINITY), None);
        // A tiny a overflows f32: no infinite weight.
        assert_eq!(calibrate(8_000_000, 1e-38, 0.0), None);
    }

    #[test]
    fn calibrated_samples_through_the_filter() {
        let (a, b) = (21_345.5, -84_012.0);
        let mut f = ScaleFilter::new();
        let raws = [
            1_684_000, 1_684_300, 1_683_700, 1_684_100, 1_683_900, 1_684_000, 1_684_200, 1_683_800,
            1_684_000, 1_690_000, 1_684_000, 1_684_000,
        ];
        let mut outcome = Outcome::NeedMore;
        for raw in raws {
            outcome = f.push(calibrate(raw, a, b).expect("valid calibration"));
        }
        // The survivors average 1 684 000 counts → (1 684 000 − 84 012) / 21 345.5 = 74.956 69
        // kg; 1 690 000 is 0.26 kg from the provisional mean and rejected.
        let w = weight(outcome);
        let d = w - 74.956_69;
        assert!(d < 1e-4 && d > -1e-4, "{w}");
    }
}
