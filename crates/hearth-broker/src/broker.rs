//! `EmbeddedBroker`: binds the listener, runs the accept thread (one reader
//! thread per connection, each with a writer thread), and the shut-down
//! protocol that ends all of them.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::codec::reason;
use crate::conn::{self, THREAD_STACK};
use crate::error::BrokerError;
use crate::monitor::Message;
use crate::router::{lock, Shared};

/// How often the accept thread checks whether the broker stops (the listener
/// is non-blocking, so no thread ever sits in `accept` forever).
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// At shutdown, how long connections get to send their DISCONNECT before
/// their sockets are shut down hard.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// An MQTT 5 (and 3.1.1) broker serving plain TCP inside this process.
///
/// Dropping it (or calling [`shutdown`](Self::shutdown)) closes the listener
/// and all client connections, ends every feed and joins every thread.
pub struct EmbeddedBroker {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Binds a listener on `addr` (port 0 picks a free port) and returns once
    /// it accepts TCP connections.
    ///
    /// # Errors
    /// [`BrokerError::AddrInUse`] if something already listens on `addr`;
    /// [`BrokerError::Bind`] for other bind failures; [`BrokerError::Spawn`]
    /// if the accept thread could not be created.
    pub fn start(addr: SocketAddr) -> Result<Self, BrokerError> {
        let bind_error = |source: io::Error| {
            if source.kind() == io::ErrorKind::AddrInUse {
                BrokerError::AddrInUse { addr }
            } else {
                BrokerError::Bind { addr, source }
            }
        };
        // Once bound, the kernel queues connections: the broker accepts them.
        let listener = TcpListener::bind(addr).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;

        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("hearth-broker".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(|source| BrokerError::Spawn {
                    what: "accept thread",
                    source,
                })?
        };
        Ok(Self {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address the listener is bound to (the real port when `start` was
    /// given port 0; the IP is the one given, possibly unspecified).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Opens a feed of every message the broker routes (wills included).
    ///
    /// Messages retained at the time of the call arrive first, with
    /// `retain = true`; every message routed after this call returns follows
    /// with `retain = false`, in routing order. The channel is unbounded. It
    /// disconnects when the broker stops; a dropped receiver is forgotten at
    /// the next routed message.
    ///
    /// # Errors
    /// None today; the `Result` keeps room for a broker that can refuse.
    pub fn subscribe_all(&self) -> Result<mpsc::Receiver<Message>, BrokerError> {
        Ok(lock(&self.shared.state).open_feed())
    }

    /// Closes the listener and all client connections and ends every
    /// `subscribe_all` feed. Same as dropping the broker.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        // 1. No new connections; the listening socket is closed (port free).
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = acceptor.join();
        // 2. Every connection gets DISCONNECT 0x8B (v5); no more routing, and
        //    the feeds end.
        {
            let mut state = lock(&self.shared.state);
            state.stopped = true;
            state.close_feeds();
            for link in state.links.values() {
                link.close(Some(reason::SERVER_SHUTTING_DOWN));
            }
        }
        // 3. Connections that could not flush in time are cut off, then every
        //    connection thread is joined.
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while Instant::now() < deadline && threads.iter().any(|t| !t.is_finished()) {
            thread::sleep(Duration::from_millis(5));
        }
        for link in lock(&self.shared.state).links.values() {
            link.kill();
        }
        for thread in threads {
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
            .field("running", &self.acceptor.is_some())
            .finish_non_exhaustive()
    }
}

/// Accepts connections until the broker stops; each gets a thread.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _peer)) => {
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                let conn = conn::next_conn_id(shared);
                let for_thread = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("hearth-broker-conn".into())
                    .stack_size(THREAD_STACK)
                    .spawn(move || conn::serve(&for_thread, stream, conn));
                // Without a thread the stream is dropped: the client sees a close.
                if let Ok(handle) = spawned {
                    let mut threads = lock(&shared.threads);
                    threads.retain(|t| !t.is_finished());
                    threads.push(handle);
                }
            }
            // Nothing pending, or a transient failure (aborted handshake, out
            // of file descriptors): wait a little and look again.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}
