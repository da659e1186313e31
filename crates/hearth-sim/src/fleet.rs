//! Talking to the fleet through its broker: a small blocking MQTT 3.1.1 client (QoS 0, clean
//! session) for the commands that watch or command devices (`hearth mon`, later `ota`, `cmd`,
//! `config push`), and `hearth mon` itself.
//!
//! The client runs over any `Read + Write` stream: plain TCP or rustls over TCP
//! ([`BrokerStream`]); the stream's read timeout drives [`Client::recv`]'s timeout. TLS is
//! verified as on the devices ([`crate::tls`]): a CA (`--ca`) and/or a pin (`--pin`), never
//! "accept anything", and a failed check is an error, never a plain-text fallback. The packet encoders and the decoder
//! are pure functions over byte slices and never panic on what a broker sends.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Environment variable naming the broker, `HOST:PORT` or `HOST`.
pub const BROKER_ENV: &str = "HEARTH_BROKER";
/// Environment variable with the broker user name.
pub const USER_ENV: &str = "HEARTH_MQTT_USER";
/// Environment variable with the broker password.
pub const PASSWORD_ENV: &str = "HEARTH_MQTT_PASSWORD";
/// Environment variable with the CA certificate (PEM file) that signed the broker's.
pub const CA_ENV: &str = "HEARTH_CA";
/// Environment variable with the broker's public-key pin (64 hex digits).
pub const PIN_ENV: &str = "HEARTH_PIN";
/// Environment variable with the client certificate (PEM file).
pub const CLIENT_CERT_ENV: &str = "HEARTH_CLIENT_CERT";
/// Environment variable with the client certificate's private key (PEM file).
pub const CLIENT_KEY_ENV: &str = "HEARTH_CLIENT_KEY";
/// Port used when none is given.
pub const DEFAULT_PORT: u16 = 1883;
/// Port used when none is given, with TLS.
pub const DEFAULT_TLS_PORT: u16 = 8883;
/// Keep-alive announced in CONNECT.
pub const KEEPALIVE: Duration = Duration::from_secs(30);
/// The largest remaining length MQTT can encode (256 MB - 1).
pub const MAX_REMAINING: usize = 268_435_455;

/// Where the broker is and how to log in. Its `Debug` output never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerArgs {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name, if the broker wants a login.
    pub user: Option<String>,
    /// Password (needs a user name).
    pub password: Option<String>,
    /// TLS (`--tls`, `mqtts://`), and how to verify the broker; `None` = plain TCP.
    pub tls: Option<TlsArgs>,
}

impl std::fmt::Debug for BrokerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerArgs")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// How the fleet commands verify the broker's TLS certificate, and their own certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// `--ca FILE`: PEM of the CA certificate that signed the broker's.
    pub ca: Option<PathBuf>,
    /// `--pin HEX`: SHA-256 of the broker certificate's SubjectPublicKeyInfo.
    pub pin: Option<[u8; 32]>,
    /// `--client-cert FILE`: PEM.
    pub client_cert: Option<PathBuf>,
    /// `--client-key FILE`: PEM.
    pub client_key: Option<PathBuf>,
}

/// `--pin` / `$HEARTH_PIN`: 64 hex digits.
pub fn parse_pin(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    let bad =
        || format!("the pin must be 64 hex digits (SHA-256 of the broker's public key), got {s:?}");
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut pin = [0u8; 32];
    for (i, b) in pin.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(pin)
}

/// A broker address as written: `[mqtt://|mqtts://]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The port, if written.
    pub port: Option<u16>,
    /// `Some(true)` for `mqtts://`, `Some(false)` for `mqtt://`, `None` without a scheme.
    pub tls: Option<bool>,
}

impl BrokerAddress {
    /// The port, or the scheme's default.
    pub fn port_or_default(&self, tls: bool) -> u16 {
        self.port
            .unwrap_or(if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT })
    }
}

impl Default for BrokerArgs {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            user: None,
            password: None,
            tls: None,
        }
    }
}

impl BrokerArgs {
    /// Defaults: host/port from env HEARTH_BROKER ("HOST:PORT" or "HOST"; port default 1883),
    /// else 127.0.0.1:1883; user/password from HEARTH_MQTT_USER / HEARTH_MQTT_PASSWORD. Flags
    /// override.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(&|k| std::env::var(k).ok())
    }

    /// [`BrokerArgs::from_env`] with the variables looked up by `var` (empty = unset).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        let mut args = Self {
            user: var(USER_ENV),
            password: var(PASSWORD_ENV),
            ..Self::default()
        };
        if let Some(b) = var(BROKER_ENV) {
            let a = Self::parse_broker(&b).map_err(|e| format!("{BROKER_ENV}: {e}"))?;
            let tls = a.tls == Some(true);
            args.port = a.port_or_default(tls);
            args.host = a.host;
            if tls {
                args.tls = Some(TlsArgs::from_vars(&var)?);
            }
        }
        Ok(args)
    }

    /// Parse "HOST:PORT" / "HOST" / "[v6]:PORT" / "[v6]", optionally after `mqtt://` or
    /// `mqtts://`, with clear errors (empty host, bad port, port 0, unknown scheme).
    pub fn parse_broker(s: &str) -> Result<BrokerAddress, String> {
        let s = s.trim();
        let (tls, s) = if let Some(rest) = s.strip_prefix("mqtts://") {
            (Some(true), rest)
        } else if let Some(rest) = s.strip_prefix("mqtt://") {
            (Some(false), rest)
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "broker {s:?}: unknown scheme {scheme:?}; use mqtt:// (plain) or mqtts:// (TLS)"
            ));
        } else {
            (None, s)
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("broker {s:?}: missing ']' after the IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    format!("broker {s:?}: expected ':PORT' after ']', got {p:?}")
                })?),
            };
            (host, port)
        } else {
            match s.split_once(':') {
                Some((_, rest)) if rest.contains(':') => {
                    return Err(format!(
                        "broker {s:?}: write an IPv6 address in brackets, like [::1]:1883"
                    ))
                }
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(format!("broker {s:?}: the host is empty"));
        }
        if host.chars().any(char::is_whitespace) {
            return Err(format!("broker {s:?}: the host contains a space"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) => return Err(format!("broker {s:?}: port 0 is not a broker port")),
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(format!(
                        "broker {s:?}: the port must be a number 1..=65535, got {p:?}"
                    ))
                }
            },
        };
        Ok(BrokerAddress {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// `HOST:PORT` for messages (`[v6]:PORT` for IPv6 addresses).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl TlsArgs {
    /// The TLS options from `$HEARTH_CA`, `$HEARTH_PIN`, `$HEARTH_CLIENT_CERT`,
    /// `$HEARTH_CLIENT_KEY` (`var` returns `None` for unset or empty).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        Ok(Self {
            ca: var(CA_ENV).map(PathBuf::from),
            pin: var(PIN_ENV)
                .map(|p| parse_pin(&p).map_err(|e| format!("{PIN_ENV}: {e}")))
                .transpose()?,
            client_cert: var(CLIENT_CERT_ENV).map(PathBuf::from),
            client_key: var(CLIENT_KEY_ENV).map(PathBuf::from),
        })
    }

    /// The device-side settings for a connection to `host`: the PEM files read and decoded.
    pub fn settings(&self, host: &str) -> Result<hearth_device::TlsSettings, String> {
        Ok(hearth_device::TlsSettings {
            server_name: host.to_string(),
            ca: self.ca.as_deref().map(crate::tls::pem_cert).transpose()?,
            pin: self.pin,
            client_cert: self
                .client_cert
                .as_deref()
                .map(crate::tls::pem_cert)
                .transpose()?,
            client_key: self
                .client_key
                .as_deref()
                .map(crate::tls::pem_key)
                .transpose()?,
        })
    }
}

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// TCP connection (or name resolution) failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `HOST:PORT`.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// The TLS set-up (certificate files) or the TLS handshake failed. Never followed by a
    /// plain connection.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// `HOST:PORT`.
        addr: String,
        /// What was wrong, e.g. `certificate not valid for host "x"`.
        reason: String,
    },
    /// CONNACK with a non-zero return code.
    #[error("connection refused by the broker: {reason} (CONNACK code {code})")]
    Refused {
        /// The CONNACK return code.
        code: u8,
        /// Its meaning.
        reason: &'static str,
    },
    /// A SUBACK with the failure code 0x80.
    #[error("the broker refused the subscription to {filter:?} (not authorized?)")]
    SubscribeRefused {
        /// The topic filter.
        filter: String,
    },
    /// The broker closed the TCP connection.
    #[error("the broker closed the connection")]
    Closed,
    /// Bytes that are not MQTT 3.1.1 (or not what was expected then).
    #[error("malformed packet from the broker: {0}")]
    Malformed(String),
    /// No answer in time.
    #[error("timeout waiting for {0} from the broker")]
    Timeout(&'static str),
    /// Something we were asked to send cannot be encoded (too long, bad topic, ...).
    #[error("{0}")]
    Invalid(String),
    /// Any other I/O error on the connection.
    #[error("connection to the broker failed: {0}")]
    Io(io::Error),
}

impl From<io::Error> for FleetError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind::*;
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => FleetError::Closed,
            _ => FleetError::Io(e),
        }
    }
}

/// Meaning of a CONNACK return code.
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version (the broker does not speak MQTT 3.1.1)",
        2 => "client identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => "unknown reason",
    }
}

// ---------------------------------------------------------------------------------------------
// Packets: pure encoders and decoder.

/// A packet from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNACK.
    ConnAck {
        /// Session-present flag.
        session_present: bool,
        /// Return code (0 = accepted).
        code: u8,
    },
    /// PUBLISH.
    Publish {
        /// Topic name.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
        /// Retain flag.
        retain: bool,
        /// QoS 0..=2.
        qos: u8,
        /// DUP flag.
        dup: bool,
        /// Packet identifier (QoS 1 and 2 only).
        packet_id: Option<u16>,
    },
    /// SUBACK.
    SubAck {
        /// Packet identifier of the SUBSCRIBE.
        packet_id: u16,
        /// One return code per filter (0..=2 granted QoS, 0x80 failure).
        codes: Vec<u8>,
    },
    /// PINGRESP.
    PingResp,
    /// A packet larger than [`MAX_PACKET`]: skipped as it streams past, never held in memory.
    Oversized {
        /// The PUBLISH's topic, when it is one.
        topic: Option<String>,
        /// The packet's remaining length.
        len: usize,
        /// Retain flag (PUBLISH only).
        retain: bool,
    },
    /// Any other packet type a client may receive (PUBACK, UNSUBACK, ...), ignored.
    Other {
        /// The packet type (high nibble of the first byte).
        kind: u8,
    },
}

/// The largest packet the fleet tools read into memory: the device's own bound
/// ([`hearth_device::session::MAX_INCOMING_PACKET`]). Device statuses and answers are far
/// smaller; anything larger (one 64 MB retained message under `#`) is skipped as it arrives and
/// reported by its size.
pub const MAX_PACKET: usize = hearth_device::session::MAX_INCOMING_PACKET as usize;

/// The packet at the start of `buf` when its header says it is larger than [`MAX_PACKET`]:
/// `Ok(Some((packet, total bytes)))` once the header (and, for a PUBLISH, its topic) is in.
fn oversized(buf: &[u8]) -> Result<Option<(Packet, usize)>, FleetError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, n)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let start = 1 + n;
    if start + len <= MAX_PACKET {
        return Ok(None);
    }
    let (topic, retain) = if first >> 4 == 3 {
        let (Some(&hi), Some(&lo)) = (buf.get(start), buf.get(start + 1)) else {
            return Ok(None);
        };
        let tlen = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(t) = buf.get(start + 2..start + 2 + tlen) else {
            return Ok(None);
        };
        (
            Some(String::from_utf8_lossy(t).into_owned()),
            first & 1 == 1,
        )
    } else {
        (None, false)
    };
    Ok(Some((
        Packet::Oversized { topic, len, retain },
        start + len,
    )))
}

/// Append the remaining-length encoding of `len`; error above [`MAX_REMAINING`].
pub fn encode_remaining_length(len: usize, out: &mut Vec<u8>) -> Result<(), FleetError> {
    if len > MAX_REMAINING {
        return Err(FleetError::Invalid(format!(
            "packet too large for MQTT: {len} bytes (at most {MAX_REMAINING})"
        )));
    }
    let mut x = len;
    loop {
        let mut byte = (x % 128) as u8;
        x /= 128;
        if x > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if x == 0 {
            return Ok(());
        }
    }
}

/// Decode a remaining length at the start of `buf`: `Ok(Some((value, bytes used)))`, `Ok(None)`
/// when `buf` ends before the encoding does, an error when it is longer than four bytes.
pub fn decode_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, FleetError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(FleetError::Malformed(
        "remaining length longer than 4 bytes".into(),
    ))
}

fn put_str(out: &mut Vec<u8>, s: &[u8], what: &str) -> Result<(), FleetError> {
    let len = u16::try_from(s.len()).map_err(|_| {
        FleetError::Invalid(format!(
            "{what} too long: {} bytes (at most 65535)",
            s.len()
        ))
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s);
    Ok(())
}

fn packet(first: u8, body: &[u8]) -> Result<Vec<u8>, FleetError> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    encode_remaining_length(body.len(), &mut out)?;
    out.extend_from_slice(body);
    Ok(out)
}

/// CONNECT, MQTT 3.1.1, clean session.
pub fn encode_connect(
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
    keepalive_secs: u16,
) -> Result<Vec<u8>, FleetError> {
    if password.is_some() && user.is_none() {
        return Err(FleetError::Invalid(
            "a password needs a user name in MQTT 3.1.1".into(),
        ));
    }
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT", "protocol name")?;
    body.push(4); // protocol level 3.1.1
    let mut flags = 0x02; // clean session
    if user.is_some() {
        flags |= 0x80;
    }
    if password.is_some() {
        flags |= 0x40;
    }
    body.push(flags);
    body.extend_from_slice(&keepalive_secs.to_be_bytes());
    put_str(&mut body, client_id.as_bytes(), "client id")?;
    if let Some(u) = user {
        put_str(&mut body, u.as_bytes(), "user name")?;
    }
    if let Some(p) = password {
        put_str(&mut body, p.as_bytes(), "password")?;
    }
    packet(0x10, &body)
}

fn check_topic(topic: &str, filter: bool) -> Result<(), FleetError> {
    let what = if filter { "topic filter" } else { "topic" };
    if topic.is_empty() {
        return Err(FleetError::Invalid(format!("the {what} is empty")));
    }
    if topic.contains('\0') {
        return Err(FleetError::Invalid(format!("the {what} contains a NUL")));
    }
    if !filter && topic.contains(['+', '#']) {
        return Err(FleetError::Invalid(format!(
            "the topic {topic:?} contains a wildcard (+ or #)"
        )));
    }
    Ok(())
}

/// SUBSCRIBE for one filter at QoS 0.
pub fn encode_subscribe(packet_id: u16, filter: &str) -> Result<Vec<u8>, FleetError> {
    check_topic(filter, true)?;
    let mut body = packet_id.to_be_bytes().to_vec();
    put_str(&mut body, filter.as_bytes(), "topic filter")?;
    body.push(0); // requested QoS 0
    packet(0x82, &body)
}

/// PUBLISH at QoS 0.
pub fn encode_publish(topic: &str, payload: &[u8], retain: bool) -> Result<Vec<u8>, FleetError> {
    check_topic(topic, false)?;
    let mut body = Vec::with_capacity(2 + topic.len() + payload.len());
    put_str(&mut body, topic.as_bytes(), "topic")?;
    body.extend_from_slice(payload);
    packet(0x30 | u8::from(retain), &body)
}

/// PINGREQ.
pub fn encode_pingreq() -> [u8; 2] {
    [0xc0, 0]
}

/// DISCONNECT.
pub fn encode_disconnect() -> [u8; 2] {
    [0xe0, 0]
}

fn malformed(what: impl Into<String>) -> FleetError {
    FleetError::Malformed(what.into())
}

/// Decode the first packet of a byte stream: `Ok(Some((packet, bytes used)))`, or `Ok(None)`
/// when `buf` does not hold a whole packet yet.
pub fn decode_packet(buf: &[u8]) -> Result<Option<(Packet, usize)>, FleetError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, n)) = decode_remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let start = 1 + n;
    let Some(body) = buf.get(start..start + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(first, body)?, start + len)))
}

/// Decode exactly one whole packet; truncated or trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Packet, FleetError> {
    match decode_packet(bytes)? {
        Some((p, used)) if used == bytes.len() => Ok(p),
        Some((_, used)) => Err(malformed(format!(
            "{} bytes after the end of the packet",
            bytes.len() - used
        ))),
        None => Err(malformed("truncated packet")),
    }
}

fn decode_body(first: u8, body: &[u8]) -> Result<Packet, FleetError> {
    let kind = first >> 4;
    let flags = first & 0x0f;
    let need_flags = |want: u8, name: &str| {
        if flags == want {
            Ok(())
        } else {
            Err(malformed(format!("{name} with flags {flags:#x}")))
        }
    };
    match kind {
        2 => {
            need_flags(0, "CONNACK")?;
            match *body {
                [ack, code] if ack & 0xfe == 0 => Ok(Packet::ConnAck {
                    session_present: ack == 1,
                    code,
                }),
                _ => Err(malformed(format!(
                    "CONNACK of {} bytes: {body:02x?}",
                    body.len()
                ))),
            }
        }
        3 => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return Err(malformed("PUBLISH with QoS 3"));
            }
            let topic_len = match body {
                [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
                _ => return Err(malformed("PUBLISH too short for its topic length")),
            };
            let topic = body
                .get(2..2 + topic_len)
                .ok_or_else(|| malformed("PUBLISH topic longer than the packet"))?;
            let topic = std::str::from_utf8(topic)
                .map_err(|_| malformed("PUBLISH topic is not UTF-8"))?
                .to_string();
            let mut rest = &body[2 + topic_len..];
            let packet_id = if qos > 0 {
                match rest {
                    [a, b, tail @ ..] => {
                        rest = tail;
                        Some(u16::from_be_bytes([*a, *b]))
                    }
                    _ => return Err(malformed("PUBLISH without its packet identifier")),
                }
            } else {
                None
            };
            Ok(Packet::Publish {
                topic,
                payload: rest.to_vec(),
                retain: flags & 1 == 1,
                qos,
                dup: flags & 8 == 8,
                packet_id,
            })
        }
        9 => {
            need_flags(0, "SUBACK")?;
            match body {
                [a, b, codes @ ..] if !codes.is_empty() => Ok(Packet::SubAck {
                    packet_id: u16::from_be_bytes([*a, *b]),
                    codes: codes.to_vec(),
                }),
                _ => Err(malformed("SUBACK without return codes")),
            }
        }
        13 => {
            need_flags(0, "PINGRESP")?;
            if body.is_empty() {
                Ok(Packet::PingResp)
            } else {
                Err(malformed("PINGRESP with a body"))
            }
        }
        4..=7 | 11 => Ok(Packet::Other { kind }),
        _ => Err(malformed(format!(
            "packet type {kind}, which a broker does not send to a client"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A message received on a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// The broker sent it as a retained message (it was stored before we subscribed).
    pub retained: bool,
    /// The message was larger than [`MAX_PACKET`] and was skipped unread: its size (the
    /// payload is then empty).
    pub skipped: Option<usize>,
}

/// Sets the read timeout of the stream under a client (`None` = block).
pub type SetReadTimeout<S> = fn(&S, Option<Duration>) -> io::Result<()>;

/// The connection under a [`Client`] made by [`Client::connect`]: TCP, or TLS over TCP.
pub enum BrokerStream {
    /// Plain MQTT.
    Tcp(TcpStream),
    /// MQTT over TLS.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl BrokerStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            BrokerStream::Tcp(s) => s,
            BrokerStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for BrokerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BrokerStream::Tcp(s) => s.read(buf),
            BrokerStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for BrokerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BrokerStream::Tcp(s) => s.write(buf),
            BrokerStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BrokerStream::Tcp(s) => s.flush(),
            BrokerStream::Tls(s) => s.flush(),
        }
    }
}

/// Run the TLS handshake over `tcp` as `tls` says; the error says what the check found.
fn tls_handshake(
    tcp: TcpStream,
    args: &BrokerArgs,
    tls: &TlsArgs,
    timeout: Duration,
) -> Result<BrokerStream, FleetError> {
    let fail = |reason: String| FleetError::Tls {
        addr: args.address(),
        reason,
    };
    let settings = tls.settings(&args.host).map_err(fail)?;
    let config = crate::tls::client_config(&settings).map_err(fail)?;
    let name = crate::tls::server_name(&args.host).map_err(fail)?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| fail(e.to_string()))?;
    let mut tcp = tcp;
    tcp.set_read_timeout(Some(timeout))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(fail(match crate::tls::rustls_error(&e) {
                Some(r) => crate::tls::classify(r).explain(&args.host),
                None if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
                {
                    "no answer to the TLS handshake (is this a TLS port?)".into()
                }
                None => format!("handshake failed: {e}"),
            }));
        }
    }
    Ok(BrokerStream::Tls(Box::new(rustls::StreamOwned::new(
        conn, tcp,
    ))))
}

/// A blocking MQTT 3.1.1 client: clean session, QoS 0.
pub struct Client<S: Read + Write = BrokerStream> {
    stream: S,
    set_read_timeout: SetReadTimeout<S>,
    /// How long to wait for SUBACK.
    timeout: Duration,
    /// Bytes read and not yet decoded.
    buf: Vec<u8>,
    /// PUBLISHes that arrived while waiting for something else.
    pending: VecDeque<Received>,
    /// Bytes of an oversized packet still to be discarded as they arrive.
    skip: usize,
    next_id: u16,
    last_sent: Instant,
    ping_sent: Option<Instant>,
}

fn tcp_read_timeout(s: &BrokerStream, d: Option<Duration>) -> io::Result<()> {
    s.tcp().set_read_timeout(d)
}

impl Client {
    /// Connect over TCP (and TLS, with `args.tls`) to the broker in `args` and log in;
    /// `timeout` bounds the TCP connect, the TLS handshake's reads, the wait for CONNACK and
    /// later for each SUBACK.
    pub fn connect(
        args: &BrokerArgs,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, FleetError> {
        let addr = args.address();
        let connect_err = |source| FleetError::Connect {
            addr: addr.clone(),
            source,
        };
        let addrs: Vec<_> = (args.host.as_str(), args.port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
        let mut stream = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        let _ = stream.set_nodelay(true);
        stream.set_write_timeout(Some(timeout.max(Duration::from_secs(10))))?;
        let stream = match &args.tls {
            Some(tls) => tls_handshake(stream, args, tls, timeout)?,
            None => BrokerStream::Tcp(stream),
        };
        Client::handshake(stream, tcp_read_timeout, args, client_id, timeout)
    }
}

impl<S: Read + Write> Client<S> {
    /// Log in over an established stream (TCP, TLS, ...): send CONNECT and wait up to `timeout`
    /// for CONNACK. `set_read_timeout` sets the read timeout of the socket under `stream`.
    pub fn handshake(
        stream: S,
        set_read_timeout: SetReadTimeout<S>,
        args: &BrokerArgs,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, FleetError> {
        let mut c = Self {
            stream,
            set_read_timeout,
            timeout,
            buf: Vec::new(),
            pending: VecDeque::new(),
            skip: 0,
            next_id: 1,
            last_sent: Instant::now(),
            ping_sent: None,
        };
        let connect = encode_connect(
            client_id,
            args.user.as_deref(),
            args.password.as_deref(),
            KEEPALIVE.as_secs() as u16,
        )?;
        c.send(&connect)?;
        match c.read_packet(Instant::now() + timeout)? {
            None => Err(FleetError::Timeout("CONNACK")),
            Some(Packet::ConnAck { code: 0, .. }) => Ok(c),
            Some(Packet::ConnAck { code, .. }) => Err(FleetError::Refused {
                code,
                reason: connack_reason(code),
            }),
            Some(other) => Err(malformed(format!(
                "expected CONNACK, got {}",
                packet_name(&other)
            ))),
        }
    }

    /// Subscribe to `filter` at QoS 0 and wait for the SUBACK; an error if the broker refuses.
    /// Messages arriving meanwhile are kept for [`Client::recv`].
    pub fn subscribe(&mut self, filter: &str) -> Result<(), FleetError> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let pkt = encode_subscribe(id, filter)?;
        self.send(&pkt)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.read_packet(deadline)? {
                None => return Err(FleetError::Timeout("SUBACK")),
                Some(Packet::SubAck { packet_id, codes }) if packet_id == id => {
                    return match codes.first() {
                        Some(0..=2) => Ok(()),
                        _ => Err(FleetError::SubscribeRefused {
                            filter: filter.to_string(),
                        }),
                    };
                }
                Some(p) => self.keep(p),
            }
        }
    }

    /// Publish `payload` on `topic` at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<(), FleetError> {
        let pkt = encode_publish(topic, payload, retain)?;
        self.send(&pkt)
    }

    /// The next PUBLISH received, or `Ok(None)` when `timeout` passes with none. Sends PINGREQ
    /// as the keep-alive (30 s) needs while it waits; an error when the broker does not answer
    /// the ping within the keep-alive or closes the connection.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, FleetError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_packet(deadline)? {
                None => return Ok(None),
                Some(p) => {
                    self.keep(p);
                    if let Some(m) = self.pending.pop_front() {
                        return Ok(Some(m));
                    }
                }
            }
        }
    }

    /// Send DISCONNECT and close the connection.
    pub fn disconnect(mut self) {
        let _ = self.stream.write_all(&encode_disconnect());
        let _ = self.stream.flush();
    }

    /// The stream under the client.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    fn keep(&mut self, p: Packet) {
        if let Packet::Publish {
            topic,
            payload,
            retain,
            ..
        } = p
        {
            self.pending.push_back(Received {
                topic,
                payload,
                retained: retain,
                skipped: None,
            });
        } else if let Packet::Oversized {
            topic: Some(topic),
            len,
            retain,
        } = p
        {
            self.pending.push_back(Received {
                topic,
                payload: Vec::new(),
                retained: retain,
                skipped: Some(len),
            });
        }
        // PINGRESP is handled by `read_packet`; anything else needs no answer at QoS 0.
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), FleetError> {
        self.stream.write_all(bytes)?;
        self.stream.flush()?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next packet other than PINGRESP, or `None` at `deadline`. Keeps the connection alive
    /// meanwhile. Reads at least once, also when `deadline` has passed.
    fn read_packet(&mut self, deadline: Instant) -> Result<Option<Packet>, FleetError> {
        let ping_every = KEEPALIVE / 2;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut read_once = false;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.drain(..n);
                self.skip -= n;
            }
            if self.skip == 0 {
                if let Some((p, total)) = oversized(&self.buf)? {
                    let have = total.min(self.buf.len());
                    self.buf.drain(..have);
                    self.skip = total - have;
                    return Ok(Some(p));
                }
            }
            while let Some((p, used)) = (self.skip == 0)
                .then(|| decode_packet(&self.buf))
                .transpose()?
                .flatten()
            {
                self.buf.drain(..used);
                if p == Packet::PingResp {
                    self.ping_sent = None;
                } else {
                    return Ok(Some(p));
                }
            }
            let now = Instant::now();
            if let Some(sent) = self.ping_sent {
                if now >= sent + KEEPALIVE {
                    return Err(FleetError::Timeout("PINGRESP"));
                }
            } else if now >= self.last_sent + ping_every {
                self.send(&encode_pingreq())?;
                self.ping_sent = Some(Instant::now());
            }
            if read_once && now >= deadline {
                return Ok(None);
            }
            let wake = match self.ping_sent {
                Some(sent) => sent + KEEPALIVE,
                None => self.last_sent + ping_every,
            };
            let wait = deadline
                .min(wake)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            (self.set_read_timeout)(&self.stream, Some(wait))?;
            read_once = true;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(FleetError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn packet_name(p: &Packet) -> String {
    match p {
        Packet::ConnAck { .. } => "CONNACK".into(),
        Packet::Publish { .. } => "PUBLISH".into(),
        Packet::SubAck { .. } => "SUBACK".into(),
        Packet::PingResp => "PINGRESP".into(),
        Packet::Oversized { len, .. } => format!("a packet of {len} bytes (skipped)"),
        Packet::Other { kind } => format!("packet type {kind}"),
    }
}

// ---------------------------------------------------------------------------------------------
// `hearth mon`.

/// The filters `hearth mon` subscribes to: the device's `stat`, `tele` and `cmnd` topics, or
/// everything.
pub fn mon_filters(device: Option<&str>) -> Vec<String> {
    match device {
        Some(d) => ["stat", "tele", "cmnd"]
            .iter()
            .map(|p| format!("{p}/{d}/#"))
            .collect(),
        None => vec!["#".into()],
    }
}

/// One line of `hearth mon`: `TOPIC PAYLOAD`, the payload as text when it is UTF-8, else
/// `<N bytes> HEX` (the first 32 bytes), `<empty>` when empty; ` (retained)` for retained
/// messages.
pub fn format_message(m: &Received) -> String {
    let payload = match std::str::from_utf8(&m.payload) {
        _ if m.skipped.is_some() => format!(
            "<{} bytes: larger than the {} bytes the tools read, skipped>",
            m.skipped.unwrap_or(0),
            MAX_PACKET
        ),
        Ok("") => "<empty>".to_string(),
        Ok(text) => text.to_string(),
        Err(_) => {
            const SHOWN: usize = 32;
            let hex: String = m
                .payload
                .iter()
                .take(SHOWN)
                .map(|b| format!("{b:02x}"))
                .collect();
            let more = if m.payload.len() > SHOWN { "…" } else { "" };
            format!("<{} bytes> {hex}{more}", m.payload.len())
        }
    };
    let retained = if m.retained { " (retained)" } else { "" };
    format!("{} {payload}{retained}", m.topic)
}

/// Watch the broker until `limit` passes (or forever): connect, subscribe, print.
pub fn mon_run(
    args: &BrokerArgs,
    device: Option<&str>,
    limit: Option<Duration>,
    out: &mut impl Write,
) -> Result<(), FleetError> {
    let end = limit.map(|l| Instant::now() + l);
    let id = format!("hearth-mon-{}", std::process::id());
    let mut client = Client::connect(args, &id, Duration::from_secs(10))?;
    let filters = mon_filters(device);
    for f in &filters {
        client.subscribe(f)?;
    }
    eprintln!(
        "hearth mon: subscribed to {} on {} (Ctrl-C stops)",
        filters.join(", "),
        args.address()
    );
    loop {
        let wait = match end {
            Some(end) => match end.checked_duration_since(Instant::now()) {
                Some(w) if !w.is_zero() => w,
                _ => break,
            },
            None => Duration::from_secs(3600),
        };
        if let Some(m) = client.recv(wait)? {
            // A closed stdout (`hearth mon | head`) ends the watch quietly.
            if writeln!(out, "{}", format_message(&m))
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
    }
    client.disconnect();
    Ok(())
}

/// `hearth mon`, for `main`.
pub fn mon(args: &BrokerArgs, device: Option<&str>, limit: Option<Duration>) -> ExitCode {
    let stdout = io::stdout();
    match mon_run(args, device, limit, &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            e @ (FleetError::Connect { .. } | FleetError::Refused { .. } | FleetError::Tls { .. }),
        ) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e} (broker {})", args.address());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        encode_remaining_length(len, &mut v).unwrap();
        v
    }

    #[test]
    fn remaining_length_edges() {
        let cases: [(usize, &[u8]); 7] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (len, bytes) in cases {
            assert_eq!(rl(len), bytes, "encode {len}");
            assert_eq!(
                decode_remaining_length(bytes).unwrap(),
                Some((len, bytes.len())),
                "decode {len}"
            );
            // Every proper prefix is "need more bytes".
            for cut in 0..bytes.len() {
                assert_eq!(decode_remaining_length(&bytes[..cut]).unwrap(), None);
            }
        }
        assert!(encode_remaining_length(268_435_456, &mut Vec::new()).is_err());
        assert!(matches!(
            decode_remaining_length(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(FleetError::Malformed(_))
        ));
        assert!(decode_remaining_length(&[0x80, 0x80, 0x80, 0x80]).is_err());
    }

    #[test]
    fn truncated_and_oversized_packets_are_errors() {
        // PUBLISH announcing 10 bytes, holding 4.
        let short = [0x30, 10, 0, 2, b'a', b'b'];
        assert_eq!(decode_packet(&short).unwrap(), None);
        assert!(matches!(decode(&short), Err(FleetError::Malformed(_))));
        // Truncated remaining length.
        assert!(matches!(
            decode(&[0x30, 0x80]),
            Err(FleetError::Malformed(_))
        ));
        assert!(matches!(decode(&[]), Err(FleetError::Malformed(_))));
        // Five length bytes.
        assert!(matches!(
            decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(FleetError::Malformed(_))
        ));
        // Trailing bytes.
        assert!(matches!(
            decode(&[0xd0, 0, 0]),
            Err(FleetError::Malformed(_))
        ));
        // Topic longer than the packet, QoS 3, bad CONNACK, type 0 and 1, SUBACK without codes.
        for bad in [
            &[0x30, 3, 0, 9, b'a'][..],
            &[0x36, 3, 0, 1, b'a'],
            &[0x20, 3, 0, 0, 0],
            &[0x20, 2, 2, 0],
            &[0x00, 0],
            &[0x10, 0],
            &[0x90, 2, 0, 1],
            &[0x32, 3, 0, 1, b'a'],
            &[0x30, 3, 0, 1, 0xff],
        ] {
            assert!(
                matches!(decode(bad), Err(FleetError::Malformed(_))),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn decodes_publish_with_retain_and_the_others() {
        let bytes = [0x31, 7, 0, 3, b'a', b'/', b'b', b'h', b'i'];
        assert_eq!(
            decode(&bytes).unwrap(),
            Packet::Publish {
                topic: "a/b".into(),
                payload: b"hi".to_vec(),
                retain: true,
                qos: 0,
                dup: false,
                packet_id: None
            }
        );
        assert_eq!(
            decode(&[0x3a, 6, 0, 1, b't', 0x12, 0x34, b'x']).unwrap(),
            Packet::Publish {
                topic: "t".into(),
                payload: b"x".to_vec(),
                retain: false,
                qos: 1,
                dup: true,
                packet_id: Some(0x1234)
            }
        );
        assert_eq!(
            decode(&[0x20, 2, 0, 5]).unwrap(),
            Packet::ConnAck {
                session_present: false,
                code: 5
            }
        );
        assert_eq!(
            decode(&[0x90, 3, 0, 7, 0x80]).unwrap(),
            Packet::SubAck {
                packet_id: 7,
                codes: vec![0x80]
            }
        );
        assert_eq!(decode(&[0xd0, 0]).unwrap(), Packet::PingResp);
        assert_eq!(decode(&[0x40, 2, 0, 1]).unwrap(), Packet::Other { kind: 4 });
        // A round trip through our own encoder, with a payload needing a 3-byte length.
        let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let enc = encode_publish("x/y", &payload, false).unwrap();
        assert_eq!(&enc[..4], &[0x30, 0xf5, 0xa2, 0x04]); // 70005 = 117 + 34·128 + 4·128²
        match decode(&enc).unwrap() {
            Packet::Publish {
                topic,
                payload: p,
                retain,
                ..
            } => {
                assert_eq!((topic.as_str(), retain), ("x/y", false));
                assert_eq!(p, payload);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_is_byte_exact() {
        // Without credentials: clean session, keep-alive 30, client id "ab".
        assert_eq!(
            encode_connect("ab", None, None, 30).unwrap(),
            [
                0x10, 14, // CONNECT, remaining length 14
                0, 4, b'M', b'Q', b'T', b'T', // protocol name
                4,    // level 3.1.1
                0x02, // flags: clean session
                0, 30, // keep-alive
                0, 2, b'a', b'b', // client id
            ]
        );
        // With user "u" and password "pw".
        assert_eq!(
            encode_connect("ab", Some("u"), Some("pw"), 30).unwrap(),
            [
                0x10, 21, 0, 4, b'M', b'Q', b'T', b'T', 4,
                0xc2, // user + password + clean session
                0, 30, 0, 2, b'a', b'b', 0, 1, b'u', 0, 2, b'p', b'w',
            ]
        );
        // User only.
        assert_eq!(
            encode_connect("", Some("u"), None, 60).unwrap(),
            [0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x82, 0, 60, 0, 0, 0, 1, b'u']
        );
        assert!(encode_connect("ab", None, Some("pw"), 30).is_err());
        assert!(encode_connect(&"x".repeat(70_000), None, None, 30).is_err());
    }

    #[test]
    fn other_encoders() {
        assert_eq!(
            encode_subscribe(0x0102, "a/#").unwrap(),
            [0x82, 8, 1, 2, 0, 3, b'a', b'/', b'#', 0]
        );
        assert_eq!(
            encode_publish("t", b"on", true).unwrap(),
            [0x31, 5, 0, 1, b't', b'o', b'n']
        );
        assert!(encode_publish("a/+", b"", false).is_err());
        assert!(encode_publish("", b"", false).is_err());
        assert!(encode_subscribe(1, "").is_err());
        assert_eq!(encode_pingreq(), [0xc0, 0]);
        assert_eq!(encode_disconnect(), [0xe0, 0]);
    }

    #[test]
    fn broker_addresses() {
        let ok = |s: &str| {
            let a = BrokerArgs::parse_broker(s).unwrap();
            let tls = a.tls == Some(true);
            (a.host.clone(), a.port_or_default(tls), a.tls)
        };
        assert_eq!(ok("mqtt.local"), ("mqtt.local".into(), 1883, None));
        assert_eq!(ok("10.0.0.2:8883"), ("10.0.0.2".into(), 8883, None));
        assert_eq!(ok("[::1]:1884"), ("::1".into(), 1884, None));
        assert_eq!(ok("[fe80::1]"), ("fe80::1".into(), 1883, None));
        assert_eq!(ok("mqtts://h"), ("h".into(), 8883, Some(true)));
        assert_eq!(ok("mqtts://[::1]:9"), ("::1".into(), 9, Some(true)));
        assert_eq!(ok("mqtt://h"), ("h".into(), 1883, Some(false)));
        let err = |s: &str| BrokerArgs::parse_broker(s).unwrap_err();
        assert!(err("").contains("host is empty"));
        assert!(err(":1883").contains("host is empty"));
        assert!(err("[]:1883").contains("host is empty"));
        assert!(err("h:0").contains("port 0"));
        assert!(err("h:99999").contains("1..=65535"));
        assert!(err("h:").contains("1..=65535"));
        assert!(err("h:x").contains("\"x\""));
        assert!(err("::1").contains("brackets"));
        assert!(err("[::1").contains("']'"));
        assert!(err("[::1]x").contains("':PORT'"));
        assert!(err("ssl://h").contains("unknown scheme \"ssl\""));
        assert!(err("mqtts://").contains("host is empty"));
        let args = BrokerArgs {
            host: "::1".into(),
            ..BrokerArgs::default()
        };
        assert_eq!(args.address(), "[::1]:1883");
    }

    #[test]
    fn broker_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            BrokerArgs::from_vars(&env(&[])).unwrap(),
            BrokerArgs::default()
        );
        assert_eq!(
            BrokerArgs::from_vars(&env(&[
                (BROKER_ENV, "mqtt:1999"),
                (USER_ENV, "u"),
                (PASSWORD_ENV, "p")
            ]))
            .unwrap(),
            BrokerArgs {
                host: "mqtt".into(),
                port: 1999,
                user: Some("u".into()),
                password: Some("p".into()),
                tls: None,
            }
        );
        // TLS from the scheme; the TLS variables count only then.
        let pin = "0a".repeat(32);
        let vars = [
            (BROKER_ENV, "mqtts://mqtt"),
            (CA_ENV, "/etc/ca.pem"),
            (PIN_ENV, pin.as_str()),
        ];
        let with_tls = BrokerArgs::from_vars(&|k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap();
        assert_eq!(with_tls.port, 8883);
        assert_eq!(
            with_tls.tls,
            Some(TlsArgs {
                ca: Some("/etc/ca.pem".into()),
                pin: Some([0x0a; 32]),
                ..TlsArgs::default()
            })
        );
        assert_eq!(
            BrokerArgs::from_vars(&env(&[(BROKER_ENV, "mqtt"), (CA_ENV, "/etc/ca.pem")]))
                .unwrap()
                .tls,
            None
        );
        assert!(
            BrokerArgs::from_vars(&env(&[(BROKER_ENV, "mqtts://h"), (PIN_ENV, "12")]))
                .unwrap_err()
                .contains("HEARTH_PIN")
        );
        assert_eq!(
            BrokerArgs::from_vars(&env(&[(BROKER_ENV, ""), (USER_ENV, "")])).unwrap(),
            BrokerArgs::default()
        );
        let e = BrokerArgs::from_vars(&env(&[(BROKER_ENV, "h:0")])).unwrap_err();
        assert!(e.starts_with("HEARTH_BROKER"), "{e}");
    }

    #[test]
    fn mon_lines() {
        let m = |topic: &str, payload: &[u8], retained| Received {
            topic: topic.into(),
            payload: payload.to_vec(),
            retained,
            skipped: None,
        };
        assert_eq!(
            format_message(&m("stat/a/T", b"21.5", false)),
            "stat/a/T 21.5"
        );
        assert_eq!(
            format_message(&m("tele/a/LWT", b"Online", true)),
            "tele/a/LWT Online (retained)"
        );
        assert_eq!(
            format_message(&m("x", &[0xff, 0x00, 0x10], false)),
            "x <3 bytes> ff0010"
        );
        let long = format_message(&m("x", &[0xfe; 40], false));
        assert!(long.starts_with("x <40 bytes> fefe"), "{long}");
        assert!(long.ends_with('…'));
        assert_eq!(format_message(&m("x", b"", true)), "x <empty> (retained)");
        assert_eq!(mon_filters(None), ["#"]);
        assert_eq!(
            mon_filters(Some("d1")),
            ["stat/d1/#", "tele/d1/#", "cmnd/d1/#"]
        );
    }

    /// A scripted broker: hands out its bytes in the given chunks (one per read), then "times
    /// out"; records what the client writes.
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        written: Vec<u8>,
        closed: bool,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.chunks.pop_front() {
                Some(mut c) => {
                    let n = c.len().min(buf.len());
                    buf[..n].copy_from_slice(&c[..n]);
                    if n < c.len() {
                        self.chunks.push_front(c.split_off(n));
                    }
                    Ok(n)
                }
                None if self.closed => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn scripted(bytes: &[u8], chunk: usize, closed: bool) -> Result<Client<Script>, FleetError> {
        let s = Script {
            chunks: bytes.chunks(chunk).map(<[u8]>::to_vec).collect(),
            written: Vec::new(),
            closed,
        };
        Client::handshake(
            s,
            |_, _| Ok(()),
            &BrokerArgs::default(),
            "c",
            Duration::from_millis(20),
        )
    }

    #[test]
    fn client_over_a_scripted_stream_byte_by_byte() {
        let mut input = vec![0x20, 2, 0, 0]; // CONNACK accepted
        input.extend(encode_publish("early", b"1", false).unwrap()); // before the SUBACK
        input.extend([0x90, 3, 0, 1, 0]); // SUBACK id 1
        input.extend([0xd0, 0]); // stray PINGRESP
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut p = encode_publish("big", &big, false).unwrap();
        p[0] |= 1; // retained
        input.extend(p);
        let mut c = scripted(&input, 1, false).unwrap();
        c.subscribe("#").unwrap();
        assert_eq!(
            c.recv(Duration::from_millis(10)).unwrap(),
            Some(Received {
                topic: "early".into(),
                payload: b"1".to_vec(),
                retained: false,
                skipped: None,
            })
        );
        let r = c.recv(Duration::from_millis(10)).unwrap().unwrap();
        assert_eq!((r.topic.as_str(), r.retained), ("big", true));
        assert_eq!(r.payload, big);
        assert_eq!(c.recv(Duration::from_millis(10)).unwrap(), None);
        c.publish("out", b"x", false).unwrap();
        let written = &c.get_ref().written;
        assert!(written.starts_with(&encode_connect("c", None, None, 30).unwrap()));
        assert!(written.ends_with(&[0x30, 6, 0, 3, b'o', b'u', b't', b'x']));
    }

    #[test]
    fn a_packet_over_the_bound_is_skipped_unread_and_the_next_one_arrives() {
        for chunk in [1, 1000, 70_000] {
            let mut input = vec![0x20, 2, 0, 0, 0x90, 3, 0, 1, 0]; // CONNACK, SUBACK
            let huge = vec![b'x'; 3 * MAX_PACKET];
            let mut p = encode_publish("cmnd/a/huge", &huge, false).unwrap();
            p[0] |= 1; // retained
            input.extend(&p);
            input.extend(encode_publish("stat/a/Small", b"ok", false).unwrap());
            let mut c = scripted(&input, chunk, false).unwrap();
            c.subscribe("#").unwrap();
            let r = c.recv(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!((r.topic.as_str(), r.retained), ("cmnd/a/huge", true));
            assert_eq!(r.skipped, Some(p.len() - 4), "chunk {chunk}");
            assert!(r.payload.is_empty());
            assert!(format_message(&r).contains("skipped"));
            // Never held whole: the buffer stays near one read.
            assert!(c.buf.capacity() < MAX_PACKET + 80_000, "chunk {chunk}");
            let r = c.recv(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(
                (r.topic.as_str(), r.payload.as_slice()),
                ("stat/a/Small", &b"ok"[..])
            );
        }
    }

    #[test]
    fn client_errors() {
        match scripted(&[0x20, 2, 0, 4], 4, false) {
            Err(e @ FleetError::Refused { code: 4, .. }) => {
                assert!(e.to_string().contains("bad user name or password"))
            }
            other => panic!("{:?}", other.err()),
        }
        assert!(matches!(
            scripted(&[0x20, 2, 0, 5], 4, false),
            Err(FleetError::Refused { code: 5, .. })
        ));
        assert!(matches!(
            scripted(&[], 1, false),
            Err(FleetError::Timeout("CONNACK"))
        ));
        assert!(matches!(
            scripted(&[0x20, 2], 1, true),
            Err(FleetError::Closed)
        ));
        assert!(matches!(
            scripted(&[0x90, 3, 0, 1, 0], 5, false),
            Err(FleetError::Malformed(_))
        ));
        assert!(matches!(
            scripted(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 6, false),
            Err(FleetError::Malformed(_))
        ));
        let mut c = scripted(&[0x20, 2, 0, 0, 0x90, 3, 0, 1, 0x80], 9, false).unwrap();
        assert!(matches!(
            c.subscribe("secret/#"),
            Err(FleetError::SubscribeRefused { .. })
        ));
        let mut c = scripted(&[0x20, 2, 0, 0], 9, false).unwrap();
        assert!(matches!(
            c.subscribe("a"),
            Err(FleetError::Timeout("SUBACK"))
        ));
        let mut c = scripted(&[0x20, 2, 0, 0, 0x30, 9, 0], 9, true).unwrap();
        assert!(matches!(
            c.recv(Duration::from_millis(10)),
            Err(FleetError::Closed)
        ));
    }
}
