//! Register-level model of the TI HDC1080 humidity and temperature sensor: pointer register,
//! configuration (reset, heater, acquisition mode, resolutions), identity registers, and
//! triggered conversions that take their datasheet time, during which reads are not
//! acknowledged.

use crate::ambient::Ambient;
use crate::bus::{BusFault, I2cDevice};

/// The chip's fixed 7-bit address.
pub const ADDRESS: u8 = 0x40;

const TEMPERATURE: u8 = 0x00;
const HUMIDITY: u8 = 0x01;
const CONFIGURATION: u8 = 0x02;
const SERIAL_FIRST: u8 = 0xFB;
const SERIAL_MID: u8 = 0xFC;
const SERIAL_LAST: u8 = 0xFD;
const MANUFACTURER_ID: u8 = 0xFE;
const DEVICE_ID: u8 = 0xFF;

const CONFIG_RESET_VALUE: u16 = 0x1000;
const CONFIG_RST: u16 = 1 << 15;
const CONFIG_MODE: u16 = 1 << 12;
const CONFIG_TRES: u16 = 1 << 10;
const CONFIG_HRES: u16 = 0b11 << 8;
/// HEAT, MODE, TRES, HRES; BTST (bit 11) is read-only, bit 15 self-clears.
const CONFIG_WRITABLE: u16 = 0x3700;

/// A finished or running conversion: the bytes a read will return once `ready_at_us` is reached.
#[derive(Debug, Clone, Copy)]
struct Conversion {
    ready_at_us: u64,
    data: [u8; 4],
    len: usize,
}

/// A simulated HDC1080 sensing an [`Ambient`].
#[derive(Debug)]
pub struct Hdc1080Model {
    ambient: Ambient,
    pointer: u8,
    config: u16,
    conversion: Option<Conversion>,
}

impl Hdc1080Model {
    /// A chip just after power-up (configuration 0x1000), sensing `ambient`.
    pub fn new(ambient: Ambient) -> Self {
        Hdc1080Model {
            ambient,
            pointer: TEMPERATURE,
            config: CONFIG_RESET_VALUE,
            conversion: None,
        }
    }

    fn temperature_bits(&self) -> u32 {
        if self.config & CONFIG_TRES != 0 {
            11
        } else {
            14
        }
    }

    fn humidity_bits(&self) -> u32 {
        match (self.config & CONFIG_HRES) >> 8 {
            0 => 14,
            1 => 11,
            _ => 8,
        }
    }

    /// Datasheet conversion times (µs) for the configured resolutions.
    fn temperature_time_us(&self) -> u64 {
        if self.temperature_bits() == 14 {
            6_350
        } else {
            3_650
        }
    }

    fn humidity_time_us(&self) -> u64 {
        match self.humidity_bits() {
            14 => 6_500,
            11 => 3_850,
            _ => 2_500,
        }
    }

    fn start_conversion(&mut self, now_us: u64, pointer: u8) {
        let truth = self.ambient.get();
        let temperature = encode(
            (f64::from(truth.temperature_c) + 40.0) / 165.0,
            self.temperature_bits(),
        );
        let humidity = encode(f64::from(truth.humidity_rh) / 100.0, self.humidity_bits());
        let [t_hi, t_lo] = temperature.to_be_bytes();
        let [h_hi, h_lo] = humidity.to_be_bytes();
        let sequential = self.config & CONFIG_MODE != 0;
        self.conversion = Some(match (pointer, sequential) {
            // MODE = 1: a trigger at 0x00 measures temperature then humidity, read as 4 bytes.
            (TEMPERATURE, true) => Conversion {
                ready_at_us: now_us + self.temperature_time_us() + self.humidity_time_us(),
                data: [t_hi, t_lo, h_hi, h_lo],
                len: 4,
            },
            (TEMPERATURE, false) => Conversion {
                ready_at_us: now_us + self.temperature_time_us(),
                data: [t_hi, t_lo, 0, 0],
                len: 2,
            },
            _ => Conversion {
                ready_at_us: now_us + self.humidity_time_us(),
                data: [h_hi, h_lo, 0, 0],
                len: 2,
            },
        });
    }

    fn register(&self, pointer: u8) -> u16 {
        match pointer {
            // BTST reads 0: supply above 2.8 V.
            CONFIGURATION => self.config,
            SERIAL_FIRST => 0x0261,
            SERIAL_MID => 0x7A3C,
            SERIAL_LAST => 0x8180,
            MANUFACTURER_ID => 0x5449,
            DEVICE_ID => 0x1050,
            _ => 0xFFFF,
        }
    }
}

/// `fraction` of full scale as a left-aligned `bits`-bit code, rounded to the nearest step.
fn encode(fraction: f64, bits: u32) -> u16 {
    let steps = f64::from(1u32 << bits);
    let code = (fraction * steps).round().clamp(0.0, steps - 1.0) as u16;
    code << (16 - bits)
}

impl I2cDevice for Hdc1080Model {
    fn write(&mut self, now_us: u64, bytes: &[u8]) -> Result<(), BusFault> {
        let Some((&pointer, data)) = bytes.split_first() else {
            return Ok(());
        };
        match pointer {
            TEMPERATURE | HUMIDITY => {
                self.pointer = pointer;
                self.start_conversion(now_us, pointer);
            }
            CONFIGURATION => {
                self.pointer = pointer;
                if let [msb, lsb, ..] = data {
                    let value = u16::from_be_bytes([*msb, *lsb]);
                    if value & CONFIG_RST != 0 {
                        self.config = CONFIG_RESET_VALUE;
                        self.conversion = None;
                    } else {
                        self.config = value & CONFIG_WRITABLE;
                    }
                }
            }
            SERIAL_FIRST..=DEVICE_ID => self.pointer = pointer,
            // No such register: the pointer byte is not acknowledged.
            _ => return Err(BusFault::DataNack),
        }
        Ok(())
    }

    fn read(&mut self, now_us: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        let (data, len) = match self.pointer {
            TEMPERATURE | HUMIDITY => match self.conversion {
                Some(c) if now_us >= c.ready_at_us => (c.data, c.len),
                // Conversion running (or never triggered): the read address is NACKed.
                _ => return Err(BusFault::AddressNack),
            },
            other => {
                let [hi, lo] = self.register(other).to_be_bytes();
                ([hi, lo, 0, 0], 2)
            }
        };
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = if i < len { data[i] } else { 0xFF };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ambient::Conditions;

    fn model(t: f32, h: f32) -> Hdc1080Model {
        Hdc1080Model::new(Ambient::new(Conditions {
            temperature_c: t,
            humidity_rh: h,
            pressure_pa: 101_325.0,
        }))
    }

    fn read2(m: &mut Hdc1080Model, now: u64) -> Result<u16, BusFault> {
        let mut buf = [0u8; 2];
        m.read(now, &mut buf)?;
        Ok(u16::from_be_bytes(buf))
    }

    #[test]
    fn encodes_with_the_configured_resolution() {
        assert_eq!(encode(0.0, 14), 0);
        assert_eq!(encode(0.5, 14), 0x8000);
        assert_eq!(encode(1.0, 14), 0xFFFC);
        assert_eq!(encode(2.0, 8), 0xFF00);
        assert_eq!(encode(-1.0, 11), 0);
        assert_eq!(encode(0.25, 11), 0x4000);
    }

    #[test]
    fn read_before_the_conversion_time_is_refused() {
        let mut m = model(25.0, 40.0);
        m.write(0, &[CONFIGURATION, 0x00, 0x00]).unwrap();
        m.write(1_000, &[HUMIDITY]).unwrap();
        assert_eq!(read2(&mut m, 1_000), Err(BusFault::AddressNack));
        assert_eq!(read2(&mut m, 7_499), Err(BusFault::AddressNack));
        let raw = read2(&mut m, 7_500).unwrap();
        assert_eq!(raw, encode(0.40, 14));
    }

    #[test]
    fn sequential_mode_returns_both_quantities() {
        let mut m = model(42.5, 50.0);
        // Power-up configuration has MODE = 1.
        m.write(0, &[TEMPERATURE]).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(m.read(12_849, &mut buf), Err(BusFault::AddressNack));
        m.read(12_850, &mut buf).unwrap();
        assert_eq!(buf, [0x80, 0x00, 0x80, 0x00]);
    }

    #[test]
    fn low_resolution_is_quantised_and_faster() {
        let mut m = model(30.0, 33.3);
        // TRES = 11-bit, HRES = 8-bit, MODE = 0.
        m.write(0, &[CONFIGURATION, 0x06, 0x00]).unwrap();
        m.write(0, &[HUMIDITY]).unwrap();
        let raw = read2(&mut m, 2_500).unwrap();
        assert_eq!(raw & 0x00FF, 0);
        m.write(10_000, &[TEMPERATURE]).unwrap();
        let raw = read2(&mut m, 13_650).unwrap();
        assert_eq!(raw & 0x001F, 0);
    }

    #[test]
    fn identity_configuration_and_reset() {
        let mut m = model(20.0, 50.0);
        m.write(0, &[MANUFACTURER_ID]).unwrap();
        assert_eq!(read2(&mut m, 0), Ok(0x5449));
        m.write(0, &[DEVICE_ID]).unwrap();
        assert_eq!(read2(&mut m, 0), Ok(0x1050));
        // Read-only and reserved bits do not stick.
        m.write(0, &[CONFIGURATION, 0x7F, 0xFF]).unwrap();
        assert_eq!(read2(&mut m, 0), Ok(0x3700));
        // RST restores the power-up configuration.
        m.write(0, &[CONFIGURATION, 0x80, 0x00]).unwrap();
        assert_eq!(read2(&mut m, 0), Ok(CONFIG_RESET_VALUE));
        assert_eq!(m.write(0, &[0x10]), Err(BusFault::DataNack));
    }
}
