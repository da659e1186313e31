//! A byte-level MQTT client over a `TcpStream`, for what rust-mqtt cannot or
//! will not send: MQTT 3.1.1, other protocol levels, invalid topic filters,
//! oversized and malformed packets, and a client that never reads.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::IO_TIMEOUT;

pub struct Raw {
    pub stream: TcpStream,
}

/// A packet as received: first byte and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    pub first: u8,
    pub body: Vec<u8>,
}

pub fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// First byte, Remaining Length, body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// CONNECT with protocol `level`, clean start, the given keep-alive, no will.
pub fn connect_packet(level: u8, client_id: &str, keep_alive: u16) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(level);
    body.push(0x02);
    body.extend(keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id));
    frame(0x10, &body)
}

/// SUBSCRIBE with one filter; `level` decides whether properties are written.
pub fn subscribe_packet(level: u8, id: u16, filter: &str, options: u8) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if level == 5 {
        body.push(0);
    }
    body.extend(string(filter));
    body.push(options);
    frame(0x82, &body)
}

/// A QoS 0 PUBLISH.
pub fn publish_packet(level: u8, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    frame(0x30, &body)
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("tcp connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self { stream }
    }

    /// Connects and completes the CONNECT/CONNACK handshake at `level`.
    pub fn session(addr: SocketAddr, level: u8, client_id: &str) -> Self {
        let mut raw = Self::connect(addr);
        raw.send(&connect_packet(level, client_id, 0));
        let connack = raw.read().expect("CONNACK");
        assert_eq!(connack.first, 0x20, "CONNACK expected: {connack:?}");
        assert_eq!(
            connack.body[..2],
            [0, 0],
            "accepted, no session: {connack:?}"
        );
        raw
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one packet (`Err` when the broker closed the connection).
    pub fn read(&mut self) -> io::Result<RawPacket> {
        let mut first = [0u8; 1];
        self.stream.read_exact(&mut first)?;
        let mut len = 0usize;
        for shift in 0..4 {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b)?;
            len |= usize::from(b[0] & 0x7F) << (7 * shift);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok(RawPacket {
            first: first[0],
            body,
        })
    }

    /// Asserts the broker closes the connection, after at most the packets
    /// it sends first (returned).
    pub fn expect_closed(&mut self) -> Vec<RawPacket> {
        let mut before = Vec::new();
        loop {
            match self.read() {
                Ok(packet) => before.push(packet),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return before,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return before,
                Err(e) => panic!("expected the broker to close, got {e} after {before:?}"),
            }
            assert!(before.len() < 16, "still open after {before:?}");
        }
    }
}
