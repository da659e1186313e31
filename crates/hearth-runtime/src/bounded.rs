//! A byte stream under the MQTT client that never lets it see a packet larger than a bound.
//!
//! The device announces its Maximum Packet Size in CONNECT, and an MQTT 5 broker must not send
//! it anything larger (mosquitto drops such a message for this client). A broker that sends one
//! anyway would make rust-mqtt refuse the packet and end the session, and with a retained
//! message the broker replays it at every connection: the device would never stay online. This
//! stream reads the fixed header of every packet as it arrives; a packet whose remaining
//! length is over the bound is read and thrown away in pieces the size of the caller's buffer,
//! never held, and counted ([`Dropped`]). Everything else passes through unchanged.
//!
//! Cancel-safe as long as the inner stream's `read` is: every await is one inner read, and the
//! state is updated only after it completes.

use alloc::rc::Rc;
use core::cell::Cell;

use embedded_io_async::{ErrorType, Read, Write};

/// What the stream dropped: how many packets, and the size of the last one.
#[derive(Debug, Default)]
pub struct Dropped {
    count: Cell<u32>,
    last_len: Cell<u32>,
}

impl Dropped {
    /// Packets dropped so far.
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The remaining length of the last packet dropped.
    pub fn last_len(&self) -> u32 {
        self.last_len.get()
    }
}

/// `inner`, with every MQTT packet larger than `max_packet` bytes (fixed header included, as
/// the Maximum Packet Size of MQTT 5 counts) skipped.
pub struct Bounded<T> {
    inner: T,
    max_packet: u32,
    dropped: Rc<Dropped>,
    /// The fixed header being collected (type byte and up to 4 length bytes).
    header: [u8; 5],
    header_len: usize,
    /// The header is complete and accepted (or malformed and handed on as it is).
    header_ready: bool,
    /// How much of a ready header has been handed to the reader.
    header_sent: usize,
    /// Body bytes of the current packet still to pass through.
    body_left: u32,
    /// Bytes of a dropped packet still to discard.
    skip_left: u32,
}

impl<T> Bounded<T> {
    /// Wrap `inner`; the counter of what it drops is shared with `dropped`.
    pub fn new(inner: T, max_packet: u32, dropped: Rc<Dropped>) -> Self {
        Self {
            inner,
            max_packet,
            dropped,
            header: [0; 5],
            header_len: 0,
            header_ready: false,
            header_sent: 0,
            body_left: 0,
            skip_left: 0,
        }
    }

    /// The header collected so far, if it is complete: its remaining length, or `None` when
    /// its length field is malformed (more than 4 bytes).
    fn header_done(&self) -> Option<Option<u32>> {
        let len_bytes = self.header.get(1..self.header_len)?;
        let last = *len_bytes.last()?;
        if last & 0x80 != 0 {
            // More length bytes follow, unless there already are four.
            return (len_bytes.len() >= 4).then_some(None);
        }
        let mut value = 0u32;
        for (i, b) in len_bytes.iter().enumerate() {
            value |= u32::from(b & 0x7f) << (7 * i);
        }
        Some(Some(value))
    }
}

impl<T: ErrorType> ErrorType for Bounded<T> {
    type Error = T::Error;
}

impl<T: Read> Read for Bounded<T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.skip_left > 0 {
                let want = buf.len().min(self.skip_left as usize);
                let n = self.inner.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Ok(0);
                }
                self.skip_left -= n as u32;
                continue;
            }
            if self.header_ready {
                let rest = &self.header[self.header_sent..self.header_len];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                self.header_sent += n;
                if self.header_sent == self.header_len {
                    self.header_ready = false;
                    self.header_len = 0;
                    self.header_sent = 0;
                }
                return Ok(n);
            }
            if self.body_left > 0 {
                let want = buf.len().min(self.body_left as usize);
                let n = self.inner.read(&mut buf[..want]).await?;
                self.body_left -= n as u32;
                return Ok(n);
            }
            // A packet boundary: collect the next fixed header, one byte at a time.
            let mut one = [0u8; 1];
            let n = self.inner.read(&mut one).await?;
            if n == 0 {
                if self.header_len == 0 {
                    return Ok(0);
                }
                // The stream ended inside a header: hand on what came, then the end.
                self.header_ready = true;
                continue;
            }
            self.header[self.header_len] = one[0];
            self.header_len += 1;
            match self.header_done() {
                None => continue,
                // Malformed: hand it on as it is, for the client to refuse.
                Some(None) => self.header_ready = true,
                Some(Some(len)) if len.saturating_add(self.header_len as u32) > self.max_packet => {
                    self.dropped
                        .count
                        .set(self.dropped.count.get().saturating_add(1));
                    self.dropped.last_len.set(len);
                    self.header_len = 0;
                    self.skip_left = len;
                }
                Some(Some(len)) => {
                    self.body_left = len;
                    self.header_ready = true;
                }
            }
        }
    }
}

impl<T: Write> Write for Bounded<T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.inner.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use embassy_futures::block_on;

    /// A stream that hands out `data` in pieces of at most `chunk` bytes.
    struct Script {
        data: Vec<u8>,
        at: usize,
        chunk: usize,
    }

    impl ErrorType for Script {
        type Error = core::convert::Infallible;
    }

    impl Read for Script {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let mut len = body.len();
        loop {
            let mut b = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                b |= 0x80;
            }
            out.push(b);
            if len == 0 {
                break;
            }
        }
        out.extend_from_slice(body);
        out
    }

    fn read_all(b: &mut Bounded<Script>, buf_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; buf_len];
        loop {
            let n = block_on(b.read(&mut buf)).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn packets_over_the_bound_vanish_and_the_rest_pass_unchanged() {
        let small = packet(0x30, b"\x00\x05cmnd/ok");
        let huge = packet(0x31, &vec![b'x'; 300_000]);
        let ping = packet(0xd0, b"");
        let exact = packet(0x30, &vec![b'y'; 1000]);
        let mut stream = Vec::new();
        for p in [&small, &huge, &ping, &huge, &exact] {
            stream.extend_from_slice(p);
        }
        let mut expect = Vec::new();
        for p in [&small, &ping, &exact] {
            expect.extend_from_slice(p);
        }
        for (chunk, buf_len) in [(1, 1), (7, 3), (4096, 4096), (1 << 20, 512)] {
            let dropped = Rc::new(Dropped::default());
            let script = Script {
                data: stream.clone(),
                at: 0,
                chunk,
            };
            // The largest packet that passes is `exact`: 1000 bytes and a 3-byte header.
            let mut b = Bounded::new(script, 1003, dropped.clone());
            assert_eq!(
                read_all(&mut b, buf_len),
                expect,
                "chunk {chunk} buf {buf_len}"
            );
            assert_eq!(dropped.count(), 2);
            assert_eq!(dropped.last_len(), 300_000);
        }
    }

    #[test]
    fn a_malformed_length_is_handed_on_for_the_client_to_refuse() {
        let stream = vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
        let dropped = Rc::new(Dropped::default());
        let script = Script {
            data: stream.clone(),
            at: 0,
            chunk: 64,
        };
        let mut b = Bounded::new(script, 1000, dropped.clone());
        assert_eq!(read_all(&mut b, 64), stream);
        assert_eq!(dropped.count(), 0);
    }
}
