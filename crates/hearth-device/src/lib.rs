//! hearth-device: one async main that composes the supervisor, the network, the MQTT session
//! and an appliance over the platform traits (`hearth-platform`) and the appliance seam
//! (`hearth-profile`). The same code runs on the chip (esp-hal + embassy) and in the host
//! simulator; only the platform implementations differ.
//!
//! It owns everything a device decides for itself: how a config is run ([`profiles`]: the
//! parser for every key, the plan, safe mode), the rules each chip applies to a config at boot
//! ([`chips`]), the MQTT session and the runtime around it ([`session`], [`runtime`]), the
//! ESP-NOW link runtimes ([`link`]), certificate checks ([`tls`]) and the device side of
//! signed updates and config pushes ([`update`]). The appliances themselves are in
//! `hearth-appliances`, which knows nothing of this crate.
//!
//! ```
//! use hearth_device::{chips, profiles};
//!
//! let text = "profile weather\nssid Home\npassword correct horse\nmqttbroker 192.168.1.2\n\
//!             mqttname attic\ni2csda 4\n";
//! let config = profiles::parse_config(text).expect("a valid config.txt");
//! let plan = profiles::plan(&config).expect("weather has its broker");
//! assert!(matches!(plan, profiles::Plan::Mqtt { central: None, .. }));
//!
//! // On an ESP32-C3 the sensors' I2C takes SDA from the config, SCL from the chip's default.
//! let c3 = chips::chip("esp32c3").unwrap();
//! let wiring = chips::check(&config, &plan, c3, chips::FULL_IMAGE).expect("boots on a C3");
//! assert_eq!(wiring.i2c, Some((4, 9)));
//!
//! // A pin of the C3's SPI flash is refused before anything is written or booted.
//! let bad = text.replace("i2csda 4", "i2csda 12");
//! let problems = chips::check_text(&bad, "esp32c3", chips::FULL_IMAGE).unwrap_err();
//! let why = "config: i2csda 12: GPIO12 belongs to the SPI flash or the USB console on the esp32c3";
//! assert_eq!(problems, [why]);
//! ```
#![no_std]

extern crate alloc;

pub mod bounded;
pub mod chips;
pub mod link;
pub mod profiles;
pub mod runtime;
pub mod session;
pub mod settings;
pub mod tls;
#[cfg(feature = "embedded-tls")]
pub mod tls_client;
pub mod update;

#[cfg(test)]
extern crate std;
#[cfg(test)]
mod test_board;

pub use runtime::run;
pub use settings::Settings;
