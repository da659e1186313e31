//! What the [`central`](crate::central) and the [`peripheral`](crate::peripheral) state machines
//! share: one codec over both wire formats, the outputs they hand to their caller, why frames are
//! dropped, and the small bounded helpers (output queue, v3 counter reservation, token bucket).
//!
//! Sans-IO: nothing here reads a clock, touches a radio or flash. Times are the caller's
//! monotonic milliseconds (`now`); randomness comes from the caller's [`Entropy`].

use crate::replay::ReplayError;
use crate::v3::{self, Epoch, Keys, SenderId};
use crate::{
    DecodeBuf, DecodeError, EncodeError, Frame, GroupId, Key, Tid, Timestamp, TsSubtype, IV_LEN,
    MAX_FRAME_LEN, TID_LEN,
};

/// A radio (MAC) address.
pub type Mac = [u8; 6];
/// The broadcast address.
pub const BROADCAST: Mac = [0xff; 6];

/// Which wire format a network speaks. Each network speaks exactly one: a v3 network refuses v2
/// frames and the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The reference's format, for networks with MicroPython devices in them.
    V2,
    /// Hearth's own format (AEAD, sender identity, counters), the default.
    V3,
}

impl Version {
    /// Largest data payload a frame of this version holds.
    pub const fn max_data_payload(self) -> usize {
        match self {
            Version::V2 => crate::MAX_DATA_PAYLOAD,
            Version::V3 => v3::MAX_DATA_PAYLOAD,
        }
    }

    /// Largest back-data payload a frame of this version holds.
    pub const fn max_backdata_payload(self) -> usize {
        match self {
            Version::V2 => crate::MAX_BACKDATA_PAYLOAD,
            Version::V3 => v3::MAX_BACKDATA_PAYLOAD,
        }
    }
}

/// Random bytes from the platform (the chip's hardware RNG, the OS on the host). IVs, tids,
/// challenges, the central's time base and timing fudge all come from here.
pub trait Entropy {
    /// Fill `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);

    /// A random tid.
    fn tid(&mut self) -> Tid {
        let mut t = [0; TID_LEN];
        self.fill(&mut t);
        Tid(t)
    }

    /// A random number in `0..bound` (`0` if `bound` is 0); modulo bias is irrelevant for the
    /// timing fudge it is used for.
    fn below(&mut self, bound: u64) -> u64 {
        let mut b = [0; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b).checked_rem(bound).unwrap_or(0)
    }
}

/// A message, whatever the wire format. The variants and field orders are those of both
/// formats' bodies; in v2 a pair request carries no challenge (it is [`Tid::ZERO`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// Peripheral → central.
    Data {
        ts: Timestamp,
        tid: Tid,
        payload: &'a [u8],
    },
    /// Central → broadcast.
    Timestamp {
        subtype: TsSubtype<'a>,
        ttid: Tid,
        ts: Timestamp,
    },
    /// Peripheral → central: is `ts` your time?
    Ping { ts: Timestamp, tid: Tid },
    /// Peripheral → broadcast.
    PairRequest { challenge: Tid },
    /// Peripheral → central: I woke up and need the time.
    Wakeup { tid: Tid },
}

impl Msg<'_> {
    /// A short name of the message kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Data { .. } => "data",
            Msg::Timestamp {
                subtype: TsSubtype::Default,
                ..
            } => "timestamp",
            Msg::Timestamp {
                subtype: TsSubtype::Confirm(_),
                ..
            } => "confirm",
            Msg::Timestamp {
                subtype: TsSubtype::Backdata(_),
                ..
            } => "backdata",
            Msg::Ping { .. } => "ping",
            Msg::PairRequest { .. } => "pair request",
            Msg::Wakeup { .. } => "wakeup",
        }
    }
}

/// A frame opened by a [`Codec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The message.
    pub msg: Msg<'a>,
    /// v3 only: the authenticated sender id, epoch and counter from the header.
    pub sender: Option<(SenderId, Epoch, u64)>,
}

/// Why received bytes could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// A v3 frame on a v2 network, or the other way round (judged by shape; see
    /// [`v3::version`]).
    OtherVersion(u8),
    /// The v2 decoder's verdict.
    V2(DecodeError),
    /// The v3 decoder's verdict.
    V3(v3::DecodeError),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::OtherVersion(v) => write!(f, "a wire format v{v} frame on this network"),
            OpenError::V2(e) => write!(f, "v2: {e}"),
            OpenError::V3(e) => write!(f, "v3: {e}"),
        }
    }
}

/// Why a message could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// The v2 encoder's verdict.
    V2(EncodeError),
    /// The v3 encoder's verdict.
    V3(v3::EncodeError),
}

impl core::fmt::Display for SealError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SealError::V2(e) => write!(f, "{e}"),
            SealError::V3(e) => write!(f, "{e}"),
        }
    }
}

/// Scratch space for [`Codec::open`]; opened payloads borrow from it.
pub struct Scratch {
    v2: DecodeBuf,
    v3: v3::DecodeBuf,
}

impl Scratch {
    /// Zeroed scratch space.
    pub const fn new() -> Self {
        Scratch {
            v2: [0; crate::MAX_CIPHERTEXT_LEN],
            v3: [0; v3::MAX_BODY_LEN],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// The keys of one network and the wire format it speaks.
#[derive(Clone)]
pub enum Codec {
    /// Wire format v2: one key, the SHA-256 group id.
    V2 { key: Key, group: GroupId },
    /// Wire format v3: HKDF-derived keys (the group id is one of them).
    V3 { keys: Keys },
}

impl core::fmt::Debug for Codec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Codec::{:?}", self.version())
    }
}

impl Codec {
    /// The codec of the network with pre-shared key `psk` and group name `group`.
    pub fn new(version: Version, psk: &[u8], group: &[u8]) -> Codec {
        match version {
            Version::V2 => Codec::V2 {
                key: Key::from_psk(psk),
                group: GroupId::from_name(group),
            },
            Version::V3 => Codec::V3 {
                keys: Keys::derive(psk, group),
            },
        }
    }

    /// The wire format.
    pub fn version(&self) -> Version {
        match self {
            Codec::V2 { .. } => Version::V2,
            Codec::V3 { .. } => Version::V3,
        }
    }

    /// Seals `msg`. v2 uses `iv` and ignores `sender`/`epoch`/`counter`; v3 uses `sender`,
    /// `epoch` and `counter` (never reused within the epoch) and ignores `iv`.
    pub fn seal(
        &self,
        msg: &Msg<'_>,
        sender: &SenderId,
        epoch: &Epoch,
        counter: u64,
        iv: &[u8; IV_LEN],
        out: &mut [u8; MAX_FRAME_LEN],
    ) -> Result<usize, SealError> {
        match self {
            Codec::V2 { key, group } => {
                let frame = match *msg {
                    Msg::Data { ts, tid, payload } => Frame::Data { ts, tid, payload },
                    Msg::Timestamp { subtype, ttid, ts } => Frame::Timestamp { subtype, ttid, ts },
                    Msg::Ping { ts, tid } => Frame::Ping { ts, tid },
                    Msg::PairRequest { .. } => Frame::PairRequest,
                    Msg::Wakeup { tid } => Frame::Wakeup { tid },
                };
                crate::encode(&frame, key, group, iv, out).map_err(SealError::V2)
            }
            Codec::V3 { keys } => {
                let frame = match *msg {
                    Msg::Data { ts, tid, payload } => v3::Frame::Data { ts, tid, payload },
                    Msg::Timestamp { subtype, ttid, ts } => {
                        v3::Frame::Timestamp { subtype, ttid, ts }
                    }
                    Msg::Ping { ts, tid } => v3::Frame::Ping { ts, tid },
                    Msg::PairRequest { challenge } => v3::Frame::PairRequest { challenge },
                    Msg::Wakeup { tid } => v3::Frame::Wakeup { tid },
                };
                v3::encode(&frame, keys, sender, epoch, counter, out).map_err(SealError::V3)
            }
        }
    }

    /// Opens received bytes: authenticates, decrypts and parses them. Never panics.
    pub fn open<'s>(
        &self,
        bytes: &[u8],
        scratch: &'s mut Scratch,
    ) -> Result<Opened<'s>, OpenError> {
        match self {
            Codec::V2 { key, group } => {
                let frame = crate::decode(bytes, key, group, &mut scratch.v2).map_err(|e| {
                    // A v3 frame fails v2's tag check; say what it most likely is.
                    if e == DecodeError::BadTag && v3::version(bytes) == Some(v3::VERSION) {
                        OpenError::OtherVersion(v3::VERSION)
                    } else {
                        OpenError::V2(e)
                    }
                })?;
                let msg = match frame {
                    Frame::Data { ts, tid, payload } => Msg::Data { ts, tid, payload },
                    Frame::Timestamp { subtype, ttid, ts } => Msg::Timestamp { subtype, ttid, ts },
                    Frame::Ping { ts, tid } => Msg::Ping { ts, tid },
                    Frame::PairRequest => Msg::PairRequest {
                        challenge: Tid::ZERO,
                    },
                    Frame::Wakeup { tid } => Msg::Wakeup { tid },
                };
                Ok(Opened { msg, sender: None })
            }
            Codec::V3 { keys } => {
                let (header, frame) = v3::decode(bytes, keys, &keys.group_id(), &mut scratch.v3)
                    .map_err(|e| match e {
                        v3::DecodeError::NotV3(_) if v3::version(bytes) == Some(crate::VERSION) => {
                            OpenError::OtherVersion(crate::VERSION)
                        }
                        e => OpenError::V3(e),
                    })?;
                let msg = match frame {
                    v3::Frame::Data { ts, tid, payload } => Msg::Data { ts, tid, payload },
                    v3::Frame::Timestamp { subtype, ttid, ts } => {
                        Msg::Timestamp { subtype, ttid, ts }
                    }
                    v3::Frame::Ping { ts, tid } => Msg::Ping { ts, tid },
                    v3::Frame::PairRequest { challenge } => Msg::PairRequest { challenge },
                    v3::Frame::Wakeup { tid } => Msg::Wakeup { tid },
                };
                Ok(Opened {
                    msg,
                    sender: Some((header.sender, header.epoch, header.counter)),
                })
            }
        }
    }
}

/// A sealed frame, ready for the radio.
#[derive(Clone, PartialEq, Eq)]
pub struct FrameBuf {
    len: u8,
    bytes: [u8; MAX_FRAME_LEN],
    counter: Option<u64>,
}

impl FrameBuf {
    /// The frame's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// v3: the counter the frame was sealed with (its nonce); `None` for v2.
    pub fn counter(&self) -> Option<u64> {
        self.counter
    }
}

impl core::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FrameBuf({} bytes)", self.len)
    }
}

/// An application payload carried out of a state machine (data at the central, back-data at a
/// peripheral).
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    len: u8,
    bytes: [u8; v3::MAX_DATA_PAYLOAD],
}

impl Payload {
    /// Copies `bytes` (truncated to the largest payload, which no decoded frame exceeds).
    pub fn new(bytes: &[u8]) -> Self {
        let n = bytes.len().min(v3::MAX_DATA_PAYLOAD);
        let mut p = Payload {
            len: 0,
            bytes: [0; v3::MAX_DATA_PAYLOAD],
        };
        p.bytes[..n].copy_from_slice(&bytes[..n]);
        p.len = u8::try_from(n).unwrap_or(u8::MAX);
        p
    }

    /// The payload bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Payload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Payload({:?})", self.as_slice().escape_ascii())
    }
}

/// What the caller must store durably **before** it handles the outputs that follow (a frame
/// sealed with a reserved counter, a forwarded reading).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// v3: this device's counter epoch, and the counter below which it may have used every
    /// value; after a reset it restarts from this counter in this epoch.
    CounterReserve(Epoch, u64),
    /// Central, v3: the epoch and last accepted counter of a peer (restore them at boot).
    PeerCounter(SenderId, Epoch, u64),
    /// Peripheral: paired with this central on this channel.
    Pairing(Pairing),
    /// Peripheral: forget the pairing (a re-pair was asked for).
    Unpaired,
}

/// A peripheral's pairing: its central and the channel the central listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pairing {
    /// The central's MAC address (v3: also its authenticated sender id).
    pub central: Mac,
    /// The channel, 1..=13.
    pub channel: u8,
}

/// What a state machine asks its caller to do, in order.
// No alloc: outputs sit in a small fixed queue, so boxing the frame is not an option and the
// size difference is the point (a frame is carried by value).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<E> {
    /// Transmit `frame` to `to` (a MAC or [`BROADCAST`]); `ack` asks for the link-level ack of
    /// a unicast (its outcome is not needed: the application-level confirm is what counts).
    Send { to: Mac, frame: FrameBuf, ack: bool },
    /// Tune the radio to this channel.
    SetChannel(u8),
    /// Store this durably before going on.
    Persist(Persist),
    /// Tell the application.
    Event(E),
}

/// Why a received frame was dropped. Dropping is silent on the air; these are for logs and
/// statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not a valid frame of this network (bad tag, wrong key or group, malformed, other
    /// version).
    Undecodable(OpenError),
    /// A replay (tid, ttid or counter already seen), or a full cache refusing it.
    Replay(ReplayError),
    /// The timestamp is more than 1 s from the central's time.
    OutOfWindow,
    /// An answer was due but its rate limit is exhausted.
    Throttled,
    /// A frame type this role does not take (e.g. a peripheral's pair request heard by another
    /// peripheral, or a second central's broadcast).
    Unexpected,
    /// v3: the header's sender id is not the radio source address.
    SenderMismatch,
    /// A peripheral got a broadcast from a central other than its own (v3).
    NotOurCentral,
    /// An unpaired peripheral got a broadcast that does not answer its own pair request.
    NotForUs,
    /// A paired peripheral without a verified time got a broadcast that is not the confirm of
    /// its own wakeup, ping or data; or the time needs a ping check first.
    Unverified,
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DropReason::Undecodable(e) => write!(f, "undecodable: {e}"),
            DropReason::Replay(e) => write!(f, "replay: {e}"),
            DropReason::OutOfWindow => f.write_str("timestamp outside the 1 s window"),
            DropReason::Throttled => f.write_str("answer throttled"),
            DropReason::Unexpected => f.write_str("frame type not for this role"),
            DropReason::SenderMismatch => f.write_str("sender id differs from the radio address"),
            DropReason::NotOurCentral => f.write_str("broadcast from another central"),
            DropReason::NotForUs => f.write_str("not an answer to our pair request"),
            DropReason::Unverified => f.write_str("time not verified (waiting for a confirm)"),
        }
    }
}

/// A bounded FIFO of outputs. Full means the caller is not draining it; further outputs are
/// dropped and counted (never a panic, never unbounded memory). [`push`](Self::push) says
/// whether the output was kept: a [`Persist`] that was not kept must stop whatever depended on
/// it (a counter reservation that is not in the queue reserves nothing, see [`Counters::take`]).
#[derive(Debug)]
pub(crate) struct Outbox<E, const N: usize> {
    items: [Option<Output<E>>; N],
    head: usize,
    len: usize,
    pub(crate) overflows: u32,
}

impl<E, const N: usize> Outbox<E, N> {
    pub(crate) fn new() -> Self {
        Outbox {
            items: core::array::from_fn(|_| None),
            head: 0,
            len: 0,
            overflows: 0,
        }
    }

    #[must_use = "a dropped Persist must stop what depends on it"]
    pub(crate) fn push(&mut self, o: Output<E>) -> bool {
        if self.len == N {
            self.overflows = self.overflows.saturating_add(1);
            return false;
        }
        self.items[(self.head + self.len) % N] = Some(o);
        self.len += 1;
        true
    }

    /// Pushes an output nothing depends on (a frame, an event, a channel change): if the queue
    /// is full it is dropped and counted.
    pub(crate) fn put(&mut self, o: Output<E>) {
        let _ = self.push(o);
    }

    pub(crate) fn pop(&mut self) -> Option<Output<E>> {
        if self.len == 0 {
            return None;
        }
        let o = self.items[self.head].take();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        o
    }
}

/// v3 counters of this device: hands out strictly increasing values, and asks for a block of
/// them to be persisted before the first of the block is used, so no value is ever used twice,
/// also across resets (a reset loses at most the rest of a block).
#[derive(Debug)]
pub(crate) struct Counters {
    epoch: Epoch,
    next: u64,
    reserved_until: u64,
}

/// How many counter values one persisted reservation covers.
pub const COUNTER_BLOCK: u64 = 64;

impl Counters {
    /// Start from the persisted reservation in `epoch` (`0` in a new epoch).
    pub(crate) fn new(epoch: Epoch, persisted: u64) -> Self {
        Counters {
            epoch,
            next: persisted,
            reserved_until: persisted,
        }
    }

    /// The epoch every counter of this device belongs to.
    pub(crate) fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The next counter, pushing a [`Persist::CounterReserve`] first when a new block starts.
    /// `None` when the counter space is exhausted, or when the reservation could not be queued
    /// (a full output queue): then nothing is reserved and no counter is handed out, so no
    /// frame is sealed with a counter that was never persisted.
    pub(crate) fn take<E, const N: usize>(&mut self, out: &mut Outbox<E, N>) -> Option<u64> {
        if self.next > v3::MAX_COUNTER {
            return None;
        }
        if self.next >= self.reserved_until {
            let until = self
                .next
                .saturating_add(COUNTER_BLOCK)
                .min(v3::MAX_COUNTER + 1);
            if !out.push(Output::Persist(Persist::CounterReserve(self.epoch, until))) {
                return None;
            }
            self.reserved_until = until;
        }
        let c = self.next;
        self.next += 1;
        Some(c)
    }

    /// The caller could not store the last reservation: ask for a new one before the next
    /// counter is used. Counters already handed out are not handed out again (the frames
    /// sealed with them must not be sent; [`CounterGuard`] refuses them).
    pub(crate) fn reserve_failed(&mut self) {
        self.reserved_until = self.next;
    }
}

/// The caller's last line of defence against nonce reuse: it knows which counter reservation is
/// **durably** stored (the one loaded at boot, then each [`Persist::CounterReserve`] whose write
/// succeeded) and refuses any v3 frame sealed with a counter at or above it. A failed write, a
/// reservation lost from a full output queue or any other slip then means "not sent", never a
/// counter that a reset would hand out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterGuard {
    durable: u64,
}

impl CounterGuard {
    /// The guard for a device whose durable reservation is `durable` (what the state machine
    /// was started with: counters below it are never handed out again).
    pub const fn new(durable: u64) -> Self {
        CounterGuard { durable }
    }

    /// Call after carrying out `p`, with whether the write succeeded.
    pub fn persisted(&mut self, p: &Persist, ok: bool) {
        if let (Persist::CounterReserve(_, until), true) = (p, ok) {
            self.durable = self.durable.max(*until);
        }
    }

    /// Whether `frame` may go on the air: v2 frames always, v3 frames only with a counter
    /// below the durable reservation.
    pub fn may_send(&self, frame: &FrameBuf) -> bool {
        frame.counter().is_none_or(|c| c < self.durable)
    }

    /// The durable reservation.
    pub const fn durable(&self) -> u64 {
        self.durable
    }
}

/// A token bucket: `capacity` answers at once, then one more every `refill_ms`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: u32,
    capacity: u32,
    refill_ms: u64,
    last: u64,
}

impl Bucket {
    pub(crate) fn new(capacity: u32, refill_ms: u64, now: u64) -> Self {
        Bucket {
            tokens: capacity,
            capacity,
            refill_ms: refill_ms.max(1),
            last: now,
        }
    }

    pub(crate) fn take(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.last) / self.refill_ms;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
            self.last = self.last.saturating_add(u64::from(earned) * self.refill_ms);
            if self.tokens == self.capacity {
                self.last = now;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// Seals `msg` from `me` into an output, taking a counter (v3) and an IV (v2). `None` if the
/// counter space is exhausted or the message does not fit (callers check payload sizes first).
pub(crate) fn sealed<E, const N: usize, R: Entropy>(
    codec: &Codec,
    me: &Mac,
    counters: &mut Counters,
    rng: &mut R,
    out: &mut Outbox<E, N>,
    msg: &Msg<'_>,
) -> Option<FrameBuf> {
    let counter = match codec {
        Codec::V2 { .. } => 0,
        Codec::V3 { .. } => counters.take(out)?,
    };
    let mut iv = [0; IV_LEN];
    if let Codec::V2 { .. } = codec {
        rng.fill(&mut iv);
    }
    let mut bytes = [0; MAX_FRAME_LEN];
    let len = codec
        .seal(
            msg,
            &SenderId(*me),
            &counters.epoch(),
            counter,
            &iv,
            &mut bytes,
        )
        .ok()?;
    Some(FrameBuf {
        len: u8::try_from(len).ok()?,
        bytes,
        counter: match codec {
            Codec::V2 { .. } => None,
            Codec::V3 { .. } => Some(counter),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: Epoch = Epoch([7; v3::EPOCH_LEN]);

    #[test]
    fn bucket_gives_capacity_then_one_per_refill() {
        let mut b = Bucket::new(3, 10_000, 0);
        assert!(b.take(0) && b.take(0) && b.take(0));
        assert!(!b.take(9_999));
        assert!(b.take(10_000));
        assert!(!b.take(10_001));
        // A long pause refills to capacity, not beyond.
        assert!(b.take(1_000_000) && b.take(1_000_000) && b.take(1_000_000));
        assert!(!b.take(1_000_000));
    }

    #[test]
    fn counters_reserve_a_block_before_use() {
        let mut out: Outbox<(), 4> = Outbox::new();
        let mut c = Counters::new(E, 128);
        assert_eq!(c.take(&mut out), Some(128));
        assert_eq!(
            out.pop(),
            Some(Output::Persist(Persist::CounterReserve(E, 192)))
        );
        for want in 129..192 {
            assert_eq!(c.take(&mut out), Some(want));
        }
        assert_eq!(out.pop(), None);
        assert_eq!(c.take(&mut out), Some(192));
        assert_eq!(
            out.pop(),
            Some(Output::Persist(Persist::CounterReserve(E, 256)))
        );
        let mut end = Counters::new(E, v3::MAX_COUNTER);
        assert_eq!(end.take(&mut out), Some(v3::MAX_COUNTER));
        assert_eq!(end.take(&mut out), None);
    }

    #[test]
    fn a_full_queue_never_loses_a_reservation_silently() {
        // Room for one output: the reservation of the first block fits, the next one does not.
        let mut out: Outbox<(), 1> = Outbox::new();
        let mut c = Counters::new(E, 0);
        assert_eq!(c.take(&mut out), Some(0));
        for want in 1..COUNTER_BLOCK {
            assert_eq!(c.take(&mut out), Some(want));
        }
        // The queue is full: no reservation can be queued, so no counter is handed out ...
        assert_eq!(c.take(&mut out), None);
        assert_eq!(c.take(&mut out), None);
        assert_eq!(out.overflows, 2);
        assert_eq!(
            out.pop(),
            Some(Output::Persist(Persist::CounterReserve(E, COUNTER_BLOCK)))
        );
        // ... until there is room: then the block is reserved before its first counter.
        assert_eq!(c.take(&mut out), Some(COUNTER_BLOCK));
        assert_eq!(
            out.pop(),
            Some(Output::Persist(Persist::CounterReserve(
                E,
                2 * COUNTER_BLOCK
            )))
        );
    }

    #[test]
    fn a_failed_reservation_is_asked_for_again_and_guarded() {
        let mut out: Outbox<(), 8> = Outbox::new();
        let mut c = Counters::new(E, 500);
        let mut guard = CounterGuard::new(500);
        let frame = |counter| FrameBuf {
            len: 0,
            bytes: [0; MAX_FRAME_LEN],
            counter: Some(counter),
        };
        assert_eq!(c.take(&mut out), Some(500));
        let Some(Output::Persist(p)) = out.pop() else {
            panic!("no reservation before the first counter");
        };
        guard.persisted(&p, false);
        assert!(!guard.may_send(&frame(500)), "sent on a failed reservation");
        c.reserve_failed();
        assert_eq!(c.take(&mut out), Some(501));
        let Some(Output::Persist(p)) = out.pop() else {
            panic!("no new reservation after a failed one");
        };
        assert_eq!(p, Persist::CounterReserve(E, 501 + COUNTER_BLOCK));
        guard.persisted(&p, true);
        assert!(guard.may_send(&frame(501)));
        assert!(guard.may_send(&frame(500 + COUNTER_BLOCK)));
        assert!(!guard.may_send(&frame(501 + COUNTER_BLOCK)));
        // A v2 frame has no counter.
        assert!(guard.may_send(&FrameBuf {
            len: 0,
            bytes: [0; MAX_FRAME_LEN],
            counter: None
        }));
    }

    #[test]
    fn outbox_is_fifo_and_bounded() {
        let mut out: Outbox<u8, 2> = Outbox::new();
        assert!(out.push(Output::Event(1)));
        assert!(out.push(Output::Event(2)));
        assert!(!out.push(Output::Event(3)));
        assert_eq!(out.overflows, 1);
        assert_eq!(out.pop(), Some(Output::Event(1)));
        out.put(Output::Event(4));
        assert_eq!(out.pop(), Some(Output::Event(2)));
        assert_eq!(out.pop(), Some(Output::Event(4)));
        assert_eq!(out.pop(), None);
    }
}
