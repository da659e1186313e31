//! The broker prints nothing: not on stdout, not on stderr, not even on the
//! paths where a broker would complain (refused CONNECT, malformed packets,
//! dropped sockets, wills, takeover, shutdown). The scenario runs in a child
//! process (this test binary again) so that the whole process's output can be
//! checked, not only what the test harness captures.

mod support;

use std::net::SocketAddr;
use std::process::Command;

use hearth_broker::EmbeddedBroker;
use rust_mqtt::types::QoS;
use support::raw::{self, Raw};
use support::{connect, disconnect, next_publish, publish, subscribe, Will};

const CHILD: &str = "HEARTH_BROKER_QUIET_CHILD";

#[test]
fn the_broker_prints_nothing() {
    if std::env::var_os(CHILD).is_some() {
        return scenario();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args([
            "--exact",
            "the_broker_prints_nothing",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the scenario in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scenario failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.trim().is_empty(), "stderr: {stderr}");
    // Only the test harness's own lines.
    let foreign: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            let line = line.trim();
            !(line.is_empty()
                || line.starts_with("running ")
                || line.starts_with("test the_broker_prints_nothing")
                || line.starts_with("test result:"))
        })
        .collect();
    assert!(foreign.is_empty(), "the broker printed: {foreign:#?}");
}

fn scenario() {
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("starts");
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed");
    let mut watcher = connect(addr, "watcher", None);
    subscribe(&mut watcher, "#", QoS::AtLeastOnce);
    let will = || {
        Some(Will {
            topic: "tele/dev/LWT",
            payload: "Offline",
        })
    };
    let device = connect(addr, "dev", will());
    let taken_over = connect(addr, "dev", will());
    assert_eq!(next_publish(&mut watcher, "will").payload, b"Offline");
    drop(device);
    drop(taken_over);
    assert_eq!(next_publish(&mut watcher, "will").payload, b"Offline");

    let mut v6 = Raw::connect(addr);
    v6.send(&raw::connect_packet(6, "future", 0));
    v6.expect_closed();
    let mut bad = Raw::session(addr, 5, "bad");
    bad.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]);
    bad.expect_closed();
    let mut garbage = Raw::connect(addr);
    garbage.send(b"GET / HTTP/1.1\r\n\r\n");
    garbage.expect_closed();

    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "a/b", b"x", QoS::AtLeastOnce, true);
    disconnect(publisher);
    drop(feed);
    broker.shutdown();
}
