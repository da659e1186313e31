//! Bit-level model of the Avia HX711 load-cell ADC behind two simulated GPIOs, so the real
//! bit-banging driver runs unchanged: [`Hx711Sck`] implements `OutputPin` (`PD_SCK`),
//! [`Hx711Dout`] implements `InputPin` (`DOUT`), and [`Hx711Model`] is the handle a test or the
//! simulator keeps to put weight on the scale and inject faults.
//!
//! What is modelled, on the [`SimClock`] (µs resolution):
//! * Conversions at 10 samples per second: after power-up the first result is ready after the
//!   400 ms settling time, after a complete read the next one 100 ms after its 25th pulse.
//!   `DOUT` is high while converting and low when a result is ready.
//! * Read-out: the first rising edge of `PD_SCK` latches the result (so it reflects the load at
//!   that moment) and puts its bit 23 on `DOUT`; each further rising edge the next bit, MSB first.
//!   The 25th edge pulls `DOUT` high and selects channel A, gain 128 for the next conversion; a
//!   26th edge selects channel B, gain 32, a 27th channel A, gain 64 (channel A at gain 64 reads
//!   half the counts; channel B has nothing connected and reads only noise). A read-out left
//!   unfinished for a conversion period is replaced by a fresh result, as on the free-running
//!   chip.
//! * Power-down: `PD_SCK` high for [`POWER_DOWN_US`] (60 µs) or longer powers the chip down
//!   (`DOUT` high); taking `PD_SCK` low again powers it up, resets it to channel A, gain 128 and
//!   starts the settling time. The threshold can be raised ([`Hx711Model::set_power_down_us`])
//!   when the clock follows real time and the host's microsecond delays are much longer than a
//!   microsecond.
//! * The load: `raw = zero_offset + counts_per_kg × load_kg + noise` (uniform noise from a seeded
//!   generator), rounded and saturated to the 24-bit range as the chip does.
//! * Faults ([`Hx711Fault`]): absent (`DOUT` high forever), read failure (`DOUT` stuck low) and
//!   unstable readings (every other conversion off by ±1 kg).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::SimClock;
use crate::prng::SplitMix64;

/// Conversion period at 10 samples per second (the RATE pin low).
pub const CONVERSION_PERIOD_US: u64 = 100_000;
/// Output settling time after power-up or reset at 10 samples per second.
pub const SETTLING_US: u64 = 400_000;
/// `PD_SCK` high for this long powers the chip down (datasheet: 60 µs).
pub const POWER_DOWN_US: u64 = 60;
/// The largest and smallest values the chip outputs; it saturates there.
pub const RAW_MAX: i32 = 0x7F_FFFF;
/// See [`RAW_MAX`].
pub const RAW_MIN: i32 = -0x80_0000;
/// The size of the spikes of [`Hx711Fault::Unstable`], in kg.
pub const UNSTABLE_SPIKE_KG: f64 = 1.0;

/// How a simulated HX711 misbehaves. Words as in [`crate::fault::ChipFault`], plus `unstable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hx711Fault {
    /// Healthy.
    #[default]
    None,
    /// Unplugged or unpowered: `DOUT` stays high (pulled up), clock pulses do nothing. When the
    /// fault is cleared the chip powers up as from cold (settling time).
    Absent,
    /// `DOUT` stuck low: the chip looks ready, every bit reads 0 and `DOUT` never goes back high
    /// after the 25th pulse.
    ReadFails,
    /// Readings that will not settle: every other conversion is off by ±[`UNSTABLE_SPIKE_KG`]
    /// (random sign), as with a scale that is wobbling or touched.
    Unstable,
}

impl Hx711Fault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            Hx711Fault::None => "ok",
            Hx711Fault::Absent => "absent",
            Hx711Fault::ReadFails => "readfails",
            Hx711Fault::Unstable => "unstable",
        }
    }
}

impl fmt::Display for Hx711Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The words accepted for HX711 faults, for error messages.
const FAULT_WORDS: &str = "ok (or none), absent, readfails, unstable";

impl FromStr for Hx711Fault {
    type Err = String;

    /// Accepts `ok`/`none`, `absent`, `readfails` (also `readfail`, `read-fails`, `read_fails`),
    /// `unstable`, in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        let word = s.trim().to_ascii_lowercase();
        match word.as_str() {
            "ok" | "none" => Ok(Hx711Fault::None),
            "absent" => Ok(Hx711Fault::Absent),
            "readfails" | "readfail" | "read-fails" | "read_fails" => Ok(Hx711Fault::ReadFails),
            "unstable" => Ok(Hx711Fault::Unstable),
            _ => Err(format!(
                "unknown hx711 fault '{}': expected one of {FAULT_WORDS}",
                s.trim()
            )),
        }
    }
}

/// The load cell and the analogue front end, in raw counts at channel A, gain 128.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadCell {
    /// Raw value with nothing on the scale.
    pub zero_offset: i32,
    /// Raw counts per kilogram on the scale.
    pub counts_per_kg: f64,
    /// Half-width of the uniform noise added to every conversion, in counts (0 = exact).
    pub noise_counts: f64,
}

impl Default for LoadCell {
    /// A bathroom-scale-like cell: offset 50 000, 20 000 counts per kg (≈ 420 kg to full
    /// scale), noise ±100 counts (±5 g).
    fn default() -> Self {
        LoadCell {
            zero_offset: 50_000,
            counts_per_kg: 20_000.0,
            noise_counts: 100.0,
        }
    }
}

impl LoadCell {
    /// A noise-free cell; with `LoadCell::exact(0, 1.0)` the raw value equals the load.
    pub fn exact(zero_offset: i32, counts_per_kg: f64) -> Self {
        LoadCell {
            zero_offset,
            counts_per_kg,
            noise_counts: 0.0,
        }
    }
}

/// Channel and gain of the next conversion, as chosen by the number of clock pulses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gain {
    /// 25 pulses: channel A, gain 128 (the power-up default).
    A128,
    /// 26 pulses: channel B, gain 32.
    B32,
    /// 27 pulses: channel A, gain 64.
    A64,
}

/// Where the chip is in its conversion / read-out cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Converting (`DOUT` high) until `ready_at_us`; `extra` counts the pulses after the 25th.
    Converting { ready_at_us: u64, extra: u8 },
    /// A result is ready (`DOUT` low), not yet latched.
    Ready,
    /// Shifting out `word`; `pulses` rising edges so far (1..=24), the last at `last_edge_us`.
    Shifting {
        word: u32,
        pulses: u8,
        last_edge_us: u64,
    },
}

struct Chip {
    clock: SimClock,
    cell: LoadCell,
    rng: SplitMix64,
    fault: Hx711Fault,
    load_kg: f64,
    power_down_us: u64,
    sck_high: bool,
    sck_rose_us: u64,
    powered: bool,
    phase: Phase,
    gain: Gain,
    /// Results latched so far (for the unstable fault's every-other pattern and for tests).
    conversions: u64,
}

impl Chip {
    /// Brings the state up to `now`: power-down by a long `PD_SCK` high, conversions finishing,
    /// stale read-outs replaced.
    fn update(&mut self, now: u64) {
        if !self.powered {
            return;
        }
        if self.sck_high && now.saturating_sub(self.sck_rose_us) >= self.power_down_us {
            self.powered = false;
            return;
        }
        match self.phase {
            Phase::Converting { ready_at_us, .. } if now >= ready_at_us => {
                self.phase = Phase::Ready;
            }
            Phase::Shifting { last_edge_us, .. }
                if now.saturating_sub(last_edge_us) >= CONVERSION_PERIOD_US =>
            {
                self.phase = Phase::Ready;
            }
            _ => {}
        }
    }

    fn power_up(&mut self, now: u64) {
        self.powered = true;
        self.gain = Gain::A128;
        self.phase = Phase::Converting {
            ready_at_us: now.saturating_add(SETTLING_US),
            extra: 0,
        };
    }

    fn rising_edge(&mut self, now: u64) {
        self.phase = match self.phase {
            Phase::Ready => Phase::Shifting {
                word: self.convert(),
                pulses: 1,
                last_edge_us: now,
            },
            Phase::Shifting { word, pulses, .. } if pulses < 24 => Phase::Shifting {
                word,
                pulses: pulses + 1,
                last_edge_us: now,
            },
            Phase::Shifting { .. } => {
                // The 25th pulse.
                self.gain = Gain::A128;
                Phase::Converting {
                    ready_at_us: now.saturating_add(CONVERSION_PERIOD_US),
                    extra: 0,
                }
            }
            Phase::Converting { ready_at_us, extra } => {
                match extra {
                    0 => self.gain = Gain::B32,
                    1 => self.gain = Gain::A64,
                    // More than 27 pulses: a communication error; ignored.
                    _ => {}
                }
                Phase::Converting {
                    ready_at_us,
                    extra: extra.saturating_add(1),
                }
            }
        };
    }

    /// The 24-bit result of a conversion now, in the low bits.
    fn convert(&mut self) -> u32 {
        let cell = self.cell;
        let noise = if cell.noise_counts > 0.0 {
            self.rng.range(-cell.noise_counts, cell.noise_counts)
        } else {
            0.0
        };
        let mut load = self.load_kg;
        if self.fault == Hx711Fault::Unstable && self.conversions % 2 == 1 {
            let sign = if self.rng.next_u64() & 1 == 0 {
                1.0
            } else {
                -1.0
            };
            load += sign * UNSTABLE_SPIKE_KG;
        }
        self.conversions = self.conversions.wrapping_add(1);
        let signal = f64::from(cell.zero_offset) + cell.counts_per_kg * load;
        let value = match self.gain {
            Gain::A128 => signal + noise,
            Gain::A64 => signal / 2.0 + noise,
            Gain::B32 => noise,
        };
        // `as` saturates (NaN → 0); the clamp is the chip's own saturation.
        let raw = (value.round() as i64).clamp(i64::from(RAW_MIN), i64::from(RAW_MAX));
        (raw as u32) & 0xFF_FFFF
    }

    fn dout_high(&mut self) -> bool {
        let now = self.clock.now_us();
        self.update(now);
        match self.fault {
            Hx711Fault::Absent => return true,
            Hx711Fault::ReadFails => return false,
            Hx711Fault::None | Hx711Fault::Unstable => {}
        }
        if !self.powered {
            return true;
        }
        match self.phase {
            Phase::Converting { .. } => true,
            Phase::Ready => false,
            Phase::Shifting { word, pulses, .. } => word & (1 << (24 - u32::from(pulses))) != 0,
        }
    }

    fn set_sck(&mut self, high: bool) {
        if high == self.sck_high {
            return;
        }
        let now = self.clock.now_us();
        self.update(now);
        self.sck_high = high;
        if high {
            self.sck_rose_us = now;
        }
        if self.fault == Hx711Fault::Absent {
            return;
        }
        match (high, self.powered) {
            (true, true) => self.rising_edge(now),
            (false, false) => self.power_up(now),
            _ => {}
        }
    }
}

/// A simulated HX711 and its load cell. Clones share the chip; [`sck`](Self::sck) and
/// [`dout`](Self::dout) give the pins for the driver.
#[derive(Clone)]
pub struct Hx711Model(Arc<Mutex<Chip>>);

impl Hx711Model {
    /// A chip just powered up at the clock's current time (first result after the settling
    /// time), `PD_SCK` low, nothing on the scale, noise drawn from `seed`.
    pub fn new(clock: SimClock, cell: LoadCell, seed: u64) -> Self {
        let now = clock.now_us();
        let mut chip = Chip {
            clock,
            cell,
            rng: SplitMix64::new(seed),
            fault: Hx711Fault::None,
            load_kg: 0.0,
            power_down_us: POWER_DOWN_US,
            sck_high: false,
            sck_rose_us: 0,
            powered: true,
            phase: Phase::Ready,
            gain: Gain::A128,
            conversions: 0,
        };
        chip.power_up(now);
        Hx711Model(Arc::new(Mutex::new(chip)))
    }

    /// The `PD_SCK` pin, for the driver.
    pub fn sck(&self) -> Hx711Sck {
        Hx711Sck(self.clone())
    }

    /// The `DOUT` pin, for the driver.
    pub fn dout(&self) -> Hx711Dout {
        Hx711Dout(self.clone())
    }

    /// The clock the chip sees.
    pub fn clock(&self) -> SimClock {
        self.chip().clock.clone()
    }

    /// Puts `kg` on the scale (negative values pull, e.g. a tare that was set with weight on).
    /// The next latched result reflects it.
    pub fn set_load_kg(&self, kg: f64) {
        self.chip().load_kg = kg;
    }

    /// The load on the scale, in kg.
    pub fn load_kg(&self) -> f64 {
        self.chip().load_kg
    }

    /// Puts the chip into `fault` (`Hx711Fault::None` heals it). Leaving `Absent` powers the
    /// chip up as from cold.
    pub fn set_fault(&self, fault: Hx711Fault) {
        let mut chip = self.chip();
        if chip.fault == Hx711Fault::Absent && fault != Hx711Fault::Absent {
            let now = chip.clock.now_us();
            chip.power_up(now);
        }
        chip.fault = fault;
    }

    /// The injected fault.
    pub fn fault(&self) -> Hx711Fault {
        self.chip().fault
    }

    /// Changes how long `PD_SCK` must stay high to power the chip down (default
    /// [`POWER_DOWN_US`]). A clock that follows real time may need more, as a host's "1 µs"
    /// delay can take far longer; a driver's deliberate power-down still works as long as it
    /// keeps `PD_SCK` high for longer than the new threshold.
    pub fn set_power_down_us(&self, us: u64) {
        self.chip().power_down_us = us;
    }

    /// Whether the chip is powered down now.
    pub fn is_powered_down(&self) -> bool {
        let mut chip = self.chip();
        let now = chip.clock.now_us();
        chip.update(now);
        !chip.powered
    }

    /// Channel and gain selected for the next conversion.
    pub fn gain(&self) -> Gain {
        self.chip().gain
    }

    /// How many results were latched (read-outs started) since the chip was made.
    pub fn conversions_read(&self) -> u64 {
        self.chip().conversions
    }

    fn chip(&self) -> MutexGuard<'_, Chip> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Hx711Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chip = self.chip();
        f.debug_struct("Hx711Model")
            .field("clock", &chip.clock)
            .field("cell", &chip.cell)
            .field("fault", &chip.fault)
            .field("load_kg", &chip.load_kg)
            .field("powered", &chip.powered)
            .field("phase", &chip.phase)
            .field("gain", &chip.gain)
            .finish()
    }
}

/// The simulated `PD_SCK` pin (an output of the microcontroller). Never fails.
#[derive(Debug, Clone)]
pub struct Hx711Sck(Hx711Model);

impl embedded_hal::digital::ErrorType for Hx711Sck {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Hx711Sck {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.chip().set_sck(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.chip().set_sck(true);
        Ok(())
    }
}

/// The simulated `DOUT` pin (an input of the microcontroller). Never fails.
#[derive(Debug, Clone)]
pub struct Hx711Dout(Hx711Model);

impl embedded_hal::digital::ErrorType for Hx711Dout {
    type Error = Infallible;
}

impl embedded_hal::digital::InputPin for Hx711Dout {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.chip().dout_high())
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.chip().dout_high())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::digital::{InputPin, OutputPin};

    /// Clocks a read-out by hand (1 µs high, 1 µs low per pulse) and returns the 24 bits.
    fn clock_out(model: &Hx711Model, pulses: u32) -> u32 {
        let clock = model.clock();
        let (mut sck, mut dout) = (model.sck(), model.dout());
        let mut bits = 0;
        for n in 0..pulses {
            sck.set_high().unwrap();
            clock.advance_ns(1_000);
            sck.set_low().unwrap();
            clock.advance_ns(1_000);
            if n < 24 {
                bits = (bits << 1) | u32::from(dout.is_high().unwrap());
            }
        }
        bits
    }

    #[test]
    fn settles_then_shifts_out_msb_first() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 1);
        let mut dout = model.dout();
        assert!(dout.is_high().unwrap(), "settling");
        clock.advance_ns((SETTLING_US - 1) * 1_000);
        assert!(dout.is_high().unwrap());
        clock.advance_ns(1_000);
        assert!(dout.is_low().unwrap(), "ready after 400 ms");
        model.set_load_kg(-2.0);
        assert_eq!(clock_out(&model, 25), 0xFF_FFFE);
        assert!(dout.is_high().unwrap(), "high after the 25th pulse");
        assert_eq!(model.gain(), Gain::A128);
        // The 25th rising edge was 2 µs ago.
        clock.advance_ns(CONVERSION_PERIOD_US * 1_000 - 3_000);
        assert!(dout.is_high().unwrap());
        clock.advance_ns(1_000);
        assert!(
            dout.is_low().unwrap(),
            "next result 100 ms after the 25th pulse"
        );
        assert_eq!(model.conversions_read(), 1);
    }

    #[test]
    fn extra_pulses_select_gain_and_channel() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(100, 1_000.0), 1);
        model.set_load_kg(1.0);
        clock.advance_ns(SETTLING_US * 1_000);
        assert_eq!(clock_out(&model, 27), 1_100);
        assert_eq!(model.gain(), Gain::A64);
        clock.advance_ns(CONVERSION_PERIOD_US * 1_000);
        assert_eq!(clock_out(&model, 26), 550, "gain 64 reads half");
        assert_eq!(model.gain(), Gain::B32);
        clock.advance_ns(CONVERSION_PERIOD_US * 1_000);
        assert_eq!(clock_out(&model, 25), 0, "channel B: nothing connected");
        clock.advance_ns(CONVERSION_PERIOD_US * 1_000);
        assert_eq!(clock_out(&model, 25), 1_100);
    }

    #[test]
    fn saturates_at_the_24_bit_limits() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 1);
        for (load, bits) in [
            (1e12, 0x7F_FFFF),
            (-1e12, 0x80_0000),
            (f64::INFINITY, 0x7F_FFFF),
            (f64::NAN, 0),
        ] {
            model.set_load_kg(load);
            clock.advance_ns(SETTLING_US * 1_000);
            assert_eq!(clock_out(&model, 25), bits, "load {load}");
        }
    }

    #[test]
    fn long_sck_high_powers_down_and_low_restarts() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 1);
        let (mut sck, mut dout) = (model.sck(), model.dout());
        clock.advance_ns(SETTLING_US * 1_000);
        sck.set_high().unwrap();
        clock.advance_ns(59_000);
        assert!(!model.is_powered_down());
        clock.advance_ns(1_000);
        assert!(model.is_powered_down());
        assert!(dout.is_high().unwrap());
        clock.advance_ns(10_000_000_000);
        sck.set_low().unwrap();
        assert!(!model.is_powered_down());
        assert!(dout.is_high().unwrap(), "settling again");
        clock.advance_ns(SETTLING_US * 1_000);
        assert!(dout.is_low().unwrap());
    }

    #[test]
    fn an_unfinished_read_out_is_replaced_by_the_next_conversion() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 1);
        model.set_load_kg(-1.0);
        clock.advance_ns(SETTLING_US * 1_000);
        assert_eq!(clock_out(&model, 1), 1, "bit 23 of -1 is 1");
        clock.advance_ns(CONVERSION_PERIOD_US * 1_000 - 3_000);
        assert!(model.dout().is_high().unwrap(), "still showing bit 23");
        clock.advance_ns(1_000);
        assert!(model.dout().is_low().unwrap(), "fresh result ready");
        model.set_load_kg(f64::from(0x40_0000));
        assert_eq!(clock_out(&model, 25), 0x40_0000);
    }

    #[test]
    fn faults() {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 1);
        clock.advance_ns(SETTLING_US * 1_000);
        model.set_fault(Hx711Fault::Absent);
        assert!(model.dout().is_high().unwrap());
        model.set_fault(Hx711Fault::ReadFails);
        assert!(model.dout().is_low().unwrap());
        model.set_fault(Hx711Fault::None);
        assert!(
            model.dout().is_high().unwrap(),
            "back from absent: settling"
        );
        clock.advance_ns(SETTLING_US * 1_000);
        assert!(model.dout().is_low().unwrap());
    }

    #[test]
    fn fault_words_round_trip() {
        for fault in [
            Hx711Fault::None,
            Hx711Fault::Absent,
            Hx711Fault::ReadFails,
            Hx711Fault::Unstable,
        ] {
            assert_eq!(fault.to_string().parse::<Hx711Fault>(), Ok(fault));
        }
        assert_eq!(" NONE ".parse(), Ok(Hx711Fault::None));
        assert_eq!("Read-Fails".parse(), Ok(Hx711Fault::ReadFails));
        let err = "garbage".parse::<Hx711Fault>().unwrap_err();
        assert!(
            err.contains("'garbage'") && err.contains("unstable"),
            "{err}"
        );
    }
}
