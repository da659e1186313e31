//! The simulated network interface: real TCP sockets (async-io) behind a link whose state the
//! board controls. `down` makes the link report down and breaks open sockets; `stuck` keeps the
//! link "up" while every socket operation and connection attempt hangs, as a wedged radio does.

use std::future::pending;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hearth_device::{NetError, Network};

use crate::env::Wifi;

/// How long association takes once the interface is brought up.
const ASSOCIATION_MS: u64 = 300;

/// Link state shared between the environment reader and the network.
#[derive(Debug, Default)]
pub struct Link {
    wifi: AtomicU8,
    generation: AtomicU64,
}

impl Link {
    /// Current Wi-Fi state.
    pub fn wifi(&self) -> Wifi {
        match self.wifi.load(Ordering::SeqCst) {
            0 => Wifi::Up,
            1 => Wifi::Down,
            _ => Wifi::Stuck,
        }
    }

    /// Change the Wi-Fi state; going down breaks every open socket.
    pub fn set_wifi(&self, w: Wifi) {
        let v = match w {
            Wifi::Up => 0,
            Wifi::Down => 1,
            Wifi::Stuck => 2,
        };
        if w == Wifi::Down {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.wifi.store(v, Ordering::SeqCst);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// The device's network interface in the simulator.
pub struct SimNetwork {
    link: Arc<Link>,
    associated_at: Option<u64>,
    broken: bool,
}

impl SimNetwork {
    /// An interface on `link`, initially down.
    pub fn new(link: Arc<Link>) -> Self {
        Self {
            link,
            associated_at: None,
            broken: false,
        }
    }

    /// A firmware whose network stack never opens a connection (an update image built with
    /// `health=never`): the link comes up, every TCP connect fails.
    pub fn broken(mut self) -> Self {
        self.broken = true;
        self
    }
}

fn now() -> u64 {
    embassy_time::Instant::now().as_millis()
}

impl Network for SimNetwork {
    type Socket = SimSocket;

    async fn up(&mut self) {
        self.associated_at = Some(now() + ASSOCIATION_MS);
    }

    async fn down(&mut self) {
        self.associated_at = None;
        self.link.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn address(&mut self) -> Option<core::net::Ipv4Addr> {
        // The simulated station reaches the broker over loopback.
        self.link_up().then_some(core::net::Ipv4Addr::LOCALHOST)
    }

    fn link_up(&mut self) -> bool {
        self.associated_at.is_some_and(|t| now() >= t) && self.link.wifi() != Wifi::Down
    }

    async fn connect(&mut self, host: &str, port: u16) -> Result<SimSocket, NetError> {
        match self.link.wifi() {
            Wifi::Down => return Err(NetError::LinkDown),
            Wifi::Stuck => pending::<()>().await,
            Wifi::Up => {}
        }
        if self.broken {
            return Err(NetError::Connect);
        }
        let target = format!("{host}:{port}");
        let addrs =
            blocking::unblock(move || target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()))
                .await
                .map_err(|_| NetError::Dns)?;
        let generation = self.link.generation();
        for addr in addrs {
            if let Ok(stream) = Async::<TcpStream>::connect(addr).await {
                let _ = stream.get_ref().set_nodelay(true);
                return Ok(SimSocket {
                    stream,
                    link: self.link.clone(),
                    generation,
                });
            }
        }
        Err(NetError::Connect)
    }
}

/// A TCP stream that obeys the simulated link.
pub struct SimSocket {
    stream: Async<TcpStream>,
    link: Arc<Link>,
    generation: u64,
}

/// A socket error, mapped to embedded-io's kinds.
#[derive(Debug)]
pub struct SocketError(embedded_io_async::ErrorKind);

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "socket error: {:?}", self.0)
    }
}

impl std::error::Error for SocketError {}

impl embedded_io_async::Error for SocketError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        self.0
    }
}

impl SimSocket {
    async fn gate(&self) -> Result<(), SocketError> {
        if self.link.generation() != self.generation {
            return Err(SocketError(embedded_io_async::ErrorKind::ConnectionAborted));
        }
        if self.link.wifi() == Wifi::Stuck {
            pending::<()>().await;
        }
        Ok(())
    }
}

fn io_err(e: std::io::Error) -> SocketError {
    use embedded_io_async::ErrorKind as K;
    SocketError(match e.kind() {
        std::io::ErrorKind::ConnectionReset => K::ConnectionReset,
        std::io::ErrorKind::ConnectionAborted => K::ConnectionAborted,
        std::io::ErrorKind::BrokenPipe => K::BrokenPipe,
        std::io::ErrorKind::TimedOut => K::TimedOut,
        _ => K::Other,
    })
}

impl embedded_io_async::ErrorType for SimSocket {
    type Error = SocketError;
}

impl embedded_io_async::Read for SimSocket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        self.gate().await?;
        let n = self.stream.read(buf).await.map_err(io_err)?;
        if n == 0 && !buf.is_empty() {
            return Err(SocketError(embedded_io_async::ErrorKind::ConnectionReset));
        }
        self.gate().await?;
        Ok(n)
    }
}

impl embedded_io_async::Write for SimSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        self.gate().await?;
        self.stream.write(buf).await.map_err(io_err)
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        self.gate().await?;
        self.stream.flush().await.map_err(io_err)
    }
}
