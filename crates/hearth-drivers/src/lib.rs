//! Chip drivers for Hearth appliances.
//!
//! Every driver is `no_std`, allocation-free and async over the `embedded-hal-async` traits
//! (`I2c`, `DelayNs`; the HX711 bit-bangs `embedded-hal` GPIO pins), so the same code runs on
//! the ESP32 and, through `hearth-simchips`, against simulated chips on the host. Drivers never
//! panic on data read from the bus: anything a chip can return maps to an [`Error`] (for the
//! HX711, to its own [`hx711::Error`]).
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
