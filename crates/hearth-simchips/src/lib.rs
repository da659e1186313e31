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
//!
//! The crate owns the chips' side of every bus: register maps, conversion times and the ways a
//! chip fails, as the datasheets describe them. The drivers' side stays in `hearth-drivers`.
//! Simulated transfers and delays never wait, so polling a driver's future once runs it:
//!
//! ```
//! use std::{future::Future, pin::pin, task::{Context, Poll, Waker}};
//!
//! use hearth_drivers::{hdc1080::Hdc1080, Error};
//! use hearth_simchips::hdc1080::{Hdc1080Model, ADDRESS};
//! use hearth_simchips::{Ambient, ChipFault, Conditions, SimI2cBus};
//!
//! fn run<F: Future>(f: F) -> F::Output {
//!     let Poll::Ready(out) = pin!(f).poll(&mut Context::from_waker(Waker::noop())) else {
//!         unreachable!("simulated I/O never waits")
//!     };
//!     out
//! }
//!
//! let bus = SimI2cBus::new();
//! let air = Ambient::new(Conditions { temperature_c: 21.5, ..Conditions::default() });
//! bus.attach(ADDRESS, Hdc1080Model::new(air)).unwrap();
//! let (mut hdc, mut delay) = (Hdc1080::new(bus.clone()), bus.clock().delay());
//! run(hdc.init(&mut delay)).unwrap(); // the real driver, on the simulated chip
//! let t = run(hdc.read_temperature(&mut delay)).unwrap();
//! assert_eq!(format!("{t:.2}"), "21.50"); // 14 bits: steps of 0.01 °C
//!
//! // Unplug the chip: the driver sees its address go unacknowledged, as on real hardware.
//! bus.set_fault(ADDRESS, ChipFault::Absent).unwrap();
//! let Err(Error::Bus(e)) = run(hdc.read_temperature(&mut delay)) else { unreachable!() };
//! assert_eq!(e.to_string(), "I2C transfer to 0x40 failed: The device did not acknowledge its address");
//! ```

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
