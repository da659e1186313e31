//! `EmbeddedBroker`: owns rumqttd's router, the MQTT 5 listener thread, and the
//! start-up (bind, readiness probe) and shut-down protocol around them.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tracing::subscriber::NoSubscriber;

use crate::error::BrokerError;
use crate::monitor::{self, Message};

/// How long `start` waits for the listener to accept a probe connection.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// With port 0 the free port is picked before rumqttd binds it; if another
/// process grabs it in between, `start` retries with a new port this often.
const PORT0_ATTEMPTS: usize = 3;

/// Opens an in-process link to the router. A closure because rumqttd does not
/// export the type of its router channel, so it can only be captured, not named.
pub(crate) type LinkFactory =
    Arc<dyn Fn(&str) -> Result<(LinkTx, LinkRx), BrokerError> + Send + Sync>;

/// An MQTT 5 broker (rumqttd) serving plain TCP inside this process.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) closes the listener
/// and all client connections; see the crate docs for what outlives it.
pub struct EmbeddedBroker {
    local_addr: SocketAddr,
    links: LinkFactory,
    stopped: Arc<AtomicBool>,
    shutdown_tx: Option<flume::Sender<()>>,
    listener: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Binds an MQTT 5 listener on `addr` (port 0 picks a free port) and
    /// returns once it accepts TCP connections.
    ///
    /// # Errors
    /// [`BrokerError::AddrInUse`] if something already listens on `addr`;
    /// [`BrokerError::Bind`] for other bind failures; [`BrokerError::Spawn`],
    /// [`BrokerError::Listener`] or [`BrokerError::NotReady`] if the listener
    /// thread could not be brought up.
    pub fn start(addr: SocketAddr) -> Result<Self, BrokerError> {
        // Checked before the router thread exists: that thread can never be
        // stopped, so a refused start must not create one.
        let mut listen = reserve(addr)?;
        let router_tx = quietly(|| Router::new(0, router_config()).spawn());
        let links: LinkFactory = {
            let router_tx = router_tx.clone();
            Arc::new(move |client_id: &str| {
                LinkBuilder::new(client_id, router_tx.clone())
                    .build()
                    .map(|(tx, rx, _connack)| (tx, rx))
                    .map_err(BrokerError::link)
            })
        };

        let attempts = if addr.port() == 0 { PORT0_ATTEMPTS } else { 1 };
        let mut attempt = 1;
        loop {
            let server = Server::new(server_settings(listen), router_tx.clone(), V5);
            match Listener::spawn(server, listen) {
                Ok(listener) => {
                    return Ok(Self {
                        local_addr: listen,
                        links,
                        stopped: Arc::new(AtomicBool::new(false)),
                        shutdown_tx: Some(listener.shutdown_tx),
                        listener: Some(listener.thread),
                    });
                }
                // Lost the race for the port we picked: pick another one.
                Err(BrokerError::AddrInUse { .. }) if attempt < attempts => {
                    attempt += 1;
                    listen = reserve(addr)?;
                }
                Err(BrokerError::AddrInUse { .. }) => return Err(BrokerError::AddrInUse { addr }),
                Err(e) => return Err(e),
            }
        }
    }

    /// The address the listener is bound to (the real port when `start` was
    /// given port 0; the IP is the one given, possibly unspecified).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a feed of every message the broker routes (filter `#`).
    ///
    /// Messages retained at the time of the call arrive first, with
    /// `retain = true`; every message published after this call returns follows
    /// with `retain = false`, in routing order. The channel is unbounded. It
    /// disconnects when the broker stops. After the receiver is dropped, the
    /// feed's thread ends at the next routed message or at shutdown.
    ///
    /// # Errors
    /// [`BrokerError::Link`] if the router refuses the link or does not
    /// confirm the subscription in time.
    pub fn subscribe_all(&self) -> Result<mpsc::Receiver<Message>, BrokerError> {
        monitor::open(&self.links, Arc::clone(&self.stopped))
    }

    /// Closes the listener and all client connections and ends every
    /// `subscribe_all` feed. Same as dropping the broker.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(shutdown_tx) = self.shutdown_tx.take() {
            // The listener may already have exited; then there is no receiver.
            let _ = shutdown_tx.send(());
        }
        if let Some(thread) = self.listener.take() {
            // A panic in the listener thread has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("local_addr", &self.local_addr)
            .field("running", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// The thread that runs rumqttd's MQTT 5 server on a single-threaded tokio
/// runtime; every client connection is a task on it.
struct Listener {
    shutdown_tx: flume::Sender<()>,
    thread: JoinHandle<()>,
}

/// How the listener thread ended before start-up completed.
enum Exit {
    Runtime(io::Error),
    Server {
        kind: Option<io::ErrorKind>,
        reason: String,
    },
}

impl Listener {
    /// Spawns the thread and waits until `addr` accepts connections.
    fn spawn(mut server: Server<V5>, addr: SocketAddr) -> Result<Self, BrokerError> {
        let (shutdown_tx, shutdown_rx) = flume::bounded::<()>(1);
        let (exit_tx, exit_rx) = mpsc::channel::<Exit>();
        let thread = thread::Builder::new()
            .name("hearth-broker".into())
            .spawn(move || {
                let _quiet = tracing::subscriber::set_default(NoSubscriber::default());
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = exit_tx.send(Exit::Runtime(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::select! {
                        result = server.start(LinkType::Remote) => {
                            let _ = exit_tx.send(Exit::from_server(result));
                        }
                        // A message or the sender being dropped both mean stop.
                        _ = shutdown_rx.recv_async() => {}
                    }
                });
                // Dropping the runtime cancels every connection task, which
                // closes the listening socket and all client sockets.
            })
            .map_err(|source| BrokerError::Spawn {
                what: "listener thread",
                source,
            })?;

        let listener = Self {
            shutdown_tx,
            thread,
        };
        match wait_ready(addr, &exit_rx) {
            Ok(()) => Ok(listener),
            Err(e) => {
                let _ = listener.shutdown_tx.send(());
                let _ = listener.thread.join();
                Err(e)
            }
        }
    }
}

impl Exit {
    /// `Server::start` only returns on failure; its error type is not exported
    /// by rumqttd, so it is taken apart through `std::error::Error`.
    fn from_server<E: StdError + 'static>(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Exit::Server {
                kind: None,
                reason: "listener returned".into(),
            },
            Err(e) => Exit::Server {
                kind: e
                    .source()
                    .and_then(|s| s.downcast_ref::<io::Error>())
                    .map(io::Error::kind),
                reason: e.to_string(),
            },
        }
    }

    fn into_error(self, addr: SocketAddr) -> BrokerError {
        match self {
            Exit::Runtime(source) => BrokerError::Spawn {
                what: "tokio runtime",
                source,
            },
            Exit::Server {
                kind: Some(io::ErrorKind::AddrInUse),
                ..
            } => BrokerError::AddrInUse { addr },
            Exit::Server { reason, .. } => BrokerError::Listener { addr, reason },
        }
    }
}

/// Polls `addr` with TCP connects until one succeeds, the listener thread
/// reports a failure, or [`START_TIMEOUT`] passes.
fn wait_ready(addr: SocketAddr, exit_rx: &mpsc::Receiver<Exit>) -> Result<(), BrokerError> {
    let probe = probe_addr(addr);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match exit_rx.try_recv() {
            Ok(exit) => return Err(exit.into_error(addr)),
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(BrokerError::Listener {
                    addr,
                    reason: "listener thread ended".into(),
                })
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::NotReady {
                addr: probe,
                waited: START_TIMEOUT,
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Where to connect to reach a listener bound on `addr`: the loopback address
/// of the same family when `addr` is unspecified (0.0.0.0 or ::).
fn probe_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Checks that `addr` can be bound and resolves port 0 to a free port. The
/// probe socket is closed again before rumqttd binds the address itself
/// (rumqttd only takes an address, not a socket).
fn reserve(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let bind_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::AddrInUse {
            BrokerError::AddrInUse { addr }
        } else {
            BrokerError::Bind { addr, source }
        }
    };
    let probe = TcpListener::bind(addr).map_err(bind_error)?;
    probe.local_addr().map_err(bind_error)
}

/// Runs `f` with rumqttd's `tracing` events discarded on this thread.
fn quietly<R>(f: impl FnOnce() -> R) -> R {
    tracing::subscriber::with_default(NoSubscriber::default(), f)
}

fn router_config() -> RouterConfig {
    RouterConfig {
        // Demo scale: a handful of devices, the CLI and the live view.
        max_connections: 256,
        max_outgoing_packet_count: 200,
        // In-memory log per topic: at most 4 segments of 256 KiB.
        max_segment_size: 256 * 1024,
        max_segment_count: 4,
        ..RouterConfig::default()
    }
}

fn server_settings(listen: SocketAddr) -> ServerSettings {
    ServerSettings {
        name: "hearth-mqtt5".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            // Time a new TCP connection has to send CONNECT.
            connection_timeout_ms: 10_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            // rumqttd 0.20 accepts publishes to topics nobody subscribes to
            // with or without this flag (its `DataLog::matches` never fails).
            dynamic_filters: false,
        },
    }
}
