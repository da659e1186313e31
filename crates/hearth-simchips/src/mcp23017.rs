//! Register-level model of the Microchip MCP23017 16-bit I/O expander (IOCON.BANK = 0 layout):
//! the 22 registers, the register pointer with sequential (SEQOP = 0) or byte-pair (SEQOP = 1)
//! advance, input polarity, 100 kΩ pull-ups, output latches, and the levels of the 16 pins as
//! the outside world drives them ([`Drive`]), e.g. a tank's float switches that pull a pin low
//! when wet. An input that nobody drives and that has no pull-up floats: it reads a pseudo-random
//! level from a seeded generator, so forgetting the pull-ups shows as noise, reproducibly.
//!
//! The model is a cloneable handle: attach one clone to a [`SimI2cBus`](crate::SimI2cBus) and
//! keep another to move the switches. Interrupt logic (INTF, INTCAP) is not modelled (reads 0);
//! IOCON.BANK = 1 is stored but the register map stays the BANK = 0 one.
//!
//! Pin numbering follows the reference's bitmap `(A << 8) | B`: pins 0..=7 are GPB0..GPB7,
//! pins 8..=15 GPA0..GPA7.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::bus::{BusFault, I2cDevice};
use crate::prng::SplitMix64;

/// The model's default address (A2..A0 low).
pub const ADDRESS: u8 = 0x20;

const IODIRA: usize = 0x00;
const IPOLA: usize = 0x02;
const IOCON_A: usize = 0x0A;
const IOCON_B: usize = 0x0B;
const GPPUA: usize = 0x0C;
const INTFA: usize = 0x0E;
const INTCAPB: usize = 0x11;
const GPIOA: usize = 0x12;
const GPIOB: usize = 0x13;
const OLATA: usize = 0x14;
const OLATB: usize = 0x15;
const REGISTERS: usize = OLATB + 1;
const IOCON_SEQOP: u8 = 1 << 5;

/// What the outside world does to a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Drive {
    /// Nothing connected or an open switch: the pin reads its pull-up (or floats).
    #[default]
    Open,
    /// Pulled to ground (a closed switch to GND).
    Low,
    /// Driven high.
    High,
}

#[derive(Debug)]
struct State {
    regs: [u8; REGISTERS],
    pointer: usize,
    drive: [Drive; 16],
    rng: SplitMix64,
}

/// A simulated MCP23017.
#[derive(Debug, Clone)]
pub struct Mcp23017Model(Arc<Mutex<State>>);

impl Mcp23017Model {
    /// A chip at power-up (all pins inputs, no pull-ups, nothing connected); `seed` drives the
    /// levels of floating inputs.
    pub fn new(seed: u64) -> Self {
        let mut regs = [0u8; REGISTERS];
        regs[IODIRA] = 0xFF;
        regs[IODIRA + 1] = 0xFF;
        Mcp23017Model(Arc::new(Mutex::new(State {
            regs,
            pointer: 0,
            drive: [Drive::Open; 16],
            rng: SplitMix64::new(seed),
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drives pin `pin` (0..=15, see the module documentation); other pins are ignored.
    pub fn set_input(&self, pin: u8, drive: Drive) {
        if let Some(d) = self.state().drive.get_mut(usize::from(pin)) {
            *d = drive;
        }
    }

    /// Level switches: pins whose bit is set in `closed` are pulled low (a wet float switch),
    /// the others are open.
    pub fn set_switches(&self, closed: u16) {
        let mut s = self.state();
        for (pin, d) in s.drive.iter_mut().enumerate() {
            *d = if closed & (1 << pin) != 0 {
                Drive::Low
            } else {
                Drive::Open
            };
        }
    }

    /// A register's content (BANK = 0 address).
    pub fn register(&self, address: u8) -> Option<u8> {
        self.state().regs.get(usize::from(address)).copied()
    }

    /// The pin levels as the chip would read them now, `(A << 8) | B`.
    pub fn pins(&self) -> u16 {
        let mut s = self.state();
        let a = s.port_levels(0);
        let b = s.port_levels(1);
        u16::from_be_bytes([a, b])
    }
}

impl State {
    /// Levels of port `port` (0 = A, 1 = B) at the pins, before polarity inversion.
    fn port_levels(&mut self, port: usize) -> u8 {
        let dir = self.regs[IODIRA + port];
        let pull = self.regs[GPPUA + port];
        let latch = self.regs[OLATA + port];
        let mut value = 0u8;
        for bit in 0..8 {
            // Port A is pins 8..=15, port B pins 0..=7.
            let pin = if port == 0 { 8 + bit } else { bit };
            let mask = 1u8 << bit;
            let high = if dir & mask == 0 {
                latch & mask != 0
            } else {
                match self.drive[pin] {
                    Drive::Low => false,
                    Drive::High => true,
                    Drive::Open if pull & mask != 0 => true,
                    Drive::Open => self.rng.next_u64() & 1 == 1,
                }
            };
            if high {
                value |= mask;
            }
        }
        value
    }

    fn read_register(&mut self, address: usize) -> u8 {
        match address {
            GPIOA | GPIOB => {
                let port = address - GPIOA;
                // IPOL inverts inputs only.
                self.port_levels(port) ^ (self.regs[IPOLA + port] & self.regs[IODIRA + port])
            }
            INTFA..=INTCAPB => 0,
            _ => self.regs[address],
        }
    }

    fn write_register(&mut self, address: usize, value: u8) {
        match address {
            IOCON_A | IOCON_B => {
                // Bit 0 is unimplemented; both addresses are the same register.
                self.regs[IOCON_A] = value & 0xFE;
                self.regs[IOCON_B] = value & 0xFE;
            }
            INTFA..=INTCAPB => {}
            GPIOA | GPIOB => self.regs[OLATA + address - GPIOA] = value,
            _ => self.regs[address] = value,
        }
    }

    fn advance(&mut self) {
        self.pointer = if self.regs[IOCON_A] & IOCON_SEQOP != 0 {
            // Byte mode with BANK = 0: toggles within the A/B pair.
            self.pointer ^ 1
        } else {
            (self.pointer + 1) % REGISTERS
        };
    }
}

impl I2cDevice for Mcp23017Model {
    fn write(&mut self, _now_us: u64, bytes: &[u8]) -> Result<(), BusFault> {
        let Some((&pointer, data)) = bytes.split_first() else {
            return Ok(());
        };
        let mut s = self.state();
        if usize::from(pointer) >= REGISTERS {
            return Err(BusFault::DataNack);
        }
        s.pointer = usize::from(pointer);
        for &byte in data {
            let at = s.pointer;
            s.write_register(at, byte);
            s.advance();
        }
        Ok(())
    }

    fn read(&mut self, _now_us: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        let mut s = self.state();
        for byte in buf {
            let at = s.pointer;
            *byte = s.read_register(at);
            s.advance();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_and_byte_mode_pointer() {
        let mut m = Mcp23017Model::new(1);
        m.write(0, &[OLATB as u8, 0x11, 0x22]).unwrap();
        // 0x15 then wraps to 0x00 (IODIRA).
        assert_eq!(m.register(OLATB as u8), Some(0x11));
        assert_eq!(m.register(IODIRA as u8), Some(0x22));
        m.write(0, &[IOCON_A as u8, IOCON_SEQOP]).unwrap();
        m.write(0, &[GPPUA as u8, 1, 2, 3]).unwrap();
        assert_eq!(m.register(GPPUA as u8), Some(3));
        assert_eq!(m.register(GPPUA as u8 + 1), Some(2));
        assert_eq!(m.register(IOCON_B as u8), Some(IOCON_SEQOP));
        assert_eq!(m.write(0, &[0x16]), Err(BusFault::DataNack));
    }

    #[test]
    fn pull_ups_switches_polarity_and_outputs() {
        let mut m = Mcp23017Model::new(1);
        m.write(0, &[GPPUA as u8, 0xFF, 0xFF]).unwrap();
        m.set_switches(0b1_0000_0101);
        assert_eq!(m.pins(), !0b1_0000_0101);
        m.write(0, &[IPOLA as u8 + 1, 0x01]).unwrap();
        m.write(0, &[GPIOA as u8]).unwrap();
        let mut buf = [0u8; 2];
        m.read(0, &mut buf).unwrap();
        assert_eq!(buf, [0xFE, 0xFA ^ 0x01]);
        // Port B bit 7 as an output driving its latch low.
        m.write(0, &[IODIRA as u8 + 1, 0x7F]).unwrap();
        m.write(0, &[GPIOB as u8, 0x00]).unwrap();
        assert_eq!(m.register(OLATB as u8), Some(0));
        assert_eq!(m.pins() & 0x80, 0);
    }

    #[test]
    fn floating_inputs_are_noise_but_reproducible() {
        let read = |seed| {
            let m = Mcp23017Model::new(seed);
            (0..8).map(|_| m.pins()).collect::<Vec<_>>()
        };
        assert_eq!(read(5), read(5));
        assert!(read(5).windows(2).any(|w| w[0] != w[1]));
    }
}
