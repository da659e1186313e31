//! From text to `Config`: collects every line under its key (unknown, duplicate and
//! valueless keys are reported there), validates each value, then applies the rules that
//! span several keys and the required-key checks. All problems are collected, none stops
//! the others being found.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{echo, ConfigError, ConfigErrors, ErrorKind};
use crate::model::{
    Broker, ClientIdentity, Config, EspNow, Mqtt, MqttCredentials, MqttTls, Network, Timings,
    DEFAULT_MQTT_KEEPALIVE_S, DEFAULT_WATCHDOG_S,
};
use crate::schema::{suggest, Key, KeySpec};
use crate::syntax::{lines, RawValue};
use crate::values::{self, Expected, Range, Ssid, Unit};

/// Parses and validates `text` (the whole `config.txt`) with no profile-specific keys.
///
/// `known_profiles` lists the profile names this build accepts for `profile`/`flavor`; an
/// empty list accepts any name made of `a-z`, `0-9` and `_` and leaves the check to the
/// caller. The text is taken as `&str`: decoding bytes (and rejecting non-UTF-8) is the
/// caller's job.
pub fn parse(text: &str, known_profiles: &[&str]) -> Result<Config, ConfigErrors> {
    parse_with(text, known_profiles, &[])
}

/// [`parse`], also accepting the profile's own keys. Each given value is checked with its
/// [`KeySpec::validator`] and, if valid, returned in [`Config::profile_settings`]. Keys in
/// `profile_keys` that are also framework keys are ignored, and so are repeated names after
/// the first.
pub fn parse_with(
    text: &str,
    known_profiles: &[&str],
    profile_keys: &[KeySpec],
) -> Result<Config, ConfigErrors> {
    let mut reader = Reader::collect(text, profile_keys);
    let config = reader.build(known_profiles);
    let mut errors = reader.errors;
    if config.is_none() && errors.is_empty() {
        // Every path that yields no config records why, so this does not happen; if it
        // ever did, it must still be an error rather than a panic.
        errors.push(ConfigError {
            line: None,
            kind: ErrorKind::Conflict {
                message: "internal error: config rejected without a reason".into(),
            },
        });
    }
    match (config, ConfigErrors::from_vec(errors)) {
        (Some(config), None) => Ok(config),
        (_, Some(errors)) => Err(errors),
        (None, None) => unreachable!("an error was pushed above"),
    }
}

/// What one key was given, remembering its line.
#[derive(Clone, Copy, Debug)]
enum Slot<'a> {
    Text(usize, &'a str),
    /// `key None`.
    Null(usize),
    /// `key` alone; already reported.
    NoValue(usize),
}

impl Slot<'_> {
    fn line(self) -> usize {
        match self {
            Slot::Text(l, _) | Slot::Null(l) | Slot::NoValue(l) => l,
        }
    }

    /// Ordering used to pick between the `profile`/`flavor` synonyms.
    fn weight(slot: Option<Self>) -> u8 {
        match slot {
            None => 0,
            Some(Slot::Null(_)) => 1,
            Some(_) => 2,
        }
    }
}

/// The outcome of validating an optional key.
enum Field<T> {
    /// Not in the file, or `None`.
    Absent,
    Given(usize, T),
    /// Given but rejected (already reported).
    Invalid,
}

impl<T> Field<T> {
    fn value(self) -> Option<T> {
        match self {
            Field::Given(_, v) => Some(v),
            _ => None,
        }
    }

    /// An optional value: `Some(None)` when absent, `Some(Some(v))` when given, `None` when
    /// invalid.
    fn or_none(self) -> Option<Option<T>> {
        match self {
            Field::Absent => Some(None),
            Field::Given(_, v) => Some(Some(v)),
            Field::Invalid => None,
        }
    }

    /// The value, the default when absent, `None` when invalid.
    fn or_default(self, default: T) -> Option<T> {
        match self {
            Field::Absent => Some(default),
            Field::Given(_, v) => Some(v),
            Field::Invalid => None,
        }
    }
}

struct Reader<'a, 's> {
    builtin: [Option<Slot<'a>>; Key::COUNT],
    profile: Vec<Option<Slot<'a>>>,
    specs: &'s [KeySpec],
    errors: Vec<ConfigError>,
}

const REQUIRED_NOT_NONE: &str = "expected a value; this key is required, so None is not allowed";

impl<'a, 's> Reader<'a, 's> {
    /// Files every line under its key, reporting unknown, duplicate and valueless keys.
    fn collect(text: &'a str, specs: &'s [KeySpec]) -> Self {
        let mut r = Reader {
            builtin: [None; Key::COUNT],
            profile: vec![None; specs.len()],
            specs,
            errors: Vec::new(),
        };
        for line in lines(text) {
            let n = line.number;
            let (name, slot) = if let Some(k) = Key::from_name(line.key) {
                (k.name(), &mut r.builtin[k.index()])
            } else if let Some(i) = specs.iter().position(|s| s.name == line.key) {
                (specs[i].name, &mut r.profile[i])
            } else {
                let candidates = Key::ALL
                    .iter()
                    .map(|k| k.name())
                    .chain(specs.iter().map(|s| s.name));
                r.errors.push(ConfigError::at(
                    n,
                    ErrorKind::UnknownKey {
                        key: echo(line.key),
                        suggestion: suggest(line.key, candidates),
                    },
                ));
                continue;
            };
            if let Some(first) = slot {
                let first_line = first.line();
                r.errors.push(ConfigError::at(
                    n,
                    ErrorKind::DuplicateKey {
                        key: name,
                        first_line,
                    },
                ));
                continue;
            }
            *slot = Some(match line.value {
                RawValue::Text(v) => Slot::Text(n, v),
                RawValue::Null => Slot::Null(n),
                RawValue::Missing => {
                    r.errors
                        .push(ConfigError::at(n, ErrorKind::NoValue { key: name }));
                    Slot::NoValue(n)
                }
            });
        }
        r
    }

    fn slot(&self, key: Key) -> Option<Slot<'a>> {
        self.builtin[key.index()]
    }

    /// The line of `key` if the file gives it a value (valid or not).
    fn given_line(&self, key: Key) -> Option<usize> {
        match self.slot(key) {
            Some(Slot::Text(l, _)) | Some(Slot::NoValue(l)) => Some(l),
            _ => None,
        }
    }

    /// `value`: what the line says (`None` for `None`).
    fn bad_value(
        &mut self,
        line: usize,
        key: &'static str,
        value: Option<&str>,
        expected: Expected,
    ) {
        // The likeliest reason for a bad value: a comment written after it.
        let expected = match value {
            Some(v) if v.contains(" #") || v.contains("\t#") => Cow::Owned(format!(
                "{expected} (a comment is a line of its own: a `#` after a value is part of the value)"
            )),
            _ => expected,
        };
        let value = value.filter(|_| !crate::error::is_secret(key)).map(echo);
        self.errors.push(ConfigError::at(
            line,
            ErrorKind::BadValue {
                key,
                value,
                expected,
            },
        ));
    }

    fn conflict(&mut self, line: Option<usize>, message: String) {
        self.errors.push(ConfigError {
            line,
            kind: ErrorKind::Conflict { message },
        });
    }

    /// The last line among `keys` that the file gives, for errors about several keys.
    fn last_line(&self, keys: &[Key]) -> Option<usize> {
        keys.iter().filter_map(|&k| self.given_line(k)).max()
    }

    fn optional<T>(
        &mut self,
        key: Key,
        check: impl FnOnce(&'a str) -> Result<T, Expected>,
    ) -> Field<T> {
        match self.slot(key) {
            None | Some(Slot::Null(_)) => Field::Absent,
            Some(Slot::NoValue(_)) => Field::Invalid,
            Some(Slot::Text(line, v)) => match check(v) {
                Ok(t) => Field::Given(line, t),
                Err(e) => {
                    self.bad_value(line, key.name(), Some(v), e);
                    Field::Invalid
                }
            },
        }
    }

    fn required<T>(
        &mut self,
        key: Key,
        hint: Option<Cow<'static, str>>,
        check: impl FnOnce(&'a str) -> Result<T, Expected>,
    ) -> Option<T> {
        match self.slot(key) {
            None => {
                self.errors.push(ConfigError {
                    line: None,
                    kind: ErrorKind::MissingKey {
                        key: key.name(),
                        hint,
                    },
                });
                None
            }
            Some(Slot::Null(line)) => {
                self.bad_value(line, key.name(), None, REQUIRED_NOT_NONE.into());
                None
            }
            Some(_) => self.optional(key, check).value(),
        }
    }

    fn number(&mut self, key: Key, range: Range, default: u32) -> Option<u32> {
        self.optional(key, |v| range.check(v)).or_default(default)
    }

    /// Validates everything; `None` if anything was wrong (and recorded in `errors`).
    fn build(&mut self, known_profiles: &[&str]) -> Option<Config> {
        let profile = self.profile(known_profiles);
        let (network, ssid_is_none) = self.network();
        let mqtt = self.mqtt(ssid_is_none);
        let espnow = self.espnow();
        let timings = self.timings();
        let tx_power = self.optional(Key::WifiTxPower, values::tx_power).or_none();
        let ntp_servers = match self.slot(Key::NtpServer) {
            None => Some(vec![String::from(crate::model::DEFAULT_NTP_SERVER)]),
            Some(Slot::Null(_)) => Some(Vec::new()),
            Some(_) => self.optional(Key::NtpServer, values::ntp_servers).value(),
        };
        let keepalive = mqtt.as_ref().map(|m| m.keepalive_s);
        if let (Some(t), Some(k)) = (timings, keepalive) {
            self.keepalive_vs_reboot(k, &t);
        }
        let profile_settings = self.profile_settings();
        Some(Config {
            profile: profile?,
            network: network?,
            mqtt: mqtt?,
            espnow: espnow?,
            timings: timings?,
            wifi_tx_power: tx_power?,
            ntp_servers: ntp_servers?,
            profile_settings: profile_settings?,
        })
    }

    fn profile(&mut self, known: &[&str]) -> Option<String> {
        let (p, f) = (self.slot(Key::Profile), self.slot(Key::Flavor));
        if let (Some(pl), Some(fl)) = (self.given_line(Key::Profile), self.given_line(Key::Flavor))
        {
            self.conflict(
                Some(pl.max(fl)),
                format!(
                    "both \"profile\" (line {pl}) and its old synonym \"flavor\" (line {fl}) are given; keep only \"profile\""
                ),
            );
            return None;
        }
        let key = if Slot::weight(f) > Slot::weight(p) {
            Key::Flavor
        } else {
            Key::Profile
        };
        let hint: Cow<'static, str> = match known {
            [] => "write \"profile <name>\"".into(),
            _ => format!(
                "write \"profile <name>\" with <name> one of: {}",
                known.join(", ")
            )
            .into(),
        };
        self.required(key, Some(hint), |v| {
            values::profile(v, known).map(|()| v.to_string())
        })
    }

    /// The network, and whether `ssid` is `(none)` (which makes MQTT keys optional).
    fn network(&mut self) -> (Option<Network>, bool) {
        let ssid = self.required(
            Key::Ssid,
            Some("write \"ssid (none)\" for a device without a network".into()),
            values::ssid,
        );
        let password = self.optional(Key::Password, |v| values::wifi_password(v).map(|()| v));
        let network = match ssid {
            Some(Ssid::Wifi(name)) => match password {
                Field::Invalid => None,
                password => Some(Network::Wifi {
                    ssid: name.to_string(),
                    password: password.value().map(str::to_string),
                }),
            },
            Some(special) => {
                let (network, written) = match special {
                    Ssid::Wired => (Network::Wired, "(wired)"),
                    Ssid::Wired2 => (Network::Wired2, "(wired2)"),
                    _ => (Network::None, "(none)"),
                };
                match password {
                    Field::Given(line, _) => {
                        self.conflict(
                            Some(line),
                            format!("\"password\" is only used with a Wi-Fi \"ssid\", not with {written}; remove it or write \"password None\""),
                        );
                        None
                    }
                    Field::Invalid => None,
                    Field::Absent => Some(network),
                }
            }
            None => None,
        };
        (network, ssid == Some(Ssid::None))
    }

    fn mqtt(&mut self, ssid_is_none: bool) -> Option<Mqtt> {
        let broker = if ssid_is_none {
            self.optional(Key::MqttBroker, values::broker).or_none()
        } else {
            self.required(Key::MqttBroker, None, values::broker)
                .map(Some)
        };
        let name = self.required(Key::MqttName, None, |v| {
            values::mqtt_name(v).map(|()| v.to_string())
        });
        let user = self.optional(Key::MqttUser, |v| values::text(v).map(|()| v));
        let password = self.optional(Key::MqttPassword, |v| values::text(v).map(|()| v));
        let credentials = match (user, password) {
            (Field::Invalid, _) | (_, Field::Invalid) => None,
            (Field::Absent, Field::Given(line, _)) => {
                self.conflict(
                    Some(line),
                    "\"mqttpassword\" is given without \"mqttuser\"".into(),
                );
                None
            }
            (Field::Absent, Field::Absent) => Some(None),
            (Field::Given(_, user), password) => Some(Some(MqttCredentials {
                user: user.to_string(),
                password: password.value().map(str::to_string),
            })),
        };
        let keepalive = self
            .number(
                Key::MqttKeepalive,
                Range::new(Unit::Seconds, 5, 3600),
                u32::from(DEFAULT_MQTT_KEEPALIVE_S),
            )
            .and_then(|k| u16::try_from(k).ok());
        let tls = self.tls(broker.as_ref());
        Some(Mqtt {
            broker: broker?,
            name: name?,
            credentials: credentials?,
            keepalive_s: keepalive?,
            tls: tls?,
        })
    }

    /// The TLS keys, checked against the broker: they need `mqtts://`, and `mqtts://` needs a
    /// way to verify the server (`mqttca` or `mqttpin`). `broker` is `None` when it was
    /// invalid (already reported), `Some(None)` when absent.
    fn tls(&mut self, broker: Option<&Option<Broker>>) -> Option<Option<MqttTls>> {
        let ca = self.optional(Key::MqttCa, |v| values::der_base64(v, "CA certificate"));
        let pin = self.optional(Key::MqttPin, values::pin);
        let cert = self.optional(Key::MqttClientCert, |v| {
            values::der_base64(v, "client certificate")
        });
        let key = self.optional(Key::MqttClientSecret, |v| {
            values::der_base64(v, "client private key")
        });
        let client = match (cert, key) {
            (Field::Invalid, _) | (_, Field::Invalid) => None,
            (Field::Absent, Field::Absent) => Some(None),
            (Field::Given(_, cert), Field::Given(_, key)) => {
                Some(Some(ClientIdentity { cert, key }))
            }
            (Field::Given(line, _), Field::Absent) => {
                self.conflict(
                    Some(line),
                    "\"mqttclientcert\" needs \"mqttclientkey\" (give both or neither)".into(),
                );
                None
            }
            (Field::Absent, Field::Given(line, _)) => {
                self.conflict(
                    Some(line),
                    "\"mqttclientkey\" needs \"mqttclientcert\" (give both or neither)".into(),
                );
                None
            }
        };
        let (ca, pin) = match (ca, pin) {
            (Field::Invalid, _) | (_, Field::Invalid) => (None, None),
            (ca, pin) => (Some(ca.value()), Some(pin.value())),
        };
        let tls_keys = [
            Key::MqttCa,
            Key::MqttPin,
            Key::MqttClientCert,
            Key::MqttClientSecret,
        ];
        match broker? {
            Some(b) if b.tls => {
                let (ca, pin, client) = (ca?, pin?, client?);
                if ca.is_none() && pin.is_none() {
                    self.conflict(
                        self.given_line(Key::MqttBroker),
                        "an mqtts:// broker needs \"mqttca\" (the CA certificate that signed the broker's certificate) or \"mqttpin\" (its public key's SHA-256), or both; `hearth tls config-lines` prints them".into(),
                    );
                    return None;
                }
                Some(Some(MqttTls { ca, pin, client }))
            }
            _ => {
                let mut ok = true;
                for k in tls_keys {
                    if let Some(line) = self.given_line(k) {
                        ok = false;
                        self.conflict(
                            Some(line),
                            format!(
                                "\"{}\" is only used with a TLS broker: write \"mqttbroker mqtts://HOST[:PORT]\", or remove it",
                                k.name()
                            ),
                        );
                    }
                }
                ok.then_some(None)
            }
        }
    }

    fn espnow(&mut self) -> Option<EspNow> {
        let group = self.optional(Key::EspNowGroup, |v| values::text(v).map(|()| v));
        let psk = self.optional(Key::EspNowPsk, |v| values::text(v).map(|()| v));
        let channel = self.optional(Key::EspNowChannel, |v| {
            Range::new(Unit::Channel, 1, 13)
                .check(v)
                // The range is 1..=13, so the cast is exact.
                .map(|c| c as u8)
        });
        let version = self
            .optional(Key::EspNowVersion, |v| match v {
                "2" => Ok(2u8),
                "3" => Ok(3u8),
                _ => Err("2 (the reference's wire format) or 3 (Hearth's)".into()),
            })
            .or_default(crate::model::DEFAULT_ESPNOW_VERSION);
        if let (Some(3), Field::Given(line, p)) = (version, &psk) {
            if p.chars().count() < crate::model::MIN_V3_PSK_LEN {
                self.conflict(
                    Some(*line),
                    format!(
                        "\"espnowpsk\" is {} characters; wire format 3 needs at least {} random characters (e.g. from `openssl rand -base64 18`), or write \"espnowversion 2\" for a network with reference devices",
                        p.chars().count(),
                        crate::model::MIN_V3_PSK_LEN
                    ),
                );
                return None;
            }
        }
        let text = |f: Field<&str>| f.or_none().map(|v| v.map(str::to_string));
        let (group, psk) = (text(group), text(psk));
        let channel = channel.or_none();
        Some(EspNow {
            group: group?,
            psk: psk?,
            channel: channel?,
            version: version?,
        })
    }

    fn timings(&mut self) -> Option<Timings> {
        use Key::*;
        use Unit::{Milliseconds as Ms, Seconds as S};
        let d = Timings::default();
        let watchdog = self
            .optional(Watchdog, values::watchdog)
            .or_default(Some(DEFAULT_WATCHDOG_S));
        let start_delay = self.number(StartDelay, Range::new(S, 0, 300), d.start_delay_s);
        let grace = self.number(WdGrace, Range::new(S, 0, 300), d.watchdog_grace_s);
        let may_block = self.number(MayBlock, Range::new(S, 1, 3600), d.may_block_s);
        let connect = self.number(
            NetConnectTimeout,
            Range::new(S, 5, 600),
            d.net_connect_timeout_s,
        );
        let retry = self.number(NetRetry, Range::new(S, 1, 3600), d.net_retry_s);
        let fudge = self.number(NetRetryFudge, Range::new(S, 0, 3600), d.net_retry_fudge_s);
        let never = |r: Range| r.or_zero("never reboot");
        let net_reboot = self.number(
            NetReboot,
            never(Range::new(S, 60, 86_400)),
            d.net_reboot_s.unwrap_or(0),
        );
        let backoff = self.number(
            MqttBackoffMs,
            Range::new(Ms, 100, 60_000),
            d.mqtt_backoff_ms,
        );
        let backoff_max = self.number(
            MqttBackoffMaxMs,
            Range::new(Ms, 100, 3_600_000),
            d.mqtt_backoff_max_ms,
        );
        let mqtt_reboot = self.number(
            MqttReboot,
            never(Range::new(S, 60, 86_400)),
            d.mqtt_reboot_s.unwrap_or(0),
        );
        let eval = self.number(UptimeEval, Range::new(S, 1, 86_400), d.uptime_eval_s);
        let force = self.number(UptimeForce, Range::new(S, 1, 86_400), d.uptime_force_s);

        if let (Some(b), Some(m)) = (backoff, backoff_max) {
            if m < b {
                let line = self.last_line(&[MqttBackoffMs, MqttBackoffMaxMs]);
                self.conflict(
                    line,
                    format!(
                        "\"mqttbackoffmaxms\" ({m} ms) must be at least \"mqttbackoffms\" ({b} ms)"
                    ),
                );
            }
        }
        if let (Some(r), Some(c)) = (net_reboot, connect) {
            if r != 0 && r <= c {
                let line = self.last_line(&[NetReboot, NetConnectTimeout]);
                self.conflict(
                    line,
                    format!("\"netreboot\" ({r} s) must be longer than \"netconnecttimeout\" ({c} s), or 0 to never reboot"),
                );
            }
        }
        if let (Some(e), Some(f)) = (eval, force) {
            if f < e {
                let line = self.last_line(&[UptimeEval, UptimeForce]);
                self.conflict(
                    line,
                    format!("\"uptimeforce\" ({f} s) must be at least \"uptimeeval\" ({e} s)"),
                );
            }
        }
        let nonzero = |n: u32| (n != 0).then_some(n);
        Some(Timings {
            watchdog_s: watchdog?,
            start_delay_s: start_delay?,
            watchdog_grace_s: grace?,
            may_block_s: may_block?,
            net_connect_timeout_s: connect?,
            net_retry_s: retry?,
            net_retry_fudge_s: fudge?,
            net_reboot_s: nonzero(net_reboot?),
            mqtt_backoff_ms: backoff?,
            mqtt_backoff_max_ms: backoff_max?,
            mqtt_reboot_s: nonzero(mqtt_reboot?),
            uptime_eval_s: eval?,
            uptime_force_s: force?,
        })
    }

    /// A keepalive at or beyond the MQTT reboot deadline would let a healthy but quiet
    /// session look dead.
    fn keepalive_vs_reboot(&mut self, keepalive_s: u16, t: &Timings) {
        if let Some(reboot) = t.mqtt_reboot_s {
            if u32::from(keepalive_s) >= reboot {
                let line = self.last_line(&[Key::MqttKeepalive, Key::MqttReboot]);
                self.conflict(
                    line,
                    format!("\"mqttkeepalive\" ({keepalive_s} s) must be less than \"mqttreboot\" ({reboot} s), or set \"mqttreboot 0\""),
                );
            }
        }
    }

    fn profile_settings(&mut self) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (i, spec) in self.specs.iter().enumerate() {
            let shadowed = Key::from_name(spec.name).is_some()
                || self.specs[..i].iter().any(|s| s.name == spec.name);
            if shadowed {
                continue;
            }
            match self.profile[i] {
                None if spec.required => {
                    ok = false;
                    self.errors.push(ConfigError {
                        line: None,
                        kind: ErrorKind::MissingKey {
                            key: spec.name,
                            hint: None,
                        },
                    });
                }
                Some(Slot::Null(line)) if spec.required => {
                    ok = false;
                    self.bad_value(line, spec.name, None, REQUIRED_NOT_NONE.into());
                }
                None | Some(Slot::Null(_)) => {}
                Some(Slot::NoValue(_)) => ok = false,
                Some(Slot::Text(line, v)) => match (spec.validator)(v) {
                    Ok(()) => {
                        out.insert(spec.name.to_string(), v.to_string());
                    }
                    Err(expected) => {
                        ok = false;
                        self.bad_value(line, spec.name, Some(v), expected.into());
                    }
                },
            }
        }
        ok.then_some(out)
    }
}
