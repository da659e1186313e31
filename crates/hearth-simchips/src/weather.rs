//! Simulated weather: the physical truth the weather station's chips sense, drifting like real
//! weather (a daily temperature cycle, slow random walks, humidity that falls as temperature
//! rises), deterministic from a seed and driven by the time it is given; plus the convenience
//! that wires the station's two chips to it on one simulated bus.
//!
//! The random walks are sampled on a fixed 10-second grid of simulated time and interpolated
//! linearly in between, so the conditions at a time depend only on the seed and that time (not
//! on how often they were asked for) and never jump.

use crate::ambient::{Ambient, Conditions};
use crate::bme280::{Bme280Model, ADDRESS_PRIMARY};
use crate::bus::SimI2cBus;
use crate::clock::SimClock;
use crate::hdc1080::{Hdc1080Model, ADDRESS as HDC1080_ADDRESS};
use crate::prng::SplitMix64;

const STEP_MS: u64 = 10_000;
const DAY_MS: f64 = 86_400_000.0;
/// Hour of the daily temperature minimum (the maximum comes 12 h later).
const COLDEST_HOUR: f64 = 3.0;
/// √3: scales a uniform draw in [-1, 1) to unit variance.
const UNIT_VARIANCE: f64 = 1.732_050_807_568_877_2;

/// Per-step standard deviation and pull back to the mean (fraction per step) of each walk.
/// Temperature: ~0.1 °C per minute, settling around ±2 °C over a day.
const TEMP_SIGMA_C: f64 = 0.04;
const TEMP_REVERT: f64 = 1.0 / 4_320.0;
const TEMP_WALK_LIMIT_C: f64 = 6.0;
/// Humidity's own walk on top of the temperature coupling.
const RH_SIGMA: f64 = 0.1;
const RH_REVERT: f64 = 1.0 / 1_080.0;
const RH_WALK_LIMIT: f64 = 10.0;
/// Relative humidity lost per degree of warming at constant moisture (roughly, near 15 °C).
const RH_PER_DEGREE: f64 = 3.0;
/// Pressure: ~10 Pa (0.1 hPa) per minute, a few hPa over a day.
const PRESSURE_SIGMA_PA: f64 = 4.0;
const PRESSURE_REVERT: f64 = 1.0 / 17_280.0;
const PRESSURE_MEAN_PA: f64 = 101_325.0;
const PRESSURE_MIN_PA: f64 = 96_000.0;
const PRESSURE_MAX_PA: f64 = 105_000.0;

/// The state of the random walks at one grid point.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Walk {
    temperature_c: f64,
    humidity_rh: f64,
    pressure_pa: f64,
}

/// The climate of one seed: what the walks wander around.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Climate {
    mean_temperature_c: f64,
    daily_amplitude_c: f64,
    mean_humidity_rh: f64,
}

/// Weather that drifts like the real thing, reproducible from a seed.
#[derive(Debug, Clone)]
pub struct WeatherModel {
    seed: u64,
    climate: Climate,
    rng: SplitMix64,
    /// Index of the grid point `current` belongs to; `next` is the following one.
    step: u64,
    current: Walk,
    next: Walk,
}

impl WeatherModel {
    /// The weather of `seed`, starting at simulated time 0 (midnight).
    pub fn new(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let climate = Climate {
            mean_temperature_c: rng.range(8.0, 22.0),
            daily_amplitude_c: rng.range(3.0, 7.0),
            mean_humidity_rh: rng.range(55.0, 75.0),
        };
        let start = Walk {
            temperature_c: rng.range(-2.0, 2.0),
            humidity_rh: rng.range(-3.0, 3.0),
            pressure_pa: PRESSURE_MEAN_PA + rng.range(-1_500.0, 1_500.0),
        };
        let mut model = WeatherModel {
            seed,
            climate,
            rng,
            step: 0,
            current: start,
            next: start,
        };
        model.next = model.walk(start);
        model
    }

    /// The seed this weather was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The conditions at simulated time `t_ms`. Any call order gives the same answer for the
    /// same time; going back in time replays the weather from the start.
    pub fn at(&mut self, t_ms: u64) -> Conditions {
        let step = t_ms / STEP_MS;
        if step < self.step {
            *self = WeatherModel::new(self.seed);
        }
        while self.step < step {
            self.current = self.next;
            self.next = self.walk(self.current);
            self.step += 1;
        }
        let fraction = (t_ms - step * STEP_MS) as f64 / STEP_MS as f64;
        let lerp = |a: f64, b: f64| a + (b - a) * fraction;
        let walk = Walk {
            temperature_c: lerp(self.current.temperature_c, self.next.temperature_c),
            humidity_rh: lerp(self.current.humidity_rh, self.next.humidity_rh),
            pressure_pa: lerp(self.current.pressure_pa, self.next.pressure_pa),
        };

        let c = self.climate;
        let hours = (t_ms as f64 / DAY_MS).fract() * 24.0;
        let daily =
            -c.daily_amplitude_c * (std::f64::consts::TAU * (hours - COLDEST_HOUR) / 24.0).cos();
        let temperature_c = c.mean_temperature_c + daily + walk.temperature_c;
        let humidity_rh = (c.mean_humidity_rh
            - RH_PER_DEGREE * (temperature_c - c.mean_temperature_c)
            + walk.humidity_rh)
            .clamp(0.0, 100.0);
        Conditions {
            temperature_c: temperature_c as f32,
            humidity_rh: humidity_rh as f32,
            pressure_pa: walk.pressure_pa as f32,
        }
    }

    /// One 10-second step of the three mean-reverting, bounded random walks.
    fn walk(&mut self, from: Walk) -> Walk {
        let mut draw = |sigma: f64| sigma * UNIT_VARIANCE * self.rng.range(-1.0, 1.0);
        let temperature_c = (from.temperature_c * (1.0 - TEMP_REVERT) + draw(TEMP_SIGMA_C))
            .clamp(-TEMP_WALK_LIMIT_C, TEMP_WALK_LIMIT_C);
        let humidity_rh = (from.humidity_rh * (1.0 - RH_REVERT) + draw(RH_SIGMA))
            .clamp(-RH_WALK_LIMIT, RH_WALK_LIMIT);
        let pressure_pa = (from.pressure_pa
            + (PRESSURE_MEAN_PA - from.pressure_pa) * PRESSURE_REVERT
            + draw(PRESSURE_SIGMA_PA))
        .clamp(PRESSURE_MIN_PA, PRESSURE_MAX_PA);
        Walk {
            temperature_c,
            humidity_rh,
            pressure_pa,
        }
    }
}

/// The controls of a simulated weather station: moves its weather along with simulated time and
/// lets a test or an operator override the conditions.
#[derive(Debug, Clone)]
pub struct WeatherHandle {
    model: WeatherModel,
    ambient: Ambient,
}

impl WeatherHandle {
    /// Sets the conditions the chips sense to the weather at `t_ms` and returns them.
    pub fn advance_to(&mut self, t_ms: u64) -> Conditions {
        let conditions = self.model.at(t_ms);
        self.ambient.set(conditions);
        conditions
    }

    /// Overrides the conditions until the next [`advance_to`](Self::advance_to).
    pub fn set_conditions(&self, conditions: Conditions) {
        self.ambient.set(conditions);
    }

    /// The conditions the chips sense now.
    pub fn conditions(&self) -> Conditions {
        self.ambient.get()
    }

    /// The shared ambient, to attach more chips that sense the same air.
    pub fn ambient(&self) -> Ambient {
        self.ambient.clone()
    }
}

/// The weather station's bus: an HDC1080 at 0x40 and a BME280 at 0x76 sensing the weather of
/// `seed` (at time 0 until the handle advances it), on a fresh virtual clock.
pub fn weather_station(seed: u64) -> (SimI2cBus, WeatherHandle) {
    weather_station_on(seed, SimClock::manual())
}

/// [`weather_station`] on a given clock; the simulator passes a clock that follows real time,
/// so the chips' conversion times are real delays.
pub fn weather_station_on(seed: u64, clock: SimClock) -> (SimI2cBus, WeatherHandle) {
    let mut model = WeatherModel::new(seed);
    let ambient = Ambient::new(model.at(0));
    let bus = SimI2cBus::with_clock(clock);
    bus.attach(HDC1080_ADDRESS, Hdc1080Model::new(ambient.clone()))
        .expect("a fresh bus has 0x40 free");
    bus.attach(ADDRESS_PRIMARY, Bme280Model::new(ambient.clone()))
        .expect("a fresh bus has 0x76 free");
    (bus, WeatherHandle { model, ambient })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_physical_limits_for_a_month() {
        let mut w = WeatherModel::new(3);
        for minute in 0..(31 * 24 * 60) {
            let c = w.at(minute * 60_000);
            assert!((-20.0..45.0).contains(&c.temperature_c), "{c:?}");
            assert!((0.0..=100.0).contains(&c.humidity_rh), "{c:?}");
            assert!(
                (PRESSURE_MIN_PA as f32..=PRESSURE_MAX_PA as f32).contains(&c.pressure_pa),
                "{c:?}"
            );
        }
    }

    #[test]
    fn daily_cycle_is_visible() {
        // Average over days: 15:00 is warmer than 03:00.
        let mut w = WeatherModel::new(11);
        let (mut warm, mut cold) = (0.0, 0.0);
        for day in 0..10u64 {
            let base = day * 86_400_000;
            cold += w.at(base + 3 * 3_600_000).temperature_c;
            warm += w.at(base + 15 * 3_600_000).temperature_c;
        }
        assert!(warm > cold + 20.0, "warm {warm} cold {cold}");
    }
}
