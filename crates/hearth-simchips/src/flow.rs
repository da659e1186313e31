//! Model of a pulse-output flow meter (a turbine with a Hall sensor) wired to a hardware pulse
//! counter, implementing [`PulseCounter`] so an appliance's flow code runs unchanged.
//!
//! The meter produces `rate` pulses per second with a 50 % duty cycle; time is the
//! [`SimClock`]. Pulses accrue exactly (fractions carry over), so over any interval the count is
//! `rate × time`, rounded down. The counter's glitch filter is modelled as on the ESP32 PCNT: it
//! is clamped to the hardware maximum ([`pcnt_filter`]) and drops pulses whose high time is
//! shorter than the filter. Faults ([`FlowFault`]): `noisy` adds bursts of 2 µs spikes (which a
//! filter of 2 µs or more removes), `readfails` makes every read fail, `stuck` counts nothing.
//! [`FlowMeter::inject`] adds pulses directly (an over-range burst for a test).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_drivers::pulses::{pcnt_filter, FilterSetting, PulseCounter};

use crate::clock::SimClock;
use crate::prng::SplitMix64;

/// Width of the spikes of [`FlowFault::Noisy`], in ns.
pub const SPIKE_NS: u32 = 2_000;
/// The PCNT's 16-bit counter: a read returns at most this many pulses.
pub const COUNTER_MAX: u32 = 32_767;

/// How the simulated meter and counter misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowFault {
    /// Healthy.
    #[default]
    None,
    /// Electrical noise: between 100 and 999 extra 2 µs spikes per second (seeded).
    Noisy,
    /// The counter cannot be read.
    ReadFails,
    /// A jammed turbine or cut wire: no pulses at all.
    Stuck,
}

impl FlowFault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            FlowFault::None => "ok",
            FlowFault::Noisy => "noisy",
            FlowFault::ReadFails => "readfails",
            FlowFault::Stuck => "stuck",
        }
    }
}

impl fmt::Display for FlowFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FlowFault {
    type Err = String;

    /// Accepts `ok`/`none`, `noisy`, `readfails` (also `readfail`, `read-fails`, `read_fails`),
    /// `stuck`, in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" | "none" => Ok(FlowFault::None),
            "noisy" => Ok(FlowFault::Noisy),
            "readfails" | "readfail" | "read-fails" | "read_fails" => Ok(FlowFault::ReadFails),
            "stuck" => Ok(FlowFault::Stuck),
            _ => Err(format!(
                "unknown flow meter fault '{}': expected one of ok (or none), noisy, readfails, stuck",
                s.trim()
            )),
        }
    }
}

/// A read of a counter in [`FlowFault::ReadFails`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowReadError;

impl fmt::Display for FlowReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pulse counter read failed")
    }
}

impl std::error::Error for FlowReadError {}

#[derive(Debug)]
struct State {
    clock: SimClock,
    rate: f64,
    fault: FlowFault,
    filter: FilterSetting,
    last_us: u64,
    fraction: f64,
    count: u64,
    rng: SplitMix64,
}

impl State {
    /// Brings the count up to the clock's time.
    fn update(&mut self) {
        let now = self.clock.now_us();
        let dt_us = now.saturating_sub(self.last_us);
        self.last_us = now;
        if dt_us == 0 {
            return;
        }
        let seconds = dt_us as f64 / 1e6;
        if self.fault != FlowFault::Stuck && self.rate > 0.0 {
            // High time of a 50 % duty pulse, in ns.
            let high_ns = 0.5e9 / self.rate;
            if high_ns >= f64::from(self.filter.applied_ns) {
                self.fraction += self.rate * seconds;
                let whole = self.fraction.floor();
                self.fraction -= whole;
                self.count = self.count.saturating_add(whole as u64);
            }
        }
        if self.fault == FlowFault::Noisy && self.filter.applied_ns < SPIKE_NS {
            let spikes = self.rng.range(100.0, 1000.0) * seconds;
            self.count = self.count.saturating_add(spikes as u64);
        }
    }
}

/// The meter and its counter; a cloneable handle (give one clone to the appliance as its
/// [`PulseCounter`], keep one to set the flow).
#[derive(Debug, Clone)]
pub struct FlowMeter(Arc<Mutex<State>>);

impl FlowMeter {
    /// A meter at rest on `clock`; `seed` drives the noise of [`FlowFault::Noisy`].
    pub fn new(clock: SimClock, seed: u64) -> Self {
        let last_us = clock.now_us();
        FlowMeter(Arc::new(Mutex::new(State {
            clock,
            rate: 0.0,
            fault: FlowFault::None,
            filter: pcnt_filter(0),
            last_us,
            fraction: 0.0,
            count: 0,
            rng: SplitMix64::new(seed),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.update();
        s
    }

    /// Sets the flow as pulses per second from now on (negative or non-finite = 0).
    pub fn set_rate(&self, pulses_per_second: f64) {
        let rate = if pulses_per_second.is_finite() {
            pulses_per_second.max(0.0)
        } else {
            0.0
        };
        self.state().rate = rate;
    }

    /// The flow in pulses per second.
    pub fn rate(&self) -> f64 {
        self.state().rate
    }

    /// Sets a fault (`FlowFault::None` heals).
    pub fn set_fault(&self, fault: FlowFault) {
        self.state().fault = fault;
    }

    /// Adds `pulses` to the count at once (a burst of interference).
    pub fn inject(&self, pulses: u32) {
        let mut s = self.state();
        s.count = s.count.saturating_add(u64::from(pulses));
    }

    /// The glitch filter applied to the counter.
    pub fn filter(&self) -> FilterSetting {
        self.state().filter
    }

    /// Pulses counted and not yet taken.
    pub fn pending(&self) -> u64 {
        self.state().count
    }
}

impl PulseCounter for FlowMeter {
    type Error = FlowReadError;

    fn take(&mut self) -> Result<u32, FlowReadError> {
        let mut s = self.state();
        if s.fault == FlowFault::ReadFails {
            return Err(FlowReadError);
        }
        let n = std::mem::take(&mut s.count);
        Ok(u32::try_from(n).unwrap_or(u32::MAX).min(COUNTER_MAX))
    }

    fn set_glitch_filter_ns(&mut self, ns: u32) -> FilterSetting {
        let f = pcnt_filter(ns);
        self.state().filter = f;
        f
    }
}
