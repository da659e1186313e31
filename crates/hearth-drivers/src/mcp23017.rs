//! Driver for the Microchip MCP23017 16-bit I/O expander on I2C (addresses 0x20..=0x27): reset of
//! the configuration to a known state, port directions and pull-ups, and reading both ports.
//!
//! The chip is used in its power-up register layout (IOCON.BANK = 0), where the A and B register
//! of each function sit next to each other (`IODIRA` 0x00, `IODIRB` 0x01, … `GPIOA` 0x12,
//! `GPIOB` 0x13) and the register pointer advances after each byte (IOCON.SEQOP = 0). That lets
//! the driver read both ports in one transfer, where the reference read them one byte each.
//!
//! Sixteen-bit values use the reference's layout: bits 15..8 are port A (`GPA7..GPA0`), bits
//! 7..0 port B (`GPB7..GPB0`), i.e. `(A << 8) | B`.

use embedded_hal_async::i2c::I2c;

use crate::Error;

/// The address with A2 = A1 = A0 = low (the reference's 0x20).
pub const ADDRESS: u8 = 0x20;

/// Register addresses in the IOCON.BANK = 0 layout (port A; port B is the next address).
pub mod reg {
    /// I/O direction (1 = input), port A.
    pub const IODIRA: u8 = 0x00;
    /// Input polarity (1 = inverted), port A.
    pub const IPOLA: u8 = 0x02;
    /// Interrupt-on-change enable, port A.
    pub const GPINTENA: u8 = 0x04;
    /// Default compare value, port A.
    pub const DEFVALA: u8 = 0x06;
    /// Interrupt control, port A.
    pub const INTCONA: u8 = 0x08;
    /// Configuration (shared by both ports; mirrored at 0x0B).
    pub const IOCON: u8 = 0x0A;
    /// Pull-up enable (100 kΩ), port A.
    pub const GPPUA: u8 = 0x0C;
    /// Interrupt flags (read only), port A.
    pub const INTFA: u8 = 0x0E;
    /// Interrupt capture (read only), port A.
    pub const INTCAPA: u8 = 0x10;
    /// Port levels, port A (writing sets the output latch).
    pub const GPIOA: u8 = 0x12;
    /// Output latch, port A.
    pub const OLATA: u8 = 0x14;
    /// The last register address.
    pub const LAST: u8 = 0x15;
}

/// Splits a `(A << 8) | B` value into its port bytes `[A, B]`.
pub const fn split(value: u16) -> [u8; 2] {
    value.to_be_bytes()
}

/// Joins port bytes into `(A << 8) | B`.
pub const fn join(a: u8, b: u8) -> u16 {
    u16::from_be_bytes([a, b])
}

/// An MCP23017 on an async I2C bus.
#[derive(Debug)]
pub struct Mcp23017<I2C> {
    i2c: I2C,
    address: u8,
}

impl<I2C: I2c> Mcp23017<I2C> {
    /// Wraps the bus for the chip at `address` (0x20..=0x27); nothing is sent yet.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self { i2c, address }
    }

    /// The chip's address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Puts the chip into its power-up state as the reference did: IOCON = 0 (BANK = 0,
    /// sequential addressing, no interrupt mirroring), all pins inputs, no inversion, no
    /// interrupts, no pull-ups, output latches 0. The direction and polarity registers are read
    /// back: a chip that does not answer, or answers with something else (another chip at the
    /// address, a stuck bus reading 0xFF), is an error.
    pub async fn init(&mut self) -> Result<(), Error<I2C::Error>> {
        self.write(&[reg::IOCON, 0x00]).await?;
        // IODIR A/B, IPOL A/B, GPINTEN A/B, DEFVAL A/B, INTCON A/B in one sequential write.
        self.write(&[
            reg::IODIRA,
            0xFF,
            0xFF,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
            0x00,
        ])
        .await?;
        self.write(&[reg::GPPUA, 0x00, 0x00]).await?;
        self.write(&[reg::OLATA, 0x00, 0x00]).await?;
        let mut back = [0u8; 4];
        self.read_registers(reg::IODIRA, &mut back).await?;
        if back != [0xFF, 0xFF, 0x00, 0x00] {
            return Err(Error::InvalidData);
        }
        Ok(())
    }

    /// Sets the pin directions (`inputs`: 1 = input) and pull-ups (`pullups`: 1 = 100 kΩ
    /// pull-up enabled), both as `(A << 8) | B`, and checks that they stuck.
    pub async fn configure(&mut self, inputs: u16, pullups: u16) -> Result<(), Error<I2C::Error>> {
        let [da, db] = split(inputs);
        let [pa, pb] = split(pullups);
        self.write(&[reg::IODIRA, da, db]).await?;
        self.write(&[reg::GPPUA, pa, pb]).await?;
        let mut dir = [0u8; 2];
        let mut pull = [0u8; 2];
        self.read_registers(reg::IODIRA, &mut dir).await?;
        self.read_registers(reg::GPPUA, &mut pull).await?;
        if dir != [da, db] || pull != [pa, pb] {
            return Err(Error::InvalidData);
        }
        Ok(())
    }

    /// Reads the levels of all 16 pins (`GPIOA`, `GPIOB` in one transfer) as `(A << 8) | B`;
    /// 1 = high.
    pub async fn read_gpio(&mut self) -> Result<u16, Error<I2C::Error>> {
        let mut ports = [0u8; 2];
        self.read_registers(reg::GPIOA, &mut ports).await?;
        Ok(join(ports[0], ports[1]))
    }

    /// Sets the output latches of both ports (`(A << 8) | B`); only pins configured as outputs
    /// drive them.
    pub async fn write_outputs(&mut self, value: u16) -> Result<(), Error<I2C::Error>> {
        let [a, b] = split(value);
        self.write(&[reg::OLATA, a, b]).await
    }

    /// Reads consecutive registers starting at `first`.
    pub async fn read_registers(
        &mut self,
        first: u8,
        buf: &mut [u8],
    ) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write_read(self.address, &[first], buf)
            .await
            .map_err(Error::Bus)
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write(self.address, bytes)
            .await
            .map_err(Error::Bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bytes_follow_the_reference_layout() {
        assert_eq!(join(0x12, 0x34), 0x1234);
        assert_eq!(split(0xA05F), [0xA0, 0x5F]);
        // Sensor i < 8 is port B bit i, sensor 8 + j is port A bit j.
        assert_eq!(join(0x00, 0x01), 1 << 0);
        assert_eq!(join(0x01, 0x00), 1 << 8);
    }

    #[test]
    fn register_map_is_bank_0() {
        assert_eq!(reg::GPIOA, 0x12);
        assert_eq!(reg::GPPUA, 0x0C);
        assert_eq!(reg::IOCON, 0x0A);
        assert_eq!(reg::OLATA + 1, reg::LAST);
    }
}
