//! Driver for the Bosch BME280 pressure, temperature and humidity sensor: identity check, soft
//! reset, calibration readout, forced-mode measurements and the datasheet's integer compensation.
//!
//! # Pressure: what the MicroPython reference gets wrong, and what this driver does instead
//!
//! Bosch's pressure (and humidity) compensation needs `t_fine`, a fine-resolution temperature
//! produced by the temperature compensation of the *same* conversion. The reference driver keeps
//! `t_fine` as driver state, starts it at 0 and only updates it in its temperature function;
//! the weather profile never calls that function, so every pressure is compensated as if the die
//! were at 0 °C and the published pressure carries a temperature-dependent bias (with the
//! datasheet's example calibration at 25 °C: about −38 hPa, where the chip is good to ±1 hPa;
//! see the test `the_reference_bias_from_t_fine_zero`). It also never
//! writes `ctrl_hum`/`config`, runs the chip in normal mode and fetches the 20-bit pressure as
//! three separate single-byte reads, which the chip does not guarantee to come from one sample
//! (its shadowing of the data registers only holds within one burst read).
//!
//! This driver has no `t_fine` state at all: [`Bme280::measure`] triggers one forced conversion,
//! burst-reads all eight data registers (0xF7..0xFE) in one transfer, and compensates pressure
//! and humidity with the [`TFine`] of that very temperature sample. `TFine` can only be obtained
//! from [`Calibration::compensate_temperature`], so a pressure cannot be compensated with a
//! made-up or stale temperature. `ctrl_hum` and `ctrl_meas` are written before every
//! measurement, so a chip that reset itself behind our back is measured with the right
//! oversampling again. A zero divisor or an overflow in the compensation (only possible with an
//! implausible calibration) is an error instead of the reference's silent 0 Pa.

use core::fmt;

use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::i2c::I2c;

use crate::Error;

/// Value of the chip-ID register of a BME280 (a BMP280 reports 0x56..0x58).
pub const CHIP_ID: u8 = 0x60;

/// The two I2C addresses a BME280 can have, chosen by its SDO pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Address {
    /// SDO to GND: 0x76 (the weather station's wiring).
    #[default]
    Primary,
    /// SDO to VDDIO: 0x77.
    Secondary,
}

impl Address {
    /// The 7-bit bus address.
    pub const fn as_u8(self) -> u8 {
        match self {
            Address::Primary => 0x76,
            Address::Secondary => 0x77,
        }
    }
}

impl TryFrom<u8> for Address {
    type Error = u8;

    /// Accepts 0x76 or 0x77; returns the rejected value otherwise.
    fn try_from(value: u8) -> Result<Self, u8> {
        match value {
            0x76 => Ok(Address::Primary),
            0x77 => Ok(Address::Secondary),
            other => Err(other),
        }
    }
}

/// Register addresses.
mod reg {
    /// First calibration block: dig_T1..dig_P9, reserved 0xA0, dig_H1 (0x88..=0xA1).
    pub const CALIB_T_P: u8 = 0x88;
    pub const CHIP_ID: u8 = 0xD0;
    pub const RESET: u8 = 0xE0;
    /// Second calibration block: dig_H2..dig_H6 (0xE1..=0xE7).
    pub const CALIB_H: u8 = 0xE1;
    pub const CTRL_HUM: u8 = 0xF2;
    pub const STATUS: u8 = 0xF3;
    pub const CTRL_MEAS: u8 = 0xF4;
    pub const CONFIG: u8 = 0xF5;
    /// press_msb; the burst 0xF7..=0xFE holds pressure, temperature and humidity.
    pub const DATA: u8 = 0xF7;
}

const RESET_COMMAND: u8 = 0xB6;
const STATUS_MEASURING: u8 = 1 << 3;
const STATUS_IM_UPDATE: u8 = 1 << 0;

/// Oversampling codes (register field values) and the factors they stand for.
/// Temperature ×2 (17-bit), pressure ×16 (20-bit, 0.16 Pa resolution), humidity ×1.
const OSRS_T: u8 = 0b010;
const OSRS_P: u8 = 0b101;
const OSRS_H: u8 = 0b001;
const OVERSAMPLING_T: u32 = 2;
const OVERSAMPLING_P: u32 = 16;
const OVERSAMPLING_H: u32 = 1;
const MODE_SLEEP: u8 = 0b00;
const MODE_FORCED: u8 = 0b01;
const CTRL_MEAS_SLEEP: u8 = (OSRS_T << 5) | (OSRS_P << 2) | MODE_SLEEP;
const CTRL_MEAS_FORCED: u8 = (OSRS_T << 5) | (OSRS_P << 2) | MODE_FORCED;
/// Standby time irrelevant in forced mode; IIR filter off, so each reading stands alone (the
/// appliance filters over time if it wants to).
const CONFIG_VALUE: u8 = 0x00;

/// Start-up time after a soft reset (datasheet 2 ms), then the NVM copy flag is polled.
const STARTUP_US: u32 = 2_000;
const POLL_INTERVAL_US: u32 = 1_000;
const NVM_COPY_POLLS: u32 = 10;
/// Datasheet measurement time, typical: 1 + 2·T + (2·P + 0.5) + (2·H + 0.5) ms.
const MEASUREMENT_TYPICAL_US: u32 = 1_000
    + 2_000 * OVERSAMPLING_T
    + (2_000 * OVERSAMPLING_P + 500)
    + (2_000 * OVERSAMPLING_H + 500);
/// Datasheet measurement time, maximum: 1.25 + 2.3·T + (2.3·P + 0.575) + (2.3·H + 0.575) ms.
const MEASUREMENT_MAX_US: u32 = 1_250
    + 2_300 * OVERSAMPLING_T
    + (2_300 * OVERSAMPLING_P + 575)
    + (2_300 * OVERSAMPLING_H + 575);
/// After the typical time, poll the measuring bit until well past the maximum time.
const MEASUREMENT_POLLS: u32 =
    (MEASUREMENT_MAX_US - MEASUREMENT_TYPICAL_US) / POLL_INTERVAL_US + 10;
const _: () = assert!(
    MEASUREMENT_TYPICAL_US + MEASUREMENT_POLLS * POLL_INTERVAL_US > MEASUREMENT_MAX_US,
    "the polling budget must outlast the datasheet's maximum measurement time"
);

/// Raw values the data registers hold after reset (and when a quantity was skipped).
const RAW_20_BIT_RESET: u32 = 0x8_0000;
const RAW_16_BIT_RESET: u32 = 0x8000;

/// One compensated reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Degrees Celsius, 0.01 °C resolution.
    pub temperature_c: f32,
    /// Pascal (1 hPa = 100 Pa), 1/256 Pa resolution.
    pub pressure_pa: f32,
    /// Percent relative humidity, 1/1024 %RH resolution.
    pub humidity_rh: f32,
}

/// The uncompensated ADC values of one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSample {
    /// 20-bit pressure ADC value.
    pub pressure: u32,
    /// 20-bit temperature ADC value.
    pub temperature: u32,
    /// 16-bit humidity ADC value.
    pub humidity: u32,
}

impl RawSample {
    /// Unpacks the burst 0xF7..=0xFE (press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb).
    pub fn from_registers(data: &[u8; 8]) -> Self {
        let twenty = |msb: u8, lsb: u8, xlsb: u8| {
            (u32::from(msb) << 12) | (u32::from(lsb) << 4) | (u32::from(xlsb) >> 4)
        };
        RawSample {
            pressure: twenty(data[0], data[1], data[2]),
            temperature: twenty(data[3], data[4], data[5]),
            humidity: (u32::from(data[6]) << 8) | u32::from(data[7]),
        }
    }
}

/// Why a compensation could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompensationError {
    /// The pressure formula's divisor is zero (e.g. dig_P1 = 0).
    DivisionByZero,
    /// An intermediate or the result does not fit the datasheet's integer types.
    Overflow,
}

impl fmt::Display for CompensationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompensationError::DivisionByZero => f.write_str("pressure divisor is zero"),
            CompensationError::Overflow => f.write_str("arithmetic overflow"),
        }
    }
}

/// The fine-resolution temperature of one conversion (°C × 5120), needed by the pressure and
/// humidity compensation. Only [`Calibration::compensate_temperature`] makes one, so pressure is
/// always compensated with a real temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TFine(i32);

impl TFine {
    /// The datasheet's `t_fine` value.
    pub const fn value(self) -> i32 {
        self.0
    }
}

/// The factory trimming parameters stored in the chip's NVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Calibration {
    pub dig_t1: u16,
    pub dig_t2: i16,
    pub dig_t3: i16,
    pub dig_p1: u16,
    pub dig_p2: i16,
    pub dig_p3: i16,
    pub dig_p4: i16,
    pub dig_p5: i16,
    pub dig_p6: i16,
    pub dig_p7: i16,
    pub dig_p8: i16,
    pub dig_p9: i16,
    pub dig_h1: u8,
    pub dig_h2: i16,
    pub dig_h3: u8,
    pub dig_h4: i16,
    pub dig_h5: i16,
    pub dig_h6: i8,
}

impl Calibration {
    /// Decodes the two calibration blocks: `t_p` is 0x88..=0xA1 (26 bytes), `h` is 0xE1..=0xE7
    /// (7 bytes). Words are little-endian. dig_H4 and dig_H5 are signed 12-bit values sharing
    /// register 0xE5: `dig_H4 = 0xE4 · 16 + (0xE5 & 0x0F)`, `dig_H5 = 0xE6 · 16 + (0xE5 >> 4)`,
    /// where the bytes at 0xE4 and 0xE6 are signed and carry the sign.
    pub fn from_registers(t_p: &[u8; 26], h: &[u8; 7]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([t_p[i], t_p[i + 1]]);
        let i16_at = |i: usize| i16::from_le_bytes([t_p[i], t_p[i + 1]]);
        let e4 = i16::from(h[3] as i8);
        let e5 = h[4];
        let e6 = i16::from(h[5] as i8);
        Calibration {
            dig_t1: u16_at(0),
            dig_t2: i16_at(2),
            dig_t3: i16_at(4),
            dig_p1: u16_at(6),
            dig_p2: i16_at(8),
            dig_p3: i16_at(10),
            dig_p4: i16_at(12),
            dig_p5: i16_at(14),
            dig_p6: i16_at(16),
            dig_p7: i16_at(18),
            dig_p8: i16_at(20),
            dig_p9: i16_at(22),
            // t_p[24] is the reserved register 0xA0.
            dig_h1: t_p[25],
            dig_h2: i16::from_le_bytes([h[0], h[1]]),
            dig_h3: h[2],
            dig_h4: (e4 << 4) | i16::from(e5 & 0x0F),
            dig_h5: (e6 << 4) | i16::from(e5 >> 4),
            dig_h6: h[6] as i8,
        }
    }

    /// Datasheet 32-bit temperature compensation. Returns `t_fine` and the temperature in
    /// hundredths of a degree Celsius. Evaluated in 64-bit, which gives the datasheet's results
    /// wherever its 32-bit version does not overflow, and no overflow for any 20-bit input.
    pub fn compensate_temperature(&self, adc_t: u32) -> Result<(TFine, i32), CompensationError> {
        let adc = i64::from(adc_t & 0xF_FFFF);
        let t1 = i64::from(self.dig_t1);
        let var1 = (((adc >> 3) - (t1 << 1)) * i64::from(self.dig_t2)) >> 11;
        let d = (adc >> 4) - t1;
        let var2 = (((d * d) >> 12) * i64::from(self.dig_t3)) >> 14;
        let t_fine = i32::try_from(var1 + var2).map_err(|_| CompensationError::Overflow)?;
        // |t_fine| < 2^31, so t_fine·5/256 fits i32.
        let centi_celsius = ((i64::from(t_fine) * 5 + 128) >> 8) as i32;
        Ok((TFine(t_fine), centi_celsius))
    }

    /// Datasheet 64-bit pressure compensation. Returns pascal in unsigned Q24.8 (divide by 256).
    /// A zero divisor and any overflow are errors, never a panic or a silent 0.
    pub fn compensate_pressure(&self, adc_p: u32, t_fine: TFine) -> Result<u32, CompensationError> {
        let p1 = i64::from(self.dig_p1);
        let p2 = i64::from(self.dig_p2);
        let p3 = i64::from(self.dig_p3);
        let p4 = i64::from(self.dig_p4);
        let p5 = i64::from(self.dig_p5);
        let p6 = i64::from(self.dig_p6);
        let p7 = i64::from(self.dig_p7);
        let p8 = i64::from(self.dig_p8);
        let p9 = i64::from(self.dig_p9);

        let v1 = i64::from(t_fine.0) - 128_000;
        let mut var2 = mul(mul(v1, v1)?, p6)?;
        var2 = add(var2, shl(mul(v1, p5)?, 17)?)?;
        var2 = add(var2, shl(p4, 35)?)?;
        let mut var1 = add(mul(mul(v1, v1)?, p3)? >> 8, shl(mul(v1, p2)?, 12)?)?;
        var1 = mul(add(1_i64 << 47, var1)?, p1)? >> 33;
        if var1 == 0 {
            return Err(CompensationError::DivisionByZero);
        }
        let mut p = 1_048_576 - i64::from(adc_p & 0xF_FFFF);
        p = mul(sub(shl(p, 31)?, var2)?, 3125)?
            .checked_div(var1)
            .ok_or(CompensationError::Overflow)?;
        let var1 = mul(mul(p9, p >> 13)?, p >> 13)? >> 25;
        let var2 = mul(p8, p)? >> 19;
        p = add(add(add(p, var1)?, var2)? >> 8, shl(p7, 4)?)?;
        u32::try_from(p).map_err(|_| CompensationError::Overflow)
    }

    /// Datasheet 32-bit humidity compensation. Returns %RH in unsigned Q22.10 (divide by 1024),
    /// clamped to 0..=100 %RH as the datasheet does. Evaluated in checked 64-bit arithmetic.
    pub fn compensate_humidity(&self, adc_h: u32, t_fine: TFine) -> Result<u32, CompensationError> {
        let h1 = i64::from(self.dig_h1);
        let h2 = i64::from(self.dig_h2);
        let h3 = i64::from(self.dig_h3);
        let h4 = i64::from(self.dig_h4);
        let h5 = i64::from(self.dig_h5);
        let h6 = i64::from(self.dig_h6);
        let adc = i64::from(adc_h & 0xFFFF);

        let v = i64::from(t_fine.0) - 76_800;
        let offset = add(sub(sub(adc << 14, h4 << 20)?, mul(h5, v)?)?, 16_384)? >> 15;
        let inner = add(mul(v, h3)? >> 11, 32_768)?;
        let scale = add(mul(mul(v, h6)? >> 10, inner)? >> 10, 2_097_152)?;
        let scale = add(mul(scale, h2)?, 8_192)? >> 14;
        let mut x = mul(offset, scale)?;
        let square = mul(x >> 15, x >> 15)? >> 7;
        x = sub(x, mul(square, h1)? >> 4)?;
        let x = x.clamp(0, 419_430_400);
        // Clamped to 100 %RH in Q22.10 << 12, so the shifted value fits u32.
        Ok((x >> 12) as u32)
    }

    /// Compensates one raw sample: temperature first, then pressure and humidity with its
    /// `t_fine`.
    pub fn compensate(&self, raw: RawSample) -> Result<Measurement, CompensationError> {
        let (t_fine, centi_celsius) = self.compensate_temperature(raw.temperature)?;
        let pressure_q24_8 = self.compensate_pressure(raw.pressure, t_fine)?;
        let humidity_q22_10 = self.compensate_humidity(raw.humidity, t_fine)?;
        Ok(Measurement {
            temperature_c: centi_celsius as f32 / 100.0,
            pressure_pa: pressure_q24_8 as f32 / 256.0,
            humidity_rh: humidity_q22_10 as f32 / 1024.0,
        })
    }
}

fn mul(a: i64, b: i64) -> Result<i64, CompensationError> {
    a.checked_mul(b).ok_or(CompensationError::Overflow)
}

fn add(a: i64, b: i64) -> Result<i64, CompensationError> {
    a.checked_add(b).ok_or(CompensationError::Overflow)
}

fn sub(a: i64, b: i64) -> Result<i64, CompensationError> {
    a.checked_sub(b).ok_or(CompensationError::Overflow)
}

/// `a << n` that reports overflow instead of dropping bits.
fn shl(a: i64, n: u32) -> Result<i64, CompensationError> {
    mul(a, 1_i64 << n)
}

/// A BME280 on an async I2C bus.
#[derive(Debug)]
pub struct Bme280<I2C> {
    i2c: I2C,
    address: Address,
    calibration: Option<Calibration>,
}

impl<I2C: I2c> Bme280<I2C> {
    /// Wraps the bus; nothing is sent until [`init`](Self::init).
    pub fn new(i2c: I2C, address: Address) -> Self {
        Self {
            i2c,
            address,
            calibration: None,
        }
    }

    /// Checks the chip id, soft-resets the chip, waits for the NVM copy, reads the calibration
    /// and configures oversampling (T ×2, P ×16, H ×1), IIR filter off, sleep mode. Can be called
    /// again to recover a chip that came back.
    pub async fn init<D: DelayNs>(&mut self, delay: &mut D) -> Result<(), Error<I2C::Error>> {
        self.calibration = None;

        let mut id = [0u8];
        self.read_registers(reg::CHIP_ID, &mut id).await?;
        if id[0] != CHIP_ID {
            return Err(Error::WrongChipId {
                expected: u16::from(CHIP_ID),
                found: u16::from(id[0]),
            });
        }

        self.write(&[reg::RESET, RESET_COMMAND]).await?;
        delay.delay_us(STARTUP_US).await;
        self.wait_status_clear(STATUS_IM_UPDATE, NVM_COPY_POLLS, delay)
            .await?;

        let mut t_p = [0u8; 26];
        let mut h = [0u8; 7];
        self.read_registers(reg::CALIB_T_P, &mut t_p).await?;
        self.read_registers(reg::CALIB_H, &mut h).await?;
        let calibration = Calibration::from_registers(&t_p, &h);
        if calibration.dig_p1 == 0 {
            return Err(Error::Compensation(CompensationError::DivisionByZero));
        }

        // config is only writable in sleep mode (the state after reset); ctrl_hum takes effect
        // at the next ctrl_meas write, so it goes first.
        self.write(&[
            reg::CONFIG,
            CONFIG_VALUE,
            reg::CTRL_HUM,
            OSRS_H,
            reg::CTRL_MEAS,
            CTRL_MEAS_SLEEP,
        ])
        .await?;
        let mut ctrl = [0u8; 4];
        self.read_registers(reg::CTRL_HUM, &mut ctrl).await?;
        // ctrl = [ctrl_hum, status, ctrl_meas, config]
        if ctrl[0] & 0x07 != OSRS_H || ctrl[2] != CTRL_MEAS_SLEEP || ctrl[3] != CONFIG_VALUE {
            return Err(Error::InvalidData);
        }

        self.calibration = Some(calibration);
        Ok(())
    }

    /// Runs one forced-mode conversion and returns the compensated reading.
    pub async fn measure<D: DelayNs>(
        &mut self,
        delay: &mut D,
    ) -> Result<Measurement, Error<I2C::Error>> {
        let calibration = self.calibration.ok_or(Error::NotInitialized)?;

        // Register/value pairs in one transfer; ctrl_hum is latched by the ctrl_meas write.
        self.write(&[reg::CTRL_HUM, OSRS_H, reg::CTRL_MEAS, CTRL_MEAS_FORCED])
            .await?;
        delay.delay_us(MEASUREMENT_TYPICAL_US).await;
        self.wait_status_clear(STATUS_MEASURING, MEASUREMENT_POLLS, delay)
            .await?;

        let mut data = [0u8; 8];
        self.read_registers(reg::DATA, &mut data).await?;
        let raw = RawSample::from_registers(&data);
        if raw.pressure == RAW_20_BIT_RESET
            && raw.temperature == RAW_20_BIT_RESET
            && raw.humidity == RAW_16_BIT_RESET
        {
            // Nothing was converted: the chip reset during the measurement.
            return Err(Error::InvalidData);
        }
        calibration.compensate(raw).map_err(Error::Compensation)
    }

    /// The calibration read by the last successful `init`.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }

    async fn wait_status_clear<D: DelayNs>(
        &mut self,
        mask: u8,
        polls: u32,
        delay: &mut D,
    ) -> Result<(), Error<I2C::Error>> {
        for _ in 0..polls {
            let mut status = [0u8];
            self.read_registers(reg::STATUS, &mut status).await?;
            if status[0] & mask == 0 {
                return Ok(());
            }
            delay.delay_us(POLL_INTERVAL_US).await;
        }
        Err(Error::Timeout)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write(self.address.as_u8(), bytes)
            .await
            .map_err(Error::Bus)
    }

    /// Burst read: the chip auto-increments the register address.
    async fn read_registers(&mut self, first: u8, buf: &mut [u8]) -> Result<(), Error<I2C::Error>> {
        self.i2c
            .write_read(self.address.as_u8(), &[first], buf)
            .await
            .map_err(Error::Bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Temperature and pressure trimming values of the worked example in Bosch's datasheet,
    /// with humidity values typical of a real chip.
    fn example() -> Calibration {
        Calibration {
            dig_t1: 27504,
            dig_t2: 26435,
            dig_t3: -1000,
            dig_p1: 36477,
            dig_p2: -10685,
            dig_p3: 3024,
            dig_p4: 2855,
            dig_p5: 140,
            dig_p6: -7,
            dig_p7: 15500,
            dig_p8: -14600,
            dig_p9: 6000,
            dig_h1: 75,
            dig_h2: 362,
            dig_h3: 0,
            dig_h4: 313,
            dig_h5: 50,
            dig_h6: 30,
        }
    }

    /// The datasheet's double-precision temperature formula, as an independent check.
    fn float_temperature(c: &Calibration, adc: u32) -> (f64, f64) {
        let adc = f64::from(adc);
        let t1 = f64::from(c.dig_t1);
        let var1 = (adc / 16384.0 - t1 / 1024.0) * f64::from(c.dig_t2);
        let d = adc / 131072.0 - t1 / 8192.0;
        let var2 = d * d * f64::from(c.dig_t3);
        (var1 + var2, (var1 + var2) / 5120.0)
    }

    /// The datasheet's double-precision pressure formula.
    fn float_pressure(c: &Calibration, adc: u32, t_fine: f64) -> f64 {
        let mut var1 = t_fine / 2.0 - 64000.0;
        let mut var2 = var1 * var1 * f64::from(c.dig_p6) / 32768.0;
        var2 += var1 * f64::from(c.dig_p5) * 2.0;
        var2 = var2 / 4.0 + f64::from(c.dig_p4) * 65536.0;
        var1 =
            (f64::from(c.dig_p3) * var1 * var1 / 524288.0 + f64::from(c.dig_p2) * var1) / 524288.0;
        var1 = (1.0 + var1 / 32768.0) * f64::from(c.dig_p1);
        let mut p = 1048576.0 - f64::from(adc);
        p = (p - var2 / 4096.0) * 6250.0 / var1;
        let var1 = f64::from(c.dig_p9) * p * p / 2147483648.0;
        let var2 = p * f64::from(c.dig_p8) / 32768.0;
        p + (var1 + var2 + f64::from(c.dig_p7)) / 16.0
    }

    /// The datasheet's double-precision humidity formula.
    fn float_humidity(c: &Calibration, adc: u32, t_fine: f64) -> f64 {
        let v = t_fine - 76800.0;
        let mut h = (f64::from(adc)
            - (f64::from(c.dig_h4) * 64.0 + f64::from(c.dig_h5) / 16384.0 * v))
            * (f64::from(c.dig_h2) / 65536.0
                * (1.0
                    + f64::from(c.dig_h6) / 67108864.0
                        * v
                        * (1.0 + f64::from(c.dig_h3) / 67108864.0 * v)));
        h *= 1.0 - f64::from(c.dig_h1) * h / 524288.0;
        h.clamp(0.0, 100.0)
    }

    #[test]
    fn datasheet_worked_example_temperature_and_pressure() {
        let c = example();
        let (t_fine, centi) = c.compensate_temperature(519_888).expect("temperature");
        assert_eq!(t_fine.value(), 128_422);
        assert_eq!(centi, 2508);
        let q24_8 = c.compensate_pressure(415_148, t_fine).expect("pressure");
        // The 64-bit integer formula gives 100653.25 Pa; the example's 100653.27 Pa is the
        // double-precision result.
        assert_eq!(q24_8, 25_767_233);
        assert!((q24_8 as f64 / 256.0 - 100_653.27).abs() < 0.05);
        let float = float_pressure(&c, 415_148, float_temperature(&c, 519_888).0);
        assert!((float - 100_653.27).abs() < 0.005);
    }

    #[test]
    fn integer_formulas_agree_with_the_datasheet_float_formulas() {
        let c = example();
        // Temperatures from about -40 °C to +85 °C and the whole useful pressure range.
        for adc_t in (380_000..660_000).step_by(7_919) {
            let (t_fine, centi) = c.compensate_temperature(adc_t).expect("temperature");
            let (ft_fine, ft) = float_temperature(&c, adc_t);
            // The integer formula drops the 3 lowest ADC bits (≤ 0.003 °C) and rounds to 0.01 °C.
            assert!(
                (f64::from(centi) / 100.0 - ft).abs() <= 0.01,
                "adc_t {adc_t}"
            );
            assert!(
                (f64::from(t_fine.value()) - ft_fine).abs() <= 16.0,
                "adc_t {adc_t}"
            );
            for adc_p in (200_000..700_000).step_by(24_989) {
                let p = c.compensate_pressure(adc_p, t_fine).expect("pressure");
                let fp = float_pressure(&c, adc_p, f64::from(t_fine.value()));
                assert!(
                    (f64::from(p) / 256.0 - fp).abs() < 1.0,
                    "adc_p {adc_p}: {p} vs {fp}"
                );
            }
            for adc_h in (20_000..50_000).step_by(1_999) {
                let h = c.compensate_humidity(adc_h, t_fine).expect("humidity");
                let fh = float_humidity(&c, adc_h, f64::from(t_fine.value()));
                assert!((f64::from(h) / 1024.0 - fh).abs() < 0.05, "adc_h {adc_h}");
            }
        }
    }

    #[test]
    fn humidity_is_clamped_to_0_and_100() {
        let c = example();
        let (t_fine, _) = c.compensate_temperature(519_888).expect("temperature");
        assert_eq!(c.compensate_humidity(0, t_fine), Ok(0));
        assert_eq!(c.compensate_humidity(0xFFFF, t_fine), Ok(100 * 1024));
    }

    #[test]
    fn zero_pressure_divisor_is_an_error_not_a_panic() {
        let c = Calibration {
            dig_p1: 0,
            ..example()
        };
        let (t_fine, _) = c.compensate_temperature(519_888).expect("temperature");
        assert_eq!(
            c.compensate_pressure(415_148, t_fine),
            Err(CompensationError::DivisionByZero)
        );
    }

    #[test]
    fn absurd_calibration_never_panics() {
        // All-0xFF calibration, as a dead bus would deliver it.
        let c = Calibration::from_registers(&[0xFF; 26], &[0xFF; 7]);
        for adc in [0, 1, 0x8_0000, 0xF_FFFF, u32::MAX] {
            if let Ok((t_fine, _)) = c.compensate_temperature(adc) {
                let _ = c.compensate_pressure(adc, t_fine);
                let _ = c.compensate_humidity(adc, t_fine);
            }
        }
        let wild = Calibration {
            dig_p6: i16::MAX,
            dig_p5: i16::MAX,
            dig_p3: i16::MAX,
            dig_p9: i16::MIN,
            ..example()
        };
        let (hot, _) = wild.compensate_temperature(0xF_FFFF).expect("temperature");
        let _ = wild.compensate_pressure(0, hot);
        let _ = wild.compensate_humidity(0xFFFF, hot);
    }

    #[test]
    fn calibration_block_decoding_including_h4_h5_nibble_packing() {
        let mut t_p = [0u8; 26];
        t_p[0..2].copy_from_slice(&27504u16.to_le_bytes());
        t_p[2..4].copy_from_slice(&26435i16.to_le_bytes());
        t_p[4..6].copy_from_slice(&(-1000i16).to_le_bytes());
        t_p[6..8].copy_from_slice(&36477u16.to_le_bytes());
        t_p[8..10].copy_from_slice(&(-10685i16).to_le_bytes());
        t_p[22..24].copy_from_slice(&6000i16.to_le_bytes());
        t_p[24] = 0xAA; // reserved 0xA0, must be ignored
        t_p[25] = 75;
        // dig_H2 = 362, dig_H3 = 0, dig_H4 = 313 (0x139), dig_H5 = 50 (0x032), dig_H6 = 30.
        let h = [0x6A, 0x01, 0x00, 0x13, 0x29, 0x03, 0x1E];
        let c = Calibration::from_registers(&t_p, &h);
        assert_eq!(c.dig_t1, 27504);
        assert_eq!(c.dig_t2, 26435);
        assert_eq!(c.dig_t3, -1000);
        assert_eq!(c.dig_p1, 36477);
        assert_eq!(c.dig_p2, -10685);
        assert_eq!(c.dig_p9, 6000);
        assert_eq!(c.dig_h1, 75);
        assert_eq!(c.dig_h2, 362);
        assert_eq!(c.dig_h3, 0);
        assert_eq!(c.dig_h4, 313);
        assert_eq!(c.dig_h5, 50);
        assert_eq!(c.dig_h6, 30);
    }

    #[test]
    fn h4_h5_are_signed_12_bit() {
        // dig_H4 = -1 (0xFFF): 0xE4 = 0xFF, low nibble of 0xE5 = 0xF.
        // dig_H5 = -2048 (0x800): 0xE6 = 0x80, high nibble of 0xE5 = 0x0.
        let c = Calibration::from_registers(&[0; 26], &[0, 0, 0, 0xFF, 0x0F, 0x80, 0xF6]);
        assert_eq!(c.dig_h4, -1);
        assert_eq!(c.dig_h5, -2048);
        assert_eq!(c.dig_h6, -10);
        // Largest positive values: 0x7FF each.
        let c = Calibration::from_registers(&[0; 26], &[0, 0x80, 0xFF, 0x7F, 0xFF, 0x7F, 0x7F]);
        assert_eq!(c.dig_h2, -32768);
        assert_eq!(c.dig_h3, 255);
        assert_eq!(c.dig_h4, 2047);
        assert_eq!(c.dig_h5, 2047);
        assert_eq!(c.dig_h6, 127);
        // Nibbles must not leak into each other.
        let c = Calibration::from_registers(&[0; 26], &[0, 0, 0, 0x00, 0xA5, 0x00, 0]);
        assert_eq!(c.dig_h4, 5);
        assert_eq!(c.dig_h5, 10);
    }

    #[test]
    fn raw_sample_unpacking() {
        let data = [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6B, 0x2C];
        let raw = RawSample::from_registers(&data);
        assert_eq!(raw.pressure, 0x655AC);
        assert_eq!(raw.temperature, 0x7EED0);
        assert_eq!(raw.humidity, 0x6B2C);
    }

    #[test]
    fn the_reference_bias_from_t_fine_zero() {
        // What the reference publishes: pressure compensated with t_fine = 0 (0 °C) although
        // the die is at 25 °C. Document the size of the error for this calibration.
        let c = example();
        let (t_fine, _) = c.compensate_temperature(519_888).expect("temperature");
        let right = c.compensate_pressure(415_148, t_fine).expect("pressure") as f64 / 256.0;
        let biased = c.compensate_pressure(415_148, TFine(0)).expect("pressure") as f64 / 256.0;
        let bias = biased - right;
        // About -38 hPa for this calibration at 25 °C: far beyond the chip's ±1 hPa accuracy.
        assert!((-4_000.0..-3_700.0).contains(&bias), "bias {bias} Pa");
    }

    #[test]
    fn address_conversions() {
        assert_eq!(Address::default().as_u8(), 0x76);
        assert_eq!(Address::Secondary.as_u8(), 0x77);
        assert_eq!(Address::try_from(0x77), Ok(Address::Secondary));
        assert_eq!(Address::try_from(0x40), Err(0x40));
    }

    #[test]
    fn timing_constants_are_consistent() {
        assert_eq!(MEASUREMENT_TYPICAL_US, 40_000);
        assert_eq!(MEASUREMENT_MAX_US, 46_100);
    }
}
