//! hearth-device: the device composed. The appliances (`hearth-appliances`) and the runtimes
//! (`hearth-runtime`) know nothing of each other; this crate puts them together for both worlds:
//! the parser for every key of the build and the [`plan`](profiles::plan) that maps a config
//! to the runtime and the appliance it runs, with the appliance's settings already checked
//! ([`profiles`], with safe mode), the rules each chip applies to a config at boot
//! ([`chips`]) and [`CONFIG_RULES`], what the runtime checks a pushed config against, and the
//! chip's certificate checks for MQTT over TLS ([`tls`], and the handshake glue `tls_client`).
//!
//! ```
//! use hearth_device::{chips, profiles};
//!
//! let text = "profile weather\nssid Home\npassword correct horse\nmqttbroker 192.168.1.2\n\
//!             mqttname attic\ni2csda 4\n";
//! let config = profiles::parse_config(text).expect("a valid config.txt");
//! let plan = profiles::plan(&config).expect("weather has its broker");
//! assert!(matches!(
//!     plan,
//!     profiles::Plan::Mqtt { appliance: profiles::OnMqtt::Appliance(hearth_appliances::Mqtt::Weather), .. }
//! ));
//!
//! // On an ESP32-C3 the sensors' I2C takes SDA from the config, SCL from the chip's default.
//! let c3 = chips::chip("esp32c3").unwrap();
//! let wiring = chips::check(&config, &plan, c3, chips::FULL_IMAGE).expect("boots on a C3");
//! assert_eq!(wiring.i2c, Some((4, 9)));
//!
//! // A pin of the C3's SPI flash is refused before anything is written or booted.
//! let bad = text.replace("i2csda 4", "i2csda 12");
//! let refusal = chips::check_text(&bad, "esp32c3", chips::FULL_IMAGE).unwrap_err();
//! let chips::Refusal::Chip(problems) = &refusal else { panic!("{refusal}") };
//! assert!(matches!(problems[..], [chips::Problem::Reserved { gpio: 12, .. }]));
//! let why = "config: i2csda 12: GPIO12 belongs to the SPI flash or the USB console on the esp32c3";
//! assert_eq!(refusal.lines(), [why]);
//! ```
#![no_std]

extern crate alloc;

pub mod chips;
pub mod profiles;
pub mod tls;
#[cfg(feature = "embedded-tls")]
pub mod tls_client;

#[cfg(test)]
extern crate std;

/// What a pushed config must pass before the runtime stores it: every rule the device's chip
/// and appliances apply at boot ([`chips::check_text`]). The worlds hand it to
/// [`hearth_runtime::run`] with the appliance:
/// `hearth_runtime::run(settings, net, board, store, &mut profile, hearth_device::CONFIG_RULES)`.
/// (A constant, not a wrapper around `run`: an async wrapper would keep a second copy of the
/// runtime's arguments in the firmware's main task, 336 B of static RAM.)
pub const CONFIG_RULES: hearth_runtime::update::ConfigRules = chips::check_text_lines;
