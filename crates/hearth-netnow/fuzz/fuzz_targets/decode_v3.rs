//! Wire format v3: `decode` must never panic, and whatever it accepts must be exactly what
//! `encode` produces for the decoded frame with the decoded sender, epoch and counter.
#![no_main]

use hearth_netnow::v3::{decode, encode, DecodeBuf, Keys};
use hearth_netnow::MAX_FRAME_LEN;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// Derived once: the key schedule costs more than a decode.
static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys::derive(b"bla", b"ble"));

fuzz_target!(|data: &[u8]| {
    let keys = &*KEYS;
    let mut scratch: DecodeBuf = [0; _];
    let Ok((header, frame)) = decode(data, keys, &keys.group_id(), &mut scratch) else {
        return;
    };
    assert_eq!(header.group, keys.group_id());
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = encode(&frame, keys, &header.sender, &header.epoch, header.counter, &mut out)
        .expect("a decoded frame re-encodes");
    assert_eq!(
        &out[..len],
        data,
        "re-encoding {header:?} {frame:?} changed the bytes"
    );
});
