//! Server-certificate verification for TLS clients that leave it to the application (the
//! ESP32 firmware's embedded-tls): the same rules as the simulator's verifier
//! (`hearth_sim::tls`: rustls/webpki, plus keyUsage), written for `no_std` without an
//! allocator so that it runs on the chip and is tested on the host. Both are run on one table
//! of chains and must give the same verdicts (`crates/hearth-sim/tests/tls_verdicts.rs`).
//!
//! - [`verify_server`]: the chain the server sent, against `mqttca`: signatures up to that one
//!   CA; on every certificate below it, unknown critical extensions, the validity period,
//!   basicConstraints (the server's certificate is no CA, each intermediate is one, within its
//!   path length), the extended key usage (TLS server) and keyUsage; the name constraints of
//!   every CA above a certificate (DNS names, IP addresses); strict DER, each extension once.
//!   Then the host name (DNS names and IP addresses of the subject alternative names; the
//!   common name is not used, as with webpki), and the `mqttpin` (SHA-256 of the server's
//!   SubjectPublicKeyInfo). It returns the server's key for the handshake signature
//!   ([`ServerKey::verify_handshake`]).
//! - [`Clock`]: what is known about the time. A device without a wall clock knows only a lower
//!   bound ([`trusted_now`]: the firmware's build time or the last owner-signed issue time),
//!   which still rejects every certificate that expired before it; the "not before" date
//!   cannot be checked against a lower bound.
//! - [`client_key`]: the device's P-256 key from `mqttclientkey` (PKCS#8 or SEC1 DER).
//!
//! Supported algorithms: ECDSA with P-256 and SHA-256, for the certificates' signatures and
//! for the handshake. Anything else is refused with a reason, never accepted unchecked.

use core::net::IpAddr;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use hearth_platform::TlsError;

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

const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

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
            if after[0] == 0 {
                return None; // DER: no leading zero bytes in a length
            }
            let mut len = 0usize;
            for &b in &after[..n] {
                len = (len << 8) | usize::from(b);
            }
            if len < 0x80 {
                return None; // DER: the short form when it fits
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

/// A DER BOOLEAN: exactly one byte, 0xFF or 0x00.
fn boolean(tlv: Tlv<'_>) -> Option<bool> {
    match tlv.value {
        [0xff] => Some(true),
        [0x00] => Some(false),
        _ => None,
    }
}

/// A non-negative DER INTEGER below 256, minimally encoded.
fn small_uint(tlv: Tlv<'_>) -> Option<u8> {
    match *tlv.value {
        [b] if b < 0x80 => Some(b),
        [0, b] if b >= 0x80 => Some(b),
        _ => None,
    }
}

/// keyUsage bits, as the first two bytes of the BIT STRING (big-endian): digitalSignature is
/// bit 0, keyCertSign bit 5.
const KU_DIGITAL_SIGNATURE: u16 = 0x8000;
const KU_KEY_CERT_SIGN: u16 = 0x0400;

/// The extensions a certificate may carry, critical or not: what the checks use, plus the
/// ones webpki (the simulator's verifier) also knows and ignores for server verification.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    KeyUsage,
    SubjectAltName,
    BasicConstraints,
    NameConstraints,
    CrlDistributionPoints,
    ExtKeyUsage,
    SignedCertificateTimestamps,
}

impl Known {
    fn of(id: &[u8]) -> Option<Self> {
        const SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];
        Some(match id {
            [0x55, 0x1d, 15] => Self::KeyUsage,
            [0x55, 0x1d, 17] => Self::SubjectAltName,
            [0x55, 0x1d, 19] => Self::BasicConstraints,
            [0x55, 0x1d, 30] => Self::NameConstraints,
            [0x55, 0x1d, 31] => Self::CrlDistributionPoints,
            [0x55, 0x1d, 37] => Self::ExtKeyUsage,
            SCT_LIST => Self::SignedCertificateTimestamps,
            _ => return None,
        })
    }

    /// A bit for the "seen once" set.
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// GeneralName tags (RFC 5280 4.2.1.6; implicit context tags, constructed where the type is).
const GN_OTHER: u8 = 0xa0;
const GN_RFC822: u8 = 0x81;
const GN_DNS: u8 = 0x82;
const GN_X400: u8 = 0xa3;
const GN_DIRECTORY: u8 = 0xa4;
const GN_EDI_PARTY: u8 = 0xa5;
const GN_URI: u8 = 0x86;
const GN_IP: u8 = 0x87;
const GN_REGISTERED_ID: u8 = 0x88;

fn is_general_name(tag: u8) -> bool {
    matches!(
        tag,
        GN_OTHER
            | GN_RFC822
            | GN_DNS
            | GN_X400
            | GN_DIRECTORY
            | GN_EDI_PARTY
            | GN_URI
            | GN_IP
            | GN_REGISTERED_ID
    )
}

/// The contents of a nameConstraints extension: the GeneralSubtrees lists.
#[derive(Clone, Copy)]
struct NameConstraints<'a> {
    permitted: Option<&'a [u8]>,
    excluded: Option<&'a [u8]>,
}

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
    /// The contents of the subject alternative names extension (GeneralNames, checked).
    san: Option<&'a [u8]>,
    /// basicConstraints says cA.
    is_ca: bool,
    /// basicConstraints' pathLenConstraint: at most this many CAs below this one.
    path_len: Option<u8>,
    /// keyUsage, if present (`KU_*` bits).
    key_usage: Option<u16>,
    /// The extended key usage allows TLS server authentication (or there is none).
    server_auth: bool,
    name_constraints: Option<NameConstraints<'a>>,
    /// A critical extension this code does not know.
    unknown_critical: bool,
}

impl<'a> Certificate<'a> {
    fn parse(der: &'a [u8]) -> Result<Self, Rejection> {
        Self::try_parse(der, false).ok_or(MALFORMED)
    }

    /// `mqttca`: also a version 1 certificate (no extensions), as webpki takes trust anchors.
    fn parse_anchor(der: &'a [u8]) -> Result<Self, Rejection> {
        Self::try_parse(der, true).ok_or(MALFORMED)
    }

    fn try_parse(der: &'a [u8], version_1_ok: bool) -> Option<Self> {
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
        // Version 3 only (as webpki): the only version with extensions, so the only one in
        // which "not a CA" can be told from an old certificate. A version 1 CA (the version
        // left out) is trusted as configured, with no extensions.
        let version_1 = version_1_ok && t.peek_tag() == Some(INTEGER);
        if !version_1 {
            let mut version = t.enter(EXPLICIT_0)?;
            if version.expect(INTEGER)?.value != [2] || !version.is_empty() {
                return None;
            }
        }
        t.expect(INTEGER)?; // serial number
        let inner_algorithm = t.enter(SEQUENCE)?.expect(OID)?.value;
        if inner_algorithm != signature_algorithm {
            return None;
        }
        let issuer = t.expect(SEQUENCE)?.raw;
        let mut validity = t.enter(SEQUENCE)?;
        let not_before = time(validity.read()?)?;
        let not_after = time(validity.read()?)?;
        if !validity.is_empty() {
            return None;
        }
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
        // The unique identifiers ([1], [2]) are refused, as by webpki: nothing uses them.

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
            path_len: None,
            key_usage: None,
            server_auth: true,
            name_constraints: None,
            unknown_critical: false,
        };
        if version_1 {
            return t.is_empty().then_some(cert);
        }
        if let Some(extensions) = t.optional(EXPLICIT_3)? {
            let mut wrapper = Der::new(extensions.value);
            let mut list = wrapper.enter(SEQUENCE)?;
            if !wrapper.is_empty() {
                return None;
            }
            let mut seen = 0u8;
            while !list.is_empty() {
                let mut extension = list.enter(SEQUENCE)?;
                let id = extension.expect(OID)?.value;
                let critical = match extension.optional(BOOLEAN)? {
                    Some(b) => boolean(b)?,
                    None => false,
                };
                let value = extension.expect(OCTET_STRING)?.value;
                if !extension.is_empty() {
                    return None;
                }
                match Known::of(id) {
                    Some(known) => {
                        // Each extension at most once (RFC 5280 4.2; webpki refuses repeats).
                        if seen & known.bit() != 0 {
                            return None;
                        }
                        seen |= known.bit();
                        cert.extension(known, value)?;
                    }
                    None => cert.unknown_critical |= critical,
                }
            }
        }
        t.is_empty().then_some(cert)
    }

    /// Reads a known extension's value (all of it: nothing may follow).
    fn extension(&mut self, known: Known, value: &'a [u8]) -> Option<()> {
        let mut v = Der::new(value);
        match known {
            Known::SubjectAltName => {
                let names = v.expect(SEQUENCE)?.value;
                let mut list = Der::new(names);
                while !list.is_empty() {
                    if !is_general_name(list.read()?.tag) {
                        return None;
                    }
                }
                self.san = Some(names);
            }
            Known::BasicConstraints => {
                let mut constraints = v.enter(SEQUENCE)?;
                self.is_ca = match constraints.optional(BOOLEAN)? {
                    Some(b) => boolean(b)?,
                    None => false,
                };
                self.path_len = match constraints.optional(INTEGER)? {
                    Some(n) => Some(small_uint(n)?),
                    None => None,
                };
                if !constraints.is_empty() {
                    return None;
                }
            }
            Known::KeyUsage => {
                let usage = v.expect(BIT_STRING)?.value;
                let (&unused, bytes) = usage.split_first()?;
                if unused > 7 || bytes.is_empty() || bytes.len() > 2 {
                    return None;
                }
                let first = u16::from(bytes[0]) << 8;
                let second = bytes.get(1).map_or(0, |&b| u16::from(b));
                self.key_usage = Some(first | second);
            }
            Known::ExtKeyUsage => {
                let mut purposes = v.enter(SEQUENCE)?;
                // An empty list allows nothing (webpki: EmptyEkuExtension); anyExtendedKeyUsage
                // is not TLS server authentication (webpki does not accept it either).
                self.server_auth = false;
                while !purposes.is_empty() {
                    if purposes.expect(OID)?.value == OID_SERVER_AUTH {
                        self.server_auth = true;
                    }
                }
            }
            Known::NameConstraints => {
                let mut constraints = v.enter(SEQUENCE)?;
                let permitted = constraints.optional(EXPLICIT_0)?.map(|p| p.value);
                let excluded = constraints.optional(EXPLICIT_1)?.map(|e| e.value);
                if !constraints.is_empty() {
                    return None;
                }
                self.name_constraints = Some(NameConstraints {
                    permitted,
                    excluded,
                });
            }
            Known::CrlDistributionPoints => {
                v.expect(SEQUENCE)?; // no revocation checks (see docs/TLS.md)
            }
            Known::SignedCertificateTimestamps => {
                v.expect(OCTET_STRING)?;
            }
        }
        v.is_empty().then_some(())
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
                (GN_IP, Some(IpAddr::V4(a))) => name.value == a.octets(),
                (GN_IP, Some(IpAddr::V6(a))) => name.value == a.octets(),
                (GN_DNS, None) => dns_name_matches(name.value, host),
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
        if self.not_before > self.not_after {
            // What rustls reports for webpki's InvalidCertValidity.
            return Err(reject(
                TlsError::Expired,
                "its validity period ends before it begins",
            ));
        }
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

    /// The checks that do not depend on the issuer, in webpki's order: critical extensions,
    /// the validity period, basicConstraints for its place in the chain, the extended key
    /// usage; then keyUsage (which webpki does not check; the simulator checks it after
    /// webpki).
    fn check_as(&self, role: Role, clock: Clock) -> Result<(), Rejection> {
        let bad = |reason| Err(reject(TlsError::BadCertificate, reason));
        let leaf = role == Role::Leaf;
        if self.unknown_critical {
            return bad(if leaf {
                "the server's certificate has an unknown critical extension"
            } else {
                "an intermediate certificate has an unknown critical extension"
            });
        }
        self.check_time(clock)?;
        match role {
            Role::Leaf if self.is_ca => {
                return bad("the server's certificate is a CA certificate");
            }
            Role::Issuer { .. } if !self.is_ca => {
                return bad("an intermediate certificate is not a CA");
            }
            Role::Issuer { cas_below } if self.path_len.is_some_and(|n| cas_below > n.into()) => {
                return bad(
                    "an intermediate has more CAs below it than its pathLenConstraint allows",
                );
            }
            _ => {}
        }
        if !self.server_auth {
            return bad(if leaf {
                "the server's certificate is not for TLS servers (extended key usage)"
            } else {
                "an intermediate certificate is not for TLS servers (extended key usage)"
            });
        }
        self.check_key_usage(leaf)
    }

    /// keyUsage, when present: digitalSignature on the server's certificate (it signs the
    /// handshake), keyCertSign on an issuer.
    fn check_key_usage(&self, leaf: bool) -> Result<(), Rejection> {
        match self.key_usage {
            Some(ku) if leaf && ku & KU_DIGITAL_SIGNATURE == 0 => Err(reject(
                TlsError::BadCertificate,
                "the server's keyUsage does not allow digitalSignature",
            )),
            Some(ku) if !leaf && ku & KU_KEY_CERT_SIGN == 0 => Err(reject(
                TlsError::BadCertificate,
                "an issuer's keyUsage does not allow keyCertSign",
            )),
            _ => Ok(()),
        }
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

/// Where a certificate stands in the chain.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The server's certificate.
    Leaf,
    /// An intermediate, with this many intermediates between it and the server's certificate.
    Issuer { cas_below: usize },
}

// ---------------------------------------------------------------------------------------------
// Name constraints (RFC 5280 4.2.1.10), as webpki applies them: a CA's permitted and excluded
// subtrees hold for every certificate below it, for each of its subject alternative names and
// for its subject (a directory name). DNS names and IP addresses are compared; a constraint on
// directory names or URIs refuses every certificate that has such a name (every certificate
// has a subject), and one on the other name forms refuses any name of that form.

const NAME_CONSTRAINTS: Rejection = reject(
    TlsError::BadCertificate,
    "a name is outside an issuer's name constraints",
);
const BAD_CONSTRAINT: Rejection = reject(
    TlsError::BadCertificate,
    "malformed name constraint (DER, network mask)",
);

/// Every name of `cert` is allowed by `constraints`.
fn check_names(constraints: &NameConstraints<'_>, cert: &Certificate<'_>) -> Result<(), Rejection> {
    if let Some(san) = cert.san {
        let mut names = Der::new(san);
        while !names.is_empty() {
            let name = names.read().ok_or(MALFORMED)?;
            check_name(constraints, name.tag, name.value)?;
        }
    }
    check_name(constraints, GN_DIRECTORY, cert.subject)
}

fn check_name(constraints: &NameConstraints<'_>, tag: u8, name: &[u8]) -> Result<(), Rejection> {
    for (subtrees, permitted) in [(constraints.permitted, true), (constraints.excluded, false)] {
        let Some(subtrees) = subtrees else {
            continue;
        };
        let (mut matched, mut mismatched) = (false, false);
        let mut list = Der::new(subtrees);
        while !list.is_empty() {
            // GeneralSubtree ::= SEQUENCE { base GeneralName, minimum/maximum (not used) }.
            let mut subtree = list.enter(SEQUENCE).ok_or(BAD_CONSTRAINT)?;
            let base = subtree.read().ok_or(BAD_CONSTRAINT)?;
            if !subtree.is_empty() || !is_general_name(base.tag) {
                return Err(BAD_CONSTRAINT);
            }
            if base.tag != tag {
                continue; // a constraint on another name form
            }
            let within = match tag {
                GN_DNS => dns_within(name, base.value, permitted),
                GN_IP => ip_within(name, base.value)?,
                // Not compared: nothing is within a permitted subtree, everything within an
                // excluded one.
                GN_DIRECTORY | GN_URI => !permitted,
                _ => return Err(NAME_CONSTRAINTS),
            };
            if within && !permitted {
                return Err(NAME_CONSTRAINTS);
            }
            matched |= within;
            mismatched |= !within;
        }
        if permitted && mismatched && !matched {
            return Err(NAME_CONSTRAINTS);
        }
    }
    Ok(())
}

/// `name` (ASCII, any case) is `base` or a subdomain of it; a `base` with a leading dot means
/// subdomains only, an empty `base` any name.
fn dns_suffix(name: &[u8], base: &[u8]) -> bool {
    if base.is_empty() {
        return true;
    }
    if name.len() < base.len() {
        return false;
    }
    let (head, tail) = name.split_at(name.len() - base.len());
    if !tail.eq_ignore_ascii_case(base) {
        return false;
    }
    if base.first() == Some(&b'.') {
        !head.is_empty()
    } else {
        head.is_empty() || head.last() == Some(&b'.')
    }
}

/// A certificate's DNS name is within a dNSName subtree. A wildcard name (`*.suffix`) is
/// within a permitted subtree only as a whole (every name it covers is inside), and within
/// an excluded one when any name it covers is inside.
fn dns_within(name: &[u8], base: &[u8], permitted: bool) -> bool {
    if dns_suffix(name, base) {
        return true;
    }
    match name.strip_prefix(b"*.") {
        Some(suffix) if !permitted => {
            // `base` is one label in front of the suffix: the wildcard covers it.
            base.len() > suffix.len() + 1
                && dns_suffix(base, suffix)
                && !base[..base.len() - suffix.len() - 1].contains(&b'.')
                && base.first() != Some(&b'.')
        }
        _ => false,
    }
}

/// A certificate's IP address is within an iPAddress subtree (address and mask, 8 or 32
/// bytes); the other family is not.
fn ip_within(address: &[u8], base: &[u8]) -> Result<bool, Rejection> {
    if !matches!(address.len(), 4 | 16) {
        return Err(MALFORMED);
    }
    if !matches!(base.len(), 8 | 32) {
        return Err(BAD_CONSTRAINT);
    }
    let (network, mask) = base.split_at(base.len() / 2);
    // The mask must be a prefix: ones, then zeros.
    let mut ended = false;
    for &m in mask {
        if ended && m != 0 || m.leading_ones() + m.trailing_zeros() < 8 {
            return Err(BAD_CONSTRAINT);
        }
        ended |= m != 0xff;
    }
    if address.len() != network.len() {
        return Ok(false);
    }
    Ok(address
        .iter()
        .zip(network)
        .zip(mask)
        .all(|((a, n), m)| a & m == n & m))
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

/// Most intermediates between the server's certificate and the CA (webpki's limit too).
const MAX_DEPTH: usize = 6;

/// The SHA-256 of a certificate's SubjectPublicKeyInfo (what `mqttpin` holds).
pub fn spki_sha256(certificate: &[u8]) -> Result<[u8; 32], Rejection> {
    let cert = Certificate::parse(certificate)?;
    Ok(Sha256::digest(cert.spki).into())
}

/// Verifies the certificates a server sent (`chain[0]` its own, then intermediates in any
/// order) against `trust` at the time `clock`, in the simulator's order: the chain to the CA
/// (signatures; each certificate's critical extensions, validity period, basicConstraints,
/// extended key usage and keyUsage; the name constraints of the CAs above it), the host name,
/// the pin. Without a CA the pin is the trust anchor: the certificate's critical extensions,
/// extended key usage, host name and pin are checked, the validity period is not.
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
        let anchor = Certificate::parse_anchor(ca).map_err(|_| {
            reject(
                TlsError::BadConfig,
                "mqttca is not a certificate this device can read",
            )
        })?;
        verify_chain(&leaf, &chain[1..], &anchor, clock)?;
    } else if trust.pin.is_none() {
        // `Settings` never allows this; refuse rather than accept anything.
        return Err(reject(TlsError::BadConfig, "neither mqttca nor mqttpin"));
    } else if leaf.unknown_critical {
        return Err(reject(
            TlsError::BadCertificate,
            "the server's certificate has an unknown critical extension",
        ));
    } else if !leaf.server_auth {
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

/// A path from `leaf` through `intermediates` to `anchor`: each certificate signed by the
/// next and acceptable in its place ([`Certificate::check_as`], checked before its issuer is
/// looked for, as webpki does), the anchor's keyUsage (if any) allowing certificate signing,
/// and every certificate within the name constraints of each CA above it. The anchor itself
/// is trusted as configured: its validity period and critical extensions are not checked.
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
    // The intermediates of the path, as indexes into `intermediates`, from the leaf up.
    let mut path = [0usize; MAX_DEPTH];
    let mut used = 0;
    let mut current = *leaf;
    let mut role = Role::Leaf;
    loop {
        current.check_as(role, clock)?;
        if current.issuer == anchor.subject && current.signed_by(anchor_key)? {
            break;
        }
        // An intermediate the server sent that issued `current`. A certificate that cannot be
        // used makes the failure its fault rather than an unknown CA (webpki's ranking).
        let mut issuer = None;
        let mut unusable = None;
        for (index, der) in intermediates.iter().enumerate() {
            let candidate = match Certificate::parse(der) {
                Ok(candidate) => candidate,
                Err(why) => {
                    unusable = Some(why);
                    continue;
                }
            };
            if candidate.subject != current.issuer
                || candidate.tbs == current.tbs
                || path[..used].contains(&index)
            {
                continue;
            }
            let Some(key) = candidate.p256_key else {
                unusable = Some(reject(
                    TlsError::BadCertificate,
                    "an intermediate's key is not supported here (ECDSA P-256 only)",
                ));
                continue;
            };
            if current.signed_by(key)? {
                issuer = Some((index, candidate));
                break;
            }
        }
        let Some((index, next)) = issuer else {
            return Err(unusable.unwrap_or(reject(
                TlsError::UnknownCa,
                "no chain of signatures from the server's certificate to mqttca",
            )));
        };
        if used == MAX_DEPTH {
            return Err(reject(TlsError::BadCertificate, "the chain is too long"));
        }
        role = Role::Issuer { cas_below: used };
        path[used] = index;
        used += 1;
        current = next;
    }
    anchor.check_key_usage(false)?;

    // Name constraints: those of each CA (the intermediates, then the anchor) hold for every
    // certificate below it.
    let at = |position: usize| -> Result<Certificate<'a>, Rejection> {
        match position {
            0 => Ok(*leaf),
            _ => Certificate::parse(intermediates[path[position - 1]]),
        }
    };
    for ca_position in 1..=used + 1 {
        let constraints = if ca_position == used + 1 {
            anchor.name_constraints
        } else {
            at(ca_position)?.name_constraints
        };
        if let Some(constraints) = constraints {
            for below in 0..ca_position {
                check_names(&constraints, &at(below)?)?;
            }
        }
    }
    Ok(())
}

/// The newest time the device can vouch for, in seconds since 1970, for certificate expiry
/// ([`Clock::AtLeast`]): the firmware's build time, or the highest owner-signed `issued` the
/// device has accepted (`hearth_storage::keys::OTA_LAST_ISSUED`: u64 LE, milliseconds since
/// 1970) when that is later. A stored value of any other length counts as none.
pub fn trusted_now(build_time: u64, last_issued: Option<&[u8]>) -> u64 {
    let issued = last_issued
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, |v| u64::from_le_bytes(v) / 1000);
    build_time.max(issued)
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
    use alloc::vec::Vec;

    /// A DER element with a minimal length.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = alloc::vec![tag];
        match contents.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// An extension: id (DER contents of the OID), critical flag as encoded (if any), value.
    fn ext(id: &[u8], critical: Option<u8>, value: &[u8]) -> Vec<u8> {
        let flag = critical.map(|b| tlv(BOOLEAN, &[b])).unwrap_or_default();
        tlv(
            SEQUENCE,
            &cat(&[&tlv(OID, id), &flag, &tlv(OCTET_STRING, value)]),
        )
    }

    const BC: &[u8] = &[0x55, 0x1d, 19];
    const SAN: &[u8] = &[0x55, 0x1d, 17];

    /// A certificate (not validly signed: these tests are about parsing) with `version` (the
    /// [0] element, or nothing), `after_key` (between the key and the extensions) and
    /// `extensions`.
    fn certificate(version: &[u8], after_key: &[u8], extensions: &[Vec<u8>]) -> Vec<u8> {
        let algorithm = tlv(SEQUENCE, &tlv(OID, OID_ECDSA_SHA256));
        let validity = tlv(
            SEQUENCE,
            &cat(&[
                &tlv(UTC_TIME, b"200101000000Z"),
                &tlv(UTC_TIME, b"300101000000Z"),
            ]),
        );
        let mut point = alloc::vec![0u8, 0x04];
        point.extend([7u8; 64]);
        let spki = tlv(
            SEQUENCE,
            &cat(&[
                &tlv(
                    SEQUENCE,
                    &cat(&[&tlv(OID, OID_EC_PUBLIC_KEY), &tlv(OID, OID_P256)]),
                ),
                &tlv(BIT_STRING, &point),
            ]),
        );
        let name = tlv(SEQUENCE, &[]);
        let extensions = if extensions.is_empty() {
            Vec::new()
        } else {
            tlv(EXPLICIT_3, &tlv(SEQUENCE, &extensions.concat()))
        };
        let tbs = tlv(
            SEQUENCE,
            &cat(&[
                version,
                &tlv(INTEGER, &[1]),
                &algorithm,
                &name,
                &validity,
                &name,
                &spki,
                after_key,
                &extensions,
            ]),
        );
        tlv(
            SEQUENCE,
            &cat(&[&tbs, &algorithm, &tlv(BIT_STRING, &[0, 1, 2])]),
        )
    }

    fn parse(der: &[u8]) -> Option<Certificate<'_>> {
        Certificate::try_parse(der, false)
    }

    fn v3() -> Vec<u8> {
        tlv(EXPLICIT_0, &tlv(INTEGER, &[2]))
    }

    fn ca_flag(flag: u8) -> Vec<u8> {
        tlv(SEQUENCE, &tlv(BOOLEAN, &[flag]))
    }

    #[test]
    fn lengths_must_be_minimal() {
        let read = |bytes: &[u8]| Der::new(bytes).read().map(|t| t.value.len());
        assert_eq!(read(&[0x04, 0x01, 0xaa]), Some(1));
        assert_eq!(read(&[0x04, 0x81, 0x01, 0xaa]), None); // long form for a short length
        let mut long = alloc::vec![0x04, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert_eq!(read(&long), Some(0x80));
        let mut padded = alloc::vec![0x04, 0x82, 0x00, 0x80];
        padded.extend([0u8; 0x80]);
        assert_eq!(read(&padded), None); // a leading zero byte
        assert_eq!(read(&[0x04, 0x80]), None); // indefinite
        assert_eq!(read(&[0x04, 0x02, 0xaa]), None); // truncated
        assert_eq!(read(&[0x1f, 0x01, 0x00]), None); // multi-byte tag
    }

    #[test]
    fn the_hand_built_certificate_parses() {
        let der = certificate(&v3(), &[], &[ext(BC, Some(0xff), &ca_flag(0xff))]);
        let cert = parse(&der).expect("parses");
        assert!(cert.is_ca && !cert.unknown_critical && cert.p256_key.is_some());
        // cA FALSE and critical FALSE written out (not DER, as webpki also accepts).
        let der = certificate(&v3(), &[], &[ext(BC, Some(0x00), &ca_flag(0x00))]);
        assert!(!parse(&der).expect("parses").is_ca);
    }

    #[test]
    fn booleans_are_0xff_or_0x00_only() {
        for flag in [0x01, 0x80, 0xfe] {
            let critical = certificate(&v3(), &[], &[ext(BC, Some(flag), &ca_flag(0xff))]);
            assert!(parse(&critical).is_none(), "critical {flag:#x}");
            let ca = certificate(&v3(), &[], &[ext(BC, None, &ca_flag(flag))]);
            assert!(parse(&ca).is_none(), "cA {flag:#x}");
        }
    }

    #[test]
    fn an_extension_appears_once() {
        let bc = ext(BC, Some(0xff), &ca_flag(0xff));
        let der = certificate(&v3(), &[], &[bc.clone(), bc]);
        assert!(parse(&der).is_none());
        let san = ext(SAN, None, &tlv(SEQUENCE, &tlv(GN_DNS, b"a.lan")));
        let der = certificate(&v3(), &[], &[san.clone(), san]);
        assert!(parse(&der).is_none());
        // Unknown extensions are not remembered: a repeat of one is only as bad as the one.
        let odd = ext(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x7f], None, &[0x05, 0x00]);
        let der = certificate(&v3(), &[], &[odd.clone(), odd]);
        assert!(parse(&der).is_some());
    }

    #[test]
    fn only_version_3_without_unique_identifiers() {
        assert!(parse(&certificate(&[], &[], &[])).is_none()); // v1
        let v2 = tlv(EXPLICIT_0, &tlv(INTEGER, &[1]));
        assert!(parse(&certificate(&v2, &[], &[])).is_none());
        assert!(parse(&certificate(&v3(), &[], &[])).is_some());
        // mqttca may be a version 1 certificate (as for webpki's trust anchors), without
        // extensions and without the version element.
        let v1 = certificate(&[], &[], &[]);
        assert!(Certificate::try_parse(&v1, true).is_some());
        let v1_extended = certificate(&[], &[], &[ext(BC, None, &ca_flag(0xff))]);
        assert!(Certificate::try_parse(&v1_extended, true).is_none());
        assert!(Certificate::try_parse(&certificate(&v2, &[], &[]), true).is_none());
        let unique = tlv(0x81, &[0, 0xaa]);
        assert!(parse(&certificate(&v3(), &unique, &[])).is_none());
    }

    #[test]
    fn extension_values_are_read_whole() {
        // Trailing bytes after basicConstraints' SEQUENCE, a pathLen that is not a small
        // non-negative INTEGER, a SAN entry that is no GeneralName.
        let trailing = cat(&[&ca_flag(0xff), &[0x05, 0x00]]);
        let der = certificate(&v3(), &[], &[ext(BC, None, &trailing)]);
        assert!(parse(&der).is_none());
        for len in [&[0x80u8][..], &[0x00, 0x05], &[0xff]] {
            let bc = tlv(
                SEQUENCE,
                &cat(&[&tlv(BOOLEAN, &[0xff]), &tlv(INTEGER, len)]),
            );
            let der = certificate(&v3(), &[], &[ext(BC, None, &bc)]);
            assert!(parse(&der).is_none(), "{len:?}");
        }
        let bc = tlv(
            SEQUENCE,
            &cat(&[&tlv(BOOLEAN, &[0xff]), &tlv(INTEGER, &[0x00, 0x80])]),
        );
        let der = certificate(&v3(), &[], &[ext(BC, None, &bc)]);
        assert_eq!(parse(&der).map(|c| c.path_len), Some(Some(0x80)));
        let san = tlv(SEQUENCE, &tlv(0x89, b"x"));
        let der = certificate(&v3(), &[], &[ext(SAN, None, &san)]);
        assert!(parse(&der).is_none());
    }

    #[test]
    fn dns_name_constraints() {
        assert!(dns_within(b"mqtt.lan", b"lan", true));
        assert!(dns_within(b"MQTT.LAN", b"lan", true));
        assert!(dns_within(b"lan", b"lan", true));
        assert!(!dns_within(b"mqtt.notlan", b"lan", true));
        assert!(dns_within(b"a.lan", b".lan", true));
        assert!(!dns_within(b"lan", b".lan", true));
        assert!(dns_within(b"anything", b"", true));
        // A wildcard: within a permitted subtree as a whole; within an excluded one when it
        // covers a name inside.
        assert!(dns_within(b"*.home.lan", b"lan", true));
        assert!(!dns_within(b"*.lan", b"evil.lan", true));
        assert!(dns_within(b"*.lan", b"evil.lan", false));
        assert!(!dns_within(b"*.lan", b"a.evil.lan", false));
        assert!(!dns_within(b"*.lan", b".evil.lan", false));
    }

    #[test]
    fn ip_name_constraints() {
        let net = [192, 168, 1, 0, 255, 255, 255, 0];
        assert_eq!(ip_within(&[192, 168, 1, 9], &net), Ok(true));
        assert_eq!(ip_within(&[192, 168, 2, 9], &net), Ok(false));
        assert_eq!(ip_within(&[0; 16], &net), Ok(false));
        assert_eq!(ip_within(&[10, 0, 0, 1], &[0; 8]), Ok(true)); // 0.0.0.0/0
                                                                  // Masks that are not a prefix, and wrong lengths.
        assert!(ip_within(&[192, 168, 1, 9], &[192, 168, 1, 0, 255, 0, 255, 0]).is_err());
        assert!(ip_within(&[192, 168, 1, 9], &[192, 168, 1, 0, 255, 255, 254, 1]).is_err());
        assert!(ip_within(&[192, 168, 1, 9], &[192, 168, 1, 0, 255, 255, 0xf5, 0]).is_err());
        assert!(ip_within(&[192, 168, 1, 9], &[192, 168, 1, 0]).is_err());
        assert!(ip_within(&[192, 168, 1], &net).is_err());
    }

    #[test]
    fn the_trusted_time_is_the_later_of_build_and_last_issued() {
        let build = 1_800_000_000;
        assert_eq!(trusted_now(build, None), build);
        let later_ms = (build + 86_400) * 1000 + 999;
        assert_eq!(
            trusted_now(build, Some(&later_ms.to_le_bytes())),
            build + 86_400
        );
        let earlier_ms = (build - 1) * 1000;
        assert_eq!(trusted_now(build, Some(&earlier_ms.to_le_bytes())), build);
        // Not a u64: ignored, never a panic.
        assert_eq!(trusted_now(build, Some(&[0xff; 7])), build);
        assert_eq!(trusted_now(build, Some(&[])), build);
        assert_eq!(
            trusted_now(0, Some(&u64::MAX.to_le_bytes())),
            u64::MAX / 1000
        );
    }

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
