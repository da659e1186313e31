//! Driver for the Peacefair PZEM-004T v3.0 single-phase energy meter, a Modbus-RTU slave on a
//! UART at 9600 baud, 8N1.
//!
//! # Protocol (PZEM-004T v3.0 manual, Modbus-RTU)
//!
//! A request is `address, function, register (2 bytes, big endian), count or value (2 bytes,
//! big endian), CRC low, CRC high`; the CRC is CRC-16/MODBUS ([`crc16`]) over everything before
//! it, sent low byte first. Address [`GENERAL_ADDRESS`] (0xF8) reaches the one meter on a
//! point-to-point link whatever its own address (1..=0xF7) is.
//!
//! * Read input registers (0x04) 0x0000..=0x0009 ([`Request::ReadMeasurements`]): the reply is
//!   `address, 0x04, 20, ten registers, CRC` (25 bytes). Registers: voltage (0.1 V), current
//!   (0.001 A, 32 bits), active power (0.1 W, 32 bits), energy (1 Wh, 32 bits), frequency
//!   (0.1 Hz), power factor (0.01), alarm (0xFFFF = power above the alarm threshold). The
//!   32-bit values are sent **low register first**, each register big endian.
//! * Read holding register (0x03) 0x0002 ([`Request::ReadAddress`]): the reply is `address,
//!   0x03, 2, 0x00, slave address, CRC` (7 bytes).
//! * Reset energy (0x42, no register, [`Request::ResetEnergy`]): `address, 0x42, CRC`; the
//!   reply echoes it (4 bytes).
//! * An error is reported as `address, function | 0x80, exception code, CRC` (5 bytes).
//!
//! # Split transactions
//!
//! [`Pzem::request`] writes a request and returns; [`Pzem::complete`], called later (the meter
//! answers within some tens of milliseconds; the caller decides how long to wait, the reference
//! waited 500 ms), takes **only the bytes already received** and parses them. Neither call
//! waits for the meter, so the caller's loop never stalls on a missing or mute meter. This is
//! why the UART must implement [`ReadReady`] besides [`Read`] and [`Write`] (esp-hal's `Uart`
//! does): `Read::read` alone waits for the first byte. The bounded wait between the two calls
//! is the caller's.

use core::fmt;

use embedded_io_async::{Read, ReadReady, Write};

/// The address every PZEM answers to on a point-to-point link.
pub const GENERAL_ADDRESS: u8 = 0xF8;
/// The meter's fixed line speed.
pub const BAUD: u32 = 9600;
/// Length of a measurement reply (ten registers).
pub const MEASUREMENT_REPLY_LEN: usize = 25;
/// Length of an address reply (one register).
pub const ADDRESS_REPLY_LEN: usize = 7;
/// Length of an exception reply.
pub const EXCEPTION_REPLY_LEN: usize = 5;
/// At most this many stale bytes are discarded before a request (a line that keeps delivering
/// bytes must not hold the caller).
const MAX_DISCARD: usize = 256;
/// Receive buffer: the longest reply plus room to notice an over-long one.
const BUF_LEN: usize = 32;

/// Function codes.
const FN_READ_HOLDING: u8 = 0x03;
const FN_READ_INPUT: u8 = 0x04;
const FN_RESET_ENERGY: u8 = 0x42;

/// CRC-16/MODBUS: initial value 0xFFFF, reflected polynomial 0xA001 (0x8005), no final XOR.
/// On the wire the low byte goes first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0xA001;
            }
        }
    }
    crc
}

/// Whether `frame` (at least 3 bytes) ends with the correct CRC of the bytes before it.
pub fn crc_ok(frame: &[u8]) -> bool {
    match frame.len().checked_sub(2) {
        Some(n) if n >= 1 => crc16(&frame[..n]).to_le_bytes() == [frame[n], frame[n + 1]],
        _ => false,
    }
}

/// An 8-byte request: `address, function, register, value, CRC`.
pub fn frame(address: u8, function: u8, register: u16, value: u16) -> [u8; 8] {
    let [rh, rl] = register.to_be_bytes();
    let [vh, vl] = value.to_be_bytes();
    let mut f = [address, function, rh, rl, vh, vl, 0, 0];
    let [cl, ch] = crc16(&f[..6]).to_le_bytes();
    f[6] = cl;
    f[7] = ch;
    f
}

/// What the driver can ask the meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Read the slave address (holding register 0x0002).
    ReadAddress,
    /// Read the ten measurement registers (input registers 0x0000..=0x0009).
    ReadMeasurements,
    /// Reset the energy counter to 0.
    ResetEnergy,
}

impl Request {
    /// The length of a successful reply.
    pub const fn reply_len(self) -> usize {
        match self {
            Request::ReadAddress => ADDRESS_REPLY_LEN,
            Request::ReadMeasurements => MEASUREMENT_REPLY_LEN,
            Request::ResetEnergy => 4,
        }
    }

    /// The function code.
    pub const fn function(self) -> u8 {
        match self {
            Request::ReadAddress => FN_READ_HOLDING,
            Request::ReadMeasurements => FN_READ_INPUT,
            Request::ResetEnergy => FN_RESET_ENERGY,
        }
    }

    /// The request frame for a meter at `address`; returns the buffer and its used length.
    pub fn encode(self, address: u8) -> ([u8; 8], usize) {
        match self {
            Request::ReadAddress => (frame(address, FN_READ_HOLDING, 0x0002, 1), 8),
            Request::ReadMeasurements => (frame(address, FN_READ_INPUT, 0x0000, 10), 8),
            Request::ResetEnergy => {
                let [cl, ch] = crc16(&[address, FN_RESET_ENERGY]).to_le_bytes();
                ([address, FN_RESET_ENERGY, cl, ch, 0, 0, 0, 0], 4)
            }
        }
    }
}

/// One reading of the measurement registers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// RMS voltage, V (resolution 0.1 V).
    pub voltage_v: f32,
    /// RMS current, A (resolution 0.001 A).
    pub current_a: f32,
    /// Active power, W (resolution 0.1 W).
    pub power_w: f32,
    /// Energy counter, Wh (since the last reset).
    pub energy_wh: u32,
    /// Mains frequency, Hz (resolution 0.1 Hz).
    pub frequency_hz: f32,
    /// Power factor, 0.00..=1.00.
    pub power_factor: f32,
    /// The power is above the meter's alarm threshold.
    pub alarm: bool,
}

/// A parsed successful reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    /// The meter's own slave address.
    Address(u8),
    /// The measurement registers.
    Measurement(Measurement),
    /// The energy counter was reset.
    EnergyReset,
}

/// What can go wrong. `E` is the UART's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART failed.
    Io(E),
    /// [`Pzem::complete`] without an outstanding [`Pzem::request`].
    NoRequest,
    /// Nothing was received (meter absent, unpowered, wrong wiring or not yet answered).
    NoResponse,
    /// A reply of the wrong length (truncated, or with extra bytes).
    Length {
        /// Bytes received (capped at the buffer size).
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The CRC does not match: the frame was garbled.
    Crc,
    /// The meter answered with a Modbus exception.
    Exception {
        /// The function code with bit 7 set (0x83, 0x84, 0x86, 0xC2).
        function: u8,
        /// The exception code (1 illegal function, 2 illegal address, 3 illegal data,
        /// 4 slave error).
        code: u8,
    },
    /// A well-formed frame that does not answer the request (other address, function or byte
    /// count, an address out of range).
    Unexpected,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "UART error: {e:?}"),
            Error::NoRequest => f.write_str("no request outstanding"),
            Error::NoResponse => f.write_str("no response from the PZEM"),
            Error::Length { got, expected } => {
                write!(f, "reply of {got} bytes, expected {expected}")
            }
            Error::Crc => f.write_str("reply CRC mismatch"),
            Error::Exception { function, code } => {
                write!(f, "Modbus exception {code} (function {function:#04x})")
            }
            Error::Unexpected => f.write_str("reply does not match the request"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Parses a complete reply `frame` to `request` sent to `sent_to`. A request to
/// [`GENERAL_ADDRESS`] accepts a reply from any address; otherwise the addresses must match.
pub fn parse_reply<E>(sent_to: u8, request: Request, frame: &[u8]) -> Result<Reply, Error<E>> {
    if frame.is_empty() {
        return Err(Error::NoResponse);
    }
    let function = request.function();
    let is_exception = frame.len() >= 2 && frame[1] == function | 0x80;
    let expected = if is_exception {
        EXCEPTION_REPLY_LEN
    } else {
        request.reply_len()
    };
    if frame.len() != expected {
        return Err(Error::Length {
            got: frame.len(),
            expected,
        });
    }
    if !crc_ok(frame) {
        return Err(Error::Crc);
    }
    if sent_to != GENERAL_ADDRESS && frame[0] != sent_to {
        return Err(Error::Unexpected);
    }
    if is_exception {
        return Err(Error::Exception {
            function: frame[1],
            code: frame[2],
        });
    }
    if frame[1] != function {
        return Err(Error::Unexpected);
    }
    let u16_at = |i: usize| u16::from_be_bytes([frame[i], frame[i + 1]]);
    // 32-bit values: low register first.
    let u32_at = |i: usize| u32::from(u16_at(i)) | (u32::from(u16_at(i + 2)) << 16);
    match request {
        Request::ReadAddress => {
            let address = frame[4];
            if frame[2] != 2 || frame[3] != 0 || !(1..GENERAL_ADDRESS).contains(&address) {
                return Err(Error::Unexpected);
            }
            Ok(Reply::Address(address))
        }
        Request::ReadMeasurements => {
            if frame[2] != 20 {
                return Err(Error::Unexpected);
            }
            Ok(Reply::Measurement(Measurement {
                voltage_v: f32::from(u16_at(3)) / 10.0,
                current_a: u32_at(5) as f32 / 1000.0,
                power_w: u32_at(9) as f32 / 10.0,
                energy_wh: u32_at(13),
                frequency_hz: f32::from(u16_at(17)) / 10.0,
                power_factor: f32::from(u16_at(19)) / 100.0,
                alarm: u16_at(21) != 0,
            }))
        }
        Request::ResetEnergy => Ok(Reply::EnergyReset),
    }
}

/// A PZEM-004T v3.0 on a UART (already set to 9600 baud, 8N1).
#[derive(Debug)]
pub struct Pzem<U> {
    uart: U,
    address: u8,
    pending: Option<(u8, Request)>,
}

impl<U> Pzem<U> {
    /// A meter addressed through [`GENERAL_ADDRESS`] until [`Request::ReadAddress`] learns its
    /// own address.
    pub fn new(uart: U) -> Self {
        Self::with_address(uart, GENERAL_ADDRESS)
    }

    /// A meter at a known `address`.
    pub fn with_address(uart: U, address: u8) -> Self {
        Self {
            uart,
            address,
            pending: None,
        }
    }

    /// The address requests go to.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Address later requests to `address` (e.g. back to [`GENERAL_ADDRESS`] after a failure).
    pub fn set_address(&mut self, address: u8) {
        self.address = address;
    }

    /// The request waiting for [`complete`](Self::complete), if any.
    pub fn pending(&self) -> Option<Request> {
        self.pending.map(|(_, r)| r)
    }

    /// Gives the UART back.
    pub fn release(self) -> U {
        self.uart
    }
}

impl<U: Read + Write + ReadReady> Pzem<U> {
    /// Discards whatever is already buffered (a late or unsolicited answer, line noise), then
    /// writes `request`. Returns once the frame is handed to the UART; the answer is collected
    /// by [`complete`](Self::complete).
    pub async fn request(&mut self, request: Request) -> Result<(), Error<U::Error>> {
        self.pending = None;
        self.discard().await?;
        let (bytes, len) = request.encode(self.address);
        self.uart
            .write_all(&bytes[..len])
            .await
            .map_err(Error::Io)?;
        self.uart.flush().await.map_err(Error::Io)?;
        self.pending = Some((self.address, request));
        Ok(())
    }

    /// Takes the bytes received since [`request`](Self::request) without waiting for more and
    /// parses them as its reply. A [`Reply::Address`] becomes the address of later requests.
    /// Whatever the outcome, the request is no longer outstanding.
    pub async fn complete(&mut self) -> Result<Reply, Error<U::Error>> {
        let (sent_to, request) = self.pending.take().ok_or(Error::NoRequest)?;
        let mut buf = [0u8; BUF_LEN];
        let mut len = 0;
        while len < BUF_LEN && self.uart.read_ready().map_err(Error::Io)? {
            match self.uart.read(&mut buf[len..]).await.map_err(Error::Io)? {
                0 => break,
                n => len += n.min(BUF_LEN - len),
            }
        }
        if len == BUF_LEN {
            // Longer than any reply: drop the rest too, so the next exchange starts clean.
            self.discard().await?;
        }
        let reply = parse_reply(sent_to, request, &buf[..len])?;
        if let Reply::Address(a) = reply {
            self.address = a;
        }
        Ok(reply)
    }

    async fn discard(&mut self) -> Result<(), Error<U::Error>> {
        let mut scratch = [0u8; 16];
        let mut dropped = 0;
        while dropped < MAX_DISCARD && self.uart.read_ready().map_err(Error::Io)? {
            match self.uart.read(&mut scratch).await.map_err(Error::Io)? {
                0 => break,
                n => dropped += n,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::vec::Vec;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        panic!("future still pending");
    }

    /// A second, independent CRC: table-free, shifting the *unreflected* polynomial 0x8005
    /// through bit-reversed bytes and reversing the result.
    fn crc_msb_first(data: &[u8]) -> u16 {
        let mut crc: u16 = 0xFFFF;
        for &b in data {
            crc ^= u16::from(b.reverse_bits()) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
        }
        crc.reverse_bits()
    }

    fn with_crc(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&crc_msb_first(body).to_le_bytes());
        v
    }

    #[test]
    fn crc_published_vectors() {
        // The CRC-16/MODBUS check value.
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert_eq!(crc16(b""), 0xFFFF);
        // The textbook Modbus request "read 10 holding registers of slave 1".
        assert_eq!(
            frame(0x01, 0x03, 0, 10),
            [0x01, 0x03, 0, 0, 0, 0x0A, 0xC5, 0xCD]
        );
        // The reference driver's vectors.
        assert_eq!(
            Request::ReadAddress.encode(0xF8),
            ([0xF8, 0x03, 0x00, 0x02, 0x00, 0x01, 0x31, 0xA3], 8)
        );
        assert_eq!(
            Request::ReadMeasurements.encode(0xF8),
            ([0xF8, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x64, 0x64], 8)
        );
        assert_eq!(
            Request::ReadMeasurements.encode(0x01),
            ([0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D], 8)
        );
    }

    #[test]
    fn crc_agrees_with_an_independent_implementation() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..64 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert_eq!(crc16(&data), crc_msb_first(&data), "{data:02x?}");
            assert!(crc_ok(&with_crc(&data)) || data.is_empty());
        }
        assert!(!crc_ok(&[0x01]));
        assert!(!crc_ok(&[]));
    }

    /// The manual's example reply: 220.0 V, 1.000 A, 220.0 W, 0 Wh, 50.0 Hz, pf 1.00, no alarm.
    fn manual_example() -> Vec<u8> {
        with_crc(&[
            0x01, 0x04, 0x14, 0x08, 0x98, 0x03, 0xE8, 0x00, 0x00, 0x08, 0x98, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x01, 0xF4, 0x00, 0x64, 0x00, 0x00,
        ])
    }

    #[test]
    fn decodes_the_manual_example() {
        let r = parse_reply::<()>(0x01, Request::ReadMeasurements, &manual_example());
        assert_eq!(
            r,
            Ok(Reply::Measurement(Measurement {
                voltage_v: 220.0,
                current_a: 1.0,
                power_w: 220.0,
                energy_wh: 0,
                frequency_hz: 50.0,
                power_factor: 1.0,
                alarm: false,
            }))
        );
    }

    #[test]
    fn thirty_two_bit_values_are_low_register_first() {
        // current 0x0001_86A0 = 100000 mA, power 0x0003_0D40 = 200000 (20000.0 W),
        // energy 0x0098_9680 = 10 000 000 Wh, alarm on.
        let f = with_crc(&[
            0xF8, 0x04, 0x14, 0x09, 0x12, 0x86, 0xA0, 0x00, 0x01, 0x0D, 0x40, 0x00, 0x03, 0x96,
            0x80, 0x00, 0x98, 0x01, 0xF3, 0x00, 0x5F, 0xFF, 0xFF,
        ]);
        let Ok(Reply::Measurement(m)) = parse_reply::<()>(0xF8, Request::ReadMeasurements, &f)
        else {
            panic!("not parsed");
        };
        assert_eq!(m.voltage_v, 232.2);
        assert_eq!(m.current_a, 100.0);
        assert_eq!(m.power_w, 20_000.0);
        assert_eq!(m.energy_wh, 10_000_000);
        assert_eq!(m.frequency_hz, 49.9);
        assert_eq!(m.power_factor, 0.95);
        assert!(m.alarm);
    }

    #[test]
    fn rejects_bad_frames() {
        let good = manual_example();
        let p = |f: &[u8]| parse_reply::<()>(0x01, Request::ReadMeasurements, f);
        assert_eq!(p(&[]), Err(Error::NoResponse));
        assert_eq!(
            p(&good[..24]),
            Err(Error::Length {
                got: 24,
                expected: 25
            })
        );
        let mut bad = good.clone();
        bad[4] ^= 0x01;
        assert_eq!(p(&bad), Err(Error::Crc));
        // Another slave answering.
        let mut other = good.clone();
        other[0] = 0x02;
        let other = with_crc(&other[..23]);
        assert_eq!(p(&other), Err(Error::Unexpected));
        // ...is fine when asked through the general address.
        assert!(parse_reply::<()>(0xF8, Request::ReadMeasurements, &other).is_ok());
        // Wrong byte count.
        let mut count = good.clone();
        count[2] = 0x12;
        assert_eq!(p(&with_crc(&count[..23])), Err(Error::Unexpected));
        // Exceptions of each function the reference knows.
        for (req, func) in [
            (Request::ReadMeasurements, 0x84),
            (Request::ReadAddress, 0x83),
            (Request::ResetEnergy, 0xC2),
        ] {
            assert_eq!(
                parse_reply::<()>(0xF8, req, &with_crc(&[0x01, func, 0x04])),
                Err(Error::Exception {
                    function: func,
                    code: 4
                })
            );
        }
        // An address reply with an address out of range.
        assert_eq!(
            parse_reply::<()>(0xF8, Request::ReadAddress, &with_crc(&[0x01, 3, 2, 0, 0])),
            Err(Error::Unexpected)
        );
        assert_eq!(
            parse_reply::<()>(0xF8, Request::ReadAddress, &with_crc(&[0x07, 3, 2, 0, 7])),
            Ok(Reply::Address(7))
        );
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut x: u32 = 99;
        for len in 0..40 {
            for _ in 0..50 {
                let f: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        (x >> 16) as u8
                    })
                    .collect();
                for req in [
                    Request::ReadAddress,
                    Request::ReadMeasurements,
                    Request::ResetEnergy,
                ] {
                    let _ = parse_reply::<()>(0xF8, req, &f);
                    let _ = parse_reply::<()>(0xF8, req, &with_crc(&f));
                }
            }
        }
    }

    /// A scripted UART: what is written is logged, `rx` is what has been "received".
    #[derive(Default)]
    struct Uart {
        tx: Vec<u8>,
        rx: VecDeque<u8>,
        /// Bytes handed out per read (to exercise partial reads).
        chunk: usize,
    }

    impl embedded_io_async::ErrorType for Uart {
        type Error = core::convert::Infallible;
    }
    impl Read for Uart {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.rx.len()).min(self.chunk.max(1));
            assert!(n > 0, "the driver read with nothing buffered");
            for b in buf.iter_mut().take(n) {
                *b = self.rx.pop_front().unwrap_or(0);
            }
            Ok(n)
        }
    }
    impl ReadReady for Uart {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.rx.is_empty())
        }
    }
    impl Write for Uart {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.tx.extend_from_slice(buf);
            Ok(buf.len())
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn split_transaction_learns_the_address_and_never_waits() {
        let mut pzem = Pzem::new(Uart {
            chunk: 3,
            ..Uart::default()
        });
        assert_eq!(block_on(pzem.complete()), Err(Error::NoRequest));
        // Stale bytes are dropped before the request.
        pzem.uart.rx.extend([0xAA; 40]);
        block_on(pzem.request(Request::ReadAddress)).unwrap();
        assert_eq!(
            pzem.uart.tx,
            [0xF8, 0x03, 0x00, 0x02, 0x00, 0x01, 0x31, 0xA3]
        );
        assert!(pzem.uart.rx.is_empty());
        assert_eq!(pzem.pending(), Some(Request::ReadAddress));
        pzem.uart
            .rx
            .extend(with_crc(&[0x01, 0x03, 0x02, 0x00, 0x01]));
        assert_eq!(block_on(pzem.complete()), Ok(Reply::Address(1)));
        assert_eq!(pzem.address(), 1);
        assert_eq!(pzem.pending(), None);

        pzem.uart.tx.clear();
        block_on(pzem.request(Request::ReadMeasurements)).unwrap();
        assert_eq!(
            pzem.uart.tx,
            [0x01, 0x04, 0x00, 0x00, 0x00, 0x0A, 0x70, 0x0D]
        );
        // Nothing arrived: an error at once, not a wait.
        assert_eq!(block_on(pzem.complete()), Err(Error::NoResponse));
        // A late answer to that request is discarded by the next one.
        pzem.uart.rx.extend(manual_example());
        block_on(pzem.request(Request::ReadMeasurements)).unwrap();
        assert!(pzem.uart.rx.is_empty());
        pzem.uart.rx.extend(manual_example());
        assert!(matches!(
            block_on(pzem.complete()),
            Ok(Reply::Measurement(m)) if m.voltage_v == 220.0
        ));
        // An over-long reply is an error and leaves nothing behind.
        block_on(pzem.request(Request::ReadMeasurements)).unwrap();
        pzem.uart.rx.extend(manual_example());
        pzem.uart.rx.extend(manual_example());
        assert_eq!(
            block_on(pzem.complete()),
            Err(Error::Length {
                got: 32,
                expected: 25
            })
        );
        assert!(pzem.uart.rx.is_empty());
        // Reset energy is a 4-byte frame.
        pzem.uart.tx.clear();
        block_on(pzem.request(Request::ResetEnergy)).unwrap();
        assert_eq!(pzem.uart.tx, with_crc(&[0x01, 0x42]));
        pzem.uart.rx.extend(with_crc(&[0x01, 0x42]));
        assert_eq!(block_on(pzem.complete()), Ok(Reply::EnergyReset));
        let _uart = pzem.release();
    }
}
