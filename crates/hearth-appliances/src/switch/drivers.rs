//! The boards the switch appliance runs on (the reference's driver classes as presets) and its
//! hardware edge, [`SwitchIo`]: read the manual inputs as a bitmap, write the outputs as a
//! bitmap. [`DirectIo`] implements it over GPIO pins, [`ShiftIo`] over the 74HC595/74HC165
//! chains of [`hearth_drivers::shiftreg`]; the firmware builds either from esp-hal pins, the
//! simulator from its pin models.
//!
//! The default pins are the reference's, for its ESP32 boards; an ESP32-C3/C6 build names its
//! own with the `switchinpins`/`switchoutpins`/`switchsrpins` keys (the firmware checks that
//! the pins exist on its chip).

use alloc::vec::Vec;

use embedded_hal::digital::{Error as _, ErrorKind, InputPin, OutputPin};
use embedded_hal_async::delay::DelayNs;
use hearth_drivers::shiftreg::{self, ShiftRegisters};

/// A board preset (config key `switchboard`, the reference's driver class names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// `Direct4`: the breadboard build, 4 inputs and 4 outputs on GPIOs.
    Direct4,
    /// `dtwonder2`: Dingtian 2-channel, inputs and relays on GPIOs.
    Dingtian2,
    /// `dtwonder4`: Dingtian 4-channel, inputs and relays on GPIOs.
    Dingtian4,
    /// `dtwonder8`: Dingtian 8-channel, 8 inputs on a 74HC165 and 8 relays on a 74HC595.
    Dingtian8,
    /// `hoffer6`: Hoffer PLC HF-006, 8 inputs and 6 outputs on GPIOs, inputs active high.
    Hoffer6,
    /// `minir4`: Sonoff Mini R4, the S1/S2 terminals and the box button, one relay.
    MiniR4,
}

/// How a board's inputs and outputs are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// One GPIO per input and per output, in bit order.
    Direct {
        /// Input GPIOs (bit *i* = `inputs[i]`).
        inputs: &'static [u8],
        /// Output GPIOs (push-pull, high = on).
        outputs: &'static [u8],
    },
    /// A '595 output chain and a '165 input chain (see [`hearth_drivers::shiftreg`]).
    ShiftRegisters(SrPins),
}

/// The GPIOs of the shift-register chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrPins {
    /// '595 `/OE`.
    pub oe: u8,
    /// '595 `RCLK` and '165 load / clock inhibit.
    pub latch: u8,
    /// The shared clock.
    pub clock: u8,
    /// '595 `SER` (data out of the MCU).
    pub ser: u8,
    /// '165 `QH` (data into the MCU).
    pub qh: u8,
}

/// What a preset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The `switchboard` value (the reference's class name).
    pub name: &'static str,
    /// Manual inputs.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// Inputs are active low (pin LOW = input active).
    pub inputs_active_low: bool,
    /// How they are reached, with the reference's pins.
    pub wiring: Wiring,
    /// The activity LED: GPIO and whether it is lit low (`None`: the board has none).
    pub led: Option<(u8, bool)>,
}

impl Board {
    /// Every preset.
    pub const ALL: [Board; 6] = [
        Board::Direct4,
        Board::Dingtian2,
        Board::Dingtian4,
        Board::Dingtian8,
        Board::Hoffer6,
        Board::MiniR4,
    ];

    /// The preset's description (reference §7's driver table).
    pub const fn preset(self) -> Preset {
        match self {
            Board::Direct4 => Preset {
                name: "Direct4",
                inputs: 4,
                outputs: 4,
                inputs_active_low: true,
                wiring: Wiring::Direct {
                    inputs: &[26, 34, 33, 35],
                    outputs: &[17, 16, 32, 12],
                },
                led: Some((2, false)),
            },
            Board::Dingtian2 => Preset {
                name: "dtwonder2",
                inputs: 2,
                outputs: 2,
                inputs_active_low: true,
                wiring: Wiring::Direct {
                    inputs: &[36, 39],
                    outputs: &[16, 2],
                },
                led: None,
            },
            Board::Dingtian4 => Preset {
                name: "dtwonder4",
                inputs: 4,
                outputs: 4,
                inputs_active_low: true,
                wiring: Wiring::Direct {
                    inputs: &[36, 39, 33, 35],
                    outputs: &[16, 2, 32, 12],
                },
                led: None,
            },
            Board::Dingtian8 => Preset {
                name: "dtwonder8",
                inputs: 8,
                outputs: 8,
                inputs_active_low: true,
                wiring: Wiring::ShiftRegisters(SrPins {
                    oe: 32,
                    latch: 15,
                    clock: 14,
                    ser: 13,
                    qh: 16,
                }),
                led: None,
            },
            Board::Hoffer6 => Preset {
                name: "hoffer6",
                inputs: 8,
                outputs: 6,
                inputs_active_low: false,
                wiring: Wiring::Direct {
                    inputs: &[36, 39, 32, 33, 25, 26, 27, 14],
                    outputs: &[4, 16, 17, 18, 19, 23],
                },
                led: Some((2, false)),
            },
            Board::MiniR4 => Preset {
                name: "minir4",
                inputs: 2,
                outputs: 1,
                inputs_active_low: true,
                wiring: Wiring::Direct {
                    inputs: &[27, 0],
                    outputs: &[26],
                },
                led: Some((19, true)),
            },
        }
    }

    /// The preset named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Board> {
        Board::ALL
            .into_iter()
            .find(|b| b.preset().name.eq_ignore_ascii_case(name.trim()))
    }
}

/// The appliance's hardware edge: the manual inputs and the outputs as bitmaps (bit *i* =
/// input or output *i*). Implemented by [`DirectIo`] and [`ShiftIo`] over `embedded-hal`
/// pins, which the firmware (esp-hal) and the simulator (pin models) each provide.
#[allow(async_fn_in_trait)]
pub trait SwitchIo {
    /// How many manual inputs there are (at most 32).
    fn inputs(&self) -> usize;
    /// How many outputs there are (at most 32).
    fn outputs(&self) -> usize;
    /// The inputs now: bit *i* set = input *i* active (inversion already applied).
    async fn read_inputs(&mut self) -> Result<u32, ErrorKind>;
    /// Sets every output (bit *i* set = output *i* on).
    async fn write_outputs(&mut self, bits: u32) -> Result<(), ErrorKind>;
}

fn mask(n: usize) -> u32 {
    if n >= 32 {
        u32::MAX
    } else {
        (1u32 << n) - 1
    }
}

/// Inputs and outputs on one GPIO each. Outputs are push-pull, high = on.
pub struct DirectIo<I, O> {
    inputs: Vec<I>,
    outputs: Vec<O>,
    active_low: bool,
}

impl<I: InputPin, O: OutputPin> DirectIo<I, O> {
    /// `inputs` and `outputs` in bit order (at most 32 of each are used); `active_low`: an
    /// input is active when its pin is low. Nothing is driven until the first write.
    pub fn new(mut inputs: Vec<I>, mut outputs: Vec<O>, active_low: bool) -> Self {
        inputs.truncate(32);
        outputs.truncate(32);
        DirectIo {
            inputs,
            outputs,
            active_low,
        }
    }
}

impl<I: InputPin, O: OutputPin> SwitchIo for DirectIo<I, O> {
    fn inputs(&self) -> usize {
        self.inputs.len()
    }

    fn outputs(&self) -> usize {
        self.outputs.len()
    }

    async fn read_inputs(&mut self) -> Result<u32, ErrorKind> {
        let mut bits = 0;
        for (i, pin) in self.inputs.iter_mut().enumerate() {
            let high = pin.is_high().map_err(|e| e.kind())?;
            if high != self.active_low {
                bits |= 1 << i;
            }
        }
        Ok(bits)
    }

    async fn write_outputs(&mut self, bits: u32) -> Result<(), ErrorKind> {
        let mut result = Ok(());
        for (i, pin) in self.outputs.iter_mut().enumerate() {
            // Every pin is written even if one fails.
            if let Err(e) = pin.set_state((bits & (1 << i) != 0).into()) {
                result = Err(e.kind());
            }
        }
        result
    }
}

/// Inputs and outputs on shift-register chains. Every read and every write is one full
/// transfer carrying the current outputs, as the reference's `dtwonder8` driver.
pub struct ShiftIo<OE, LATCH, CLK, SER, QH, D> {
    chains: ShiftRegisters<OE, LATCH, CLK, SER, QH, D>,
    outputs: u32,
    active_low: bool,
}

impl<OE, LATCH, CLK, SER, QH, D> ShiftIo<OE, LATCH, CLK, SER, QH, D>
where
    OE: OutputPin,
    LATCH: OutputPin,
    CLK: OutputPin,
    SER: OutputPin,
    QH: InputPin,
    D: DelayNs,
{
    /// Over `chains`; `active_low`: an input is active when its level is low. The outputs
    /// stay disabled until the first write (the restored states).
    pub fn new(chains: ShiftRegisters<OE, LATCH, CLK, SER, QH, D>, active_low: bool) -> Self {
        ShiftIo {
            chains,
            outputs: 0,
            active_low,
        }
    }
}

impl<OE, LATCH, CLK, SER, QH, D> SwitchIo for ShiftIo<OE, LATCH, CLK, SER, QH, D>
where
    OE: OutputPin,
    LATCH: OutputPin,
    CLK: OutputPin,
    SER: OutputPin,
    QH: InputPin,
    D: DelayNs,
{
    fn inputs(&self) -> usize {
        usize::from(self.chains.input_bits())
    }

    fn outputs(&self) -> usize {
        usize::from(self.chains.output_bits())
    }

    async fn read_inputs(&mut self) -> Result<u32, ErrorKind> {
        let levels = match self.chains.transfer(self.outputs).await {
            Ok(levels) => levels,
            Err(shiftreg::Error::Pin(k)) => return Err(k),
        };
        let bits = if self.active_low { !levels } else { levels };
        Ok(bits & mask(self.inputs()))
    }

    async fn write_outputs(&mut self, bits: u32) -> Result<(), ErrorKind> {
        self.outputs = bits & mask(self.outputs());
        match self.chains.transfer(self.outputs).await {
            Ok(_) => Ok(()),
            Err(shiftreg::Error::Pin(k)) => Err(k),
        }
    }
}
