//! The crate's error type: everything `start` and `subscribe_all` can fail with.

use std::net::SocketAddr;
use std::time::Duration;

/// Why the embedded broker could not start or could not open a feed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Another socket already listens on the requested address.
    #[error(
        "cannot start the MQTT broker on {addr}: address already in use (another broker running?)"
    )]
    AddrInUse {
        /// The address that was requested.
        addr: SocketAddr,
    },

    /// Binding the listener failed for another reason (permission, no such
    /// interface, ...).
    #[error("cannot start the MQTT broker on {addr}")]
    Bind {
        /// The address that was requested.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// A thread or the async runtime for the listener could not be created.
    #[error("cannot create the MQTT broker's {what}")]
    Spawn {
        /// Which part failed ("listener thread", "runtime", ...).
        what: &'static str,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The listener thread stopped before accepting connections.
    #[error("the MQTT broker listener on {addr} stopped during start-up: {reason}")]
    Listener {
        /// The address that was requested.
        addr: SocketAddr,
        /// rumqttd's own description of the failure.
        reason: String,
    },

    /// The listener did not accept a connection within the start-up deadline.
    #[error("the MQTT broker listener on {addr} did not accept connections within {waited:?}")]
    NotReady {
        /// The address that was probed.
        addr: SocketAddr,
        /// How long `start` waited.
        waited: Duration,
    },

    /// The broker's router refused or did not answer an in-process link.
    #[error("cannot open an in-process link to the MQTT broker: {reason}")]
    Link {
        /// rumqttd's description, or the timeout that expired.
        reason: String,
    },
}

impl BrokerError {
    /// A link failure, described by rumqttd's error (whose type stays private).
    pub(crate) fn link(reason: impl std::fmt::Display) -> Self {
        BrokerError::Link {
            reason: reason.to_string(),
        }
    }
}
