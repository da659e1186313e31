//! Maxim DS18B20 / DS18S20 (and the DS18B20-compatible DS1822, DS1825) 1-Wire thermometers on
//! an externally powered bus: start a conversion on every device at once, read one device's
//! scratchpad with its CRC-8 checked, decode the temperature.
//!
//! Facts from the datasheets:
//! * Function commands: Convert T `44h`, Read Scratchpad `BEh`.
//! * Scratchpad (9 bytes): temperature LSB, MSB, T_H, T_L, configuration (DS18B20; `FFh` on the
//!   DS18S20), reserved `FFh`, reserved / COUNT_REMAIN (DS18S20), reserved `10h` /
//!   COUNT_PER_C (DS18S20, always 16), CRC-8 of bytes 0–7.
//! * DS18B20 temperature: 16-bit two's complement in 1/16 °C; at 9/10/11-bit resolution
//!   (configuration bits 6:5 = R1 R0) the lowest 3/2/1 bits are undefined. Conversion takes
//!   93.75 / 187.5 / 375 / 750 ms at 9 / 10 / 11 / 12 bits.
//! * DS18S20 temperature: 9-bit two's complement in ½ °C, sign-extended to 16 bits; the
//!   extended resolution is `TEMP_READ − 0.25 + (COUNT_PER_C − COUNT_REMAIN) / COUNT_PER_C`,
//!   where `TEMP_READ` is the reading with the ½ °C bit truncated. Conversion: 750 ms at most.
//! * Both power up with 85 °C in the temperature register (`0550h` on the DS18B20, `00AAh` on
//!   the DS18S20) until their first conversion: [`Reading::power_on`] says so.
//! * Range −55 °C to +125 °C; values outside it are rejected as invalid data.
//!
//! Parasite power (which needs a strong pull-up during conversions) is not supported.

use core::fmt;

use crate::onewire::{self, search_all, Error, OneWireBus, Rom, SearchReport};

/// Function command: start a temperature conversion.
pub const CONVERT_T: u8 = 0x44;
/// Function command: read the 9-byte scratchpad.
pub const READ_SCRATCHPAD: u8 = 0xBE;

/// The longest conversion of any supported device (12-bit DS18B20, DS18S20).
pub const MAX_CONVERSION_MS: u32 = 750;

/// The temperature the devices report until their first conversion after power-up.
pub const POWER_ON_CELSIUS: f32 = 85.0;

/// The lowest temperature the devices measure.
pub const MIN_CELSIUS: f32 = -55.0;
/// The highest temperature the devices measure.
pub const MAX_CELSIUS: f32 = 125.0;

/// A thermometer's family and so its temperature format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// DS18S20 (and the older DS1820), family `10h`: 9 bits plus COUNT_REMAIN.
    Ds18s20,
    /// DS18B20 (`28h`), DS1822 (`22h`), DS1825 (`3Bh`): 9–12 bits in 1/16 °C.
    Ds18b20,
}

impl Family {
    /// The family of `rom`, if it is a thermometer this driver decodes.
    pub fn of(rom: &Rom) -> Option<Family> {
        match rom.family() {
            0x10 => Some(Family::Ds18s20),
            0x28 | 0x22 | 0x3B => Some(Family::Ds18b20),
            _ => None,
        }
    }
}

/// A decoded temperature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Degrees Celsius.
    pub celsius: f32,
    /// The register holds exactly the power-on value (85 °C): the device has probably not
    /// converted since it powered up (a brown-out, a missed Convert T). A real 85 °C reads the
    /// same; the caller decides.
    pub power_on: bool,
}

/// Decode the scratchpad of a device of `family` (the CRC is not checked here; see
/// [`read_scratchpad`]).
pub fn decode<E>(family: Family, sp: &[u8; 9]) -> Result<Reading, Error<E>> {
    let raw = i16::from_le_bytes([sp[0], sp[1]]);
    let (celsius, power_on) = match family {
        Family::Ds18b20 => {
            // Undefined low bits at reduced resolution.
            let undefined = match (sp[4] >> 5) & 3 {
                0 => 0b111,
                1 => 0b011,
                2 => 0b001,
                _ => 0,
            };
            let raw = raw & !undefined;
            (f32::from(raw) / 16.0, raw == 0x0550)
        }
        Family::Ds18s20 => {
            // The register is 9 bits sign-extended: the MSB is all sign.
            let negative = raw < 0;
            if sp[1] != if negative { 0xFF } else { 0x00 } {
                return Err(Error::InvalidData);
            }
            let (remain, per_c) = (sp[6], sp[7]);
            let celsius = if per_c != 0 && remain <= per_c {
                // `>> 1` on two's complement drops the ½ °C bit (floor).
                f32::from(raw >> 1) - 0.25 + f32::from(per_c - remain) / f32::from(per_c)
            } else {
                f32::from(raw) / 2.0
            };
            (celsius, raw == 0x00AA && celsius == POWER_ON_CELSIUS)
        }
    };
    if !(MIN_CELSIUS..=MAX_CELSIUS).contains(&celsius) {
        return Err(Error::InvalidData);
    }
    Ok(Reading { celsius, power_on })
}

/// Start a temperature conversion on every device (Skip ROM, Convert T). The results are ready
/// after [`MAX_CONVERSION_MS`].
pub async fn start_conversion_all<B: OneWireBus>(bus: &mut B) -> Result<(), Error<B::Error>> {
    onewire::select(bus, None).await?;
    bus.write_byte(CONVERT_T).await.map_err(Error::Bus)
}

/// Read the scratchpad of the device `rom` and check its CRC. All ones (nobody answered) is
/// [`Error::NoResponse`]; all zeros (a valid CRC, but a line held low) is
/// [`Error::InvalidData`].
pub async fn read_scratchpad<B: OneWireBus>(
    bus: &mut B,
    rom: &Rom,
) -> Result<[u8; 9], Error<B::Error>> {
    onewire::select(bus, Some(rom)).await?;
    bus.write_byte(READ_SCRATCHPAD).await.map_err(Error::Bus)?;
    let mut sp = [0u8; 9];
    for b in sp.iter_mut() {
        *b = bus.read_byte().await.map_err(Error::Bus)?;
    }
    if sp == [0xFF; 9] {
        return Err(Error::NoResponse);
    }
    if sp == [0; 9] {
        return Err(Error::InvalidData);
    }
    if onewire::crc8(&sp[..8]) != sp[8] {
        return Err(Error::Crc);
    }
    Ok(sp)
}

/// Read and decode the temperature of the thermometer `rom`. A ROM of another family is
/// [`Error::InvalidData`].
pub async fn read_temperature<B: OneWireBus>(
    bus: &mut B,
    rom: &Rom,
) -> Result<Reading, Error<B::Error>> {
    let family = Family::of(rom).ok_or(Error::InvalidData)?;
    let sp = read_scratchpad(bus, rom).await?;
    decode(family, &sp)
}

/// What an appliance needs from a bus of thermometers. Every [`OneWireBus`] is one (through
/// this module's functions); the trait exists so an appliance can be tested against a fake at
/// this level.
#[allow(async_fn_in_trait)]
pub trait Thermometers {
    /// The master's own error.
    type Error: fmt::Debug;

    /// Search the bus (see [`onewire::search_all`]); all ROMs found, thermometers or not.
    async fn search(&mut self, roms: &mut [Rom]) -> Result<SearchReport, Error<Self::Error>>;

    /// Start a conversion on every device (see [`start_conversion_all`]).
    async fn start_conversion_all(&mut self) -> Result<(), Error<Self::Error>>;

    /// Read one thermometer (see [`read_temperature`]).
    async fn read_temperature(&mut self, rom: &Rom) -> Result<Reading, Error<Self::Error>>;
}

impl<B: OneWireBus> Thermometers for B {
    type Error = B::Error;

    async fn search(&mut self, roms: &mut [Rom]) -> Result<SearchReport, Error<B::Error>> {
        search_all(self, roms).await
    }

    async fn start_conversion_all(&mut self) -> Result<(), Error<B::Error>> {
        start_conversion_all(self).await
    }

    async fn read_temperature(&mut self, rom: &Rom) -> Result<Reading, Error<B::Error>> {
        read_temperature(self, rom).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onewire::crc8;

    type E = Error<()>;

    fn sp(bytes: [u8; 8]) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[..8].copy_from_slice(&bytes);
        out[8] = crc8(&bytes);
        out
    }

    #[test]
    fn power_up_scratchpads_have_the_datasheet_crc() {
        // DS18B20 power-up scratchpad as commonly dumped: 50 05 4B 46 7F FF 0C 10, CRC 1C.
        assert_eq!(
            crc8(&[0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10]),
            0x1C
        );
        let b = sp([0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10]);
        assert_eq!(
            decode::<()>(Family::Ds18b20, &b),
            Ok(Reading {
                celsius: 85.0,
                power_on: true
            })
        );
        let s = sp([0xAA, 0x00, 0x4B, 0x46, 0xFF, 0xFF, 0x0C, 0x10]);
        assert_eq!(
            decode::<()>(Family::Ds18s20, &s),
            Ok(Reading {
                celsius: 85.0,
                power_on: true
            })
        );
    }

    #[test]
    fn ds18b20_datasheet_table() {
        // Table 1 of the DS18B20 datasheet.
        for (raw, t) in [
            (0x07D0u16, 125.0f32),
            (0x0191, 25.0625),
            (0x00A2, 10.125),
            (0x0008, 0.5),
            (0x0000, 0.0),
            (0xFFF8, -0.5),
            (0xFF5E, -10.125),
            (0xFE6F, -25.0625),
            (0xFC90, -55.0),
        ] {
            let [lsb, msb] = raw.to_le_bytes();
            let r = decode::<()>(Family::Ds18b20, &sp([lsb, msb, 0, 0, 0x7F, 0xFF, 0, 0x10]));
            assert_eq!(r.map(|r| r.celsius), Ok(t), "{raw:#06x}");
            assert_eq!(r.map(|r| r.power_on), Ok(false));
        }
    }

    #[test]
    fn ds18b20_reduced_resolution_masks_undefined_bits() {
        // 25.0625 °C with the low bits set to junk.
        let [lsb, msb] = 0x0197u16.to_le_bytes();
        for (config, t) in [(0x1F, 25.0), (0x3F, 25.25), (0x5F, 25.375), (0x7F, 25.4375)] {
            let r = decode::<()>(
                Family::Ds18b20,
                &sp([lsb, msb, 0, 0, config, 0xFF, 0, 0x10]),
            );
            assert_eq!(r.map(|r| r.celsius), Ok(t), "config {config:#04x}");
        }
    }

    #[test]
    fn ds18s20_extended_resolution() {
        // +25 °C register 0032h. COUNT_REMAIN 12 → 25 − 0.25 + 4/16 = 25.0.
        let r = decode::<()>(Family::Ds18s20, &sp([0x32, 0x00, 0, 0, 0xFF, 0xFF, 12, 16]));
        assert_eq!(r.map(|r| r.celsius), Ok(25.0));
        // 25.5 °C register 0033h truncates to 25; COUNT_REMAIN 3 → 24.75 + 13/16 = 25.5625.
        let r = decode::<()>(Family::Ds18s20, &sp([0x33, 0x00, 0, 0, 0xFF, 0xFF, 3, 16]));
        assert_eq!(r.map(|r| r.celsius), Ok(25.5625));
        // −0.5 °C register FFFFh truncates to −1; COUNT_REMAIN 4 → −1.25 + 12/16 = −0.5.
        let r = decode::<()>(Family::Ds18s20, &sp([0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 4, 16]));
        assert_eq!(r.map(|r| r.celsius), Ok(-0.5));
        // −25 °C register FFCEh.
        let r = decode::<()>(Family::Ds18s20, &sp([0xCE, 0xFF, 0, 0, 0xFF, 0xFF, 12, 16]));
        assert_eq!(r.map(|r| r.celsius), Ok(-25.0));
        // COUNT_PER_C zero or COUNT_REMAIN out of range: the plain ½ °C value.
        let r = decode::<()>(Family::Ds18s20, &sp([0x33, 0x00, 0, 0, 0xFF, 0xFF, 3, 0]));
        assert_eq!(r.map(|r| r.celsius), Ok(25.5));
        let r = decode::<()>(Family::Ds18s20, &sp([0x33, 0x00, 0, 0, 0xFF, 0xFF, 17, 16]));
        assert_eq!(r.map(|r| r.celsius), Ok(25.5));
        // 85.0625 °C (another COUNT_REMAIN) is not the power-on value.
        let r = decode::<()>(Family::Ds18s20, &sp([0xAA, 0x00, 0, 0, 0xFF, 0xFF, 11, 16]));
        assert_eq!(r.map(|r| (r.celsius, r.power_on)), Ok((85.0625, false)));
    }

    #[test]
    fn implausible_values_are_invalid() {
        let e: Result<Reading, E> = decode(
            Family::Ds18b20,
            &sp([0xFF, 0x07, 0, 0, 0x7F, 0xFF, 0, 0x10]),
        );
        assert_eq!(e, Err(Error::InvalidData), "127.9 °C");
        let e: Result<Reading, E> = decode(
            Family::Ds18b20,
            &sp([0x00, 0x80, 0, 0, 0x7F, 0xFF, 0, 0x10]),
        );
        assert_eq!(e, Err(Error::InvalidData), "−2048 °C");
        let e: Result<Reading, E> =
            decode(Family::Ds18s20, &sp([0x32, 0x01, 0, 0, 0xFF, 0xFF, 12, 16]));
        assert_eq!(e, Err(Error::InvalidData), "MSB is not a sign extension");
    }

    #[test]
    fn families() {
        let rom = |f| Rom([f, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Family::of(&rom(0x28)), Some(Family::Ds18b20));
        assert_eq!(Family::of(&rom(0x22)), Some(Family::Ds18b20));
        assert_eq!(Family::of(&rom(0x3B)), Some(Family::Ds18b20));
        assert_eq!(Family::of(&rom(0x10)), Some(Family::Ds18s20));
        assert_eq!(Family::of(&rom(0x01)), None);
    }
}
