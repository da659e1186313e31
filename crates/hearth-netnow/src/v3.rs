//! **Wire format v3** (Hearth's own, not understood by reference devices): ChaCha20-Poly1305
//! frames under keys derived with HKDF-SHA256, a per-sender identity, a per-sender random epoch
//! and a per-sender counter.
//! This module is the frame codec and key schedule only, sans-IO like v2. Replay caches and the
//! counter bookkeeping are in [`crate::replay`]; the roles that use them are
//! [`crate::central`] and [`crate::peripheral`].
//!
//! ```
//! use hearth_netnow::v3::{decode, encode, DecodeBuf, Epoch, Frame, Keys, SenderId};
//! use hearth_netnow::{Tid, Timestamp, MAX_FRAME_LEN};
//!
//! let keys = Keys::derive(b"a long random pre-shared key", b"ble");
//! let scale = SenderId([0x24, 0x6f, 0x28, 0x01, 0x02, 0x03]);
//! let frame = Frame::Data { ts: Timestamp::new(1_000).unwrap(), tid: Tid([9; 12]), payload: b"21.5" };
//!
//! let epoch = Epoch([7; 12]); // drawn at random when the device's counter record is absent
//! let mut air = [0u8; MAX_FRAME_LEN];
//! let len = encode(&frame, &keys, &scale, &epoch, 41, &mut air).unwrap(); // never reused
//!
//! let mut scratch: DecodeBuf = [0; _];
//! let (header, got) = decode(&air[..len], &keys, &keys.group_id(), &mut scratch).unwrap();
//! assert_eq!((header.sender, header.epoch, header.counter, got), (scale, epoch, 41, frame));
//! ```
//!
//! # Frame layout
//!
//! All integers big-endian. The 34-byte header travels in clear and is the AEAD's associated
//! data, so it is authenticated with the body.
//!
//! | offset | length | field      | notes                                                       |
//! |-------:|-------:|------------|-------------------------------------------------------------|
//! | 0      | 1      | version    | `0x03` ([`VERSION`])                                        |
//! | 1      | 1      | type       | 1 data, 2 timestamp, 3 ping, 4 pair request, 5 wakeup       |
//! | 2      | 8      | group id   | [`Keys::group_id`] (HKDF output, see below)                 |
//! | 10     | 6      | sender id  | the sender's factory (eFuse) station MAC, [`SenderId`]      |
//! | 16     | 12     | epoch      | random, drawn when the sender's counter record is absent    |
//! | 28     | 6      | counter    | strictly increasing per sender and epoch                    |
//! | 34     | n      | body       | XChaCha20 ciphertext of the body, 0 ≤ n ≤ 200               |
//! | 34 + n | 16     | tag        | Poly1305 tag over header (AD) and ciphertext                |
//!
//! Frames are 50..=250 bytes. Bodies (plaintext, same kinds and field orders as v2):
//!
//! | type | kind         | body                                      | body length |
//! |-----:|--------------|-------------------------------------------|-------------|
//! | 1    | data         | `ts(12) ‖ tid(12) ‖ payload`              | 24..=210    |
//! | 2    | timestamp    | `subtype(1) ‖ ttid(12) ‖ ts(12) ‖ extra`  | 25..=210    |
//! |      | – default    | subtype 0, no extra                       | 25          |
//! |      | – confirm    | subtype 1, extra = confirmed tid (12)     | 37          |
//! |      | – backdata   | subtype 2, extra = payload                | 25..=210    |
//! | 3    | ping         | `ts(12) ‖ tid(12)`                        | 24          |
//! | 4    | pair request | `challenge(12)`                           | 12          |
//! | 5    | wakeup       | `tid(12)`                                 | 12          |
//!
//! Unlike v2, pair requests carry a fresh random challenge (for the key confirmation of the
//! pairing exchange to come, reference weakness §13.5) instead of 24 zero bytes, and wakeups drop
//! the 12 zero bytes v2 sends in place of a timestamp: the header's counter is what protects
//! them from replay now (§13.7).
//!
//! # Sizes
//!
//! 250 − 34 (header) − 16 (tag) = 200 bytes of body. A stream cipher needs no padding and no
//! length byte, so [`MAX_DATA_PAYLOAD`] = 200 − 24 = **176** and [`MAX_BACKDATA_PAYLOAD`] =
//! 200 − 25 = **175** (v2: 173 and 172).
//!
//! # Sender id and nonce
//!
//! The sender id is the device's 6-byte factory MAC: unique without any coordination or
//! configuration, already what ESP-NOW addresses, and what the forwarders can name MQTT topics
//! after, so a central forwards several scales without mixing them up (§13.6). A 4-byte id would
//! need assigning (or hashing a MAC, with collisions), and a collision would reuse nonces.
//!
//! The AEAD is XChaCha20-Poly1305 and its 192-bit nonce is the header's
//! `sender id(6) ‖ epoch(12) ‖ counter(6)` ([`nonce`]). Every member of the network (central
//! included) shares the frame key, so nonces never repeat under that key **provided** (1) sender
//! ids are unique in the network (factory MACs are; a cloned MAC is a misconfiguration), and (2)
//! no sender ever seals two frames with the same epoch and counter:
//!
//! - Within an epoch the counter lives in flash and a sender persists a reservation before
//!   using it (blocks of 64 ahead, skipping to the reserved value after a reset; a frame whose
//!   counter is not durably reserved is not sent, see
//!   [`CounterGuard`](crate::link::CounterGuard)). One whose record cannot be read does not
//!   send at all.
//! - A device whose record is **absent** (a new store, or one that was wiped, formatted or
//!   erased with `espflash erase-flash` while the PSK survived: the two look the same) draws a
//!   new random epoch ([`Epoch::new`], 96 bits of the chip's hardware RNG) and counts from 0.
//!   Its earlier frames used other epochs, so its new nonces cannot be any of them unless two
//!   draws of 96 random bits coincide: for a device wiped a thousand times, about 2^−77 in all.
//!   No counter range has to be guessed, and no state has to survive the wipe.
//!
//! 2^48 frames per epoch at 100 per second last 89,000 years.
//!
//! A v2 frame starts with its random IV, so one in 256 v2 frames starts with `0x03` and is
//! routed to v3 by [`version`]; it then fails v3's group check ([`DecodeError::WrongGroup`], the
//! IV bytes match the 8-byte group id with probability 2^−64) or the tag. A v3 frame given to the
//! v2 decoder fails its length checks or its tag (v2 checks the tag before the version byte it
//! keeps inside the ciphertext), see the tests.
//!
//! # Key schedule
//!
//! HKDF-SHA256 (RFC 5869) with the PSK as input keying material and the group name (UTF-8, as
//! configured) as salt: `PRK = HKDF-Extract(salt = group name, IKM = PSK)`, then
//! `HKDF-Expand(PRK, info, L)` with these labels (ASCII, no terminator):
//!
//! | output                     | info label                     | L  |
//! |----------------------------|--------------------------------|----|
//! | frame key (AEAD)           | `hearth netnow v3 frame key`   | 32 |
//! | key-confirmation key       | `hearth netnow v3 confirm key` | 32 |
//! | group id                   | `hearth netnow v3 group id`    | 8  |
//!
//! The group id therefore depends on the PSK as well as the name: it does not reveal the group
//! name to a listener (the header is clear text), and two networks with the same name but
//! different PSKs are told apart before any crypto. Per-device keys are not derived yet; they
//! would be `HKDF-Expand(PRK, "hearth netnow v3 device key" ‖ sender id(6), 32)`, computed once
//! per paired peer by the central and once by each peripheral, with the same nonce.
//!
//! HKDF does not stretch: v3 PSKs should be high-entropy (≥ 16 random bytes); a low-entropy
//! passphrase stays guessable offline from one captured frame.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::body::{self, BodyError, Reader, Writer};
use crate::{GroupId, Tid, Timestamp, TsSubtype, GROUP_LEN, MAX_FRAME_LEN, TID_LEN, TS_LEN};

/// Protocol version byte of wire format v3, the first byte of every v3 frame.
pub const VERSION: u8 = 0x03;
/// Length of a [`SenderId`].
pub const SENDER_LEN: usize = 6;
/// Length of an [`Epoch`].
pub const EPOCH_LEN: usize = 12;
/// Length of the counter field.
pub const COUNTER_LEN: usize = 6;
/// `version ‖ type ‖ group ‖ sender ‖ epoch ‖ counter`.
pub const HEADER_LEN: usize = 2 + GROUP_LEN + SENDER_LEN + EPOCH_LEN + COUNTER_LEN;
/// Length of the Poly1305 tag at the end of every frame.
pub const TAG_LEN: usize = 16;
/// Length of a derived key.
pub const KEY_LEN: usize = 32;
/// Length of the AEAD (XChaCha20-Poly1305) nonce.
pub const NONCE_LEN: usize = 24;
/// Smallest frame: header and tag, empty body.
pub const MIN_FRAME_LEN: usize = HEADER_LEN + TAG_LEN;
/// Longest body (200).
pub const MAX_BODY_LEN: usize = MAX_FRAME_LEN - HEADER_LEN - TAG_LEN;
/// Longest payload of a [`Frame::Data`] (176).
pub const MAX_DATA_PAYLOAD: usize = MAX_BODY_LEN - TS_LEN - TID_LEN;
/// Longest payload of a [`TsSubtype::Backdata`] (175).
pub const MAX_BACKDATA_PAYLOAD: usize = MAX_BODY_LEN - 1 - TID_LEN - TS_LEN;
/// Largest counter, 2^48 − 1 (the counter field is 6 bytes).
pub const MAX_COUNTER: u64 = (1 << 48) - 1;

/// HKDF info label of the frame (AEAD) key.
pub const LABEL_FRAME_KEY: &[u8] = b"hearth netnow v3 frame key";
/// HKDF info label of the key-confirmation key (pairing).
pub const LABEL_CONFIRM_KEY: &[u8] = b"hearth netnow v3 confirm key";
/// HKDF info label of the group id.
pub const LABEL_GROUP_ID: &[u8] = b"hearth netnow v3 group id";

/// The keys of one v3 network, derived from its PSK and group name. `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    frame: [u8; KEY_LEN],
    confirm: [u8; KEY_LEN],
    group: GroupId,
}

impl Keys {
    /// Runs the key schedule (see the module documentation) for `psk` and group `name`.
    pub fn derive(psk: &[u8], name: &[u8]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(Some(name), psk);
        let mut frame = [0u8; KEY_LEN];
        let mut confirm = [0u8; KEY_LEN];
        let mut group = [0u8; GROUP_LEN];
        // Lengths of 32 and 8 bytes are far below HKDF-SHA256's limit of 255 × 32, so expand
        // cannot fail; the fallback keeps this panic-free anyway.
        for (label, out) in [
            (LABEL_FRAME_KEY, &mut frame[..]),
            (LABEL_CONFIRM_KEY, &mut confirm[..]),
            (LABEL_GROUP_ID, &mut group[..]),
        ] {
            if hkdf.expand(label, out).is_err() {
                out.fill(0);
            }
        }
        Keys {
            frame,
            confirm,
            group: GroupId(group),
        }
    }

    /// The group id carried in every frame of this network.
    pub const fn group_id(&self) -> GroupId {
        self.group
    }

    /// The AEAD key of the network's frames.
    pub const fn frame_key(&self) -> &[u8; KEY_LEN] {
        &self.frame
    }

    /// The key-confirmation key, for the pairing exchange (not used by the codec).
    pub const fn confirm_key(&self) -> &[u8; KEY_LEN] {
        &self.confirm
    }

    fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.frame.into())
    }
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Who sealed a frame: the sender's factory station MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderId(pub [u8; SENDER_LEN]);

/// A sender's counter epoch: 96 random bits drawn when the device finds no counter record
/// in its store (new, wiped or formatted), and kept with the record from then on. Part of every
/// nonce, so a device that lost its counters starts a nonce space of its own instead of
/// guessing where its earlier counters ended (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub [u8; EPOCH_LEN]);

impl Epoch {
    /// A new epoch from 128 bits of the platform's random generator (two independent 64-bit
    /// draws of the chip's hardware RNG; 96 of them are kept).
    pub fn new(random: [u64; 2]) -> Epoch {
        let mut e = [0u8; EPOCH_LEN];
        e[..8].copy_from_slice(&random[0].to_le_bytes());
        e[8..].copy_from_slice(&random[1].to_le_bytes()[..EPOCH_LEN - 8]);
        Epoch(e)
    }
}

impl core::fmt::Display for Epoch {
    /// The epoch in hex, as the logs and the sniffer show it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The clear-text header of a received frame, authenticated by the tag. The frame type is the
/// variant of the accompanying [`Frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The group id, already checked against the receiver's.
    pub group: GroupId,
    /// The sender.
    pub sender: SenderId,
    /// The sender's counter epoch.
    pub epoch: Epoch,
    /// The sender's counter in that epoch; the caller checks it is above the last one it
    /// accepted.
    pub counter: u64,
}

/// One v3 frame, decoded. Payloads borrow from the caller's buffer. The field order of each
/// variant follows its wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Type 1, peripheral → central: at most [`MAX_DATA_PAYLOAD`] bytes of payload.
    Data {
        ts: Timestamp,
        tid: Tid,
        payload: &'a [u8],
    },
    /// Type 2, central → broadcast; a backdata payload is at most [`MAX_BACKDATA_PAYLOAD`].
    Timestamp {
        subtype: TsSubtype<'a>,
        ttid: Tid,
        ts: Timestamp,
    },
    /// Type 3, peripheral → central: ts is the peripheral's estimate.
    Ping { ts: Timestamp, tid: Tid },
    /// Type 4, peripheral → broadcast: a fresh random challenge.
    PairRequest { challenge: Tid },
    /// Type 5, peripheral → central, sent by a sleepy peripheral that does not know the time.
    Wakeup { tid: Tid },
}

const TYPE_DATA: u8 = 1;
const TYPE_TIMESTAMP: u8 = 2;
const TYPE_PING: u8 = 3;
const TYPE_PAIR_REQUEST: u8 = 4;
const TYPE_WAKEUP: u8 = 5;

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload does not fit one 250-byte frame.
    PayloadTooLong { len: usize, max: usize },
    /// The counter is above [`MAX_COUNTER`]: this sender can send no more under this key.
    CounterOutOfRange(u64),
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::PayloadTooLong { len, max } => write!(
                f,
                "payload of {len} bytes is longer than the {max} bytes a v3 frame holds"
            ),
            EncodeError::CounterOutOfRange(c) => {
                write!(f, "counter {c} is above the v3 maximum {MAX_COUNTER}")
            }
        }
    }
}

/// Why received bytes are not a valid v3 frame for these keys and group, in the order checked.
/// Everything up to [`DecodeError::BadTag`] is decided on the clear-text header, before any
/// crypto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than header + tag (50 bytes).
    TooShort,
    /// Longer than an ESP-NOW frame (250 bytes).
    TooLong,
    /// The first byte is not 0x03: a v2 frame (or another format), not v3.
    NotV3(u8),
    /// The frame belongs to another network.
    WrongGroup,
    /// Unknown frame type.
    UnknownType(u8),
    /// The tag does not match: corrupted, forged, or sealed under another key.
    BadTag,
    /// Unknown subtype of a timestamp frame.
    UnknownSubtype(u8),
    /// The body is too short for its frame type.
    BodyTooShort,
    /// The body is longer than its fixed-size frame type allows.
    BodyTooLong,
}

impl From<BodyError> for DecodeError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooShort => DecodeError::BodyTooShort,
            BodyError::TooLong => DecodeError::BodyTooLong,
            BodyError::UnknownSubtype(code) => DecodeError::UnknownSubtype(code),
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::TooShort => write!(f, "frame shorter than {MIN_FRAME_LEN} bytes"),
            DecodeError::TooLong => write!(f, "frame longer than {MAX_FRAME_LEN} bytes"),
            DecodeError::NotV3(v) => write!(f, "not a v3 frame (first byte {v:#04x})"),
            DecodeError::WrongGroup => f.write_str("frame belongs to another group"),
            DecodeError::UnknownType(t) => write!(f, "unknown frame type {t}"),
            DecodeError::BadTag => f.write_str("tag mismatch (corrupted frame or wrong key)"),
            DecodeError::UnknownSubtype(s) => write!(f, "unknown timestamp subtype {s}"),
            DecodeError::BodyTooShort => f.write_str("body too short for its frame type"),
            DecodeError::BodyTooLong => f.write_str("body too long for its frame type"),
        }
    }
}

/// Scratch space that [`decode`] decrypts the body into; decoded payloads borrow from it.
pub type DecodeBuf = [u8; MAX_BODY_LEN];

/// Which wire format `bytes` looks like, from its shape alone (no keys): `Some(3)` if it starts
/// with 0x03 and has a v3 length, else `Some(2)` if its length fits v2 (IV, whole AES blocks,
/// tag), else `None`. A v2 frame whose random IV starts with 0x03 and whose length also fits v3
/// is reported as 3 (see the module documentation); the v3 decoder then rejects it.
pub fn version(bytes: &[u8]) -> Option<u8> {
    let len = bytes.len();
    if len > MAX_FRAME_LEN {
        return None;
    }
    if bytes.first() == Some(&VERSION) && len >= MIN_FRAME_LEN {
        return Some(VERSION);
    }
    let v2_ciphertext = len.checked_sub(crate::IV_LEN + crate::TAG_LEN)?;
    if len >= crate::MIN_FRAME_LEN && v2_ciphertext.is_multiple_of(crate::BLOCK_LEN) {
        return Some(crate::VERSION);
    }
    None
}

/// The AEAD nonce of the frame sent by `sender` in `epoch` with `counter`:
/// `sender ‖ epoch ‖ counter (6 bytes, big-endian)`, the header's last 24 bytes. Unique per key
/// as long as sender ids are unique in the network and each sender never reuses a counter
/// value within an epoch. `counter` must be at most [`MAX_COUNTER`] (only its low 48 bits are
/// taken).
pub fn nonce(sender: &SenderId, epoch: &Epoch, counter: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..SENDER_LEN].copy_from_slice(&sender.0);
    n[SENDER_LEN..SENDER_LEN + EPOCH_LEN].copy_from_slice(&epoch.0);
    n[SENDER_LEN + EPOCH_LEN..].copy_from_slice(&counter.to_be_bytes()[8 - COUNTER_LEN..]);
    n
}

/// Seals `frame` from `sender` in `epoch` with `counter` under `keys` into `out`, and returns
/// the frame length (50..=250 bytes). `counter` must be above every counter this sender has
/// used before in this epoch under these keys (persisted in flash, see the module
/// documentation).
pub fn encode(
    frame: &Frame<'_>,
    keys: &Keys,
    sender: &SenderId,
    epoch: &Epoch,
    counter: u64,
    out: &mut [u8; MAX_FRAME_LEN],
) -> Result<usize, EncodeError> {
    let (frame_type, payload, max) = match frame {
        Frame::Data { payload, .. } => (TYPE_DATA, *payload, MAX_DATA_PAYLOAD),
        Frame::Timestamp { subtype, .. } => match subtype {
            TsSubtype::Backdata(payload) => (TYPE_TIMESTAMP, *payload, MAX_BACKDATA_PAYLOAD),
            _ => (TYPE_TIMESTAMP, &[][..], 0),
        },
        Frame::Ping { .. } => (TYPE_PING, &[][..], 0),
        Frame::PairRequest { .. } => (TYPE_PAIR_REQUEST, &[][..], 0),
        Frame::Wakeup { .. } => (TYPE_WAKEUP, &[][..], 0),
    };
    if payload.len() > max {
        return Err(EncodeError::PayloadTooLong {
            len: payload.len(),
            max,
        });
    }
    if counter > MAX_COUNTER {
        return Err(EncodeError::CounterOutOfRange(counter));
    }

    let (header, rest) = out.split_at_mut(HEADER_LEN);
    header[0] = VERSION;
    header[1] = frame_type;
    header[2..2 + GROUP_LEN].copy_from_slice(&keys.group.0);
    // The header's last 24 bytes are the nonce.
    header[2 + GROUP_LEN..].copy_from_slice(&nonce(sender, epoch, counter));

    let mut w = Writer::new(rest);
    match frame {
        Frame::Data { ts, tid, payload } => {
            w.put(&ts.to_be_bytes());
            w.put(&tid.0);
            w.put(payload);
        }
        Frame::Timestamp { subtype, ttid, ts } => body::write_timestamp(&mut w, subtype, ttid, ts),
        Frame::Ping { ts, tid } => {
            w.put(&ts.to_be_bytes());
            w.put(&tid.0);
        }
        Frame::PairRequest { challenge } => w.put(&challenge.0),
        Frame::Wakeup { tid } => w.put(&tid.0),
    }
    let body_len = w.len();
    let (body, tail) = rest.split_at_mut(body_len);
    let tag = keys
        .aead()
        .encrypt_inout_detached(&nonce(sender, epoch, counter).into(), header, body.into())
        // Only fails for bodies of gigabytes.
        .map_err(|_| EncodeError::PayloadTooLong { len: body_len, max })?;
    tail[..TAG_LEN].copy_from_slice(&tag);
    Ok(HEADER_LEN + body_len + TAG_LEN)
}

/// Checks and opens a received v3 frame for `group` under `keys`, decrypting the body into
/// `scratch`. Never panics, whatever `bytes` holds. The epoch and counter are returned, not
/// judged: replay protection (counter above the last accepted one, timestamp window) is the
/// caller's.
///
/// Order of checks: length bounds, version, group, type (all on the clear-text header, before
/// any crypto), tag (before decryption), subtype, body length.
pub fn decode<'s>(
    bytes: &[u8],
    keys: &Keys,
    group: &GroupId,
    scratch: &'s mut DecodeBuf,
) -> Result<(Header, Frame<'s>), DecodeError> {
    if bytes.len() < MIN_FRAME_LEN {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong);
    }
    let (header, rest) = bytes.split_at(HEADER_LEN);
    let (ciphertext, received_tag) = rest.split_at(rest.len() - TAG_LEN);
    if header[0] != VERSION {
        return Err(DecodeError::NotV3(header[0]));
    }
    if header[2..2 + GROUP_LEN] != group.0 {
        return Err(DecodeError::WrongGroup);
    }
    let frame_type = header[1];
    if !(TYPE_DATA..=TYPE_WAKEUP).contains(&frame_type) {
        return Err(DecodeError::UnknownType(frame_type));
    }
    // The header's last 24 bytes are the nonce: sender ‖ epoch ‖ counter.
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[2 + GROUP_LEN..]);
    let mut sender = [0u8; SENDER_LEN];
    sender.copy_from_slice(&nonce[..SENDER_LEN]);
    let mut epoch = [0u8; EPOCH_LEN];
    epoch.copy_from_slice(&nonce[SENDER_LEN..SENDER_LEN + EPOCH_LEN]);
    let mut counter = [0u8; 8];
    counter[8 - COUNTER_LEN..].copy_from_slice(&nonce[SENDER_LEN + EPOCH_LEN..]);
    let (sender, epoch, counter) = (SenderId(sender), Epoch(epoch), u64::from_be_bytes(counter));

    // ciphertext.len() ≤ 250 − 50 = 200 = scratch.len() by the bounds above.
    let body = &mut scratch[..ciphertext.len()];
    body.copy_from_slice(ciphertext);
    let mut tag = chacha20poly1305::Tag::default();
    tag.copy_from_slice(received_tag);
    // The AEAD verifies the tag (constant time) before it decrypts anything.
    keys.aead()
        .decrypt_inout_detached(&nonce.into(), header, body.into(), &tag)
        .map_err(|_| DecodeError::BadTag)?;
    let body: &'s [u8] = body;

    let mut group_id = [0u8; GROUP_LEN];
    group_id.copy_from_slice(&header[2..2 + GROUP_LEN]);
    let header = Header {
        group: GroupId(group_id),
        sender,
        epoch,
        counter,
    };
    Ok((header, parse_body(frame_type, body)?))
}

fn parse_body(frame_type: u8, body: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let mut r = Reader::new(body);
    match frame_type {
        TYPE_DATA => {
            let (ts, tid, payload) = body::data(body)?;
            Ok(Frame::Data { ts, tid, payload })
        }
        TYPE_TIMESTAMP => {
            let (subtype, ttid, ts) = body::timestamp(body)?;
            Ok(Frame::Timestamp { subtype, ttid, ts })
        }
        TYPE_PING => {
            let (ts, tid) = body::ping(body)?;
            Ok(Frame::Ping { ts, tid })
        }
        TYPE_PAIR_REQUEST => {
            let challenge = r.tid()?;
            r.end()?;
            Ok(Frame::PairRequest { challenge })
        }
        TYPE_WAKEUP => {
            let tid = r.tid()?;
            r.end()?;
            Ok(Frame::Wakeup { tid })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests;
