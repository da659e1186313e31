//! Chip drivers for Hearth appliances. The crate owns every byte and bit exchanged with the
//! chips: the I2C sensors and peripherals ([`hdc1080`], [`bme280`], [`mcp23017`], [`ssd1306`]),
//! the HX711 load-cell ADC ([`hx711`]), 1-Wire thermometers ([`onewire`], [`ds18x20`]), the
//! PZEM-004T energy meter on a UART ([`pzem`]), shift-register relay boards ([`shiftreg`]),
//! 433 MHz keyfob decoding ([`ook`]) and the pulse-counter edge of flow meters ([`pulses`]).
//!
//! Every driver is `no_std`, allocation-free and async over the `embedded-hal-async` and
//! `embedded-io-async` traits (`I2c`, `DelayNs`, UART `Read`/`Write`; the HX711, the 1-Wire
//! master and the shift registers bit-bang `embedded-hal` GPIO pins), so the same code runs on
//! the ESP32 and, through `hearth-simchips`, against simulated chips on the host. Drivers never
//! panic on data read from the bus: anything a chip can return maps to an error, [`Error`] for
//! the I2C chips and a module's own type elsewhere (such as [`hx711::Error`] or
//! [`onewire::Error`]). The decoding is plain functions that can be checked without a bus:
//!
//! ```
//! use hearth_drivers::ds18x20::{decode, Family, Reading};
//! use hearth_drivers::onewire::{crc8, Error, Rom};
//!
//! // A DS18B20 (family 0x28) whose ROM checks out: a block followed by its CRC-8 hashes to 0.
//! let rom = Rom([0x28, 0xFF, 0x64, 0x1E, 0x0A, 0x16, 0x03, 0xA5]);
//! assert!(rom.crc_ok() && crc8(&rom.0) == 0);
//! let family = Family::of(&rom).unwrap();
//!
//! // Its scratchpad at 12 bits: 0x0191 sixteenths of a degree, and the CRC-8 of the eight.
//! let mut sp = [0x91, 0x01, 0x4B, 0x46, 0x7F, 0xFF, 0x0F, 0x10, 0x25];
//! assert_eq!(decode::<()>(family, &sp), Ok(Reading { celsius: 25.0625, power_on: false }));
//! // At 9 bits (configuration 0x1F) the three lowest bits are undefined and dropped.
//! sp[4] = 0x1F;
//! assert_eq!(decode::<()>(family, &sp).unwrap().celsius, 25.0);
//! // 200 °C is beyond any DS18x20: refused as data, not reported as a temperature.
//! sp[..2].copy_from_slice(&(200i16 * 16).to_le_bytes());
//! assert_eq!(decode::<()>(family, &sp), Err(Error::InvalidData));
//! ```
#![cfg_attr(not(test), no_std)]

pub mod bme280;
pub mod ds18x20;
mod error;
pub mod hdc1080;
pub mod hx711;
pub mod mcp23017;
pub mod onewire;
pub mod ook;
pub mod pulses;
pub mod pzem;
pub mod shiftreg;
pub mod ssd1306;

pub use error::Error;
