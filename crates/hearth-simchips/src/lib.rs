//! Bus-level simulation of the chips on Hearth's I2C buses.
//!
//! [`bus::SimI2cBus`] implements the `embedded-hal` / `embedded-hal-async` I2C traits and routes
//! every transfer to a register-level model of a chip ([`hdc1080::Hdc1080Model`],
//! [`bme280::Bme280Model`]), so the real drivers of `hearth-drivers` run unchanged on the host.
//! The models sense a shared [`ambient::Ambient`] (the physical truth), which
//! [`weather::WeatherModel`] moves like real weather. Faults ([`fault::ChipFault`]) are injected
//! per chip at run time. Time is virtual ([`clock::SimClock`]): it moves only when told to, so
//! every test is deterministic.

pub mod ambient;
pub mod bme280;
pub mod bus;
pub mod clock;
pub mod fault;
pub mod hdc1080;
mod prng;
pub mod weather;

pub use ambient::{Ambient, Conditions};
pub use bus::{BusFault, I2cDevice, SimBusError, SimI2cBus, SimI2cError};
pub use clock::{SimClock, SimDelay};
pub use fault::{parse_sensor_fault, ChipFault};
pub use weather::{weather_station, weather_station_on, WeatherHandle, WeatherModel};
