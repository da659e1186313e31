//! Validation of single values, key by key: numbers and ranges, SSIDs, passphrases, broker
//! addresses, MQTT names, profile names, the watchdog's compatibility rules. Each check
//! returns the value's typed form or a description of what was expected.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{Broker, Host, DEFAULT_WATCHDOG_S, WATCHDOG_MAX_S, WATCHDOG_MIN_S};

/// What a valid value would have looked like; ends up after "bad value for "key": ".
pub(crate) type Expected = Cow<'static, str>;

/// A whole decimal number: ASCII digits only (no sign, no spaces), fitting in `u32`.
pub(crate) fn whole(v: &str) -> Option<u32> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `wifitxpower`: dBm, 2..=20, in steps of 0.25 (the radio's unit), with up to two decimals.
pub(crate) fn tx_power(v: &str) -> Result<crate::model::TxPower, Expected> {
    const EXPECTED: &str = "expected the transmit power in dBm, 2..=20 in steps of 0.25, e.g. 8.5";
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let quarter = match frac {
        "" | "0" | "00" => 0,
        "25" => 1,
        "5" | "50" => 2,
        "75" => 3,
        _ => return Err(EXPECTED.into()),
    };
    if whole.is_empty() || whole.len() > 2 || (frac.is_empty() && v.ends_with('.')) {
        return Err(EXPECTED.into());
    }
    let whole = self::whole(whole).ok_or(EXPECTED)?;
    let q = whole * 4 + quarter;
    u8::try_from(q)
        .ok()
        .and_then(crate::model::TxPower::from_quarter_dbm)
        .ok_or_else(|| EXPECTED.into())
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Seconds,
    Milliseconds,
    Channel,
}

impl Unit {
    const fn noun(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "milliseconds",
            Unit::Channel => "a Wi-Fi channel",
        }
    }
}

/// The accepted numbers of one key: `lo..=hi`, plus `0` when `zero` says what 0 means.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Range {
    pub lo: u32,
    pub hi: u32,
    pub unit: Unit,
    /// e.g. `Some("never reboot")` renders as ", or 0 to never reboot".
    pub zero: Option<&'static str>,
}

impl Range {
    pub(crate) const fn new(unit: Unit, lo: u32, hi: u32) -> Self {
        Range {
            lo,
            hi,
            unit,
            zero: None,
        }
    }

    pub(crate) const fn or_zero(self, meaning: &'static str) -> Self {
        Range {
            zero: Some(meaning),
            ..self
        }
    }

    pub(crate) fn check(&self, v: &str) -> Result<u32, Expected> {
        match whole(v) {
            Some(n) if (self.lo..=self.hi).contains(&n) => Ok(n),
            Some(0) if self.zero.is_some() => Ok(0),
            _ => Err(self.expected().into()),
        }
    }

    fn expected(&self) -> String {
        let mut s = format!(
            "expected {} as a whole number {}..={}",
            self.unit.noun(),
            self.lo,
            self.hi
        );
        if let Some(z) = self.zero {
            s.push_str(", or 0 to ");
            s.push_str(z);
        }
        s
    }
}

/// `ssid` after the special values are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ssid<'a> {
    Wifi(&'a str),
    Wired,
    Wired2,
    None,
}

const SSID_MAX_BYTES: usize = 32;

pub(crate) fn ssid(v: &str) -> Result<Ssid<'_>, Expected> {
    match v {
        "(wired)" => return Ok(Ssid::Wired),
        "(wired2)" => return Ok(Ssid::Wired2),
        "(none)" => return Ok(Ssid::None),
        _ => {}
    }
    // The special values are case-sensitive, as in the reference; a near miss is almost
    // certainly not a real network name.
    for special in ["(wired)", "(wired2)", "(none)"] {
        if v.eq_ignore_ascii_case(special) {
            return Err(
                format!("special values are lower-case; did you mean \"{special}\"?").into(),
            );
        }
    }
    if v.len() > SSID_MAX_BYTES {
        return Err(
            "expected a Wi-Fi network name of at most 32 bytes, or (wired), (wired2), (none)"
                .into(),
        );
    }
    Ok(Ssid::Wifi(v))
}

/// `ntpserver`: 1..=3 servers separated by spaces or commas, each `host` or `host:port` with
/// host a DNS name or an IPv4 address.
pub(crate) fn ntp_servers(v: &str) -> Result<Vec<String>, Expected> {
    const EXPECTED: &str = "expected 1 to 3 time servers separated by spaces, each host or host:port (a DNS name or an IPv4 address, port 1..=65535), or None for no wall clock";
    let servers: Vec<&str> = v
        .split([' ', '\t', ','])
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() || servers.len() > 3 {
        return Err(EXPECTED.into());
    }
    for s in &servers {
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (*s, None),
        };
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !host.starts_with(['.', '-']);
        if !port_ok || !host_ok {
            return Err(EXPECTED.into());
        }
    }
    Ok(servers.into_iter().map(String::from).collect())
}

/// WPA2 passphrase: 8..=63 bytes without control characters, or a raw 64-hex-digit PSK.
/// Non-ASCII passphrases are allowed (the reference passed bytes through to the radio).
pub(crate) fn wifi_password(v: &str) -> Result<(), Expected> {
    let passphrase = (8..=63).contains(&v.len()) && !v.chars().any(char::is_control);
    let raw_psk = v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
    if passphrase || raw_psk {
        Ok(())
    } else {
        Err("expected a WPA2 passphrase of 8..=63 characters (or 64 hex digits), or None for an open network".into())
    }
}

const BROKER_EXPECTED: &str = "expected host or host:port with port 1..=65535, where host is a DNS name, an IPv4 address or an [IPv6] address, optionally after mqtt:// (plain) or mqtts:// (TLS)";

/// `mqttbroker`: `[mqtt://|mqtts://]host[:port]`. No scheme means plain MQTT, as in the
/// reference.
pub(crate) fn broker(v: &str) -> Result<Broker, Expected> {
    let (tls, rest) = if let Some(rest) = v.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = v.strip_prefix("mqtt://") {
        (false, rest)
    } else if let Some((scheme, _)) = v.split_once("://") {
        return Err(format!(
            "unknown scheme \"{}://\"; write mqtt://host[:port] (plain, port 1883) or mqtts://host[:port] (TLS, port 8883)",
            crate::error::echo(scheme)
        )
        .into());
    } else {
        (false, v)
    };
    if rest.contains('/') {
        return Err("expected no path after the broker's host[:port]".into());
    }
    host_port(rest, tls)
}

fn host_port(v: &str, tls: bool) -> Result<Broker, Expected> {
    let default_port = Broker::default_port(tls);
    let bad = || Expected::from(BROKER_EXPECTED);
    if let Some(rest) = v.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
        let addr: Ipv6Addr = inside.parse().map_err(|_| bad())?;
        let port = match after {
            "" => default_port,
            _ => port(after.strip_prefix(':').ok_or_else(bad)?).ok_or_else(bad)?,
        };
        return Ok(Broker {
            host: Host::Ipv6(addr),
            port,
            tls,
        });
    }
    let (host, port) = match v.split_once(':') {
        None => (v, default_port),
        Some((_, p)) if p.contains(':') => {
            return Err(
                "IPv6 addresses must be in brackets, e.g. [fd00::1] or [fd00::1]:1883".into(),
            )
        }
        Some((h, p)) => (h, port(p).ok_or_else(bad)?),
    };
    let host = if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // Digits and dots only: meant as an IPv4 literal, never a name.
        Host::Ipv4(host.parse::<Ipv4Addr>().map_err(|_| bad())?)
    } else if is_dns_name(host) {
        Host::Name(host.to_string())
    } else {
        return Err(bad());
    };
    Ok(Broker { host, port, tls })
}

/// Longest DER blob accepted in a TLS key (certificates with large RSA keys and many
/// extensions stay far below this).
const DER_MAX: usize = 8 * 1024;

/// `mqttca`, `mqttclientcert`, `mqttclientkey`: base64 of one DER structure (an X.509
/// certificate or a private key), checked to be a single, complete ASN.1 SEQUENCE, so a
/// truncated paste or a PEM file's header line is caught here rather than in a handshake.
pub(crate) fn der_base64(v: &str, what: &str) -> Result<alloc::vec::Vec<u8>, Expected> {
    if v.starts_with("-----") {
        return Err(format!(
            "expected the base64 of the {what}'s DER on one line, not PEM; `hearth tls config-lines` prints the line"
        )
        .into());
    }
    let der = crate::base64::decode(v)
        .map_err(|e| Expected::from(format!("expected the base64 of the {what}'s DER: {e}")))?;
    if der.len() > DER_MAX {
        return Err(format!("the {what} is {} bytes; at most {DER_MAX}", der.len()).into());
    }
    match der_sequence_len(&der) {
        Some(len) if len == der.len() => Ok(der),
        Some(len) if len > der.len() => Err(format!(
            "the {what} is truncated: its DER says {len} bytes, the line holds {}",
            der.len()
        )
        .into()),
        Some(len) => Err(format!(
            "the {what} has {} bytes after its DER structure of {len} bytes",
            der.len() - len
        )
        .into()),
        None => Err(format!("the decoded bytes are not a DER {what} (no ASN.1 SEQUENCE)").into()),
    }
}

/// The total length (header included) of the DER SEQUENCE at the start of `der`, or `None`
/// if it does not start with one (definite length, minimal encoding).
fn der_sequence_len(der: &[u8]) -> Option<usize> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
            return None; // indefinite, too long, or not minimal
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None; // long form where the short form fits
        }
        (len, 2 + n)
    };
    len.checked_add(header)
}

/// `mqttpin`: 64 hex digits, the SHA-256 of the server's SubjectPublicKeyInfo (DER).
pub(crate) fn pin(v: &str) -> Result<[u8; 32], Expected> {
    let expected = || {
        Expected::from(
            "expected 64 hex digits: the SHA-256 of the broker certificate's public key (SubjectPublicKeyInfo DER); `hearth tls config-lines --pin-from CERT` prints the line",
        )
    };
    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(expected());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).map_err(|_| expected())?;
    }
    Ok(out)
}

fn port(p: &str) -> Option<u16> {
    whole(p)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n != 0)
}

/// Labels of 1..=63 letters, digits, `-` (not at either end) or `_` (seen on LANs and
/// accepted by resolvers), at most 253 bytes, optionally with a trailing dot.
fn is_dns_name(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `mqttname` goes into every topic, so it must be a single topic level.
pub(crate) fn mqtt_name(v: &str) -> Result<(), Expected> {
    let n = v.chars().count();
    let ok = (1..=64).contains(&n)
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '+' | '#'));
    if ok {
        Ok(())
    } else {
        Err("expected 1..=64 characters without whitespace, '/', '+' or '#' (it is used in MQTT topics)".into())
    }
}

/// A free-form string (MQTT credentials, ESP-NOW group and key): no control characters, and
/// short enough for an MQTT string field.
pub(crate) fn text(v: &str) -> Result<(), Expected> {
    if v.len() <= usize::from(u16::MAX) && !v.chars().any(char::is_control) {
        Ok(())
    } else {
        Err("expected text without control characters, at most 65535 bytes".into())
    }
}

/// `profile`/`flavor`: one of the caller's profiles; if the caller passes none, any
/// `[a-z0-9_]{1,32}`, leaving the final say to the caller.
pub(crate) fn profile(v: &str, known: &[&str]) -> Result<(), Expected> {
    if known.is_empty() {
        let ok = (1..=32).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        return if ok {
            Ok(())
        } else {
            Err("expected a profile name of 1..=32 characters a-z, 0-9 or _".into())
        };
    }
    if known.contains(&v) {
        return Ok(());
    }
    let mut s = String::from("expected one of: ");
    for (i, p) in known.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(p);
    }
    Err(s.into())
}

/// `watchdog`; see [`Timings::watchdog_s`](crate::Timings::watchdog_s) for the rules.
pub(crate) fn watchdog(v: &str) -> Result<Option<u32>, Expected> {
    const EXPECTED: &str = "expected 0 (off), or the timeout in seconds as a whole number 5..=3600 (1..=4 mean on with the default 15 s, as in the reference)";
    const _: () = assert!(WATCHDOG_MIN_S == 5 && WATCHDOG_MAX_S == 3600);
    if ["on", "yes", "true"]
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w))
    {
        return Ok(Some(DEFAULT_WATCHDOG_S));
    }
    if ["off", "no", "false"]
        .iter()
        .any(|w| v.eq_ignore_ascii_case(w))
    {
        return Err("write 0 to disable the watchdog (the reference firmware read any value but 0, even \"off\", as on)".into());
    }
    match whole(v) {
        Some(0) => Ok(None),
        Some(n) if n < WATCHDOG_MIN_S => Ok(Some(DEFAULT_WATCHDOG_S)),
        Some(n) if n <= WATCHDOG_MAX_S => Ok(Some(n)),
        _ => Err(EXPECTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers() {
        assert_eq!(whole("0"), Some(0));
        assert_eq!(whole("007"), Some(7));
        assert_eq!(whole("4294967295"), Some(u32::MAX));
        for bad in [
            "",
            "+5",
            "-1",
            "1.0",
            "1e3",
            " 1",
            "4294967296",
            "99999999999",
            "١",
        ] {
            assert_eq!(whole(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let r = Range::new(Unit::Seconds, 60, 86400).or_zero("never reboot");
        assert_eq!(r.check("0"), Ok(0));
        assert_eq!(r.check("60"), Ok(60));
        assert_eq!(
            r.check("59").unwrap_err(),
            "expected seconds as a whole number 60..=86400, or 0 to never reboot"
        );
        let r = Range::new(Unit::Seconds, 1, 3600);
        assert!(r.check("0").is_err());
    }

    #[test]
    fn ssids() {
        assert_eq!(ssid("(wired)"), Ok(Ssid::Wired));
        assert_eq!(ssid("(wired2)"), Ok(Ssid::Wired2));
        assert_eq!(ssid("(none)"), Ok(Ssid::None));
        assert_eq!(ssid("My Home"), Ok(Ssid::Wifi("My Home")));
        assert_eq!(ssid("(other)"), Ok(Ssid::Wifi("(other)")));
        assert!(ssid("(Wired)").unwrap_err().contains("\"(wired)\""));
        assert!(ssid(&"x".repeat(32)).is_ok());
        assert!(ssid(&"x".repeat(33)).is_err());
        // 11 three-byte characters = 33 bytes.
        assert!(ssid(&"€".repeat(11)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(wifi_password("12345678").is_ok());
        assert!(wifi_password("with some spaces").is_ok());
        assert!(wifi_password(&"a".repeat(63)).is_ok());
        assert!(wifi_password(&"x".repeat(64)).is_err());
        assert!(wifi_password(&"aB09".repeat(16)).is_ok());
        assert!(wifi_password("1234567").is_err());
        assert!(wifi_password("1234\u{7}5678").is_err());
    }

    #[test]
    fn brokers() {
        let ok = |v: &str| broker(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!(
            ok("mqtt.lan"),
            Broker {
                host: Host::Name("mqtt.lan".into()),
                port: 1883,
                tls: false,
            }
        );
        assert_eq!(ok("mqtt.lan:8883").port, 8883);
        assert_eq!(ok("my_broker").host, Host::Name("my_broker".into()));
        assert_eq!(ok("broker.").host, Host::Name("broker.".into()));
        assert_eq!(
            ok("192.168.1.10"),
            Broker {
                host: Host::Ipv4(Ipv4Addr::new(192, 168, 1, 10)),
                port: 1883,
                tls: false,
            }
        );
        assert_eq!(ok("10.0.0.1:65535").port, 65535);
        assert_eq!(
            ok("[fd00::1]:1884").host,
            Host::Ipv6("fd00::1".parse().unwrap())
        );
        assert_eq!(ok("[::1]").port, 1883);
        for bad in [
            "192.168.1.300",
            "1.2.3",
            "host:0",
            "host:65536",
            "host:",
            ":1883",
            "host:abc",
            "-host",
            "ho st",
            "a..b",
            "[::1",
            "[::1]1883",
            "[zz::1]:1",
            "[1.2.3.4]",
        ] {
            assert_eq!(broker(bad), Err(BROKER_EXPECTED.into()), "{bad}");
        }
        assert!(broker("fd00::1").unwrap_err().contains("brackets"));
        assert!(broker(&"a".repeat(64)).is_err());
        assert!(broker(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn broker_schemes() {
        let ok = |v: &str| broker(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        let b = ok("mqtts://mqtt.lan");
        assert_eq!((b.tls, b.port), (true, 8883));
        assert_eq!(ok("mqtts://mqtt.lan:8884").port, 8884);
        let b = ok("mqtts://[::1]");
        assert_eq!(
            (b.tls, b.port, b.host),
            (true, 8883, Host::Ipv6("::1".parse().unwrap()))
        );
        let b = ok("mqtt://10.0.0.1");
        assert_eq!((b.tls, b.port), (false, 1883));
        assert_eq!(ok("mqtt://h:1999").port, 1999);
        assert!(broker("http://h")
            .unwrap_err()
            .contains("unknown scheme \"http://\""));
        assert!(broker("MQTTS://h").unwrap_err().contains("unknown scheme"));
        assert!(broker("mqtts://h/x").unwrap_err().contains("no path"));
        assert_eq!(broker("mqtts://"), Err(BROKER_EXPECTED.into()));
        assert_eq!(broker("mqtts://h:0"), Err(BROKER_EXPECTED.into()));
    }

    #[test]
    fn der_lines() {
        use crate::base64::encode;
        // A SEQUENCE of 3 bytes, and one of 200 (long-form length).
        let short = [0x30, 3, 1, 2, 3];
        assert_eq!(
            der_base64(&encode(&short), "certificate"),
            Ok(short.to_vec())
        );
        let mut long = alloc::vec![0x30, 0x81, 200];
        long.extend([7u8; 200]);
        assert_eq!(der_base64(&encode(&long), "certificate"), Ok(long.clone()));
        let e = |v: &str| der_base64(v, "certificate").unwrap_err();
        assert!(e(&encode(&long[..100])).contains("truncated"));
        let mut extra = short.to_vec();
        extra.push(0);
        assert!(e(&encode(&extra)).contains("1 bytes after"));
        assert!(e(&encode(b"hello")).contains("not a DER certificate"));
        assert!(
            e(&encode(&[0x30, 0x80, 0, 0])).contains("not a DER"),
            "indefinite"
        );
        assert!(
            e(&encode(&[0x30, 0x81, 3, 1, 2, 3])).contains("not a DER"),
            "not minimal"
        );
        assert!(e("-----BEGIN CERTIFICATE-----").contains("not PEM"));
        assert!(e("MIIB IjAN").contains("character 5"));
        let mut huge = alloc::vec![0x30, 0x82, 0x30, 0x00];
        huge.extend(core::iter::repeat_n(0u8, 0x3000));
        assert!(e(&encode(&huge)).contains("at most 8192"));
    }

    #[test]
    fn pins() {
        let hex = "00ff".repeat(16);
        let p = pin(&hex).unwrap();
        assert_eq!((p[0], p[1], p[31]), (0, 0xff, 0xff));
        assert!(pin(&hex.to_uppercase()).is_ok());
        assert!(pin(&hex[..62]).unwrap_err().contains("64 hex digits"));
        assert!(pin(&"zz".repeat(32)).is_err());
        assert!(pin(&"é".repeat(32)).is_err());
    }

    #[test]
    fn mqtt_names() {
        assert!(mqtt_name("MainsB").is_ok());
        assert!(mqtt_name("ünïcode-ok_1").is_ok());
        assert!(mqtt_name(&"x".repeat(64)).is_ok());
        for bad in ["a/b", "a+b", "a#b", "a b", "a\u{0}b", ""] {
            assert!(mqtt_name(bad).is_err(), "{bad:?}");
        }
        assert!(mqtt_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn profiles() {
        assert!(profile("weather", &["weather", "tank"]).is_ok());
        assert_eq!(
            profile("wether", &["weather", "tank"]).unwrap_err(),
            "expected one of: weather, tank"
        );
        assert!(profile("any_thing9", &[]).is_ok());
        assert!(profile("Weather", &[]).is_err());
    }

    #[test]
    fn watchdogs() {
        assert_eq!(watchdog("0"), Ok(None));
        assert_eq!(watchdog("1"), Ok(Some(15)));
        assert_eq!(watchdog("4"), Ok(Some(15)));
        assert_eq!(watchdog("5"), Ok(Some(5)));
        assert_eq!(watchdog("3600"), Ok(Some(3600)));
        assert_eq!(watchdog("On"), Ok(Some(15)));
        assert!(watchdog("3601").is_err());
        assert!(watchdog("off").unwrap_err().contains("write 0"));
        assert!(watchdog("-1").is_err());
    }
}
