//! hearth-fleet: talking to Hearth devices through their broker, from a PC.
//!
//! - [`client`]: a blocking MQTT 5 client (rust-mqtt, the devices' own library), the broker
//!   options and how they combine with the environment ([`client::BrokerOptions`]), and
//!   `hearth mon`.
//! - [`commands`]: what changes devices, signed with the owner's ed25519 key: `keygen`, `ota`
//!   (signed, resumable updates confirmed by reading the version back), `cmd`, `config push`;
//!   and `image`, simulator firmware images to try updates with.
//! - [`inventory`]: `hearth ls`, every device the broker knows, from its retained messages.
//!
//! It owns no device logic: the device side of every message is `hearth_runtime::update`, and the
//! status both sides speak is `hearth_core::update_status`. It depends on `hearth-sim` only
//! for the host's sockets and TLS set-up (verified as a device verifies) and for the format of
//! simulator images.
//!
//! ```no_run
//! use hearth_fleet::client::BrokerOptions;
//! use hearth_fleet::commands::cmd_run;
//!
//! // The broker from $HEARTH_BROKER, else 127.0.0.1:1883, unless given here.
//! let broker = BrokerOptions {
//!     broker: Some("127.0.0.1:1883".into()),
//!     ..BrokerOptions::default()
//! }
//! .resolve(&|k| std::env::var(k).ok())?;
//! let answer = cmd_run(&broker, "weather-1", "getversion", None, false)?;
//! println!("{}", answer.answer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod commands;
pub mod inventory;
pub mod release;
pub mod rollout;
mod table;
