//! Cost of verifying (decoding) one data frame with a 32-byte payload, v2 against v3.
//!
//! `verify_cost <v2|v3> [N]` seals one frame, then decodes it N times (default 1000). Count the
//! instructions of a run with N and of a run with N = 0 (setup only), subtract and divide by N:
//!
//! ```text
//! cargo build --release -p hearth-netnow --example verify_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/verify_cost v3 1000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/verify_cost v3 0
//! ```

use std::hint::black_box;
use std::process::ExitCode;

use hearth_netnow::{v3, Frame, GroupId, Key, Tid, Timestamp, MAX_CIPHERTEXT_LEN, MAX_FRAME_LEN};

const PAYLOAD: [u8; 32] = [0x5a; 32];

fn run_v2(n: u64) -> bool {
    let key = Key::from_psk(b"a long random pre-shared key");
    let group = GroupId::from_name(b"ble");
    let frame = Frame::Data {
        ts: Timestamp::new(1_000).unwrap_or_default(),
        tid: Tid([9; 12]),
        payload: &PAYLOAD,
    };
    let mut air = [0u8; MAX_FRAME_LEN];
    let Ok(len) = hearth_netnow::encode(&frame, &key, &group, &[0x42; 16], &mut air) else {
        return false;
    };
    let mut scratch = [0u8; MAX_CIPHERTEXT_LEN];
    for _ in 0..n {
        let got = hearth_netnow::decode(black_box(&air[..len]), &key, &group, &mut scratch);
        if black_box(got).is_err() {
            return false;
        }
    }
    true
}

fn run_v3(n: u64) -> bool {
    let keys = v3::Keys::derive(b"a long random pre-shared key", b"ble");
    let group = keys.group_id();
    let sender = v3::SenderId([0x24, 0x6f, 0x28, 1, 2, 3]);
    let frame = v3::Frame::Data {
        ts: Timestamp::new(1_000).unwrap_or_default(),
        tid: Tid([9; 12]),
        payload: &PAYLOAD,
    };
    let mut air = [0u8; MAX_FRAME_LEN];
    let Ok(len) = v3::encode(&frame, &keys, &sender, &v3::Epoch([5; 12]), 1, &mut air) else {
        return false;
    };
    let mut scratch: v3::DecodeBuf = [0; v3::MAX_BODY_LEN];
    for _ in 0..n {
        let got = v3::decode(black_box(&air[..len]), &keys, &group, &mut scratch);
        if black_box(got).is_err() {
            return false;
        }
    }
    true
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let version = args.next().unwrap_or_default();
    let n = match args.next().map(|s| s.parse::<u64>()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: verify_cost <v2|v3> [N]");
            return ExitCode::FAILURE;
        }
    };
    let ok = match version.as_str() {
        "v2" => run_v2(n),
        "v3" => run_v3(n),
        _ => {
            eprintln!("usage: verify_cost <v2|v3> [N]");
            return ExitCode::FAILURE;
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("a frame failed to verify");
        ExitCode::FAILURE
    }
}
