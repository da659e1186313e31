//! The writing side of one client connection: a bounded outgoing queue, the
//! QoS 1/2 messages in flight towards the client, and the writer thread that
//! drains the queue onto the socket.
//!
//! Everything the broker sends to a client goes through this queue, in order:
//! the connection's own replies (CONNACK, PUBACK, SUBACK, ...) are always
//! queued; deliveries routed from other clients are bounded (see
//! [`MAX_QUEUED`], [`MAX_QUEUED_BYTES`]) so that a client that does not read
//! never makes the router wait or grow without limit.

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::codec::{self, reason, OutPublish, Version};
use crate::router::{lock, Delivery};

/// Deliveries queued for one client before the broker stops queueing more.
pub(crate) const MAX_QUEUED: usize = 4096;
/// Payload bytes queued for one client before the broker stops queueing more.
pub(crate) const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of the connection's own replies queued: a client that keeps asking (PINGREQ, QoS 1
/// publishes) without reading the answers is closed past this.
pub(crate) const MAX_REPLY_BYTES: usize = 1024 * 1024;

enum Out {
    /// A packet already encoded (the connection's own replies).
    Packet(Vec<u8>),
    /// A message routed to this client, encoded when it is written.
    Deliver(Delivery),
}

struct Outbox {
    items: VecDeque<Out>,
    queued: usize,
    queued_bytes: usize,
    /// Bytes of `Out::Packet`s queued.
    reply_bytes: usize,
    /// Packet id -> QoS of the messages sent and not yet acknowledged.
    inflight: HashMap<u16, u8>,
    next_id: u16,
    version: Version,
    receive_maximum: u16,
    maximum_packet_size: u32,
    /// No more deliveries; the writer ends once the queue is empty.
    closing: bool,
}

impl Outbox {
    fn allocate_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }
}

/// One connection's outgoing side, shared by its reader, the router and the
/// writer thread.
pub(crate) struct Link {
    /// A handle on the socket, to shut it down from any thread.
    stream: TcpStream,
    out: Mutex<Outbox>,
    ready: Condvar,
    dropped: AtomicU64,
}

/// What a PUBREC from the client calls for.
pub(crate) enum Pubrec {
    /// Answer with PUBREL carrying this reason code.
    Release(u8),
    /// Nothing (the client refused the message: the exchange is over).
    Nothing,
}

impl Link {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            out: Mutex::new(Outbox {
                items: VecDeque::new(),
                queued: 0,
                queued_bytes: 0,
                reply_bytes: 0,
                inflight: HashMap::new(),
                next_id: 0,
                version: Version::V5,
                receive_maximum: u16::MAX,
                maximum_packet_size: u32::MAX,
                closing: false,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records what the client's CONNECT asked for.
    pub(crate) fn configure(&self, version: Version, receive_maximum: u16, max_packet: u32) {
        let mut out = lock(&self.out);
        out.version = version;
        out.receive_maximum = receive_maximum;
        out.maximum_packet_size = max_packet;
    }

    /// Queues one of the connection's own packets (never dropped, unless the
    /// connection is closing). A client whose unread replies pass
    /// [`MAX_REPLY_BYTES`] is not reading: its connection is closed.
    pub(crate) fn send(&self, packet: Vec<u8>) {
        let mut out = lock(&self.out);
        if out.closing {
            return;
        }
        if out.reply_bytes + packet.len() > MAX_REPLY_BYTES {
            drop(out);
            self.kill();
            return;
        }
        out.reply_bytes += packet.len();
        out.items.push_back(Out::Packet(packet));
        self.ready.notify_all();
    }

    /// Queues a delivery. When the queue is full a QoS 0 message is dropped
    /// (and counted); for QoS 1 or 2 the client is stuck, and its connection
    /// is closed at once (its will follows). Returns `false` in that case.
    pub(crate) fn deliver(&self, delivery: Delivery) -> bool {
        let mut out = lock(&self.out);
        if out.closing {
            return true;
        }
        let size = delivery.publication.payload.len();
        if out.queued >= MAX_QUEUED || out.queued_bytes + size > MAX_QUEUED_BYTES {
            if delivery.qos == 0 {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            drop(out);
            self.kill();
            return false;
        }
        out.queued += 1;
        out.queued_bytes += size;
        out.items.push_back(Out::Deliver(delivery));
        self.ready.notify_all();
        true
    }

    /// Messages dropped for this client (full queue, expired, or bigger than
    /// the client's Maximum Packet Size).
    #[cfg_attr(not(test), allow(dead_code))] // read by tests only, for now
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: the id is free.
    pub(crate) fn completed(&self, id: u16, qos: u8) {
        let mut out = lock(&self.out);
        if out.inflight.get(&id) == Some(&qos) {
            out.inflight.remove(&id);
            self.ready.notify_all();
        }
    }

    /// PUBREC from the client.
    pub(crate) fn pubrec(&self, id: u16, code: u8) -> Pubrec {
        let mut out = lock(&self.out);
        match out.inflight.get(&id) {
            Some(2) if code >= 0x80 => {
                out.inflight.remove(&id);
                self.ready.notify_all();
                Pubrec::Nothing
            }
            Some(2) => Pubrec::Release(reason::SUCCESS),
            _ => Pubrec::Release(reason::PACKET_ID_NOT_FOUND),
        }
    }

    /// Stops queueing deliveries, drops the queued ones, queues a last
    /// DISCONNECT with `code` (MQTT 5 only), and wakes the reader; the writer
    /// sends what is queued and closes the socket. Idempotent.
    pub(crate) fn close(&self, code: Option<u8>) {
        let mut out = lock(&self.out);
        if !out.closing {
            out.closing = true;
            out.items.retain(|item| matches!(item, Out::Packet(_)));
            out.queued = 0;
            out.queued_bytes = 0;
            if let (Some(code), Version::V5) = (code, out.version) {
                let packet = codec::disconnect(code);
                out.reply_bytes += packet.len();
                out.items.push_back(Out::Packet(packet));
            }
            self.ready.notify_all();
        }
        drop(out);
        // Ends a read blocked in the reader thread; the writer can still send.
        let _ = self.stream.shutdown(Shutdown::Read);
    }

    /// Closes the socket in both directions at once (also ends a write that is
    /// blocked on a client that does not read).
    pub(crate) fn kill(&self) {
        {
            let mut out = lock(&self.out);
            out.closing = true;
            out.items.clear();
            out.queued = 0;
            out.queued_bytes = 0;
            out.reply_bytes = 0;
            self.ready.notify_all();
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// The writer thread: writes queued packets until the link closes.
    pub(crate) fn run_writer(self: Arc<Self>, mut stream: TcpStream) {
        while let Some(packet) = self.next_packet() {
            if stream.write_all(&packet).is_err() {
                break;
            }
        }
        // Normal end (closing) or a write error/timeout: either way, done.
        self.kill();
    }

    /// Waits for the next packet to write; `None` once closing and drained.
    fn next_packet(&self) -> Option<Vec<u8>> {
        let mut out = lock(&self.out);
        loop {
            let blocked = match out.items.front() {
                None if out.closing => return None,
                None => true,
                // Receive Maximum: no more unacknowledged QoS 1/2 messages.
                Some(Out::Deliver(d)) => {
                    d.qos > 0 && out.inflight.len() >= usize::from(out.receive_maximum)
                }
                Some(Out::Packet(_)) => false,
            };
            // Receive Maximum holds back deliveries only: a reply queued behind a held
            // delivery (a PINGRESP, a PUBACK) goes out first. Deliveries keep their order.
            if blocked {
                let reply = out
                    .items
                    .iter()
                    .position(|item| matches!(item, Out::Packet(_)));
                if let Some(Out::Packet(packet)) = reply.and_then(|i| out.items.remove(i)) {
                    out.reply_bytes -= packet.len();
                    return Some(packet);
                }
            }
            if blocked {
                out = self
                    .ready
                    .wait(out)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            match out.items.pop_front() {
                Some(Out::Packet(packet)) => {
                    out.reply_bytes -= packet.len();
                    return Some(packet);
                }
                Some(Out::Deliver(d)) => {
                    out.queued -= 1;
                    out.queued_bytes -= d.publication.payload.len();
                    let Some(expiry) = d.publication.remaining_expiry() else {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let version = out.version;
                    let mut publish = OutPublish {
                        topic: &d.publication.topic,
                        payload: &d.publication.payload,
                        qos: d.qos,
                        retain: d.retain,
                        packet_id: 0,
                        forward: &d.publication.props.forward,
                        expiry,
                        subscription_ids: &d.subscription_ids,
                    };
                    if publish.encoded_len(version) as u64 > u64::from(out.maximum_packet_size) {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if d.qos > 0 {
                        publish.packet_id = out.allocate_id();
                        out.inflight.insert(publish.packet_id, d.qos);
                    }
                    drop(out);
                    return Some(publish.encode(version));
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Instant;

    use super::*;
    use crate::codec::MessageProps;
    use crate::router::Publication;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener.accept().unwrap().0, client)
    }

    fn delivery(qos: u8, size: usize) -> Delivery {
        Delivery {
            publication: Arc::new(Publication {
                topic: "t".into(),
                payload: vec![0; size],
                qos,
                retain: false,
                props: MessageProps::default(),
                received: Instant::now(),
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
        }
    }

    #[test]
    fn a_full_queue_drops_qos_0_and_closes_for_qos_1() {
        let (server, _client) = pair();
        let link = Link::new(server);
        for _ in 0..MAX_QUEUED {
            assert!(link.deliver(delivery(0, 1)));
        }
        assert_eq!(link.dropped(), 0);
        assert!(link.deliver(delivery(0, 1)), "QoS 0 dropped, link open");
        assert_eq!(link.dropped(), 1);
        assert!(!link.deliver(delivery(1, 1)), "QoS 1 does not fit: closed");
        assert!(lock(&link.out).closing);
    }

    #[test]
    fn the_byte_bound_applies_too() {
        let (server, _client) = pair();
        let link = Link::new(server);
        assert!(link.deliver(delivery(0, MAX_QUEUED_BYTES)));
        assert!(link.deliver(delivery(0, 1)));
        assert_eq!(link.dropped(), 1);
    }

    #[test]
    fn replies_a_client_does_not_read_are_bounded() {
        let (server, _client) = pair();
        let link = Link::new(server);
        let pingresp = vec![0xd0, 0x00];
        for _ in 0..MAX_REPLY_BYTES / 2 {
            link.send(pingresp.clone());
        }
        assert!(!lock(&link.out).closing);
        link.send(pingresp);
        let out = lock(&link.out);
        assert!(out.closing && out.items.is_empty(), "closed past the bound");
    }

    #[test]
    fn a_reply_overtakes_a_delivery_held_by_receive_maximum() {
        let (server, _client) = pair();
        let link = Link::new(server);
        link.configure(Version::V5, 1, u32::MAX);
        lock(&link.out).inflight.insert(7, 1);
        assert!(link.deliver(delivery(1, 1)));
        link.send(vec![0xd0, 0x00]);
        assert_eq!(
            link.next_packet(),
            Some(vec![0xd0, 0x00]),
            "the PINGRESP goes first"
        );
        link.completed(7, 1);
        let held = link
            .next_packet()
            .expect("the delivery, now that an id is free");
        assert_eq!(held[0] & 0xf0, 0x30, "a PUBLISH");
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_zero() {
        let (server, _client) = pair();
        let link = Link::new(server);
        let mut out = lock(&link.out);
        out.inflight.insert(1, 1);
        out.inflight.insert(3, 2);
        assert_eq!(out.allocate_id(), 2);
        assert_eq!(out.allocate_id(), 4);
        out.next_id = u16::MAX - 1;
        assert_eq!(out.allocate_id(), u16::MAX);
        assert_eq!(out.allocate_id(), 2, "wraps past 0 and the ids in flight");
    }
}
