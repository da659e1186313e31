//! 433 MHz OOK (on-off keyed) keyfob decoding from pulse timings: the [`PulseSource`] edge a
//! receiver module's data output is read through, and a sans-IO decoder fed pulse by pulse
//! ([`FrameDecoder`] for frames, [`PressFilter`] for merging repeated frames into presses,
//! [`Receiver`] combining both), for two common encoders:
//!
//! * **EV1527** (and its many clones): a frame is a sync (high 1 T, low 31 T) followed by 24
//!   bits, MSB first, 20 address bits then 4 data (button) bits. A bit is high then low; a `1` is
//!   high 3 T, low 1 T, a `0` high 1 T, low 3 T (T ≈ 250..500 µs). The encoder repeats the frame
//!   while a button is held, so a frame's bits end at the next frame's sync high.
//! * **HT6P20** (B variant: 22 address bits, 2 data bits): a pilot (low 23 λ, high 1 λ) followed by
//!   28 bits, each low then high; a `1` is low 2 λ, high 1 λ, a `0` low 1 λ, high 2 λ
//!   (λ ≈ 333..500 µs). The last 4 bits are the anti-code `0101`.
//!
//! # The pulse stream
//!
//! A [`Pulse`] is one level of the receiver's data output and how long it lasted, reported when
//! the level ends. The decoder keeps its own clock by adding up the durations, so a source must
//! report time contiguously: every level, including long idle ones (saturated at `u32::MAX` µs
//! if need be, or split into several pulses of the same level, which the decoder joins). A source
//! that lost pulses (a full buffer) reports an error; the decoder then drops the frame in
//! progress ([`Receiver::discontinuity`]).
//!
//! # Framing (as the reference's receivers)
//!
//! A low level of 5..20 ms is a preamble (EV1527's 31 T sync low, HT6P20's 23 λ pilot) and opens a
//! frame; the following levels of 150..2000 µs are collected; any other level closes the frame.
//! A longer low level opens a frame too, without a check of its length: it is the idle line
//! running into the first pilot of an HT6P20 transmission (the reference lost that frame, and
//! every frame of an encoder that leaves gaps between its repeats).
//! A closed frame whose length is a protocol's (EV1527: 48 bit levels + the next sync high = 49;
//! HT6P20: the pilot high + 56 bit levels = 57) is decoded; a closing level that is itself a
//! preamble opens the next frame at once, so back-to-back repeats are all seen. A frame whose
//! last level ran into a long closing level of the same polarity (the last EV1527 frame of a
//! transmission, which no sync follows, or one followed by a gap) is decoded too, its last bit
//! read from its first level; the reference lost those.
//!
//! # Decoding, and the differences from the reference
//!
//! The unit (T or λ) is estimated from the whole frame (its bit levels add up to 4 T per EV1527
//! bit, 3 λ per HT6P20 bit). Every bit must be one short level (0.5..(1+k)/2 units) and one long
//! one ((1+k)/2..1.4·k units, k = 3 for EV1527, 2 for HT6P20), its total within ±30 % of
//! (1+k) units, the delimiters short and the preamble within ±35 % of its nominal length, so
//! frames with timing jitter of ±20 % per level still decode while noise does not. The
//! reference instead only required every bit time within ±15 % of the mean, which rejects real
//! frames at ±20 % jitter and accepts e.g. two short levels as a bit.
//!
//! The bit value comes from which *level* is the long one: [`Protocol::one_long_high`] says
//! whether a `1` has the long level high. The reference derived its inversion flag from the wrong
//! attribute, so its per-protocol polarity setting was dead (it happened to be right for both
//! encoders); here a protocol with the other polarity decodes correctly (see the tests).
//!
//! Repeated frames of one press are merged ([`PressFilter`]): a frame with the same code as the
//! previous frame, ending within [`MERGE_WINDOW_US`] (250 ms, the reference's window) of it, is the
//! same press, however long the button is held; a different code is a new press at once. Unlike
//! the reference, a press in the first 250 ms after start is not dropped, a second button pressed
//! within 250 ms of the first is not dropped, and holding a button gives one press, not one every
//! 250 ms.

use core::fmt;

/// A low level at least this long (µs) opens a frame.
pub const PREAMBLE_MIN_US: u32 = 5_000;
/// A low level longer than this (µs) is idle line: it still opens a frame, but its length is
/// not checked against the protocol's sync length.
pub const PREAMBLE_MAX_US: u32 = 20_000;
/// Shortest level (µs) collected into a frame.
pub const DATA_MIN_US: u32 = 150;
/// Longest level (µs) collected into a frame (the reference: 1500; 2000 allows a 3 T level of
/// an EV1527 with T = 500 µs and +30 % jitter).
pub const DATA_MAX_US: u32 = 2_000;
/// Frames longer than this many levels are dropped as overflow (the longest protocol has 57).
pub const MAX_LEVELS: usize = 64;
/// Frames of one code ending within this time of the previous one are one press (µs).
pub const MERGE_WINDOW_US: u64 = 250_000;

/// One level of the receiver output and its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pulse {
    /// The level: `true` = carrier present (high).
    pub high: bool,
    /// How long the level lasted, µs.
    pub us: u32,
}

impl Pulse {
    /// A high level of `us` µs.
    pub const fn high(us: u32) -> Self {
        Pulse { high: true, us }
    }

    /// A low level of `us` µs.
    pub const fn low(us: u32) -> Self {
        Pulse { high: false, us }
    }
}

/// The edge between a receiver module's data output and the decoder: a stream of [`Pulse`]s.
///
/// On the ESP32 the RMT peripheral captures the levels into a buffer by itself (no busy
/// polling) and the firmware hands them out through this trait; in the simulator a pulse-train
/// generator implements it. See the module documentation for the timing contract.
#[allow(async_fn_in_trait)]
pub trait PulseSource {
    /// Why pulses could not be delivered (typically: some were lost to a full buffer).
    type Error: fmt::Debug;

    /// Waits for the next completed level.
    async fn next_pulse(&mut self) -> Result<Pulse, Self::Error>;

    /// The next completed level if one is already captured, without waiting.
    fn try_pulse(&mut self) -> Result<Option<Pulse>, Self::Error>;
}

impl<T: PulseSource + ?Sized> PulseSource for &mut T {
    type Error = T::Error;

    async fn next_pulse(&mut self) -> Result<Pulse, Self::Error> {
        (**self).next_pulse().await
    }

    fn try_pulse(&mut self) -> Result<Option<Pulse>, Self::Error> {
        (**self).try_pulse()
    }
}

/// A check on the last bits of a frame (HT6P20's anti-code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// How many of the last bits are checked.
    pub bits: u8,
    /// Their required value.
    pub value: u32,
}

/// How an encoder frames and encodes its bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    /// The name used in the published payload (`EV1527:<code>`).
    pub name: &'static str,
    /// Short high levels between the preamble and the first bit (HT6P20's pilot high: 1).
    pub lead: u8,
    /// Short high levels after the last bit (EV1527: the next frame's sync high: 1).
    pub trail: u8,
    /// Bits per frame (at most 32).
    pub bits: u8,
    /// Whether a bit starts with its high level (EV1527) or its low level (HT6P20).
    pub first_high: bool,
    /// Whether a `1` bit has its long level high (EV1527) or low (HT6P20). This, and not the
    /// order of the levels, sets the bit polarity.
    pub one_long_high: bool,
    /// The long level in units (the short one is 1 unit).
    pub long_units: u8,
    /// The preamble (sync low / pilot low) in units.
    pub sync_units: u8,
    /// Bits before [`check`](Self::check) that are data (buttons); the ones before are the
    /// address.
    pub data_bits: u8,
    /// A fixed pattern at the end of every frame, if any.
    pub check: Option<Check>,
}

/// EV1527: sync 1 T high / 31 T low, 24 bits (20 address, 4 data), `1` = 3 T high + 1 T low.
pub const EV1527: Protocol = Protocol {
    name: "EV1527",
    lead: 0,
    trail: 1,
    bits: 24,
    first_high: true,
    one_long_high: true,
    long_units: 3,
    sync_units: 31,
    data_bits: 4,
    check: None,
};

/// HT6P20(B): pilot 23 λ low / 1 λ high, 28 bits (22 address, 2 data, anti-code `0101`),
/// `1` = 2 λ low + 1 λ high.
pub const HT6P20: Protocol = Protocol {
    name: "HT6P20",
    lead: 1,
    trail: 0,
    bits: 28,
    first_high: false,
    one_long_high: false,
    long_units: 2,
    sync_units: 23,
    data_bits: 2,
    check: Some(Check {
        bits: 4,
        value: 0b0101,
    }),
};

/// The protocols tried, in order (the reference's order).
pub const PROTOCOLS: &[Protocol] = &[EV1527, HT6P20];

impl Protocol {
    /// Levels in a frame between the preamble and the closing level.
    pub const fn levels(&self) -> usize {
        self.lead as usize + 2 * self.bits as usize + self.trail as usize
    }

    /// Decodes the levels of one frame (`levels` as collected after a preamble of `preamble_us`,
    /// alternately high and low starting with high). `None` if it is not a valid frame of this
    /// protocol.
    pub fn decode(&self, preamble_us: u32, levels: &[u32]) -> Option<Code> {
        self.decode_inner(preamble_us, levels, false)
    }

    /// Decodes a frame whose last level ran into the long level that closed it (the last frame
    /// of an EV1527 transmission, or one followed by a gap): `levels` lacks the final level and
    /// the trailing delimiters, and the last bit is read from its first level alone.
    pub fn decode_open_end(&self, preamble_us: u32, levels: &[u32]) -> Option<Code> {
        self.decode_inner(preamble_us, levels, true)
    }

    fn decode_inner(&self, preamble_us: u32, levels: &[u32], open: bool) -> Option<Code> {
        let expected = if open {
            self.levels().checked_sub(usize::from(self.trail) + 1)?
        } else {
            self.levels()
        };
        if levels.len() != expected || self.bits < 2 || self.bits > 32 {
            return None;
        }
        let k = u64::from(self.long_units.max(2));
        let lead = usize::from(self.lead);
        let full_bits = usize::from(self.bits) - usize::from(open);
        let data = &levels[lead..lead + 2 * full_bits];
        let total: u64 = data.iter().map(|&d| u64::from(d)).sum();
        let per_bit = 1 + k;
        // The unit, in 1/16 µs for resolution (64 levels of u32 cannot overflow u64).
        let unit16 = total * 16 / (full_bits as u64 * per_bit);
        if unit16 == 0 {
            return None;
        }
        let short = |d: u32| {
            let d16 = u64::from(d) * 16;
            2 * d16 >= unit16 && 2 * d16 < unit16 * (1 + k)
        };
        let long = |d: u32| {
            let d16 = u64::from(d) * 16;
            2 * d16 >= unit16 * (1 + k) && 10 * d16 <= unit16 * k * 14
        };
        let sync16 = u64::from(preamble_us) * 16;
        let nominal = unit16 * u64::from(self.sync_units);
        let idle_before = preamble_us > PREAMBLE_MAX_US;
        if sync16 * 100 < nominal * 65 || (!idle_before && sync16 * 100 > nominal * 135) {
            return None;
        }
        let trail = if open {
            &[][..]
        } else {
            &levels[lead + data.len()..]
        };
        for &d in levels[..lead].iter().chain(trail) {
            if !short(d) {
                return None;
            }
        }
        // The bit value from which level is the long one.
        let bit = |long_first: bool| {
            let long_high = if long_first {
                self.first_high
            } else {
                !self.first_high
            };
            long_high == self.one_long_high
        };
        let mut code: u32 = 0;
        for pair in data.chunks_exact(2) {
            let (a, b) = (pair[0], pair[1]);
            let bit16 = (u64::from(a) + u64::from(b)) * 16;
            let nominal = unit16 * per_bit;
            if bit16 * 10 < nominal * 7 || bit16 * 10 > nominal * 13 {
                return None;
            }
            let long_first = match (long(a), short(a), long(b), short(b)) {
                (true, _, _, true) => true,
                (_, true, true, _) => false,
                _ => return None,
            };
            code = (code << 1) | u32::from(bit(long_first));
        }
        if open {
            let a = *levels.last()?;
            let long_first = match (long(a), short(a)) {
                (true, _) => true,
                (_, true) => false,
                _ => return None,
            };
            code = (code << 1) | u32::from(bit(long_first));
        }
        if let Some(check) = self.check {
            let mask = mask(check.bits);
            if code & mask != check.value & mask {
                return None;
            }
        }
        Some(Code {
            protocol: *self,
            value: code,
        })
    }
}

fn mask(bits: u8) -> u32 {
    match bits {
        0 => 0,
        b if b >= 32 => u32::MAX,
        b => (1u32 << b) - 1,
    }
}

/// A decoded frame: the protocol and the bits, MSB first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The protocol it was decoded with.
    pub protocol: Protocol,
    /// The bits, the first received in the most significant position.
    pub value: u32,
}

impl Code {
    /// The address (the keyfob's identity): the bits before the data bits.
    pub fn address(&self) -> u32 {
        let check = self.protocol.check.map_or(0, |c| c.bits);
        let shift = u32::from(check) + u32::from(self.protocol.data_bits);
        self.value.checked_shr(shift).unwrap_or(0)
    }

    /// The data bits (the button).
    pub fn data(&self) -> u32 {
        let check = self.protocol.check.map_or(0, |c| c.bits);
        (self.value.checked_shr(u32::from(check)).unwrap_or(0)) & mask(self.protocol.data_bits)
    }
}

/// `<NAME>:<code in decimal>`, the reference's payload, e.g. `EV1527:1234567`.
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.protocol.name, self.value)
    }
}

/// Counters of the receiver, named as the reference's busy receiver and front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Frames opened by a preamble from idle.
    pub start: u32,
    /// Frames opened directly by the level that closed the previous one.
    pub restart: u32,
    /// Closed frames whose length is a protocol's (handed to the decoders).
    pub ok: u32,
    /// Closed frames of any other length.
    pub nok: u32,
    /// Frames that grew beyond [`MAX_LEVELS`].
    pub overflow: u32,
    /// Frames decoded.
    pub good: u32,
    /// Frames of a protocol's length that no protocol decoded.
    pub bad: u32,
    /// Presses (decoded frames after merging repeats).
    pub presses: u32,
    /// Discontinuities: pulses lost by the source.
    pub lost: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Collecting levels after a preamble of this length.
    Data {
        preamble_us: u32,
    },
}

/// The frame state machine: feed it every level; it returns the codes of complete frames.
/// Pure (no I/O, no clock), bounded memory.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    protocols: &'static [Protocol],
    state: State,
    levels: [u32; MAX_LEVELS],
    len: usize,
    /// The previous level (to join split levels).
    prev: Option<Pulse>,
    /// Whether the previous level was appended to `levels`.
    prev_collected: bool,
    stats: Stats,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder for [`PROTOCOLS`] (EV1527, HT6P20).
    pub fn new() -> Self {
        Self::with_protocols(PROTOCOLS)
    }

    /// A decoder for these protocols, tried in order.
    pub fn with_protocols(protocols: &'static [Protocol]) -> Self {
        FrameDecoder {
            protocols,
            state: State::Idle,
            levels: [0; MAX_LEVELS],
            len: 0,
            prev: None,
            prev_collected: false,
            stats: Stats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Forget the frame in progress (pulses were lost).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.len = 0;
        self.prev = None;
        self.prev_collected = false;
    }

    /// Feeds one level; returns the code of a frame this level completed.
    pub fn feed(&mut self, pulse: Pulse) -> Option<Code> {
        let mut pulse = pulse;
        if let Some(prev) = self.prev {
            if prev.high == pulse.high {
                // One level reported in pieces: undo the previous piece and handle the whole.
                pulse.us = prev.us.saturating_add(pulse.us);
                if self.prev_collected {
                    self.len = self.len.saturating_sub(1);
                } else if let State::Data { .. } = self.state {
                    if self.len == 0 {
                        // The previous piece opened a frame, which the whole level still does.
                        self.prev = Some(pulse);
                        self.state = State::Data {
                            preamble_us: pulse.us,
                        };
                        return None;
                    }
                } else {
                    // Idle, and the previous piece was not collected: a long level goes on.
                    self.prev = Some(pulse);
                    return self.idle(pulse);
                }
            }
        }
        self.prev = Some(pulse);
        self.prev_collected = false;
        match self.state {
            State::Idle => self.idle(pulse),
            State::Data { preamble_us } => {
                if (DATA_MIN_US..=DATA_MAX_US).contains(&pulse.us) {
                    if self.len >= MAX_LEVELS {
                        self.stats.overflow = self.stats.overflow.saturating_add(1);
                        self.state = State::Idle;
                        self.len = 0;
                        return None;
                    }
                    self.levels[self.len] = pulse.us;
                    self.len += 1;
                    self.prev_collected = true;
                    return None;
                }
                let code = self.close(preamble_us, pulse);
                self.len = 0;
                if is_preamble(pulse) {
                    self.stats.restart = self.stats.restart.saturating_add(1);
                    self.state = State::Data {
                        preamble_us: pulse.us,
                    };
                } else {
                    self.state = State::Idle;
                }
                code
            }
        }
    }

    fn idle(&mut self, pulse: Pulse) -> Option<Code> {
        self.prev_collected = false;
        if is_preamble(pulse) {
            self.stats.start = self.stats.start.saturating_add(1);
            self.state = State::Data {
                preamble_us: pulse.us,
            };
            self.len = 0;
        } else {
            self.state = State::Idle;
        }
        None
    }

    fn close(&mut self, preamble_us: u32, closing: Pulse) -> Option<Code> {
        let levels = &self.levels[..self.len];
        // A closing level of a bit's second level may have swallowed the frame's last level.
        let open = |p: &Protocol| {
            closing.high != p.first_high
                && closing.us > DATA_MAX_US
                && p.levels().checked_sub(usize::from(p.trail) + 1) == Some(levels.len())
        };
        if !self
            .protocols
            .iter()
            .any(|p| p.levels() == levels.len() || open(p))
        {
            self.stats.nok = self.stats.nok.saturating_add(1);
            return None;
        }
        self.stats.ok = self.stats.ok.saturating_add(1);
        let code = self.protocols.iter().find_map(|p| {
            if p.levels() == levels.len() {
                p.decode(preamble_us, levels)
            } else if open(p) {
                p.decode_open_end(preamble_us, levels)
            } else {
                None
            }
        });
        match code {
            Some(_) => self.stats.good = self.stats.good.saturating_add(1),
            None => self.stats.bad = self.stats.bad.saturating_add(1),
        }
        code
    }
}

/// A low level long enough to be a preamble (or idle line running into one).
fn is_preamble(p: Pulse) -> bool {
    !p.high && p.us >= PREAMBLE_MIN_US
}

/// Merges the repeated frames of one press (see the module documentation). Times are µs on
/// any monotonic clock.
#[derive(Debug, Clone, Default)]
pub struct PressFilter {
    last: Option<(Code, u64)>,
}

impl PressFilter {
    /// A filter that has seen nothing (the first frame is a press at once).
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame decoded as `code` ended at `at_us`: `Some(code)` if it starts a new press.
    pub fn frame(&mut self, code: Code, at_us: u64) -> Option<Code> {
        let repeat = matches!(self.last, Some((c, t))
            if c == code && at_us.saturating_sub(t) <= MERGE_WINDOW_US);
        self.last = Some((code, at_us));
        (!repeat).then_some(code)
    }
}

/// The whole receiver: frames, presses and a clock made of the pulse durations.
#[derive(Debug, Clone, Default)]
pub struct Receiver {
    frames: FrameDecoder,
    presses: PressFilter,
    now_us: u64,
}

impl Receiver {
    /// A receiver for EV1527 and HT6P20 whose clock starts at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one level; `Some(code)` when it completed the first frame of a new press.
    pub fn feed(&mut self, pulse: Pulse) -> Option<Code> {
        self.now_us = self.now_us.saturating_add(u64::from(pulse.us));
        let code = self.frames.feed(pulse)?;
        // The frame ended where the level that closed it began.
        let end = self.now_us.saturating_sub(u64::from(pulse.us));
        let press = self.presses.frame(code, end)?;
        self.frames.stats.presses = self.frames.stats.presses.saturating_add(1);
        Some(press)
    }

    /// The source lost pulses: drop the frame in progress.
    pub fn discontinuity(&mut self) {
        self.frames.reset();
        self.frames.stats.lost = self.frames.stats.lost.saturating_add(1);
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.frames.stats()
    }

    /// The sum of the durations fed so far, µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An EV1527 frame body (after the sync low): 24 bits then the next sync high, unit `t`.
    fn ev1527(code: u32, t: u32) -> Vec<Pulse> {
        let mut v = Vec::new();
        for i in (0..24).rev() {
            if code >> i & 1 == 1 {
                v.extend([Pulse::high(3 * t), Pulse::low(t)]);
            } else {
                v.extend([Pulse::high(t), Pulse::low(3 * t)]);
            }
        }
        v.push(Pulse::high(t));
        v
    }

    /// `frames` EV1527 frames back to back, each opened by its sync low, plus a closing sync low.
    fn ev_train(code: u32, t: u32, frames: usize) -> Vec<Pulse> {
        let mut v = vec![Pulse::high(t)];
        for _ in 0..frames {
            v.push(Pulse::low(31 * t));
            v.extend(&ev1527(code, t)[..]);
        }
        v.push(Pulse::low(31 * t));
        v
    }

    fn ht_train(code28: u32, l: u32, frames: usize) -> Vec<Pulse> {
        let mut v = vec![Pulse::high(l)];
        for _ in 0..frames {
            v.push(Pulse::low(23 * l));
            v.push(Pulse::high(l));
            for i in (0..28).rev() {
                if code28 >> i & 1 == 1 {
                    v.extend([Pulse::low(2 * l), Pulse::high(l)]);
                } else {
                    v.extend([Pulse::low(l), Pulse::high(2 * l)]);
                }
            }
        }
        v.push(Pulse::low(50_000));
        v
    }

    fn frames(pulses: &[Pulse]) -> (Vec<Code>, Stats) {
        let mut d = FrameDecoder::new();
        let codes = pulses.iter().filter_map(|&p| d.feed(p)).collect();
        (codes, d.stats())
    }

    #[test]
    fn ev1527_exact_frames_decode_with_payload_address_and_button() {
        let (codes, stats) = frames(&ev_train(0xA1B2C5, 350, 3));
        assert_eq!(codes.len(), 3);
        let c = codes[0];
        assert_eq!(c.to_string(), "EV1527:10597061");
        assert_eq!((c.address(), c.data()), (0xA1B2C, 5));
        assert_eq!(
            (stats.start, stats.restart, stats.ok, stats.good),
            (1, 3, 3, 3)
        );
        assert_eq!((stats.nok, stats.bad), (0, 0));
    }

    #[test]
    fn ht6p20_frames_decode_and_need_the_anti_code() {
        let code = (0x2A9955 << 6) | (0b10 << 4) | 0b0101;
        let (codes, _) = frames(&ht_train(code, 450, 2));
        assert_eq!(codes.len(), 2);
        assert_eq!(codes[0].to_string(), alloc_fmt("HT6P20", code));
        assert_eq!((codes[0].address(), codes[0].data()), (0x2A9955, 0b10));
        let bad = (code & !0xF) | 0b0111;
        let (codes, stats) = frames(&ht_train(bad, 450, 2));
        assert!(codes.is_empty());
        assert_eq!((stats.ok, stats.bad), (2, 2));
    }

    fn alloc_fmt(name: &str, code: u32) -> String {
        format!("{name}:{code}")
    }

    #[test]
    fn polarity_comes_from_the_one_long_high_attribute() {
        // Same order as EV1527 (high first) but a 1 has the long *low*.
        static INVERTED: [Protocol; 1] = [Protocol {
            name: "INV",
            one_long_high: false,
            ..EV1527
        }];
        let mut d = FrameDecoder::with_protocols(&INVERTED);
        let codes: Vec<Code> = ev_train(0x0F0F0F, 300, 1)
            .into_iter()
            .filter_map(|p| d.feed(p))
            .collect();
        assert_eq!(codes.len(), 1);
        assert_eq!(codes[0].value, 0xF0F0F0);
        // HT6P20 is low-first with a long low for 1: its code is not inverted.
        let code = (0x123456 << 4) | 0b0101;
        let (codes, _) = frames(&ht_train(code, 400, 1));
        assert_eq!(codes[0].value, code);
    }

    #[test]
    fn jitter_of_20_percent_still_decodes() {
        let mut seed = 12345u32;
        let mut jitter = |p: Pulse| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let f = 80 + (seed >> 16) % 41; // 80..=120 %
            Pulse {
                us: p.us * f / 100,
                ..p
            }
        };
        for t in [250u32, 350, 450] {
            let train: Vec<Pulse> = ev_train(0x5A5A5, t, 20)
                .into_iter()
                .map(&mut jitter)
                .collect();
            let (codes, _) = frames(&train);
            assert_eq!(codes.len(), 20, "T = {t}");
            assert!(codes.iter().all(|c| c.value == 0x5A5A5));
        }
        let code = (0x3FFFFF << 6) | 0b0101;
        let train: Vec<Pulse> = ht_train(code, 450, 20)
            .into_iter()
            .map(&mut jitter)
            .collect();
        let (codes, _) = frames(&train);
        assert_eq!(codes.len(), 20);
        assert!(codes.iter().all(|c| c.value == code));
    }

    #[test]
    fn malformed_frames_are_rejected() {
        // Two short levels as a bit.
        let mut t = ev_train(0, 350, 1);
        t[5].us = 350;
        let (codes, stats) = frames(&t);
        assert!(codes.is_empty());
        assert_eq!(stats.bad, 1);
        // Truncated: a frame cut by a long level.
        let mut t = ev_train(0xFFFFFF, 350, 1);
        t.truncate(30);
        t.push(Pulse::low(40_000));
        let (codes, stats) = frames(&t);
        assert!(codes.is_empty());
        assert_eq!(stats.nok, 1);
        // A sync far off its nominal ratio.
        let mut t = ev_train(0x123456, 350, 1);
        t[1].us = 19_000;
        assert!(frames(&t).0.is_empty());
        // A level out of the data range ends the frame early.
        let mut t = ev_train(0x123456, 350, 1);
        t[10].us = 3_000;
        assert!(frames(&t).0.is_empty());
    }

    #[test]
    fn a_last_frame_closed_by_the_idle_line_decodes() {
        for code in [0xC0FFEE, 0xC0FFEF] {
            let mut t = ev_train(code, 350, 1);
            t.truncate(t.len() - 2); // no closing sync
            let last = t.len() - 1;
            t[last].us += 80_000; // the last low runs into the idle line
            let (codes, stats) = frames(&t);
            assert_eq!(codes.len(), 1, "{code:x}");
            assert_eq!(codes[0].value, code);
            assert_eq!((stats.ok, stats.good), (1, 1));
        }
        // A long *high* after the last high is not an open end of EV1527.
        let mut t = ev_train(0xC0FFEE, 350, 1);
        t.truncate(t.len() - 3);
        t.push(Pulse::high(80_000));
        assert!(frames(&t).0.is_empty());
    }

    #[test]
    fn overflow_is_counted() {
        let mut t = vec![Pulse::high(300), Pulse::low(10_000)];
        for _ in 0..40 {
            t.extend([Pulse::high(300), Pulse::low(300)]);
        }
        t.push(Pulse::high(50_000));
        let (codes, stats) = frames(&t);
        assert!(codes.is_empty());
        assert_eq!((stats.overflow, stats.ok, stats.nok), (1, 0, 0));
    }

    #[test]
    fn split_levels_are_joined() {
        let mut t = ev_train(0xABCDEF, 350, 2);
        // Split the second sync low and one data level into two pieces each (a source may
        // report a level in pieces as long as every piece is a valid level on its own).
        let sync = t.iter().rposition(|p| p.us == 31 * 350).unwrap();
        t.splice(
            sync..=sync,
            [Pulse::low(5_000), Pulse::low(31 * 350 - 5_000)],
        );
        let data = 3;
        let d = t[data];
        t.splice(
            data..=data,
            [
                Pulse { us: 200, ..d },
                Pulse {
                    us: d.us - 200,
                    ..d
                },
            ],
        );
        // Idle split into pieces before the train.
        t.insert(0, Pulse::low(30_000));
        t.insert(0, Pulse::low(30_000));
        let (codes, _) = frames(&t);
        assert_eq!(codes.len(), 2);
        assert!(codes.iter().all(|c| c.value == 0xABCDEF));
    }

    #[test]
    fn presses_merge_repeats_and_are_not_dropped_after_start() {
        let mut r = Receiver::new();
        // A press right at start: the reference dropped it.
        let presses: Vec<Code> = ev_train(0x11111, 350, 10)
            .into_iter()
            .filter_map(|p| r.feed(p))
            .collect();
        assert!(r.now_us() < 500_000);
        assert_eq!(presses.len(), 1, "ten repeats are one press");
        assert_eq!(r.stats().good, 10);
        // Another button at once: a new press (the reference dropped it within 250 ms).
        let p: Vec<Code> = ev_train(0x11112, 350, 3)
            .into_iter()
            .filter_map(|p| r.feed(p))
            .collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].value, 0x11112);
        // The first button again after a pause: a new press.
        r.feed(Pulse::low(400_000));
        let p: Vec<Code> = ev_train(0x11111, 350, 3)
            .into_iter()
            .filter_map(|p| r.feed(p))
            .collect();
        assert_eq!(p.len(), 1);
        assert_eq!(r.stats().presses, 3);
    }

    #[test]
    fn press_filter_window() {
        let c = Code {
            protocol: EV1527,
            value: 7,
        };
        let mut f = PressFilter::new();
        assert_eq!(f.frame(c, 0), Some(c));
        assert_eq!(f.frame(c, 250_000), None);
        assert_eq!(f.frame(c, 500_000), None, "the window slides while held");
        assert_eq!(f.frame(c, 750_001), Some(c));
    }

    #[test]
    fn garbage_never_panics_or_decodes() {
        let mut r = Receiver::new();
        let mut x = 1u64;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = match x % 4 {
                0 => (x >> 8) as u32,
                1 => (x >> 20) as u32 % 25_000,
                _ => (x >> 20) as u32 % 2_500,
            };
            assert!(r
                .feed(Pulse {
                    high: i % 2 == 0,
                    us
                })
                .is_none());
        }
        r.discontinuity();
        assert_eq!(r.stats().lost, 1);
    }
}
