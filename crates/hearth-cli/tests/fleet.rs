//! The fleet client (`hearth_fleet::client`) and `hearth mon` against a real mosquitto.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hearth_fleet::client::{BrokerArgs, Client, FleetError, Received};
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
fn a_binary_payload_up_to_the_bound_comes_back_byte_identical_and_a_larger_one_never_arrives() {
    let broker = Broker::start();
    let mut c = Client::connect(&local(broker.port), "fleet-test-2", T).expect("connect");
    c.subscribe("fleet/bin/#").expect("subscribe");
    // The largest payload whose PUBLISH stays within the bound (header and topic included).
    let len = hearth_fleet::client::MAX_PACKET - 5 - 2 - "fleet/bin/blob".len();
    let payload: Vec<u8> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(std::str::from_utf8(&payload).is_err());
    c.publish("fleet/bin/blob", &payload, false)
        .expect("publish");
    let m = next(&mut c);
    assert_eq!(m.topic, "fleet/bin/blob");
    assert!(!m.retained);
    assert_eq!(m.payload.len(), payload.len());
    assert!(m.payload == payload, "payload differs");
    // 64 KiB is over it: the broker, told the client's Maximum Packet Size in CONNECT, never
    // forwards it; the next message arrives and the session stays up.
    let big = vec![7u8; 64 * 1024];
    c.publish("fleet/bin/big", &big, false).expect("publish");
    c.publish("fleet/bin/after", b"small", false)
        .expect("publish");
    let m = next(&mut c);
    assert_eq!(
        m.topic, "fleet/bin/after",
        "the oversized message was forwarded"
    );
    assert_eq!(c.dropped(), (0, 0), "nothing oversized reached the client");
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
    // `cmd` could not send anything: exit code 2, as documented, and with --json the error
    // is in the object.
    let out = Command::new(HEARTH)
        .args(["cmd", "d1", "getversion", "--json", "--broker"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run hearth cmd");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("cannot connect to 127.0.0.1:{port}"))),
        "{answer}"
    );
}

#[test]
fn the_client_talks_to_the_embedded_mqtt_5_broker_of_the_demo() {
    // The broker `hearth demo` runs in its own process (`hearth-broker`); the tools' client
    // speaks MQTT 5 to it, as to any other broker.
    let broker =
        hearth_broker::EmbeddedBroker::start(([127, 0, 0, 1], 0).into()).expect("embedded broker");
    let port = broker.local_addr().port();
    let mut pub_side = Client::connect(&local(port), "fleet-demo-pub", T).expect("connect");
    pub_side
        .publish("tele/weather-9/LWT", b"Online", true)
        .expect("publish");
    let mut c = Client::connect(&local(port), "fleet-demo-sub", T).expect("connect");
    c.subscribe("tele/weather-9/#").expect("subscribe");
    c.subscribe("stat/weather-9/#").expect("subscribe");
    let kept = next(&mut c);
    assert_eq!(
        (kept.topic.as_str(), kept.payload.as_slice(), kept.retained),
        ("tele/weather-9/LWT", &b"Online"[..], true)
    );
    pub_side
        .publish("stat/weather-9/Temperature", b"19.5", false)
        .expect("publish");
    let live = next(&mut c);
    assert_eq!(
        (live.topic.as_str(), live.payload.as_slice(), live.retained),
        ("stat/weather-9/Temperature", &b"19.5"[..], false)
    );
    c.disconnect();
    pub_side.disconnect();
}

/// The broker address `hearth demo` prints, read from its stdout as it starts.
fn demo_broker(child: &mut std::process::Child) -> (u16, mpsc::Receiver<String>) {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let line = rx.recv_timeout(left).expect("the demo prints its broker");
        if let Some(rest) = line.strip_prefix("hearth demo: broker on 127.0.0.1:") {
            let port = rest.split(';').next().unwrap().parse().expect("port");
            return (port, rx);
        }
    }
    panic!("the demo never named its broker");
}

#[test]
fn hearth_mon_and_cmd_work_against_the_demo_s_own_broker() {
    let mut demo = Command::new(HEARTH)
        .args(["demo", "--port", "0", "--devices", "1", "--for", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hearth demo");
    let (port, _feed) = demo_broker(&mut demo);
    let broker = format!("127.0.0.1:{port}");
    let hearth = |args: &[&str]| {
        Command::new(HEARTH)
            .args(args)
            .args(["--broker", &broker])
            .env_remove("HEARTH_BROKER")
            .env_remove("HEARTH_MQTT_USER")
            .env_remove("HEARTH_MQTT_PASSWORD")
            .output()
            .expect("run hearth")
    };
    // The demo's weather station is up once its retained LWT says Online.
    let online = support::wait_until(Duration::from_secs(30), || {
        let out = hearth(&["mon", "weather-1", "--for", "1"]);
        String::from_utf8_lossy(&out.stdout).contains("tele/weather-1/LWT Online (retained)")
    });
    let mon = hearth(&["mon", "weather-1", "--for", "3"]);
    let watched = String::from_utf8_lossy(&mon.stdout).into_owned();
    let cmd = hearth(&["cmd", "weather-1", "getversion"]);
    let answer = String::from_utf8_lossy(&cmd.stdout).into_owned();
    // The same with --json: one object a message, and one for the answer.
    let json_mon = hearth(&["mon", "weather-1", "--for", "2", "--json"]);
    let json_cmd = hearth(&["cmd", "weather-1", "getversion", "--json"]);
    // Sent, and nobody answered: exit code 1, as documented.
    let unanswered = hearth(&["cmd", "nobody", "getversion", "--json"]);
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(
        online,
        "hearth mon never saw weather-1 online: {watched}\n{}",
        String::from_utf8_lossy(&mon.stderr)
    );
    assert!(mon.status.success(), "{:?}\n{watched}", mon.status);
    assert!(watched.contains("stat/weather-1/"), "{watched}");
    assert!(
        cmd.status.success(),
        "{:?}\n{answer}\n{}",
        cmd.status,
        String::from_utf8_lossy(&cmd.stderr)
    );
    assert!(
        answer.contains("device weather-1"),
        "getversion answered {answer:?}"
    );

    let lines = String::from_utf8_lossy(&json_mon.stdout).into_owned();
    assert!(json_mon.status.success(), "{:?}\n{lines}", json_mon.status);
    let messages: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for m in &messages {
        let topic = m["topic"].as_str().expect("topic");
        assert!(topic.split('/').nth(1) == Some("weather-1"), "{m}");
        let payload = m["payload"].as_str().expect("a text payload");
        assert_eq!(m["bytes"].as_u64(), Some(payload.len() as u64), "{m}");
        assert!(m["time_ms"].as_u64().is_some_and(|t| t > 0), "{m}");
    }
    assert!(
        messages.iter().any(|m| m["topic"] == "tele/weather-1/LWT"
            && m["payload"] == "Online"
            && m["retained"] == true),
        "{lines}"
    );
    let out = String::from_utf8_lossy(&json_cmd.stdout).into_owned();
    assert!(json_cmd.status.success(), "{:?}\n{out}", json_cmd.status);
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(answer["device"], "weather-1", "{answer}");
    assert_eq!(answer["command"], "getversion", "{answer}");
    assert_eq!(
        (&answer["ok"], &answer["signed"]),
        (&true.into(), &false.into())
    );
    assert!(
        answer["answer"]
            .as_str()
            .is_some_and(|a| a.contains("device weather-1")),
        "{answer}"
    );
    assert_eq!(unanswered.status.code(), Some(1), "{unanswered:?}");
    let answer: serde_json::Value = serde_json::from_slice(&unanswered.stdout)
        .unwrap_or_else(|e| panic!("{e}: {unanswered:?}"));
    assert_eq!(
        (&answer["ok"], &answer["error"]),
        (&false.into(), &"nobody: no answer within 10 s".into()),
        "{answer}"
    );
}

#[test]
fn hearth_ls_lists_every_device_from_the_broker_s_retained_messages() {
    let broker = Broker::start();
    let weather = support::Sim::start(&support::config("inv-w", broker.port, ""));
    let relay = support::Sim::start(&support::config_for(
        "relay",
        "inv-r",
        broker.port,
        "relays 2\n",
    ));
    let gone = support::Sim::start(&support::config("inv-gone", broker.port, ""));
    for sim in [&weather, &relay, &gone] {
        assert!(
            sim.wait_log("discovery:", Duration::from_secs(20)),
            "{}",
            sim.dump()
        );
    }
    // One device loses its power for good: the broker publishes its will.
    drop(gone);
    let ls = |args: &[&str]| {
        Command::new(HEARTH)
            .arg("ls")
            .args(args)
            .args(["--broker", &format!("127.0.0.1:{}", broker.port)])
            .env_remove("HEARTH_BROKER")
            .output()
            .expect("hearth ls")
    };
    let offline = support::wait_until(Duration::from_secs(10), || {
        String::from_utf8_lossy(&ls(&[]).stdout)
            .lines()
            .any(|l| l.starts_with("inv-gone ") && l.contains(" offline "))
    });
    let out = ls(&[]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(offline, "inv-gone never listed offline:\n{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let w = row("inv-w");
    assert_eq!(
        w[..7],
        ["inv-w", "weather", "0.1.0", "0", "online", "power-on", "no"],
        "{table}"
    );
    assert_eq!(w[8..], ["dBm"], "the simulated Wi-Fi's signal:\n{table}");
    assert_eq!(
        row("inv-r")[..5],
        ["inv-r", "relay", "0.1.0", "0", "online"],
        "{table}"
    );
    assert_eq!(row("inv-gone")[4], "offline", "{table}");
    assert!(table.ends_with("3 devices, 2 online\n"), "{table}");

    let out = ls(&["--json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<_> = lines
        .iter()
        .map(|j| j["device"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inv-gone", "inv-r", "inv-w"]);
    assert_eq!(lines[2]["appliance"], "weather");
    assert_eq!(lines[2]["online"], true);
    assert_eq!(lines[2]["safe_mode"], false);
    assert_eq!(lines[2]["reboot_reason"], "power-on");
    assert_eq!(lines[0]["online"], false);
    assert!(
        lines[2]["rssi_dbm"].is_i64(),
        "the simulator reports a signal: {}",
        lines[2]
    );
    drop((weather, relay));
}

#[test]
fn hearth_ls_with_nothing_listening_fails_clearly() {
    let port = RefusingPort::new();
    let out = Command::new(HEARTH)
        .args(["ls", "--broker", &format!("127.0.0.1:{}", port.port)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("127.0.0.1"),
        "{out:?}"
    );
}

#[test]
fn the_inventory_reads_the_demo_s_embedded_broker_to_the_end() {
    // The marker that ends the inventory must come back after every retained message on the
    // demo's own broker too, however many there are.
    let broker =
        hearth_broker::EmbeddedBroker::start(([127, 0, 0, 1], 0).into()).expect("embedded broker");
    let args = local(broker.local_addr().port());
    let mut devices = Client::connect(&args, "fleet-inventory-pub", T).expect("connect");
    for i in 0..200 {
        devices
            .publish(&format!("tele/dev-{i:03}/LWT"), b"Online", true)
            .expect("publish");
        devices
            .publish(&format!("stat/dev-{i:03}/Version"), b"0.2.0", true)
            .expect("publish");
    }
    // The broker handles one connection's packets in order: once the last is retained, all are.
    let mut check = Client::connect(&args, "fleet-inventory-check", T).expect("connect");
    check.subscribe("stat/dev-199/Version").expect("subscribe");
    assert!(next(&mut check).retained);
    check.disconnect();
    devices.disconnect();
    // One read, no retry: it must not stop before the last retained message.
    let all = hearth_fleet::inventory::collect(&args).expect("inventory");
    assert_eq!(all.len(), 200);
    assert!(all
        .iter()
        .all(|d| d.online == Some(true) && d.version.as_deref() == Some("0.2.0")));
}
