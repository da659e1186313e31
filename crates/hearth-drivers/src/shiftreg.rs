//! 74HC595 (serial-in, parallel-out) and 74HC165 (parallel-in, serial-out) shift-register
//! chains bit-banged over GPIOs, wired as on the Dingtian relay boards the reference's
//! `dtwonder8` driver supports: one clock line shared by both chains and one line that is the
//! '595's storage clock (`RCLK`) and the '165's load/clock-inhibit line at the same time.
//!
//! | line | '595 | '165 | direction | Dingtian 8 |
//! |---|---|---|---|---|
//! | `oe` | `/OE` (outputs enabled when low) | — | out | GPIO32 |
//! | `latch` | `RCLK` (rising edge copies the shift register to the outputs) | load / `CLK INH` (high: parallel load, clock inhibited; low: shift) | out | GPIO15 |
//! | `clock` | `SRCLK` (rising edge shifts `SER` in) | `CLK` (rising edge shifts towards `QH`) | out | GPIO14 |
//! | `ser` | `SER` | — | out | GPIO13 |
//! | `qh` | — | `QH` | in | GPIO16 |
//!
//! One [`transfer`](ShiftRegisters::transfer) exchanges both chains at once, as the reference
//! does: a short pause, `latch` low (the '165 holds its inputs and starts shifting), then for
//! each bit *i* from 0 (LSB first): sample `QH` as input bit *i*, put output bit *i* on `SER`,
//! pulse `clock` high then low; then `latch` high (the '595 shows the new outputs, the '165
//! loads again) and `/OE` low. Bit *i* of the outputs therefore ends in the stage *i* clocks
//! away from the far end of the '595 chain, and input bit *i* is the *i*-th bit the '165 chain
//! shifts out (bit 0 = the stage already on `QH` when `latch` falls). `/OE` is never driven
//! high: the board's pull-up keeps the relays off from power-up until the first transfer, so a
//! transfer made with the restored states is the first thing the relays see (no flicker after a
//! warm restart).
//!
//! Levels are electrical: the Dingtian inputs are active low, and inverting them is the
//! caller's business.
//!
//! Pin errors map to their [`ErrorKind`], so the five pins may have different types.

use core::fmt;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};
use embedded_hal_async::delay::DelayNs;

/// The longest chain this driver clocks (bits in a `u32`).
pub const MAX_BITS: u8 = 32;
/// The pause before a transfer and around each clock edge, in µs (the reference's ~1 µs;
/// the 74HC parts need a few tens of ns at 3.3 V).
pub const PAUSE_US: u32 = 1;

/// What can go wrong with a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Driving or reading a pin failed.
    Pin(ErrorKind),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pin(kind) => write!(f, "shift register GPIO error: {kind:?}"),
        }
    }
}

impl core::error::Error for Error {}

fn pin<E: embedded_hal::digital::Error>(e: E) -> Error {
    Error::Pin(e.kind())
}

/// A pin that is not connected: writes are ignored, reads are low. Use it for `qh` when there
/// is no '165 chain, or for `oe` when the '595's `/OE` is tied low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoPin;

impl ErrorType for NoPin {
    type Error = core::convert::Infallible;
}

impl OutputPin for NoPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl InputPin for NoPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        Ok(false)
    }
    fn is_low(&mut self) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// The five lines of the chains (see the module documentation).
#[derive(Debug)]
pub struct Lines<OE, LATCH, CLK, SER, QH> {
    /// The '595's `/OE` ([`NoPin`] if tied low).
    pub oe: OE,
    /// The '595's `RCLK` and the '165's load / clock inhibit.
    pub latch: LATCH,
    /// The shared shift clock.
    pub clock: CLK,
    /// The '595's serial data input.
    pub ser: SER,
    /// The '165's serial output ([`NoPin`] without a '165 chain).
    pub qh: QH,
}

/// A '595 output chain and a '165 input chain on shared clock and latch lines.
#[derive(Debug)]
pub struct ShiftRegisters<OE, LATCH, CLK, SER, QH, D> {
    oe: OE,
    latch: LATCH,
    clock: CLK,
    ser: SER,
    qh: QH,
    delay: D,
    outputs: u8,
    inputs: u8,
    rest: bool,
}

impl<OE, LATCH, CLK, SER, QH, D> ShiftRegisters<OE, LATCH, CLK, SER, QH, D>
where
    OE: OutputPin,
    LATCH: OutputPin,
    CLK: OutputPin,
    SER: OutputPin,
    QH: InputPin,
    D: DelayNs,
{
    /// Chains of `outputs` '595 bits and `inputs` '165 bits (each clamped to [`MAX_BITS`]; 8
    /// per chip). Nothing is driven until [`rest`](Self::rest) or the first transfer.
    pub fn new(lines: Lines<OE, LATCH, CLK, SER, QH>, delay: D, outputs: u8, inputs: u8) -> Self {
        let Lines {
            oe,
            latch,
            clock,
            ser,
            qh,
        } = lines;
        ShiftRegisters {
            oe,
            latch,
            clock,
            ser,
            qh,
            delay,
            outputs: outputs.min(MAX_BITS),
            inputs: inputs.min(MAX_BITS),
            rest: false,
        }
    }

    /// Bits in the output chain.
    pub fn output_bits(&self) -> u8 {
        self.outputs
    }

    /// Bits in the input chain.
    pub fn input_bits(&self) -> u8 {
        self.inputs
    }

    /// Puts the lines in their rest state: `latch` high, `clock` low (the reference's start-up
    /// state). `/OE` is not touched: the outputs stay disabled until the first transfer.
    pub fn rest(&mut self) -> Result<(), Error> {
        self.latch.set_high().map_err(pin)?;
        self.clock.set_low().map_err(pin)?;
        self.rest = true;
        Ok(())
    }

    /// Shifts `outputs` (bit *i* = output *i*, bits beyond the chain ignored) into the '595
    /// chain and the '165 chain's inputs out, latches the outputs and enables them. Returns the
    /// input levels (bit *i* = input *i*, high = 1, masked to the chain's length).
    pub async fn transfer(&mut self, outputs: u32) -> Result<u32, Error> {
        if !self.rest {
            self.rest()?;
        }
        // Lines left half-way by a failed or cancelled transfer are put back at the end.
        self.rest = false;
        self.delay.delay_us(PAUSE_US).await;
        self.latch.set_low().map_err(pin)?;
        let mut inputs = 0u32;
        for i in 0..self.outputs.max(self.inputs) {
            if i < self.inputs && self.qh.is_high().map_err(pin)? {
                inputs |= 1 << i;
            }
            let bit = i < self.outputs && outputs & (1 << i) != 0;
            self.ser.set_state(bit.into()).map_err(pin)?;
            self.delay.delay_us(PAUSE_US).await;
            self.clock.set_high().map_err(pin)?;
            self.delay.delay_us(PAUSE_US).await;
            self.clock.set_low().map_err(pin)?;
        }
        self.latch.set_high().map_err(pin)?;
        self.oe.set_low().map_err(pin)?;
        self.rest = true;
        Ok(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// Records every line change as (line, level); `qh` reads from a script.
    #[derive(Clone, Default)]
    struct Log(Rc<RefCell<Vec<(char, bool)>>>);

    struct Line(char, Log, bool);

    impl ErrorType for Line {
        type Error = ErrorKind;
    }

    impl OutputPin for Line {
        fn set_low(&mut self) -> Result<(), ErrorKind> {
            if self.2 {
                return Err(ErrorKind::Other);
            }
            self.1 .0.borrow_mut().push((self.0, false));
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), ErrorKind> {
            self.1 .0.borrow_mut().push((self.0, true));
            Ok(())
        }
    }

    struct Qh(Rc<RefCell<Vec<bool>>>);

    impl ErrorType for Qh {
        type Error = ErrorKind;
    }

    impl InputPin for Qh {
        fn is_high(&mut self) -> Result<bool, ErrorKind> {
            let mut v = self.0.borrow_mut();
            if v.is_empty() {
                Err(ErrorKind::Other)
            } else {
                Ok(v.remove(0))
            }
        }
        fn is_low(&mut self) -> Result<bool, ErrorKind> {
            self.is_high().map(|h| !h)
        }
    }

    struct Delay(Rc<RefCell<u32>>);

    impl DelayNs for Delay {
        async fn delay_ns(&mut self, ns: u32) {
            *self.0.borrow_mut() += ns;
        }
    }

    #[allow(clippy::type_complexity)]
    fn chain(
        qh: Vec<bool>,
        fail_clock: bool,
    ) -> (
        ShiftRegisters<Line, Line, Line, Line, Qh, Delay>,
        Log,
        Rc<RefCell<u32>>,
    ) {
        let log = Log::default();
        let waited = Rc::new(RefCell::new(0));
        let sr = ShiftRegisters::new(
            Lines {
                oe: Line('o', log.clone(), false),
                latch: Line('l', log.clone(), false),
                clock: Line('c', log.clone(), fail_clock),
                ser: Line('s', log.clone(), false),
                qh: Qh(Rc::new(RefCell::new(qh))),
            },
            Delay(waited.clone()),
            8,
            8,
        );
        (sr, log, waited)
    }

    #[test]
    fn a_transfer_follows_the_reference_sequence() {
        // QH shows input 0 first: inputs 0, 2 and 7 high.
        let levels = [true, false, true, false, false, false, false, true];
        let (mut sr, log, waited) = chain(levels.to_vec(), false);
        let got = block_on(sr.transfer(0b0000_0110));
        assert_eq!(got, Ok(0b1000_0101));
        let log = log.0.borrow().clone();
        // Rest state, then latch low, 8 × (SER, clock high, clock low), latch high, /OE low.
        assert_eq!(&log[..3], &[('l', true), ('c', false), ('l', false)]);
        let mut expect = Vec::new();
        for i in 0..8 {
            expect.extend([('s', i == 1 || i == 2), ('c', true), ('c', false)]);
        }
        assert_eq!(&log[3..27], &expect[..]);
        assert_eq!(&log[27..], &[('l', true), ('o', false)]);
        assert_eq!(*waited.borrow(), 1_000 * (1 + 2 * 8));
    }

    #[test]
    fn bits_beyond_the_chains_are_ignored_and_inputs_masked() {
        let (mut sr, _log, _) = chain(vec![true; 8], false);
        assert_eq!(block_on(sr.transfer(u32::MAX)), Ok(0xFF));
        assert_eq!((sr.output_bits(), sr.input_bits()), (8, 8));
        let log = Log::default();
        let mut wide = ShiftRegisters::new(
            Lines {
                oe: Line('o', log.clone(), false),
                latch: Line('l', log.clone(), false),
                clock: Line('c', log.clone(), false),
                ser: Line('s', log.clone(), false),
                qh: NoPin,
            },
            Delay(Rc::new(RefCell::new(0))),
            40,
            0,
        );
        assert_eq!(wide.output_bits(), 32);
        assert_eq!(block_on(wide.transfer(1)), Ok(0));
    }

    #[test]
    fn pin_errors_are_reported_and_the_lines_rest_again() {
        let (mut sr, log, _) = chain(vec![], false);
        assert_eq!(block_on(sr.transfer(0)), Err(Error::Pin(ErrorKind::Other)));
        // The next transfer starts from the rest state again.
        log.0.borrow_mut().clear();
        let _ = block_on(sr.transfer(0));
        assert_eq!(&log.0.borrow()[..2], &[('l', true), ('c', false)]);
        let (mut sr, _, _) = chain(vec![false; 8], true);
        assert!(block_on(sr.transfer(0)).is_err());
        assert_eq!(
            format!("{}", Error::Pin(ErrorKind::Other)),
            "shift register GPIO error: Other"
        );
    }

    /// A minimal executor: the fake pins and delay never pend.
    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        use core::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut f = core::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
