//! One client connection: its reader thread reads and handles packets (the
//! CONNECT handshake, PUBLISH in, acknowledgements, SUBSCRIBE, keep-alive) and
//! ends the session; a writer thread ([`Link::run_writer`]) sends.

use std::collections::HashSet;
use std::io::{self, Read as _};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::codec::{
    self, kind, reason, ConnackProps, Connect, ConnectError, Packet, Version, MAX_PACKET,
};
use crate::link::{Link, Pubrec};
use crate::router::{lock, Delivery, Publication, Session, Shared, Subscription};
use crate::topic;

/// Time a new connection has to send its CONNECT.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that makes no progress for this long closes the connection (a
/// client that stopped reading).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Stack of connection threads: they keep their buffers on the heap.
pub(crate) const THREAD_STACK: usize = 256 * 1024;

/// Runs one accepted connection to its end (on its own thread).
pub(crate) fn serve(shared: &Arc<Shared>, stream: TcpStream, conn: u64) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let (Ok(write_half), Ok(handle)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let link = Arc::new(Link::new(handle));
    {
        let mut state = lock(&shared.state);
        if state.stopped {
            return;
        }
        state.links.insert(conn, Arc::clone(&link));
    }
    let writer = {
        let link = Arc::clone(&link);
        thread::Builder::new()
            .name("hearth-broker-write".into())
            .stack_size(THREAD_STACK)
            .spawn(move || link.run_writer(write_half))
    };
    if let Ok(writer) = writer {
        let mut connection = Connection {
            shared,
            link: &link,
            conn,
            reader: PacketReader::new(stream),
            version: Version::V5,
            client_id: None,
            awaiting_release: HashSet::new(),
        };
        let end = connection.run();
        connection.finish(end);
        link.close(None);
        let _ = writer.join();
    }
    link.kill();
    lock(&shared.state).links.remove(&conn);
}

/// How a connection ended, for its will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT with reason 0: the will is discarded.
    Normal,
    /// Anything else: the will is published.
    PublishWill,
}

struct Connection<'a> {
    shared: &'a Shared,
    link: &'a Arc<Link>,
    conn: u64,
    reader: PacketReader,
    version: Version,
    /// Set once the CONNECT is accepted.
    client_id: Option<String>,
    /// Incoming QoS 2 packet ids delivered and waiting for PUBREL.
    awaiting_release: HashSet<u16>,
}

impl Connection<'_> {
    fn run(&mut self) -> End {
        let Some(keep_alive) = self.handshake() else {
            return End::PublishWill;
        };
        // No packet for 1.5 x keep-alive: the client is gone (0: no limit).
        let limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        loop {
            let deadline = limit.map(|limit| Instant::now() + limit);
            let (first, body) = match self.reader.next(deadline) {
                Ok(packet) => packet,
                Err(ReadError::Closed) => return End::PublishWill,
                Err(ReadError::TimedOut) => {
                    self.link.close(Some(reason::KEEP_ALIVE_TIMEOUT));
                    return End::PublishWill;
                }
                Err(ReadError::TooLarge) => {
                    self.link.close(Some(reason::PACKET_TOO_LARGE));
                    return End::PublishWill;
                }
                Err(ReadError::Malformed) => {
                    self.link.close(Some(reason::MALFORMED));
                    return End::PublishWill;
                }
            };
            match codec::decode(first, &body, self.version) {
                Ok(packet) => {
                    if let Some(end) = self.handle(packet) {
                        return end;
                    }
                }
                Err(violation) => {
                    self.link.close(Some(violation.reason));
                    return End::PublishWill;
                }
            }
        }
    }

    /// Reads and answers the CONNECT; returns the keep-alive once accepted.
    fn handshake(&mut self) -> Option<u16> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let Ok((_, body)) = self
            .reader
            .next_if(Some(deadline), |first| first == kind::CONNECT << 4)
        else {
            self.link.close(None);
            return None;
        };
        let connect = match codec::decode_connect(&body) {
            Ok(connect) => connect,
            Err(e) => {
                self.refuse(e);
                return None;
            }
        };
        self.version = connect.version;
        if connect.version == Version::V5 && connect.auth_method.is_some() {
            self.link
                .send(codec::connack_refused(Version::V5, reason::BAD_AUTH_METHOD));
            self.link.close(None);
            return None;
        }
        if connect.client_id.is_empty() && !connect.clean_start && self.version == Version::V4 {
            // 3.1.1: a server-assigned id needs a clean session (return code 2).
            self.link.send(codec::connack_refused(Version::V4, 2));
            self.link.close(None);
            return None;
        }
        let keep_alive = connect.keep_alive;
        self.accept(connect).then_some(keep_alive)
    }

    fn refuse(&self, error: ConnectError) {
        match error {
            ConnectError::Garbled => {}
            ConnectError::UnsupportedProtocol { level } if level < 5 => {
                // 3.1.1 return code 1: unacceptable protocol version.
                self.link.send(codec::connack_refused(Version::V4, 1));
            }
            ConnectError::UnsupportedProtocol { .. } => {
                self.link.send(codec::connack_refused(
                    Version::V5,
                    reason::UNSUPPORTED_VERSION,
                ));
            }
            ConnectError::Invalid {
                version: Version::V5,
                violation,
            } => {
                self.link
                    .send(codec::connack_refused(Version::V5, violation.reason));
            }
            ConnectError::Invalid { .. } => {}
        }
        self.link.close(None);
    }

    /// Registers the session. A live connection with the same client id is
    /// closed first (DISCONNECT 0x8E) and its will published, all before this
    /// connection's CONNACK is queued, under the router lock: the old will
    /// always lands before anything the new connection publishes.
    fn accept(&mut self, connect: Connect) -> bool {
        let mut state = lock(&self.shared.state);
        if state.stopped {
            drop(state);
            self.link.close(Some(reason::SERVER_SHUTTING_DOWN));
            return false;
        }
        let assigned = connect
            .client_id
            .is_empty()
            .then(|| state.assign_client_id());
        let client_id = assigned.clone().unwrap_or(connect.client_id);
        if let Some(old) = state.sessions.remove(&client_id) {
            old.link.close(Some(reason::SESSION_TAKEN_OVER));
            if let Some(will) = old.will {
                state.route(restarted(will), Some(&client_id));
            }
        }
        self.link.configure(
            self.version,
            connect.receive_maximum,
            connect.maximum_packet_size,
        );
        state.sessions.insert(
            client_id.clone(),
            Session {
                conn: self.conn,
                link: Arc::clone(self.link),
                subscriptions: Default::default(),
                will: connect.will.map(Publication::from_will),
            },
        );
        self.link.send(codec::connack_ok(
            self.version,
            &ConnackProps {
                assigned_client_id: assigned.as_deref(),
                session_expiry_zero: connect.session_expiry != 0,
            },
        ));
        self.client_id = Some(client_id);
        true
    }

    /// Handles one packet; `Some` ends the connection.
    fn handle(&mut self, packet: Packet) -> Option<End> {
        let v = self.version;
        match packet {
            Packet::Publish(publish) => {
                let (qos, id) = (publish.qos, publish.packet_id);
                // A QoS 2 resend before PUBREL was delivered already.
                let duplicate = qos == 2 && self.awaiting_release.contains(&id);
                if !duplicate {
                    self.with_session(|state, client_id| {
                        state.route(Publication::from_publish(publish), Some(client_id));
                    });
                }
                match qos {
                    1 => self.link.send(codec::ack(kind::PUBACK, v, id, 0)),
                    2 => {
                        self.awaiting_release.insert(id);
                        self.link.send(codec::ack(kind::PUBREC, v, id, 0));
                    }
                    _ => {}
                }
            }
            Packet::Pubrel { id } => {
                let code = if self.awaiting_release.remove(&id) {
                    reason::SUCCESS
                } else {
                    reason::PACKET_ID_NOT_FOUND
                };
                self.link.send(codec::ack(kind::PUBCOMP, v, id, code));
            }
            Packet::Puback { id } => self.link.completed(id, 1),
            Packet::Pubcomp { id } => self.link.completed(id, 2),
            Packet::Pubrec { id, reason: code } => {
                if let Pubrec::Release(code) = self.link.pubrec(id, code) {
                    self.link.send(codec::ack(kind::PUBREL, v, id, code));
                }
            }
            Packet::Subscribe {
                id,
                subscription_id,
                filters,
            } => self.subscribe(id, subscription_id, filters),
            Packet::Unsubscribe { id, filters } => {
                let link = self.link;
                self.with_session(|state, client_id| {
                    let session = state.sessions.get_mut(client_id).expect("owned session");
                    let codes: Vec<u8> = filters
                        .iter()
                        .map(|f| match session.subscriptions.remove(f) {
                            Some(_) => reason::SUCCESS,
                            None => reason::NO_SUBSCRIPTION_EXISTED,
                        })
                        .collect();
                    link.send(codec::sub_ack(kind::UNSUBACK, v, id, &codes));
                });
            }
            Packet::Pingreq => self.link.send(codec::pingresp()),
            Packet::Disconnect { reason: code } => {
                self.link.close(None);
                // Only reason 0 discards the will (0x04 asks for it, and so
                // does every error code).
                return Some(if code == reason::SUCCESS {
                    End::Normal
                } else {
                    End::PublishWill
                });
            }
        }
        None
    }

    /// SUBACK, then the retained messages for the new subscriptions, queued
    /// under the router lock so that no live message gets between them.
    fn subscribe(
        &mut self,
        id: u16,
        subscription_id: Option<u32>,
        filters: Vec<(String, codec::SubOptions)>,
    ) {
        let v = self.version;
        let link = self.link;
        self.with_session(|state, client_id| {
            let session = state.sessions.get_mut(client_id).expect("owned session");
            let mut codes = Vec::with_capacity(filters.len());
            let mut replay = Vec::new();
            for (filter, options) in filters {
                let refused = if topic::is_shared(&filter) {
                    Some(reason::SHARED_NOT_SUPPORTED)
                } else if !topic::valid_filter(&filter) {
                    Some(reason::TOPIC_FILTER_INVALID)
                } else {
                    None
                };
                if let Some(code) = refused {
                    codes.push(if v == Version::V5 {
                        code
                    } else {
                        reason::UNSPECIFIED
                    });
                    continue;
                }
                let subscription = Subscription {
                    options,
                    id: subscription_id,
                };
                let existed = session
                    .subscriptions
                    .insert(filter.clone(), subscription)
                    .is_some();
                codes.push(options.qos);
                let send_retained = match options.retain_handling {
                    0 => true,
                    1 => !existed,
                    _ => false,
                };
                if send_retained {
                    replay.push((filter, options.qos));
                }
            }
            link.send(codec::sub_ack(kind::SUBACK, v, id, &codes));
            for (filter, qos) in replay {
                for publication in state.retained_matching(&filter) {
                    let delivery = Delivery {
                        qos: publication.qos.min(qos),
                        retain: true,
                        subscription_ids: subscription_id.into_iter().collect(),
                        publication,
                    };
                    if !link.deliver(delivery) {
                        return;
                    }
                }
            }
        });
    }

    /// Runs `f` under the router lock if this connection still holds its
    /// client id (after a takeover its packets are ignored).
    fn with_session(&self, f: impl FnOnce(&mut crate::router::State, &str)) {
        let Some(client_id) = self.client_id.as_deref() else {
            return;
        };
        let mut state = lock(&self.shared.state);
        if state.owns(client_id, self.conn) {
            f(&mut state, client_id);
        }
    }

    /// Ends the session: removes it (unless taken over, in which case the
    /// takeover already published the will) and publishes the will if the
    /// connection did not end with a normal DISCONNECT.
    fn finish(&mut self, end: End) {
        let Some(client_id) = self.client_id.take() else {
            return;
        };
        let mut state = lock(&self.shared.state);
        if !state.owns(&client_id, self.conn) {
            return;
        }
        let session = state.sessions.remove(&client_id).expect("owned session");
        if let (End::PublishWill, Some(will)) = (end, session.will) {
            state.route(restarted(will), Some(&client_id));
        }
    }
}

/// A will's expiry counts from when it is published.
fn restarted(mut will: Publication) -> Publication {
    will.received = Instant::now();
    will
}

/// Why reading a packet failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The peer closed the socket, or it failed.
    Closed,
    /// The deadline passed before a whole packet arrived.
    TimedOut,
    /// The fixed header announces more than [`MAX_PACKET`] bytes.
    TooLarge,
    /// The Remaining Length is not a valid Variable Byte Integer.
    Malformed,
}

/// Reads whole packets from a socket, with a deadline per packet.
pub(crate) struct PacketReader {
    stream: TcpStream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl PacketReader {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; 8 * 1024].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next packet: its first byte and its body (after the Remaining
    /// Length). A packet over [`MAX_PACKET`] is refused before its body is read.
    pub(crate) fn next(&mut self, deadline: Option<Instant>) -> Result<(u8, Vec<u8>), ReadError> {
        self.next_if(deadline, |_| true)
    }

    /// Like [`next`](Self::next), but fails with [`ReadError::Malformed`] as
    /// soon as the first byte is not one `accept` takes (a client that
    /// does not speak MQTT is not waited for).
    pub(crate) fn next_if(
        &mut self,
        deadline: Option<Instant>,
        accept: impl Fn(u8) -> bool,
    ) -> Result<(u8, Vec<u8>), ReadError> {
        let (header_len, remaining) = loop {
            let available = &self.buf[self.start..self.end];
            if available.first().is_some_and(|&first| !accept(first)) {
                return Err(ReadError::Malformed);
            }
            if available.len() >= 2 {
                match codec::varint(&available[1..]) {
                    Err(_) => return Err(ReadError::Malformed),
                    Ok(Some((len, used))) => break (1 + used, len as usize),
                    Ok(None) => {}
                }
            }
            self.fill(deadline)?;
        };
        if header_len + remaining > MAX_PACKET {
            return Err(ReadError::TooLarge);
        }
        let first = self.buf[self.start];
        self.start += header_len;
        let mut body = vec![0; remaining];
        let buffered = remaining.min(self.end - self.start);
        body[..buffered].copy_from_slice(&self.buf[self.start..self.start + buffered]);
        self.start += buffered;
        let mut filled = buffered;
        while filled < remaining {
            filled += read_some(&mut self.stream, &mut body[filled..], deadline)?;
        }
        Ok((first, body))
    }

    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), ReadError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.end += read_some(&mut self.stream, &mut self.buf[self.end..], deadline)?;
        Ok(())
    }
}

/// One `read` of at least one byte, before `deadline`.
fn read_some(
    stream: &mut TcpStream,
    dst: &mut [u8],
    deadline: Option<Instant>,
) -> Result<usize, ReadError> {
    loop {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ReadError::TimedOut);
                }
                Some(left.max(Duration::from_millis(1)))
            }
        };
        stream
            .set_read_timeout(timeout)
            .map_err(|_| ReadError::Closed)?;
        match stream.read(dst) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
}

/// Connection ids, for telling a connection from the one that took over its
/// client id.
pub(crate) fn next_conn_id(shared: &Shared) -> u64 {
    shared.next_conn.fetch_add(1, Ordering::Relaxed)
}
