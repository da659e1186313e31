//! Talking to the fleet through its broker: a blocking MQTT 5 client (QoS 0, clean start) for
//! the commands that watch or command devices (`hearth mon`, `ota`, `cmd`, `config push`), and
//! `hearth mon` itself.
//!
//! The client is rust-mqtt, the MQTT library of the devices, driven by `async_io::block_on`
//! over the simulator's sockets: plain TCP, or rustls over TCP verified as on the devices
//! ([`hearth_sim::tls`]): a CA (`--ca`) and/or a pin (`--pin`), never "accept anything", and a
//! failed check is an error, never a plain-text fallback. It speaks MQTT 5, like the devices,
//! so it works with mosquitto and with the embedded broker of `hearth demo` (whose first
//! version, rumqttd, served MQTT 5 only and closed the MQTT 3.1.1 client this replaced). What a
//! broker sends is bounded by [`MAX_PACKET`] as on a device (`hearth_runtime::bounded`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::num::NonZero;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hearth_runtime::bounded::{Bounded, Dropped};
use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{
    ConnectOptions, DisconnectOptions, PublicationOptions, SubscriptionOptions, TopicReference,
};
use rust_mqtt::client::MqttError;
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{MqttBinary, MqttString, TopicFilter, TopicName};
use rust_mqtt::Bytes;

use hearth_sim::net::SimSocket;

mod options;
pub use options::BrokerOptions;

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
    pub fn settings(
        &self,
        host: &str,
    ) -> Result<hearth_platform::TlsSettings, hearth_sim::tls::PemError> {
        Ok(hearth_platform::TlsSettings {
            server_name: host.to_string(),
            ca: self
                .ca
                .as_deref()
                .map(hearth_sim::tls::pem_cert)
                .transpose()?,
            pin: self.pin,
            client_cert: self
                .client_cert
                .as_deref()
                .map(hearth_sim::tls::pem_cert)
                .transpose()?,
            client_key: self
                .client_key
                .as_deref()
                .map(hearth_sim::tls::pem_key)
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
    /// CONNACK with an error reason code.
    #[error("connection refused by the broker: {reason} (CONNACK reason code {code:#04x})")]
    Refused {
        /// The CONNACK reason code (MQTT 5).
        code: u8,
        /// Its meaning.
        reason: &'static str,
    },
    /// The broker ended the session with a DISCONNECT.
    #[error("the broker ended the session: {reason} (DISCONNECT reason code {code:#04x})")]
    Disconnected {
        /// The DISCONNECT reason code.
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
    /// Bytes that are not MQTT 5 (or not what was expected then).
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

// ---------------------------------------------------------------------------------------------
// Packet bounds.

/// The largest packet the fleet tools read into memory: the device's own bound
/// ([`hearth_runtime::session::MAX_INCOMING_PACKET`]), announced as the Maximum Packet Size of
/// CONNECT. Device statuses and answers are far smaller; a broker does not forward anything
/// larger (one 64 MB retained message under `#`) to the tools, and one that does anyway has it
/// dropped as it arrives ([`Client::dropped`]).
pub const MAX_PACKET: usize = hearth_runtime::session::MAX_INCOMING_PACKET as usize;

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
}

/// The stream under the client: the simulator's sockets (TCP, or rustls over TCP with the
/// checks a simulated device makes), under the same packet bound as a device's.
type Transport = Bounded<SimSocket>;

/// rust-mqtt as the tools use it: one subscription in flight, QoS 0, no topic aliases.
type Mqtt =
    rust_mqtt::client::Client<'static, 'static, Transport, AllocBuffer, 1, 1, 1, 1, 4, 0, 0>;

/// A blocking MQTT 5 client over rust-mqtt (the devices' MQTT library), driven by
/// `async_io::block_on`: clean start, QoS 0. It announces [`MAX_PACKET`] as its Maximum Packet
/// Size, so a broker does not send it anything larger; a packet over the bound that arrives
/// anyway is dropped unread and counted ([`Client::dropped`]), and the session stays up.
pub struct Client {
    mqtt: Mqtt,
    /// How long to wait for SUBACK.
    timeout: Duration,
    /// PUBLISHes that arrived while waiting for something else.
    pending: VecDeque<Received>,
    dropped: Rc<Dropped>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
}

/// `fut`, or `None` once `limit` has passed.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}

/// What a rust-mqtt error in `what` means for the tools.
fn mqtt_error<const N: usize>(what: &str, e: MqttError<'_, N>) -> FleetError {
    match e {
        MqttError::Network(_) => FleetError::Closed,
        MqttError::Disconnect { reason, .. } => FleetError::Disconnected {
            code: reason.value(),
            reason: reason_text(reason.value()),
        },
        other => FleetError::Malformed(format!("{what}: {other:?}")),
    }
}

fn topic_name(topic: &str) -> Result<TopicName<'_>, FleetError> {
    let s = MqttString::from_str(topic)
        .map_err(|e| FleetError::Invalid(format!("topic {topic:?}: {e:?}")))?;
    TopicName::new(s).ok_or_else(|| FleetError::Invalid(format!("invalid topic name {topic:?}")))
}

/// Open the TCP connection to the broker in `args`, trying each of its addresses.
fn tcp_connect(args: &BrokerArgs, timeout: Duration) -> Result<TcpStream, FleetError> {
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
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(connect_err(last))
}

impl Client {
    /// Connect over TCP (and TLS, with `args.tls`) to the broker in `args` and log in;
    /// `timeout` bounds the TCP connect, the TLS handshake, the wait for CONNACK and later for
    /// each SUBACK.
    pub fn connect(
        args: &BrokerArgs,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, FleetError> {
        let tcp = tcp_connect(args, timeout)?;
        async_io::block_on(Self::log_in(tcp, args, client_id, timeout))
    }

    async fn log_in(
        tcp: TcpStream,
        args: &BrokerArgs,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, FleetError> {
        let tcp = async_io::Async::new(tcp)?;
        let socket = match &args.tls {
            None => SimSocket::host(tcp),
            Some(tls) => {
                let fail = |reason: String| FleetError::Tls {
                    addr: args.address(),
                    reason,
                };
                let settings = tls.settings(&args.host).map_err(|e| fail(e.to_string()))?;
                let config =
                    hearth_sim::tls::client_config(&settings).map_err(|e| fail(e.to_string()))?;
                let name =
                    hearth_sim::tls::server_name(&args.host).map_err(|e| fail(e.to_string()))?;
                match within(timeout, SimSocket::host_tls(tcp, config, name)).await {
                    None => {
                        return Err(fail(
                            "no answer to the TLS handshake (is this a TLS port?)".into(),
                        ))
                    }
                    Some(Err(e)) => return Err(fail(e.explain(&args.host))),
                    Some(Ok(s)) => s,
                }
            }
        };
        let dropped = Rc::new(Dropped::default());
        let transport = Bounded::new(socket, MAX_PACKET as u32, dropped.clone());
        // AllocBuffer is a zero-sized handle to the heap: leaking a box of it allocates
        // nothing, and gives the client the 'static buffer it borrows.
        let mut mqtt = Mqtt::new(Box::leak(Box::new(AllocBuffer)));
        let keepalive = NonZero::new(KEEPALIVE.as_secs() as u16)
            .map_or(KeepAlive::Infinite, KeepAlive::Seconds);
        let mut options = ConnectOptions::new()
            .clean_start()
            .keep_alive(keepalive)
            .maximum_packet_size(const { NonZero::new(MAX_PACKET as u32).unwrap() });
        if let Some(user) = &args.user {
            options = options.user_name(
                MqttString::from_str(user)
                    .map_err(|e| FleetError::Invalid(format!("user name: {e:?}")))?,
            );
        }
        if let Some(password) = &args.password {
            options = options.password(
                MqttBinary::from_slice(password.as_bytes())
                    .map_err(|e| FleetError::Invalid(format!("password: {e:?}")))?,
            );
        }
        let id = MqttString::from_str(client_id)
            .map_err(|e| FleetError::Invalid(format!("client id {client_id:?}: {e:?}")))?;
        match within(timeout, mqtt.connect(transport, &options, Some(id))).await {
            None => Err(FleetError::Timeout("CONNACK")),
            Some(Err(MqttError::Disconnect { reason, .. })) => Err(FleetError::Refused {
                code: reason.value(),
                reason: reason_text(reason.value()),
            }),
            Some(Err(e)) => Err(mqtt_error("CONNACK", e)),
            Some(Ok(_)) => Ok(Client {
                mqtt,
                timeout,
                pending: VecDeque::new(),
                dropped,
                last_sent: Instant::now(),
                ping_sent: None,
            }),
        }
    }

    /// Subscribe to `filter` at QoS 0 and wait for the SUBACK; an error if the broker refuses.
    /// Messages arriving meanwhile are kept for [`Client::recv`].
    pub fn subscribe(&mut self, filter: &str) -> Result<(), FleetError> {
        let f = TopicFilter::new(
            MqttString::from_str(filter)
                .map_err(|e| FleetError::Invalid(format!("filter {filter:?}: {e:?}")))?,
        )
        .ok_or_else(|| FleetError::Invalid(format!("invalid topic filter {filter:?}")))?;
        async_io::block_on(async {
            self.mqtt
                .subscribe(f, &SubscriptionOptions::new())
                .await
                .map_err(|e| mqtt_error("SUBSCRIBE", e))?;
            self.last_sent = Instant::now();
            let deadline = Instant::now() + self.timeout;
            loop {
                match self.next_event(deadline).await? {
                    None => return Err(FleetError::Timeout("SUBACK")),
                    Some(Got::Suback(true)) => return Ok(()),
                    Some(Got::Suback(false)) => {
                        return Err(FleetError::SubscribeRefused {
                            filter: filter.to_string(),
                        })
                    }
                    Some(Got::Message(m)) => self.pending.push_back(m),
                    Some(Got::Other) => {}
                }
            }
        })
    }

    /// Publish `payload` on `topic` at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<(), FleetError> {
        let mut options = PublicationOptions::new(TopicReference::Name(topic_name(topic)?));
        if retain {
            options = options.retain();
        }
        let limit = self.timeout.max(Duration::from_secs(10));
        async_io::block_on(async {
            match within(limit, self.mqtt.publish(&options, Bytes::from(payload))).await {
                None => Err(FleetError::Timeout("the broker to take a PUBLISH")),
                Some(Err(e)) => Err(mqtt_error("PUBLISH", e)),
                Some(Ok(_)) => {
                    self.last_sent = Instant::now();
                    Ok(())
                }
            }
        })
    }

    /// The next PUBLISH received, or `Ok(None)` when `timeout` passes with none. Sends PINGREQ
    /// as the keep-alive (30 s) needs while it waits; an error when the broker does not answer
    /// the ping within the keep-alive or closes the connection.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Received>, FleetError> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let deadline = Instant::now() + timeout;
        async_io::block_on(async {
            loop {
                match self.next_event(deadline).await? {
                    None => return Ok(None),
                    Some(Got::Message(m)) => return Ok(Some(m)),
                    Some(_) => {}
                }
            }
        })
    }

    /// How many packets over [`MAX_PACKET`] the broker sent anyway (dropped unread), and the
    /// size of the last one.
    pub fn dropped(&self) -> (u32, u32) {
        (self.dropped.count(), self.dropped.last_len())
    }

    /// Send DISCONNECT and close the connection.
    pub fn disconnect(mut self) {
        let _ = async_io::block_on(within(
            Duration::from_secs(2),
            self.mqtt.disconnect(&DisconnectOptions::new()),
        ));
    }

    /// The next event before `deadline` (`None` when it passes), keeping the connection alive
    /// meanwhile. Waits for a packet at least once, also when `deadline` has passed.
    async fn next_event(&mut self, deadline: Instant) -> Result<Option<Got>, FleetError> {
        let ping_every = KEEPALIVE / 2;
        let mut waited = false;
        loop {
            let now = Instant::now();
            if let Some(sent) = self.ping_sent {
                if now >= sent + KEEPALIVE {
                    return Err(FleetError::Timeout("PINGRESP"));
                }
            } else if now >= self.last_sent + ping_every {
                self.mqtt
                    .ping()
                    .await
                    .map_err(|e| mqtt_error("PINGREQ", e))?;
                self.last_sent = Instant::now();
                self.ping_sent = Some(self.last_sent);
            }
            if waited && now >= deadline {
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
            waited = true;
            // poll_header is cancel-safe: a timeout here loses nothing.
            let Some(header) = within(wait, self.mqtt.poll_header()).await else {
                continue;
            };
            let header = header.map_err(|e| mqtt_error("receive", e))?;
            // The body follows its header at once; a broker that stalls inside a packet ends
            // the session.
            let limit = KEEPALIVE;
            let event = match within(limit, self.mqtt.poll_body(header)).await {
                None => return Err(FleetError::Timeout("the rest of a packet")),
                Some(r) => r.map_err(|e| mqtt_error("receive", e))?,
            };
            return Ok(Some(match event {
                Event::Pingresp => {
                    self.ping_sent = None;
                    continue;
                }
                Event::Publish(p) => Got::Message(Received {
                    topic: p
                        .topic
                        .name()
                        .map(|n| AsRef::<MqttString<'_>>::as_ref(n).as_str().to_string())
                        .unwrap_or_default(),
                    payload: p.message.to_vec(),
                    retained: p.retain,
                }),
                Event::Suback(s) => Got::Suback(s.reason_code.is_success()),
                _ => Got::Other,
            }));
        }
    }
}

/// What [`Client::next_event`] found.
enum Got {
    Message(Received),
    Suback(bool),
    Other,
}

/// Meaning of an MQTT 5 CONNACK or DISCONNECT reason code.
pub fn reason_text(code: u8) -> &'static str {
    match code {
        0x00 => "accepted",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version (the broker does not speak MQTT 5)",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x8E => "session taken over",
        0x90 => "topic name invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9F => "connection rate exceeded",
        _ => "unknown reason",
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

/// One line of `hearth mon --json`: a JSON object with `topic`, `retained`, `bytes` (the
/// payload's length), `time_ms` (when it arrived, Unix milliseconds) and either `payload`
/// (the payload as text, when it is UTF-8) or `payload_hex` (every byte, when it is not).
pub fn format_message_json(m: &Received, time_ms: u128) -> String {
    let mut line = serde_json::json!({
        "topic": m.topic,
        "retained": m.retained,
        "bytes": m.payload.len(),
        "time_ms": u64::try_from(time_ms).unwrap_or(u64::MAX),
    });
    match std::str::from_utf8(&m.payload) {
        Ok(text) => line["payload"] = text.into(),
        Err(_) => {
            let hex: String = m.payload.iter().map(|b| format!("{b:02x}")).collect();
            line["payload_hex"] = hex.into();
        }
    }
    line.to_string()
}

/// How `hearth mon` writes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MonFormat {
    /// `TOPIC PAYLOAD` ([`format_message`]).
    #[default]
    Text,
    /// One JSON object a line ([`format_message_json`]).
    Json,
}

/// Watch the broker until `limit` passes (or forever): connect, subscribe, print.
pub fn mon_run(
    args: &BrokerArgs,
    device: Option<&str>,
    limit: Option<Duration>,
    format: MonFormat,
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
    let mut dropped = 0;
    loop {
        let wait = match end {
            Some(end) => match end.checked_duration_since(Instant::now()) {
                Some(w) if !w.is_zero() => w,
                _ => break,
            },
            None => Duration::from_secs(3600),
        };
        let got = client.recv(wait)?;
        let (count, last) = client.dropped();
        if count > dropped {
            dropped = count;
            eprintln!(
                "hearth mon: the broker sent a packet of {last} bytes, over the {MAX_PACKET} \
                 bytes the tools read: dropped unread ({count} so far)"
            );
        }
        if let Some(m) = got {
            // A closed stdout (`hearth mon | head`) ends the watch quietly.
            let line = match format {
                MonFormat::Text => format_message(&m),
                MonFormat::Json => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis());
                    format_message_json(&m, now)
                }
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    }
    client.disconnect();
    Ok(())
}

/// `hearth mon`, for `main`.
pub fn mon(
    args: &BrokerArgs,
    device: Option<&str>,
    limit: Option<Duration>,
    format: MonFormat,
) -> ExitCode {
    let stdout = io::stdout();
    exit_code(
        args,
        mon_run(args, device, limit, format, &mut stdout.lock()),
    )
}

/// Exit code 0, 2 when the broker could not be reached or refused (the work could not start),
/// 1 for a failure after that; the error on standard error.
pub(crate) fn exit_code(args: &BrokerArgs, result: Result<(), FleetError>) -> ExitCode {
    match result {
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

/// `hearth pub TOPIC PAYLOAD`: connect, publish one message at QoS 0, disconnect (the broker
/// has routed it once the DISCONNECT that follows it is sent). Says what it sent.
pub fn publish(args: &BrokerArgs, topic: &str, payload: &[u8], retain: bool) -> ExitCode {
    let id = format!("hearth-pub-{}", std::process::id());
    let sent = Client::connect(args, &id, Duration::from_secs(10)).and_then(|mut client| {
        client.publish(topic, payload, retain)?;
        client.disconnect();
        Ok(())
    });
    if sent.is_ok() {
        println!(
            "published {} bytes on {topic}{} to {}",
            payload.len(),
            if retain { " (retained)" } else { "" },
            args.address()
        );
    }
    exit_code(args, sent)
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
        // --json: text payloads as text (quotes and control characters escaped), others as
        // hex, every byte.
        assert_eq!(
            format_message_json(&m("stat/a/T", b"say \"hi\"\n", true), 7),
            r#"{"bytes":9,"payload":"say \"hi\"\n","retained":true,"time_ms":7,"topic":"stat/a/T"}"#
        );
        let binary = format_message_json(&m("x", &[0xfe; 40], false), 0);
        assert!(
            binary.contains(&format!(r#""payload_hex":"{}""#, "fe".repeat(40))),
            "{binary}"
        );
        assert!(!binary.contains(r#""payload":"#), "{binary}");
        assert_eq!(mon_filters(None), ["#"]);
        assert_eq!(
            mon_filters(Some("d1")),
            ["stat/d1/#", "tele/d1/#", "cmnd/d1/#"]
        );
    }
}
