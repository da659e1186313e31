//! The on-flash form of `config.txt` in the firmware's `config` data partition, shared by the
//! host tool that writes it (`hearth flash`) and the firmware that reads it at boot:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 4 | magic `HCFG` |
//! | 4 | 4 | text length N, little-endian |
//! | 8 | 4 | CRC-32 (IEEE 802.3, as zlib) of the text, little-endian |
//! | 12 | N | the UTF-8 text of `config.txt` |
//!
//! The rest of the partition is erased flash (0xFF). An erased partition, a wrong magic, a
//! length past the partition, a CRC mismatch and non-UTF-8 text are distinct errors, so the
//! device can say exactly why it has no config.
//!
//! # Two copies: a pushed config is installed atomically and the previous one is kept
//!
//! `hearth flash` writes one blob at the start of the partition and erases the rest. A config
//! pushed over MQTT (`hearth config push`) is written by the device as a second blob in the
//! partition's second sector ([`SECOND_COPY`]); the second copy, when valid, is the one in
//! force. After a push the first copy always holds the config that was in force before it,
//! so a pushed config that fails its trial can be undone by erasing the second copy
//! ([`plan_restore`]). A power cut can interrupt any write, so a push never touches the copy
//! in force before the new one is complete ([`plan_push`]):
//!
//! - the second copy is not valid (the first is in force, and is the previous config): write
//!   the second; once it is complete it is in force, and until then the first still is;
//! - the second copy is in force (an earlier push): first copy it into the first sector
//!   (while it stays in force), then erase and write the second; during that the first,
//!   now the same config, is in force.
//!
//! Either way a cut leaves one complete config, the old or the new, and a complete push leaves
//! the old one in the first copy.

use alloc::vec::Vec;
use core::fmt;

/// The magic at the start of a config blob.
pub const MAGIC: [u8; 4] = *b"HCFG";
/// Bytes before the text.
pub const HEADER_LEN: usize = 12;

/// Why a config partition does not hold a usable config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobError {
    /// The partition is erased: no config was ever written.
    Empty,
    /// The partition holds something else.
    BadMagic,
    /// The declared length does not fit the partition.
    TooLong {
        /// Declared text length.
        declared: usize,
        /// Room for text in the partition.
        room: usize,
    },
    /// The text does not match its checksum (interrupted write or corruption).
    BadChecksum,
    /// The text is not UTF-8.
    NotUtf8,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str(
                "the config partition is empty (flash a config with `hearth flash --config FILE`)",
            ),
            Self::BadMagic => f.write_str("the config partition does not hold a Hearth config"),
            Self::TooLong { declared, room } => {
                write!(
                    f,
                    "the config claims {declared} bytes but the partition holds at most {room}"
                )
            }
            Self::BadChecksum => {
                f.write_str("the config fails its checksum (interrupted write or corrupted flash)")
            }
            Self::NotUtf8 => f.write_str("the config is not UTF-8 text"),
        }
    }
}

impl core::error::Error for BlobError {}

/// CRC-32 (IEEE 802.3, reflected, as zlib and PNG), bit by bit: small, and fast enough for a
/// few kilobytes once per boot.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// The blob for `text`.
pub fn encode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + bytes.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(bytes).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The text stored in `partition` (the whole partition's bytes, or at least its first part).
pub fn decode(partition: &[u8]) -> Result<&str, BlobError> {
    let header = partition.get(..HEADER_LEN).ok_or(BlobError::BadMagic)?;
    if header[..4] == [0xFF; 4] {
        return Err(BlobError::Empty);
    }
    if header[..4] != MAGIC {
        return Err(BlobError::BadMagic);
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let declared = word(4) as usize;
    let room = partition.len() - HEADER_LEN;
    let text = partition
        .get(HEADER_LEN..HEADER_LEN.saturating_add(declared))
        .ok_or(BlobError::TooLong { declared, room })?;
    if crc32(text) != word(8) {
        return Err(BlobError::BadChecksum);
    }
    core::str::from_utf8(text).map_err(|_| BlobError::NotUtf8)
}

/// The declared total size of the blob at the start of `partition`, so a reader can fetch the
/// header first and then exactly the bytes it needs.
pub fn declared_len(header: &[u8; HEADER_LEN]) -> Option<usize> {
    (header[..4] == MAGIC).then(|| {
        HEADER_LEN + u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize
    })
}

/// Offset of the second copy (the partition's second 4 KiB sector).
pub const SECOND_COPY: usize = 0x1000;
/// The most bytes one copy may take (a pushed config fits one sector).
pub const COPY_LEN: usize = 0x1000;

/// Which of the two copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigCopy {
    /// At the start of the partition.
    First,
    /// At [`SECOND_COPY`].
    Second,
}

impl ConfigCopy {
    /// Its offset in the partition.
    pub const fn offset(self) -> usize {
        match self {
            Self::First => 0,
            Self::Second => SECOND_COPY,
        }
    }
}

/// The config in force: the second copy when it is valid, else the first copy (whose error
/// is the one to report when neither is).
pub fn in_force<'a>(
    first: Result<&'a str, BlobError>,
    second: Result<&'a str, BlobError>,
) -> (ConfigCopy, Result<&'a str, BlobError>) {
    match second {
        Ok(text) => (ConfigCopy::Second, Ok(text)),
        Err(_) => (ConfigCopy::First, first),
    }
}

/// How to install a new config (see the module documentation): `Ok(true)` when the second
/// copy (in force) must first be copied into the first sector, then the second copy is
/// written. `first_len` is the length of the first copy's blob; a first copy written by
/// `hearth flash` that reaches into the second sector cannot be kept whole while the second
/// is written, so that case is refused.
pub fn plan_push(
    second_valid: bool,
    first_len: usize,
    new_len: usize,
) -> Result<bool, &'static str> {
    if new_len > COPY_LEN {
        return Err("the config is too long to be pushed (at most 4084 bytes of text)");
    }
    if second_valid {
        Ok(true)
    } else if first_len > SECOND_COPY {
        Err("the config in force fills the whole partition: shorten it and flash it by cable once")
    } else {
        Ok(false)
    }
}

/// How to put the previous config back: erase the second copy, which is possible only when
/// it is the one in force and the first copy (the previous config) is whole.
pub fn plan_restore(first_valid: bool, second_valid: bool) -> Result<ConfigCopy, &'static str> {
    match (first_valid, second_valid) {
        (true, true) => Ok(ConfigCopy::Second),
        (_, false) => Err("no pushed config is in force: nothing to go back from"),
        (false, true) => Err("the previous config in the first copy is not whole"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apply a push plan to a partition image, stopping after `steps` flash operations
    /// (erase, write, erase, write) to model a power cut.
    fn install(partition: &mut [u8], text: &str, steps: usize) -> Result<(), &'static str> {
        let second = decode(&partition[SECOND_COPY..]).map(alloc::string::String::from);
        let first_len = declared_len(partition[..HEADER_LEN].try_into().unwrap()).unwrap_or(0);
        let blob = encode(text);
        let keep = plan_push(second.is_ok(), first_len, blob.len())?;
        let mut ops = 0;
        let mut op = |f: &mut dyn FnMut()| {
            if ops < steps {
                f();
                ops += 1;
            }
        };
        if keep {
            let old = encode(second.as_deref().unwrap());
            op(&mut || partition[..COPY_LEN].fill(0xFF));
            op(&mut || partition[..old.len()].copy_from_slice(&old));
        }
        op(&mut || partition[SECOND_COPY..SECOND_COPY + COPY_LEN].fill(0xFF));
        op(&mut || partition[SECOND_COPY..SECOND_COPY + blob.len()].copy_from_slice(&blob));
        Ok(())
    }

    fn restore(partition: &mut [u8]) -> Result<(), &'static str> {
        let first = decode(partition).is_ok();
        let second = decode(&partition[SECOND_COPY..]).is_ok();
        let erase = plan_restore(first, second)?;
        partition[erase.offset()..erase.offset() + COPY_LEN].fill(0xFF);
        Ok(())
    }

    fn current(partition: &[u8]) -> Result<&str, BlobError> {
        in_force(decode(partition), decode(&partition[SECOND_COPY..])).1
    }

    #[test]
    fn a_push_is_atomic_at_every_step_and_keeps_the_previous_config() {
        let mut p = alloc::vec![0xFF; 2 * COPY_LEN];
        let flashed = encode("v0");
        p[..flashed.len()].copy_from_slice(&flashed);
        let mut in_force_text = alloc::string::String::from("v0");
        for (i, next) in ["v1", "v2", "v3", "v4"].into_iter().enumerate() {
            // A cut after each step keeps the old config or installs the new one, whole.
            for steps in 0..4 {
                let mut cut = p.clone();
                install(&mut cut, next, steps).unwrap();
                let seen = current(&cut).unwrap();
                assert!(
                    seen == in_force_text || seen == next,
                    "push {i}, {steps} steps: {seen}"
                );
                if steps == 0 {
                    assert_eq!(seen, in_force_text);
                }
            }
            install(&mut p, next, 4).unwrap();
            assert_eq!(current(&p), Ok(next));
            // The previous config is the first copy: restoring brings it back.
            let mut back = p.clone();
            restore(&mut back).unwrap();
            assert_eq!(current(&back), Ok(in_force_text.as_str()));
            in_force_text = next.into();
        }
        // After a restore the next push keeps the restored config as the previous one.
        restore(&mut p).unwrap();
        assert_eq!(current(&p), Ok("v3"));
        install(&mut p, "v5", 4).unwrap();
        restore(&mut p).unwrap();
        assert_eq!(current(&p), Ok("v3"));
        // Nothing pushed in force: nothing to restore.
        assert!(restore(&mut p).is_err());
    }

    #[test]
    fn a_torn_copy_never_wins() {
        let mut p = alloc::vec![0xFF; 2 * COPY_LEN];
        let first = encode("old");
        p[..first.len()].copy_from_slice(&first);
        let new = encode("new config");
        // Half of the second copy written: its checksum fails, the first is in force.
        p[SECOND_COPY..SECOND_COPY + new.len() / 2].copy_from_slice(&new[..new.len() / 2]);
        assert_eq!(current(&p), Ok("old"));
        assert_eq!(
            in_force(decode(&p), decode(&p[SECOND_COPY..])).0,
            ConfigCopy::First
        );
    }

    #[test]
    fn pushes_that_cannot_be_atomic_are_refused() {
        assert!(plan_push(false, 5000, 100).is_err());
        assert_eq!(plan_push(true, 5000, 100), Ok(true));
        assert!(plan_push(false, 100, COPY_LEN + 1).is_err());
        assert_eq!(plan_push(false, 100, 100), Ok(false));
        assert_eq!(plan_restore(true, true), Ok(ConfigCopy::Second));
        assert!(plan_restore(false, true).is_err());
        assert!(plan_restore(true, false).is_err());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip_inside_an_erased_partition() {
        let text = "profile weather\nssid My Net\n";
        let mut partition = alloc::vec![0xFF; 8192];
        let blob = encode(text);
        partition[..blob.len()].copy_from_slice(&blob);
        assert_eq!(decode(&partition), Ok(text));
        let header: [u8; HEADER_LEN] = partition[..HEADER_LEN].try_into().unwrap();
        assert_eq!(declared_len(&header), Some(blob.len()));
    }

    #[test]
    fn every_failure_is_named() {
        assert_eq!(decode(&[0xFF; 64]), Err(BlobError::Empty));
        assert_eq!(decode(&[0u8; 64]), Err(BlobError::BadMagic));
        assert_eq!(decode(b"HCF"), Err(BlobError::BadMagic));
        let mut blob = encode("abc");
        blob[4] = 200;
        assert_eq!(
            decode(&blob),
            Err(BlobError::TooLong {
                declared: 200,
                room: 3
            })
        );
        let mut blob = encode("abc");
        blob[HEADER_LEN] = b'x';
        assert_eq!(decode(&blob), Err(BlobError::BadChecksum));
        let mut blob = encode("ab");
        blob[HEADER_LEN] = 0xC3;
        blob[HEADER_LEN + 1] = 0x28;
        let crc = crc32(&blob[HEADER_LEN..]).to_le_bytes();
        blob[8..12].copy_from_slice(&crc);
        assert_eq!(decode(&blob), Err(BlobError::NotUtf8));
    }

    #[test]
    fn decode_never_panics_on_noise() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..200 {
            let mut bytes = alloc::vec![0u8; len];
            for b in bytes.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            if len >= 4 && len % 3 == 0 {
                bytes[..4].copy_from_slice(&MAGIC);
            }
            let _ = decode(&bytes);
        }
    }
}
