//! The network as a `hearth_platform::Network`: embassy-net (DHCPv4, DNS, TCP) over one of two
//! links, chosen by the config's `ssid`:
//!
//! - a Wi-Fi station (`wifi`, esp-radio);
//! - Ethernet through a WIZnet W5500 on SPI2 (`w5500`, embassy-net-wiznet in MACRAW mode) for
//!   `ssid (wired)` and `ssid (wired2)`. This path starts the Wi-Fi radio only for an ESP-NOW
//!   central (`espnow`, ESP-NOW alone, never associated).
//!
//! `espnow` is the ESP-NOW radio (`hearth_platform::Radio`) of the centrals and the battery
//! peripherals.
//!
//! Everything above the link is one implementation, [`StackNetwork`]; the two differ only in
//! how the link comes up ([`Medium`]):
//!
//! - `up()` and `down()` only record the wish and return promptly; nothing waits for the link.
//!   On Wi-Fi they signal the connection task, which associates (and re-associates) while the
//!   wish is "up" and disconnects on "down". On Ethernet the cable is the link (the W5500's
//!   PHY state reaches the stack through its driver); `up()` starts DHCP and `down()` drops
//!   the address, so a `down()`/`up()` cycle asks for a fresh lease.
//! - `link_up()` is true when the wish is "up", the link is up (Wi-Fi: associated; both: the
//!   stack's link state) and DHCP has configured the interface.
//! - `connect()` resolves the host with the stack's DNS client (an IPv4 literal is used as is)
//!   and opens a TCP connection from a one-socket pool (`TcpClientState<1, ..>`): the buffers
//!   are static and return to the pool when the socket is dropped, so reconnecting never
//!   allocates.
//! - Sockets carry the link generation of their birth: after `down()` every read or write on
//!   an older socket fails, and a read of 0 bytes (the peer closed) is reported as an error, as
//!   the simulator does.
//! - `probe()` (asked after several broker attempts got no answer at all) opens a TCP
//!   connection to the gateway's port 53 (the DNS server's when there is no gateway) with a
//!   socket of its own: a SYN-ACK or a reset proves that the link carries packets, so a broker
//!   that is merely down never makes the device drop its Wi-Fi. Silence is a stuck link.
//! - With `TlsSettings` (`mqtts://`), `connect()` runs the TLS handshake over the new TCP
//!   connection (`tls`: embedded-tls, TLS 1.3) and the socket reads and writes through it,
//!   with the same generation and closed-connection rules. A failed handshake or verification
//!   is `NetError::Tls` and never falls back to plain TCP.

pub mod espnow;
mod tls;
pub use tls::set_trusted_time;
mod w5500;
mod wifi;

use alloc::string::String;
use core::cell::Cell;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use embassy_net::dns::DnsQueryType;
use embassy_net::driver::Driver;
use embassy_net::tcp::client::{TcpClient, TcpClientState, TcpConnection};
use embassy_net::tcp::{ConnectError, TcpSocket};
use embassy_net::udp::{PacketMetadata, UdpSocket};
use embassy_net::{ConfigV4, IpAddress, Runner, Stack, StackResources};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;
use hearth_platform::{NetError, Network, TlsSettings};
use static_cell::{ConstStaticCell, StaticCell};

pub use w5500::start as start_ethernet;
pub use wifi::start as start_wifi;

/// TCP transmit buffer of the broker connection.
const TCP_TX: usize = 2048;
/// TCP receive buffer of the broker connection.
const TCP_RX: usize = 2048;
/// Sockets in the stack: DHCP, DNS, the broker connection and the time server's (SNTP, asked
/// while the broker connection is open).
const SOCKETS: usize = 4;

type Client = TcpClient<'static, 1, TCP_TX, TCP_RX>;
type Connection = TcpConnection<'static, 1, TCP_TX, TCP_RX>;

static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static TCP_STATE: ConstStaticCell<TcpClientState<1, TCP_TX, TCP_RX>> =
    ConstStaticCell::new(TcpClientState::new());
static CLIENT: StaticCell<Client> = StaticCell::new();
static LINK: Link = Link::new();

/// State shared between the `Network` handle, its sockets and the link's task.
#[derive(Debug, Clone, Copy)]
struct LinkState {
    /// The runtime wants the link up.
    wanted: bool,
    /// Wi-Fi: the station is associated with the access point. Ethernet: always true (the
    /// cable's state is the stack's link state).
    carrier: bool,
    /// Bumped by every `down()`: sockets opened before it fail.
    generation: u32,
    /// Wi-Fi: the access point's signal while associated, dBm (read by the connection task).
    rssi: Option<i8>,
}

struct Link {
    state: Mutex<CriticalSectionRawMutex, Cell<LinkState>>,
    /// The latest wish (`true` = up) for the Wi-Fi connection task.
    control: Signal<CriticalSectionRawMutex, bool>,
}

impl Link {
    const fn new() -> Self {
        Self {
            state: Mutex::new(Cell::new(LinkState {
                wanted: false,
                carrier: false,
                generation: 0,
                rssi: None,
            })),
            control: Signal::new(),
        }
    }

    fn get(&self) -> LinkState {
        self.state.lock(Cell::get)
    }

    fn update(&self, f: impl FnOnce(&mut LinkState)) {
        self.state.lock(|c| {
            let mut s = c.get();
            f(&mut s);
            c.set(s);
        });
    }
}

/// Why the network could not be started.
pub struct StartError {
    /// What went wrong.
    pub message: String,
    /// The configured network was rejected (a config problem, not a driver failure).
    pub config: bool,
}

impl StartError {
    fn config(message: String) -> Self {
        Self {
            message,
            config: true,
        }
    }

    fn driver(message: String) -> Self {
        Self {
            message,
            config: false,
        }
    }
}

/// How the link comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Medium {
    /// A Wi-Fi station: the connection task associates while the wish is "up".
    Wifi,
    /// Ethernet (W5500): the cable is the link; DHCP runs while the wish is "up".
    Ethernet,
}

impl Medium {
    fn name(self) -> &'static str {
        match self {
            Self::Wifi => "wifi",
            Self::Ethernet => "ethernet",
        }
    }
}

/// embassy-net over Wi-Fi or Ethernet.
pub struct StackNetwork {
    stack: Stack<'static>,
    client: &'static Client,
    medium: Medium,
    /// The address was logged for the current link.
    announced: bool,
}

impl StackNetwork {
    /// The stack, for a task that watches the address (`crate::improv`).
    pub fn stack(&self) -> Stack<'static> {
        self.stack
    }

    /// `host`'s IPv4 address: a literal as it is (no DNS needed), a name through DNS.
    async fn resolve(&self, host: &str) -> Result<Ipv4Addr, NetError> {
        if let Ok(a) = host.parse::<Ipv4Addr>() {
            return Ok(a);
        }
        let found = self
            .stack
            .dns_query(host, DnsQueryType::A)
            .await
            .map_err(|e| {
                log::warn!("dns: {host}: {e:?}");
                NetError::Dns
            })?;
        found
            .iter()
            .find_map(ipv4)
            .ok_or(NetError::Dns)
            .inspect_err(|_| log::warn!("dns: {host}: no IPv4 address"))
    }
}

/// The stack over `driver` with its socket pool. Called once (by the chosen link's `start`).
fn open<D: Driver>(
    driver: D,
    config: embassy_net::Config,
    seed: u64,
    medium: Medium,
) -> (StackNetwork, Runner<'static, D>) {
    let (stack, runner) = embassy_net::new(driver, config, RESOURCES.take(), seed);
    let client = CLIENT.init(TcpClient::new(stack, TCP_STATE.take()));
    let network = StackNetwork {
        stack,
        client,
        medium,
        announced: false,
    };
    (network, runner)
}

impl Network for StackNetwork {
    type Socket = Socket;

    async fn up(&mut self) {
        let was_wanted = LINK.get().wanted;
        LINK.update(|s| s.wanted = true);
        match self.medium {
            Medium::Wifi => LINK.control.signal(true),
            Medium::Ethernet => {
                if !was_wanted {
                    self.stack.set_config_v4(ConfigV4::Dhcp(Default::default()));
                }
            }
        }
    }

    async fn down(&mut self) {
        LINK.update(|s| {
            s.wanted = false;
            s.generation = s.generation.wrapping_add(1);
        });
        match self.medium {
            Medium::Wifi => LINK.control.signal(false),
            Medium::Ethernet => self.stack.set_config_v4(ConfigV4::None),
        }
    }

    fn address(&mut self) -> Option<Ipv4Addr> {
        // embassy-net's address is core::net's, as of embassy-net 0.9.
        self.stack.config_v4().map(|c| c.address.address())
    }

    fn is_wireless(&self) -> bool {
        matches!(self.medium, Medium::Wifi)
    }

    fn rssi(&mut self) -> Option<i8> {
        LINK.get().rssi
    }

    fn link_up(&mut self) -> bool {
        let s = LINK.get();
        let up = s.wanted && s.carrier && self.stack.is_link_up() && self.stack.is_config_up();
        if up && !self.announced {
            if let Some(c) = self.stack.config_v4() {
                log::info!(
                    "{}: address {} gateway {:?} dns {:?}",
                    self.medium.name(),
                    c.address,
                    c.gateway,
                    c.dns_servers.as_slice()
                );
            }
        }
        self.announced = up;
        up
    }

    async fn probe(&mut self) -> bool {
        let Some(config) = self.stack.config_v4() else {
            return false;
        };
        let Some(target) = config.gateway.or(config.dns_servers.first().copied()) else {
            return false;
        };
        // The broker's socket is closed between attempts, so the stack has a free one. The
        // runtime bounds the time: no answer at all is the stuck link this looks for.
        let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
        let mut socket = TcpSocket::new(self.stack, &mut rx, &mut tx);
        let answered = match socket.connect(SocketAddrV4::new(target, 53)).await {
            // A SYN-ACK, or a reset from a closed port: the link carries packets.
            Ok(()) | Err(ConnectError::ConnectionReset) => true,
            Err(ConnectError::InvalidState | ConnectError::NoRoute | ConnectError::TimedOut) => {
                false
            }
        };
        socket.abort();
        log::info!(
            "link check: {target} {}",
            if answered { "answers" } else { "is silent" }
        );
        answered
    }

    async fn exchange_udp(
        &mut self,
        host: &str,
        port: u16,
        request: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, NetError> {
        if !self.link_up() {
            return Err(NetError::LinkDown);
        }
        let address = self.resolve(host).await?;
        let (mut rx_meta, mut tx_meta) = ([PacketMetadata::EMPTY; 1], [PacketMetadata::EMPTY; 1]);
        let (mut rx, mut tx) = ([0u8; 64], [0u8; 64]);
        let mut socket = UdpSocket::new(self.stack, &mut rx_meta, &mut rx, &mut tx_meta, &mut tx);
        socket.bind(0).map_err(|_| NetError::Connect)?;
        let remote = (IpAddress::Ipv4(address), port);
        socket
            .send_to(request, remote)
            .await
            .map_err(|_| NetError::Connect)?;
        // The runtime bounds the wait; datagrams from anyone else are not the answer.
        loop {
            let (n, from) = socket
                .recv_from(answer)
                .await
                .map_err(|_| NetError::Connect)?;
            if from.endpoint.addr == IpAddress::Ipv4(address) && from.endpoint.port == port {
                return Ok(n);
            }
        }
    }

    fn wall_clock(&mut self, unix_ms: u64) {
        tls::set_wall_clock(unix_ms);
    }

    async fn connect(
        &mut self,
        host: &str,
        port: u16,
        tls: Option<&TlsSettings>,
    ) -> Result<Socket, NetError> {
        if !self.link_up() {
            return Err(NetError::LinkDown);
        }
        let generation = LINK.get().generation;
        let address = self.resolve(host).await?;
        let remote = SocketAddr::V4(SocketAddrV4::new(address, port));
        let connection = self.client.connect(remote).await.map_err(|e| {
            log::warn!("tcp: {remote}: {e:?}");
            NetError::Connect
        })?;
        let link = match tls {
            None => Transport::Plain(Guarded {
                connection,
                generation,
            }),
            Some(tls) => {
                let guarded = Guarded {
                    connection,
                    generation,
                };
                let stream = tls::open(guarded, host, tls, esp_hal::rng::Rng::new())
                    .await
                    .map_err(NetError::Tls)?;
                Transport::Tls(stream)
            }
        };
        Ok(Socket { link, generation })
    }
}

/// The IPv4 address in a DNS answer, if it is one.
#[allow(irrefutable_let_patterns, unreachable_patterns)]
fn ipv4(address: &IpAddress) -> Option<Ipv4Addr> {
    match address {
        IpAddress::Ipv4(a) => Some(*a),
        _ => None,
    }
}

/// A TCP connection that fails once the link has been taken down, and reports a read of 0
/// bytes (the peer closed) as an error.
struct Guarded {
    connection: Connection,
    generation: u32,
}

impl Guarded {
    fn check(&self) -> Result<(), SocketError> {
        check(self.generation)
    }
}

fn check(generation: u32) -> Result<(), SocketError> {
    if LINK.get().generation == generation {
        Ok(())
    } else {
        Err(SocketError::LinkDown)
    }
}

impl embedded_io_async::ErrorType for Guarded {
    type Error = SocketError;
}

impl Read for Guarded {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.check()?;
        let n = self.connection.read(buf).await.map_err(SocketError::Tcp)?;
        if n == 0 && !buf.is_empty() {
            return Err(SocketError::Closed);
        }
        self.check()?;
        Ok(n)
    }
}

impl Write for Guarded {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        self.check()?;
        self.connection.write(buf).await.map_err(SocketError::Tcp)
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        self.check()?;
        self.connection.flush().await.map_err(SocketError::Tcp)
    }
}

/// What a broker socket runs over (the TLS session itself is in a static slot).
enum Transport {
    Plain(Guarded),
    Tls(tls::TlsStream),
}

/// The broker connection: plain TCP or TLS over it.
pub struct Socket {
    link: Transport,
    generation: u32,
}

/// A socket error.
#[derive(Debug)]
pub enum SocketError {
    /// The TCP stack's error (the connection was reset).
    Tcp(embassy_net::tcp::Error),
    /// The peer closed the connection.
    Closed,
    /// The link was taken down after the socket was opened.
    LinkDown,
    /// The TLS session failed (a bad record, an alert from the server).
    Tls(embedded_tls::TlsError),
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Tcp(e) => write!(f, "tcp: {e:?}"),
            Self::Closed => f.write_str("connection closed by the peer"),
            Self::LinkDown => f.write_str("the network was taken down"),
            Self::Tls(e) => write!(f, "tls: {e:?}"),
        }
    }
}

impl core::error::Error for SocketError {}

impl embedded_io_async::Error for SocketError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        use embedded_io_async::ErrorKind as K;
        match self {
            Self::Tcp(e) => embedded_io_async::Error::kind(e),
            Self::Closed => K::ConnectionReset,
            Self::LinkDown => K::ConnectionAborted,
            Self::Tls(e) => embedded_io_async::Error::kind(e),
        }
    }
}

impl embedded_io_async::ErrorType for Socket {
    type Error = SocketError;
}

/// A TLS error from the session: the transport's own error when that is what failed (the
/// generation check, the closed connection), otherwise the TLS error.
fn tls_error(e: embedded_tls::TlsError) -> SocketError {
    use embedded_io_async::ErrorKind as K;
    match e {
        embedded_tls::TlsError::Io(K::ConnectionAborted) => SocketError::LinkDown,
        // The server's close_notify (and every read after it).
        embedded_tls::TlsError::Io(K::ConnectionReset)
        | embedded_tls::TlsError::ConnectionClosed
        | embedded_tls::TlsError::MissingHandshake => SocketError::Closed,
        other => SocketError::Tls(other),
    }
}

impl Read for Socket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        match &mut self.link {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(s) => {
                check(self.generation)?;
                let n = s.read(buf).await.map_err(tls_error)?;
                if n == 0 && !buf.is_empty() {
                    // The server's close_notify.
                    return Err(SocketError::Closed);
                }
                check(self.generation)?;
                Ok(n)
            }
        }
    }
}

impl Write for Socket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        match &mut self.link {
            Transport::Plain(s) => s.write(buf).await,
            Transport::Tls(s) => {
                check(self.generation)?;
                s.write(buf).await.map_err(tls_error)
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        match &mut self.link {
            Transport::Plain(s) => s.flush().await,
            Transport::Tls(s) => {
                check(self.generation)?;
                s.flush().await.map_err(tls_error)
            }
        }
    }
}
