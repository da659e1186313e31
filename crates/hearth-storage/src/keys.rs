//! The store's key space: the [`Key`] newtype, the numbering rule (one range of key numbers per
//! subsystem), every well-known key, and the declared type and length of each of them.
//!
//! # Numbering rule
//!
//! A key is a `u16`, stored little-endian in front of every value. Each subsystem owns one
//! range; a new key takes the next free number in its subsystem's range and is added to
//! [`WELL_KNOWN`] **in this file**, so that a collision shows up in one place (a unit test checks
//! that numbers are unique and inside their range). A number, once used in a released firmware,
//! is never reused for a different meaning: an old value of the old meaning may still be in flash.
//!
//! | range             | owner                                                          |
//! |-------------------|----------------------------------------------------------------|
//! | `0x0000`          | reserved, never used                                           |
//! | `0x0001..=0x00FF` | system: boot and reboot bookkeeping                            |
//! | `0x0100..=0x01FF` | supervisor: network and MQTT health counters                   |
//! | `0x0200..=0x02FF` | netnow: ESP-NOW pairing, peer keys, replay counters            |
//! | `0x0300..=0x03FF` | mqtt: session state                                            |
//! | `0x0400..=0x04FF` | ota: update and rollback bookkeeping                           |
//! | `0x0500..=0x05FF` | config: runtime overrides of `config.txt` settings             |
//! | `0x1000..=0x1FFF` | profiles: `0x1000 + 0x100 * n` for the n-th appliance profile  |
//! | `0xF000..=0xFEFF` | diagnostics (storage stress test, ...)                         |
//! | `0xFF00..=0xFFFE` | unit tests only, never written by firmware                     |
//! | `0xFFFF`          | reserved (looks like erased flash)                             |

use core::fmt;

use sequential_storage::map::SerializationError;

use crate::value::ValueKind;

/// A key of the store. Well-known keys are the constants of this module.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(u16);

impl Key {
    /// A key from its raw number. Prefer the named constants; see the numbering rule above.
    pub const fn new(raw: u16) -> Self {
        Key(raw)
    }

    /// The raw key number as stored in flash.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// The declared type and length of a well-known key; `None` for other keys.
    pub fn spec(self) -> Option<&'static KeySpec> {
        WELL_KNOWN.iter().find(|spec| spec.key == self)
    }

    /// The subsystem whose range holds this key number.
    pub const fn subsystem(self) -> Option<Subsystem> {
        Subsystem::of(self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.spec() {
            Some(spec) => write!(f, "{} (0x{:04X})", spec.name, self.0),
            None => write!(f, "key 0x{:04X}", self.0),
        }
    }
}

/// On flash a key is its number, two bytes little-endian, in front of the value.
impl sequential_storage::map::Key for Key {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let out = buffer
            .get_mut(..2)
            .ok_or(SerializationError::BufferTooSmall)?;
        out.copy_from_slice(&self.0.to_le_bytes());
        Ok(2)
    }

    fn deserialize_from(buffer: &[u8]) -> Result<(Self, usize), SerializationError> {
        match buffer {
            [lo, hi, ..] => Ok((Key(u16::from_le_bytes([*lo, *hi])), 2)),
            _ => Err(SerializationError::BufferTooSmall),
        }
    }

    fn get_len(_buffer: &[u8]) -> Result<usize, SerializationError> {
        Ok(2)
    }
}

/// The owners of the key ranges (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    /// Boot and reboot bookkeeping.
    System,
    /// Network and MQTT health counters.
    Supervisor,
    /// ESP-NOW pairing, peer keys, replay counters.
    NetNow,
    /// MQTT session state.
    Mqtt,
    /// Update and rollback bookkeeping.
    Ota,
    /// Runtime overrides of configuration settings.
    Config,
    /// Appliance profiles.
    Profile,
    /// Diagnostics such as the storage stress test.
    Diagnostics,
    /// Unit tests only.
    Test,
}

impl Subsystem {
    /// The subsystem owning a raw key number; `None` for reserved and unassigned numbers.
    pub const fn of(raw: u16) -> Option<Subsystem> {
        Some(match raw {
            0x0001..=0x00FF => Subsystem::System,
            0x0100..=0x01FF => Subsystem::Supervisor,
            0x0200..=0x02FF => Subsystem::NetNow,
            0x0300..=0x03FF => Subsystem::Mqtt,
            0x0400..=0x04FF => Subsystem::Ota,
            0x0500..=0x05FF => Subsystem::Config,
            0x1000..=0x1FFF => Subsystem::Profile,
            0xF000..=0xFEFF => Subsystem::Diagnostics,
            0xFF00..=0xFFFE => Subsystem::Test,
            _ => return None,
        })
    }
}

/// The declared type and payload length bounds of a well-known key. Writes that break them are
/// refused before anything touches flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The key.
    pub key: Key,
    /// Name for logs and diagnostics.
    pub name: &'static str,
    /// The only type this key may hold.
    pub kind: ValueKind,
    /// Smallest payload length in bytes (for byte strings and text).
    pub min_len: usize,
    /// Largest payload length in bytes (for byte strings and text).
    pub max_len: usize,
}

/// Why the device last rebooted on purpose: short UTF-8 text, at most 64 bytes.
pub const REBOOT_REASON: Key = Key(0x0001);
/// Number of boots: `u32`.
pub const BOOT_COUNT: Key = Key(0x0002);
/// Number of network connection losses: `u32`.
pub const CONNLOST: Key = Key(0x0100);
/// Number of MQTT session losses: `u32`.
pub const MQTTLOST: Key = Key(0x0101);
/// Reserved for the storage stress test: a blob of 8 to 64 bytes.
pub const STRESS: Key = Key(0xF000);
/// ESP-NOW peripheral: its pairing, central MAC (6 bytes) then channel (1 byte).
pub const NETNOW_PAIRING: Key = Key(0x0200);
/// The highest `issued` time of a signed envelope accepted (u64 LE): the anti-replay mark of
/// updates, config pushes and signed commands.
pub const OTA_LAST_ISSUED: Key = Key(0x0400);
/// The signed manifest of the update being received (kept to resume after a reboot).
pub const OTA_JOB: Key = Key(0x0401);
/// The offset of the next chunk of that update.
pub const OTA_NEXT: Key = Key(0x0402);
/// Consecutive runs that ended in a fault of the running code (a panic, a watchdog reset, a
/// runtime or appliance fault) without a healthy period between them: `u32`. Safe mode
/// starts when it reaches the `safemode` limit.
pub const FAULTY_BOOTS: Key = Key(0x0403);
/// The faults counted in [`FAULTY_BOOTS`], newest last, as short words separated by spaces
/// (`watchdog panic panic`), for the safe-mode report: UTF-8, at most 64 bytes.
pub const BOOT_FAULTS: Key = Key(0x0404);
/// The size (u32 LE) and SHA-256 of the image an update installed in slot 0, 36 bytes; a
/// rollback to that slot checks it first.
pub const OTA_SLOT0_IMAGE: Key = Key(0x0405);
/// The same for slot 1.
pub const OTA_SLOT1_IMAGE: Key = Key(0x0406);

/// The pushed config on trial (see `hearth_runtime::update`): the CRC-32 of its canonical text
/// (u32 LE), then the boots it has started (u32 LE), 8 bytes. Absent: no config on trial.
pub const CONFIG_TRIAL: Key = Key(0x0407);

/// The key recording the image an update installed in `slot` (0 or 1).
pub const fn ota_slot_image(slot: u8) -> Option<Key> {
    match slot {
        0 => Some(OTA_SLOT0_IMAGE),
        1 => Some(OTA_SLOT1_IMAGE),
        _ => None,
    }
}
/// ESP-NOW (v3): this device's counter record, its random epoch (12 bytes) then its counter
/// reservation in that epoch (little-endian `u64`), 20 bytes: counters below the reservation
/// may have been used. Builds before epochs stored the reservation alone (8 bytes).
pub const NETNOW_COUNTER: Key = Key(0x0201);
/// ESP-NOW central (v3): the first of [`NETNOW_PEER_SLOTS`] keys holding one peer each, sender id
/// (6 bytes), its epoch (12 bytes), then its last accepted counter (little-endian `u64`), 26
/// bytes.
pub const NETNOW_PEER_FIRST: Key = Key(0x0220);
/// How many peer keys follow [`NETNOW_PEER_FIRST`] (`0x0220..=0x023F`).
pub const NETNOW_PEER_SLOTS: u16 = 32;

/// The key of central peer slot `i` (`None` beyond [`NETNOW_PEER_SLOTS`]).
pub const fn netnow_peer(i: u16) -> Option<Key> {
    if i < NETNOW_PEER_SLOTS {
        Some(Key(NETNOW_PEER_FIRST.0 + i))
    } else {
        None
    }
}

/// Every well-known key with its declared type and bounds.
pub const WELL_KNOWN: &[KeySpec] = &[
    KeySpec {
        key: REBOOT_REASON,
        name: "REBOOT_REASON",
        kind: ValueKind::Str,
        min_len: 0,
        max_len: 64,
    },
    KeySpec {
        key: BOOT_COUNT,
        name: "BOOT_COUNT",
        kind: ValueKind::U32,
        min_len: 4,
        max_len: 4,
    },
    KeySpec {
        key: CONNLOST,
        name: "CONNLOST",
        kind: ValueKind::U32,
        min_len: 4,
        max_len: 4,
    },
    KeySpec {
        key: MQTTLOST,
        name: "MQTTLOST",
        kind: ValueKind::U32,
        min_len: 4,
        max_len: 4,
    },
    KeySpec {
        key: NETNOW_PAIRING,
        name: "NETNOW_PAIRING",
        kind: ValueKind::Bytes,
        min_len: 7,
        max_len: 7,
    },
    KeySpec {
        key: NETNOW_COUNTER,
        name: "NETNOW_COUNTER",
        kind: ValueKind::Bytes,
        min_len: 8,
        max_len: 20,
    },
    KeySpec {
        key: OTA_LAST_ISSUED,
        name: "OTA_LAST_ISSUED",
        kind: ValueKind::Bytes,
        min_len: 8,
        max_len: 8,
    },
    KeySpec {
        key: OTA_JOB,
        name: "OTA_JOB",
        kind: ValueKind::Bytes,
        min_len: 1,
        max_len: 256,
    },
    KeySpec {
        key: OTA_NEXT,
        name: "OTA_NEXT",
        kind: ValueKind::U32,
        min_len: 4,
        max_len: 4,
    },
    KeySpec {
        key: FAULTY_BOOTS,
        name: "FAULTY_BOOTS",
        kind: ValueKind::U32,
        min_len: 4,
        max_len: 4,
    },
    KeySpec {
        key: OTA_SLOT0_IMAGE,
        name: "OTA_SLOT0_IMAGE",
        kind: ValueKind::Bytes,
        min_len: 36,
        max_len: 36,
    },
    KeySpec {
        key: OTA_SLOT1_IMAGE,
        name: "OTA_SLOT1_IMAGE",
        kind: ValueKind::Bytes,
        min_len: 36,
        max_len: 36,
    },
    KeySpec {
        key: CONFIG_TRIAL,
        name: "CONFIG_TRIAL",
        kind: ValueKind::Bytes,
        min_len: 8,
        max_len: 8,
    },
    KeySpec {
        key: BOOT_FAULTS,
        name: "BOOT_FAULTS",
        kind: ValueKind::Str,
        min_len: 0,
        max_len: 64,
    },
    KeySpec {
        key: STRESS,
        name: "STRESS",
        kind: ValueKind::Bytes,
        min_len: 8,
        max_len: 64,
    },
];

/// Upper bound used for the per-key cache of the store: the well-known keys plus room.
pub(crate) const KEY_CACHE_SLOTS: usize = 16;

const _: () = assert!(WELL_KNOWN.len() <= KEY_CACHE_SLOTS);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::MAX_VALUE_LEN;

    #[test]
    fn well_known_keys_are_unique_in_range_and_sane() {
        for (i, a) in WELL_KNOWN.iter().enumerate() {
            assert!(
                a.key.subsystem().is_some(),
                "{} outside every range",
                a.name
            );
            assert_ne!(a.key.subsystem(), Some(Subsystem::Test), "{}", a.name);
            assert!(a.min_len <= a.max_len && a.max_len <= MAX_VALUE_LEN);
            if a.kind == ValueKind::U32 {
                assert_eq!((a.min_len, a.max_len), (4, 4));
            }
            for b in &WELL_KNOWN[i + 1..] {
                assert_ne!(a.key, b.key, "{} and {} share a number", a.name, b.name);
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn subsystems_match_the_documented_ranges() {
        assert_eq!(REBOOT_REASON.subsystem(), Some(Subsystem::System));
        assert_eq!(BOOT_COUNT.subsystem(), Some(Subsystem::System));
        assert_eq!(CONNLOST.subsystem(), Some(Subsystem::Supervisor));
        assert_eq!(MQTTLOST.subsystem(), Some(Subsystem::Supervisor));
        assert_eq!(STRESS.subsystem(), Some(Subsystem::Diagnostics));
        assert_eq!(Subsystem::of(0x0000), None);
        assert_eq!(Subsystem::of(0xFFFF), None);
        assert_eq!(Subsystem::of(0x0800), None);
    }

    #[test]
    fn key_wire_format_is_two_bytes_le() {
        use sequential_storage::map::Key as _;
        let mut buf = [0u8; 4];
        assert_eq!(CONNLOST.serialize_into(&mut buf), Ok(2));
        assert_eq!(&buf[..2], &[0x00, 0x01]);
        assert_eq!(Key::deserialize_from(&buf), Ok((CONNLOST, 2)));
        assert!(Key::deserialize_from(&buf[..1]).is_err());
        assert!(CONNLOST.serialize_into(&mut buf[..1]).is_err());
    }

    #[test]
    fn display_names_well_known_keys() {
        assert_eq!(format!("{BOOT_COUNT}"), "BOOT_COUNT (0x0002)");
        assert_eq!(format!("{}", Key::new(0x1234)), "key 0x1234");
    }
}
