//! Standard base64 (RFC 4648 §4, `+/` alphabet, `=` padding), for the certificate lines of
//! `config.txt` (`mqttca`, `mqttclientcert`, `mqttclientkey`): a DER blob has to fit on one
//! `key value` line. Written here because `hearth-config` has no dependencies (it is built
//! into the firmware's config reader); it is a few dozen lines and fully tested below.

use alloc::string::String;
use alloc::vec::Vec;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Why a text is not base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A character outside the alphabet (at this byte offset); spaces included.
    BadCharacter(usize),
    /// The length (without padding) leaves a single dangling character, or the padding is
    /// wrong (too much, not at the end, or the unused bits are not zero).
    BadLength,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::BadCharacter(at) => {
                write!(f, "character {} is not base64 (A-Z a-z 0-9 + / =)", at + 1)
            }
            DecodeError::BadLength => f.write_str("the base64 text is truncated or badly padded"),
        }
    }
}

/// Decode standard base64. Padding is optional, but if present must be right; no
/// whitespace is accepted (a config value is one line, and a stray space means a bad paste).
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = text.as_bytes();
    let body_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (body, padding) = bytes.split_at(body_len);
    if let Some(at) = body.iter().position(|&c| value(c).is_none()) {
        return Err(DecodeError::BadCharacter(at));
    }
    if padding.len() > 2 || (!padding.is_empty() && !bytes.len().is_multiple_of(4)) {
        return Err(DecodeError::BadLength);
    }
    if body.len() % 4 == 1 {
        return Err(DecodeError::BadLength);
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for (ci, chunk) in body.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c).ok_or(DecodeError::BadCharacter(ci * 4 + i))? << (18 - 6 * i);
        }
        let produced = chunk.len() * 6 / 8;
        let all = n.to_be_bytes();
        out.extend_from_slice(&all[1..1 + produced]);
        // The bits after the last whole byte must be zero (canonical encoding).
        let used_bits = produced * 8;
        if chunk.len() < 4 && n & ((1u32 << (24 - used_bits)) - 1) != 0 {
            return Err(DecodeError::BadLength);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
            assert_eq!(
                decode(coded.trim_end_matches('=')).unwrap(),
                plain.as_bytes()
            );
        }
    }

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in 0..all.len() {
            assert_eq!(decode(&encode(&all[..len])).unwrap(), &all[..len]);
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(decode("Zm9v YmFy"), Err(DecodeError::BadCharacter(4)));
        assert_eq!(decode("Zm9v-mFy"), Err(DecodeError::BadCharacter(4)));
        assert_eq!(decode("Z"), Err(DecodeError::BadLength));
        assert_eq!(decode("Zg==="), Err(DecodeError::BadLength));
        assert_eq!(decode("Zg="), Err(DecodeError::BadLength));
        assert_eq!(
            decode("Zh=="),
            Err(DecodeError::BadLength),
            "unused bits set"
        );
        assert_eq!(decode("Zg==Zg=="), Err(DecodeError::BadCharacter(2)));
    }
}
