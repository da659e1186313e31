//! The store's error type and the report of what `open` had to do to the flash.

use core::fmt;

use embedded_storage_async::nor_flash::NorFlashErrorKind;

use crate::keys::Key;
use crate::value::ValueKind;

/// Everything that can go wrong in the key-value store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The flash driver failed (I/O error, or a bug: misaligned or out-of-bounds access).
    Flash(NorFlashErrorKind),
    /// The flash range cannot hold a store: it must be erase-sector aligned, inside the flash,
    /// and span 2 to [`crate::MAX_PAGES`] sectors.
    BadRange {
        /// First byte of the range.
        start: u32,
        /// One past the last byte of the range.
        end: u32,
    },
    /// Not enough free space for the write, even after garbage collection: the live data is
    /// too large for the range.
    Full,
    /// The value is longer than the store or the key allows.
    ValueTooLarge {
        /// The key written.
        key: Key,
        /// Length of the value given.
        len: usize,
        /// Largest length allowed.
        max: usize,
    },
    /// The value is shorter than the key allows.
    ValueTooShort {
        /// The key written.
        key: Key,
        /// Length of the value given.
        len: usize,
        /// Smallest length allowed.
        min: usize,
    },
    /// The key holds (or, for a well-known key, is declared to hold) another type.
    WrongType {
        /// The key accessed.
        key: Key,
        /// The type the caller asked for or tried to write.
        requested: ValueKind,
        /// The type the key holds or is declared to hold.
        actual: ValueKind,
    },
    /// The value stored under the key was not written by this firmware's encoding (unknown type
    /// tag, wrong length, bad UTF-8). The key can be overwritten or removed.
    Undecodable {
        /// The key read.
        key: Key,
    },
    /// The caller's buffer is too small for the stored value.
    BufferTooSmall {
        /// The key read.
        key: Key,
        /// Bytes needed.
        needed: usize,
    },
    /// The flash was corrupted beyond sequential-storage's own repair during this operation.
    /// The whole range has been erased so that the next operation works: **every key is lost**.
    Wiped(FormatReason),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Flash(kind) => write!(f, "flash error: {kind}"),
            StoreError::BadRange { start, end } => write!(
                f,
                "flash range 0x{start:X}..0x{end:X} cannot hold a store \
                 (needs 2..={} whole erase sectors inside the flash)",
                crate::MAX_PAGES
            ),
            StoreError::Full => write!(f, "storage full: live data does not fit the flash range"),
            StoreError::ValueTooLarge { key, len, max } => {
                write!(f, "value for {key} is {len} bytes, more than {max}")
            }
            StoreError::ValueTooShort { key, len, min } => {
                write!(f, "value for {key} is {len} bytes, less than {min}")
            }
            StoreError::WrongType {
                key,
                requested,
                actual,
            } => write!(f, "{key} holds {actual}, not {requested}"),
            StoreError::Undecodable { key } => {
                write!(f, "value stored for {key} is not in a known encoding")
            }
            StoreError::BufferTooSmall { key, needed } => {
                write!(f, "value for {key} needs a {needed}-byte buffer")
            }
            StoreError::Wiped(reason) => write!(
                f,
                "storage erased because {reason}; all stored values were lost"
            ),
        }
    }
}

impl core::error::Error for StoreError {}

/// Why the store erased its whole flash range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatReason {
    /// sequential-storage reported corruption it could not repair (for example random data, or a
    /// second power cut during its own repair).
    Corrupted,
    /// The range holds items this firmware cannot handle (too large, malformed keys): another
    /// firmware's data, for example ESP-IDF NVS left from a previous firmware.
    ForeignData,
    /// sequential-storage reported an internal logic error.
    InternalError,
}

impl fmt::Display for FormatReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatReason::Corrupted => "the flash contents were corrupted",
            FormatReason::ForeignData => "the flash held data in a foreign format",
            FormatReason::InternalError => "sequential-storage reported an internal error",
        })
    }
}

/// What [`crate::KvStore::open`] found and did. Log it at boot: a formatted store means every
/// value was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// `Some` when the whole range was erased, and why. All earlier values are gone.
    pub formatted: Option<FormatReason>,
    /// Sectors erased before use without losing any value: unused sectors that were not blank
    /// (an interrupted erase, foreign bytes), and the old sector of a garbage-collection cycle
    /// that a power cut interrupted after its values had been copied.
    pub scrubbed_pages: u16,
}

impl OpenReport {
    /// True when `open` erased the whole range.
    pub fn is_formatted(&self) -> bool {
        self.formatted.is_some()
    }
}

impl fmt::Display for OpenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.formatted {
            Some(reason) => write!(
                f,
                "storage formatted because {reason}; all stored values were lost"
            ),
            None if self.scrubbed_pages > 0 => write!(
                f,
                "storage opened; {} sector(s) left by an interrupted erase were cleaned up",
                self.scrubbed_pages
            ),
            None => write!(f, "storage opened cleanly"),
        }
    }
}
