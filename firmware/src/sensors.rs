//! The `weather` profile's hardware: I2C0 at 100 kHz on the pins the config names (`i2csda`,
//! `i2cscl`) or the board defaults (resolved and checked in [`crate::pins`]), shared by the
//! HDC1080 and BME280 drivers through embassy-embedded-hal's shared-bus `I2cDevice` over an
//! embassy-sync mutex (both drivers run on the device loop, so a no-op raw mutex suffices).
//!
//! Pins from the config are checked against the chip before use (`crate::pins`): the GPIO must
//! exist, must not be one of the SPI-flash pins or the USB-Serial-JTAG pins (the console), and
//! must not be used twice (SDA, SCL, the LED, the Ethernet pins). A bad choice is a boot error,
//! not a panic.
//!
//! Default pins (the Arduino core's defaults for the generic dev boards):
//!
//! | chip | SDA | SCL | note |
//! |---|---|---|---|
//! | ESP32-C3 | GPIO8 | GPIO9 | strapping pins: the bus pull-ups keep them high at reset, as booting needs; GPIO8 also drives the RGB LED of the DevKitM-1 |
//! | ESP32-C6 | GPIO23 | GPIO22 | |
//!
//! The sensors need external pull-ups (most breakout boards have them). The hardware bus
//! timeout is enabled at its maximum, so a held SCL ends a transfer with an error; the runtime
//! also bounds each round of sensor work.

use embassy_embedded_hal::shared_bus::asynch::i2c::I2cDevice;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use esp_hal::gpio::interconnect::{PeripheralInput, PeripheralOutput};
use esp_hal::i2c::master::{BusTimeout, Config, ConfigError, I2c};
use esp_hal::peripherals::I2C0;
use esp_hal::time::Rate;
use esp_hal::Async;
use hearth_appliances::weather::Weather;
use hearth_core::Millis;

/// Bus clock.
pub const BUS_KHZ: u32 = 100;

/// The I2C bus driver.
pub type Bus = I2c<'static, Async>;
/// The bus behind its mutex.
pub type SharedBus = Mutex<NoopRawMutex, Bus>;
/// One chip's handle on the shared bus.
pub type Device<'a> = I2cDevice<'a, NoopRawMutex, Bus>;
/// The weather profile on this board.
pub type WeatherProfile<'a> = Weather<Device<'a>, Device<'a>, embassy_time::Delay>;

/// Open I2C0 on `sda`/`scl`.
pub fn open_bus(
    i2c0: I2C0<'static>,
    sda: impl PeripheralInput<'static> + PeripheralOutput<'static>,
    scl: impl PeripheralInput<'static> + PeripheralOutput<'static>,
) -> Result<SharedBus, ConfigError> {
    let config = Config::default()
        .with_frequency(Rate::from_khz(BUS_KHZ))
        .with_timeout(BusTimeout::Maximum);
    let bus = I2c::new(i2c0, config)?
        .with_sda(sda)
        .with_scl(scl)
        .into_async();
    Ok(Mutex::new(bus))
}

/// The weather station on `bus`; its first read happens 15 s after `now`.
pub fn weather(bus: &SharedBus, now: Millis) -> WeatherProfile<'_> {
    Weather::new(
        I2cDevice::new(bus),
        I2cDevice::new(bus),
        embassy_time::Delay,
        now,
    )
}
