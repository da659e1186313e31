//! `hearth-netnow` is the ESP-NOW secure link of Hearth, sans-IO (no radio, no clock, no RNG:
//! the caller passes time and randomness in and carries frames out). This module holds the
//! reference-compatible **wire format v2**: the frame codec and its crypto. The **central** and
//! **peripheral** state machines are in [`central`] and [`peripheral`], over one codec for both
//! formats ([`link`]); `docs/NETNOW.md` describes the protocol and its differences from the
//! reference.
//!
//! Hearth's own **wire format v3** (ChaCha20-Poly1305, HKDF-SHA256 key schedule, per-sender
//! identity and counter) is in [`v3`]; [`v3::version`] tells the two formats apart.
//!
//! Replay protection for both (bounded tid caches, per-sender counters, time-acceptance rules)
//! is in [`replay`].
//!
//! ```
//! use hearth_netnow::{decode, encode, Frame, GroupId, Key, Tid, Timestamp, DecodeBuf, MAX_FRAME_LEN};
//!
//! let key = Key::from_psk(b"bla");
//! let group = GroupId::from_name(b"ble");
//! let frame = Frame::Data { ts: Timestamp::new(1_000).unwrap(), tid: Tid([9; 12]), payload: b"21.5" };
//!
//! let mut air = [0u8; MAX_FRAME_LEN];
//! let iv = [0x42; 16]; // from the platform RNG in real use
//! let len = encode(&frame, &key, &group, &iv, &mut air).unwrap();
//!
//! let mut scratch: DecodeBuf = [0; _];
//! assert_eq!(decode(&air[..len], &key, &group, &mut scratch), Ok(frame));
//! ```
//!
//! # Wire format v2
//!
//! `frame = IV(16) ‖ AES-256-CBC(key, IV, P) ‖ tag(12)`, at most 250 bytes, where
//! `P = len(inner)(1) ‖ inner ‖ zeros to a multiple of 16` and
//! `inner = 0x02 ‖ type(1) ‖ group(8) ‖ body`. The tag covers IV ‖ ciphertext (encrypt-then-MAC);
//! see [`tag`] for its exact (non-RFC 2104) construction. Bodies are described on [`Frame`].
//!
//! # Sizes
//!
//! 250 − 16 (IV) − 12 (tag) = 222 bytes for ciphertext, rounded down to whole AES blocks: 208.
//! One byte of that is the length byte, so `inner` ≤ 207; minus the 10-byte header that leaves
//! a 197-byte body. Hence [`MAX_DATA_PAYLOAD`] = 197 − 24 = 173 and
//! [`MAX_BACKDATA_PAYLOAD`] = 197 − 25 = 172.
//!
//! # Differences from the reference (all invisible to a reference peer)
//!
//! - Tags are compared in constant time ([`tag_matches`]).
//! - The tag is checked before anything is decrypted or parsed.
//! - Decoding is strict: the padding must be the minimal zero padding the reference (and
//!   [`encode`]) produce, fixed-size bodies must have exactly their size, and unknown versions,
//!   types and subtypes are errors. Each rejection is its own [`DecodeError`].
//! - Encoding checks payload sizes and returns [`EncodeError`] instead of letting the radio
//!   driver fail.
//! - Nothing panics on any input; [`decode`] is a ready `cargo fuzz` target.
#![no_std]
#![forbid(unsafe_code)]

mod body;
pub mod central;
mod crypto;
mod frame;
pub mod link;
pub mod peripheral;
pub mod replay;
pub mod v3;

pub use crypto::{tag, tag_matches, GroupId, Key};
pub use frame::{
    decode, encode, DecodeBuf, DecodeError, EncodeError, Frame, Tid, Timestamp, TsSubtype,
};

/// Protocol version byte of wire format v2.
pub const VERSION: u8 = 0x02;
/// Largest ESP-NOW (v1) frame.
pub const MAX_FRAME_LEN: usize = 250;
/// Length of a prepared key.
pub const KEY_LEN: usize = 32;
/// Length of the initialisation vector at the start of every frame.
pub const IV_LEN: usize = 16;
/// Length of the truncated tag at the end of every frame.
pub const TAG_LEN: usize = 12;
/// AES block size.
pub const BLOCK_LEN: usize = 16;
/// Length of a group id.
pub const GROUP_LEN: usize = 8;
/// Length of a transaction id (tid, ttid).
pub const TID_LEN: usize = 12;
/// Length of an encoded timestamp.
pub const TS_LEN: usize = 12;
/// `version ‖ type ‖ group`.
pub const HEADER_LEN: usize = 2 + GROUP_LEN;
/// Smallest frame: IV, one cipher block, tag.
pub const MIN_FRAME_LEN: usize = IV_LEN + BLOCK_LEN + TAG_LEN;
/// Most ciphertext that fits a frame: whole blocks only.
pub const MAX_CIPHERTEXT_LEN: usize = (MAX_FRAME_LEN - IV_LEN - TAG_LEN) / BLOCK_LEN * BLOCK_LEN;
/// Longest `inner` (everything after the length byte, before padding).
pub const MAX_INNER_LEN: usize = MAX_CIPHERTEXT_LEN - 1;
/// Longest body after the header.
pub const MAX_BODY_LEN: usize = MAX_INNER_LEN - HEADER_LEN;
/// Longest payload of a [`Frame::Data`] (173).
pub const MAX_DATA_PAYLOAD: usize = MAX_BODY_LEN - TS_LEN - TID_LEN;
/// Longest payload of a [`TsSubtype::Backdata`] (172).
pub const MAX_BACKDATA_PAYLOAD: usize = MAX_BODY_LEN - 1 - TID_LEN - TS_LEN;
