//! Server-certificate verification for TLS clients that leave it to the application (the
//! ESP32 firmware's embedded-tls): the same rules as the simulator's rustls verifier
//! (`hearth_sim::tls`), written for `no_std` without an allocator so that it runs on the chip
//! and is tested on the host.
//!
//! - [`verify_server`]: the chain the server sent, against `mqttca` (signatures up to that one
//!   CA, intermediates must be CAs, validity periods), the host name (DNS names and IP
//!   addresses of the subject alternative names; the common name is not used, as with
//!   webpki), and the `mqttpin` (SHA-256 of the server's SubjectPublicKeyInfo). It returns the
//!   server's key for the handshake signature ([`ServerKey::verify_handshake`]).
//! - [`Clock`]: what is known about the time. A device without a wall clock knows only a lower
//!   bound (the firmware's build time), which still rejects every certificate that expired
//!   before that date; the "not before" date cannot be checked against a lower bound.
//! - [`client_key`]: the device's P-256 key from `mqttclientkey` (PKCS#8 or SEC1 DER).
//!
//! Supported algorithms: ECDSA with P-256 and SHA-256, for the certificates' signatures and
//! for the handshake. Anything else is refused with a reason, never accepted unchecked.

use core::net::IpAddr;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::platform::TlsError;

/// Why a server (or the configured key) was refused: the error the runtime reports and a
/// reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The user-facing error.
    pub error: TlsError,
    /// What exactly failed, for the log.
    pub reason: &'static str,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.error, self.reason)
    }
}

const fn reject(error: TlsError, reason: &'static str) -> Rejection {
    Rejection { error, reason }
}

const MALFORMED: Rejection = reject(TlsError::BadCertificate, "malformed certificate (DER)");

/// What the device knows about the current time, in seconds since 1970-01-01 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall-clock time: both ends of every validity period are checked.
    Now(u64),
    /// Only a lower bound of the time (e.g. the firmware's build time): a certificate that
    /// expired before it is refused; "not before" cannot be checked.
    AtLeast(u64),
}

// ---------------------------------------------------------------------------------------------
// A minimal DER reader: definite lengths, single-byte tags (all X.509 needs).

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const EXPLICIT_0: u8 = 0xa0;
const EXPLICIT_1: u8 = 0xa1;
const EXPLICIT_3: u8 = 0xa3;
const IMPLICIT_1: u8 = 0x81;
const IMPLICIT_2: u8 = 0x82;
const SAN_DNS: u8 = 0x82;
const SAN_IP: u8 = 0x87;

const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const OID_ANY_EKU: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// One DER element.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    /// The contents.
    value: &'a [u8],
    /// The whole element: tag, length and contents.
    raw: &'a [u8],
}

/// A cursor over consecutive DER elements.
#[derive(Clone, Copy)]
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn read(&mut self) -> Option<Tlv<'a>> {
        let input = self.rest;
        let (&tag, after) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tag numbers: not in X.509
        }
        let (&first, mut after) = after.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 || after.len() < n {
                return None; // indefinite, or longer than any certificate here
            }
            let mut len = 0usize;
            for &b in &after[..n] {
                len = (len << 8) | usize::from(b);
            }
            after = &after[n..];
            len
        };
        if after.len() < len {
            return None;
        }
        let header = input.len() - after.len();
        let (value, rest) = after.split_at(len);
        self.rest = rest;
        Some(Tlv {
            tag,
            value,
            raw: &input[..header + len],
        })
    }

    fn expect(&mut self, tag: u8) -> Option<Tlv<'a>> {
        let tlv = self.read()?;
        (tlv.tag == tag).then_some(tlv)
    }

    fn optional(&mut self, tag: u8) -> Option<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Some(None)
        }
    }

    /// The contents of the element, as a cursor, if it has this tag.
    fn enter(&mut self, tag: u8) -> Option<Der<'a>> {
        self.expect(tag).map(|t| Der::new(t.value))
    }
}

/// The bits of a BIT STRING with no unused bits.
fn bits(tlv: Tlv<'_>) -> Option<&[u8]> {
    match tlv.value.split_first() {
        Some((0, bits)) => Some(bits),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// X.509

/// The parts of an X.509 certificate the checks need.
#[derive(Clone, Copy)]
struct Certificate<'a> {
    /// The signed part, as it was signed.
    tbs: &'a [u8],
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
    not_before: u64,
    not_after: u64,
    /// The whole SubjectPublicKeyInfo element (what `mqttpin` hashes).
    spki: &'a [u8],
    /// The public key, if it is a P-256 key (SEC1 encoding).
    p256_key: Option<&'a [u8]>,
    /// The contents of the subject alternative names extension.
    san: Option<&'a [u8]>,
    /// basicConstraints says cA.
    is_ca: bool,
    /// The extended key usage allows TLS server authentication (or there is none).
    server_auth: bool,
    /// A critical extension this code does not know.
    unknown_critical: bool,
}

impl<'a> Certificate<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, Rejection> {
        Self::try_parse(der).ok_or(MALFORMED)
    }

    fn try_parse(der: &'a [u8]) -> Option<Self> {
        let mut outer = Der::new(der);
        let mut certificate = outer.enter(SEQUENCE)?;
        if !outer.is_empty() {
            return None;
        }
        let tbs = certificate.expect(SEQUENCE)?;
        let mut algorithm = certificate.enter(SEQUENCE)?;
        let signature_algorithm = algorithm.expect(OID)?.value;
        let signature = bits(certificate.expect(BIT_STRING)?)?;
        if !certificate.is_empty() {
            return None;
        }

        let mut t = Der::new(tbs.value);
        t.optional(EXPLICIT_0)?; // version
        t.expect(INTEGER)?; // serial number
        let inner_algorithm = t.enter(SEQUENCE)?.expect(OID)?.value;
        if inner_algorithm != signature_algorithm {
            return None;
        }
        let issuer = t.expect(SEQUENCE)?.raw;
        let mut validity = t.enter(SEQUENCE)?;
        let not_before = time(validity.read()?)?;
        let not_after = time(validity.read()?)?;
        let subject = t.expect(SEQUENCE)?.raw;
        let spki = t.expect(SEQUENCE)?;
        let mut key_info = Der::new(spki.value);
        let mut key_algorithm = key_info.enter(SEQUENCE)?;
        let key_type = key_algorithm.expect(OID)?.value;
        let key_parameter = key_algorithm.read();
        let key = bits(key_info.expect(BIT_STRING)?)?;
        let p256_key = (key_type == OID_EC_PUBLIC_KEY
            && key_parameter.is_some_and(|p| p.tag == OID && p.value == OID_P256))
        .then_some(key);
        t.optional(IMPLICIT_1)?; // issuerUniqueID
        t.optional(IMPLICIT_2)?; // subjectUniqueID

        let mut cert = Certificate {
            tbs: tbs.raw,
            signature_algorithm,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            spki: spki.raw,
            p256_key,
            san: None,
            is_ca: false,
            server_auth: true,
            unknown_critical: false,
        };
        if let Some(extensions) = t.optional(EXPLICIT_3)? {
            let mut list = Der::new(extensions.value).enter(SEQUENCE)?;
            while !list.is_empty() {
                let mut extension = list.enter(SEQUENCE)?;
                let id = extension.expect(OID)?.value;
                let critical = match extension.optional(BOOLEAN)? {
                    Some(b) => b.value != [0],
                    None => false,
                };
                let value = extension.expect(OCTET_STRING)?.value;
                cert.extension(id, critical, value)?;
            }
        }
        t.is_empty().then_some(cert)
    }

    fn extension(&mut self, id: &[u8], critical: bool, value: &'a [u8]) -> Option<()> {
        let mut v = Der::new(value);
        if id == OID_SAN {
            self.san = Some(v.expect(SEQUENCE)?.value);
        } else if id == OID_BASIC_CONSTRAINTS {
            let mut constraints = v.enter(SEQUENCE)?;
            self.is_ca = constraints
                .optional(BOOLEAN)?
                .is_some_and(|b| b.value != [0]);
        } else if id == OID_EXT_KEY_USAGE {
            let mut purposes = v.enter(SEQUENCE)?;
            self.server_auth = false;
            while !purposes.is_empty() {
                let purpose = purposes.expect(OID)?.value;
                if purpose == OID_SERVER_AUTH || purpose == OID_ANY_EKU {
                    self.server_auth = true;
                }
            }
        } else if id != OID_KEY_USAGE && critical {
            self.unknown_critical = true;
        }
        Some(())
    }

    /// This certificate is valid for `host` (a DNS name or an IP address).
    fn valid_for(&self, host: &str) -> bool {
        let Some(san) = self.san else {
            return false;
        };
        let ip = host.parse::<IpAddr>().ok();
        let mut names = Der::new(san);
        while let Some(name) = names.read() {
            let matched = match (name.tag, ip) {
                (SAN_IP, Some(IpAddr::V4(a))) => name.value == a.octets(),
                (SAN_IP, Some(IpAddr::V6(a))) => name.value == a.octets(),
                (SAN_DNS, None) => dns_name_matches(name.value, host),
                _ => false,
            };
            if matched {
                return true;
            }
        }
        false
    }

    fn check_time(&self, clock: Clock) -> Result<(), Rejection> {
        let (now, lower_bound_only) = match clock {
            Clock::Now(t) => (t, false),
            Clock::AtLeast(t) => (t, true),
        };
        if now > self.not_after {
            return Err(reject(
                TlsError::Expired,
                "its \"not after\" date has passed",
            ));
        }
        if !lower_bound_only && now < self.not_before {
            return Err(reject(
                TlsError::NotYetValid,
                "its \"not before\" date is in the future",
            ));
        }
        Ok(())
    }

    /// `self` was signed by the holder of `issuer_key` (a P-256 key).
    fn signed_by(&self, issuer_key: &[u8]) -> Result<bool, Rejection> {
        if self.signature_algorithm != OID_ECDSA_SHA256 {
            return Err(reject(
                TlsError::BadCertificate,
                "signature algorithm not supported here (ECDSA P-256 with SHA-256 only)",
            ));
        }
        let key = VerifyingKey::from_sec1_bytes(issuer_key).map_err(|_| MALFORMED)?;
        let signature = Signature::from_der(self.signature).map_err(|_| MALFORMED)?;
        Ok(key.verify(self.tbs, &signature).is_ok())
    }
}

/// A DNS name of a certificate (`*.` allowed as the whole left-most label) matches `host`,
/// ignoring ASCII case.
fn dns_name_matches(pattern: &[u8], host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).as_bytes();
    if let Some(suffix) = pattern.strip_prefix(b"*.") {
        // The wildcard stands for exactly one label, and not for a top-level-only suffix.
        let Some(dot) = host.iter().position(|&b| b == b'.') else {
            return false;
        };
        dot > 0 && suffix.contains(&b'.') && host[dot + 1..].eq_ignore_ascii_case(suffix)
    } else {
        !pattern.contains(&b'*') && pattern.eq_ignore_ascii_case(host)
    }
}

/// A UTCTime or GeneralizedTime (the `YYMMDDHHMMSSZ` / `YYYYMMDDHHMMSSZ` forms X.509 requires)
/// in seconds since 1970.
fn time(tlv: Tlv<'_>) -> Option<u64> {
    let (year, rest) = match tlv.tag {
        UTC_TIME if tlv.value.len() == 13 => {
            let yy = digits(&tlv.value[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &tlv.value[2..])
        }
        GENERALIZED_TIME if tlv.value.len() == 15 => (digits(&tlv.value[..4])?, &tlv.value[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 || year < 1970 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(days * 86_400 + u64::from(hour * 3600 + minute * 60 + second))
}

fn digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year ≥ 1970).
fn days_since_epoch(year: u32, month: u32, day: u32) -> u64 {
    // Count from 1 March of year 0, so that the leap day is the last day of a year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era_days = u64::from(y) * 365 + u64::from(y / 4 - y / 100 + y / 400);
    let year_days = u64::from((153 * m + 2) / 5 + day - 1);
    // 719_468 = days from 0000-03-01 to 1970-01-01.
    era_days + year_days - 719_468
}

// ---------------------------------------------------------------------------------------------
// The server's chain

/// What the broker must prove (from `TlsSettings`).
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// The host name of `mqttbroker`.
    pub server_name: &'a str,
    /// `mqttca` (DER).
    pub ca: Option<&'a [u8]>,
    /// `mqttpin`.
    pub pin: Option<&'a [u8; 32]>,
}

/// The verified server's public key: the handshake must be signed with it.
#[derive(Debug, Clone)]
pub struct ServerKey(VerifyingKey);

/// Longest chain from the server's certificate to the CA (not counting the CA).
const MAX_DEPTH: usize = 6;

/// The SHA-256 of a certificate's SubjectPublicKeyInfo (what `mqttpin` holds).
pub fn spki_sha256(certificate: &[u8]) -> Result<[u8; 32], Rejection> {
    let cert = Certificate::parse(certificate)?;
    Ok(Sha256::digest(cert.spki).into())
}

/// Verifies the certificates a server sent (`chain[0]` its own, then intermediates in any
/// order) against `trust` at the time `clock`, in the simulator's order: the chain to the CA
/// (signatures, CA flags, validity periods), the host name, the pin. Without a CA the pin is
/// the trust anchor: the host name and the pin are checked, the validity period is not.
pub fn verify_server(
    chain: &[&[u8]],
    trust: &Trust<'_>,
    clock: Clock,
) -> Result<ServerKey, Rejection> {
    let leaf_der = chain.first().ok_or(reject(
        TlsError::BadCertificate,
        "the server sent no certificate",
    ))?;
    let leaf = Certificate::parse(leaf_der)?;
    if let Some(ca) = trust.ca {
        let anchor = Certificate::parse(ca).map_err(|_| {
            reject(
                TlsError::BadConfig,
                "mqttca is not a certificate this device can read",
            )
        })?;
        verify_chain(&leaf, &chain[1..], &anchor, clock)?;
    } else if trust.pin.is_none() {
        // `Settings` never allows this; refuse rather than accept anything.
        return Err(reject(TlsError::BadConfig, "neither mqttca nor mqttpin"));
    }
    if leaf.unknown_critical {
        return Err(reject(
            TlsError::BadCertificate,
            "the server's certificate has an unknown critical extension",
        ));
    }
    if !leaf.server_auth {
        return Err(reject(
            TlsError::BadCertificate,
            "the server's certificate is not for TLS servers (extended key usage)",
        ));
    }
    if !leaf.valid_for(trust.server_name) {
        return Err(reject(
            TlsError::WrongHost,
            "the host is not among the certificate's subject alternative names",
        ));
    }
    if let Some(pin) = trust.pin {
        let hash: [u8; 32] = Sha256::digest(leaf.spki).into();
        if &hash != pin {
            return Err(reject(
                TlsError::PinMismatch,
                "SHA-256 of the server's public key differs",
            ));
        }
    }
    let key = leaf.p256_key.ok_or(reject(
        TlsError::BadCertificate,
        "the server's key is not supported here (ECDSA P-256 only)",
    ))?;
    VerifyingKey::from_sec1_bytes(key)
        .map(ServerKey)
        .map_err(|_| MALFORMED)
}

/// A path from `leaf` through `intermediates` to `anchor`: each certificate signed by the next,
/// each issuer a CA, each certificate but the anchor within its validity period.
fn verify_chain<'a>(
    leaf: &Certificate<'a>,
    intermediates: &[&'a [u8]],
    anchor: &Certificate<'_>,
    clock: Clock,
) -> Result<(), Rejection> {
    let anchor_key = anchor.p256_key.ok_or(reject(
        TlsError::BadConfig,
        "mqttca's key is not supported here (ECDSA P-256 only)",
    ))?;
    let mut current = *leaf;
    for _ in 0..=MAX_DEPTH {
        if current.issuer == anchor.subject && current.signed_by(anchor_key)? {
            return current.check_time(clock);
        }
        // An intermediate the server sent that issued `current`.
        let mut issuer = None;
        for der in intermediates {
            let Ok(candidate) = Certificate::parse(der) else {
                continue;
            };
            if candidate.subject != current.issuer || candidate.tbs == current.tbs {
                continue;
            }
            let Some(key) = candidate.p256_key else {
                continue;
            };
            if current.signed_by(key)? {
                issuer = Some(candidate);
                break;
            }
        }
        let Some(next) = issuer else {
            return Err(reject(
                TlsError::UnknownCa,
                "no chain of signatures from the server's certificate to mqttca",
            ));
        };
        if !next.is_ca {
            return Err(reject(
                TlsError::BadCertificate,
                "an intermediate certificate is not a CA",
            ));
        }
        current.check_time(clock)?;
        current = next;
    }
    Err(reject(TlsError::UnknownCa, "the chain is too long"))
}

impl ServerKey {
    /// Checks the server's TLS 1.3 CertificateVerify: `scheme` (the TLS SignatureScheme code)
    /// and `signature` over the handshake hash `transcript` (SHA-256).
    pub fn verify_handshake(
        &self,
        scheme: u16,
        signature: &[u8],
        transcript: &[u8; 32],
    ) -> Result<(), Rejection> {
        /// ecdsa_secp256r1_sha256.
        const ECDSA_P256_SHA256: u16 = 0x0403;
        if scheme != ECDSA_P256_SHA256 {
            return Err(reject(
                TlsError::Handshake,
                "the server signed the handshake with an unsupported scheme",
            ));
        }
        let signature = Signature::from_der(signature)
            .map_err(|_| reject(TlsError::Handshake, "malformed handshake signature"))?;
        let mut message = [0u8; 64 + 34 + 32];
        message[..64].fill(0x20);
        message[64..98].copy_from_slice(b"TLS 1.3, server CertificateVerify\0");
        message[98..].copy_from_slice(transcript);
        self.0.verify(&message, &signature).map_err(|_| {
            reject(
                TlsError::Handshake,
                "the handshake signature does not match the server's certificate",
            )
        })
    }
}

/// The device's P-256 signing key from `mqttclientkey`: PKCS#8 (what `openssl genpkey` and
/// `hearth tls config-lines` give) or SEC1 (`openssl ecparam -genkey`).
pub fn client_key(der: &[u8]) -> Result<SigningKey, Rejection> {
    let unsupported = reject(
        TlsError::BadConfig,
        "mqttclientkey is not an ECDSA P-256 key (PKCS#8 or SEC1 DER)",
    );
    let scalar = pkcs8_p256(der)
        .or_else(|| sec1_p256(der))
        .ok_or(unsupported)?;
    SigningKey::from_slice(scalar).map_err(|_| unsupported)
}

/// PrivateKeyInfo { version, AlgorithmIdentifier { id-ecPublicKey, prime256v1 }, OCTET STRING
/// { ECPrivateKey } }.
fn pkcs8_p256(der: &[u8]) -> Option<&[u8]> {
    let mut info = Der::new(der).enter(SEQUENCE)?;
    info.expect(INTEGER)?;
    let mut algorithm = info.enter(SEQUENCE)?;
    if algorithm.expect(OID)?.value != OID_EC_PUBLIC_KEY || algorithm.expect(OID)?.value != OID_P256
    {
        return None;
    }
    let inner = info.expect(OCTET_STRING)?.value;
    sec1_p256_scalar(inner, true)
}

fn sec1_p256(der: &[u8]) -> Option<&[u8]> {
    sec1_p256_scalar(der, false)
}

/// ECPrivateKey { version 1, privateKey OCTET STRING, [0] parameters OPTIONAL, ... }; without
/// an outer PKCS#8 the curve must be named and be P-256.
fn sec1_p256_scalar(der: &[u8], curve_known: bool) -> Option<&[u8]> {
    let mut key = Der::new(der).enter(SEQUENCE)?;
    if key.expect(INTEGER)?.value != [1] {
        return None;
    }
    let scalar = key.expect(OCTET_STRING)?.value;
    let named = match key.optional(EXPLICIT_0)? {
        Some(p) => Der::new(p.value).expect(OID)?.value == OID_P256,
        None => false,
    };
    key.optional(EXPLICIT_1)?;
    (scalar.len() == 32 && (curve_known || named)).then_some(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tag: u8, s: &str) -> Option<u64> {
        time(Tlv {
            tag,
            value: s.as_bytes(),
            raw: &[],
        })
    }

    #[test]
    fn calendar_dates() {
        assert_eq!(days_since_epoch(1970, 1, 1), 0);
        assert_eq!(days_since_epoch(2000, 3, 1), 11_017);
        assert_eq!(days_since_epoch(2024, 2, 29), 19_782);
        assert_eq!(days_since_epoch(2100, 3, 1), 47_541);
    }

    #[test]
    fn x509_times() {
        assert_eq!(t(UTC_TIME, "700101000000Z"), Some(0));
        assert_eq!(t(UTC_TIME, "491231235959Z"), Some(2_524_607_999));
        assert_eq!(t(UTC_TIME, "500101000000Z"), None); // 1950
        assert_eq!(t(GENERALIZED_TIME, "20300101000000Z"), Some(1_893_456_000));
        assert_eq!(t(GENERALIZED_TIME, "20300101000000+0100"), None);
        assert_eq!(t(UTC_TIME, "301301000000Z"), None);
        assert_eq!(t(UTC_TIME, "3001010000a0Z"), None);
        assert_eq!(t(OCTET_STRING, "300101000000Z"), None);
    }

    #[test]
    fn dns_names() {
        assert!(dns_name_matches(b"mqtt.lan", "MQTT.lan"));
        assert!(dns_name_matches(b"*.a.example", "b.a.example"));
        assert!(!dns_name_matches(b"*.example", "a.example")); // no wildcard over one label
        assert!(!dns_name_matches(b"*.a.example", ".a.example"));
        assert!(!dns_name_matches(b"m*.lan", "mqtt.lan"));
        assert!(!dns_name_matches(b"mqtt.lan", "mqtt.lan.x"));
    }
}
