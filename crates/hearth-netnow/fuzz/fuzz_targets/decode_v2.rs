//! Wire format v2: `decode` must never panic, and whatever it accepts must be exactly what
//! `encode` produces for the decoded frame with the frame's own IV (decoding is strict: one
//! canonical encoding per frame and IV).
//!
//! One exception, out of a fuzzer's reach: v2 decode ignores the zero filler of pair requests
//! and wakeups, so a frame sealed elsewhere with non-zero filler decodes but re-encodes to other
//! bytes. Producing one needs the key, and mutated inputs never pass the tag.
#![no_main]

use hearth_netnow::{decode, encode, DecodeBuf, GroupId, Key, IV_LEN, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEY: LazyLock<Key> = LazyLock::new(|| Key::from_psk(b"bla"));
static GROUP: LazyLock<GroupId> = LazyLock::new(|| GroupId::from_name(b"ble"));

fuzz_target!(|data: &[u8]| {
    let (key, group) = (&*KEY, &*GROUP);
    let mut scratch: DecodeBuf = [0; _];
    let Ok(frame) = decode(data, key, group, &mut scratch) else {
        return;
    };
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&data[..IV_LEN]);
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode(&frame, key, group, &iv, &mut out).expect("a decoded frame re-encodes");
    assert_eq!(&out[..len], data, "re-encoding {frame:?} changed the bytes");
});
