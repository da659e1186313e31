//! hearth-ota: safe updates from anywhere, the parts both worlds share.
//!
//! - [`signed`]: envelopes signed with the owner's ed25519 key, bound to one device and to an
//!   issue time that only moves forward (a captured envelope cannot be replayed).
//! - [`manifest`]: what a firmware envelope says about its image (version, size, SHA-256,
//!   chip, appliance) and the checks a device applies to it.
//! - [`otadata`]: ESP-IDF's slot-selection format, written so that a power cut never loses the
//!   entry in force.
//! - [`slots`]: the two app slots on a NOR flash and the writer that receives an image into the
//!   inactive one, checked by hash as received and again as read back.
//!
//! `no_std`, no allocation (the `alloc` feature adds the signing side for the CLI), no I/O but
//! through `embedded-storage-async`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod manifest;
pub mod otadata;
pub mod signed;
pub mod slots;

pub use manifest::{Manifest, Target, Version};
pub use otadata::State;
pub use signed::{Envelope, Kind, Refusal};
pub use slots::{Layout, SlotError, Slots, Writer, CHUNK};
