//! Bus-level simulation of the chips on Hearth's I2C buses (and of the HX711 on its GPIOs).
//!
//! [`bus::SimI2cBus`] implements the `embedded-hal` / `embedded-hal-async` I2C traits and routes
//! every transfer to a register-level model of a chip ([`hdc1080::Hdc1080Model`],
//! [`bme280::Bme280Model`]), so the real drivers of `hearth-drivers` run unchanged on the host.
//! The HX711 load-cell ADC is not on I2C: [`hx711::Hx711Model`] models it bit by bit behind two
//! simulated GPIO pins.
//! The models sense a shared [`ambient::Ambient`] (the physical truth), which
//! [`weather::WeatherModel`] moves like real weather. Faults ([`fault::ChipFault`]) are injected
//! per chip at run time. Time is virtual ([`clock::SimClock`]): it moves only when told to, so
//! every test is deterministic.

pub mod ambient;
pub mod bme280;
pub mod bus;
pub mod clock;
pub mod fault;
pub mod flow;
pub mod hdc1080;
pub mod hx711;
pub mod mcp23017;
pub mod onewire;
pub mod ook;
mod prng;
pub mod pzem;
pub mod shiftreg;
pub mod ssd1306;
pub mod weather;

pub use ambient::{Ambient, Conditions};
pub use bus::{BusFault, I2cDevice, SimBusError, SimI2cBus, SimI2cError};
pub use clock::{SimClock, SimDelay};
pub use fault::{parse_sensor_fault, ChipFault};
pub use flow::{FlowFault, FlowMeter};
pub use hx711::{Hx711Dout, Hx711Fault, Hx711Model, Hx711Sck, LoadCell};
pub use mcp23017::{Drive, Mcp23017Model};
pub use onewire::{OneWireFault, OneWireSimBus, SensorKind, SimOneWireError};
pub use ook::{Encoder, OokFault, OokModel, OokRx, Transmitter};
pub use pzem::{Mains, PzemModel, PzemUart};
pub use shiftreg::{ShiftRegFault, ShiftRegModel, SrOut, SrQh};
pub use ssd1306::Ssd1306Model;
pub use weather::{weather_station, weather_station_on, WeatherHandle, WeatherModel};
