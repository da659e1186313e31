//! hearth-device: one async main that composes the supervisor, the network, the MQTT session
//! and an appliance profile over a small set of platform traits. The same code runs on the chip
//! (esp-hal + embassy) and in the host simulator; only the [`platform`] implementations differ.
#![no_std]

extern crate alloc;

pub mod bounded;
pub mod chips;
pub mod link;
pub mod platform;
pub mod profiles;
pub mod runtime;
pub mod session;
pub mod settings;
pub mod store;
pub mod tls;
#[cfg(feature = "embedded-tls")]
pub mod tls_client;
pub mod update;

#[cfg(test)]
extern crate std;
#[cfg(test)]
mod test_board;
#[cfg(test)]
mod test_flash;

pub use platform::{
    now_ms, Board, Clock, Console, DeviceStatus, Entropy, FirmwareStore, Identity, NetError,
    Network, NoSlots, Reset, SystemClock, TlsError, Watchdog,
};
pub use profiles::Profile;
pub use runtime::run;
pub use settings::{Settings, TlsSettings};
