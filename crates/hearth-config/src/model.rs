//! The typed result of parsing: `Config` and its parts, with the documented defaults.
//! Secrets are redacted from `Debug` output so a logged config does not leak them.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// MQTT's standard plain-TCP port, used when `mqttbroker` names no port (the reference's only
/// port).
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// The time server when `ntpserver` is absent (the NTP Pool's own name).
pub const DEFAULT_NTP_SERVER: &str = "pool.ntp.org";

/// MQTT-over-TLS's standard port, used when an `mqtts://` broker names no port.
pub const DEFAULT_MQTTS_PORT: u16 = 8883;

/// Hardware watchdog timeout when `watchdog` is absent, `None`, or one of the reference's
/// "on" values (see [`Timings::watchdog_s`]). Same as the reference's fixed timeout.
pub const DEFAULT_WATCHDOG_S: u32 = 15;

/// The main loop proves it is alive (feeds the watchdog) this often.
pub const WATCHDOG_FEED_PERIOD_S: u32 = 1;

/// Smallest explicit watchdog timeout: several feed periods, so one late feed is not a reset.
pub const WATCHDOG_MIN_S: u32 = 5;

/// Largest explicit watchdog timeout.
pub const WATCHDOG_MAX_S: u32 = 3600;

const _: () = assert!(WATCHDOG_MIN_S > WATCHDOG_FEED_PERIOD_S);
const _: () = assert!(DEFAULT_WATCHDOG_S >= WATCHDOG_MIN_S && DEFAULT_WATCHDOG_S <= WATCHDOG_MAX_S);

/// MQTT keepalive when `mqttkeepalive` is absent. (The reference used 0, i.e. none.)
pub const DEFAULT_MQTT_KEEPALIVE_S: u16 = 30;

/// A validated `config.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `profile` (or its reference synonym `flavor`): which appliance this file is for.
    pub profile: String,
    /// `ssid` and `password`.
    pub network: Network,
    /// `mqttbroker`, `mqttname`, `mqttuser`, `mqttpassword`, `mqttkeepalive`.
    pub mqtt: Mqtt,
    /// `espnowgroup`, `espnowpsk`, `espnowchannel`. Whether a profile needs them is the
    /// profile's business; the framework only checks their form.
    pub espnow: EspNow,
    /// `watchdog` and the policy timeouts.
    pub timings: Timings,
    /// `wifitxpower`: the radio's maximum transmit power (Wi-Fi and ESP-NOW); `None` keeps the
    /// radio driver's default (esp-radio: 5 dBm).
    pub wifi_tx_power: Option<TxPower>,
    /// `ntpserver`: the SNTP servers of the wall clock, in turn (`host` or `host:port`, a DNS
    /// name or an IPv4 address); absent: [`DEFAULT_NTP_SERVER`]; `None`: no wall clock.
    pub ntp_servers: Vec<String>,
    /// The profile's own keys (declared with [`KeySpec`](crate::KeySpec)) that were given a
    /// value, after validation. Keys absent or `None` are not in the map.
    pub profile_settings: BTreeMap<String, String>,
}

/// How the device reaches the LAN (`ssid`, `password`).
#[derive(Clone, PartialEq, Eq)]
pub enum Network {
    /// Wi-Fi station. `password: None` is an open network.
    Wifi {
        ssid: String,
        password: Option<String>,
    },
    /// `ssid (wired)`: Ethernet. On the reference (classic ESP32) a generic RMII PHY; on
    /// ESP32-C3/C6, which have no Ethernet MAC, a W5500 on SPI (pins: the `eth*` board keys).
    Wired,
    /// `ssid (wired2)`: Ethernet. On the reference a WT32-ETH01 board (LAN8720); on ESP32-C3/C6
    /// the same W5500 path as `(wired)`.
    Wired2,
    /// `ssid (none)`: no network at all (e.g. an ESP-NOW-only device); MQTT never starts.
    None,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Wifi { ssid, password } => f
                .debug_struct("Wifi")
                .field("ssid", ssid)
                .field("password", &password.as_ref().map(|_| Redacted))
                .finish(),
            Network::Wired => f.write_str("Wired"),
            Network::Wired2 => f.write_str("Wired2"),
            Network::None => f.write_str("None"),
        }
    }
}

/// MQTT session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mqtt {
    /// `mqttbroker`. Always `Some` unless the network is [`Network::None`].
    pub broker: Option<Broker>,
    /// `mqttname`: the device name in topics (`stat/<name>/...`) and the client-id prefix.
    pub name: String,
    /// `mqttuser` and `mqttpassword`; a password without a user is rejected.
    pub credentials: Option<MqttCredentials>,
    /// `mqttkeepalive`, seconds, 5..=3600.
    pub keepalive_s: u16,
    /// `mqttca`, `mqttpin`, `mqttclientcert`, `mqttclientkey`: how the TLS link to the broker
    /// is verified. `Some` exactly when the broker is `mqtts://` ([`Broker::tls`]).
    pub tls: Option<MqttTls>,
}

/// How the device checks the broker's TLS certificate, and the certificate it shows itself.
/// At least one of `ca` and `pin` is set: there is no "accept any certificate".
#[derive(Clone, PartialEq, Eq)]
pub struct MqttTls {
    /// `mqttca`: the DER of the CA certificate that must have issued the broker's certificate
    /// (directly or through intermediates the broker sends). With it, the chain, the validity
    /// period and the host name are checked.
    pub ca: Option<alloc::vec::Vec<u8>>,
    /// `mqttpin`: SHA-256 of the DER SubjectPublicKeyInfo of the broker's certificate.
    pub pin: Option<[u8; 32]>,
    /// `mqttclientcert` + `mqttclientkey`: the device's own certificate, for brokers that
    /// require one.
    pub client: Option<ClientIdentity>,
}

impl fmt::Debug for MqttTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttTls")
            .field("ca", &self.ca.as_ref().map(|c| DerLen(c.len())))
            .field("pin", &self.pin.as_ref().map(|p| Hex(p)))
            .field("client", &self.client)
            .finish()
    }
}

/// A client certificate and its private key, both DER. The key is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate (X.509 DER).
    pub cert: alloc::vec::Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 RSA or SEC1 EC, DER).
    pub key: alloc::vec::Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert", &DerLen(self.cert.len()))
            .field("key", &Redacted)
            .finish()
    }
}

/// Shows a DER blob by its size in `Debug` output.
struct DerLen(usize);

impl fmt::Debug for DerLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes of DER>", self.0)
    }
}

/// Bytes as lower-case hex.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Broker login.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttCredentials {
    pub user: String,
    pub password: Option<String>,
}

impl fmt::Debug for MqttCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttCredentials")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// Where the MQTT broker is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub host: Host,
    /// 1..=65535; [`DEFAULT_MQTT_PORT`] (or [`DEFAULT_MQTTS_PORT`] with TLS) when the file
    /// names none.
    pub port: u16,
    /// `mqtts://`: MQTT over TLS. Written `host[:port]` or `mqtt://host[:port]` for plain TCP.
    pub tls: bool,
}

impl Broker {
    /// The port used when the file names none, by scheme.
    pub fn default_port(tls: bool) -> u16 {
        if tls {
            DEFAULT_MQTTS_PORT
        } else {
            DEFAULT_MQTT_PORT
        }
    }
}

/// The host part of `mqttbroker`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name to resolve, e.g. `mqtt.lan`.
    Name(String),
    Ipv4(Ipv4Addr),
    /// Written `[addr]` or `[addr]:port` in the file.
    Ipv6(Ipv6Addr),
}

/// Renders the way `mqttbroker` is written: `host`, `host:port`, `[v6]` or `[v6]:port`,
/// prefixed with `mqtts://` for TLS, omitting the scheme's default port.
impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            f.write_str("mqtts://")?;
        }
        match &self.host {
            Host::Name(n) => f.write_str(n)?,
            Host::Ipv4(a) => write!(f, "{a}")?,
            Host::Ipv6(a) => write!(f, "[{a}]")?,
        }
        if self.port != Broker::default_port(self.tls) {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// ESP-NOW link settings, all optional at this level.
#[derive(Clone, PartialEq, Eq)]
pub struct EspNow {
    /// `espnowgroup`.
    pub group: Option<String>,
    /// `espnowpsk`. With wire format 3 it must be at least [`MIN_V3_PSK_LEN`] characters.
    pub psk: Option<String>,
    /// `espnowchannel`, 1..=13 (used by a central).
    pub channel: Option<u8>,
    /// `espnowversion`: the wire format, 2 (the reference's, for networks with MicroPython
    /// devices) or 3 (Hearth's, the default).
    pub version: u8,
}

/// A transmit power in quarters of a dBm (the radio's own unit), 2..=20 dBm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxPower(u8);

impl TxPower {
    /// The lowest power accepted, in quarter dBm (2 dBm).
    pub const MIN_QUARTER_DBM: u8 = 8;
    /// The highest power accepted, in quarter dBm (20 dBm).
    pub const MAX_QUARTER_DBM: u8 = 80;

    /// A power from quarters of a dBm, if in range.
    pub const fn from_quarter_dbm(q: u8) -> Option<Self> {
        if q >= Self::MIN_QUARTER_DBM && q <= Self::MAX_QUARTER_DBM {
            Some(TxPower(q))
        } else {
            None
        }
    }

    /// The power in quarters of a dBm.
    pub const fn quarter_dbm(self) -> u8 {
        self.0
    }
}

/// As written in `config.txt`: dBm with up to two decimals (`8.5`, `11.25`, `20`).
impl fmt::Display for TxPower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, quarter) = (self.0 / 4, self.0 % 4);
        match quarter {
            0 => write!(f, "{whole}"),
            1 => write!(f, "{whole}.25"),
            2 => write!(f, "{whole}.5"),
            _ => write!(f, "{whole}.75"),
        }
    }
}

/// The default `espnowversion`.
pub const DEFAULT_ESPNOW_VERSION: u8 = 3;
/// Shortest `espnowpsk` accepted with `espnowversion 3`: its key schedule does not stretch
/// passwords, so the PSK must carry the entropy itself.
pub const MIN_V3_PSK_LEN: usize = 16;

impl Default for EspNow {
    fn default() -> Self {
        EspNow {
            group: None,
            psk: None,
            channel: None,
            version: DEFAULT_ESPNOW_VERSION,
        }
    }
}

impl fmt::Debug for EspNow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspNow")
            .field("group", &self.group)
            .field("psk", &self.psk.as_ref().map(|_| Redacted))
            .field("channel", &self.channel)
            .field("version", &self.version)
            .finish()
    }
}

/// Watchdog and failure-policy timings. Defaults are the reference's values except where a
/// reference weakness is fixed (watchdog on by default; capped MQTT back-off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// `watchdog`: hardware watchdog timeout in seconds; `None` = disabled (`watchdog 0`).
    ///
    /// Default: on, [`DEFAULT_WATCHDOG_S`]. The reference defaulted to off (its weakness: one
    /// crash left the device dead), and treated any value other than `0` as "on, 15 s".
    /// To keep old files meaning what they meant:
    /// - `0` is off, as before;
    /// - `1..=4` (in practice `watchdog 1`) and the words `on`, `yes`, `true` mean on with
    ///   the default timeout, as before — such short timeouts would be too close to the
    ///   1 s feed period to be meant literally;
    /// - `5..=3600` is the timeout in seconds (a new meaning for values the reference
    ///   treated as plain "on");
    /// - the words `off`, `no`, `false` are rejected: the reference read them as *on*, so
    ///   accepting them either way would surprise someone.
    pub watchdog_s: Option<u32>,
    /// `startdelay`: upper bound of the random start-up delay, s (0..=300, 0 = none). Default 10.
    pub start_delay_s: u32,
    /// `wdgrace`: delay before the watchdog is armed, s (0..=300). Default 10.
    pub watchdog_grace_s: u32,
    /// `mayblock`: how long a section that may block keeps the watchdog fed, s (1..=3600).
    /// Default 120.
    pub may_block_s: u32,
    /// `netconnecttimeout`: give up one connection attempt after, s (5..=600). Default 60.
    pub net_connect_timeout_s: u32,
    /// `netretry`: wait after a lost or failed connection, s (1..=3600). Default 30.
    pub net_retry_s: u32,
    /// `netretryfudge`: random extra on top of `netretry`, s (0..=3600). Default 15.
    pub net_retry_fudge_s: u32,
    /// `netreboot`: reboot after this long without network, s (60..=86400); `None` =
    /// never (`netreboot 0`). Default 600.
    pub net_reboot_s: Option<u32>,
    /// `mqttbackoffms`: first MQTT reconnect back-off, ms (100..=60000). Default 500.
    pub mqtt_backoff_ms: u32,
    /// `mqttbackoffmaxms`: back-off cap, ms (100..=3600000, ≥ `mqttbackoffms`). Default
    /// 60000. (The reference had no cap.)
    pub mqtt_backoff_max_ms: u32,
    /// `mqttreboot`: reboot after this long without MQTT traffic, s (60..=86400); `None` =
    /// never (`mqttreboot 0`). Default 600.
    pub mqtt_reboot_s: Option<u32>,
    /// `uptimeeval`: evaluate the Uptime publisher every, s (1..=86400). Default 60.
    pub uptime_eval_s: u32,
    /// `uptimeforce`: republish Uptime at least every, s (1..=86400, ≥ `uptimeeval`).
    /// Default 1800.
    pub uptime_force_s: u32,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            watchdog_s: Some(DEFAULT_WATCHDOG_S),
            start_delay_s: 10,
            watchdog_grace_s: 10,
            may_block_s: 120,
            net_connect_timeout_s: 60,
            net_retry_s: 30,
            net_retry_fudge_s: 15,
            net_reboot_s: Some(600),
            mqtt_backoff_ms: 500,
            mqtt_backoff_max_ms: 60_000,
            mqtt_reboot_s: Some(600),
            uptime_eval_s: 60,
            uptime_force_s: 1800,
        }
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn broker_display() {
        let b = |host, port| {
            Broker {
                host,
                port,
                tls: false,
            }
            .to_string()
        };
        assert_eq!(b(Host::Name("mqtt.lan".into()), 1883), "mqtt.lan");
        assert_eq!(
            b(Host::Ipv4(Ipv4Addr::new(10, 0, 0, 1)), 8883),
            "10.0.0.1:8883"
        );
        assert_eq!(b(Host::Ipv6(Ipv6Addr::LOCALHOST), 1883), "[::1]");
        assert_eq!(b(Host::Ipv6(Ipv6Addr::LOCALHOST), 1), "[::1]:1");
        let tls = |port| {
            Broker {
                host: Host::Name("mqtt.lan".into()),
                port,
                tls: true,
            }
            .to_string()
        };
        assert_eq!(tls(8883), "mqtts://mqtt.lan");
        assert_eq!(tls(1883), "mqtts://mqtt.lan:1883");
    }

    #[test]
    fn debug_redacts_secrets() {
        let n = Network::Wifi {
            ssid: "home".into(),
            password: Some("hunter22secret".into()),
        };
        let c = MqttCredentials {
            user: "u".into(),
            password: Some("hunter22secret".into()),
        };
        let e = EspNow {
            psk: Some("hunter22secret".into()),
            ..EspNow::default()
        };
        let t = MqttTls {
            ca: Some(alloc::vec![0x30, 0]),
            pin: Some([0xab; 32]),
            client: Some(ClientIdentity {
                cert: alloc::vec![0x30, 0],
                key: b"hunter22secret".to_vec(),
            }),
        };
        let shown = format!("{t:?}");
        assert!(shown.contains("<2 bytes of DER>"), "{shown}");
        assert!(shown.contains(&"ab".repeat(32)), "{shown}");
        assert!(!shown.contains("104, 117"), "key bytes leaked: {shown}");
        for s in [format!("{n:?}"), format!("{c:?}"), format!("{e:?}"), shown] {
            assert!(!s.contains("hunter22"), "{s}");
            assert!(s.contains("<redacted>"), "{s}");
        }
    }
}
