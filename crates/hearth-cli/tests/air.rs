//! The simulated ESP-NOW air: radios in this process, and `hearth espnow send` / `sniff` in
//! others. Every test has an air directory of its own.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future::{self, block_on};
use hearth_platform::{Radio, RadioError, RadioFrame, BROADCAST};
use hearth_sim::air::{self, SimRadio};

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const ABSENT: [u8; 6] = [0x02, 0, 0, 0, 0, 0xee];

/// A private air directory, removed on drop. Kept short: Unix socket paths are limited to 107
/// bytes.
struct Air(PathBuf);

impl Air {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/hearth-airtest-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create air dir");
        Self(p)
    }

    fn radio(&self, mac: [u8; 6], channel: u8) -> SimRadio {
        SimRadio::open(&self.0, mac, channel).expect("open radio")
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for Air {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The next frame within `ms`, or `None`.
fn recv(radio: &mut SimRadio, ms: u64) -> Option<RadioFrame> {
    block_on(future::or(async { Some(radio.receive().await) }, async {
        Timer::after(Duration::from_millis(ms)).await;
        None
    }))
}

fn send(radio: &mut SimRadio, to: [u8; 6], bytes: &[u8], ack: bool) -> bool {
    block_on(radio.send(to, bytes, ack)).expect("send")
}

#[test]
fn broadcast_reaches_every_radio_on_the_channel_only() {
    let air = Air::new();
    let mut a = air.radio(A, 1);
    let mut b = air.radio(B, 1);
    let mut c = air.radio(C, 6);
    assert!(send(&mut a, BROADCAST, b"hello all", false));
    let got = recv(&mut b, 1000).expect("b hears the broadcast");
    assert_eq!(got.bytes(), b"hello all");
    assert_eq!((got.from, got.to, got.channel), (A, BROADCAST, 1));
    assert!(recv(&mut c, 200).is_none(), "c is on channel 6");
    assert_eq!(c.stats().wrong_channel, 1);
    assert!(recv(&mut a, 100).is_none(), "a does not hear itself");

    // After retuning, c hears channel 1.
    block_on(c.set_channel(1)).unwrap();
    assert!(send(&mut a, BROADCAST, b"again", false));
    assert_eq!(recv(&mut c, 1000).expect("c retuned").bytes(), b"again");
    assert_eq!(recv(&mut b, 1000).expect("b again").bytes(), b"again");
}

#[test]
fn unicast_reaches_only_its_destination() {
    let air = Air::new();
    let mut a = air.radio(A, 3);
    let mut b = air.radio(B, 3);
    let mut c = air.radio(C, 3);
    assert!(send(&mut a, B, b"for b", false));
    let got = recv(&mut b, 1000).expect("b gets its unicast");
    assert_eq!((got.bytes(), got.to), (&b"for b"[..], B));
    assert!(recv(&mut c, 200).is_none());
    assert_eq!(c.stats().received, 0);
}

#[test]
fn link_ack_tells_whether_the_frame_arrived() {
    let air = Air::new();
    let mut a = air.radio(A, 1);
    let mut b = air.radio(B, 1);
    // Delivered: acked, even though b's application is not receiving right now.
    assert!(send(&mut a, B, b"1", true));
    assert!(send(&mut a, B, b"2", true));
    // b's receive thread counts an ack just after sending it: a's wait may end first.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while b.stats().acks_sent < 2 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(b.stats().acks_sent, 2);
    assert_eq!(recv(&mut b, 500).unwrap().bytes(), b"1");
    assert_eq!(recv(&mut b, 500).unwrap().bytes(), b"2");
    // Nobody there.
    assert!(!send(&mut a, ABSENT, b"3", true));
    // Broadcasts and ack = false report true at once.
    assert!(send(&mut a, ABSENT, b"4", false));
    assert!(send(&mut a, BROADCAST, b"5", true));
    assert_eq!(recv(&mut b, 500).unwrap().bytes(), b"5");
    // b on another channel: no ack, after the ack timeout.
    block_on(b.set_channel(2)).unwrap();
    let t = Instant::now();
    assert!(!send(&mut a, B, b"6", true));
    assert!(t.elapsed() >= air::ACK_TIMEOUT);
    assert!(recv(&mut b, 100).is_none());
    block_on(b.set_channel(1)).unwrap();
    assert!(send(&mut a, B, b"7", true));
    // Total loss: nothing is acked.
    air::set_air_conf(&air.0, 100, -50).unwrap();
    std::thread::sleep(air::CONF_CHECK_INTERVAL + Duration::from_millis(100));
    for _ in 0..5 {
        assert!(!send(&mut a, B, b"lost", true));
    }
}

#[test]
fn set_channel_rejects_channels_outside_1_to_13() {
    let air = Air::new();
    let mut a = air.radio(A, 1);
    assert_eq!(block_on(a.set_channel(0)), Err(RadioError::BadChannel(0)));
    assert_eq!(block_on(a.set_channel(14)), Err(RadioError::BadChannel(14)));
    assert_eq!(block_on(a.set_channel(13)), Ok(()));
    assert_eq!(a.channel(), 13);
    assert_eq!(
        block_on(a.send(BROADCAST, &[0; 251], false)),
        Err(RadioError::TooLong)
    );
    assert!(SimRadio::open(&air.0, B, 0).is_err());
    assert!(SimRadio::open(&air.0, BROADCAST, 1).is_err());
}

#[test]
fn loss_of_30_percent_delivers_about_70_percent() {
    let air = Air::new();
    air::set_air_conf(&air.0, 30, -50).unwrap();
    let mut a = air.radio(A, 1);
    let mut b = air.radio(B, 1);
    let mut got = 0;
    for batch in 0..125 {
        for i in 0..8u32 {
            let n = (batch * 8 + i).to_be_bytes();
            send(&mut a, BROADCAST, &n, false);
        }
        // Let b's thread drain its socket, then empty its queue.
        std::thread::sleep(Duration::from_millis(3));
        while recv(&mut b, 3).is_some() {
            got += 1;
        }
    }
    while recv(&mut b, 50).is_some() {
        got += 1;
    }
    assert_eq!(b.stats().overflow, 0);
    assert!((600..=800).contains(&got), "{got} of 1000 frames arrived");
}

#[test]
fn rssi_comes_from_air_conf_with_jitter() {
    let air = Air::new();
    let mut a = air.radio(A, 1);
    let mut b = air.radio(B, 1);
    assert!(send(&mut a, BROADCAST, b"x", false));
    let rssi = recv(&mut b, 1000).unwrap().rssi;
    assert!((-53..=-47).contains(&rssi), "default rssi {rssi}");

    air::set_air_conf(&air.0, 0, -70).unwrap();
    assert_eq!(
        air::read_air_conf(&air.0).unwrap(),
        air::AirConf { loss: 0, rssi: -70 }
    );
    std::thread::sleep(air::CONF_CHECK_INTERVAL + Duration::from_millis(100));
    for _ in 0..50 {
        assert!(send(&mut a, BROADCAST, b"y", false));
        let rssi = recv(&mut b, 1000).unwrap().rssi;
        assert!((-73..=-67).contains(&rssi), "rssi {rssi}");
    }
}

#[test]
fn malformed_datagrams_are_ignored_and_counted() {
    let air = Air::new();
    let mut b = air.radio(B, 1);
    let raw = UnixDatagram::unbound().unwrap();
    let path = b.socket_path().to_path_buf();
    let mut good = [0u8; air::MAX_DATAGRAM];
    let len = air::Datagram {
        kind: air::Kind::Data,
        channel: 1,
        from: A,
        to: B,
        seq: 7,
        ack_requested: false,
        frame: b"valid".to_vec(),
    }
    .encode(&mut good)
    .unwrap();
    let mut bad_version = good;
    bad_version[2] = 9;
    let mut bad_channel = good;
    bad_channel[4] = 0;
    let mut too_long = good.to_vec();
    too_long.resize(air::MAX_DATAGRAM + 40, 0xaa);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        b"HA".to_vec(),
        vec![0xff; 30],
        bad_version[..len].to_vec(),
        bad_channel[..len].to_vec(),
        too_long,
    ];
    for g in &garbage {
        raw.send_to(g, &path).unwrap();
    }
    raw.send_to(&good[..len], &path).unwrap();
    let got = recv(&mut b, 1000).expect("the valid frame still arrives");
    assert_eq!(got.bytes(), b"valid");
    assert!(recv(&mut b, 100).is_none());
    assert_eq!(b.stats().malformed, garbage.len() as u64);
}

#[test]
fn stale_socket_is_replaced_and_a_live_mac_is_refused() {
    let air = Air::new();
    let path = air.0.join(air::socket_name(&A));
    // A socket file whose owner is gone.
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(path.exists());
    let mut a = air.radio(A, 1);
    let mut b = air.radio(B, 1);
    assert!(send(&mut b, A, b"to the new a", true));
    assert_eq!(recv(&mut a, 1000).unwrap().bytes(), b"to the new a");

    let err = SimRadio::open(&air.0, A, 1).err().expect("A is live");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("02:00:00:00:00:0A"), "{err}");

    // Dropping removes the socket; a sender notices nothing wrong.
    drop(a);
    assert!(!path.exists());
    assert!(!send(&mut b, A, b"gone", true));
    // A stale file of a dead peer is cleaned up by the next sender.
    drop(UnixDatagram::bind(&path).unwrap());
    assert!(send(&mut b, BROADCAST, b"x", false));
    assert!(!path.exists());
}

fn wait_for_sniffer(dir: &Path) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("sniff-"))
            });
        if found {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the sniffer did not start");
}

fn hearth(args: &[&str]) -> std::process::Output {
    Command::new(HEARTH)
        .args(args)
        .output()
        .expect("run hearth")
}

#[test]
fn sniffer_decodes_frames_sent_by_another_process() {
    let air = Air::new();
    let mut b = air.radio(B, 3);
    let mut sniff = Command::new(HEARTH)
        .args([
            "espnow",
            "sniff",
            "--air",
            air.arg(),
            "--psk",
            "a long enough psk!",
            "--group",
            "kitchen",
            "--count",
            "2",
            "--for",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sniffer");
    wait_for_sniffer(&air.0);

    let out = hearth(&[
        "espnow",
        "send",
        "--air",
        air.arg(),
        "--channel",
        "3",
        "--to",
        "02:00:00:00:00:0b",
        "--psk",
        "a long enough psk!",
        "--group",
        "kitchen",
        "--version",
        "2",
        "data",
        "--payload",
        r"21.5 C\nok",
        "--ts",
        "123456",
        "--tid",
        "00112233445566778899aabb",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 radio(s) reached"));
    // The radio of this process got the v2 frame and can open it.
    let frame = recv(&mut b, 2000).expect("b receives the injected frame");
    assert_eq!(
        (frame.from, frame.channel),
        (hearth_sim::espnow_tool::TOOL_MAC, 3)
    );
    let mut scratch = [0u8; hearth_netnow::MAX_CIPHERTEXT_LEN];
    let decoded = hearth_netnow::decode(
        frame.bytes(),
        &hearth_netnow::Key::from_psk(b"a long enough psk!"),
        &hearth_netnow::GroupId::from_name(b"kitchen"),
        &mut scratch,
    )
    .expect("v2 frame");
    assert!(matches!(
        decoded,
        hearth_netnow::Frame::Data {
            payload: b"21.5 C\nok",
            ..
        }
    ));

    let out = hearth(&[
        "espnow",
        "send",
        "--air",
        air.arg(),
        "--channel",
        "7",
        "--from",
        "02:00:00:00:00:77",
        "--psk",
        "a long enough psk!",
        "--group",
        "kitchen",
        "--version",
        "3",
        "--epoch",
        "0123456789abcdef01234567",
        "--counter",
        "42",
        "ts",
        "--subtype",
        "backdata",
        "--payload",
        "on",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(recv(&mut b, 200).is_none(), "b is on channel 3");

    let stdout = sniff.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = sniff.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (v2, v3) = (&lines[0], &lines[1]);
    assert!(v2.contains("ch  3"), "{v2}");
    assert!(
        v2.contains("02:48:45:41:52:54 -> 02:00:00:00:00:0B"),
        "{v2}"
    );
    assert!(
        v2.contains("v2 data ts=123456 tid=00112233445566778899aabb payload=\"21.5 C\\nok\""),
        "{v2}"
    );
    assert!(v3.contains("ch  7"), "{v3}");
    assert!(v3.contains("02:00:00:00:00:77 -> broadcast"), "{v3}");
    assert!(
        v3.contains(
            "v3 ts sender=02:00:00:00:00:77 epoch=0123456789abcdef01234567 counter=42 \
             subtype=backdata"
        ),
        "{v3}"
    );
    assert!(v3.ends_with("payload=\"on\""), "{v3}");
}

#[test]
fn sniffer_reports_frames_it_cannot_decode() {
    let air = Air::new();
    let mut sniff = Command::new(HEARTH)
        .args([
            "espnow",
            "sniff",
            "--air",
            air.arg(),
            "--psk",
            "p",
            "--group",
            "g",
            "--count",
            "1",
            "--for",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sniffer");
    wait_for_sniffer(&air.0);
    let out = hearth(&[
        "espnow",
        "send",
        "--air",
        air.arg(),
        "--channel",
        "1",
        "--hex",
        "0102030405",
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut line = String::new();
    BufReader::new(sniff.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(sniff.wait().unwrap().success());
    assert!(line.contains("5 bytes"), "{line}");
    assert!(
        line.contains("not decoded (v2: frame shorter than 44 bytes"),
        "{line}"
    );
}

#[test]
fn air_command_writes_the_settings() {
    let air = Air::new();
    let out = hearth(&["espnow", "air", "--air", air.arg(), "--loss", "25"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("loss 25 %, rssi -50 dBm"));
    let out = hearth(&["espnow", "air", "--air", air.arg(), "--rssi", "-80"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("loss 25 %, rssi -80 dBm"));
    assert_eq!(
        air::read_air_conf(&air.0).unwrap(),
        air::AirConf {
            loss: 25,
            rssi: -80
        }
    );
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let air = Air::new();
    let a = air.arg();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "0",
                "--hex",
                "00",
            ],
            "--channel",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "14",
                "--hex",
                "00",
            ],
            "--channel",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "1",
                "--hex",
                "0z",
            ],
            "--hex",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "1",
                "--to",
                "01:02",
                "--hex",
                "00",
            ],
            "--to",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "1",
                "--from",
                "xx",
                "--hex",
                "00",
            ],
            "--from",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "1",
                "--psk",
                "p",
                "--group",
                "g",
                "gossip",
            ],
            "unknown frame kind",
        ),
        (
            &[
                "espnow",
                "send",
                "--air",
                a,
                "--channel",
                "1",
                "--psk",
                "p",
                "--group",
                "g",
                "data",
                "--payload",
                &"x".repeat(187),
            ],
            "too long",
        ),
        (&["espnow", "sniff", "--air", a, "--count", "x"], "--count"),
        (&["espnow", "air", "--air", a, "--loss", "150"], "--loss"),
        (&["espnow", "air", "--air", a, "--rssi", "-101"], "--rssi"),
        (&["espnow", "fly"], "fly"),
    ];
    for (args, needle) in cases {
        let out = hearth(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error: ") && first.contains(needle),
            "{args:?}: {first}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
