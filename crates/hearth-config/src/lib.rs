//! `hearth-config` owns `config.txt`: its line syntax, the typed [`Config`] it describes, its
//! validation with complete, line-numbered error reports, and its canonical rendering.
//!
//! ```
//! let text = hearth_config::Config::example("weather");
//! let config = hearth_config::parse(&text, &["weather"]).expect("the example is valid");
//! assert_eq!(config.profile, "weather");
//! assert_eq!(config.timings.watchdog_s, Some(15)); // on by default
//!
//! let errors = hearth_config::parse("profile weather\nmqtbroker x\n", &["weather"]).unwrap_err();
//! let first = errors.as_slice()[0].located("config.txt").to_string();
//! assert_eq!(first, "config.txt:2: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)");
//! ```
//!
//! # Format
//!
//! One `key value` per line. Blank lines and lines starting with `#` are ignored; lines are
//! trimmed; the key is the first word and the value is everything after the first run of
//! spaces/tabs, so values may contain spaces. The value `None` means "no value". CRLF line
//! endings and a leading UTF-8 BOM are accepted. Keys are case-sensitive.
//!
//! Compared with the MicroPython reference, which silently ignored every line it could not
//! split into exactly two words and let later duplicates win, this parser rejects unknown
//! keys, duplicates, valueless keys and bad values, and reports all of them at once. Every
//! line the reference understood is understood here with the same meaning; `flavor` is
//! accepted as a synonym of `profile`. See [`Timings::watchdog_s`] for how the old
//! `watchdog` values keep their meaning while the default becomes "on".
//!
//! # Keys
//!
//! | key | field | rule |
//! |---|---|---|
//! | `profile` / `flavor` | [`Config::profile`] | required, one of the caller's profiles; not both |
//! | `ssid` | [`Config::network`] | required; ≤ 32 bytes, or `(wired)`, `(wired2)`, `(none)` |
//! | `password` | [`Network::Wifi`] | optional; 8..=63 characters or 64 hex digits; Wi-Fi only |
//! | `mqttbroker` | [`Mqtt::broker`] | required unless `ssid (none)`; `host`, `host:port`, `[v6]:port`, optionally `mqtt://` (plain, port 1883) or `mqtts://` (TLS, port 8883) |
//! | `mqttca`, `mqttpin` | [`Mqtt::tls`] | `mqtts://` only, which needs at least one: base64 DER of the CA certificate; 64 hex digits (SHA-256 of the server's SubjectPublicKeyInfo) |
//! | `mqttclientcert`, `mqttclientkey` | [`MqttTls::client`] | `mqtts://` only, both or neither; base64 DER (the key is a secret) |
//! | `mqttname` | [`Mqtt::name`] | required; 1..=64 characters, no whitespace, `/`, `+`, `#` |
//! | `mqttuser`, `mqttpassword` | [`Mqtt::credentials`] | optional; no password without user |
//! | `mqttkeepalive` | [`Mqtt::keepalive_s`] | 5..=3600 s, default 30, < `mqttreboot` |
//! | `watchdog` | [`Timings::watchdog_s`] | 0 = off, default 15 s |
//! | `ntpserver` | [`Config::ntp_servers`] | optional; 1..=3 time servers (`host` or `host:port`, a DNS name or an IPv4 address, which needs no DNS) for the wall clock, default `pool.ntp.org`; `None`: no wall clock |
//! | `wifitxpower` | [`Config::wifi_tx_power`] | optional; the radio's maximum transmit power in dBm, 2..=20 in steps of 0.25 (e.g. `8.5`), default the radio driver's (5 dBm) |
//! | `espnowgroup`, `espnowpsk`, `espnowchannel` | [`Config::espnow`] | optional; channel 1..=13 |
//! | timings | [`Timings`] | optional, reference defaults; see each field |
//!
//! A profile adds its own keys with [`KeySpec`] and [`parse_with`].

#![no_std]

extern crate alloc;

pub mod base64;
pub mod blob;
mod error;
mod model;
mod parser;
pub mod provision;
mod render;
mod schema;
mod syntax;
mod values;

pub use error::{ConfigError, ConfigErrors, ErrorKind, Located, LocatedAll};
pub use model::{
    Broker, ClientIdentity, Config, EspNow, Host, Mqtt, MqttCredentials, MqttTls, Network, Timings,
    TxPower, DEFAULT_MQTTS_PORT, DEFAULT_MQTT_KEEPALIVE_S, DEFAULT_MQTT_PORT, DEFAULT_NTP_SERVER,
    DEFAULT_WATCHDOG_S, WATCHDOG_FEED_PERIOD_S, WATCHDOG_MAX_S, WATCHDOG_MIN_S,
};
pub use parser::{parse, parse_with};
pub use schema::KeySpec;
