//! Crate root of `hearth-broker`: an MQTT 5 broker that runs inside the host
//! process, so `hearth demo` needs nothing but cargo (no mosquitto).
//!
//! The broker is [rumqttd](https://crates.io/crates/rumqttd) 0.20 built without
//! TLS and websockets. [`EmbeddedBroker::start`] binds one plain-TCP MQTT 5
//! listener and returns once it accepts connections;
//! [`EmbeddedBroker::subscribe_all`] taps every message for a live view.
//!
//! ```no_run
//! use hearth_broker::EmbeddedBroker;
//!
//! let broker = EmbeddedBroker::start(([127, 0, 0, 1], 0).into())?;
//! println!("MQTT 5 broker on {}", broker.local_addr());
//! let live = broker.subscribe_all()?;
//! while let Ok(msg) = live.recv() {
//!     println!("{} = {}", msg.topic, String::from_utf8_lossy(&msg.payload));
//! }
//! # Ok::<(), hearth_broker::BrokerError>(())
//! ```
//!
//! # What the broker does and does not do (rumqttd 0.20, MQTT 5 listener)
//!
//! Works, and is covered by this crate's tests with `rust-mqtt` 0.6 as client:
//! CONNECT without credentials, keep-alive (PINGREQ/PINGRESP), SUBSCRIBE and
//! PUBLISH at QoS 0 and 1, the retain flag (retained messages reach later
//! subscribers with `retain = true`), and the last will (published, retained if
//! asked, when a client's TCP connection ends without DISCONNECT; not published
//! after a clean DISCONNECT).
//!
//! Limits of rumqttd 0.20 that clients must respect:
//! * A CONNECT with keep-alive 0 is refused (the socket is closed without a
//!   CONNACK). `rust-mqtt`'s default `KeepAlive::Infinite` is 0: set seconds.
//! * Forwarded messages carry the subscription's QoS, not min(publish QoS,
//!   subscription QoS).
//! * Subscription options "retain handling" and "retain as published" are
//!   ignored: retained messages are always sent on a new subscription (with
//!   `retain = true`), live messages always arrive with `retain = false`.
//! * DISCONNECT with reason 0x04 ("disconnect with will message") drops the will
//!   like a normal DISCONNECT.
//! * Session takeover: when a client id connects while its previous connection
//!   is still open (a device reconnecting over a half-open socket), rumqttd
//!   closes the old connection and publishes a will, but takes it from the slot
//!   the *new* connection has just filled: the new connection is left without
//!   a will, so its later drop publishes nothing (a retained "Online" stays).
//!   Depending on timing the will can also land after the new connection's
//!   first publish. Devices that close their socket before reconnecting, or
//!   reconnect only after the broker noticed the drop (1.5 x keep-alive), are
//!   not affected.
//! * Only MQTT 5 clients are served on the listener (no 3.1.1).
//!
//! # Logging
//!
//! rumqttd logs through `tracing` (and, through tracing's `log` feature, through
//! `log` when no tracing dispatcher exists). The library installs no global
//! subscriber. The listener thread it owns (where every client connection runs)
//! and the call that spawns rumqttd's router use a thread-scoped no-op
//! dispatcher. Side effect: once any scoped dispatcher exists, `tracing` stops
//! forwarding events to `log` in the rest of the process, so an application that
//! uses `log` (e.g. `env_logger`) sees nothing from rumqttd's router thread
//! either. An application with a global `tracing` subscriber still receives the
//! router thread's events: filter them with the directive
//! `format!("{}=off", hearth_broker::LOG_TARGET)`.
//!
//! # Stopping
//!
//! Dropping the [`EmbeddedBroker`] (or [`EmbeddedBroker::shutdown`]) closes the
//! listener and every client connection and ends the [`subscribe_all`] feeds.
//! rumqttd's router thread cannot be stopped: it stays parked (idle, holding
//! its retained messages) until the process exits. That is a few hundred KiB
//! per started broker, which is fine for a demo or a test suite.
//!
//! [`subscribe_all`]: EmbeddedBroker::subscribe_all

mod broker;
mod error;
mod monitor;

pub use broker::EmbeddedBroker;
pub use error::BrokerError;
pub use monitor::Message;

/// `tracing`/`log` target prefix of everything rumqttd logs.
pub const LOG_TARGET: &str = "rumqttd";
