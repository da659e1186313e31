//! hearth-storage: the ground floor for state that must survive a reset. A typed,
//! power-loss-safe key-value store ([`KvStore`]) on any NOR flash, built on
//! [sequential-storage]'s map; the list of keys ([`keys`]); and, with the `std` feature, NOR
//! flash for the host: [`FileFlash`] (a file, for the simulator) and [`MemFlash`] (RAM, for
//! tests). It owns what goes into that flash range: the encoding of each value (type tag and
//! bytes), the key numbering, and the repair and format decisions at open.
//!
//! The example needs [`MemFlash`], so it runs with the `std` feature
//! (`cargo test --doc -p hearth-storage --features std`) and is ignored without it:
//!
#![cfg_attr(feature = "std", doc = "```")]
#![cfg_attr(not(feature = "std"), doc = "```ignore")]
//! use hearth_storage::{keys, KvStore, MemFlash, StoreError, ValueKind};
//!
//! let mut flash = MemFlash::new(4); // four erased 4 KiB sectors
//! embassy_futures::block_on(async {
//!     let mut store = KvStore::open(&mut flash, 0..4 * 4096).await?;
//!     assert_eq!(store.incr_u32(keys::BOOT_COUNT).await?, 1);
//!     drop(store); // a reset
//!
//!     let mut store = KvStore::open(&mut flash, 0..4 * 4096).await?;
//!     assert_eq!(store.report().to_string(), "storage opened cleanly");
//!     assert_eq!(store.incr_u32(keys::BOOT_COUNT).await?, 2);
//!     // BOOT_COUNT is declared a u32: text under it is refused, and nothing is written.
//!     let wrong = store.set_str(keys::BOOT_COUNT, "two").await;
//!     let (requested, actual) = (ValueKind::Str, ValueKind::U32);
//!     assert_eq!(wrong, Err(StoreError::WrongType { key: keys::BOOT_COUNT, requested, actual }));
//!     assert_eq!(store.get_u32(keys::BOOT_COUNT).await?, Some(2));
//!     Ok::<(), StoreError>(())
//! })?;
//! # Ok::<(), StoreError>(())
//! ```
//!
//! # Values
//!
//! A value is a `u32`, a byte string or UTF-8 text of at most [`MAX_VALUE_LEN`] bytes, stored
//! with a one-byte type tag. Reading a key with another type is [`StoreError::WrongType`];
//! text may also be read as bytes. Well-known keys have a declared type and length bounds that
//! writes must respect ([`keys::WELL_KNOWN`]).
//!
//! # Power loss
//!
//! Every write and every removal appends one item, with CRCs over its header and data, and is
//! read back before it is acknowledged. After a power cut at any moment each key reads its last
//! acknowledged value or, for the key being written, the new one; never a mix and never an
//! error. Removal writes a tombstone rather than using sequential-storage's `remove_item`, so
//! it has the same guarantee and needs no `MultiwriteNorFlash`.
//!
//! # Corruption policy: never a crash loop, never a silent loss
//!
//! [`KvStore::open`] fails only for a range that cannot hold a store or a flash I/O error. It
//! first repairs, without losing any value, what a power cut during a sector erase can leave
//! ([`OpenReport::scrubbed_pages`]): unused sectors that are not blank, and a garbage-collection
//! cycle whose old sector was being erased (sequential-storage's own repair would copy again
//! from the half-erased sector). It then reads every item once. If sequential-storage reports corruption it cannot repair, or the range holds items
//! this firmware cannot handle (foreign data, such as ESP-IDF NVS from a previous firmware),
//! `open` erases the whole range and says so in [`OpenReport::formatted`]; the caller logs it.
//! If an operation later meets unrepairable corruption, the store erases the range at once so
//! that the next operation works, and returns [`StoreError::Wiped`]. Nothing read from flash
//! can cause a panic.
//!
//! # Capacity
//!
//! sequential-storage keeps one sector empty for garbage collection, and the newest item of
//! every key is copied forward when its sector is recycled. Keep the total size of the live
//! items (value + 3 bytes of key and tag + 8 bytes of header, rounded up to 4) well below the
//! size of all sectors but one; a store with too much live data returns [`StoreError::Full`].
//! A range spans 2 to [`MAX_PAGES`] sectors; 4 or more make garbage collection cheap. A full
//! store stays readable, but even an overwrite needs free space first: only
//! [`KvStore::erase_all`] makes room again.
//!
//! # RAM
//!
//! A `KvStore` takes about 4.6 KiB: a 4 KiB item buffer (any item that fits a 4 KiB sector
//! can be read and moved, whoever wrote it) and about 450 bytes of sequential-storage caches.
//! The future of [`KvStore::open`] peaks at about 9.5 KiB.
//!
//! [sequential-storage]: https://docs.rs/sequential-storage/8.0.2

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![warn(missing_docs)]

#[cfg(feature = "testing")]
extern crate alloc;

mod error;
pub mod keys;
mod recovery;
mod store;
mod value;

#[cfg(any(test, feature = "std"))]
mod file_flash;
#[cfg(any(test, feature = "std"))]
mod mem_flash;
#[cfg(feature = "testing")]
pub mod test_flash;
#[cfg(test)]
mod test_support;

pub use error::{FormatReason, OpenReport, StoreError};
pub use keys::Key;
pub use store::{KvStore, MAX_PAGES};
pub use value::{ValueKind, MAX_VALUE_LEN};

#[cfg(any(test, feature = "std"))]
pub use file_flash::{FileFlash, FileFlashError, FileFlashOpenError};
#[cfg(any(test, feature = "std"))]
pub use mem_flash::MemFlash;

/// Read, write and erase sizes of a NOR flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashGeometry {
    /// Smallest read, in bytes.
    pub read_size: usize,
    /// Smallest write (flash word), in bytes.
    pub write_size: usize,
    /// Erase sector, in bytes.
    pub erase_size: usize,
}

/// The geometry of esp-storage 0.10's `FlashStorage` (without its `bytewise-read` feature):
/// 4-byte reads and writes, 4096-byte sectors. The host flashes use it so that the simulator
/// runs the same store layout as the chip.
pub const ESP32_GEOMETRY: FlashGeometry = FlashGeometry {
    read_size: 4,
    write_size: 4,
    erase_size: 4096,
};
