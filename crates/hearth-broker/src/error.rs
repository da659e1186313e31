//! The crate's error type: everything `start` can fail with.

use std::net::SocketAddr;

/// Why the embedded broker could not start.
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

    /// The broker's accept thread could not be created.
    #[error("cannot create the MQTT broker's {what}")]
    Spawn {
        /// Which part failed ("accept thread").
        what: &'static str,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}
