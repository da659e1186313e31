//! Driver for the TI HDC1080 temperature and relative-humidity sensor (I2C address 0x40): identity
//! check, configuration, and one triggered 14-bit conversion per reading.
//!
//! Differences from the MicroPython reference driver: the reference writes configuration 0x1000
//! (acquisition-mode bit set, i.e. temperature and humidity in sequence) while its comment claims
//! independent measurements, and it sleeps ~64 ms per reading, blocking the event loop. This
//! driver writes MODE = 0 (one quantity per trigger, as the API reads them one at a time), checks
//! both identity registers, reads the configuration back, and awaits only the 7 ms a 14-bit
//! conversion needs.

use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::i2c::I2c;

use crate::Error;

/// The HDC1080's fixed 7-bit I2C address.
pub const ADDRESS: u8 = 0x40;
/// Content of the manufacturer-ID register (Texas Instruments).
pub const MANUFACTURER_ID: u16 = 0x5449;
/// Content of the device-ID register.
pub const DEVICE_ID: u16 = 0x1050;

/// Register addresses (pointer values).
mod reg {
    pub const TEMPERATURE: u8 = 0x00;
    pub const HUMIDITY: u8 = 0x01;
    pub const CONFIGURATION: u8 = 0x02;
    pub const MANUFACTURER_ID: u8 = 0xFE;
    pub const DEVICE_ID: u8 = 0xFF;
}

/// Power-up time before the chip accepts commands (datasheet maximum 15 ms).
const STARTUP_MS: u32 = 15;
/// Wait after a trigger: 14-bit temperature takes 6.35 ms, 14-bit humidity 6.5 ms.
const CONVERSION_US: u32 = 7_000;
/// Configuration written at init: heater off, MODE = 0 (temperature or humidity per trigger),
/// TRES = 0 (14-bit temperature), HRES = 00 (14-bit humidity).
const CONFIGURATION: u16 = 0x0000;
/// The bits of the configuration register that can be written (HEAT, MODE, TRES, HRES); bit 11
/// is the read-only battery status and bit 15 the self-clearing reset.
const CONFIGURATION_WRITABLE: u16 = 0x3700;
/// Bits 1 and 0 of both result registers are reserved and always read as zero.
const RESULT_RESERVED: u16 = 0x0003;

/// An HDC1080 on an async I2C bus.
#[derive(Debug)]
pub struct Hdc1080<I2C> {
    i2c: I2C,
    initialized: bool,
}

impl<I2C: I2c> Hdc1080<I2C> {
    /// Wraps the bus; nothing is sent until [`init`](Self::init).
    pub fn new(i2c: I2C) -> Self {
        Self {
            i2c,
            initialized: false,
        }
    }

    /// Waits for the power-up time, checks both identity registers and configures 14-bit
    /// single-quantity conversions. Can be called again to recover a chip that came back.
    pub async fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.initialized = false;
        delay.delay_ms(STARTUP_MS).await;

        let manufacturer = self.read_register(reg::MANUFACTURER_ID).await?;
        if manufacturer != MANUFACTURER_ID {
            return Err(Error::WrongChipId {
                expected: MANUFACTURER_ID,
                found: manufacturer,
            });
        }
        let device = self.read_register(reg::DEVICE_ID).await?;
        if device != DEVICE_ID {
            return Err(Error::WrongChipId {
                expected: DEVICE_ID,
                found: device,
            });
        }

        let [msb, lsb] = CONFIGURATION.to_be_bytes();
        self.i2c
            .write(ADDRESS, &[reg::CONFIGURATION, msb, lsb])
            .await
            .map_err(Error::Bus)?;
        let written = self.read_register(reg::CONFIGURATION).await?;
        if written & CONFIGURATION_WRITABLE != CONFIGURATION {
            return Err(Error::InvalidData);
        }

        self.initialized = true;
        Ok(())
    }

    /// Triggers a temperature conversion and returns degrees Celsius.
    pub async fn read_temperature<D: DelayNs>(
        &mut self,
        delay: &mut D,
    ) -> Result<f32, Error<I2C::Error>> {
        let raw = self.convert(reg::TEMPERATURE, delay).await?;
        Ok(temperature_from_raw(raw))
    }

    /// Triggers a humidity conversion and returns percent relative humidity.
    pub async fn read_humidity<D: DelayNs>(
        &mut self,
        delay: &mut D,
    ) -> Result<f32, Error<I2C::Error>> {
        let raw = self.convert(reg::HUMIDITY, delay).await?;
        Ok(humidity_from_raw(raw))
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    /// Pointer write to a result register starts a conversion; the chip refuses (NACKs) a read
    /// until the conversion is complete, so the read comes only after the conversion time.
    async fn convert<D: DelayNs>(
        &mut self,
        pointer: u8,
        delay: &mut D,
    ) -> Result<u16, Error<I2C::Error>> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        self.i2c
            .write(ADDRESS, &[pointer])
            .await
            .map_err(Error::Bus)?;
        delay.delay_us(CONVERSION_US).await;
        let mut buf = [0u8; 2];
        self.i2c.read(ADDRESS, &mut buf).await.map_err(Error::Bus)?;
        let raw = u16::from_be_bytes(buf);
        if raw & RESULT_RESERVED != 0 {
            return Err(Error::InvalidData);
        }
        Ok(raw)
    }

    async fn read_register(&mut self, pointer: u8) -> Result<u16, Error<I2C::Error>> {
        let mut buf = [0u8; 2];
        self.i2c
            .write_read(ADDRESS, &[pointer], &mut buf)
            .await
            .map_err(Error::Bus)?;
        Ok(u16::from_be_bytes(buf))
    }
}

/// Datasheet conversion of the temperature register: °C = raw / 2^16 × 165 − 40.
pub fn temperature_from_raw(raw: u16) -> f32 {
    f32::from(raw) * (165.0 / 65536.0) - 40.0
}

/// Datasheet conversion of the humidity register: %RH = raw / 2^16 × 100.
pub fn humidity_from_raw(raw: u16) -> f32 {
    f32::from(raw) * (100.0 / 65536.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_conversion_matches_datasheet_endpoints() {
        assert_eq!(temperature_from_raw(0), -40.0);
        // Mid-scale: 0x8000 is exactly half of 165 °C above -40 °C.
        assert!((temperature_from_raw(0x8000) - 42.5).abs() < 1e-5);
        // Largest 14-bit code.
        let top = temperature_from_raw(0xFFFC);
        assert!((top - (0xFFFC as f32 / 65536.0 * 165.0 - 40.0)).abs() < 1e-4);
        assert!(top < 125.0);
        // 25 °C ↔ (65 / 165) × 2^16 = 25817.2...
        assert!((temperature_from_raw(25816) - 24.999).abs() < 0.01);
    }

    #[test]
    fn humidity_conversion_matches_datasheet_endpoints() {
        assert_eq!(humidity_from_raw(0), 0.0);
        assert!((humidity_from_raw(0x8000) - 50.0).abs() < 1e-5);
        assert!((humidity_from_raw(0x4000) - 25.0).abs() < 1e-5);
        assert!(humidity_from_raw(0xFFFC) < 100.0);
    }

    #[test]
    fn one_14_bit_step_is_the_datasheet_resolution() {
        let t_step = temperature_from_raw(8) - temperature_from_raw(4);
        assert!((t_step - 165.0 / 16384.0).abs() < 1e-5);
        let h_step = humidity_from_raw(8) - humidity_from_raw(4);
        assert!((h_step - 100.0 / 16384.0).abs() < 1e-5);
    }
}
