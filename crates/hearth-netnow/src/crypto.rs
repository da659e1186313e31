//! The cryptographic primitives of wire format v2: key preparation from a PSK, group ids, the
//! reference's truncated tag, a constant-time tag comparison, and AES-256-CBC over whole blocks.
//!
//! These reproduce the reference byte for byte, weaknesses included (one key for both cipher and
//! tag, zero-padded short PSKs, a non-standard HMAC variant); they exist so that Hearth can talk
//! to MicroPython devices. The single place where v2 does better than the reference without
//! changing the wire is [`tag_matches`], which compares in constant time.

use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes256, Block};
use sha2::{Digest, Sha256};

use crate::{BLOCK_LEN, GROUP_LEN, IV_LEN, KEY_LEN, TAG_LEN};

/// The 32-byte secret shared by every member of a v2 network. It keys both AES-256 and the tag.
///
/// `Debug` does not print the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Prepares a key from a pre-shared key as the reference does: a PSK of at most 32 bytes is
    /// right-padded with zeros to 32 bytes; a longer one is replaced by its SHA-256.
    ///
    /// A short passphrase therefore gives a low-entropy key (reference weakness §13.4); v2 keeps
    /// this for compatibility.
    pub fn from_psk(psk: &[u8]) -> Key {
        let mut key = [0u8; KEY_LEN];
        if psk.len() <= KEY_LEN {
            key[..psk.len()].copy_from_slice(psk);
        } else {
            key = sha256(&[psk]);
        }
        Key(key)
    }

    /// Uses 32 bytes as the key unchanged.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The 8-byte group id carried in every frame: the first 8 bytes of SHA-256 of the group name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub [u8; GROUP_LEN]);

impl GroupId {
    /// The id of the group called `name` (UTF-8 bytes, as configured).
    pub fn from_name(name: &[u8]) -> GroupId {
        let digest = sha256(&[name]);
        let mut id = [0u8; GROUP_LEN];
        id.copy_from_slice(&digest[..GROUP_LEN]);
        GroupId(id)
    }
}

/// SHA-256 of the concatenation of `parts`.
fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize());
    out
}

/// The reference's tag over `message` (in a frame: IV ‖ ciphertext).
///
/// It has the shape of HMAC-SHA256, but the pads are as long as the 32-byte key instead of the
/// 64-byte SHA-256 block, so it is *not* RFC 2104 and the `hmac` crate cannot compute it:
/// `SHA256((key ⊕ 0x5c…) ‖ SHA256((key ⊕ 0x36…) ‖ message))`, truncated to 12 bytes.
pub fn tag(key: &Key, message: &[u8]) -> [u8; TAG_LEN] {
    let mut inner_pad = [0u8; KEY_LEN];
    let mut outer_pad = [0u8; KEY_LEN];
    for (i, k) in key.0.iter().enumerate() {
        inner_pad[i] = k ^ 0x36;
        outer_pad[i] = k ^ 0x5c;
    }
    let inner = sha256(&[&inner_pad, message]);
    let outer = sha256(&[&outer_pad, &inner]);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&outer[..TAG_LEN]);
    out
}

/// Compares two tags in constant time: every byte is looked at whatever the first difference.
///
/// The reference compares with an ordinary early-exit comparison, which leaks through timing
/// how many leading bytes of a forged tag are right (weakness §13.4). This is the fix.
pub fn tag_matches(expected: &[u8; TAG_LEN], received: &[u8; TAG_LEN]) -> bool {
    let mut diff = 0u8;
    for (a, b) in expected.iter().zip(received.iter()) {
        diff |= a ^ b;
    }
    // Keep the optimiser from turning the accumulation back into an early exit.
    core::hint::black_box(diff) == 0
}

/// Encrypts `data` in place with AES-256-CBC. `data.len()` must be a multiple of 16 (the caller
/// pads); a trailing partial block would be left untouched, so callers never pass one.
pub(crate) fn cbc_encrypt(key: &Key, iv: &[u8; IV_LEN], data: &mut [u8]) {
    debug_assert!(data.len().is_multiple_of(BLOCK_LEN));
    let cipher = Aes256::new(&key.0.into());
    let mut chain = *iv;
    for chunk in data.chunks_exact_mut(BLOCK_LEN) {
        let mut block = Block::default();
        for i in 0..BLOCK_LEN {
            block[i] = chunk[i] ^ chain[i];
        }
        cipher.encrypt_block(&mut block);
        chunk.copy_from_slice(&block);
        chain.copy_from_slice(&block);
    }
}

/// Decrypts `data` in place with AES-256-CBC; same length rule as [`cbc_encrypt`].
pub(crate) fn cbc_decrypt(key: &Key, iv: &[u8; IV_LEN], data: &mut [u8]) {
    debug_assert!(data.len().is_multiple_of(BLOCK_LEN));
    let cipher = Aes256::new(&key.0.into());
    let mut chain = *iv;
    for chunk in data.chunks_exact_mut(BLOCK_LEN) {
        let mut block = Block::default();
        block.copy_from_slice(chunk);
        cipher.decrypt_block(&mut block);
        for i in 0..BLOCK_LEN {
            let ciphertext_byte = chunk[i];
            chunk[i] = block[i] ^ chain[i];
            chain[i] = ciphertext_byte;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let text = core::str::from_utf8(pair).unwrap();
            out[i] = u8::from_str_radix(text, 16).unwrap();
        }
        out
    }

    #[test]
    fn key_bla_is_zero_padded() {
        let mut expected = [0u8; 32];
        expected[..3].copy_from_slice(&[0x62, 0x6c, 0x61]);
        assert_eq!(Key::from_psk(b"bla").as_bytes(), &expected);
    }

    #[test]
    fn key_of_exactly_32_bytes_is_used_as_is_and_33_bytes_is_hashed() {
        let psk32 = [7u8; 32];
        assert_eq!(Key::from_psk(&psk32).as_bytes(), &psk32);
        let psk33 = [7u8; 33];
        assert_eq!(Key::from_psk(&psk33).as_bytes(), &sha256(&[&psk33]));
        assert_eq!(Key::from_psk(b"").as_bytes(), &[0u8; 32]);
    }

    #[test]
    fn key_debug_is_redacted() {
        extern crate std;
        let text = std::format!("{:?}", Key::from_psk(b"bla"));
        assert_eq!(text, "Key(<redacted>)");
    }

    #[test]
    fn group_ble_vector() {
        assert_eq!(
            GroupId::from_name(b"ble").0,
            [0x3c, 0x36, 0x7e, 0x3d, 0xcc, 0x81, 0x71, 0xc2]
        );
    }

    #[test]
    fn tag_of_empty_message_under_key_bla_vector() {
        assert_eq!(
            tag(&Key::from_psk(b"bla"), &[]),
            [0x6d, 0x32, 0x56, 0x3a, 0x8b, 0xae, 0xc5, 0xea, 0xf6, 0xa1, 0x8a, 0x5f]
        );
    }

    #[test]
    fn tag_is_not_rfc2104_hmac() {
        // RFC 4231 test case 2 ("Jefe"): HMAC-SHA256 starts 5bdcc146bf60754e6a042426. Our tag
        // with the same 4-byte key (zero-padded to 32) must differ, because the pads do.
        let key = Key::from_psk(b"Jefe");
        let ours = tag(&key, b"what do ya want for nothing?");
        let hmac = [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26,
        ];
        assert_ne!(ours, hmac);
    }

    #[test]
    fn tag_comparison() {
        let a = [1u8; 12];
        assert!(tag_matches(&a, &a));
        for i in 0..12 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!tag_matches(&a, &b));
            }
        }
    }

    #[test]
    fn aes256_cbc_matches_nist_sp800_38a_f_2_5() {
        // NIST SP 800-38A, F.2.5 CBC-AES256.Encrypt, first two blocks.
        let key = Key::from_bytes(hex(
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        ));
        let iv_full = hex("000102030405060708090a0b0c0d0e0f");
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&iv_full[..16]);
        let plain = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let cipher = hex("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d");
        let mut data = plain;
        cbc_encrypt(&key, &iv, &mut data);
        assert_eq!(data, cipher);
        cbc_decrypt(&key, &iv, &mut data);
        assert_eq!(data, plain);
    }
}
