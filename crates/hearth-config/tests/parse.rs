//! Behaviour of `parse`/`parse_with` as a user of the crate sees it: every syntax and
//! validation rule, error reporting, rendering round-trips, and robustness on hostile input.

use std::net::{Ipv4Addr, Ipv6Addr};

use hearth_config::{
    parse, parse_with, Broker, Config, ConfigError, ConfigErrors, ErrorKind, Host, KeySpec,
    MqttCredentials, Network, Timings,
};

const PROFILES: &[&str] = &["weather", "tank", "energy"];

/// A valid base file; tests append or replace lines.
const BASE: &str =
    "profile weather\nssid Home\npassword secret-pass\nmqttbroker mqtt.lan\nmqttname Weather1\n";

fn ok(text: &str) -> Config {
    parse(text, PROFILES).unwrap_or_else(|e| panic!("expected valid, got:\n{e}\n--- text:\n{text}"))
}

fn errs(text: &str) -> ConfigErrors {
    match parse(text, PROFILES) {
        Ok(c) => panic!("expected errors, got {c:?}\n--- text:\n{text}"),
        Err(e) => e,
    }
}

/// The errors as `config.txt:N: message` lines.
fn rendered(text: &str) -> Vec<String> {
    errs(text)
        .as_slice()
        .iter()
        .map(|e| e.located("config.txt").to_string())
        .collect()
}

/// The single error of `text`, rendered.
fn one(text: &str) -> String {
    let r = rendered(text);
    assert_eq!(r.len(), 1, "expected exactly one error, got {r:#?}");
    r.into_iter().next().unwrap_or_default()
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

// ---------------------------------------------------------------------------- syntax

#[test]
fn minimal_file_and_defaults() {
    let c = ok(BASE);
    assert_eq!(c.profile, "weather");
    assert_eq!(
        c.network,
        Network::Wifi {
            ssid: "Home".into(),
            password: Some("secret-pass".into())
        }
    );
    assert_eq!(
        c.mqtt.broker,
        Some(Broker {
            host: Host::Name("mqtt.lan".into()),
            port: 1883,
            tls: false,
        })
    );
    assert_eq!(c.mqtt.name, "Weather1");
    assert_eq!(c.mqtt.credentials, None);
    assert_eq!(c.mqtt.keepalive_s, 30);
    assert_eq!(c.espnow, Default::default());
    assert_eq!(c.timings, Timings::default());
    assert!(c.profile_settings.is_empty());

    let t = c.timings;
    assert_eq!(t.watchdog_s, Some(15));
    assert_eq!(t.start_delay_s, 10);
    assert_eq!(t.watchdog_grace_s, 10);
    assert_eq!(t.may_block_s, 120);
    assert_eq!(t.net_connect_timeout_s, 60);
    assert_eq!(t.net_retry_s, 30);
    assert_eq!(t.net_retry_fudge_s, 15);
    assert_eq!(t.net_reboot_s, Some(600));
    assert_eq!(t.mqtt_backoff_ms, 500);
    assert_eq!(t.mqtt_backoff_max_ms, 60_000);
    assert_eq!(t.mqtt_reboot_s, Some(600));
    assert_eq!(t.uptime_eval_s, 60);
    assert_eq!(t.uptime_force_s, 1800);
}

#[test]
fn reference_format_file_parses() {
    // As the reference firmware's users wrote them: single spaces, None values, `flavor`,
    // `watchdog 1`, an IPv4 broker.
    let text = "ssid MyWifi\npassword None\nmqttbroker 192.168.0.10\nmqttname MainsB\nwatchdog 1\nespnowgroup None\nflavor energy\n";
    let c = ok(text);
    assert_eq!(c.profile, "energy");
    assert_eq!(
        c.network,
        Network::Wifi {
            ssid: "MyWifi".into(),
            password: None
        }
    );
    assert_eq!(
        c.mqtt.broker,
        Some(Broker {
            host: Host::Ipv4(Ipv4Addr::new(192, 168, 0, 10)),
            port: 1883,
            tls: false,
        })
    );
    assert_eq!(c.timings.watchdog_s, Some(15));
    assert_eq!(c.espnow.group, None);

    // An ESP-NOW central on Ethernet, as in the reference's samples.
    let text = "ssid (wired)\nmqttbroker broker\nmqttname TNowC\nwatchdog 1\nespnowgroup grp\nespnowpsk abcdefgh\nespnowchannel 6\nespnowversion 2\nflavor tank\n";
    let c = ok(text);
    assert_eq!(c.network, Network::Wired);
    assert_eq!(c.espnow.group.as_deref(), Some("grp"));
    assert_eq!(c.espnow.psk.as_deref(), Some("abcdefgh"));
    assert_eq!(c.espnow.channel, Some(6));
}

#[test]
fn values_keep_inner_spaces() {
    let c = ok(
        "profile weather\nssid  My  Home Net \t\npassword\t\tcorrect horse battery\nmqttbroker mqtt.lan\nmqttname W\n",
    );
    assert_eq!(
        c.network,
        Network::Wifi {
            ssid: "My  Home Net".into(),
            password: Some("correct horse battery".into())
        }
    );
}

#[test]
fn comments_blank_lines_and_indentation() {
    let text = "# Hearth\n\n   # indented comment\n\t\nprofile weather\n  ssid Home   \n#ssid Other\npassword secret-pass\nmqttbroker mqtt.lan\nmqttname W\n";
    let c = ok(text);
    assert!(matches!(c.network, Network::Wifi { ref ssid, .. } if ssid == "Home"));
}

#[test]
fn crlf_and_bom() {
    let crlf = BASE.replace('\n', "\r\n");
    assert_eq!(ok(&crlf), ok(BASE));
    let bom = format!("\u{feff}{crlf}");
    assert_eq!(ok(&bom), ok(BASE));
    // Line numbers still count from the BOM line.
    let bad = format!("\u{feff}# c\r\n{}", crlf.replace("mqttname W", "mqtname W"));
    assert_eq!(
        rendered(&bad)[0],
        "config.txt:6: unknown key \"mqtname\" (did you mean \"mqttname\"?)"
    );
}

#[test]
fn keys_are_case_sensitive() {
    let text = BASE.replace("ssid Home", "SSID Home");
    assert_eq!(
        rendered(&text),
        [
            "config.txt:2: unknown key \"SSID\" (did you mean \"ssid\"?)",
            "config.txt: missing required key \"ssid\" (write \"ssid (none)\" for a device without a network)",
        ]
    );
}

#[test]
fn none_means_absent_for_optional_keys() {
    let c = ok(&with(
        "mqttuser None\nmqttpassword None\nwatchdog None\nespnowchannel None\nnetreboot None\n",
    ));
    assert_eq!(c.mqtt.credentials, None);
    assert_eq!(c.timings, Timings::default());
    assert_eq!(c.espnow.channel, None);
}

#[test]
fn none_is_an_error_for_required_keys() {
    let text = BASE.replace("mqttname Weather1", "mqttname None");
    assert_eq!(
        one(&text),
        "config.txt:5: bad value for \"mqttname\": expected a value; this key is required, so None is not allowed"
    );
}

// ---------------------------------------------------------------------------- errors

#[test]
fn unknown_key_with_and_without_suggestion() {
    let r = rendered(&BASE.replace("mqttbroker", "mqtbroker"));
    assert_eq!(
        r,
        [
            "config.txt:4: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)",
            "config.txt: missing required key \"mqttbroker\"",
        ]
    );
    assert_eq!(
        one(&with("colour blue\n")),
        "config.txt:6: unknown key \"colour\""
    );
    assert_eq!(
        one(&with("wachdog 0\n")),
        "config.txt:6: unknown key \"wachdog\" (did you mean \"watchdog\"?)"
    );
    // An unknown key without a value is still reported as unknown.
    assert_eq!(
        one(&with("mqtt_keepalive\n")),
        "config.txt:6: unknown key \"mqtt_keepalive\" (did you mean \"mqttkeepalive\"?)"
    );
}

#[test]
fn unknown_key_error_is_typed() {
    let e = errs(&with("mqtt_name x\n"));
    assert_eq!(
        e.as_slice(),
        [ConfigError {
            line: Some(6),
            kind: ErrorKind::UnknownKey {
                key: "mqtt_name".into(),
                suggestion: Some("mqttname")
            }
        }]
    );
}

#[test]
fn duplicate_key_names_both_lines() {
    assert_eq!(
        one(&with("\nssid Other\n")),
        "config.txt:7: duplicate key \"ssid\" (first given on line 2)"
    );
    // Also when either occurrence is None or valueless.
    let r = rendered(&with("ssid None\nssid\n"));
    assert_eq!(
        r,
        [
            "config.txt:6: duplicate key \"ssid\" (first given on line 2)",
            "config.txt:7: duplicate key \"ssid\" (first given on line 2)",
        ]
    );
}

#[test]
fn key_without_value() {
    assert_eq!(
        one(&with("watchdog\n")),
        "config.txt:6: key \"watchdog\" has no value (write \"watchdog None\" for none)"
    );
    // A required key without a value is reported once, not also as missing.
    assert_eq!(
        one(&BASE.replace("mqttname Weather1", "mqttname")),
        "config.txt:5: key \"mqttname\" has no value (write \"mqttname None\" for none)"
    );
}

#[test]
fn all_errors_are_reported_in_line_order() {
    let text = "\
# broken on purpose
profile weather
ssid
mqtbroker mqtt.lan
mqttname bad/name
watchdog off
watchdog 20
mayblock 0
mqttbackoffms 2000
mqttbackoffmaxms 1000
espnowchannel 14
";
    let e = errs(text);
    let lines: Vec<Option<usize>> = e.as_slice().iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        [
            Some(3),
            Some(4),
            Some(5),
            Some(6),
            Some(7),
            Some(8),
            Some(10),
            Some(11),
            None
        ]
    );
    let all = e.located("config.txt").to_string();
    let expected = "\
config.txt:3: key \"ssid\" has no value (write \"ssid None\" for none)
config.txt:4: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)
config.txt:5: bad value \"bad/name\" for \"mqttname\": expected 1..=64 characters without whitespace, '/', '+' or '#' (it is used in MQTT topics)
config.txt:6: bad value \"off\" for \"watchdog\": write 0 to disable the watchdog (the reference firmware read any value but 0, even \"off\", as on)
config.txt:7: duplicate key \"watchdog\" (first given on line 6)
config.txt:8: bad value \"0\" for \"mayblock\": expected seconds as a whole number 1..=3600
config.txt:10: \"mqttbackoffmaxms\" (1000 ms) must be at least \"mqttbackoffms\" (2000 ms)
config.txt:11: bad value \"14\" for \"espnowchannel\": expected a Wi-Fi channel as a whole number 1..=13
config.txt: missing required key \"mqttbroker\"";
    assert_eq!(all, expected);
    // Without a file name.
    assert!(e
        .to_string()
        .starts_with("line 3: key \"ssid\" has no value"));
    assert_eq!(e.len(), 9);
    assert_eq!(e.into_vec().len(), 9);
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        rendered(""),
        [
            "config.txt: missing required key \"profile\" (write \"profile <name>\" with <name> one of: weather, tank, energy)",
            "config.txt: missing required key \"ssid\" (write \"ssid (none)\" for a device without a network)",
            "config.txt: missing required key \"mqttbroker\"",
            "config.txt: missing required key \"mqttname\"",
        ]
    );
    assert_eq!(
        parse("", &[])
            .unwrap_err()
            .as_slice()
            .first()
            .map(|e| e.to_string()),
        Some("missing required key \"profile\" (write \"profile <name>\")".into())
    );
}

// ---------------------------------------------------------------------------- keys

#[test]
fn profile_and_flavor() {
    assert_eq!(ok(&BASE.replace("profile", "flavor")).profile, "weather");
    assert_eq!(
        one(&with("flavor weather\n")),
        "config.txt:6: both \"profile\" (line 1) and its old synonym \"flavor\" (line 6) are given; keep only \"profile\""
    );
    assert_eq!(
        one(&BASE.replace("profile weather", "profile wether")),
        "config.txt:1: bad value \"wether\" for \"profile\": expected one of: weather, tank, energy"
    );
    // `profile None` + `flavor x`: the synonym that has a value wins.
    assert_eq!(
        ok(&with("flavor tank\n").replace("profile weather", "profile None")).profile,
        "tank"
    );
    // With no list from the caller, any lower-case identifier is accepted.
    let c = parse(&BASE.replace("weather", "my_thing2"), &[]).map(|c| c.profile);
    assert_eq!(c.as_deref(), Ok("my_thing2"));
    assert!(parse(&BASE.replace("weather", "My-Thing"), &[]).is_err());
}

#[test]
fn ssid_rules() {
    let net = |ssid: &str| {
        ok(&BASE
            .replace("ssid Home", ssid)
            .replace("password secret-pass\n", ""))
        .network
    };
    assert_eq!(net("ssid (wired)"), Network::Wired);
    assert_eq!(net("ssid (wired2)"), Network::Wired2);
    assert_eq!(
        net(&format!("ssid {}", "s".repeat(32))),
        Network::Wifi {
            ssid: "s".repeat(32),
            password: None
        }
    );
    assert_eq!(
        one(&BASE.replace("ssid Home", &format!("ssid {}", "s".repeat(33)))),
        "config.txt:2: bad value \"sssssssssssssssssssssssssssssssss\" for \"ssid\": expected a Wi-Fi network name of at most 32 bytes, or (wired), (wired2), (none)"
    );
    assert_eq!(
        one(&BASE.replace("ssid Home", "ssid (Wired)")),
        "config.txt:2: bad value \"(Wired)\" for \"ssid\": special values are lower-case; did you mean \"(wired)\"?"
    );
}

#[test]
fn no_network_makes_broker_optional() {
    let base =
        "profile tank\nssid (none)\nmqttname Scale\nespnowgroup g\nespnowpsk k\nespnowversion 2\n";
    let c = ok(base);
    assert_eq!(c.network, Network::None);
    assert_eq!(c.mqtt.broker, None);
    // Given anyway: kept (and checked).
    assert!(ok(&format!("{base}mqttbroker b\n")).mqtt.broker.is_some());
    assert_eq!(
        one(&format!("{base}mqttbroker b:0\n")),
        "config.txt:7: bad value \"b:0\" for \"mqttbroker\": expected host or host:port with port 1..=65535, where host is a DNS name, an IPv4 address or an [IPv6] address, optionally after mqtt:// (plain) or mqtts:// (TLS)"
    );
    // mqttname stays required: it is the device's name.
    assert_eq!(
        one("profile tank\nssid (none)\n"),
        "config.txt: missing required key \"mqttname\""
    );
}

#[test]
fn password_rules() {
    assert_eq!(
        one(&BASE.replace("secret-pass", "short")),
        "config.txt:3: bad value for \"password\": expected a WPA2 passphrase of 8..=63 characters (or 64 hex digits), or None for an open network"
    );
    let hex = "0123456789abcdef".repeat(4);
    assert!(matches!(
        ok(&BASE.replace("secret-pass", &hex)).network,
        Network::Wifi { password: Some(ref p), .. } if *p == hex
    ));
    assert_eq!(
        one(&BASE.replace("ssid Home", "ssid (wired)")),
        "config.txt:3: \"password\" is only used with a Wi-Fi \"ssid\", not with (wired); remove it or write \"password None\""
    );
    assert_eq!(
        ok(&BASE
            .replace("ssid Home", "ssid (wired)")
            .replace("secret-pass", "None"))
        .network,
        Network::Wired
    );
}

#[test]
fn broker_forms() {
    let broker = |v: &str| ok(&BASE.replace("mqtt.lan", v)).mqtt.broker;
    assert_eq!(
        broker("mqtt.lan:8883"),
        Some(Broker {
            host: Host::Name("mqtt.lan".into()),
            port: 8883,
            tls: false,
        })
    );
    assert_eq!(
        broker("[fd00::10]:1884"),
        Some(Broker {
            host: Host::Ipv6(
                "fd00::10"
                    .parse::<Ipv6Addr>()
                    .unwrap_or(Ipv6Addr::UNSPECIFIED)
            ),
            port: 1884,
            tls: false,
        })
    );
    assert_eq!(
        one(&BASE.replace("mqtt.lan", "fd00::10")),
        "config.txt:4: bad value \"fd00::10\" for \"mqttbroker\": IPv6 addresses must be in brackets, e.g. [fd00::1] or [fd00::1]:1883"
    );
    assert!(one(&BASE.replace("mqtt.lan", "10.0.0.256"))
        .contains("expected host or host:port with port 1..=65535"));
}

// ---------------------------------------------------------------------------- TLS

/// A syntactically plausible certificate: a DER SEQUENCE of `n` bytes.
fn der(n: u8) -> String {
    let mut d = vec![0x30, n];
    d.extend((0..n).map(|i| i.wrapping_mul(7)));
    hearth_config::base64::encode(&d)
}

fn tls_base() -> String {
    BASE.replace("mqttbroker mqtt.lan", "mqttbroker mqtts://mqtt.lan")
}

#[test]
fn tls_broker_and_keys() {
    let pin = "ab".repeat(32);
    let c = ok(&format!(
        "{}mqttca {}\nmqttpin {pin}\nmqttclientcert {}\nmqttclientkey {}\n",
        tls_base(),
        der(10),
        der(20),
        der(30)
    ));
    let b = c.mqtt.broker.clone().expect("broker");
    assert_eq!((b.tls, b.port), (true, 8883));
    let tls = c.mqtt.tls.clone().expect("tls");
    assert_eq!(tls.ca.as_ref().map(Vec::len), Some(12));
    assert_eq!(tls.pin, Some([0xab; 32]));
    let client = tls.client.clone().expect("client identity");
    assert_eq!((client.cert.len(), client.key.len()), (22, 32));
    // Round trip, and the key never shows in Debug output.
    assert_eq!(ok(&c.to_text()), c);
    assert!(c.to_text().contains("mqttbroker mqtts://mqtt.lan\n"));
    let key_b64 = der(30);
    assert!(!format!("{c:?}").contains(&key_b64));
    assert!(format!("{c:?}").contains("<redacted>"));
    // Pin only, and CA only, are enough; a plain broker has no TLS.
    assert!(ok(&format!("{}mqttpin {pin}\n", tls_base()))
        .mqtt
        .tls
        .is_some());
    assert!(ok(&format!("{}mqttca {}\n", tls_base(), der(5)))
        .mqtt
        .tls
        .is_some());
    assert_eq!(ok(BASE).mqtt.tls, None);
    assert_eq!(
        ok(&BASE.replace("mqtt.lan", "mqtt://mqtt.lan")).mqtt.tls,
        None
    );
}

#[test]
fn tls_rules_are_line_numbered() {
    assert_eq!(
        one(&tls_base()),
        "config.txt:4: an mqtts:// broker needs \"mqttca\" (the CA certificate that signed the broker's certificate) or \"mqttpin\" (its public key's SHA-256), or both; `hearth tls config-lines` prints them"
    );
    assert_eq!(
        one(&with(&format!("mqttca {}\n", der(5)))),
        "config.txt:6: \"mqttca\" is only used with a TLS broker: write \"mqttbroker mqtts://HOST[:PORT]\", or remove it"
    );
    let both = rendered(&with(&format!(
        "mqttpin {}\nmqttclientkey {}\n",
        "00".repeat(32),
        der(3)
    )));
    assert_eq!(both.len(), 3, "{both:#?}");
    assert!(both[0].starts_with("config.txt:6: \"mqttpin\" is only used with a TLS broker"));
    assert!(both
        .iter()
        .any(|l| l
            == "config.txt:7: \"mqttclientkey\" needs \"mqttclientcert\" (give both or neither)"));
    assert_eq!(
        one(&format!(
            "{}mqttpin {}\nmqttclientcert {}\n",
            tls_base(),
            "00".repeat(32),
            der(3)
        )),
        "config.txt:7: \"mqttclientcert\" needs \"mqttclientkey\" (give both or neither)"
    );
    let bad = |line: &str| {
        one(&format!(
            "{}mqttpin {}\n{line}\n",
            tls_base(),
            "00".repeat(32)
        ))
    };
    assert!(bad("mqttca -----BEGIN CERTIFICATE-----").starts_with("config.txt:7: bad value \"-----BEGIN CERTIFICATE-----\" for \"mqttca\": expected the base64 of the CA certificate's DER on one line, not PEM"));
    assert!(bad("mqttca aGVsbG8=").contains("not a DER CA certificate"));
    assert!(bad("mqttca MIIB!").contains("character 5 is not base64"));
    assert!(bad(&format!("mqttclientcert {}\nmqttclientkey x", der(3)))
        .starts_with("config.txt:8: bad value for \"mqttclientkey\""));
    assert_eq!(
        one(&format!("{}mqttpin abc\n", tls_base())),
        "config.txt:6: bad value \"abc\" for \"mqttpin\": expected 64 hex digits: the SHA-256 of the broker certificate's public key (SubjectPublicKeyInfo DER); `hearth tls config-lines --pin-from CERT` prints the line"
    );
    assert!(one(&BASE.replace("mqtt.lan", "ssl://mqtt.lan")).contains("unknown scheme \"ssl://\""));
    // A device without network may not carry TLS keys either.
    let none = format!(
        "profile weather\nssid (none)\nmqttname x\nmqttpin {}\n",
        "00".repeat(32)
    );
    assert!(one(&none).starts_with("config.txt:4: \"mqttpin\" is only used with a TLS broker"));
}

#[test]
fn mqtt_name_rules() {
    for bad in ["a/b", "a+b", "x#", "two words"] {
        let e = one(&BASE.replace("Weather1", bad));
        assert!(
            e.starts_with(&format!(
                "config.txt:5: bad value \"{bad}\" for \"mqttname\""
            )),
            "{e}"
        );
    }
    assert!(one(&BASE.replace("Weather1", &"n".repeat(65))).contains("1..=64"));
    assert_eq!(
        ok(&BASE.replace("Weather1", &"n".repeat(64)))
            .mqtt
            .name
            .len(),
        64
    );
}

#[test]
fn mqtt_credentials() {
    let c = ok(&with(
        "mqttuser dev\nmqttpassword pass word\nmqttkeepalive 60\n",
    ));
    assert_eq!(
        c.mqtt.credentials,
        Some(MqttCredentials {
            user: "dev".into(),
            password: Some("pass word".into())
        })
    );
    assert_eq!(c.mqtt.keepalive_s, 60);
    assert_eq!(
        ok(&with("mqttuser dev\n")).mqtt.credentials,
        Some(MqttCredentials {
            user: "dev".into(),
            password: None
        })
    );
    assert_eq!(
        one(&with("mqttpassword pw\n")),
        "config.txt:6: \"mqttpassword\" is given without \"mqttuser\""
    );
    assert_eq!(
        one(&with("mqttkeepalive 4\n")),
        "config.txt:6: bad value \"4\" for \"mqttkeepalive\": expected seconds as a whole number 5..=3600"
    );
}

#[test]
fn watchdog_compatibility() {
    let wd = |v: &str| ok(&with(&format!("watchdog {v}\n"))).timings.watchdog_s;
    assert_eq!(ok(BASE).timings.watchdog_s, Some(15), "on by default");
    assert_eq!(wd("0"), None);
    assert_eq!(wd("1"), Some(15), "reference 'on'");
    assert_eq!(wd("4"), Some(15));
    assert_eq!(wd("5"), Some(5));
    assert_eq!(wd("120"), Some(120));
    assert_eq!(wd("3600"), Some(3600));
    assert_eq!(wd("on"), Some(15));
    assert_eq!(wd("yes"), Some(15));
    assert_eq!(
        one(&with("watchdog 3601\n")),
        "config.txt:6: bad value \"3601\" for \"watchdog\": expected 0 (off), or the timeout in seconds as a whole number 5..=3600 (1..=4 mean on with the default 15 s, as in the reference)"
    );
    assert!(one(&with("watchdog off\n")).contains("write 0 to disable"));
    assert!(one(&with("watchdog false\n")).contains("write 0 to disable"));
    const { assert!(hearth_config::WATCHDOG_MIN_S > hearth_config::WATCHDOG_FEED_PERIOD_S) };
}

#[test]
fn espnow_keys() {
    let c = ok(&with(
        "espnowgroup my group\nespnowpsk a long psk of 24 chars\nespnowchannel 13\n",
    ));
    assert_eq!(c.espnow.group.as_deref(), Some("my group"));
    assert_eq!(c.espnow.psk.as_deref(), Some("a long psk of 24 chars"));
    assert_eq!(c.espnow.channel, Some(13));
    for bad in ["0", "14", "x", "-1"] {
        assert!(one(&with(&format!("espnowchannel {bad}\n"))).contains("1..=13"));
    }
}

#[test]
fn timing_keys_and_ranges() {
    let c = ok(&with(
        "startdelay 0\nwdgrace 0\nmayblock 300\nnetconnecttimeout 30\nnetretry 10\nnetretryfudge 0\nnetreboot 0\nmqttbackoffms 1000\nmqttbackoffmaxms 1000\nmqttreboot 0\nuptimeeval 10\nuptimeforce 10\n",
    ));
    assert_eq!(
        c.timings,
        Timings {
            watchdog_s: Some(15),
            start_delay_s: 0,
            watchdog_grace_s: 0,
            may_block_s: 300,
            net_connect_timeout_s: 30,
            net_retry_s: 10,
            net_retry_fudge_s: 0,
            net_reboot_s: None,
            mqtt_backoff_ms: 1000,
            mqtt_backoff_max_ms: 1000,
            mqtt_reboot_s: None,
            uptime_eval_s: 10,
            uptime_force_s: 10,
        }
    );
    let cases = [
        (
            "startdelay 301",
            "expected seconds as a whole number 0..=300",
        ),
        ("wdgrace 301", "expected seconds as a whole number 0..=300"),
        (
            "mayblock 3601",
            "expected seconds as a whole number 1..=3600",
        ),
        (
            "netconnecttimeout 4",
            "expected seconds as a whole number 5..=600",
        ),
        ("netretry 0", "expected seconds as a whole number 1..=3600"),
        (
            "netretryfudge 3601",
            "expected seconds as a whole number 0..=3600",
        ),
        (
            "netreboot 59",
            "expected seconds as a whole number 60..=86400, or 0 to never reboot",
        ),
        (
            "mqttbackoffms 99",
            "expected milliseconds as a whole number 100..=60000",
        ),
        (
            "mqttbackoffmaxms 3600001",
            "expected milliseconds as a whole number 100..=3600000",
        ),
        (
            "mqttreboot 86401",
            "expected seconds as a whole number 60..=86400, or 0 to never reboot",
        ),
        (
            "uptimeeval 0",
            "expected seconds as a whole number 1..=86400",
        ),
        (
            "uptimeforce 1.5",
            "expected seconds as a whole number 1..=86400",
        ),
        (
            "startdelay -1",
            "expected seconds as a whole number 0..=300",
        ),
        (
            "startdelay +1",
            "expected seconds as a whole number 0..=300",
        ),
        (
            "startdelay 99999999999999999999",
            "expected seconds as a whole number 0..=300",
        ),
    ];
    for (line, expected) in cases {
        let (key, value) = line.split_once(' ').unwrap_or_default();
        assert_eq!(
            one(&with(&format!("{line}\n"))),
            format!("config.txt:6: bad value \"{value}\" for \"{key}\": {expected}")
        );
    }
}

#[test]
fn cross_field_rules() {
    // Back-off cap below the initial back-off, whichever key is given.
    assert_eq!(
        one(&with("mqttbackoffmaxms 400\n")),
        "config.txt:6: \"mqttbackoffmaxms\" (400 ms) must be at least \"mqttbackoffms\" (500 ms)"
    );
    assert_eq!(
        one(&with("mqttbackoffms 60000\nmqttbackoffmaxms 59999\n")),
        "config.txt:7: \"mqttbackoffmaxms\" (59999 ms) must be at least \"mqttbackoffms\" (60000 ms)"
    );
    // Keepalive against the MQTT reboot deadline; irrelevant when that reboot is off.
    assert_eq!(
        one(&with("mqttkeepalive 600\n")),
        "config.txt:6: \"mqttkeepalive\" (600 s) must be less than \"mqttreboot\" (600 s), or set \"mqttreboot 0\""
    );
    assert_eq!(
        one(&with("mqttreboot 60\nmqttkeepalive 60\n")),
        "config.txt:7: \"mqttkeepalive\" (60 s) must be less than \"mqttreboot\" (60 s), or set \"mqttreboot 0\""
    );
    assert_eq!(
        ok(&with("mqttkeepalive 3600\nmqttreboot 0\n"))
            .mqtt
            .keepalive_s,
        3600
    );
    // The network reboot must leave time for a connection attempt.
    assert_eq!(
        one(&with("netreboot 60\n")),
        "config.txt:6: \"netreboot\" (60 s) must be longer than \"netconnecttimeout\" (60 s), or 0 to never reboot"
    );
    assert!(
        ok(&with("netreboot 60\nnetconnecttimeout 30\n"))
            .timings
            .net_reboot_s
            == Some(60)
    );
    // Forced republication cannot be more frequent than evaluation.
    assert_eq!(
        one(&with("uptimeforce 30\n")),
        "config.txt:6: \"uptimeforce\" (30 s) must be at least \"uptimeeval\" (60 s)"
    );
    // A value that is itself bad is reported once; the rule that uses it is skipped.
    assert_eq!(
        one(&with("mqttbackoffms 1\n")),
        "config.txt:6: bad value \"1\" for \"mqttbackoffms\": expected milliseconds as a whole number 100..=60000"
    );
}

// ---------------------------------------------------------------------------- profile keys

fn litres(v: &str) -> Result<(), &'static str> {
    match v.parse::<u32>() {
        Ok(1..=100_000) => Ok(()),
        _ => Err("expected litres as a whole number 1..=100000"),
    }
}

fn anything(_: &str) -> Result<(), &'static str> {
    Ok(())
}

const TANK_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "capacity",
        required: true,
        validator: litres,
    },
    KeySpec {
        name: "unit",
        required: false,
        validator: anything,
    },
    // Shadowed by the framework key: ignored.
    KeySpec {
        name: "ssid",
        required: true,
        validator: litres,
    },
];

fn tank(text: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, PROFILES, TANK_KEYS)
}

#[test]
fn profile_keys_are_validated_and_returned() {
    let c = tank(&with("capacity 1000\nunit L\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.profile_settings.len(), 2);
    assert_eq!(
        c.profile_settings.get("capacity").map(String::as_str),
        Some("1000")
    );
    assert_eq!(
        c.profile_settings.get("unit").map(String::as_str),
        Some("L")
    );
    // Optional and None: absent from the map.
    let c = tank(&with("capacity 5\nunit None\n")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.profile_settings.contains_key("unit"));

    let render = |r: Result<Config, ConfigErrors>| -> Vec<String> {
        r.err()
            .map(|e| {
                e.as_slice()
                    .iter()
                    .map(|e| e.located("tank.txt").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        render(tank(BASE)),
        ["tank.txt: missing required key \"capacity\""]
    );
    assert_eq!(
        render(tank(&with("capacity None\n"))),
        ["tank.txt:6: bad value for \"capacity\": expected a value; this key is required, so None is not allowed"]
    );
    assert_eq!(
        render(tank(&with("capacity lots\ncapacity 3\ncapasity 4\n"))),
        [
            "tank.txt:6: bad value \"lots\" for \"capacity\": expected litres as a whole number 1..=100000",
            "tank.txt:7: duplicate key \"capacity\" (first given on line 6)",
            "tank.txt:8: unknown key \"capasity\" (did you mean \"capacity\"?)",
        ]
    );
    // Without the spec, the key is unknown.
    assert_eq!(
        one(&with("capacity 1000\n")),
        "config.txt:6: unknown key \"capacity\""
    );
}

// ---------------------------------------------------------------------------- rendering

#[test]
fn example_is_valid() {
    for p in PROFILES {
        let c = ok(&Config::example(p));
        assert_eq!(c.profile, *p);
        assert_eq!(c.mqtt.name, *p);
        assert_eq!(c.timings, Timings::default());
    }
    assert!(Config::example("weather").starts_with('#'));
}

#[test]
fn canonical_text() {
    let c = ok(BASE);
    assert_eq!(c.to_text(), BASE);
    let text = "\
mqttreboot 0
flavor tank
espnowchannel 3
watchdog 0
mqttpassword p w
mqttuser u
ssid My Net
password 12345678
mqttbroker [::1]:1884
mqttname T
mqttbackoffmaxms 1000
capacity 10
";
    let c = tank(text).unwrap_or_else(|e| panic!("{e}"));
    let canonical = "\
profile tank
ssid My Net
password 12345678
mqttbroker [::1]:1884
mqttname T
mqttuser u
mqttpassword p w
watchdog 0
espnowchannel 3
mqttbackoffmaxms 1000
mqttreboot 0
capacity 10
";
    assert_eq!(c.to_text(), canonical);
    assert_eq!(tank(canonical).ok(), Some(c));
}

#[test]
fn everything_round_trips() {
    let text = with(
        "mqttuser u\nmqttkeepalive 45\nwatchdog 60\nespnowgroup g g\nespnowpsk k\nespnowchannel 1\nespnowversion 2\nstartdelay 1\nwdgrace 2\nmayblock 3\nnetconnecttimeout 5\nnetretry 6\nnetretryfudge 7\nnetreboot 86400\nmqttbackoffms 100\nmqttbackoffmaxms 3600000\nmqttreboot 86400\nuptimeeval 11\nuptimeforce 12\n",
    );
    let c = ok(&text);
    assert_eq!(ok(&c.to_text()), c);
    let wired = ok(&BASE
        .replace("ssid Home", "ssid (wired2)")
        .replace("password secret-pass\n", ""));
    assert_eq!(ok(&wired.to_text()), wired);
}

// ---------------------------------------------------------------------------- robustness

#[test]
fn very_long_lines_do_not_panic() {
    let huge = "x".repeat(1 << 20);
    // A huge key: unknown, echoed shortened.
    let e = one(&with(&format!("{huge} 1\n")));
    assert!(e.len() < 200, "{e}");
    assert!(e.contains('…'));
    // A huge value for several kinds of key.
    for key in ["profile", "ssid", "password", "mqttbroker", "mqttname"] {
        let text = BASE
            .lines()
            .map(|l| match l.split_once(' ') {
                Some((k, _)) if k == key => format!("{k} {huge}\n"),
                _ => format!("{l}\n"),
            })
            .collect::<String>();
        let e = errs(&text);
        assert!(e.to_string().len() < 1000, "{key}: message too long");
    }
    for key in ["watchdog", "startdelay", "espnowchannel", "mqttuser"] {
        let _ = parse(&with(&format!("{key} {huge}\n")), PROFILES);
    }
    // Huge runs of whitespace, separators, comment characters.
    let _ = parse(&" ".repeat(1 << 20), PROFILES);
    let _ = parse(&format!("ssid{}x", "\t".repeat(1 << 20)), PROFILES);
    let _ = parse(&"#".repeat(1 << 20), PROFILES);
    let _ = parse(&"\n".repeat(1 << 20), PROFILES);
}

#[test]
fn control_characters_are_escaped_in_messages() {
    let e = one(&with("ke\u{1b}[31my 1\n"));
    assert!(!e.contains('\u{1b}'), "{e:?}");
    assert!(e.contains("\\u{1b}"), "{e}");
}

/// xorshift64*: a tiny deterministic generator, enough for a property-style loop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..5_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse(&text, PROFILES) {
            assert!(!e.is_empty());
            let _ = e.located("f").to_string();
        }
        let _ = parse(&text, &[]);
    }
}

#[test]
fn random_config_like_files_never_panic_and_round_trip() {
    let keys = [
        "profile",
        "flavor",
        "ssid",
        "password",
        "mqttbroker",
        "mqttname",
        "mqttuser",
        "mqttpassword",
        "mqttkeepalive",
        "watchdog",
        "espnowgroup",
        "espnowpsk",
        "espnowchannel",
        "startdelay",
        "wdgrace",
        "mayblock",
        "netconnecttimeout",
        "netretry",
        "netretryfudge",
        "netreboot",
        "mqttbackoffms",
        "mqttbackoffmaxms",
        "mqttreboot",
        "uptimeeval",
        "uptimeforce",
        "capacity",
        "unit",
        "mqtbroker",
        "#",
        "",
        "SSID",
    ];
    let values = [
        "",
        "None",
        "0",
        "1",
        "4",
        "5",
        "13",
        "14",
        "30",
        "59",
        "60",
        "100",
        "600",
        "1000",
        "1883",
        "3600",
        "86400",
        "99999999999",
        "-1",
        "weather",
        "tank",
        "(wired)",
        "(none)",
        "(wired2)",
        "Home Net",
        "secret-pass",
        "mqtt.lan",
        "10.0.0.1:1884",
        "[::1]:1",
        "a/b",
        "on",
        "off",
        "x\u{1b}y",
        "ü",
        "\u{feff}",
        "  spaced  ",
    ];
    let seps = [" ", "  ", "\t", " \t "];
    let ends = ["\n", "\r\n", "\n\n"];
    let mut rng = Rng(42);
    let mut valid = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        if rng.below(10) == 0 {
            text.push('\u{feff}');
        }
        for _ in 0..rng.below(14) {
            text.push_str(rng.pick(&keys));
            text.push_str(rng.pick(&seps));
            text.push_str(rng.pick(&values));
            text.push_str(rng.pick(&ends));
        }
        // Often start from a valid base so that success paths are exercised too.
        if rng.below(2) == 0 {
            text = format!("{BASE}capacity 10\n{text}");
        }
        match tank(&text) {
            Ok(c) => {
                valid += 1;
                let again = tank(&c.to_text())
                    .unwrap_or_else(|e| panic!("canonical text rejected: {e}\n{}", c.to_text()));
                assert_eq!(again, c, "round trip changed the config\n{text}");
            }
            Err(e) => {
                for err in &e {
                    let _ = err.located("config.txt").to_string();
                }
            }
        }
    }
    assert!(valid > 100, "only {valid} valid files generated");
}

#[test]
fn espnow_version_defaults_to_3_and_demands_a_long_psk() {
    let base = "profile tank\nssid (none)\nmqttname Scale\nespnowgroup g\n";
    let c = ok(&format!("{base}espnowpsk 0123456789abcdef\n"));
    assert_eq!(c.espnow.version, 3);
    let c = ok(&format!("{base}espnowpsk short\nespnowversion 2\n"));
    assert_eq!(c.espnow.version, 2);
    let e = one(&format!("{base}espnowpsk short\n"));
    assert!(
        e.contains("config.txt:5:") && e.contains("at least 16"),
        "{e}"
    );
    let e = one(&format!(
        "{base}espnowpsk 0123456789abcdef\nespnowversion 4\n"
    ));
    assert!(
        e.contains("config.txt:6:") && e.contains("2 (the reference"),
        "{e}"
    );
}

#[test]
fn wifitxpower_takes_dbm_in_quarter_steps() {
    assert_eq!(ok(BASE).wifi_tx_power, None, "the radio driver's default");
    for (text, quarters) in [
        ("8.5", 34),
        ("2", 8),
        ("20", 80),
        ("11.25", 45),
        ("19.75", 79),
        ("8.50", 34),
        ("7.0", 28),
    ] {
        let c = ok(&with(&format!("wifitxpower {text}\n")));
        let power = c.wifi_tx_power.expect("given");
        assert_eq!(power.quarter_dbm(), quarters, "{text}");
        // The canonical rendering reads back the same.
        assert_eq!(ok(&c.to_text()).wifi_tx_power, Some(power), "{text}");
    }
    assert_eq!(
        ok(&with("wifitxpower 8.5\n"))
            .to_text()
            .lines()
            .find(|l| l.starts_with("wifitxpower")),
        Some("wifitxpower 8.5")
    );
    for bad in [
        "1.75", "21", "20.25", "8.3", "8.", ".5", "-5", "abc", "8.500", "1e1", "100", "8,5",
    ] {
        let e = one(&with(&format!("wifitxpower {bad}\n")));
        assert!(
            e.contains("wifitxpower") && e.contains("2..=20 in steps of 0.25"),
            "{bad:?}: {e}"
        );
    }
    assert!(ok(&with("wifitxpower None\n")).wifi_tx_power.is_none());
}

#[test]
fn ntpserver_defaults_to_the_pool_takes_up_to_three_and_none_turns_it_off() {
    assert_eq!(ok(BASE).ntp_servers, ["pool.ntp.org"]);
    assert!(
        !ok(BASE).to_text().contains("ntpserver"),
        "the default is not written"
    );
    let c = ok(&with(
        "ntpserver 192.168.1.1, time.example.org:1123 pool.ntp.org\n",
    ));
    assert_eq!(
        c.ntp_servers,
        ["192.168.1.1", "time.example.org:1123", "pool.ntp.org"]
    );
    assert_eq!(ok(&c.to_text()).ntp_servers, c.ntp_servers);
    let off = ok(&with("ntpserver None\n"));
    assert!(off.ntp_servers.is_empty());
    assert!(
        ok(&off.to_text()).ntp_servers.is_empty(),
        "None reads back as None"
    );
    for bad in [
        "a b c d",
        "host:0",
        "host:65536",
        "host:",
        "ho_st",
        "[::1]:123",
        "-lead",
        ":123",
    ] {
        let e = one(&with(&format!("ntpserver {bad}\n")));
        assert!(
            e.contains("ntpserver") && e.contains("1 to 3 time servers"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn a_bad_value_is_shown_as_read_except_a_secret() {
    // A `#` after a value is part of it; the error shows what was read, and why.
    let e = one(&BASE.replace(
        "ssid Home",
        "ssid My Network          # values may contain spaces",
    ));
    assert!(
        e.contains("bad value \"My Network          # values may contain…\" for \"ssid\""),
        "{e}"
    );
    assert!(e.contains("a comment is a line of its own"), "{e}");
    // A secret is never echoed.
    let e = one(&BASE.replace("password secret-pass", "password pw #1"));
    assert!(
        e.starts_with("config.txt:3: bad value for \"password\""),
        "{e}"
    );
    assert!(!e.contains("pw #1"), "{e}");
    assert!(e.contains("a comment is a line of its own"), "{e}");
}
