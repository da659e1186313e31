//! Signed envelopes: everything that changes a device from afar (a firmware manifest, a config,
//! a command) travels in one, signed with the owner's ed25519 key.
//!
//! ```text
//! magic "HRTH" | format 1 | kind u8 | issued u64 LE | device: len u8 + UTF-8
//!              | body: len u32 LE + bytes | ed25519 signature (64) over all that precedes it
//! ```
//!
//! - `device` binds the envelope to one device: a manifest signed for the kitchen cannot be
//!   replayed to the garage.
//! - `issued` (milliseconds since the Unix epoch when it was signed) is the anti-replay
//!   sequence: the device keeps the highest value it accepted and refuses anything not newer.
//!   A captured envelope can therefore be used at most once, and never after a newer one.
//! - The signature is checked with `verify_strict` (no malleable or small-order signatures).

use ed25519_dalek::{Signature, VerifyingKey};

/// The first bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"HRTH";
/// The envelope format this code reads and writes.
pub const FORMAT: u8 = 1;
/// Length of the signature at the end.
pub const SIGNATURE_LEN: usize = 64;
/// Longest device name an envelope can carry (the config's `mqttname` limit is lower).
pub const MAX_DEVICE_LEN: usize = 64;
/// Longest body: a config file or a command line (firmware manifests are ~90 bytes).
pub const MAX_BODY_LEN: usize = 32 * 1024;
/// Length of an ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A firmware manifest ([`crate::manifest::Manifest`]).
    Firmware = 1,
    /// A complete `config.txt`.
    Config = 2,
    /// One command line (`reboot`, `resetstats`, ...).
    Command = 3,
    /// A complete `config.txt` that may remove or change the device's `otakey`: the owner
    /// says so explicitly (`hearth config push --rotate-key`). A plain [`Kind::Config`] that
    /// would do it is refused.
    ConfigRotateKey = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Firmware),
            2 => Some(Self::Config),
            3 => Some(Self::Command),
            4 => Some(Self::ConfigRotateKey),
            _ => None,
        }
    }

    /// The word used in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Firmware => "firmware manifest",
            Self::Config => "config",
            Self::Command => "command",
            Self::ConfigRotateKey => "config rotating the key",
        }
    }
}

/// Why an envelope (or what it carries) was refused. Every variant reads as a sentence for the
/// status topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The device has no public key provisioned (`otakey`), so it accepts nothing signed.
    NoKey,
    /// Shorter than its fields say.
    Truncated,
    /// Bytes after the signature.
    TrailingBytes,
    /// Not an envelope at all.
    BadMagic,
    /// A format this firmware does not know.
    UnsupportedFormat(u8),
    /// A kind this firmware does not know.
    UnknownKind(u8),
    /// A kind other than the one the topic expects.
    WrongKind {
        /// What the topic expects.
        expected: Kind,
        /// What the envelope says.
        found: Kind,
    },
    /// Device name or body longer than allowed.
    TooLong,
    /// A text field that is not UTF-8.
    NotUtf8,
    /// The signature does not verify with the device's key (unsigned, tampered, other key).
    BadSignature,
    /// Signed for another device.
    WrongDevice,
    /// Not newer than the last signed envelope this device accepted: a replay.
    Stale {
        /// `issued` of the refused envelope.
        issued: u64,
        /// The highest `issued` accepted so far.
        last: u64,
    },
    /// A malformed firmware manifest body.
    BadManifest(&'static str),
    /// The image is for another chip.
    WrongChip,
    /// The image does not contain this device's appliance.
    WrongAppliance,
    /// The image is not newer than the running firmware.
    Downgrade,
    /// The image does not fit the update slot.
    TooBig,
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoKey => f.write_str("no update key provisioned (set otakey in the config)"),
            Self::Truncated => f.write_str("envelope truncated"),
            Self::TrailingBytes => f.write_str("bytes after the signature"),
            Self::BadMagic => f.write_str("not a signed Hearth envelope"),
            Self::UnsupportedFormat(v) => write!(f, "envelope format {v} not supported"),
            Self::UnknownKind(k) => write!(f, "unknown envelope kind {k}"),
            Self::WrongKind { expected, found } => write!(
                f,
                "expected a signed {}, got a signed {}",
                expected.as_str(),
                found.as_str()
            ),
            Self::TooLong => f.write_str("field too long"),
            Self::NotUtf8 => f.write_str("text field is not UTF-8"),
            Self::BadSignature => f.write_str("bad signature"),
            Self::WrongDevice => f.write_str("signed for another device"),
            Self::Stale { issued, last } => write!(
                f,
                "replayed or stale: issued {issued} is not after the last accepted {last}"
            ),
            Self::BadManifest(why) => write!(f, "bad manifest: {why}"),
            Self::WrongChip => f.write_str("image is for another chip"),
            Self::WrongAppliance => f.write_str("image does not contain this appliance"),
            Self::Downgrade => f.write_str("image is not newer than the running firmware"),
            Self::TooBig => f.write_str("image does not fit the update slot"),
        }
    }
}

/// A parsed envelope whose signature has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// What it carries.
    pub kind: Kind,
    /// When it was signed (ms since the Unix epoch); the anti-replay sequence.
    pub issued: u64,
    /// The device it is for.
    pub device: &'a str,
    /// The payload.
    pub body: &'a [u8],
}

/// A little cursor over the envelope bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let end = self.at.checked_add(n).ok_or(Refusal::Truncated)?;
        let s = self.bytes.get(self.at..end).ok_or(Refusal::Truncated)?;
        self.at = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Refusal> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Refusal> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn short_str(&mut self, max: usize) -> Result<&'a str, Refusal> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(Refusal::TooLong);
        }
        core::str::from_utf8(self.take(n)?).map_err(|_| Refusal::NotUtf8)
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Parse an envelope without checking its signature: the fields, and the signed part and the
/// signature. For an envelope checked before (e.g. kept in flash); anything from outside goes
/// through [`open`].
pub fn parse(bytes: &[u8]) -> Result<(Envelope<'_>, &[u8], &[u8]), Refusal> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return Err(Refusal::BadMagic);
    }
    let format = r.u8()?;
    if format != FORMAT {
        return Err(Refusal::UnsupportedFormat(format));
    }
    let kind_byte = r.u8()?;
    let kind = Kind::from_u8(kind_byte).ok_or(Refusal::UnknownKind(kind_byte))?;
    let issued = r.u64()?;
    let device = r.short_str(MAX_DEVICE_LEN)?;
    let body_len = r.u32()? as usize;
    if body_len > MAX_BODY_LEN {
        return Err(Refusal::TooLong);
    }
    let body = r.take(body_len)?;
    let signed_len = r.at;
    let signature = r.take(SIGNATURE_LEN)?;
    if r.at != bytes.len() {
        return Err(Refusal::TrailingBytes);
    }
    let env = Envelope {
        kind,
        issued,
        device,
        body,
    };
    Ok((env, &bytes[..signed_len], signature))
}

/// Parse an envelope and check its signature with `key`. Checks nothing else: the caller
/// decides whether the kind, the device and the issue time are acceptable (see [`accept`]).
pub fn open<'a>(bytes: &'a [u8], key: &[u8; PUBLIC_KEY_LEN]) -> Result<Envelope<'a>, Refusal> {
    let (env, signed, signature) = parse(bytes)?;
    let key = VerifyingKey::from_bytes(key).map_err(|_| Refusal::BadSignature)?;
    let mut sig = [0u8; SIGNATURE_LEN];
    sig.copy_from_slice(signature);
    key.verify_strict(signed, &Signature::from_bytes(&sig))
        .map_err(|_| Refusal::BadSignature)?;
    Ok(env)
}

/// Open an envelope and check everything a device checks before acting on it: a key is
/// provisioned, the signature verifies, the kind is `expected`, it is signed for `device`, and
/// it was issued after `last_issued` (the highest value this device accepted so far).
///
/// The caller stores the envelope's `issued` as the new `last_issued` before acting on it, so a
/// power cut after the action cannot make the envelope acceptable again.
pub fn accept<'a>(
    bytes: &'a [u8],
    key: Option<&[u8; PUBLIC_KEY_LEN]>,
    expected: Kind,
    device: &str,
    last_issued: u64,
) -> Result<Envelope<'a>, Refusal> {
    let key = key.ok_or(Refusal::NoKey)?;
    let env = open(bytes, key)?;
    if env.kind != expected {
        return Err(Refusal::WrongKind {
            expected,
            found: env.kind,
        });
    }
    if env.device != device {
        return Err(Refusal::WrongDevice);
    }
    if env.issued <= last_issued {
        return Err(Refusal::Stale {
            issued: env.issued,
            last: last_issued,
        });
    }
    Ok(env)
}

/// Sign an envelope (the CLI's side).
#[cfg(feature = "alloc")]
pub fn seal(
    kind: Kind,
    issued: u64,
    device: &str,
    body: &[u8],
    key: &ed25519_dalek::SigningKey,
) -> Result<alloc::vec::Vec<u8>, Refusal> {
    use ed25519_dalek::Signer;
    if device.len() > MAX_DEVICE_LEN || body.len() > MAX_BODY_LEN {
        return Err(Refusal::TooLong);
    }
    let mut out = alloc::vec::Vec::with_capacity(19 + device.len() + body.len() + SIGNATURE_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    out.push(kind as u8);
    out.extend_from_slice(&issued.to_le_bytes());
    out.push(device.len() as u8);
    out.extend_from_slice(device.as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let sig = key.sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Parse a key written as 64 hex digits (the form `hearth keygen` writes and `otakey` takes).
pub fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        key[i] = (hi * 16 + lo) as u8;
    }
    Some(key)
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public(seed: u8) -> [u8; 32] {
        key(seed).verifying_key().to_bytes()
    }

    #[test]
    fn a_sealed_envelope_opens_with_the_right_key_only() {
        let env = seal(Kind::Command, 1000, "kitchen", b"reboot", &key(1)).unwrap();
        let open_ok = accept(&env, Some(&public(1)), Kind::Command, "kitchen", 999).unwrap();
        assert_eq!(open_ok.body, b"reboot");
        assert_eq!(open_ok.issued, 1000);
        assert_eq!(
            accept(&env, Some(&public(2)), Kind::Command, "kitchen", 0),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            accept(&env, None, Kind::Command, "kitchen", 0),
            Err(Refusal::NoKey)
        );
    }

    #[test]
    fn every_check_refuses_with_its_own_reason() {
        let env = seal(Kind::Command, 1000, "kitchen", b"reboot", &key(1)).unwrap();
        let k = public(1);
        assert_eq!(
            accept(&env, Some(&k), Kind::Command, "garage", 0),
            Err(Refusal::WrongDevice)
        );
        assert_eq!(
            accept(&env, Some(&k), Kind::Command, "kitchen", 1000),
            Err(Refusal::Stale {
                issued: 1000,
                last: 1000
            })
        );
        assert_eq!(
            accept(&env, Some(&k), Kind::Config, "kitchen", 0),
            Err(Refusal::WrongKind {
                expected: Kind::Config,
                found: Kind::Command
            })
        );
    }

    #[test]
    fn any_flipped_bit_breaks_the_envelope() {
        let env = seal(Kind::Config, 7, "dev", b"mqttname dev\n", &key(3)).unwrap();
        let k = public(3);
        for i in 0..env.len() {
            for bit in 0..8 {
                let mut bad = env.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    open(&bad, &k).is_err(),
                    "flipping bit {bit} of byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_padded_and_foreign_bytes_are_refused() {
        let env = seal(Kind::Config, 7, "dev", b"x", &key(3)).unwrap();
        let k = public(3);
        for n in 0..env.len() {
            assert_eq!(open(&env[..n], &k), Err(Refusal::Truncated), "length {n}");
        }
        let mut long = env.clone();
        long.push(0);
        assert_eq!(open(&long, &k), Err(Refusal::TrailingBytes));
        assert_eq!(open(b"GET / HTTP/1.1\r\n\r\n", &k), Err(Refusal::BadMagic));
        let mut v2 = env.clone();
        v2[4] = 2;
        assert_eq!(open(&v2, &k), Err(Refusal::UnsupportedFormat(2)));
        let mut kind = env.clone();
        kind[5] = 9;
        assert_eq!(open(&kind, &k), Err(Refusal::UnknownKind(9)));
        // A body length near u32::MAX must not overflow or allocate.
        let mut huge = env.clone();
        let at = 4 + 1 + 1 + 8 + 1 + 3;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(open(&huge, &k), Err(Refusal::TooLong));
    }

    #[test]
    fn hex_keys_parse_strictly() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let k = parse_hex_key(hex).unwrap();
        assert_eq!(k[1], 0x11);
        assert_eq!(k[31], 0xFF);
        assert_eq!(parse_hex_key(&hex[1..]), None);
        assert_eq!(parse_hex_key(&hex.replace('0', "g")), None);
        assert_eq!(parse_hex_key(""), None);
    }
}
