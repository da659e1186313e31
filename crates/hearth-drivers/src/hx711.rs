//! Driver for the Avia HX711 24-bit load-cell ADC, bit-banged over two GPIOs: `PD_SCK` (an
//! output) and `DOUT` (an input). Channel A at gain 128 only, as the scale appliance uses it.
//!
//! The protocol, from the datasheet: `DOUT` is high while a conversion runs and goes low when the
//! result is ready. Each rising edge of `PD_SCK` shifts the next bit of the result out on `DOUT`,
//! most significant bit first; the result is 24-bit two's complement. Pulses 25 to 27 pick the
//! channel and gain of the *next* conversion (25 = channel A, gain 128) and pull `DOUT` back high
//! until that conversion is ready. Holding `PD_SCK` high for 60 µs or longer powers the chip
//! down; taking it low again powers it up, resets it to channel A/128 and starts conversions,
//! whose output needs [`SETTLING_TIME_MS`] to settle.
//!
//! Differences from the MicroPython reference driver: the reference busy-waits up to 5 s (with
//! a 1 s clock) for `DOUT` to go low, blocking everything else; this driver polls `DOUT` every
//! [`POLL_INTERVAL_MS`] with an awaited delay, for a bounded time the caller chooses. It also
//! checks that `DOUT` really went back high after the 25th pulse, so a `DOUT` line stuck low
//! (which the reference reads as a plausible raw value of 0) is reported as
//! [`Error::InvalidData`]. Instead of the reference's dummy read at construction it resets the
//! chip (a power-down pulse) before its first use, after a read that was cancelled half-way and
//! after invalid data, so every read starts at the first bit with channel A, gain 128 (see
//! [`Hx711::wait_ready`]).
//!
//! # Timing hazard: `PD_SCK` high time
//!
//! Every clock pulse keeps `PD_SCK` high for one `delay_us(1)`. If that await takes 60 µs or
//! more (an async delay on a busy executor can), the chip powers down in the middle of a read
//! and the result is garbage (typically ones in the remaining bits). Give the driver a delay
//! whose microsecond waits are short and do not yield for long (e.g. a spin for waits under a
//! millisecond and a timer above that); the 10 ms ready polls may yield freely.

use core::fmt;

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal_async::delay::DelayNs;

/// Interval between two looks at `DOUT` while waiting for a conversion.
pub const POLL_INTERVAL_MS: u32 = 10;
/// Time `PD_SCK` is held high to power the chip down (the datasheet asks for more than 60 µs).
pub const POWER_DOWN_HOLD_US: u32 = 100;
/// Output settling time after power-up or reset at 10 samples per second (datasheet: 400 ms; 50 ms
/// at 80 SPS). A [`Hx711::wait_ready`] right after power-up needs a timeout at least this long.
pub const SETTLING_TIME_MS: u32 = 400;
/// High and low time of one `PD_SCK` pulse (datasheet: 0.2 µs minimum, 50 µs maximum high).
const PULSE_US: u32 = 1;
/// Data bits per conversion.
const DATA_BITS: u32 = 24;

/// What can go wrong when talking to an HX711. `E` is the error type of the GPIO pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// `DOUT` did not go low (no conversion ready) within the timeout: the chip is absent,
    /// unpowered, powered down or still settling.
    NotReady,
    /// Driving `PD_SCK` or reading `DOUT` failed.
    Pin(E),
    /// `DOUT` was still low after the 25th clock pulse, where a working HX711 always pulls it
    /// high: the line is stuck low (short, broken chip) and the bits read are meaningless.
    InvalidData,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotReady => f.write_str("HX711 not ready (DOUT stayed high)"),
            Error::Pin(e) => write!(f, "HX711 GPIO error: {e:?}"),
            Error::InvalidData => f.write_str("HX711 DOUT stuck low after the read"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// An HX711 on two GPIOs. Both pins must share one error type (on esp-hal both are
/// `Infallible`).
#[derive(Debug)]
pub struct Hx711<SCK, DOUT, D> {
    sck: SCK,
    dout: DOUT,
    delay: D,
    /// The chip's state is unknown (first use, a pulse train that was started and not finished
    /// because its future was dropped or a pin failed, invalid data): it is reset before the
    /// next use.
    needs_reset: bool,
}

impl<SCK, DOUT, D> Hx711<SCK, DOUT, D>
where
    SCK: OutputPin,
    DOUT: InputPin<Error = SCK::Error>,
    D: DelayNs,
{
    /// Wraps the pins and the delay; nothing is driven until the first call. The first
    /// [`wait_ready`](Self::wait_ready) resets the chip, so allow it [`SETTLING_TIME_MS`].
    pub fn new(sck: SCK, dout: DOUT, delay: D) -> Self {
        Self {
            sck,
            dout,
            delay,
            needs_reset: true,
        }
    }

    /// Whether a conversion is ready to be read (`DOUT` low). Does not drive `PD_SCK`.
    pub fn is_ready(&mut self) -> Result<bool, Error<SCK::Error>> {
        self.dout.is_low().map_err(Error::Pin)
    }

    /// Waits until a conversion is ready, looking at `DOUT` at once and then every
    /// [`POLL_INTERVAL_MS`] for up to `timeout_ms` (rounded up to whole poll intervals), awaiting
    /// the delay in between (never spinning). Fails with [`Error::NotReady`] after the timeout.
    ///
    /// Drives `PD_SCK` low first, which powers up a chip that was powered down (it then needs
    /// [`SETTLING_TIME_MS`]). On the first call, and after a read that was cancelled half-way,
    /// failed on a pin or returned [`Error::InvalidData`], the chip is first reset by a
    /// power-down pulse (it then needs [`SETTLING_TIME_MS`] too), so the next read starts at
    /// the first bit with channel A, gain 128.
    pub async fn wait_ready(&mut self, timeout_ms: u32) -> Result<(), Error<SCK::Error>> {
        if self.needs_reset {
            self.reset().await?;
        }
        self.sck.set_low().map_err(Error::Pin)?;
        let polls = timeout_ms.div_ceil(POLL_INTERVAL_MS);
        for _ in 0..polls {
            if self.is_ready()? {
                return Ok(());
            }
            self.delay.delay_ms(POLL_INTERVAL_MS).await;
        }
        if self.is_ready()? {
            Ok(())
        } else {
            Err(Error::NotReady)
        }
    }

    /// Reads the ready conversion: 24 data pulses, sampling `DOUT` after each pulse (once `PD_SCK`
    /// is low again, as the reference does), then
    /// one more pulse selecting channel A, gain 128 for the next conversion. Returns the
    /// sign-extended value, -8 388 608 ..= 8 388 607 (the chip saturates at both ends).
    ///
    /// Does not wait: fails with [`Error::NotReady`] if no conversion is ready, or if the chip
    /// needs the reset [`wait_ready`](Self::wait_ready) does (use that or [`read`](Self::read)). Each pulse keeps `PD_SCK` high
    /// for one `delay_us(1)`, which must stay well under 60 µs (see the module documentation).
    pub async fn read_raw(&mut self) -> Result<i32, Error<SCK::Error>> {
        if self.needs_reset {
            // The chip's shift position is unknown: `DOUT` may show a data bit, not readiness.
            return Err(Error::NotReady);
        }
        if !self.is_ready()? {
            return Err(Error::NotReady);
        }
        self.needs_reset = true;
        let mut bits: u32 = 0;
        for _ in 0..DATA_BITS {
            self.pulse().await?;
            let bit = self.dout.is_high().map_err(Error::Pin)?;
            bits = (bits << 1) | u32::from(bit);
        }
        // 25th pulse: channel A, gain 128 for the next conversion; DOUT goes back high.
        self.pulse().await?;
        if self.dout.is_low().map_err(Error::Pin)? {
            // The chip did not follow the pulses as expected; start it afresh next time.
            return Err(Error::InvalidData);
        }
        self.needs_reset = false;
        Ok(sign_extend_24(bits))
    }

    /// [`wait_ready`](Self::wait_ready) for up to `timeout_ms`, then [`read_raw`](Self::read_raw).
    pub async fn read(&mut self, timeout_ms: u32) -> Result<i32, Error<SCK::Error>> {
        self.wait_ready(timeout_ms).await?;
        self.read_raw().await
    }

    /// Powers the chip down: `PD_SCK` low, then high for [`POWER_DOWN_HOLD_US`]; it stays high
    /// (and the chip powered down, drawing < 1 µA) until [`power_up`](Self::power_up) or the
    /// next [`wait_ready`](Self::wait_ready).
    pub async fn power_down(&mut self) -> Result<(), Error<SCK::Error>> {
        self.sck.set_low().map_err(Error::Pin)?;
        self.sck.set_high().map_err(Error::Pin)?;
        self.delay.delay_us(POWER_DOWN_HOLD_US).await;
        // Whatever a cancelled read left behind, the power-down has reset it.
        self.needs_reset = false;
        Ok(())
    }

    /// Powers the chip up (`PD_SCK` low). It resets to channel A, gain 128; the first conversion
    /// is ready after [`SETTLING_TIME_MS`], so follow with a [`wait_ready`](Self::wait_ready)
    /// allowing at least that long.
    pub async fn power_up(&mut self) -> Result<(), Error<SCK::Error>> {
        self.sck.set_low().map_err(Error::Pin)
    }

    /// Gives the pins and the delay back.
    pub fn release(self) -> (SCK, DOUT, D) {
        (self.sck, self.dout, self.delay)
    }

    /// One clock pulse: high for `PULSE_US`, then low for `PULSE_US`.
    async fn pulse(&mut self) -> Result<(), Error<SCK::Error>> {
        self.sck.set_high().map_err(Error::Pin)?;
        self.delay.delay_us(PULSE_US).await;
        self.sck.set_low().map_err(Error::Pin)?;
        self.delay.delay_us(PULSE_US).await;
        Ok(())
    }

    /// Power-down pulse and power-up: the chip forgets any half-read conversion.
    async fn reset(&mut self) -> Result<(), Error<SCK::Error>> {
        self.power_down().await?;
        self.power_up().await
    }
}

/// Sign-extends a 24-bit two's-complement value held in the low bits of `bits` (higher bits
/// are ignored).
pub fn sign_extend_24(bits: u32) -> i32 {
    // Move bit 23 to the sign position, then shift back arithmetically.
    ((bits << 8) as i32) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};
    use std::vec::Vec;

    use embedded_hal::digital::ErrorType;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        panic!("future still pending");
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct PinFault;

    impl embedded_hal::digital::Error for PinFault {
        fn kind(&self) -> embedded_hal::digital::ErrorKind {
            embedded_hal::digital::ErrorKind::Other
        }
    }

    /// What the fake pins and delay saw, in order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        High,
        Low,
        Sample,
        DelayNs(u32),
    }

    /// Scripted wiring: DOUT answers from a queue (high when empty), everything is logged.
    #[derive(Default)]
    struct Wire {
        dout: VecDeque<bool>,
        log: Vec<Event>,
        sck_fails: bool,
        dout_fails: bool,
    }

    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Wire>>);

    struct Sck(Shared);
    struct Dout(Shared);
    struct Delay(Shared);

    impl ErrorType for Sck {
        type Error = PinFault;
    }
    impl ErrorType for Dout {
        type Error = PinFault;
    }

    impl OutputPin for Sck {
        fn set_low(&mut self) -> Result<(), PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.sck_fails {
                return Err(PinFault);
            }
            w.log.push(Event::Low);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.sck_fails {
                return Err(PinFault);
            }
            w.log.push(Event::High);
            Ok(())
        }
    }

    impl InputPin for Dout {
        fn is_high(&mut self) -> Result<bool, PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.dout_fails {
                return Err(PinFault);
            }
            w.log.push(Event::Sample);
            Ok(w.dout.pop_front().unwrap_or(true))
        }
        fn is_low(&mut self) -> Result<bool, PinFault> {
            self.is_high().map(|high| !high)
        }
    }

    impl DelayNs for Delay {
        async fn delay_ns(&mut self, ns: u32) {
            self.0 .0.borrow_mut().log.push(Event::DelayNs(ns));
        }
    }

    fn driver(dout: &[bool]) -> (Hx711<Sck, Dout, Delay>, Shared) {
        let shared = Shared::default();
        shared.0.borrow_mut().dout = dout.iter().copied().collect();
        let mut hx = Hx711::new(
            Sck(shared.clone()),
            Dout(shared.clone()),
            Delay(shared.clone()),
        );
        // As after a first wait_ready (tested in `first_use_resets_the_chip`).
        hx.needs_reset = false;
        (hx, shared)
    }

    /// DOUT levels for a ready chip delivering `value`, then high after the 25th pulse.
    fn script(value: u32) -> Vec<bool> {
        let mut levels = vec![false];
        levels.extend((0..24).rev().map(|bit| value & (1 << bit) != 0));
        levels.push(true);
        levels
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend_24(0x00_0000), 0);
        assert_eq!(sign_extend_24(0x00_0001), 1);
        assert_eq!(sign_extend_24(0x7F_FFFF), 8_388_607);
        assert_eq!(sign_extend_24(0x80_0000), -8_388_608);
        assert_eq!(sign_extend_24(0xFF_FFFF), -1);
        assert_eq!(sign_extend_24(0xFF_FFFE), -2);
        // Bits above 23 are ignored.
        assert_eq!(sign_extend_24(0xAB00_0005), 5);
        assert_eq!(sign_extend_24(u32::MAX), -1);
    }

    #[test]
    fn reads_25_pulses_msb_first_and_samples_after_each_falling_edge() {
        let (mut hx, shared) = driver(&script(0xA5_0F3C));
        assert_eq!(block_on(hx.read_raw()), Ok(sign_extend_24(0xA5_0F3C)));
        let log = shared.0.borrow().log.clone();
        // Ready check, then per data bit: high, 1 µs, low, 1 µs, sample.
        assert_eq!(log[0], Event::Sample);
        let bit = [
            Event::High,
            Event::DelayNs(1_000),
            Event::Low,
            Event::DelayNs(1_000),
            Event::Sample,
        ];
        for n in 0..24 {
            assert_eq!(log[1 + 5 * n..6 + 5 * n], bit, "bit {n}");
        }
        // 25th pulse, then the check that DOUT went high.
        assert_eq!(log[121..], bit);
        assert_eq!(log.iter().filter(|e| **e == Event::High).count(), 25);
    }

    #[test]
    fn first_use_resets_the_chip() {
        let (mut hx, shared) = driver(&[true, false]);
        hx.needs_reset = true;
        assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady), "reset first");
        assert!(shared.0.borrow().log.is_empty(), "not even DOUT is read");
        assert_eq!(block_on(hx.wait_ready(SETTLING_TIME_MS)), Ok(()));
        assert_eq!(
            shared.0.borrow().log,
            [
                // Power-down pulse, power-up.
                Event::Low,
                Event::High,
                Event::DelayNs(100_000),
                Event::Low,
                // Polling.
                Event::Low,
                Event::Sample,
                Event::DelayNs(10_000_000),
                Event::Sample,
            ]
        );
        // Reset done: the next wait does not reset again.
        shared.0.borrow_mut().log.clear();
        shared.0.borrow_mut().dout.push_back(false);
        assert_eq!(block_on(hx.wait_ready(0)), Ok(()));
        assert_eq!(shared.0.borrow().log, [Event::Low, Event::Sample]);
    }

    #[test]
    fn read_raw_does_not_wait() {
        let (mut hx, shared) = driver(&[true]);
        assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));
        assert!(!shared.0.borrow().log.contains(&Event::High));
    }

    #[test]
    fn wait_ready_polls_every_10_ms_up_to_the_timeout() {
        let (mut hx, shared) = driver(&[]);
        assert_eq!(block_on(hx.wait_ready(45)), Err(Error::NotReady));
        let log = shared.0.borrow().log.clone();
        let samples = log.iter().filter(|e| **e == Event::Sample).count();
        let delays: Vec<&Event> = log
            .iter()
            .filter(|e| matches!(e, Event::DelayNs(_)))
            .collect();
        // 45 ms rounds up to 5 intervals: looks at 0, 10, 20, 30, 40, 50 ms.
        assert_eq!(samples, 6);
        assert_eq!(delays.len(), 5);
        assert!(delays.iter().all(|e| **e == Event::DelayNs(10_000_000)));
        assert_eq!(log[0], Event::Low, "PD_SCK is driven low before polling");

        let (mut hx, shared) = driver(&[true, true, false]);
        assert_eq!(block_on(hx.wait_ready(5_000)), Ok(()));
        let delays = shared
            .0
            .borrow()
            .log
            .iter()
            .filter(|e| matches!(e, Event::DelayNs(_)))
            .count();
        assert_eq!(delays, 2, "returns as soon as DOUT is low");

        let (mut hx, _) = driver(&[false]);
        assert_eq!(
            block_on(hx.wait_ready(0)),
            Ok(()),
            "timeout 0 still looks once"
        );
    }

    #[test]
    fn dout_stuck_low_is_invalid_data() {
        let (mut hx, shared) = driver(&[false; 26]);
        assert_eq!(block_on(hx.read_raw()), Err(Error::InvalidData));
        // The chip's state is unknown now: no read before a reset.
        shared.0.borrow_mut().dout.push_back(false);
        assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));
    }

    #[test]
    fn pin_errors_are_reported() {
        let (mut hx, shared) = driver(&script(1));
        shared.0.borrow_mut().dout_fails = true;
        assert_eq!(block_on(hx.read(100)), Err(Error::Pin(PinFault)));
        assert_eq!(hx.is_ready(), Err(Error::Pin(PinFault)));

        let (mut hx, shared) = driver(&script(1));
        shared.0.borrow_mut().sck_fails = true;
        assert_eq!(block_on(hx.read_raw()), Err(Error::Pin(PinFault)));
        assert_eq!(block_on(hx.power_down()), Err(Error::Pin(PinFault)));
        assert_eq!(block_on(hx.power_up()), Err(Error::Pin(PinFault)));
        // A pulse train broken by a pin error counts as interrupted.
        shared.0.borrow_mut().sck_fails = false;
        assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));
    }

    #[test]
    fn power_down_holds_sck_high_for_more_than_60_us() {
        let (mut hx, shared) = driver(&[]);
        block_on(hx.power_down()).unwrap();
        assert_eq!(
            shared.0.borrow().log,
            [Event::Low, Event::High, Event::DelayNs(100_000)]
        );
        block_on(hx.power_up()).unwrap();
        assert_eq!(shared.0.borrow().log.last(), Some(&Event::Low));
        let (sck, _dout, _delay) = hx.release();
        drop(sck);
    }
}
