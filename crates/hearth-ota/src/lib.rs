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
//! through `embedded-storage-async`. The crate owns these formats and the checks on them; what
//! a device does with an accepted update (trial boot, confirmation, rollback) is
//! `hearth_runtime::update`.
//!
//! ```
//! use hearth_ota::otadata::{boot_slot, decode, encode, next_entry, Entry};
//! use hearth_ota::State;
//!
//! // Erased otadata: no valid entry, slot 0 boots.
//! let mut sectors = [None, None];
//! assert_eq!(boot_slot(sectors), 0);
//!
//! // An update received into slot 1: the new entry goes to the sector not holding the winner.
//! let (sector, entry) = next_entry(sectors, 1, State::New);
//! assert_eq!((sector, entry), (0, Entry { seq: 2, state: State::New }));
//! let (mut bytes, crc) = encode(entry);
//! assert_eq!(decode(&bytes), None); // cut before the CRC is written: slot 0 still boots
//! bytes[28..].copy_from_slice(&crc);
//! sectors[sector] = decode(&bytes);
//! assert_eq!(boot_slot(sectors), 1);
//!
//! // Confirming it never rewrites that entry: a newer one goes to the other sector.
//! let (sector, entry) = next_entry(sectors, 1, State::Valid);
//! assert_eq!((sector, entry.seq, entry.slot()), (1, 4, 1));
//! ```
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
