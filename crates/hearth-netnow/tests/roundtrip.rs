//! Property tests of both wire formats, over arbitrary field values, PSKs and group names:
//!
//! - every frame kind round-trips (v3 with its header too), payloads up to each format's maxima;
//! - any single-bit flip anywhere in a sealed frame makes decoding fail (every bit is tried);
//! - decoding arbitrary or mangled bytes never panics and never accepts them;
//! - a payload one byte (or more) over the maximum is `PayloadTooLong`, a v3 counter over
//!   `MAX_COUNTER` is `CounterOutOfRange` (encode; the 6-byte field cannot hold more);
//! - another key or group never decodes a frame, nor does the other format's decoder.
//!
//! The seed corpora of the cargo-fuzz targets (`fuzz/seeds/<target>/`) are checked here too, and
//! `cargo test -p hearth-netnow --test roundtrip -- --ignored write_fuzz_seeds` rewrites them.

use std::path::PathBuf;

use hearth_netnow::v3::{self, Keys, SenderId};
use hearth_netnow::{
    decode, encode, DecodeBuf, DecodeError, EncodeError, Frame, GroupId, Key, Tid, Timestamp,
    TsSubtype, IV_LEN, MAX_BACKDATA_PAYLOAD, MAX_DATA_PAYLOAD, MAX_FRAME_LEN, TID_LEN,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

/// The fields of one frame of either format, owned so that strategies can generate them;
/// [`Fields::v2`] and [`Fields::v3`] borrow them as frames.
#[derive(Clone, Debug)]
enum Fields {
    Data {
        ts: Timestamp,
        tid: Tid,
        payload: Vec<u8>,
    },
    TsDefault {
        ttid: Tid,
        ts: Timestamp,
    },
    TsConfirm {
        confirmed: Tid,
        ttid: Tid,
        ts: Timestamp,
    },
    TsBackdata {
        payload: Vec<u8>,
        ttid: Tid,
        ts: Timestamp,
    },
    Ping {
        ts: Timestamp,
        tid: Tid,
    },
    /// v2 pair requests carry no challenge (24 zero bytes); v3 ones do.
    PairRequest {
        challenge: Tid,
    },
    Wakeup {
        tid: Tid,
    },
}

impl Fields {
    fn v2(&self) -> Frame<'_> {
        match self {
            Fields::Data { ts, tid, payload } => Frame::Data {
                ts: *ts,
                tid: *tid,
                payload,
            },
            Fields::TsDefault { ttid, ts } => Frame::Timestamp {
                subtype: TsSubtype::Default,
                ttid: *ttid,
                ts: *ts,
            },
            Fields::TsConfirm {
                confirmed,
                ttid,
                ts,
            } => Frame::Timestamp {
                subtype: TsSubtype::Confirm(*confirmed),
                ttid: *ttid,
                ts: *ts,
            },
            Fields::TsBackdata { payload, ttid, ts } => Frame::Timestamp {
                subtype: TsSubtype::Backdata(payload),
                ttid: *ttid,
                ts: *ts,
            },
            Fields::Ping { ts, tid } => Frame::Ping { ts: *ts, tid: *tid },
            Fields::PairRequest { .. } => Frame::PairRequest,
            Fields::Wakeup { tid } => Frame::Wakeup { tid: *tid },
        }
    }

    fn v3(&self) -> v3::Frame<'_> {
        match self {
            Fields::Data { ts, tid, payload } => v3::Frame::Data {
                ts: *ts,
                tid: *tid,
                payload,
            },
            Fields::TsDefault { ttid, ts } => v3::Frame::Timestamp {
                subtype: TsSubtype::Default,
                ttid: *ttid,
                ts: *ts,
            },
            Fields::TsConfirm {
                confirmed,
                ttid,
                ts,
            } => v3::Frame::Timestamp {
                subtype: TsSubtype::Confirm(*confirmed),
                ttid: *ttid,
                ts: *ts,
            },
            Fields::TsBackdata { payload, ttid, ts } => v3::Frame::Timestamp {
                subtype: TsSubtype::Backdata(payload),
                ttid: *ttid,
                ts: *ts,
            },
            Fields::Ping { ts, tid } => v3::Frame::Ping { ts: *ts, tid: *tid },
            Fields::PairRequest { challenge } => v3::Frame::PairRequest {
                challenge: *challenge,
            },
            Fields::Wakeup { tid } => v3::Frame::Wakeup { tid: *tid },
        }
    }
}

// --- strategies ------------------------------------------------------------------------------

/// Any 96-bit timestamp, with the bounds and small values (the upper bits zero) well covered.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    let max = Timestamp::MAX.as_millis();
    prop_oneof![
        1 => Just(0),
        1 => Just(max),
        6 => 0..=max,
        2 => 0..=u128::from(u64::MAX),
    ]
    .prop_map(|ms| Timestamp::new(ms).expect("at most 96 bits"))
}

fn tid() -> impl Strategy<Value = Tid> {
    any::<[u8; TID_LEN]>().prop_map(Tid)
}

/// Up to `max` arbitrary bytes, exactly `max` a quarter of the time.
fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => vec(any::<u8>(), 0..=max), 1 => vec(any::<u8>(), max)]
}

/// Every frame kind, payloads up to `max_data` (data) and `max_backdata` (timestamp backdata).
fn fields(max_data: usize, max_backdata: usize) -> impl Strategy<Value = Fields> {
    prop_oneof![
        3 => (timestamp(), tid(), payload(max_data))
            .prop_map(|(ts, tid, payload)| Fields::Data { ts, tid, payload }),
        1 => (tid(), timestamp()).prop_map(|(ttid, ts)| Fields::TsDefault { ttid, ts }),
        1 => (tid(), tid(), timestamp())
            .prop_map(|(confirmed, ttid, ts)| Fields::TsConfirm { confirmed, ttid, ts }),
        3 => (payload(max_backdata), tid(), timestamp())
            .prop_map(|(payload, ttid, ts)| Fields::TsBackdata { payload, ttid, ts }),
        1 => (timestamp(), tid()).prop_map(|(ts, tid)| Fields::Ping { ts, tid }),
        1 => tid().prop_map(|challenge| Fields::PairRequest { challenge }),
        1 => tid().prop_map(|tid| Fields::Wakeup { tid }),
    ]
}

fn fields_v2() -> impl Strategy<Value = Fields> {
    fields(MAX_DATA_PAYLOAD, MAX_BACKDATA_PAYLOAD)
}

fn fields_v3() -> impl Strategy<Value = Fields> {
    fields(v3::MAX_DATA_PAYLOAD, v3::MAX_BACKDATA_PAYLOAD)
}

/// PSKs of 0..=48 bytes: v2 zero-pads those up to 32 bytes and hashes longer ones.
fn psk() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=48)
}

/// Group names of 0..=80 bytes: past 64, HKDF's HMAC hashes the salt first.
fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=80)
}

fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0), 1 => Just(v3::MAX_COUNTER), 6 => 0..=v3::MAX_COUNTER]
}

fn sender() -> impl Strategy<Value = SenderId> {
    any::<[u8; v3::SENDER_LEN]>().prop_map(SenderId)
}

/// How far past a maximum a too-long payload goes: exactly one byte half the time.
fn excess() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1), 1..=100usize]
}

// --- helpers ---------------------------------------------------------------------------------

fn seal_v2(frame: &Frame<'_>, key: &Key, group: &GroupId, iv: &[u8; IV_LEN]) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode(frame, key, group, iv, &mut out).expect("v2 frame within limits encodes");
    out[..len].to_vec()
}

/// The counter epoch of every v3 frame these tests seal (a device draws its own at random).
const EPOCH: v3::Epoch = v3::Epoch([0xe0; v3::EPOCH_LEN]);

fn seal_v3(frame: &v3::Frame<'_>, keys: &Keys, sender: &SenderId, counter: u64) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = v3::encode(frame, keys, sender, &EPOCH, counter, &mut out)
        .expect("v3 frame within limits encodes");
    out[..len].to_vec()
}

fn open_v2(bytes: &[u8], key: &Key, group: &GroupId) -> Result<(), DecodeError> {
    let mut scratch: DecodeBuf = [0; _];
    decode(bytes, key, group, &mut scratch).map(|_| ())
}

fn open_v3(bytes: &[u8], keys: &Keys, group: &GroupId) -> Result<(), v3::DecodeError> {
    let mut scratch: v3::DecodeBuf = [0; _];
    v3::decode(bytes, keys, group, &mut scratch).map(|_| ())
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// 256 cases each (the file runs in well under a second). A failing case is saved in
/// `tests/roundtrip.proptest-regressions`, to be committed, and replayed first from then on;
/// proptest's default location needs a `lib.rs` beside the test, which `tests/` lacks.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(256)
    }
}

// --- properties ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn v2_round_trip(
        f in fields_v2(), psk in psk(), name in name(), iv in any::<[u8; IV_LEN]>()
    ) {
        let (key, group) = (Key::from_psk(&psk), GroupId::from_name(&name));
        let bytes = seal_v2(&f.v2(), &key, &group, &iv);
        prop_assert!((hearth_netnow::MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&bytes.len()));
        prop_assert_eq!(&bytes[..IV_LEN], &iv[..]);
        let mut scratch: DecodeBuf = [0; _];
        prop_assert_eq!(decode(&bytes, &key, &group, &mut scratch), Ok(f.v2()));
        // Whatever the v3 decoder makes of it (v3::version says 3 when the IV starts with 0x03),
        // it is not a v3 frame.
        let keys = Keys::derive(&psk, &name);
        prop_assert!(open_v3(&bytes, &keys, &keys.group_id()).is_err());
    }

    #[test]
    fn v3_round_trip(
        f in fields_v3(), psk in psk(), name in name(), sender in sender(), counter in counter()
    ) {
        let keys = Keys::derive(&psk, &name);
        let bytes = seal_v3(&f.v3(), &keys, &sender, counter);
        prop_assert!((v3::MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&bytes.len()));
        prop_assert_eq!(v3::version(&bytes), Some(v3::VERSION));
        let mut scratch: v3::DecodeBuf = [0; _];
        let header = v3::Header { group: keys.group_id(), sender, epoch: EPOCH, counter };
        prop_assert_eq!(
            v3::decode(&bytes, &keys, &keys.group_id(), &mut scratch),
            Ok((header, f.v3()))
        );
        prop_assert!(open_v2(&bytes, &Key::from_psk(&psk), &GroupId::from_name(&name)).is_err());
    }

    /// Every bit of the frame is covered by the tag (IV and ciphertext) or is the tag.
    #[test]
    fn v2_every_single_bit_flip_fails(
        f in fields_v2(), psk in psk(), name in name(), iv in any::<[u8; IV_LEN]>()
    ) {
        let (key, group) = (Key::from_psk(&psk), GroupId::from_name(&name));
        let bytes = seal_v2(&f.v2(), &key, &group, &iv);
        for bit in 0..bytes.len() * 8 {
            prop_assert_eq!(
                open_v2(&flip(&bytes, bit), &key, &group), Err(DecodeError::BadTag), "bit {}", bit
            );
        }
    }

    /// A flipped header bit fails a header check or the tag (the header is the AEAD's
    /// associated data); a flipped body or tag bit fails the tag.
    #[test]
    fn v3_every_single_bit_flip_fails(
        f in fields_v3(), psk in psk(), name in name(), sender in sender(), counter in counter()
    ) {
        let keys = Keys::derive(&psk, &name);
        let bytes = seal_v3(&f.v3(), &keys, &sender, counter);
        for bit in 0..bytes.len() * 8 {
            let result = open_v3(&flip(&bytes, bit), &keys, &keys.group_id());
            if bit / 8 < v3::HEADER_LEN {
                prop_assert!(result.is_err(), "bit {}: {:?}", bit, result);
            } else {
                prop_assert_eq!(result, Err(v3::DecodeError::BadTag), "bit {}", bit);
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..=300)) {
        let (key, group) = (Key::from_psk(b"bla"), GroupId::from_name(b"ble"));
        prop_assert!(open_v2(&bytes, &key, &group).is_err());
        let keys = Keys::derive(b"bla", b"ble");
        prop_assert!(open_v3(&bytes, &keys, &keys.group_id()).is_err());
        let _ = v3::version(&bytes);
    }

    /// A valid frame cut anywhere and followed by arbitrary bytes (up to 300 in all): this
    /// reaches the checks behind v3's clear-text header and v2's length rules with real prefixes.
    #[test]
    fn decoding_mangled_frames_never_panics(
        f in fields_v3(), sender in sender(), counter in counter(), iv in any::<[u8; IV_LEN]>(),
        cut in any::<Index>(), tail in vec(any::<u8>(), 0..=300)
    ) {
        let (key, group) = (Key::from_psk(b"bla"), GroupId::from_name(b"ble"));
        let keys = Keys::derive(b"bla", b"ble");
        let mut frames = vec![seal_v3(&f.v3(), &keys, &sender, counter)];
        if let Ok(v2_fields) = shrink_to_v2(&f) {
            frames.push(seal_v2(&v2_fields.v2(), &key, &group, &iv));
        }
        for frame in frames {
            let mut bytes = frame[..cut.index(frame.len() + 1)].to_vec();
            bytes.extend_from_slice(&tail);
            bytes.truncate(300);
            let (v2, v3) = (open_v2(&bytes, &key, &group), open_v3(&bytes, &keys, &keys.group_id()));
            if bytes != frame {
                prop_assert!(v2.is_err() && v3.is_err(), "{:?} {:?} for {:02x?}", v2, v3, bytes);
            }
        }
    }

    #[test]
    fn payload_over_the_maximum_is_rejected(
        ts in timestamp(), tid in tid(), extra in excess(), byte in any::<u8>(),
        iv in any::<[u8; IV_LEN]>(), sender in sender(), counter in counter()
    ) {
        let (key, group) = (Key::from_psk(b"bla"), GroupId::from_name(b"ble"));
        let keys = Keys::derive(b"bla", b"ble");
        let mut out = [0u8; MAX_FRAME_LEN];
        let cases = [
            (MAX_DATA_PAYLOAD, MAX_BACKDATA_PAYLOAD, false),
            (v3::MAX_DATA_PAYLOAD, v3::MAX_BACKDATA_PAYLOAD, true),
        ];
        for (max_data, max_backdata, is_v3) in cases {
            for (max, backdata) in [(max_data, false), (max_backdata, true)] {
                let payload = vec![byte; max + extra];
                let f = if backdata {
                    Fields::TsBackdata { payload, ttid: tid, ts }
                } else {
                    Fields::Data { ts, tid, payload }
                };
                let len = max + extra;
                if is_v3 {
                    prop_assert_eq!(
                        v3::encode(&f.v3(), &keys, &sender, &EPOCH, counter, &mut out),
                        Err(v3::EncodeError::PayloadTooLong { len, max })
                    );
                } else {
                    prop_assert_eq!(
                        encode(&f.v2(), &key, &group, &iv, &mut out),
                        Err(EncodeError::PayloadTooLong { len, max })
                    );
                }
            }
        }
    }

    #[test]
    fn v3_counter_over_the_maximum_is_rejected(
        f in fields_v3(), sender in sender(), over in (v3::MAX_COUNTER + 1)..=u64::MAX
    ) {
        let keys = Keys::derive(b"bla", b"ble");
        let mut out = [0u8; MAX_FRAME_LEN];
        prop_assert_eq!(
            v3::encode(&f.v3(), &keys, &sender, &EPOCH, over, &mut out),
            Err(v3::EncodeError::CounterOutOfRange(over))
        );
    }

    #[test]
    fn v2_other_key_or_group_fails(
        f in fields_v2(), psk in psk(), other_psk in psk(), name in name(), other_name in name(),
        iv in any::<[u8; IV_LEN]>()
    ) {
        let (key, group) = (Key::from_psk(&psk), GroupId::from_name(&name));
        let (other_key, other_group) = (Key::from_psk(&other_psk), GroupId::from_name(&other_name));
        // Distinct PSKs can prepare the same key (zero padding: "a" and "a\0"), and equal names
        // are the same group: those cases are not "another" key or group.
        prop_assume!(other_key != key && other_group != group);
        let bytes = seal_v2(&f.v2(), &key, &group, &iv);
        prop_assert_eq!(open_v2(&bytes, &other_key, &group), Err(DecodeError::BadTag));
        prop_assert_eq!(open_v2(&bytes, &other_key, &other_group), Err(DecodeError::BadTag));
        prop_assert_eq!(open_v2(&bytes, &key, &other_group), Err(DecodeError::WrongGroup));
    }

    #[test]
    fn v3_other_key_or_group_fails(
        f in fields_v3(), psk in psk(), other_psk in psk(), name in name(), other_name in name(),
        sender in sender(), counter in counter()
    ) {
        let keys = Keys::derive(&psk, &name);
        let other_psk_keys = Keys::derive(&other_psk, &name);
        let other_name_keys = Keys::derive(&psk, &other_name);
        // HKDF's salt is an HMAC key, zero-padded: names "a" and "a\0" derive the same keys.
        prop_assume!(other_psk_keys.frame_key() != keys.frame_key());
        prop_assume!(other_name_keys.group_id() != keys.group_id());
        let bytes = seal_v3(&f.v3(), &keys, &sender, counter);
        // The right group id but another key: the tag fails.
        prop_assert_eq!(
            open_v3(&bytes, &other_psk_keys, &keys.group_id()),
            Err(v3::DecodeError::BadTag)
        );
        // The group id depends on the PSK too, so another PSK is another group.
        prop_assert!(open_v3(&bytes, &other_psk_keys, &other_psk_keys.group_id()).is_err());
        prop_assert_eq!(
            open_v3(&bytes, &keys, &other_name_keys.group_id()),
            Err(v3::DecodeError::WrongGroup)
        );
        prop_assert!(open_v3(&bytes, &other_name_keys, &other_name_keys.group_id()).is_err());
    }
}

/// `f` as a v2 frame if its payload fits v2, which allows 13 bytes less than v3.
fn shrink_to_v2(f: &Fields) -> Result<Fields, ()> {
    match f {
        Fields::Data { payload, .. } if payload.len() > MAX_DATA_PAYLOAD => Err(()),
        Fields::TsBackdata { payload, .. } if payload.len() > MAX_BACKDATA_PAYLOAD => Err(()),
        _ => Ok(f.clone()),
    }
}

// --- fuzz seeds ------------------------------------------------------------------------------

const SEED_PSK: &[u8] = b"bla";
const SEED_GROUP: &[u8] = b"ble";

/// The seed corpora of the fuzz targets: (target, file name, frame bytes), every kind once, the
/// longest payloads too. The targets decode with PSK "bla" and group "ble".
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let ts = Timestamp::new(1_700_000_000_000).expect("fits 96 bits");
    let small = b"21.5".to_vec();
    let kinds = |max_data: usize, max_backdata: usize| {
        vec![
            (
                "data",
                Fields::Data {
                    ts,
                    tid: Tid([1; TID_LEN]),
                    payload: small.clone(),
                },
            ),
            (
                "data-max",
                Fields::Data {
                    ts,
                    tid: Tid([2; TID_LEN]),
                    payload: vec![0x5a; max_data],
                },
            ),
            (
                "ts-default",
                Fields::TsDefault {
                    ttid: Tid([3; TID_LEN]),
                    ts: Timestamp::MAX,
                },
            ),
            (
                "ts-confirm",
                Fields::TsConfirm {
                    confirmed: Tid([1; TID_LEN]),
                    ttid: Tid([4; TID_LEN]),
                    ts,
                },
            ),
            (
                "ts-backdata-max",
                Fields::TsBackdata {
                    payload: vec![0xa5; max_backdata],
                    ttid: Tid([5; TID_LEN]),
                    ts,
                },
            ),
            (
                "ping",
                Fields::Ping {
                    ts,
                    tid: Tid([6; TID_LEN]),
                },
            ),
            (
                "pair-request",
                Fields::PairRequest {
                    challenge: Tid([7; TID_LEN]),
                },
            ),
            (
                "wakeup",
                Fields::Wakeup {
                    tid: Tid([8; TID_LEN]),
                },
            ),
        ]
    };
    let (key, group) = (Key::from_psk(SEED_PSK), GroupId::from_name(SEED_GROUP));
    let keys = Keys::derive(SEED_PSK, SEED_GROUP);
    let sender = SenderId([0x24, 0x6f, 0x28, 0x01, 0x02, 0x03]);
    let mut out = Vec::new();
    for (i, (name, f)) in kinds(MAX_DATA_PAYLOAD, MAX_BACKDATA_PAYLOAD)
        .into_iter()
        .enumerate()
    {
        let iv = [0x40 + i as u8; IV_LEN];
        out.push((
            "decode_v2",
            format!("{name}.bin"),
            seal_v2(&f.v2(), &key, &group, &iv),
        ));
    }
    for (i, (name, f)) in kinds(v3::MAX_DATA_PAYLOAD, v3::MAX_BACKDATA_PAYLOAD)
        .into_iter()
        .enumerate()
    {
        let bytes = seal_v3(&f.v3(), &keys, &sender, 41 + i as u64);
        out.push(("decode_v3", format!("{name}.bin"), bytes));
    }
    out
}

fn seed_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

/// Every committed seed is a valid frame for the fuzz targets' keys (so the fuzzers start from
/// inputs past the tag check), and the committed corpora hold the current [`seeds`].
#[test]
fn fuzz_seeds_are_valid_and_current() {
    let (key, group) = (Key::from_psk(SEED_PSK), GroupId::from_name(SEED_GROUP));
    let keys = Keys::derive(SEED_PSK, SEED_GROUP);
    for target in ["decode_v2", "decode_v3"] {
        let dir = seed_dir(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).expect("seed file");
            let result = match target {
                "decode_v2" => open_v2(&bytes, &key, &group).map_err(|e| format!("{e:?}")),
                _ => open_v3(&bytes, &keys, &keys.group_id()).map_err(|e| format!("{e:?}")),
            };
            assert_eq!(result, Ok(()), "{} does not decode", path.display());
            count += 1;
        }
        assert!(count > 0, "no seeds in {}", dir.display());
    }
    for (target, file, bytes) in seeds() {
        let path = seed_dir(target).join(&file);
        assert_eq!(
            std::fs::read(&path).ok().as_deref(),
            Some(&bytes[..]),
            "{} is missing or stale: rewrite the seeds with \
             `cargo test -p hearth-netnow --test roundtrip -- --ignored write_fuzz_seeds`",
            path.display()
        );
    }
}

/// Writes [`seeds`] into `fuzz/seeds/<target>/`.
#[test]
#[ignore = "writes the fuzz seed corpora into the source tree"]
fn write_fuzz_seeds() {
    for (target, file, bytes) in seeds() {
        let dir = seed_dir(target);
        std::fs::create_dir_all(&dir).expect("create seed directory");
        std::fs::write(dir.join(file), bytes).expect("write seed");
    }
}
