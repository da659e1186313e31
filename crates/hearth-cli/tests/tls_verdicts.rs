//! One table of good and bad certificate chains, made with rcgen, run through both server
//! verifiers: the chip's (`hearth_device::tls::verify_server`, our own `no_std` code) and the
//! simulator's (`hearth_sim::tls::verify_server`: rustls/webpki plus the keyUsage check). Each
//! case states the verdict it expects; both verifiers must give exactly that one (the same
//! `TlsError`, or acceptance). A difference between them is a failure here, not a note.
//!
//! The chip's lower-bound clock (`Clock::AtLeast`, no wall clock) is run on the same table: it
//! gives the same verdicts except that a "not before" in the future cannot be seen.

use hearth_device::tls::{verify_server as chip_verify, Clock, Rejection, Trust};
use hearth_platform::{TlsError, TlsSettings};
use hearth_sim::tls::{classify, verify_server as sim_verify};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CidrSubnet, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
};

/// 2030-01-01 00:00:00 UTC, "now" for every case.
const NOW: u64 = 1_893_456_000;

type Issuer = CertifiedIssuer<'static, KeyPair>;

/// A CA certificate's parameters: `name`, cA without a path length, keyCertSign.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2200, 1, 1);
    params
}

fn root_with(edit: impl FnOnce(&mut CertificateParams)) -> Issuer {
    let mut params = ca_params("Hearth root");
    edit(&mut params);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("root")
}

fn root() -> Issuer {
    root_with(|_| {})
}

/// An intermediate CA `name` issued by `issuer`, edited.
fn intermediate(name: &str, issuer: &Issuer, edit: impl FnOnce(&mut CertificateParams)) -> Issuer {
    let mut params = ca_params(name);
    edit(&mut params);
    CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), issuer)
        .expect("intermediate")
}

/// A server certificate for `names` (DNS names or IP addresses) issued by `issuer`, edited.
fn leaf(names: &[&str], issuer: &Issuer, edit: impl FnOnce(&mut CertificateParams)) -> Vec<u8> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, "broker");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2200, 1, 1);
    edit(&mut params);
    let key = KeyPair::generate().expect("key");
    params.signed_by(&key, issuer).expect("sign").der().to_vec()
}

/// A critical (or not) extension with an OID nobody knows (a private arc).
fn unknown_extension(critical: bool) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 1], vec![0x05, 0x00]);
    e.set_criticality(critical);
    e
}

fn dns_subtrees(permitted: &[&str], excluded: &[&str]) -> Option<NameConstraints> {
    let dns = |names: &[&str]| {
        names
            .iter()
            .map(|n| GeneralSubtree::DnsName(n.to_string()))
            .collect()
    };
    Some(NameConstraints {
        permitted_subtrees: dns(permitted),
        excluded_subtrees: dns(excluded),
    })
}

struct Case {
    name: &'static str,
    /// The server's certificate, then the intermediates it sends.
    chain: Vec<Vec<u8>>,
    /// `mqttca`.
    ca: Vec<u8>,
    host: &'static str,
    expected: Result<(), TlsError>,
    /// For a refusal: what the chip's reason must say (so that it fails for this reason).
    why: Option<&'static str>,
}

impl Case {
    fn because(mut self, why: &'static str) -> Self {
        self.why = Some(why);
        self
    }
}

fn case(
    name: &'static str,
    chain: Vec<Vec<u8>>,
    ca: &Issuer,
    host: &'static str,
    expected: Result<(), TlsError>,
) -> Case {
    Case {
        name,
        chain,
        ca: ca.der().to_vec(),
        host,
        expected,
        why: None,
    }
}

const OK: Result<(), TlsError> = Ok(());
const BAD: Result<(), TlsError> = Err(TlsError::BadCertificate);

fn table() -> Vec<Case> {
    let mut cases = Vec::new();
    let root = root();
    let mid = intermediate("Hearth intermediate", &root, |_| {});
    let none = |_: &mut CertificateParams| {};

    // Chains that must pass.
    let good = leaf(&["mqtt.lan", "192.168.1.10"], &mid, none);
    cases.push(case(
        "leaf <- intermediate <- root",
        vec![good.clone(), mid.der().to_vec()],
        &root,
        "mqtt.lan",
        OK,
    ));
    cases.push(case(
        "leaf signed by the root",
        vec![leaf(&["mqtt.lan"], &root, none)],
        &root,
        "mqtt.lan",
        OK,
    ));
    cases.push(case(
        "the intermediate as mqttca",
        vec![good.clone()],
        &mid,
        "mqtt.lan",
        OK,
    ));
    cases.push(case(
        "IP address in the SAN",
        vec![good.clone(), mid.der().to_vec()],
        &root,
        "192.168.1.10",
        OK,
    ));
    let wildcard = leaf(&["*.home.example"], &root, none);
    cases.push(case(
        "wildcard, one label",
        vec![wildcard.clone()],
        &root,
        "mqtt.home.example",
        OK,
    ));

    // Host names.
    cases.push(case(
        "wrong host",
        vec![good.clone(), mid.der().to_vec()],
        &root,
        "other.lan",
        Err(TlsError::WrongHost),
    ));
    cases.push(case(
        "wrong IP address",
        vec![good.clone(), mid.der().to_vec()],
        &root,
        "192.168.1.11",
        Err(TlsError::WrongHost),
    ));
    cases.push(case(
        "wildcard does not cover two labels",
        vec![wildcard.clone()],
        &root,
        "a.mqtt.home.example",
        Err(TlsError::WrongHost),
    ));
    cases.push(case(
        "wildcard does not cover its own suffix",
        vec![wildcard],
        &root,
        "home.example",
        Err(TlsError::WrongHost),
    ));

    // Issuers.
    let other_root = root_with(|p| {
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::CommonName, "Someone else");
    });
    cases.push(case(
        "another CA",
        vec![leaf(&["mqtt.lan"], &other_root, none)],
        &root,
        "mqtt.lan",
        Err(TlsError::UnknownCa),
    ));
    cases.push(case(
        "the intermediate not sent",
        vec![good.clone()],
        &root,
        "mqtt.lan",
        Err(TlsError::UnknownCa),
    ));

    // basicConstraints.
    cases.push(
        case(
            "a CA certificate as the server's",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
            })],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("is a CA certificate"),
    );
    for (name, flag) in [
        ("intermediate without basicConstraints", IsCa::NoCa),
        ("intermediate with cA false", IsCa::ExplicitNoCa),
    ] {
        let not_ca = intermediate("Not a CA", &root, |p| p.is_ca = flag);
        cases.push(
            case(
                name,
                vec![leaf(&["mqtt.lan"], &not_ca, none), not_ca.der().to_vec()],
                &root,
                "mqtt.lan",
                BAD,
            )
            .because("an intermediate certificate is not a CA"),
        );
    }
    let len0 = intermediate("pathLen 0", &root, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0))
    });
    cases.push(case(
        "pathLen 0 intermediate issuing the leaf",
        vec![leaf(&["mqtt.lan"], &len0, none), len0.der().to_vec()],
        &root,
        "mqtt.lan",
        OK,
    ));
    let below0 = intermediate("below pathLen 0", &len0, |_| {});
    cases.push(
        case(
            "pathLen 0 intermediate followed by another intermediate",
            vec![
                leaf(&["mqtt.lan"], &below0, none),
                below0.der().to_vec(),
                len0.der().to_vec(),
            ],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("pathLenConstraint"),
    );
    let len1 = intermediate("pathLen 1", &root, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
    });
    let below1 = intermediate("below pathLen 1", &len1, |_| {});
    cases.push(case(
        "pathLen 1 intermediate followed by one more",
        vec![
            leaf(&["mqtt.lan"], &below1, none),
            below1.der().to_vec(),
            len1.der().to_vec(),
        ],
        &root,
        "mqtt.lan",
        OK,
    ));
    // A path length on the configured CA is not checked (webpki: the anchor is trusted).
    let root_len0 = root_with(|p| p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0)));
    let under = intermediate("under a pathLen 0 root", &root_len0, |_| {});
    cases.push(case(
        "pathLen 0 on mqttca itself",
        vec![leaf(&["mqtt.lan"], &under, none), under.der().to_vec()],
        &root_len0,
        "mqtt.lan",
        OK,
    ));

    // Extended key usage, on every certificate.
    let client_only = |p: &mut CertificateParams| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let client_mid = intermediate("clients only", &root, client_only);
    cases.push(
        case(
            "intermediate with EKU clientAuth only",
            vec![
                leaf(&["mqtt.lan"], &client_mid, none),
                client_mid.der().to_vec(),
            ],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("an intermediate certificate is not for TLS servers"),
    );
    let server_mid = intermediate("servers", &root, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    });
    cases.push(case(
        "intermediate with EKU serverAuth",
        vec![
            leaf(&["mqtt.lan"], &server_mid, none),
            server_mid.der().to_vec(),
        ],
        &root,
        "mqtt.lan",
        OK,
    ));
    cases.push(
        case(
            "leaf with EKU clientAuth only",
            vec![leaf(&["mqtt.lan"], &root, client_only)],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("the server's certificate is not for TLS servers"),
    );
    cases.push(
        case(
            "leaf with EKU anyExtendedKeyUsage only",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Any]
            })],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("the server's certificate is not for TLS servers"),
    );

    // Unknown extensions.
    cases.push(
        case(
            "unknown critical extension on the leaf",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.custom_extensions = vec![unknown_extension(true)]
            })],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("the server's certificate has an unknown critical extension"),
    );
    cases.push(case(
        "unknown non-critical extension on the leaf",
        vec![leaf(&["mqtt.lan"], &root, |p| {
            p.custom_extensions = vec![unknown_extension(false)]
        })],
        &root,
        "mqtt.lan",
        OK,
    ));
    let odd_mid = intermediate("odd", &root, |p| {
        p.custom_extensions = vec![unknown_extension(true)]
    });
    cases.push(
        case(
            "unknown critical extension on the intermediate",
            vec![leaf(&["mqtt.lan"], &odd_mid, none), odd_mid.der().to_vec()],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("an intermediate certificate has an unknown critical extension"),
    );
    let odd_root = root_with(|p| p.custom_extensions = vec![unknown_extension(true)]);
    cases.push(case(
        "unknown critical extension on mqttca (trusted as configured)",
        vec![leaf(&["mqtt.lan"], &odd_root, none)],
        &odd_root,
        "mqtt.lan",
        OK,
    ));
    // A second subjectAltName (rcgen writes one for the names; this is another).
    let san = vec![
        0x30, 0x0a, 0x82, 0x08, b'm', b'q', b't', b't', b'.', b'l', b'a', b'n',
    ];
    cases.push(
        case(
            "duplicate subjectAltName extension",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.custom_extensions = vec![CustomExtension::from_oid_content(&[2, 5, 29, 17], san)]
            })],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("malformed"),
    );

    // keyUsage.
    let no_cert_sign = intermediate("no keyCertSign", &root, |p| {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign]
    });
    cases.push(
        case(
            "intermediate keyUsage without keyCertSign",
            vec![
                leaf(&["mqtt.lan"], &no_cert_sign, none),
                no_cert_sign.der().to_vec(),
            ],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("keyCertSign"),
    );
    let no_ku = intermediate("no keyUsage", &root, |p| p.key_usages = Vec::new());
    cases.push(case(
        "intermediate without keyUsage",
        vec![leaf(&["mqtt.lan"], &no_ku, none), no_ku.der().to_vec()],
        &root,
        "mqtt.lan",
        OK,
    ));
    let root_no_cert_sign = root_with(|p| p.key_usages = vec![KeyUsagePurpose::CrlSign]);
    cases.push(
        case(
            "mqttca keyUsage without keyCertSign",
            vec![leaf(&["mqtt.lan"], &root_no_cert_sign, none)],
            &root_no_cert_sign,
            "mqtt.lan",
            BAD,
        )
        .because("keyCertSign"),
    );
    cases.push(
        case(
            "leaf keyUsage without digitalSignature",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
            })],
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("digitalSignature"),
    );
    cases.push(
        case(
            "leaf keyUsage without digitalSignature, and the wrong host (the chain comes first)",
            vec![leaf(&["mqtt.lan"], &root, |p| {
                p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
            })],
            &root,
            "other.lan",
            BAD,
        )
        .because("digitalSignature"),
    );
    cases.push(case(
        "leaf keyUsage digitalSignature",
        vec![leaf(&["mqtt.lan"], &root, |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature]
        })],
        &root,
        "mqtt.lan",
        OK,
    ));

    // Validity periods.
    let years = |from: i32, to: i32| {
        move |p: &mut CertificateParams| {
            p.not_before = rcgen::date_time_ymd(from, 1, 1);
            p.not_after = rcgen::date_time_ymd(to, 1, 1);
        }
    };
    cases.push(case(
        "expired leaf",
        vec![
            leaf(&["mqtt.lan"], &mid, years(2020, 2025)),
            mid.der().to_vec(),
        ],
        &root,
        "mqtt.lan",
        Err(TlsError::Expired),
    ));
    let old_mid = intermediate("expired", &root, years(2020, 2025));
    cases.push(case(
        "expired intermediate",
        vec![leaf(&["mqtt.lan"], &old_mid, none), old_mid.der().to_vec()],
        &root,
        "mqtt.lan",
        Err(TlsError::Expired),
    ));
    cases.push(case(
        "leaf not valid yet",
        vec![leaf(&["mqtt.lan"], &root, years(2100, 2200))],
        &root,
        "mqtt.lan",
        Err(TlsError::NotYetValid),
    ));
    let old_root = root_with(years(2020, 2025));
    cases.push(case(
        "expired mqttca (trusted as configured)",
        vec![leaf(&["mqtt.lan"], &old_root, none)],
        &old_root,
        "mqtt.lan",
        OK,
    ));

    // Name constraints, of an intermediate and of mqttca.
    let lan_only = intermediate("lan only", &root, |p| {
        p.name_constraints = dns_subtrees(&["lan"], &[])
    });
    let via = |names: &[&str], ca: &Issuer| vec![leaf(names, ca, none), ca.der().to_vec()];
    cases.push(case(
        "permitted lan: mqtt.lan",
        via(&["mqtt.lan"], &lan_only),
        &root,
        "mqtt.lan",
        OK,
    ));
    cases.push(
        case(
            "permitted lan: mqtt.example",
            via(&["mqtt.example"], &lan_only),
            &root,
            "mqtt.example",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "permitted lan: one name of two outside",
            via(&["mqtt.lan", "mqtt.example"], &lan_only),
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "permitted lan: a label ending in lan is not within",
            via(&["mqtt.notlan"], &lan_only),
            &root,
            "mqtt.notlan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(case(
        "permitted lan: an IP address is not constrained by DNS subtrees",
        via(&["mqtt.lan", "10.0.0.1"], &lan_only),
        &root,
        "10.0.0.1",
        OK,
    ));
    cases.push(case(
        "permitted lan: wildcard inside",
        via(&["*.home.lan"], &lan_only),
        &root,
        "mqtt.home.lan",
        OK,
    ));
    let not_evil = intermediate("not evil", &root, |p| {
        p.name_constraints = dns_subtrees(&[], &["evil.lan", "evil.home.lan"])
    });
    cases.push(case(
        "excluded evil.lan: mqtt.lan",
        via(&["mqtt.lan"], &not_evil),
        &root,
        "mqtt.lan",
        OK,
    ));
    cases.push(
        case(
            "excluded evil.lan: x.evil.lan",
            via(&["x.evil.lan"], &not_evil),
            &root,
            "x.evil.lan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "excluded evil.lan: evil.lan itself",
            via(&["evil.lan"], &not_evil),
            &root,
            "evil.lan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "excluded evil.lan: wildcard *.evil.lan",
            via(&["*.evil.lan"], &not_evil),
            &root,
            "x.evil.lan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "excluded evil.home.lan: wildcard *.home.lan covers it",
            via(&["*.home.lan"], &not_evil),
            &root,
            "mqtt.home.lan",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(case(
        "excluded evil.home.lan: wildcard *.x.home.lan does not",
        via(&["*.x.home.lan"], &not_evil),
        &root,
        "mqtt.x.home.lan",
        OK,
    ));
    let subnet = intermediate("subnet", &root, |p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
                [192, 168, 1, 0],
                24,
            ))],
            excluded_subtrees: Vec::new(),
        })
    });
    cases.push(case(
        "permitted 192.168.1.0/24: 192.168.1.10",
        via(&["192.168.1.10"], &subnet),
        &root,
        "192.168.1.10",
        OK,
    ));
    cases.push(
        case(
            "permitted 192.168.1.0/24: 10.0.0.1",
            via(&["10.0.0.1"], &subnet),
            &root,
            "10.0.0.1",
            BAD,
        )
        .because("name constraints"),
    );
    cases.push(
        case(
            "permitted 192.168.1.0/24: an IPv6 address is another family",
            via(&["192.168.1.10", "::1"], &subnet),
            &root,
            "192.168.1.10",
            BAD,
        )
        .because("name constraints"),
    );
    let by_directory = intermediate("by directory", &root, |p| {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Hearth");
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DirectoryName(dn)],
            excluded_subtrees: Vec::new(),
        })
    });
    cases.push(
        case(
            "directory name constraints are not supported: refused",
            via(&["mqtt.lan"], &by_directory),
            &root,
            "mqtt.lan",
            BAD,
        )
        .because("name constraints"),
    );
    let root_example = root_with(|p| p.name_constraints = dns_subtrees(&["example"], &[]));
    cases.push(
        case(
            "mqttca permitted example: mqtt.lan",
            vec![leaf(&["mqtt.lan"], &root_example, none)],
            &root_example,
            "mqtt.lan",
            BAD,
        )
        .because("name constraints"),
    );
    let mid_example = intermediate("under example", &root_example, |_| {});
    cases.push(case(
        "mqttca permitted example: through an intermediate",
        via(&["mqtt.example"], &mid_example),
        &root_example,
        "mqtt.example",
        OK,
    ));
    cases
}

fn chip(case: &Case, clock: Clock) -> Result<(), Rejection> {
    let chain: Vec<&[u8]> = case.chain.iter().map(Vec::as_slice).collect();
    let trust = Trust {
        server_name: case.host,
        ca: Some(&case.ca),
        pin: None,
    };
    chip_verify(&chain, &trust, clock).map(|_| ())
}

fn sim(case: &Case) -> Result<(), (TlsError, String)> {
    let settings = TlsSettings {
        server_name: case.host.to_string(),
        ca: Some(case.ca.clone()),
        pin: None,
        client_cert: None,
        client_key: None,
    };
    sim_verify(&settings, &case.chain, NOW).map_err(|e| (classify(&e), e.to_string()))
}

#[test]
fn the_chip_and_the_simulator_give_the_expected_verdict_on_every_chain() {
    let mut wrong = Vec::new();
    let cases = table();
    for case in &cases {
        let chip_verdict = chip(case, Clock::Now(NOW));
        let sim_verdict = sim(case);
        let reason_ok = match (&chip_verdict, case.why) {
            (Err(r), Some(why)) => r.reason.contains(why),
            _ => true,
        };
        if chip_verdict.map_err(|r| r.error) != case.expected
            || !reason_ok
            || sim_verdict.as_ref().map(|_| ()).map_err(|(e, _)| *e) != case.expected
        {
            wrong.push(format!(
                "{}: expected {:?}, chip {chip_verdict:?}, simulator {sim_verdict:?}",
                case.name, case.expected,
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert!(cases.len() >= 40, "the table shrank: {}", cases.len());
}

#[test]
fn a_lower_bound_clock_gives_the_same_verdicts_but_cannot_see_not_before() {
    for case in table() {
        let expected = match case.expected {
            Err(TlsError::NotYetValid) => Ok(()),
            other => other,
        };
        let verdict = chip(&case, Clock::AtLeast(NOW));
        assert_eq!(
            verdict.map_err(|r| r.error),
            expected,
            "{}: {verdict:?}",
            case.name
        );
    }
}
