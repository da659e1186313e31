//! The v2 frame: the typed [`Frame`] values, their bodies, and [`encode`] / [`decode`] between
//! them and sealed bytes on the air (padding, encryption, tag).

use crate::body::{self, BodyError, Reader, Writer};
use crate::crypto::{cbc_decrypt, cbc_encrypt, tag, tag_matches, GroupId, Key};
use crate::{
    BLOCK_LEN, GROUP_LEN, HEADER_LEN, IV_LEN, MAX_BACKDATA_PAYLOAD, MAX_CIPHERTEXT_LEN,
    MAX_DATA_PAYLOAD, MAX_FRAME_LEN, MAX_INNER_LEN, MIN_FRAME_LEN, TAG_LEN, TID_LEN, TS_LEN,
    VERSION,
};

/// Network time: an unsigned 96-bit count of milliseconds, big-endian on the wire.
///
/// Held in a `u128` whose top 32 bits are always zero. A `u64` would not do: the central starts
/// its clock at 95 random bits, so real v2 timestamps use the whole width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u128);

impl Timestamp {
    /// Zero, carried by pair requests and wakeups.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest value that fits 12 bytes, 2^96 − 1.
    pub const MAX: Timestamp = Timestamp((1u128 << 96) - 1);

    /// `ms` as a timestamp, or `None` if it needs more than 96 bits.
    pub const fn new(ms: u128) -> Option<Timestamp> {
        if ms <= Timestamp::MAX.0 {
            Some(Timestamp(ms))
        } else {
            None
        }
    }

    /// The number of milliseconds.
    pub const fn as_millis(self) -> u128 {
        self.0
    }

    /// Reads the 12-byte big-endian wire form.
    pub fn from_be_bytes(bytes: [u8; TS_LEN]) -> Timestamp {
        let mut wide = [0u8; 16];
        wide[16 - TS_LEN..].copy_from_slice(&bytes);
        Timestamp(u128::from_be_bytes(wide))
    }

    /// The 12-byte big-endian wire form.
    pub fn to_be_bytes(self) -> [u8; TS_LEN] {
        let mut out = [0u8; TS_LEN];
        out.copy_from_slice(&self.0.to_be_bytes()[16 - TS_LEN..]);
        out
    }
}

/// A transaction id: 12 random bytes that identify one frame (tid) or one central broadcast
/// (ttid) for replay detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tid(pub [u8; TID_LEN]);

impl Tid {
    /// All zeros, carried by pair requests.
    pub const ZERO: Tid = Tid([0; TID_LEN]);
}

/// What a central's timestamp broadcast carries besides the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsSubtype<'a> {
    /// Subtype 0: just the time.
    Default,
    /// Subtype 1: confirms receipt of the peripheral frame with this tid.
    Confirm(Tid),
    /// Subtype 2: data for the peripherals, at most [`MAX_BACKDATA_PAYLOAD`] bytes.
    Backdata(&'a [u8]),
}

/// One v2 frame, decoded. Payloads borrow from the caller's buffer.
///
/// Peripheral frames put the timestamp before the tid; the central's broadcast puts the ttid
/// before the timestamp. The field order of each variant follows its wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Type 1, peripheral → central (unicast): `ts ‖ tid ‖ payload`, payload at most
    /// [`MAX_DATA_PAYLOAD`] bytes.
    Data {
        ts: Timestamp,
        tid: Tid,
        payload: &'a [u8],
    },
    /// Type 2, central → broadcast: `subtype ‖ ttid ‖ ts ‖ extra`.
    Timestamp {
        subtype: TsSubtype<'a>,
        ttid: Tid,
        ts: Timestamp,
    },
    /// Type 3, peripheral → central (unicast): `ts ‖ tid`; ts is the peripheral's estimate.
    Ping { ts: Timestamp, tid: Tid },
    /// Type 4, peripheral → broadcast: 24 zero bytes. On decode their content is not looked
    /// at (the tag already authenticates them).
    PairRequest,
    /// Type 5, peripheral → central (unicast): 12 zero bytes (ts, ignored on decode) ‖ tid.
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
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::PayloadTooLong { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes is longer than the {max} bytes a frame holds"
                )
            }
        }
    }
}

/// Why received bytes are not a valid v2 frame for this key and group, in the order checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than IV + one block + tag (44 bytes).
    TooShort,
    /// Longer than an ESP-NOW frame (250 bytes).
    TooLong,
    /// The ciphertext is not a whole number of AES blocks.
    NotBlockAligned,
    /// The tag does not match: corrupted, forged, or sealed under another key.
    BadTag,
    /// The length byte says the inner packet is longer than the plaintext holds.
    BadLength,
    /// The padding after the inner packet is not the minimal run of zeros.
    BadPadding,
    /// The inner packet is shorter than its 10-byte header.
    HeaderTooShort,
    /// Unknown protocol version (v2 is 0x02).
    BadVersion(u8),
    /// Sealed with the right key but for another group.
    WrongGroup,
    /// Unknown frame type.
    UnknownType(u8),
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
            DecodeError::NotBlockAligned => f.write_str("ciphertext is not whole AES blocks"),
            DecodeError::BadTag => f.write_str("tag mismatch (corrupted frame or wrong key)"),
            DecodeError::BadLength => f.write_str("length byte exceeds the plaintext"),
            DecodeError::BadPadding => f.write_str("padding is not minimal zero padding"),
            DecodeError::HeaderTooShort => f.write_str("inner packet shorter than its header"),
            DecodeError::BadVersion(v) => write!(f, "unsupported protocol version {v:#04x}"),
            DecodeError::WrongGroup => f.write_str("frame belongs to another group"),
            DecodeError::UnknownType(t) => write!(f, "unknown frame type {t}"),
            DecodeError::UnknownSubtype(s) => write!(f, "unknown timestamp subtype {s}"),
            DecodeError::BodyTooShort => f.write_str("body too short for its frame type"),
            DecodeError::BodyTooLong => f.write_str("body too long for its frame type"),
        }
    }
}

/// Scratch space that [`decode`] decrypts into; decoded payloads borrow from it.
pub type DecodeBuf = [u8; MAX_CIPHERTEXT_LEN];

/// Seals `frame` for `group` under `key` with the caller's random `iv` into `out`, and returns
/// the frame length (44..=250 bytes). The IV must be fresh random bytes for every frame.
pub fn encode(
    frame: &Frame<'_>,
    key: &Key,
    group: &GroupId,
    iv: &[u8; IV_LEN],
    out: &mut [u8; MAX_FRAME_LEN],
) -> Result<usize, EncodeError> {
    let (frame_type, payload, max) = match frame {
        Frame::Data { payload, .. } => (TYPE_DATA, *payload, MAX_DATA_PAYLOAD),
        Frame::Timestamp { subtype, .. } => match subtype {
            TsSubtype::Backdata(payload) => (TYPE_TIMESTAMP, *payload, MAX_BACKDATA_PAYLOAD),
            _ => (TYPE_TIMESTAMP, &[][..], 0),
        },
        Frame::Ping { .. } => (TYPE_PING, &[][..], 0),
        Frame::PairRequest => (TYPE_PAIR_REQUEST, &[][..], 0),
        Frame::Wakeup { .. } => (TYPE_WAKEUP, &[][..], 0),
    };
    if payload.len() > max {
        return Err(EncodeError::PayloadTooLong {
            len: payload.len(),
            max,
        });
    }

    let mut plain: DecodeBuf = [0; MAX_CIPHERTEXT_LEN];
    let mut w = Writer::new(&mut plain[1..]);
    w.put(&[VERSION, frame_type]);
    w.put(&group.0);
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
        Frame::PairRequest => {
            w.put(&Timestamp::ZERO.to_be_bytes());
            w.put(&Tid::ZERO.0);
        }
        Frame::Wakeup { tid } => {
            w.put(&Timestamp::ZERO.to_be_bytes());
            w.put(&tid.0);
        }
    }
    let inner_len = w.len();
    debug_assert!(inner_len <= MAX_INNER_LEN);
    // inner_len ≤ 207 by the payload checks above, so it fits the length byte.
    plain[0] = inner_len as u8;
    Ok(seal(key, iv, &mut plain[..padded_len(inner_len)], out))
}

/// Length of the plaintext (length byte + inner + zero padding) for an inner packet.
const fn padded_len(inner_len: usize) -> usize {
    (1 + inner_len).div_ceil(BLOCK_LEN) * BLOCK_LEN
}

/// Encrypts an already padded plaintext (≤ 208 bytes, whole blocks) and writes
/// `IV ‖ ciphertext ‖ tag` into `out`; returns its length.
fn seal(key: &Key, iv: &[u8; IV_LEN], plain: &mut [u8], out: &mut [u8; MAX_FRAME_LEN]) -> usize {
    cbc_encrypt(key, iv, plain);
    let body_end = IV_LEN + plain.len();
    out[..IV_LEN].copy_from_slice(iv);
    out[IV_LEN..body_end].copy_from_slice(plain);
    let t = tag(key, &out[..body_end]);
    out[body_end..body_end + TAG_LEN].copy_from_slice(&t);
    body_end + TAG_LEN
}

/// Checks and opens a received frame sealed under `key` for `group`, decrypting into
/// `scratch`. Never panics, whatever `bytes` holds.
///
/// Order of checks: length bounds, tag (before any decryption), length byte, padding, header
/// length, version, group, type, subtype, body length.
pub fn decode<'s>(
    bytes: &[u8],
    key: &Key,
    group: &GroupId,
    scratch: &'s mut DecodeBuf,
) -> Result<Frame<'s>, DecodeError> {
    if bytes.len() < MIN_FRAME_LEN {
        return Err(DecodeError::TooShort);
    }
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong);
    }
    let (sealed, received_tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let (iv, ciphertext) = sealed.split_at(IV_LEN);
    if !ciphertext.len().is_multiple_of(BLOCK_LEN) {
        return Err(DecodeError::NotBlockAligned);
    }
    let mut received = [0u8; TAG_LEN];
    received.copy_from_slice(received_tag);
    if !tag_matches(&tag(key, sealed), &received) {
        return Err(DecodeError::BadTag);
    }

    let mut iv_bytes = [0u8; IV_LEN];
    iv_bytes.copy_from_slice(iv);
    // 16 ≤ ciphertext.len() ≤ 208 = scratch.len() by the bounds above.
    let plain = &mut scratch[..ciphertext.len()];
    plain.copy_from_slice(ciphertext);
    cbc_decrypt(key, &iv_bytes, plain);
    let plain: &'s [u8] = plain;

    let inner_len = usize::from(plain[0]);
    if inner_len > plain.len() - 1 {
        return Err(DecodeError::BadLength);
    }
    if padded_len(inner_len) != plain.len() || plain[1 + inner_len..].iter().any(|&b| b != 0) {
        return Err(DecodeError::BadPadding);
    }
    let inner = &plain[1..1 + inner_len];
    if inner.len() < HEADER_LEN {
        return Err(DecodeError::HeaderTooShort);
    }
    let (header, body) = inner.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(DecodeError::BadVersion(header[0]));
    }
    if header[2..2 + GROUP_LEN] != group.0 {
        return Err(DecodeError::WrongGroup);
    }
    parse_body(header[1], body)
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
            r.ts()?;
            r.tid()?;
            r.end()?;
            Ok(Frame::PairRequest)
        }
        TYPE_WAKEUP => {
            r.ts()?;
            let tid = r.tid()?;
            r.end()?;
            Ok(Frame::Wakeup { tid })
        }
        other => Err(DecodeError::UnknownType(other)),
    }
}

#[cfg(test)]
mod tests;
