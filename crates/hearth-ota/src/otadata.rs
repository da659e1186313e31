//! The ESP-IDF `otadata` partition: which of two app slots boots, and the state of its image.
//!
//! Two erase sectors each hold one 32-byte entry (`esp_ota_select_entry_t`):
//!
//! ```text
//! ota_seq u32 LE | seq_label [20] (0xFF) | ota_state u32 LE | crc u32 LE
//! ```
//!
//! `crc` is the CRC-32 (IEEE, reflected) of the four `ota_seq` bytes continued from
//! `0xFFFFFFFF` (`esp_rom_crc32_le(UINT32_MAX, ...)`, Python's `binascii.crc32(seq, 0xFFFFFFFF)`).
//! An entry is valid when `ota_seq` is not `0xFFFFFFFF` and the CRC matches. The valid entry with
//! the highest `ota_seq` wins and selects slot `(ota_seq - 1) % 2`; with none valid, slot 0
//! boots. This is what ESP-IDF's bootloader does, and what the simulator's bootloader does.
//!
//! **Writes never destroy the entry in force.** ESP-IDF rewrites the active entry in place to
//! change its state (an erase, then a write: a power cut in between loses the selection and can
//! boot the older slot). Hearth always writes a *new* entry, in the sector that does not hold
//! the winning one, with a higher sequence number that selects the wanted slot: first everything
//! but the CRC, then the CRC. A power cut at any point leaves either the old winner (the new
//! entry is erased, torn or CRC-less) or the complete new one.

/// Length of one entry.
pub const ENTRY_LEN: usize = 32;
/// Offset of the second entry (the second erase sector).
pub const SECOND_SECTOR: u32 = 0x1000;
/// Length of the otadata partition (two sectors).
pub const OTADATA_LEN: u32 = 0x2000;

/// The image state of an entry (`esp_ota_img_states_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Just written; its first boot has not happened.
    New,
    /// Booted once on trial, not yet confirmed healthy.
    PendingVerify,
    /// Confirmed healthy.
    Valid,
    /// Known bad.
    Invalid,
    /// Failed its trial and was rolled back.
    Aborted,
    /// No state (`0xFFFFFFFF`: written by tools that do not track states, or erased).
    Undefined,
}

impl State {
    /// The value stored in flash.
    pub const fn raw(self) -> u32 {
        match self {
            Self::New => 0,
            Self::PendingVerify => 1,
            Self::Valid => 2,
            Self::Invalid => 3,
            Self::Aborted => 4,
            Self::Undefined => u32::MAX,
        }
    }

    /// The state of a stored value; unknown values read as `Undefined`, as in ESP-IDF.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::New,
            1 => Self::PendingVerify,
            2 => Self::Valid,
            3 => Self::Invalid,
            4 => Self::Aborted,
            _ => Self::Undefined,
        }
    }

    /// What it means, for a person reading the device's log.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::New => "new, not started yet",
            Self::PendingVerify => "on trial until it confirms itself",
            Self::Valid => "confirmed",
            Self::Invalid => "refused",
            Self::Aborted => "rolled back",
            // The erased entry: the image as it was flashed, never updated over the air.
            Self::Undefined => "as flashed, never updated",
        }
    }

    /// A word for logs and the status topic.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::PendingVerify => "pending-verify",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Aborted => "aborted",
            Self::Undefined => "undefined",
        }
    }
}

/// A valid entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number (≥ 1).
    pub seq: u32,
    /// Its image state.
    pub state: State,
}

impl Entry {
    /// The slot it selects.
    pub const fn slot(&self) -> u8 {
        ((self.seq - 1) % 2) as u8
    }
}

/// CRC-32 (IEEE 802.3 / zlib, reflected polynomial 0xEDB88320) of `data`, continued from a
/// previous CRC `prev` (0 to start), exactly as zlib's `crc32(prev, data)`.
pub fn crc32(prev: u32, data: &[u8]) -> u32 {
    let mut crc = !prev;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The CRC ESP-IDF stores for a sequence number: [`crc32`] continued from `0xFFFFFFFF`.
pub fn seq_crc(seq: u32) -> u32 {
    crc32(u32::MAX, &seq.to_le_bytes())
}

/// Decode one stored entry; `None` unless valid.
pub fn decode(bytes: &[u8; ENTRY_LEN]) -> Option<Entry> {
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let seq = word(0);
    if seq == u32::MAX || seq == 0 || word(28) != seq_crc(seq) {
        return None;
    }
    Some(Entry {
        seq,
        state: State::from_raw(word(24)),
    })
}

/// Encode an entry: everything but the CRC (still erased), and the CRC word.
pub fn encode(entry: Entry) -> ([u8; ENTRY_LEN], [u8; 4]) {
    let mut bytes = [0xFF; ENTRY_LEN];
    bytes[0..4].copy_from_slice(&entry.seq.to_le_bytes());
    bytes[24..28].copy_from_slice(&entry.state.raw().to_le_bytes());
    (bytes, seq_crc(entry.seq).to_le_bytes())
}

/// The winner of the two sectors' entries, and the index (0 or 1) of its sector.
pub fn select(entries: [Option<Entry>; 2]) -> Option<(usize, Entry)> {
    match entries {
        [Some(a), Some(b)] => Some(if b.seq > a.seq { (1, b) } else { (0, a) }),
        [Some(a), None] => Some((0, a)),
        [None, Some(b)] => Some((1, b)),
        [None, None] => None,
    }
}

/// The slot that boots: the winner's, else slot 0.
pub fn boot_slot(entries: [Option<Entry>; 2]) -> u8 {
    select(entries).map_or(0, |(_, e)| e.slot())
}

/// The entry to write so that `slot` boots next with `state`, and the sector (0 or 1) to
/// write it to: the sector *not* holding the current winner, and the lowest sequence number
/// above the winner's that selects `slot` and whose CRC is not `0xFFFFFFFF` (so a torn write
/// that left the CRC erased can never look valid).
pub fn next_entry(entries: [Option<Entry>; 2], slot: u8, state: State) -> (usize, Entry) {
    let (sector, base) = match select(entries) {
        Some((i, e)) => (1 - i, e.seq),
        None => (0, 0),
    };
    let mut seq = base + 1;
    while (seq - 1) % 2 != slot as u32 % 2 || seq_crc(seq) == u32::MAX {
        seq += 1;
    }
    (sector, Entry { seq, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(0, b""), 0);
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"12345"), b"6789"), 0xCBF4_3926);
    }

    #[test]
    fn crc_matches_esp_idf() {
        // binascii.crc32(struct.pack('<I', seq), 0xFFFFFFFF), as ESP-IDF's otatool computes it.
        assert_eq!(seq_crc(1), 0x4743_989a);
        assert_eq!(seq_crc(2), 0x55f6_3774);
        assert_eq!(seq_crc(3), 0xed4a_5011);
    }

    #[test]
    fn entries_round_trip_and_erased_or_torn_ones_are_invalid() {
        let e = Entry {
            seq: 5,
            state: State::PendingVerify,
        };
        let (mut bytes, crc) = encode(e);
        assert_eq!(
            decode(&bytes),
            None,
            "without its CRC an entry is not valid"
        );
        bytes[28..32].copy_from_slice(&crc);
        assert_eq!(decode(&bytes), Some(e));
        assert_eq!(decode(&[0xFF; 32]), None);
        let mut torn = bytes;
        torn[0] = 0x04;
        assert_eq!(decode(&torn), None);
        let mut odd_state = bytes;
        odd_state[24] = 9;
        assert_eq!(decode(&odd_state).unwrap().state, State::Undefined);
    }

    #[test]
    fn the_highest_sequence_selects_the_slot() {
        let e = |seq| {
            Some(Entry {
                seq,
                state: State::Valid,
            })
        };
        assert_eq!(boot_slot([None, None]), 0);
        assert_eq!(boot_slot([e(1), None]), 0);
        assert_eq!(boot_slot([e(1), e(2)]), 1);
        assert_eq!(boot_slot([e(3), e(2)]), 0);
        assert_eq!(boot_slot([None, e(4)]), 1);
    }

    #[test]
    fn a_new_entry_goes_to_the_other_sector_and_selects_the_slot() {
        let e = |seq| {
            Some(Entry {
                seq,
                state: State::Valid,
            })
        };
        for entries in [
            [None, None],
            [e(1), None],
            [e(1), e(2)],
            [e(7), e(6)],
            [None, e(4)],
        ] {
            for slot in 0..2u8 {
                let (sector, new) = next_entry(entries, slot, State::New);
                assert_eq!(new.slot(), slot);
                assert_eq!(new.state, State::New);
                if let Some((winner, w)) = select(entries) {
                    assert_ne!(sector, winner);
                    assert!(new.seq > w.seq && new.seq <= w.seq + 2);
                }
                let mut after = entries;
                after[sector] = Some(new);
                assert_eq!(boot_slot(after), slot);
            }
        }
    }
}
