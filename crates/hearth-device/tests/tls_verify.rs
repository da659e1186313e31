//! `hearth_device::tls`, the chip's certificate checks, against real certificates made by rcgen
//! (the same generator as the simulator's TLS tests): chains, the one CA, validity periods
//! with and without a wall clock, host names and addresses, pins, key types, client keys and
//! the TLS 1.3 handshake signature. The whole-chain rules (basicConstraints, path lengths,
//! EKU, keyUsage, critical extensions, name constraints) are a table run against both the
//! chip's verifier and the simulator's: `crates/hearth-sim/tests/tls_verdicts.rs`.

use hearth_device::tls::{client_key, spki_sha256, verify_server, Clock, Trust};
use hearth_platform::TlsError;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use sha2::{Digest, Sha256};

/// 2030-01-01 00:00:00 UTC.
const Y2030: u64 = 1_893_456_000;

fn ca_with(name: &str, key: KeyPair) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, key).expect("CA")
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    ca_with(name, KeyPair::generate().expect("key"))
}

/// An intermediate CA issued by `issuer`.
fn intermediate(
    name: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), issuer)
        .expect("intermediate")
}

struct Server {
    der: Vec<u8>,
    key: KeyPair,
}

fn server_with(
    names: &[&str],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    years: (i32, i32),
    alg: &'static SignatureAlgorithm,
    edit: impl FnOnce(&mut CertificateParams),
) -> Server {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, "broker");
    params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    edit(&mut params);
    let key = KeyPair::generate_for(alg).expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    Server {
        der: cert.der().to_vec(),
        key,
    }
}

fn server(names: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) -> Server {
    server_with(
        names,
        issuer,
        (2020, 2200),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |_| {},
    )
}

fn trust<'a>(name: &'a str, ca: Option<&'a [u8]>, pin: Option<&'a [u8; 32]>) -> Trust<'a> {
    Trust {
        server_name: name,
        ca,
        pin,
    }
}

fn error(r: Result<hearth_device::tls::ServerKey, hearth_device::tls::Rejection>) -> TlsError {
    r.expect_err("must be refused").error
}

/// Refused with `expected`, for a reason that says `why`.
fn refused(
    r: Result<hearth_device::tls::ServerKey, hearth_device::tls::Rejection>,
    expected: TlsError,
    why: &str,
) {
    let rejection = r.expect_err("must be refused");
    assert_eq!(rejection.error, expected, "{rejection}");
    assert!(rejection.reason.contains(why), "{rejection}");
}

#[test]
fn a_server_of_the_ca_is_accepted_for_its_names_and_addresses() {
    let ca = ca("Hearth test CA");
    let s = server(&["mqtt.lan", "192.168.1.10", "::1"], &ca);
    for host in ["mqtt.lan", "MQTT.Lan", "mqtt.lan.", "192.168.1.10", "::1"] {
        let t = trust(host, Some(ca.der()), None);
        verify_server(&[&s.der], &t, Clock::Now(Y2030)).expect(host);
        verify_server(&[&s.der], &t, Clock::AtLeast(Y2030)).expect(host);
    }
}

#[test]
fn another_ca_is_unknown() {
    let ours = ca("Hearth test CA");
    let theirs = ca("Somebody else's CA");
    let s = server(&["mqtt.lan"], &theirs);
    let t = trust("mqtt.lan", Some(ours.der()), None);
    assert_eq!(
        error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
        TlsError::UnknownCa
    );
    // A CA with the same name but another key is no better.
    let impostor = ca("Hearth test CA");
    let s = server(&["mqtt.lan"], &impostor);
    assert_eq!(
        error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
        TlsError::UnknownCa
    );
}

#[test]
fn the_host_must_be_in_the_subject_alternative_names() {
    let ca = ca("Hearth test CA");
    let s = server(&["mqtt.lan", "192.168.1.10"], &ca);
    for host in ["other.lan", "lan", "192.168.1.11", "x.mqtt.lan"] {
        let t = trust(host, Some(ca.der()), None);
        assert_eq!(
            error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
            TlsError::WrongHost,
            "{host}"
        );
    }
    // The common name ("broker") is not a subject alternative name.
    let t = trust("broker", Some(ca.der()), None);
    assert_eq!(
        error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
        TlsError::WrongHost
    );
}

#[test]
fn a_wildcard_covers_one_label() {
    let ca = ca("Hearth test CA");
    let s = server(&["*.home.example"], &ca);
    let ok = trust("mqtt.home.example", Some(ca.der()), None);
    verify_server(&[&s.der], &ok, Clock::Now(Y2030)).expect("one label");
    for host in ["home.example", "a.mqtt.home.example"] {
        let t = trust(host, Some(ca.der()), None);
        assert_eq!(
            error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
            TlsError::WrongHost,
            "{host}"
        );
    }
}

#[test]
fn validity_periods_with_a_wall_clock_and_with_a_lower_bound() {
    let ca = ca("Hearth test CA");
    let expired = server_with(
        &["mqtt.lan"],
        &ca,
        (2020, 2025),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |_| {},
    );
    let future = server_with(
        &["mqtt.lan"],
        &ca,
        (2100, 2200),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |_| {},
    );
    let t = trust("mqtt.lan", Some(ca.der()), None);
    assert_eq!(
        error(verify_server(&[&expired.der], &t, Clock::Now(Y2030))),
        TlsError::Expired
    );
    assert_eq!(
        error(verify_server(&[&future.der], &t, Clock::Now(Y2030))),
        TlsError::NotYetValid
    );
    // A lower bound (the build time) past the end still refuses...
    assert_eq!(
        error(verify_server(&[&expired.der], &t, Clock::AtLeast(Y2030))),
        TlsError::Expired
    );
    // ...but cannot refuse a certificate whose period starts after it.
    verify_server(&[&future.der], &t, Clock::AtLeast(Y2030)).expect("not before unknown");
    // Exact boundaries: 2025-01-01 00:00:00 is 1_735_689_600.
    verify_server(&[&expired.der], &t, Clock::Now(1_735_689_600)).expect("last second");
    assert_eq!(
        error(verify_server(
            &[&expired.der],
            &t,
            Clock::Now(1_735_689_601)
        )),
        TlsError::Expired
    );
}

#[test]
fn chains_through_intermediates_in_any_order() {
    let root = ca("Hearth root");
    let mid = intermediate("Hearth intermediate", &root);
    let low = intermediate("Hearth issuing CA", &mid);
    let s = server(&["mqtt.lan"], &low);
    let t = trust("mqtt.lan", Some(root.der()), None);
    verify_server(&[&s.der, low.der(), mid.der()], &t, Clock::Now(Y2030)).expect("in order");
    verify_server(&[&s.der, mid.der(), low.der()], &t, Clock::Now(Y2030)).expect("shuffled");
    // The root sent along is harmless.
    verify_server(
        &[&s.der, low.der(), mid.der(), root.der()],
        &t,
        Clock::Now(Y2030),
    )
    .expect("with the root");
    // A missing link is an unknown CA.
    assert_eq!(
        error(verify_server(&[&s.der, low.der()], &t, Clock::Now(Y2030))),
        TlsError::UnknownCa
    );
    // The intermediate itself may be the configured CA.
    let t = trust("mqtt.lan", Some(low.der()), None);
    verify_server(&[&s.der], &t, Clock::Now(Y2030)).expect("intermediate as mqttca");
}

#[test]
fn an_intermediate_must_be_a_ca() {
    let root = ca("Hearth root");
    // A leaf of the root that (wrongly) signs another certificate.
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "not a CA");
    let not_ca =
        CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &root).expect("leaf");
    let s = server(&["mqtt.lan"], &not_ca);
    let t = trust("mqtt.lan", Some(root.der()), None);
    let r = verify_server(&[&s.der, not_ca.der()], &t, Clock::Now(Y2030));
    refused(r, TlsError::BadCertificate, "not a CA");
}

#[test]
fn pins_with_and_without_a_ca() {
    let ca = ca("Hearth test CA");
    let s = server(&["mqtt.lan"], &ca);
    let pin: [u8; 32] = spki_sha256(&s.der).expect("pin");
    // The pin is SHA-256 of the SubjectPublicKeyInfo, as `hearth tls config-lines --pin-from`
    // computes it (rcgen's public key DER is the SPKI).
    assert_eq!(
        pin.as_slice(),
        Sha256::digest(s.key.subject_public_key_info()).as_slice()
    );
    let other = [0x55u8; 32];

    verify_server(
        &[&s.der],
        &trust("mqtt.lan", Some(ca.der()), Some(&pin)),
        Clock::Now(Y2030),
    )
    .expect("CA and pin");
    assert_eq!(
        error(verify_server(
            &[&s.der],
            &trust("mqtt.lan", Some(ca.der()), Some(&other)),
            Clock::Now(Y2030)
        )),
        TlsError::PinMismatch
    );
    // Pin alone: any issuer, no validity period, but the host name still counts.
    let stranger = self::ca("Self-made");
    let expired = server_with(
        &["mqtt.lan"],
        &stranger,
        (2020, 2021),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |_| {},
    );
    let pin = spki_sha256(&expired.der).expect("pin");
    verify_server(
        &[&expired.der],
        &trust("mqtt.lan", None, Some(&pin)),
        Clock::Now(Y2030),
    )
    .expect("pinned key");
    assert_eq!(
        error(verify_server(
            &[&expired.der],
            &trust("other.lan", None, Some(&pin)),
            Clock::Now(Y2030)
        )),
        TlsError::WrongHost
    );
    assert_eq!(
        error(verify_server(
            &[&expired.der],
            &trust("mqtt.lan", None, Some(&other)),
            Clock::Now(Y2030)
        )),
        TlsError::PinMismatch
    );
    // Neither: never "accept anything".
    assert_eq!(
        error(verify_server(
            &[&s.der],
            &trust("mqtt.lan", None, None),
            Clock::Now(Y2030)
        )),
        TlsError::BadConfig
    );
}

#[test]
fn only_p256_keys_and_signatures() {
    let ca = ca("Hearth test CA");
    let t = trust("mqtt.lan", Some(ca.der()), None);
    // A P-384 server key under our (P-256) CA: the chain is fine, the key is not usable here.
    let p384 = server_with(
        &["mqtt.lan"],
        &ca,
        (2020, 2200),
        &rcgen::PKCS_ECDSA_P384_SHA384,
        |_| {},
    );
    let r = verify_server(&[&p384.der], &t, Clock::Now(Y2030));
    refused(r, TlsError::BadCertificate, "P-256 only");
    // A P-384 CA: its signatures cannot be checked here.
    let big = ca_with(
        "P-384 CA",
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key"),
    );
    let s = server(&["mqtt.lan"], &big);
    let r = verify_server(
        &[&s.der],
        &trust("mqtt.lan", Some(big.der()), None),
        Clock::Now(Y2030),
    );
    refused(r, TlsError::BadConfig, "mqttca's key");
}

#[test]
fn a_certificate_for_clients_only_is_refused() {
    let ca = ca("Hearth test CA");
    let s = server_with(
        &["mqtt.lan"],
        &ca,
        (2020, 2200),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    let t = trust("mqtt.lan", Some(ca.der()), None);
    assert_eq!(
        error(verify_server(&[&s.der], &t, Clock::Now(Y2030))),
        TlsError::BadCertificate
    );
    let s = server_with(
        &["mqtt.lan"],
        &ca,
        (2020, 2200),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth],
    );
    verify_server(&[&s.der], &t, Clock::Now(Y2030)).expect("server auth");
}

#[test]
fn garbage_and_truncation_are_refused_not_accepted() {
    let ca = ca("Hearth test CA");
    let s = server(&["mqtt.lan"], &ca);
    let t = trust("mqtt.lan", Some(ca.der()), None);
    for len in [0, 1, 10, s.der.len() / 2, s.der.len() - 1] {
        let r = verify_server(&[&s.der[..len]], &t, Clock::Now(Y2030));
        assert_eq!(error(r), TlsError::BadCertificate, "{len}");
    }
    // One flipped bit in the signed part breaks the CA's signature.
    let mut forged = s.der.clone();
    let i = forged.len() / 2;
    forged[i] ^= 1;
    let r = verify_server(&[&forged], &t, Clock::Now(Y2030));
    assert!(matches!(
        error(r),
        TlsError::UnknownCa | TlsError::BadCertificate | TlsError::WrongHost
    ));
    assert_eq!(
        error(verify_server(&[], &t, Clock::Now(Y2030))),
        TlsError::BadCertificate
    );
    // An mqttca that is not a certificate is the config's fault.
    let r = verify_server(
        &[&s.der],
        &trust("mqtt.lan", Some(b"\x30\x00"), None),
        Clock::Now(Y2030),
    );
    assert_eq!(error(r), TlsError::BadConfig);
}

#[test]
fn the_handshake_signature_is_checked_with_the_servers_key() {
    let ca = ca("Hearth test CA");
    let s = server(&["mqtt.lan"], &ca);
    let t = trust("mqtt.lan", Some(ca.der()), None);
    let key = verify_server(&[&s.der], &t, Clock::Now(Y2030)).expect("verified");
    let signing = client_key(&s.key.serialize_der()).expect("PKCS#8 P-256 key");
    let transcript = [7u8; 32];
    let mut message = vec![0x20u8; 64];
    message.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
    message.extend_from_slice(&transcript);
    let signature: DerSignature = signing.sign(&message);
    key.verify_handshake(0x0403, signature.as_bytes(), &transcript)
        .expect("good signature");
    assert_eq!(
        key.verify_handshake(0x0403, signature.as_bytes(), &[8u8; 32])
            .expect_err("other transcript")
            .error,
        TlsError::Handshake
    );
    assert!(key
        .verify_handshake(0x0503, signature.as_bytes(), &transcript)
        .is_err());
    // A signature by another key.
    let other = SigningKey::from_slice(&[3u8; 32]).expect("key");
    let forged: DerSignature = other.sign(&message);
    assert!(key
        .verify_handshake(0x0403, forged.as_bytes(), &transcript)
        .is_err());
}

#[test]
fn client_keys_pkcs8_and_sec1_p256_only() {
    let key = KeyPair::generate().expect("key");
    let pkcs8 = key.serialize_der();
    let from_pkcs8 = client_key(&pkcs8).expect("PKCS#8");
    // The public key matches (rcgen's raw public key is the SEC1 point).
    assert_eq!(
        from_pkcs8
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes(),
        key.public_key_raw()
    );
    // The SEC1 ECPrivateKey inside the PKCS#8 (an OCTET STRING at its end) is accepted alone
    // when it names the curve.
    let sec1 = sec1_inside(&pkcs8);
    if sec1_names_curve(sec1) {
        assert_eq!(client_key(sec1).expect("SEC1"), from_pkcs8);
    } else {
        assert_eq!(
            client_key(sec1).expect_err("unnamed curve").error,
            TlsError::BadConfig
        );
    }
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    assert_eq!(
        client_key(&p384.serialize_der()).expect_err("P-384").error,
        TlsError::BadConfig
    );
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    assert_eq!(
        client_key(&ed.serialize_der()).expect_err("Ed25519").error,
        TlsError::BadConfig
    );
    assert_eq!(
        client_key(b"").expect_err("empty").error,
        TlsError::BadConfig
    );
}

/// One TLV at the start of `der`: (tag, contents, the rest after it). Short and long
/// definite lengths.
fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (der[0], der[1]);
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (tag, &der[header..header + len], &der[header + len..])
}

/// The ECPrivateKey of a PKCS#8 P-256 key: the contents of its privateKey OCTET STRING,
/// found by walking the DER (PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm
/// SEQUENCE, privateKey OCTET STRING, ... }). A byte search is not enough: random key bytes can
/// look like an OCTET STRING header.
fn sec1_inside(pkcs8: &[u8]) -> &[u8] {
    let (tag, info, _) = tlv(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    key
}

/// Does the ECPrivateKey (SEQUENCE { version, privateKey OCTET STRING, [0] parameters
/// OPTIONAL, [1] publicKey OPTIONAL }) carry its curve, the optional `[0]` after the key?
fn sec1_names_curve(sec1: &[u8]) -> bool {
    let (tag, key, _) = tlv(sec1);
    assert_eq!(tag, 0x30, "ECPrivateKey is a SEQUENCE");
    let (_, _, rest) = tlv(key); // version
    let (_, _, rest) = tlv(rest); // privateKey
    rest.first() == Some(&0xa0)
}

#[test]
fn every_single_byte_change_is_refused_never_a_panic() {
    // A chain that exercises every parser: a name-constrained intermediate with keyUsage and
    // EKU, a server certificate with DNS and IP names, keyUsage and EKU.
    let root = ca("Hearth root");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params
        .distinguished_name
        .push(DnType::CommonName, "Hearth constrained");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: vec![
            rcgen::GeneralSubtree::DnsName("lan".into()),
            rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_v4_prefix(
                [192, 168, 1, 0],
                24,
            )),
        ],
        excluded_subtrees: vec![rcgen::GeneralSubtree::DnsName("evil.lan".into())],
    });
    let mid = CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &root)
        .expect("intermediate");
    let s = server_with(
        &["mqtt.lan", "192.168.1.10"],
        &mid,
        (2020, 2200),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        },
    );
    let t = trust("mqtt.lan", Some(root.der()), None);
    verify_server(&[&s.der, mid.der()], &t, Clock::Now(Y2030)).expect("the unchanged chain");
    let (mut tried, mut refused) = (0, 0);
    for which in 0..2 {
        let original = if which == 0 {
            s.der.clone()
        } else {
            mid.der().to_vec()
        };
        for i in 0..original.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut changed = original.clone();
                changed[i] ^= flip;
                let chain: [&[u8]; 2] = if which == 0 {
                    [&changed, mid.der()]
                } else {
                    [&s.der, &changed]
                };
                // No panic, and no acceptance: every byte is covered by a signature or by
                // the structure around it.
                tried += 1;
                if verify_server(&chain, &t, Clock::Now(Y2030)).is_err() {
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(refused, tried, "changed certificates accepted");
}
