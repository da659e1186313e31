//! Edge-level model of a 74HC595 output chain and a 74HC165 input chain sharing their clock
//! and latch lines, as on the Dingtian relay boards, so the real bit-banging driver
//! ([`hearth_drivers::shiftreg`]) runs unchanged: [`SrOut`] pins implement `OutputPin` (`/OE`,
//! latch, clock, `SER`), [`SrQh`] implements `InputPin` (`QH`), and [`ShiftRegModel`] is the
//! handle a test or the simulator keeps to read the relays and set the inputs.
//!
//! What is modelled (no timing: the chips react to edges in tens of ns):
//! * '595: a rising clock edge shifts `SER` into the chain; a rising latch edge (`RCLK`) copies
//!   the chain to the storage register; the outputs show the storage register while `/OE` is
//!   low and are off (high impedance, the relay drivers pulled low) while it is high. At
//!   power-up `/OE` is high (the board's pull-up), the latch line idles high and the storage
//!   register is 0.
//! * '165: while the latch line is high the chain follows its parallel inputs and the clock is
//!   inhibited; when it falls the inputs are held and each rising clock edge shifts the chain
//!   one stage towards `QH` (a 0 enters at the far end).
//!
//! Bit numbering follows the wire, as the driver's: output bit *k* is the stage that the bit
//! shifted in at clock *k* of the last *n* clocks reaches (bit 0 = the far end of the chain);
//! input bit *k* is the *k*-th level `QH` shows after the latch falls (bit 0 = the stage on
//! `QH`). Levels are electrical (1 = high); the Dingtian inputs are active low.
//!
//! Faults ([`ShiftRegFault`]): `absent` (no chips: `QH` floats high, the outputs never turn on),
//! `readfails` (reading `QH` returns an error), `garbage` (`QH` shows random levels from the
//! seed, as with a broken chain).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};

use crate::prng::SplitMix64;

/// The longest chains modelled (bits in a `u32`).
pub const MAX_BITS: u8 = 32;

/// How the simulated chains misbehave. Words as in [`crate::fault::ChipFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShiftRegFault {
    /// Healthy.
    #[default]
    None,
    /// No chips on the lines: `QH` reads high (pull-up), the outputs stay off.
    Absent,
    /// Reading `QH` fails (a GPIO error).
    ReadFails,
    /// `QH` shows random levels.
    Garbage,
}

impl ShiftRegFault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            ShiftRegFault::None => "ok",
            ShiftRegFault::Absent => "absent",
            ShiftRegFault::ReadFails => "readfails",
            ShiftRegFault::Garbage => "garbage",
        }
    }
}

impl fmt::Display for ShiftRegFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShiftRegFault {
    type Err = String;

    /// Accepts `ok`/`none`, `absent`, `readfails` (also `readfail`, `read-fails`,
    /// `read_fails`), `garbage`, in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" | "none" => Ok(ShiftRegFault::None),
            "absent" => Ok(ShiftRegFault::Absent),
            "readfails" | "readfail" | "read-fails" | "read_fails" => Ok(ShiftRegFault::ReadFails),
            "garbage" => Ok(ShiftRegFault::Garbage),
            _ => Err(format!(
                "unknown shift register fault '{}': expected one of ok (or none), absent, readfails, garbage",
                s.trim()
            )),
        }
    }
}

/// Which output line a [`SrOut`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The '595's `/OE`.
    Oe,
    /// '595 `RCLK` and '165 load / clock inhibit.
    Latch,
    /// The shared shift clock.
    Clock,
    /// The '595's `SER`.
    Ser,
}

struct Chips {
    out_bits: u8,
    in_bits: u8,
    oe_high: bool,
    latch_high: bool,
    clock_high: bool,
    ser_high: bool,
    /// '595 chain in wire order (bit n-1 = the stage next to `SER`).
    shift: u32,
    storage: u32,
    /// '165 parallel inputs, wire order.
    inputs: u32,
    /// '165 chain while shifting, wire order (bit 0 on `QH`).
    held: u32,
    fault: ShiftRegFault,
    rng: SplitMix64,
    clocks: u64,
    latches: u64,
}

fn mask(bits: u8) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

impl Chips {
    fn set(&mut self, line: Line, high: bool) {
        match line {
            Line::Oe => self.oe_high = high,
            Line::Ser => self.ser_high = high,
            Line::Latch => {
                let rose = high && !self.latch_high;
                self.latch_high = high;
                if rose {
                    self.storage = self.shift;
                    self.latches += 1;
                } else if !high {
                    self.held = self.inputs;
                }
            }
            Line::Clock => {
                let rose = high && !self.clock_high;
                self.clock_high = high;
                if rose {
                    self.clocks += 1;
                    if self.out_bits > 0 {
                        let top = u32::from(self.ser_high) << (self.out_bits - 1);
                        self.shift = ((self.shift >> 1) | top) & mask(self.out_bits);
                    }
                    if !self.latch_high {
                        self.held >>= 1;
                    }
                }
            }
        }
    }

    fn qh(&mut self) -> Result<bool, ErrorKind> {
        match self.fault {
            ShiftRegFault::Absent => Ok(true),
            ShiftRegFault::ReadFails => Err(ErrorKind::Other),
            ShiftRegFault::Garbage => Ok(self.rng.next_u64() & 1 == 1),
            ShiftRegFault::None => {
                if self.in_bits == 0 {
                    return Ok(true);
                }
                let chain = if self.latch_high {
                    self.inputs
                } else {
                    self.held
                };
                Ok(chain & 1 == 1)
            }
        }
    }
}

/// A simulated '595 chain and '165 chain on shared lines. Clones share the chips.
#[derive(Clone)]
pub struct ShiftRegModel(Arc<Mutex<Chips>>);

impl ShiftRegModel {
    /// Chains of `out_bits` '595 bits and `in_bits` '165 bits (each at most [`MAX_BITS`]), just
    /// powered up: outputs disabled, all inputs high (the Dingtian inputs idle high), garbage
    /// drawn from `seed`.
    pub fn new(out_bits: u8, in_bits: u8, seed: u64) -> Self {
        let in_bits = in_bits.min(MAX_BITS);
        ShiftRegModel(Arc::new(Mutex::new(Chips {
            out_bits: out_bits.min(MAX_BITS),
            in_bits,
            oe_high: true,
            latch_high: true,
            clock_high: false,
            ser_high: false,
            shift: 0,
            storage: 0,
            inputs: mask(in_bits),
            held: mask(in_bits),
            fault: ShiftRegFault::None,
            rng: SplitMix64::new(seed),
            clocks: 0,
            latches: 0,
        })))
    }

    /// The output pin for `line`, for the driver.
    pub fn pin(&self, line: Line) -> SrOut {
        SrOut {
            model: self.clone(),
            line,
        }
    }

    /// The `QH` pin, for the driver.
    pub fn qh(&self) -> SrQh {
        SrQh(self.clone())
    }

    /// The '595 outputs as the relays see them: the storage register while `/OE` is low, 0
    /// while it is high or the chips are absent.
    pub fn outputs(&self) -> u32 {
        let chips = self.chips();
        if chips.oe_high || chips.fault == ShiftRegFault::Absent {
            0
        } else {
            chips.storage
        }
    }

    /// Whether output `k` is on (see [`outputs`](Self::outputs)).
    pub fn output(&self, k: u8) -> bool {
        k < MAX_BITS && self.outputs() & (1 << k) != 0
    }

    /// Whether `/OE` is low (the outputs are enabled).
    pub fn enabled(&self) -> bool {
        !self.chips().oe_high
    }

    /// Sets every '165 input level (bit *k* = input *k*, 1 = high; bits beyond the chain
    /// ignored).
    pub fn set_input_levels(&self, levels: u32) {
        let mut chips = self.chips();
        chips.inputs = levels & mask(chips.in_bits);
    }

    /// Sets '165 input `k` high or low.
    pub fn set_input_level(&self, k: u8, high: bool) {
        if k >= MAX_BITS {
            return;
        }
        let mut chips = self.chips();
        let levels = if high {
            chips.inputs | 1 << k
        } else {
            chips.inputs & !(1 << k)
        };
        chips.inputs = levels & mask(chips.in_bits);
    }

    /// The '165 input levels.
    pub fn input_levels(&self) -> u32 {
        self.chips().inputs
    }

    /// Injects `fault` (`ShiftRegFault::None` heals).
    pub fn set_fault(&self, fault: ShiftRegFault) {
        self.chips().fault = fault;
    }

    /// The injected fault.
    pub fn fault(&self) -> ShiftRegFault {
        self.chips().fault
    }

    /// Rising clock edges and rising latch edges seen so far.
    pub fn edges(&self) -> (u64, u64) {
        let chips = self.chips();
        (chips.clocks, chips.latches)
    }

    fn chips(&self) -> MutexGuard<'_, Chips> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One output line of the model (see [`Line`]).
#[derive(Clone)]
pub struct SrOut {
    model: ShiftRegModel,
    line: Line,
}

impl ErrorType for SrOut {
    type Error = ErrorKind;
}

impl OutputPin for SrOut {
    fn set_low(&mut self) -> Result<(), ErrorKind> {
        self.model.chips().set(self.line, false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), ErrorKind> {
        self.model.chips().set(self.line, true);
        Ok(())
    }
}

/// The '165's `QH` line.
#[derive(Clone)]
pub struct SrQh(ShiftRegModel);

impl ErrorType for SrQh {
    type Error = ErrorKind;
}

impl InputPin for SrQh {
    fn is_high(&mut self) -> Result<bool, ErrorKind> {
        self.0.chips().qh()
    }

    fn is_low(&mut self) -> Result<bool, ErrorKind> {
        self.0.chips().qh().map(|h| !h)
    }
}
