//! The network: a Wi-Fi station (esp-radio) under embassy-net (DHCPv4, DNS, TCP), as a
//! `hearth_device::Network`.
//!
//! Two tasks run beside the device loop: the embassy-net runner, and the connection task that
//! owns the `WifiController`. `up()` and `down()` only record the wish and signal the
//! connection task; neither waits for the radio, so the loop is never held by association.
//! While the wish is "up", the task associates, waits for the loss of the association and
//! associates again (after [`RECONNECT_PAUSE_MS`]), retrying a failed attempt every
//! [`RETRY_PAUSE_MS`]; the runtime's network supervisor decides when to give up (`down()`),
//! wait and try again (`up()`). On "down" it disconnects, or aborts the attempt in progress.
//!
//! `link_up()` is true when the wish is "up", the station is associated, and DHCP has
//! configured the interface. `connect()` resolves the host with the stack's DNS client (an
//! IPv4 literal is used as is) and opens a TCP connection from a one-socket pool
//! (`TcpClientState<1, ..>`): the buffers are static and return to the pool when the socket is
//! dropped, so reconnecting never allocates. Sockets carry the link generation of their birth:
//! after `down()` every read or write on an older socket fails, and a read of 0 bytes (the
//! peer closed) is reported as an error, as the simulator does.
//!
//! Security: an open network when the config has no password, else WPA2-Personal as the
//! *minimum* (the driver also joins WPA2/WPA3 transition networks). Regulatory domain: the
//! driver's default (country `CN`, channels 1–13).

use alloc::format;
use alloc::string::String;
use core::cell::Cell;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::pin::pin;

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_net::dns::DnsQueryType;
use embassy_net::tcp::client::{TcpClient, TcpClientState, TcpConnection};
use embassy_net::{IpAddress, Runner, Stack, StackResources};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Timer};
use embedded_io_async::{Read, Write};
use embedded_nal_async::TcpConnect;
use esp_hal::peripherals::WIFI;
use esp_hal::rng::Rng;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, Password, Ssid,
    WifiController, WifiError,
};
use hearth_device::{NetError, Network};
use static_cell::{ConstStaticCell, StaticCell};

use crate::config::Wifi;

/// TCP transmit buffer of the broker connection.
const TCP_TX: usize = 2048;
/// TCP receive buffer of the broker connection.
const TCP_RX: usize = 2048;
/// Sockets in the stack: DHCP, DNS and the broker connection.
const SOCKETS: usize = 3;
/// Pause after the association was lost before associating again.
const RECONNECT_PAUSE_MS: u64 = 2_000;
/// Pause after a failed association attempt.
const RETRY_PAUSE_MS: u64 = 5_000;
/// Bound on a disconnect (waits for the driver's "disconnected" event).
const DISCONNECT_TIMEOUT_MS: u64 = 5_000;

type Client = TcpClient<'static, 1, TCP_TX, TCP_RX>;
type Connection = TcpConnection<'static, 1, TCP_TX, TCP_RX>;

static RESOURCES: ConstStaticCell<StackResources<SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static TCP_STATE: ConstStaticCell<TcpClientState<1, TCP_TX, TCP_RX>> =
    ConstStaticCell::new(TcpClientState::new());
static CLIENT: StaticCell<Client> = StaticCell::new();
static LINK: Link = Link::new();

/// State shared between the `Network` handle, its sockets and the connection task.
#[derive(Debug, Clone, Copy)]
struct LinkState {
    /// The runtime wants the link up.
    wanted: bool,
    /// The station is associated with the access point.
    associated: bool,
    /// Bumped by every `down()`: sockets opened before it fail.
    generation: u32,
}

struct Link {
    state: Mutex<CriticalSectionRawMutex, Cell<LinkState>>,
    /// The latest wish (`true` = up) for the connection task.
    control: Signal<CriticalSectionRawMutex, bool>,
}

impl Link {
    const fn new() -> Self {
        Self {
            state: Mutex::new(Cell::new(LinkState {
                wanted: false,
                associated: false,
                generation: 0,
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

/// Why Wi-Fi could not be started.
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
}

/// The Wi-Fi station network.
pub struct WifiNetwork {
    stack: Stack<'static>,
    client: &'static Client,
    /// The address was logged for the current association.
    announced: bool,
}

/// Start the Wi-Fi driver and the network stack, and spawn their tasks. The station does not
/// associate until [`Network::up`].
pub fn start(
    spawner: Spawner,
    wifi: WIFI<'static>,
    credentials: &Wifi,
) -> Result<WifiNetwork, StartError> {
    let ssid = Ssid::try_from(credentials.ssid.as_str())
        .map_err(|e| StartError::config(format!("wifi: ssid {:?}: {e}", credentials.ssid)))?;
    let authentication = match &credentials.password {
        None => AuthenticationMethodConfig::Open,
        Some(p) => AuthenticationMethodConfig::Wpa2Personal(
            Password::try_from(p.as_str())
                .map_err(|e| StartError::config(format!("wifi: password: {e}")))?,
        ),
    };
    let station = StationConfig::default()
        .with_ssid(ssid)
        .with_authentication(authentication);
    let controller = WifiController::new(
        wifi,
        ControllerConfig::default().with_initial_config(WifiConfig::Station(station)),
    )
    .map_err(|e| StartError {
        message: format!("wifi: the driver did not start: {e}"),
        // The driver validates the SSID and the passphrase against the network settings.
        config: matches!(e, WifiError::InvalidSsid | WifiError::InvalidPassword),
    })?;
    // The RNG is a true RNG once the radio runs.
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let interface = Interface::try_station().ok_or_else(|| StartError {
        message: String::from("wifi: the station interface is taken"),
        config: false,
    })?;
    let (stack, runner) = embassy_net::new(
        interface,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.take(),
        seed,
    );
    let client = CLIENT.init(TcpClient::new(stack, TCP_STATE.take()));
    spawner.spawn(net_runner(runner).expect("the network runner is spawned once"));
    spawner.spawn(connection(controller, &LINK).expect("the Wi-Fi task is spawned once"));
    log::info!(
        "wifi: station for {:?} ({})",
        credentials.ssid,
        if credentials.password.is_some() {
            "WPA2-Personal or better"
        } else {
            "open network"
        }
    );
    Ok(WifiNetwork {
        stack,
        client,
        announced: false,
    })
}

#[embassy_executor::task]
async fn net_runner(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

/// How an association ended.
enum Ended {
    /// The access point or the radio ended it.
    Lost(Result<esp_radio::wifi::sta::DisconnectedInfo, WifiError>),
    /// `down()` ended it; `up_again` when an `up()` followed.
    Down { up_again: bool },
}

/// How an association attempt ended.
enum Attempt {
    Associated,
    Failed,
    /// `down()` arrived first.
    Cancelled,
}

#[embassy_executor::task]
async fn connection(mut controller: WifiController<'static>, link: &'static Link) -> ! {
    let mut wanted = false;
    loop {
        if !wanted {
            wanted = link.control.wait().await;
            continue;
        }
        match associate(&mut controller, link).await {
            Attempt::Associated => {
                // A `down()` is also recognised by its generation bump, in case an `up()`
                // replaced it in the signal before this task saw it.
                let born = link.get().generation;
                link.update(|s| s.associated = true);
                let end = {
                    let mut lost = pin!(controller.wait_for_disconnect_async());
                    loop {
                        match select(&mut lost, link.control.wait()).await {
                            Either::First(info) => break Ended::Lost(info),
                            Either::Second(true) if link.get().generation == born => continue,
                            Either::Second(wish) => break Ended::Down { up_again: wish },
                        }
                    }
                };
                link.update(|s| s.associated = false);
                match end {
                    Ended::Lost(info) => {
                        match info {
                            Ok(info) => log::warn!("wifi: association lost: {:?}", info.reason),
                            Err(e) => log::warn!("wifi: association lost: {e}"),
                        }
                        wanted = pause(link, RECONNECT_PAUSE_MS).await;
                    }
                    Ended::Down { up_again } => {
                        disconnect(&mut controller).await;
                        wanted = up_again;
                    }
                }
            }
            Attempt::Failed => wanted = pause(link, RETRY_PAUSE_MS).await,
            Attempt::Cancelled => {
                wanted = false;
                disconnect(&mut controller).await;
            }
        }
    }
}

/// One association attempt, abandoned when `down()` arrives.
async fn associate(controller: &mut WifiController<'static>, link: &Link) -> Attempt {
    let mut attempt = pin!(controller.connect_async());
    loop {
        match select(&mut attempt, link.control.wait()).await {
            Either::First(Ok(info)) => {
                log::info!(
                    "wifi: associated with {:?} on channel {}",
                    info.ssid,
                    info.channel
                );
                return Attempt::Associated;
            }
            Either::First(Err(e)) => {
                log::warn!("wifi: association failed: {e:?}");
                return Attempt::Failed;
            }
            Either::Second(true) => continue,
            Either::Second(false) => return Attempt::Cancelled,
        }
    }
}

/// Wait `ms` unless a wish arrives; returns the wish in force afterwards (still "up" unless
/// `down()` came).
async fn pause(link: &Link, ms: u64) -> bool {
    match select(Timer::after_millis(ms), link.control.wait()).await {
        Either::First(()) => true,
        Either::Second(wish) => wish,
    }
}

/// Disconnect, or abort an attempt in progress; bounded, errors only logged.
async fn disconnect(controller: &mut WifiController<'static>) {
    match with_timeout(
        Duration::from_millis(DISCONNECT_TIMEOUT_MS),
        controller.disconnect_async(),
    )
    .await
    {
        Ok(Ok(_)) => log::info!("wifi: disconnected"),
        // Not connected (nor connecting): nothing to do.
        Ok(Err(WifiError::NotConnected)) => {}
        Ok(Err(e)) => log::warn!("wifi: disconnect failed: {e}"),
        Err(_) => log::warn!("wifi: disconnect timed out"),
    }
}

impl Network for WifiNetwork {
    type Socket = WifiSocket;

    async fn up(&mut self) {
        LINK.update(|s| s.wanted = true);
        LINK.control.signal(true);
    }

    async fn down(&mut self) {
        LINK.update(|s| {
            s.wanted = false;
            s.generation = s.generation.wrapping_add(1);
        });
        LINK.control.signal(false);
    }

    fn link_up(&mut self) -> bool {
        let s = LINK.get();
        let up = s.wanted && s.associated && self.stack.is_link_up() && self.stack.is_config_up();
        if up && !self.announced {
            if let Some(c) = self.stack.config_v4() {
                log::info!(
                    "wifi: address {} gateway {:?} dns {:?}",
                    c.address,
                    c.gateway,
                    c.dns_servers.as_slice()
                );
            }
        }
        self.announced = up;
        up
    }

    async fn connect(&mut self, host: &str, port: u16) -> Result<WifiSocket, NetError> {
        if !self.link_up() {
            return Err(NetError::LinkDown);
        }
        let generation = LINK.get().generation;
        let address = match host.parse::<Ipv4Addr>() {
            Ok(a) => a,
            Err(_) => {
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
                    .inspect_err(|_| log::warn!("dns: {host}: no IPv4 address"))?
            }
        };
        let remote = SocketAddr::V4(SocketAddrV4::new(address, port));
        let connection = self.client.connect(remote).await.map_err(|e| {
            log::warn!("tcp: {remote}: {e:?}");
            NetError::Connect
        })?;
        Ok(WifiSocket {
            connection,
            generation,
        })
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

/// A TCP connection to the broker that fails once the link has been taken down.
pub struct WifiSocket {
    connection: Connection,
    generation: u32,
}

impl WifiSocket {
    fn check(&self) -> Result<(), SocketError> {
        if LINK.get().generation == self.generation {
            Ok(())
        } else {
            Err(SocketError::LinkDown)
        }
    }
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
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Tcp(e) => write!(f, "tcp: {e:?}"),
            Self::Closed => f.write_str("connection closed by the peer"),
            Self::LinkDown => f.write_str("the network was taken down"),
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
        }
    }
}

impl embedded_io_async::ErrorType for WifiSocket {
    type Error = SocketError;
}

impl Read for WifiSocket {
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

impl Write for WifiSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        self.check()?;
        self.connection.write(buf).await.map_err(SocketError::Tcp)
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        self.check()?;
        self.connection.flush().await.map_err(SocketError::Tcp)
    }
}
