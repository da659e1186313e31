//! A 433 MHz OOK receiver module and the keyfobs around it, as the pulse train on the module's
//! data output: [`OokModel`] is the handle a test or the simulator keeps to press keyfob buttons
//! and inject faults, [`OokRx`] the [`PulseSource`] the real decoder of `hearth-drivers` reads.
//!
//! What is modelled, on the [`SimClock`] (µs resolution):
//! * A press ([`OokModel::press`]) is encoded from the encoders' datasheet timings, independently
//!   of the decoder: EV1527 frames are a sync (high 1 T, low 31 T) and 24 bits (`1` = high 3 T,
//!   low 1 T; `0` = high 1 T, low 3 T); HT6P20 frames a pilot (low 23 λ, high 1 λ) and 28 bits
//!   (`1` = low 2 λ, high 1 λ; `0` = low 1 λ, high 2 λ) ending with the anti-code `0101`. The
//!   frame is sent [`Transmitter::repeats`] times back to back (or with an idle gap between
//!   frames), every level stretched by a random factor within ±[`Transmitter::jitter`]. A press
//!   starts when the previous one has ended. As on the air, an HT6P20's first pilot merges with
//!   the idle line before it (so that frame's preamble has no definite length), and the last EV1527 frame of
//!   a press has no following sync: its last low runs into the idle line.
//! * The idle line (`ok`): mostly low with an occasional short noise blip, as a receiver's AGC
//!   produces in a quiet room. `noise`: heavy interference — the idle line is a continuous
//!   random pulse train and levels of a transmission are sometimes split by a glitch. `absent`:
//!   no module, no edges at all (nothing is delivered and presses are lost).
//! * Levels are delivered when they have ended by the clock, with their full duration, as the
//!   ESP32's RMT capture reports them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::poll_fn;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use hearth_drivers::ook::{Pulse, PulseSource};

use crate::clock::SimClock;
use crate::prng::SplitMix64;

/// How the simulated receiver misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OokFault {
    /// A working receiver in a quiet environment.
    #[default]
    None,
    /// Heavy interference: continuous random pulses between transmissions and glitches that
    /// split levels of the transmissions.
    Noise,
    /// No receiver module: silence, no edges.
    Absent,
}

impl OokFault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            OokFault::None => "ok",
            OokFault::Noise => "noise",
            OokFault::Absent => "absent",
        }
    }
}

impl fmt::Display for OokFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OokFault {
    type Err = String;

    /// Accepts `ok`/`none`, `noise`, `absent`, in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" | "none" => Ok(OokFault::None),
            "noise" => Ok(OokFault::Noise),
            "absent" => Ok(OokFault::Absent),
            _ => Err(format!(
                "unknown rx433 fault '{}': expected one of ok (or none), noise, absent",
                s.trim()
            )),
        }
    }
}

/// The keyfob encoder chips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// EV1527: 20-bit address, 4 data bits.
    Ev1527,
    /// HT6P20B: 22-bit address, 2 data bits, anti-code `0101`.
    Ht6p20,
}

impl Encoder {
    /// The code word a press sends (24 or 28 bits); address and button are cut to their widths.
    pub fn code(self, address: u32, button: u8) -> u32 {
        match self {
            Encoder::Ev1527 => ((address & 0xF_FFFF) << 4) | u32::from(button & 0xF),
            Encoder::Ht6p20 => {
                ((address & 0x3F_FFFF) << 6) | (u32::from(button & 0x3) << 4) | 0b0101
            }
        }
    }

    /// The payload the decoder should publish for this press, e.g. `EV1527:10597061`.
    pub fn payload(self, address: u32, button: u8) -> String {
        let name = match self {
            Encoder::Ev1527 => "EV1527",
            Encoder::Ht6p20 => "HT6P20",
        };
        format!("{name}:{}", self.code(address, button))
    }
}

/// How a keyfob transmits a press.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transmitter {
    /// The unit (T, λ) in µs.
    pub unit_us: u32,
    /// Frames sent per press.
    pub repeats: u32,
    /// Each level is stretched by a factor uniform in `1 ± jitter`.
    pub jitter: f64,
    /// Idle line (with its noise) between two frames, µs (0: back to back, as the encoders do).
    pub frame_gap_us: u32,
    /// Keep only this many levels of the press (a transmission cut short), if set.
    pub truncate_levels: Option<usize>,
}

impl Transmitter {
    /// A typical keyfob: EV1527 with T = 350 µs, HT6P20 with λ = 450 µs; 6 frames, ±5 % jitter.
    pub fn typical(encoder: Encoder) -> Self {
        Transmitter {
            unit_us: match encoder {
                Encoder::Ev1527 => 350,
                Encoder::Ht6p20 => 450,
            },
            repeats: 6,
            jitter: 0.05,
            frame_gap_us: 0,
            truncate_levels: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Seg {
    Level(bool, u64),
    /// Idle line for this long.
    Idle(u64),
}

#[derive(Debug)]
struct Train {
    start_us: u64,
    segs: VecDeque<Seg>,
}

struct Air {
    clock: SimClock,
    rng: SplitMix64,
    fault: OokFault,
    trains: VecDeque<Train>,
    /// The level being built: its value, start and end so far.
    cur_high: bool,
    cur_start: u64,
    cur_end: u64,
    /// When the last scheduled press ends.
    planned_end: u64,
    presses: u64,
}

/// Probability that a level of a transmission is split by a glitch under heavy noise.
const GLITCH_P: f64 = 0.03;

impl Air {
    fn jittered(&mut self, us: u64, jitter: f64) -> u64 {
        let f = if jitter > 0.0 {
            self.rng.range(1.0 - jitter, 1.0 + jitter)
        } else {
            1.0
        };
        ((us as f64 * f).round() as u64).max(1)
    }

    fn plan(&mut self, encoder: Encoder, code: u32, tx: Transmitter) -> u64 {
        let u = u64::from(tx.unit_us.max(1));
        let mut levels: Vec<(bool, u64)> = Vec::new();
        let mut segs = VecDeque::new();
        for frame in 0..tx.repeats {
            if frame > 0 && tx.frame_gap_us > 0 {
                levels.push((false, 0)); // marker for a gap
            }
            match encoder {
                Encoder::Ev1527 => {
                    levels.extend([(true, u), (false, 31 * u)]);
                    for i in (0..24).rev() {
                        let one = code >> i & 1 == 1;
                        let (h, l) = if one { (3, 1) } else { (1, 3) };
                        levels.extend([(true, h * u), (false, l * u)]);
                    }
                }
                Encoder::Ht6p20 => {
                    levels.extend([(false, 23 * u), (true, u)]);
                    for i in (0..28).rev() {
                        let one = code >> i & 1 == 1;
                        let (l, h) = if one { (2, 1) } else { (1, 2) };
                        levels.extend([(false, l * u), (true, h * u)]);
                    }
                }
            }
        }
        let keep = tx.truncate_levels.unwrap_or(usize::MAX);
        let mut kept = 0;
        for (high, us) in levels {
            if us == 0 {
                segs.push_back(Seg::Idle(u64::from(tx.frame_gap_us)));
                continue;
            }
            if kept >= keep {
                break;
            }
            kept += 1;
            let us = self.jittered(us, tx.jitter);
            segs.push_back(Seg::Level(high, us));
        }
        let now = self.clock.now_us();
        let start = now.max(self.cur_end).max(self.planned_end);
        let length: u64 = segs
            .iter()
            .map(|s| match s {
                Seg::Level(_, d) | Seg::Idle(d) => *d,
            })
            .sum();
        self.planned_end = start + length;
        self.trains.push_back(Train {
            start_us: start,
            segs,
        });
        self.planned_end
    }

    /// A piece of idle line starting at `from`, at most `max` long.
    fn idle_piece(&mut self, max: u64) -> (bool, u64) {
        let (high, us) = match self.fault {
            OokFault::Noise => (
                self.rng.next_u64() & 1 == 1,
                self.rng.range(20.0, 2_500.0) as u64,
            ),
            _ => {
                if self.rng.unit() < 0.15 {
                    (true, self.rng.range(40.0, 400.0) as u64)
                } else {
                    (false, self.rng.range(2_000.0, 20_000.0) as u64)
                }
            }
        };
        (high, us.clamp(1, max.max(1)))
    }

    /// The next segment of the line, starting at `from`; `None` when nothing is known yet.
    fn next_segment(&mut self, from: u64, now: u64) -> Option<(bool, u64)> {
        if self.fault == OokFault::Absent {
            self.trains.clear();
            self.planned_end = self.planned_end.min(from);
            return (from < now).then(|| (false, now - from));
        }
        loop {
            let Some(train) = self.trains.front_mut() else {
                return Some(self.idle_piece(u64::MAX));
            };
            if train.start_us > from {
                let gap = train.start_us - from;
                return Some(self.idle_piece(gap));
            }
            let Some(seg) = train.segs.pop_front() else {
                self.trains.pop_front();
                continue;
            };
            match seg {
                Seg::Idle(d) => {
                    if d == 0 {
                        continue;
                    }
                    let (high, us) = self.idle_piece(d);
                    if us < d {
                        if let Some(t) = self.trains.front_mut() {
                            t.segs.push_front(Seg::Idle(d - us));
                        }
                    }
                    return Some((high, us));
                }
                Seg::Level(high, d) => {
                    if self.fault == OokFault::Noise && d > 60 && self.rng.unit() < GLITCH_P {
                        let glitch = (self.rng.range(20.0, 200.0) as u64).min(d / 3).max(1);
                        let first = (d - glitch) / 2;
                        let rest = d - glitch - first;
                        if let Some(t) = self.trains.front_mut() {
                            t.segs.push_front(Seg::Level(high, rest.max(1)));
                            t.segs.push_front(Seg::Level(!high, glitch));
                        }
                        return Some((high, first.max(1)));
                    }
                    return Some((high, d));
                }
            }
        }
    }

    /// The next level that has ended by `now`.
    fn try_pulse(&mut self, now: u64) -> Option<Pulse> {
        loop {
            if self.cur_end > now {
                return None;
            }
            let (high, d) = self.next_segment(self.cur_end, now)?;
            if high == self.cur_high {
                self.cur_end += d;
                continue;
            }
            let us = u32::try_from(self.cur_end - self.cur_start).unwrap_or(u32::MAX);
            let pulse = Pulse {
                high: self.cur_high,
                us,
            };
            self.cur_high = high;
            self.cur_start = self.cur_end;
            self.cur_end += d;
            return Some(pulse);
        }
    }
}

/// A simulated receiver module and the keyfobs in range. Clones share it.
#[derive(Clone)]
pub struct OokModel(Arc<Mutex<Air>>);

impl OokModel {
    /// A working receiver, its line low since the clock's current time, noise drawn from `seed`.
    pub fn new(clock: SimClock, seed: u64) -> Self {
        let now = clock.now_us();
        OokModel(Arc::new(Mutex::new(Air {
            clock,
            rng: SplitMix64::new(seed),
            fault: OokFault::None,
            trains: VecDeque::new(),
            cur_high: false,
            cur_start: now,
            cur_end: now,
            planned_end: now,
            presses: 0,
        })))
    }

    /// The data output, for the decoder.
    pub fn receiver(&self) -> OokRx {
        OokRx(self.clone())
    }

    /// Presses `button` on a typical keyfob ([`Transmitter::typical`]) with `address`; returns
    /// when (clock µs) the transmission ends.
    pub fn press(&self, encoder: Encoder, address: u32, button: u8) -> u64 {
        self.press_with(encoder, address, button, Transmitter::typical(encoder))
    }

    /// Presses `button` on a keyfob with `address` that transmits as `tx`; returns when (clock
    /// µs) the transmission ends. Nothing is sent while the receiver is absent.
    pub fn press_with(&self, encoder: Encoder, address: u32, button: u8, tx: Transmitter) -> u64 {
        let mut air = self.air();
        if air.fault == OokFault::Absent {
            return air.clock.now_us();
        }
        air.presses += 1;
        air.plan(encoder, encoder.code(address, button), tx)
    }

    /// Presses made (while the receiver was present).
    pub fn presses(&self) -> u64 {
        self.air().presses
    }

    /// When the last scheduled transmission ends (clock µs).
    pub fn busy_until_us(&self) -> u64 {
        self.air().planned_end
    }

    /// Puts the receiver into `fault` (`OokFault::None` heals it).
    pub fn set_fault(&self, fault: OokFault) {
        self.air().fault = fault;
    }

    /// The injected fault.
    pub fn fault(&self) -> OokFault {
        self.air().fault
    }

    fn air(&self) -> MutexGuard<'_, Air> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for OokModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let air = self.air();
        f.debug_struct("OokModel")
            .field("clock", &air.clock)
            .field("fault", &air.fault)
            .field("pending_presses", &air.trains.len())
            .finish()
    }
}

/// The receiver module's data output as a [`PulseSource`].
#[derive(Debug, Clone)]
pub struct OokRx(OokModel);

impl OokRx {
    fn now_and_try(&self) -> (Option<Pulse>, u64, bool) {
        let mut air = self.0.air();
        let now = air.clock.now_us();
        let pulse = air.try_pulse(now);
        (
            pulse,
            air.cur_end,
            air.clock.is_manual() && air.fault != OokFault::Absent,
        )
    }
}

impl PulseSource for OokRx {
    type Error = Infallible;

    /// Waits for the next level to end. On a virtual clock the clock is moved forward to it
    /// (like a `SimDelay`); on an external clock the future re-polls until time has passed.
    /// While the receiver is absent it never completes.
    async fn next_pulse(&mut self) -> Result<Pulse, Infallible> {
        poll_fn(|cx| loop {
            let (pulse, until, advance) = self.now_and_try();
            if let Some(p) = pulse {
                return Poll::Ready(Ok(p));
            }
            if advance {
                self.0.air().clock.advance_to_us(until);
                continue;
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        })
        .await
    }

    fn try_pulse(&mut self) -> Result<Option<Pulse>, Infallible> {
        Ok(self.now_and_try().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut OokRx) -> Vec<Pulse> {
        std::iter::from_fn(|| rx.try_pulse().ok().flatten()).collect()
    }

    #[test]
    fn an_exact_ev1527_frame_has_the_datasheet_levels() {
        let clock = SimClock::manual();
        let model = OokModel::new(clock.clone(), 1);
        let tx = Transmitter {
            jitter: 0.0,
            repeats: 2,
            ..Transmitter::typical(Encoder::Ev1527)
        };
        let end = model.press_with(Encoder::Ev1527, 0x80000, 0b0001, tx);
        clock.advance_to_us(end + 100_000);
        let pulses = drain(&mut model.receiver());
        let sync = pulses
            .iter()
            .position(|p| !p.high && p.us == 31 * 350)
            .expect("sync low");
        assert!(pulses[sync - 1].high && pulses[sync - 1].us == 350);
        // Bit 23 is 1 (address 0x80000), bits 22..1 are 0, bit 0 is 1.
        assert_eq!(pulses[sync + 1], Pulse::high(1050));
        assert_eq!(pulses[sync + 2], Pulse::low(350));
        assert_eq!(pulses[sync + 3], Pulse::high(350));
        assert_eq!(pulses[sync + 4], Pulse::low(1050));
        assert_eq!(pulses[sync + 47], Pulse::high(1050));
        assert_eq!(pulses[sync + 48], Pulse::low(350));
        assert_eq!(pulses[sync + 49], Pulse::high(350), "next frame's sync");
    }

    #[test]
    fn levels_are_contiguous_and_alternate_and_wait_for_the_clock() {
        let clock = SimClock::manual();
        let model = OokModel::new(clock.clone(), 3);
        let mut rx = model.receiver();
        model.press(Encoder::Ht6p20, 0x1234, 1);
        clock.advance_to_us(2_000_000);
        let pulses = drain(&mut rx);
        assert!(pulses.windows(2).all(|w| w[0].high != w[1].high));
        let total: u64 = pulses.iter().map(|p| u64::from(p.us)).sum();
        assert!(total <= 2_000_000 && total > 1_900_000, "{total}");
        assert!(drain(&mut rx).is_empty(), "nothing before the clock moves");
    }

    #[test]
    fn absent_is_silent_and_deterministic_under_a_seed() {
        let clock = SimClock::manual();
        let model = OokModel::new(clock.clone(), 3);
        model.set_fault(OokFault::Absent);
        model.press(Encoder::Ev1527, 1, 1);
        clock.advance_to_us(10_000_000);
        assert!(drain(&mut model.receiver()).is_empty());
        let a = OokModel::new(SimClock::manual(), 9);
        let b = OokModel::new(SimClock::manual(), 9);
        let mut rx = (a.receiver(), b.receiver());
        for m in [&a, &b] {
            m.set_fault(OokFault::Noise);
            m.press(Encoder::Ev1527, 77, 2);
        }
        let pa: Vec<Pulse> = (0..500)
            .map(|_| embassy_block(rx.0.next_pulse()).unwrap())
            .collect();
        let pb: Vec<Pulse> = (0..500)
            .map(|_| embassy_block(rx.1.next_pulse()).unwrap())
            .collect();
        assert_eq!(pa, pb);
    }

    fn embassy_block<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn fault_words_round_trip() {
        for f in [OokFault::None, OokFault::Noise, OokFault::Absent] {
            assert_eq!(f.to_string().parse::<OokFault>(), Ok(f));
        }
        assert_eq!(" NONE ".parse(), Ok(OokFault::None));
        let e = "garbage".parse::<OokFault>().unwrap_err();
        assert!(e.contains("'garbage'") && e.contains("noise"), "{e}");
    }

    #[test]
    fn codes_follow_the_encoders() {
        assert_eq!(Encoder::Ev1527.code(0xA1B2C, 5), 0xA1B2C5);
        assert_eq!(Encoder::Ht6p20.code(0x2A9955, 2), (0x2A9955 << 6) | 0x25);
        assert_eq!(Encoder::Ev1527.payload(0xA1B2C, 5), "EV1527:10597061");
    }
}
