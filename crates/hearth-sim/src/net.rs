//! The simulated network interface: real TCP sockets (async-io) behind a link whose state the
//! board controls. `down` makes the link report down and breaks open sockets; `stuck` keeps the
//! link "up" while every socket operation and connection attempt hangs, as a wedged radio does.
//! With TLS, a rustls connection runs on top of the simulated socket (so link faults reach
//! it as they would reach the chip's TLS client); see [`TlsSocket`].

use std::future::pending;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicI8, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use async_io::Async;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use hearth_platform::{NetError, Network, TlsError, TlsSettings};

use crate::env::Wifi;

/// How long association takes once the interface is brought up.
const ASSOCIATION_MS: u64 = 300;

/// The signal a simulated station receives until `sim ctl rssi` says otherwise: a good
/// indoor link.
pub const DEFAULT_RSSI: i8 = -58;

/// Link state shared between the environment reader and the network.
#[derive(Debug)]
pub struct Link {
    wifi: AtomicU8,
    generation: AtomicU64,
    rssi: AtomicI8,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            wifi: AtomicU8::new(0),
            generation: AtomicU64::new(0),
            rssi: AtomicI8::new(DEFAULT_RSSI),
        }
    }
}

impl Link {
    /// Set the received signal strength, dBm.
    pub fn set_rssi(&self, dbm: i8) {
        self.rssi.store(dbm, Ordering::SeqCst);
    }

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

    fn is_wireless(&self) -> bool {
        true
    }

    fn rssi(&mut self) -> Option<i8> {
        self.link_up()
            .then(|| self.link.rssi.load(Ordering::SeqCst))
    }

    fn link_up(&mut self) -> bool {
        self.associated_at.is_some_and(|t| now() >= t) && self.link.wifi() != Wifi::Down
    }

    async fn probe(&mut self) -> bool {
        // The simulated radio's state is what a gateway ping would find: a stuck radio passes
        // nothing (the check waits until the caller's bound), a working one answers.
        match self.link.wifi() {
            Wifi::Up => self.link_up(),
            Wifi::Stuck => pending::<bool>().await,
            Wifi::Down => false,
        }
    }

    async fn exchange_udp(
        &mut self,
        host: &str,
        port: u16,
        request: &[u8],
        answer: &mut [u8],
    ) -> Result<usize, NetError> {
        let addrs = self.resolve(host, port).await?;
        let addr = addrs
            .into_iter()
            .find(SocketAddr::is_ipv4)
            .ok_or(NetError::Dns)?;
        let socket = Async::<UdpSocket>::bind(([0, 0, 0, 0], 0)).map_err(|_| NetError::Connect)?;
        socket
            .send_to(request, addr)
            .await
            .map_err(|_| NetError::Connect)?;
        loop {
            let (n, from) = socket
                .recv_from(answer)
                .await
                .map_err(|_| NetError::Connect)?;
            // Only the server's own datagrams; the caller bounds the wait.
            if from == addr {
                return Ok(n);
            }
        }
    }

    async fn connect(
        &mut self,
        host: &str,
        port: u16,
        tls: Option<&TlsSettings>,
    ) -> Result<SimSocket, NetError> {
        let tcp = self.connect_tcp(host, port).await?;
        let Some(tls) = tls else {
            return Ok(SimSocket::Plain(tcp));
        };
        let config = crate::tls::client_config(tls).map_err(|e| {
            eprintln!("tls: {e}");
            NetError::Tls(TlsError::BadConfig)
        })?;
        let name = crate::tls::server_name(&tls.server_name).map_err(|e| {
            eprintln!("tls: {e}");
            NetError::Tls(TlsError::BadConfig)
        })?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(|e| NetError::Tls(crate::tls::classify(&e)))?;
        let mut socket = TlsSocket {
            conn,
            tcp,
            out: Vec::new(),
        };
        socket.handshake().await.map_err(NetError::Tls)?;
        Ok(SimSocket::Tls(Box::new(socket)))
    }
}

impl SimNetwork {
    /// `host:port` through the simulated link: its faults, then the host's resolver (off the
    /// executor's thread).
    async fn resolve(&mut self, host: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
        match self.link.wifi() {
            Wifi::Down => return Err(NetError::LinkDown),
            Wifi::Stuck => pending::<()>().await,
            Wifi::Up => {}
        }
        if self.broken {
            return Err(NetError::Connect);
        }
        let target = format!("{host}:{port}");
        blocking::unblock(move || target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()))
            .await
            .map_err(|_| NetError::Dns)
    }

    async fn connect_tcp(&mut self, host: &str, port: u16) -> Result<TcpSocket, NetError> {
        let addrs = self.resolve(host, port).await?;
        let generation = self.link.generation();
        for addr in addrs {
            if let Ok(stream) = Async::<TcpStream>::connect(addr).await {
                let _ = stream.get_ref().set_nodelay(true);
                return Ok(TcpSocket {
                    stream,
                    link: self.link.clone(),
                    generation,
                });
            }
        }
        Err(NetError::Connect)
    }
}

/// A connection to the broker: plain TCP, or TLS over TCP.
pub enum SimSocket {
    /// `mqttbroker host[:port]`.
    Plain(TcpSocket),
    /// `mqttbroker mqtts://host[:port]`.
    Tls(Box<TlsSocket>),
}

impl embedded_io_async::ErrorType for SimSocket {
    type Error = SocketError;
}

impl embedded_io_async::Read for SimSocket {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        match self {
            SimSocket::Plain(s) => s.read(buf).await,
            SimSocket::Tls(s) => s.read(buf).await,
        }
    }
}

impl embedded_io_async::Write for SimSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        match self {
            SimSocket::Plain(s) => s.write(buf).await,
            SimSocket::Tls(s) => s.write(buf).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        match self {
            SimSocket::Plain(s) => s.flush().await,
            SimSocket::Tls(s) => s.flush().await,
        }
    }
}

impl SimSocket {
    /// A plain connection for the host tools (`hearth mon`, `cmd`, `ota`): `stream` with no
    /// simulated link under it (its link is always up).
    pub fn host(stream: Async<TcpStream>) -> SimSocket {
        SimSocket::Plain(TcpSocket {
            stream,
            link: Arc::new(Link::default()),
            generation: 0,
        })
    }

    /// A TLS connection for the host tools: the handshake with `config` for `name` over
    /// `stream`, checked as a simulated device checks it.
    pub async fn host_tls(
        stream: Async<TcpStream>,
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    ) -> Result<SimSocket, TlsError> {
        let SimSocket::Plain(tcp) = SimSocket::host(stream) else {
            return Err(TlsError::BadConfig);
        };
        let conn =
            rustls::ClientConnection::new(config, name).map_err(|e| crate::tls::classify(&e))?;
        let mut socket = TlsSocket {
            conn,
            tcp,
            out: Vec::new(),
        };
        socket.handshake().await?;
        Ok(SimSocket::Tls(Box::new(socket)))
    }
}

/// How many TLS bytes are read from the socket at once: at most this much plaintext is
/// decrypted per read, well under rustls's received-plaintext limit.
const TLS_READ_CHUNK: usize = 4096;

/// A rustls client connection driven over a [`TcpSocket`]: rustls is used sans-IO (records
/// in with `read_tls`, records out with `write_tls`), and this type moves the bytes with the
/// simulated socket's async reads and writes. Encrypted bytes not yet written wait in `out`,
/// and received bytes go into rustls before the next await, so dropping a read or a write
/// (the runtime races reads against its timers) loses nothing.
pub struct TlsSocket {
    conn: rustls::ClientConnection,
    tcp: TcpSocket,
    out: Vec<u8>,
}

impl TlsSocket {
    /// Write out what rustls has to send.
    async fn flush_out(&mut self) -> Result<(), SocketError> {
        use embedded_io_async::Write;
        loop {
            if self.out.is_empty() {
                if !self.conn.wants_write() {
                    return Ok(());
                }
                self.conn.write_tls(&mut self.out).map_err(io_err)?;
                continue;
            }
            let n = self.tcp.write(&self.out).await?;
            self.out.drain(..n);
        }
    }

    /// Read one chunk of records and process them.
    async fn read_records(&mut self) -> Result<(), ReadError> {
        use embedded_io_async::Read;
        let mut chunk = [0u8; TLS_READ_CHUNK];
        let n = self.tcp.read(&mut chunk).await.map_err(ReadError::Io)?;
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            self.conn
                .read_tls(&mut rest)
                .map_err(|e| ReadError::Io(io_err(e)))?;
            self.conn.process_new_packets().map_err(ReadError::Tls)?;
        }
        Ok(())
    }

    /// Run the handshake to its end. Certificate problems come back as what they are; a
    /// connection lost meanwhile is a failed handshake.
    async fn handshake(&mut self) -> Result<(), TlsError> {
        while self.conn.is_handshaking() {
            self.flush_out().await.map_err(|_| TlsError::Handshake)?;
            if self.conn.is_handshaking() {
                match self.read_records().await {
                    Ok(()) => {}
                    Err(ReadError::Tls(e)) => {
                        // Tell the server why (the alert rustls queued), best effort.
                        let _ = self.flush_out().await;
                        return Err(crate::tls::classify(&e));
                    }
                    Err(ReadError::Io(_)) => return Err(TlsError::Handshake),
                }
            }
        }
        self.flush_out().await.map_err(|_| TlsError::Handshake)
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, SocketError> {
        use std::io::Read;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(0) => {
                    // close_notify: the broker ended the session.
                    return Err(SocketError(embedded_io_async::ErrorKind::ConnectionReset));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_err(e)),
            }
            self.flush_out().await?;
            match self.read_records().await {
                Ok(()) => {}
                Err(ReadError::Io(e)) => return Err(e),
                Err(ReadError::Tls(e)) => {
                    eprintln!("tls: {e}");
                    let _ = self.flush_out().await;
                    return Err(SocketError(embedded_io_async::ErrorKind::InvalidData));
                }
            }
        }
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        use std::io::Write;
        self.flush_out().await?;
        let n = self.conn.writer().write(buf).map_err(io_err)?;
        self.flush_out().await?;
        Ok(n)
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        use embedded_io_async::Write;
        self.flush_out().await?;
        self.tcp.flush().await
    }
}

enum ReadError {
    Io(SocketError),
    Tls(rustls::Error),
}

/// A TCP stream that obeys the simulated link.
pub struct TcpSocket {
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

impl TcpSocket {
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

impl embedded_io_async::ErrorType for TcpSocket {
    type Error = SocketError;
}

impl embedded_io_async::Read for TcpSocket {
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

impl embedded_io_async::Write for TcpSocket {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, SocketError> {
        self.gate().await?;
        self.stream.write(buf).await.map_err(io_err)
    }

    async fn flush(&mut self) -> Result<(), SocketError> {
        self.gate().await?;
        self.stream.flush().await.map_err(io_err)
    }
}
