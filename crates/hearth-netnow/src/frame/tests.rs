//! Tests of the v2 frame codec: the published vectors, round trips of every frame type and
//! payload size, one test per decode error, and no-panic sweeps over arbitrary input.

use super::*;
use crate::body::{SUBTYPE_BACKDATA, SUBTYPE_CONFIRM, SUBTYPE_DEFAULT};
use crate::{MAX_BODY_LEN, MAX_INNER_LEN};

const PAIR_REQUEST_BLE_BLA: &str = "000102030405060708090a0b0c0d0e0f2b91a6184538634817919763bdc867896612071caee06d62d824c92b44a30b85e56f2111c9d3428f51555ffa588391ce9708b2bd3a148d810c0945fe";

fn unhex(s: &str, out: &mut [u8]) -> usize {
    let bytes = s.as_bytes();
    assert_eq!(bytes.len() % 2, 0);
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16).unwrap();
    }
    bytes.len() / 2
}

fn key() -> Key {
    Key::from_psk(b"bla")
}

fn group() -> GroupId {
    GroupId::from_name(b"ble")
}

const IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn sealed(frame: &Frame<'_>) -> ([u8; MAX_FRAME_LEN], usize) {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode(frame, &key(), &group(), &IV, &mut out).unwrap();
    (out, len)
}

/// Seals an arbitrary plaintext (length byte, inner, padding — as given) with a valid tag, to
/// reach the checks that come after the tag.
fn sealed_plaintext(plain: &[u8]) -> ([u8; MAX_FRAME_LEN], usize) {
    let mut buf = [0u8; MAX_CIPHERTEXT_LEN];
    buf[..plain.len()].copy_from_slice(plain);
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = seal(&key(), &IV, &mut buf[..plain.len()], &mut out);
    (out, len)
}

/// Builds a correctly padded plaintext around `inner`.
fn plaintext(inner: &[u8]) -> ([u8; MAX_CIPHERTEXT_LEN], usize) {
    let mut plain = [0u8; MAX_CIPHERTEXT_LEN];
    plain[0] = inner.len() as u8;
    plain[1..1 + inner.len()].copy_from_slice(inner);
    (plain, padded_len(inner.len()))
}

/// `version ‖ type ‖ group(ble) ‖ body`.
fn inner(version: u8, frame_type: u8, body: &[u8]) -> ([u8; MAX_INNER_LEN], usize) {
    let mut out = [0u8; MAX_INNER_LEN];
    out[0] = version;
    out[1] = frame_type;
    out[2..10].copy_from_slice(&group().0);
    out[10..10 + body.len()].copy_from_slice(body);
    (out, 10 + body.len())
}

fn decode_inner(version: u8, frame_type: u8, body: &[u8]) -> Result<(), DecodeError> {
    let (i, ilen) = inner(version, frame_type, body);
    let (p, plen) = plaintext(&i[..ilen]);
    let (f, flen) = sealed_plaintext(&p[..plen]);
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    decode(&f[..flen], &key(), &group(), &mut scratch).map(|_| ())
}

fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    decode(bytes, &key(), &group(), &mut scratch).map(|_| ())
}

fn ts(ms: u128) -> Timestamp {
    Timestamp::new(ms).unwrap()
}

#[test]
fn payload_limits_follow_from_the_250_byte_frame() {
    assert_eq!(MAX_CIPHERTEXT_LEN, 208);
    assert_eq!(MAX_INNER_LEN, 207);
    assert_eq!(MAX_BODY_LEN, 197);
    assert_eq!(MAX_DATA_PAYLOAD, 173);
    assert_eq!(MAX_BACKDATA_PAYLOAD, 172);
    // The largest frames are exactly 16 + 208 + 12 = 236 bytes: a 250-byte frame cannot hold
    // another block.
    let payload = [0xa5u8; MAX_DATA_PAYLOAD];
    let (_, len) = sealed(&Frame::Data {
        ts: ts(1),
        tid: Tid([1; 12]),
        payload: &payload,
    });
    assert_eq!(len, 236);
    let (_, len) = sealed(&Frame::Timestamp {
        subtype: TsSubtype::Backdata(&payload[..MAX_BACKDATA_PAYLOAD]),
        ttid: Tid([1; 12]),
        ts: ts(1),
    });
    assert_eq!(len, 236);
}

#[test]
fn pair_request_vector_encodes_byte_for_byte_and_decodes() {
    let mut expected = [0u8; MAX_FRAME_LEN];
    let expected_len = unhex(PAIR_REQUEST_BLE_BLA, &mut expected);
    assert_eq!(expected_len, 76);
    let (out, len) = sealed(&Frame::PairRequest);
    assert_eq!(&out[..len], &expected[..expected_len]);
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    assert_eq!(
        decode(&expected[..expected_len], &key(), &group(), &mut scratch),
        Ok(Frame::PairRequest)
    );
}

#[test]
fn timestamp_wire_form() {
    let t = ts(0x0102_0304_0506_0708_090a_0b0c);
    assert_eq!(t.to_be_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(Timestamp::from_be_bytes(t.to_be_bytes()), t);
    assert_eq!(Timestamp::from_be_bytes([0xff; 12]), Timestamp::MAX);
    assert_eq!(Timestamp::new(1u128 << 96), None);
    assert_eq!(Timestamp::new((1u128 << 96) - 1), Some(Timestamp::MAX));
}

fn round_trip(frame: Frame<'_>) {
    let (out, len) = sealed(&frame);
    assert!((MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len));
    assert!((len - IV_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN));
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    assert_eq!(
        decode(&out[..len], &key(), &group(), &mut scratch),
        Ok(frame)
    );
}

#[test]
fn round_trip_fixed_size_frames() {
    let tid = Tid([0x11; 12]);
    let other = Tid([0x22; 12]);
    round_trip(Frame::Ping {
        ts: ts(123_456),
        tid,
    });
    round_trip(Frame::Ping {
        ts: Timestamp::MAX,
        tid,
    });
    round_trip(Frame::PairRequest);
    round_trip(Frame::Wakeup { tid });
    round_trip(Frame::Timestamp {
        subtype: TsSubtype::Default,
        ttid: tid,
        ts: Timestamp::MAX,
    });
    round_trip(Frame::Timestamp {
        subtype: TsSubtype::Confirm(other),
        ttid: tid,
        ts: ts(42),
    });
}

#[test]
fn round_trip_every_payload_size() {
    let mut payload = [0u8; MAX_DATA_PAYLOAD];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
    for n in 0..=MAX_DATA_PAYLOAD {
        round_trip(Frame::Data {
            ts: ts(n as u128),
            tid: Tid([n as u8; 12]),
            payload: &payload[..n],
        });
    }
    for n in 0..=MAX_BACKDATA_PAYLOAD {
        round_trip(Frame::Timestamp {
            subtype: TsSubtype::Backdata(&payload[..n]),
            ttid: Tid([n as u8; 12]),
            ts: ts(n as u128),
        });
    }
}

#[test]
fn oversize_payloads_are_refused() {
    let payload = [0u8; MAX_DATA_PAYLOAD + 1];
    let mut out = [0u8; MAX_FRAME_LEN];
    let data = Frame::Data {
        ts: ts(0),
        tid: Tid::ZERO,
        payload: &payload,
    };
    assert_eq!(
        encode(&data, &key(), &group(), &IV, &mut out),
        Err(EncodeError::PayloadTooLong { len: 174, max: 173 })
    );
    let backdata = Frame::Timestamp {
        subtype: TsSubtype::Backdata(&payload[..MAX_BACKDATA_PAYLOAD + 1]),
        ttid: Tid::ZERO,
        ts: ts(0),
    };
    assert_eq!(
        encode(&backdata, &key(), &group(), &IV, &mut out),
        Err(EncodeError::PayloadTooLong { len: 173, max: 172 })
    );
}

fn sample() -> ([u8; MAX_FRAME_LEN], usize) {
    sealed(&Frame::Data {
        ts: ts(77),
        tid: Tid([3; 12]),
        payload: b"hello, central",
    })
}

#[test]
fn any_flipped_bit_is_a_bad_tag() {
    let (frame, len) = sample();
    assert_eq!(check(&frame[..len]), Ok(()));
    // Covers the IV (0..16), the ciphertext and the tag itself.
    for i in 0..len {
        for bit in 0..8 {
            let mut bad = frame;
            bad[i] ^= 1 << bit;
            assert_eq!(
                check(&bad[..len]),
                Err(DecodeError::BadTag),
                "byte {i} bit {bit}"
            );
        }
    }
}

#[test]
fn wrong_key_is_a_bad_tag_and_wrong_group_is_detected() {
    let (frame, len) = sample();
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    assert_eq!(
        decode(
            &frame[..len],
            &Key::from_psk(b"blb"),
            &group(),
            &mut scratch
        ),
        Err(DecodeError::BadTag)
    );
    assert_eq!(
        decode(
            &frame[..len],
            &key(),
            &GroupId::from_name(b"blf"),
            &mut scratch
        ),
        Err(DecodeError::WrongGroup)
    );
}

#[test]
fn every_truncation_is_rejected() {
    let (frame, len) = sample();
    assert_eq!(len, 92); // 16 + 4 blocks + 12
    for n in 0..len {
        let expected = if n < MIN_FRAME_LEN {
            DecodeError::TooShort
        } else if !(n - IV_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN) {
            DecodeError::NotBlockAligned
        } else {
            // 60 and 76 bytes: aligned, but the "tag" is now ciphertext bytes.
            DecodeError::BadTag
        };
        assert_eq!(check(&frame[..n]), Err(expected), "length {n}");
    }
}

#[test]
fn too_long_is_rejected_before_anything_else() {
    assert_eq!(check(&[0u8; MAX_FRAME_LEN + 1]), Err(DecodeError::TooLong));
    assert_eq!(check(&[0u8; 1000]), Err(DecodeError::TooLong));
}

#[test]
fn length_byte_beyond_the_plaintext() {
    let mut plain = [0u8; 32];
    plain[0] = 32; // only 31 bytes follow
    let (f, n) = sealed_plaintext(&plain);
    assert_eq!(check(&f[..n]), Err(DecodeError::BadLength));
    plain[0] = 255;
    let (f, n) = sealed_plaintext(&plain);
    assert_eq!(check(&f[..n]), Err(DecodeError::BadLength));
}

#[test]
fn padding_must_be_minimal_zeros() {
    let (i, ilen) = inner(VERSION, TYPE_WAKEUP, &[0; 24]);
    let (mut p, plen) = plaintext(&i[..ilen]);
    assert_eq!(plen, 48);
    let (f, n) = sealed_plaintext(&p[..plen]);
    assert_eq!(check(&f[..n]), Ok(()));
    // A non-zero padding byte.
    p[plen - 1] = 1;
    let (f, n) = sealed_plaintext(&p[..plen]);
    assert_eq!(check(&f[..n]), Err(DecodeError::BadPadding));
    // An extra all-zero block (the reference would accept it; nobody sends it).
    p[plen - 1] = 0;
    let (f, n) = sealed_plaintext(&p[..plen + 16]);
    assert_eq!(check(&f[..n]), Err(DecodeError::BadPadding));
}

#[test]
fn header_too_short() {
    for n in 0..HEADER_LEN {
        let (i, _) = inner(VERSION, TYPE_PING, &[]);
        let (p, plen) = plaintext(&i[..n]);
        let (f, flen) = sealed_plaintext(&p[..plen]);
        assert_eq!(
            check(&f[..flen]),
            Err(DecodeError::HeaderTooShort),
            "inner {n}"
        );
    }
}

#[test]
fn bad_version() {
    assert_eq!(decode_inner(VERSION, TYPE_PING, &[0; 24]), Ok(()));
    assert_eq!(
        decode_inner(3, TYPE_PING, &[0; 24]),
        Err(DecodeError::BadVersion(3))
    );
    assert_eq!(
        decode_inner(1, TYPE_PING, &[0; 24]),
        Err(DecodeError::BadVersion(1))
    );
}

#[test]
fn unknown_type_and_subtype() {
    for t in [0u8, 6, 0xff] {
        assert_eq!(
            decode_inner(VERSION, t, &[0; 24]),
            Err(DecodeError::UnknownType(t))
        );
    }
    let mut body = [0u8; 25];
    body[0] = 3;
    assert_eq!(
        decode_inner(VERSION, TYPE_TIMESTAMP, &body),
        Err(DecodeError::UnknownSubtype(3))
    );
}

#[test]
fn body_length_per_type() {
    // (type, first body byte, minimum body, fixed size?)
    let cases: [(u8, u8, usize, bool); 7] = [
        (TYPE_DATA, 0, 24, false),
        (TYPE_TIMESTAMP, SUBTYPE_DEFAULT, 25, true),
        (TYPE_TIMESTAMP, SUBTYPE_CONFIRM, 37, true),
        (TYPE_TIMESTAMP, SUBTYPE_BACKDATA, 25, false),
        (TYPE_PING, 0, 24, true),
        (TYPE_PAIR_REQUEST, 0, 24, true),
        (TYPE_WAKEUP, 0, 24, true),
    ];
    for (t, first, min, fixed) in cases {
        let mut body = [0u8; MAX_BODY_LEN];
        body[0] = first;
        // The subtype byte is needed to get past the subtype check.
        let shortest = usize::from(t == TYPE_TIMESTAMP);
        for n in shortest..min {
            assert_eq!(
                decode_inner(VERSION, t, &body[..n]),
                Err(DecodeError::BodyTooShort),
                "type {t}/{first}, body {n}"
            );
        }
        assert_eq!(decode_inner(VERSION, t, &body[..min]), Ok(()));
        let longer = if fixed {
            Err(DecodeError::BodyTooLong)
        } else {
            Ok(())
        };
        assert_eq!(decode_inner(VERSION, t, &body[..min + 1]), longer);
        assert_eq!(decode_inner(VERSION, t, &body[..MAX_BODY_LEN]), longer);
    }
    // An empty timestamp body has no subtype at all.
    assert_eq!(
        decode_inner(VERSION, TYPE_TIMESTAMP, &[]),
        Err(DecodeError::BodyTooShort)
    );
}

#[test]
fn zero_fields_of_pair_request_and_wakeup_are_not_checked() {
    let mut body = [0xeeu8; 24];
    assert_eq!(decode_inner(VERSION, TYPE_PAIR_REQUEST, &body), Ok(()));
    body[12..].copy_from_slice(&[7; 12]);
    let (i, ilen) = inner(VERSION, TYPE_WAKEUP, &body);
    let (p, plen) = plaintext(&i[..ilen]);
    let (f, flen) = sealed_plaintext(&p[..plen]);
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    assert_eq!(
        decode(&f[..flen], &key(), &group(), &mut scratch),
        Ok(Frame::Wakeup { tid: Tid([7; 12]) })
    );
}

#[test]
fn error_messages() {
    extern crate std;
    use std::string::ToString;
    assert_eq!(
        DecodeError::BadVersion(3).to_string(),
        "unsupported protocol version 0x03"
    );
    assert_eq!(
        EncodeError::PayloadTooLong { len: 174, max: 173 }.to_string(),
        "payload of 174 bytes is longer than the 173 bytes a frame holds"
    );
}

/// xorshift64*: a small deterministic generator for the sweeps below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.next() as u8;
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 300];
    for _ in 0..5000 {
        let n = rng.below(buf.len() + 1);
        rng.fill(&mut buf[..n]);
        let _ = check(&buf[..n]);
    }
}

#[test]
fn random_authenticated_plaintexts_never_panic() {
    // Random bytes fail the tag; these get a valid tag so every later check is exercised.
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut plain = [0u8; MAX_CIPHERTEXT_LEN];
    let mut seen_ok = 0;
    for round in 0..5000 {
        let blocks = 1 + rng.below(MAX_CIPHERTEXT_LEN / BLOCK_LEN);
        let n = blocks * BLOCK_LEN;
        rng.fill(&mut plain[..n]);
        // Make most rounds structurally plausible so that the deep checks are reached.
        if round % 4 != 0 {
            let inner_len = rng.below(n);
            plain[0] = inner_len as u8;
            let min_len = padded_len(inner_len);
            plain[1 + inner_len..].fill(0);
            if inner_len >= HEADER_LEN {
                plain[1] = VERSION;
                plain[2] = 1 + rng.below(5) as u8;
                plain[3..11].copy_from_slice(&group().0);
                if plain[2] == TYPE_TIMESTAMP && inner_len > HEADER_LEN {
                    plain[11] = rng.below(4) as u8;
                }
            }
            let (f, flen) = sealed_plaintext(&plain[..min_len]);
            if check(&f[..flen]).is_ok() {
                seen_ok += 1;
            }
        } else {
            let (f, flen) = sealed_plaintext(&plain[..n]);
            let _ = check(&f[..flen]);
        }
    }
    assert!(
        seen_ok > 100,
        "the sweep should also reach valid frames ({seen_ok})"
    );
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(42);
    let (frame, len) = sample();
    for _ in 0..3000 {
        let mut bad = frame;
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(len);
            bad[i] = rng.next() as u8;
        }
        let n = rng.below(MAX_FRAME_LEN + 1);
        let _ = check(&bad[..n]);
    }
}
