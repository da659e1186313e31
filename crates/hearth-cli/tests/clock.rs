//! The wall clock (SNTP) against a time server in the test: a real UDP socket answering as an
//! NTP server does (the packet is built here by hand from RFC 4330, not by the device's code),
//! a real simulated device, a real broker.

mod support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;
const NTP_TO_UNIX: u64 = 2_208_988_800;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An SNTP server on 127.0.0.1 that gives the time in `time_ms` (Unix ms, adjustable), and
/// counts the requests. `forge` answers with a wrong originate timestamp instead.
struct TimeServer {
    port: u16,
    time_ms: Arc<AtomicU64>,
    asked: Arc<AtomicUsize>,
}

impl TimeServer {
    fn start(time_ms: u64, forge: bool) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let time = Arc::new(AtomicU64::new(time_ms));
        let asked = Arc::new(AtomicUsize::new(0));
        let (t, a) = (time.clone(), asked.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                // A client request: version 3 or 4, mode 3.
                if n < 48 || buf[0] & 7 != 3 {
                    continue;
                }
                a.fetch_add(1, Ordering::SeqCst);
                let ms = t.load(Ordering::SeqCst);
                let secs = ms / 1000 + NTP_TO_UNIX;
                let frac = ((ms % 1000) << 32) / 1000;
                let stamp = ((secs << 32) | frac).to_be_bytes();
                let mut p = [0u8; 48];
                p[0] = (4 << 3) | 4; // no leap warning, version 4, server
                p[1] = 2; // stratum 2
                p[24..32].copy_from_slice(&buf[40..48]); // originate = the client's transmit
                if forge {
                    p[31] ^= 0x55;
                }
                p[32..40].copy_from_slice(&stamp); // receive
                p[40..48].copy_from_slice(&stamp); // transmit
                let _ = socket.send_to(&p, from);
            }
        });
        TimeServer {
            port,
            time_ms: time,
            asked,
        }
    }
}

/// `HH:MM` of Unix ms, UTC.
fn hh_mm(ms: u64) -> String {
    let day = ms / 1000 % 86_400;
    format!("{:02}:{:02}", day / 3600, day / 60 % 60)
}

#[test]
fn the_clock_comes_from_the_configured_server_and_refuses_what_is_signed_far_ahead_of_it() {
    let broker = Broker::start();
    let owner = new_owner();
    // The server runs three hours behind the signer's clock.
    let behind = 3 * 3600 * 1000;
    let server = TimeServer::start(now_ms() - behind, false);
    let sim = Sim::start(&config(
        "clk",
        broker.port,
        &format!("{}\nntpserver 127.0.0.1:{}\n", owner.otakey, server.port),
    ));
    assert!(sim.wait_log("(from 127.0.0.1:", S(20)), "{}", sim.dump());
    assert!(server.asked.load(Ordering::SeqCst) >= 1);
    let log = sim.log();
    let line = log.lines().find(|l| l.contains("clock: ")).unwrap();
    // The time of day the server gave, on the clock line and on the log lines after it.
    let expected = hh_mm(now_ms() - behind);
    assert!(
        line.contains(&format!("T{expected}")),
        "{line} vs {expected}"
    );
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("environment: wifi down", S(5)));
    let later = sim.log();
    let down = later
        .lines()
        .find(|l| l.contains("environment: wifi down"))
        .unwrap();
    assert!(down.contains(&format!("] {expected}")), "{down}");
    assert!(sim.ctl("wifi up").starts_with("ok"));
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(30)),
        "{}",
        sim.dump()
    );

    // A signed reboot issued now is three hours ahead of the device's clock: refused, and the
    // anti-replay mark stays where it was.
    let b = format!("127.0.0.1:{}", broker.port);
    let ask = |words: &[&str]| {
        let mut args = vec!["cmd", "clk", "--broker", &b, "--key", owner.key()];
        args.extend_from_slice(words);
        text(&hearth(&args))
    };
    let refused = ask(&["reboot"]);
    assert!(refused.contains("ahead of the device's clock"), "{refused}");
    let mark = text(&hearth(&["cmd", "clk", "--broker", &b, "mark"]));
    assert!(mark.contains("anti-replay mark 0\n"), "{mark}");

    // With the server right again (after a power cut, the clock is asked anew), the same
    // command is obeyed.
    server.time_ms.store(now_ms(), Ordering::SeqCst);
    assert!(sim.ctl("power-cut").starts_with("ok"));
    assert!(
        sim.wait_log_count("(from 127.0.0.1:", 2, S(30)),
        "{}",
        sim.dump()
    );
    let obeyed = ask(&["reboot"]);
    assert!(obeyed.contains("rebooting"), "{obeyed}");
    assert!(
        sim.wait_log("reason: command: reboot requested", S(20)),
        "{}",
        sim.dump()
    );
}

#[test]
fn a_forged_or_implausible_answer_sets_nothing() {
    let broker = Broker::start();
    // One server forges the originate timestamp; the other says 2020 (before any Hearth).
    let forged = TimeServer::start(now_ms(), true);
    let old = TimeServer::start(1_577_836_800_000, false);
    let sim = Sim::start(&config(
        "clk2",
        broker.port,
        &format!(
            "ntpserver 127.0.0.1:{} 127.0.0.1:{}\n",
            forged.port, old.port
        ),
    ));
    assert!(
        sim.wait_log("the answer is not to this request; next try in 15 s", S(20)),
        "{}",
        sim.dump()
    );
    assert!(
        sim.wait_log("is before what the device already knows", S(30)),
        "{}",
        sim.dump()
    );
    assert!(forged.asked.load(Ordering::SeqCst) >= 1 && old.asked.load(Ordering::SeqCst) >= 1);
    assert!(!sim.log().contains("(from 127.0.0.1"), "{}", sim.dump());
}

#[test]
fn ntpserver_none_asks_no_one() {
    let broker = Broker::start();
    let server = TimeServer::start(now_ms(), false);
    let sim = Sim::start(&config("clk3", broker.port, "ntpserver None\n"));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    std::thread::sleep(S(3));
    assert_eq!(server.asked.load(Ordering::SeqCst), 0);
    assert!(!sim.log().contains("clock:"), "{}", sim.dump());
}
