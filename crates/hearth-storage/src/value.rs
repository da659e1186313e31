//! The on-flash encoding of a value: one type-tag byte, then the payload. The tag makes a read
//! with the wrong type a clear [`crate::StoreError::WrongType`] instead of reinterpreted bytes,
//! and marks removed keys (tombstones).
//!
//! Item data as sequential-storage stores it (its own header with length and CRCs comes first):
//!
//! ```text
//! key: u16 LE | tag: u8 | payload
//! tag 0x01 u32    payload = 4 bytes LE
//! tag 0x02 bytes  payload = 0..=MAX_VALUE_LEN bytes
//! tag 0x03 text   payload = 0..=MAX_VALUE_LEN bytes of UTF-8
//! tag 0x10 removed, no payload (a tombstone: the key reads as missing)
//! ```
//!
//! This layout is a wire format: a tag number never changes meaning.

use core::fmt;

use sequential_storage::map::{SerializationError, Value};

/// Largest payload of one value in bytes. Firmware that raises it later stays compatible with
/// this one (after an OTA rollback, longer values read as [`crate::StoreError::Undecodable`]
/// and can be overwritten; the store itself keeps working).
pub const MAX_VALUE_LEN: usize = 256;

/// Bytes in front of the payload inside the item data: the key (2) and the tag (1).
pub(crate) const ITEM_PREFIX_LEN: usize = 3;

const TAG_U32: u8 = 0x01;
const TAG_BYTES: u8 = 0x02;
const TAG_STR: u8 = 0x03;
const TAG_REMOVED: u8 = 0x10;

/// The type of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// An unsigned 32-bit number.
    U32,
    /// A byte string.
    Bytes,
    /// UTF-8 text.
    Str,
}

impl ValueKind {
    const fn tag(self) -> u8 {
        match self {
            ValueKind::U32 => TAG_U32,
            ValueKind::Bytes => TAG_BYTES,
            ValueKind::Str => TAG_STR,
        }
    }

    /// Lower-case name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            ValueKind::U32 => "u32",
            ValueKind::Bytes => "bytes",
            ValueKind::Str => "text",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value as stored: present with a type, or a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'a> {
    Present { kind: ValueKind, payload: &'a [u8] },
    Removed,
}

impl<'a> Stored<'a> {
    /// Decode the value part of an item (everything after the key). `None` when the bytes are
    /// not a value this firmware wrote: unknown tag, wrong length, or text that is not UTF-8.
    pub(crate) fn decode(raw: &'a [u8]) -> Option<Self> {
        let (&tag, payload) = raw.split_first()?;
        if payload.len() > MAX_VALUE_LEN {
            return None;
        }
        let kind = match tag {
            TAG_REMOVED if payload.is_empty() => return Some(Stored::Removed),
            TAG_U32 if payload.len() == 4 => ValueKind::U32,
            TAG_BYTES => ValueKind::Bytes,
            TAG_STR if core::str::from_utf8(payload).is_ok() => ValueKind::Str,
            _ => return None,
        };
        Some(Stored::Present { kind, payload })
    }

    fn encoded_len(&self) -> usize {
        match self {
            Stored::Present { payload, .. } => 1 + payload.len(),
            Stored::Removed => 1,
        }
    }
}

impl<'a> Value<'a> for Stored<'a> {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let len = self.encoded_len();
        let out = buffer
            .get_mut(..len)
            .ok_or(SerializationError::BufferTooSmall)?;
        match self {
            Stored::Present { kind, payload } => {
                out[0] = kind.tag();
                out[1..].copy_from_slice(payload);
            }
            Stored::Removed => out[0] = TAG_REMOVED,
        }
        Ok(len)
    }

    fn deserialize_from(buffer: &'a [u8]) -> Result<(Self, usize), SerializationError> {
        Stored::decode(buffer)
            .map(|stored| (stored, buffer.len()))
            .ok_or(SerializationError::InvalidFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(stored: Stored<'_>) {
        let mut buf = [0u8; 1 + MAX_VALUE_LEN];
        let n = stored.serialize_into(&mut buf).unwrap();
        assert_eq!(Stored::decode(&buf[..n]), Some(stored));
        assert_eq!(Stored::deserialize_from(&buf[..n]), Ok((stored, n)));
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Stored::Present {
            kind: ValueKind::U32,
            payload: &7u32.to_le_bytes(),
        });
        round_trip(Stored::Present {
            kind: ValueKind::Bytes,
            payload: &[],
        });
        round_trip(Stored::Present {
            kind: ValueKind::Bytes,
            payload: &[0xFF; MAX_VALUE_LEN],
        });
        round_trip(Stored::Present {
            kind: ValueKind::Str,
            payload: "héllo".as_bytes(),
        });
        round_trip(Stored::Removed);
    }

    #[test]
    fn foreign_bytes_do_not_decode() {
        assert_eq!(Stored::decode(&[]), None);
        assert_eq!(Stored::decode(&[0xFF, 1, 2, 3, 4]), None);
        assert_eq!(Stored::decode(&[0x00]), None);
        assert_eq!(Stored::decode(&[TAG_U32, 1, 2, 3]), None);
        assert_eq!(Stored::decode(&[TAG_U32, 1, 2, 3, 4, 5]), None);
        assert_eq!(Stored::decode(&[TAG_STR, 0xC3]), None);
        assert_eq!(Stored::decode(&[TAG_REMOVED, 0]), None);
        let mut long = [0u8; 2 + MAX_VALUE_LEN];
        long[0] = TAG_BYTES;
        assert_eq!(Stored::decode(&long), None);
    }

    #[test]
    fn serialize_reports_a_small_buffer() {
        let mut buf = [0u8; 3];
        let stored = Stored::Present {
            kind: ValueKind::U32,
            payload: &[1, 2, 3, 4],
        };
        assert_eq!(
            stored.serialize_into(&mut buf),
            Err(SerializationError::BufferTooSmall)
        );
    }
}
