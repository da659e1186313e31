//! The fleet client (`hearth_sim::fleet`) and `hearth mon` against a real mosquitto.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hearth_sim::fleet::{BrokerArgs, Client, FleetError, Received};
use support::{Broker, RefusingPort, HEARTH};

const T: Duration = Duration::from_secs(5);

fn local(port: u16) -> BrokerArgs {
    BrokerArgs {
        host: "127.0.0.1".into(),
        port,
        user: None,
        password: None,
        tls: None,
    }
}

/// The next message, skipping none; fails the test after `T`.
fn next(c: &mut Client) -> Received {
    c.recv(T)
        .expect("recv")
        .expect("no message within the timeout")
}

#[test]
fn receives_retained_and_live_messages() {
    let broker = Broker::start();
    broker.publish("stat/dev1/State", "on", true);
    let mut c = Client::connect(&local(broker.port), "fleet-test-1", T).expect("connect");
    c.subscribe("stat/dev1/#").expect("subscribe");
    let m = next(&mut c);
    assert_eq!(
        m,
        Received {
            topic: "stat/dev1/State".into(),
            payload: b"on".to_vec(),
            retained: true,
            skipped: None,
        }
    );
    broker.publish("stat/dev1/Temperature", "21.5", false);
    broker.publish("stat/other/Temperature", "99", false);
    let m = next(&mut c);
    assert_eq!(
        m,
        Received {
            topic: "stat/dev1/Temperature".into(),
            payload: b"21.5".to_vec(),
            retained: false,
            skipped: None,
        }
    );
    // Nothing else for this subscription: the timeout is honoured.
    let start = Instant::now();
    assert_eq!(c.recv(Duration::from_millis(500)).expect("recv"), None);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    c.disconnect();
}

#[test]
fn a_binary_payload_up_to_the_bound_comes_back_byte_identical_and_a_larger_one_is_skipped() {
    let broker = Broker::start();
    let mut c = Client::connect(&local(broker.port), "fleet-test-2", T).expect("connect");
    c.subscribe("fleet/bin/#").expect("subscribe");
    // The largest payload whose PUBLISH stays within the bound (header and topic included).
    let len = hearth_sim::fleet::MAX_PACKET - 5 - 2 - "fleet/bin/blob".len();
    let payload: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(std::str::from_utf8(&payload).is_err());
    c.publish("fleet/bin/blob", &payload, false)
        .expect("publish");
    let m = next(&mut c);
    assert_eq!(m.topic, "fleet/bin/blob");
    assert!(!m.retained);
    assert_eq!(m.skipped, None);
    assert_eq!(m.payload.len(), payload.len());
    assert!(m.payload == payload, "payload differs");
    // 64 KiB is over it: reported by its size, never held.
    let big = vec![7u8; 64 * 1024];
    c.publish("fleet/bin/big", &big, false).expect("publish");
    let m = next(&mut c);
    assert_eq!(m.topic, "fleet/bin/big");
    assert_eq!(m.skipped, Some(2 + "fleet/bin/big".len() + big.len()));
    assert!(m.payload.is_empty());
    // A retained publish of ours comes back flagged to a later subscriber.
    c.publish("fleet/keep", b"kept", true).expect("publish");
    let mut late = Client::connect(&local(broker.port), "fleet-test-2b", T).expect("connect");
    late.subscribe("fleet/keep").expect("subscribe");
    let m = next(&mut late);
    assert_eq!((m.payload.as_slice(), m.retained), (&b"kept"[..], true));
    c.disconnect();
    late.disconnect();
}

#[test]
fn login_is_checked_and_refusals_are_clear() {
    let broker = Broker::start_with_login("alice", "s3cret");
    let mut args = local(broker.port);
    args.user = Some("alice".into());
    args.password = Some("wrong".into());
    let err = Client::connect(&args, "fleet-test-3", T)
        .err()
        .expect("a wrong password must be refused");
    assert!(matches!(err, FleetError::Refused { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not authorized") || msg.contains("bad user name or password"),
        "{msg}"
    );
    // No login at all.
    let err = Client::connect(&local(broker.port), "fleet-test-3b", T)
        .err()
        .expect("an anonymous login must be refused");
    assert!(matches!(err, FleetError::Refused { .. }), "{err:?}");
    // The right one.
    args.password = Some("s3cret".into());
    let mut c = Client::connect(&args, "fleet-test-3c", T).expect("connect with the password");
    c.subscribe("a/#").expect("subscribe");
    c.disconnect();
}

#[test]
fn nothing_listening_is_a_clear_connect_error() {
    let closed = RefusingPort::new();
    let port = closed.port;
    let err = Client::connect(&local(port), "fleet-test-4", T)
        .err()
        .expect("nothing listens there");
    let msg = err.to_string();
    assert!(matches!(err, FleetError::Connect { .. }), "{err:?}");
    assert!(
        msg.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
        "{msg}"
    );
}

#[test]
fn hearth_mon_prints_a_device_s_messages() {
    let broker = Broker::start();
    broker.publish("tele/dev1/LWT", "Online", true);
    let start = Instant::now();
    let mut child = Command::new(HEARTH)
        .args(["mon", "dev1", "--for", "2", "--broker"])
        .arg(format!("127.0.0.1:{}", broker.port))
        .env_remove("HEARTH_BROKER")
        .env_remove("HEARTH_MQTT_USER")
        .env_remove("HEARTH_MQTT_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hearth mon");
    // Publish once it has subscribed (it says so on stderr).
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            let subscribed = line.contains("subscribed");
            let _ = tx.send(line);
            if subscribed {
                break;
            }
        }
        let rest: Vec<String> = lines.collect();
        let _ = tx.send(rest.join("\n"));
    });
    let mut err_lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(T)
            .unwrap_or_else(|_| panic!("hearth mon did not subscribe: {err_lines:?}"));
        let done = line.contains("subscribed");
        err_lines.push(line);
        if done {
            break;
        }
    }
    broker.publish("stat/dev1/Temperature", "21.5", false);
    broker.publish("stat/dev2/Temperature", "30.0", false);
    broker.publish("cmnd/dev1/Refresh", "", false);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let status = child.wait().expect("wait");
    let elapsed = start.elapsed();
    let rest = rx.recv_timeout(T).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{out}\n{err_lines:?}\n{rest}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"tele/dev1/LWT Online (retained)"), "{out}");
    assert!(lines.contains(&"stat/dev1/Temperature 21.5"), "{out}");
    assert!(lines.contains(&"cmnd/dev1/Refresh <empty>"), "{out}");
    assert!(!out.contains("dev2"), "{out}");
}

#[test]
fn hearth_mon_nothing_listening_fails_clearly() {
    let closed = RefusingPort::new();
    let port = closed.port;
    let out = Command::new(HEARTH)
        .args(["mon", "--for", "1", "--broker"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run hearth mon");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
    let out = Command::new(HEARTH)
        .args(["mon", "--broker", "host:0"])
        .output()
        .expect("run hearth mon");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port 0"));
}
