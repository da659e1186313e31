//! Ordinary events that must never disable, crash-loop or rewind a device (issue 11): a long
//! outage, a broker restart, one huge message. Real mosquitto, real `hearth sim` processes.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A config with the runtime's default MQTT back-off and network retry (no test shortcuts),
/// so the figures are the ones a user gets.
fn default_timings(profile: &str, name: &str, port: u16, extra: &str) -> String {
    format!(
        "profile {profile}\nssid Test Network\npassword test-passphrase\nmqttbroker 127.0.0.1:{port}\n\
         mqttname {name}\nstartdelay 0\nwdgrace 0\n{extra}"
    )
}

#[test]
fn a_relay_keeps_its_timer_through_an_outage_of_several_netreboot_periods_without_safe_mode() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let text = config_for(
        "relay",
        "out2",
        broker.port,
        "relays 1\nsafemode 1\notaconfirm 5\nnetreboot 60\n",
    );
    let sim = Sim::start(&text);
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    // The relay's local job: on for 20 s, then off by itself, network or not.
    broker.publish("cmnd/out2/0/TurnOnWithTimeout", "20", false);
    obs.wait_for("stat/out2/0/State", S(10), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("relay on\n{}", sim.dump()));
    // Healthy for otaconfirm first (what counted as healthy before this fix).
    std::thread::sleep(S(6));
    assert!(sim.ctl("wifi down").starts_with("ok"));
    // Active low: `high` is off, once at boot and once when the timer runs out.
    assert!(
        sim.wait_log_count("gpio: relay 1 high", 2, S(30)),
        "the relay's timer must run out while offline\n{}",
        sim.dump()
    );
    assert_eq!(sim.log_count("rebooting"), 0, "{}", sim.dump());
    // Two reboots by the network policy (netreboot 60 s each).
    assert!(
        sim.wait_log_count("rebooting: network", 2, S(200)),
        "{}",
        sim.dump()
    );
    let connected = sim.log_count("mqtt connected");
    assert!(sim.ctl("wifi up").starts_with("ok"));
    let up = Instant::now();
    assert!(
        sim.wait_log_count("mqtt connected", connected + 1, S(30)),
        "{}",
        sim.dump()
    );
    // The appliance runs (safe mode has no relay state) and its state reaches the broker.
    obs.wait_for("stat/out2/0/State", S(20), |m| {
        m.at > up && m.payload == "0"
    })
    .unwrap_or_else(|| panic!("no relay state after the outage\n{}", sim.dump()));
    assert!(sim.log_count("boot #") >= 3, "{}", sim.dump());
    assert_eq!(
        sim.log_count("safe mode"),
        0,
        "an outage must never start safe mode\n{}",
        sim.dump()
    );
    assert!(
        !obs.all()
            .iter()
            .any(|m| m.topic == "stat/out2/Update" && m.payload.contains("safe-mode")),
        "{}",
        sim.dump()
    );
}

#[test]
fn a_three_second_broker_restart_costs_under_five_seconds_three_times_without_a_reboot() {
    let port = free_port();
    let mut broker = Broker::start_on(port);
    let sim = Sim::start(&default_timings("weather", "brk", port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    let mut figures = Vec::new();
    for round in 1..=3 {
        let connected = sim.log_count("mqtt connected");
        broker.kill();
        assert!(
            sim.wait_log_count("mqtt lost", round, S(10)),
            "{}",
            sim.dump()
        );
        std::thread::sleep(S(3));
        // From the moment the broker is started (its own start-up included).
        let back = Instant::now();
        broker = Broker::start_on(port);
        assert!(
            sim.wait_log_count("mqtt connected", connected + 1, S(60)),
            "round {round}: no reconnect\n{}",
            sim.dump()
        );
        figures.push(back.elapsed());
    }
    println!("back online after a 3 s broker restart: {figures:?}");
    for (i, t) in figures.iter().enumerate() {
        assert!(
            *t < S(5),
            "round {}: back after {t:?}\n{}",
            i + 1,
            sim.dump()
        );
    }
    assert_eq!(sim.log_count("re-associating"), 0, "{}", sim.dump());
    assert_eq!(sim.log_count("network lost"), 0, "{}", sim.dump());
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
}

/// The device process (`hearth sim-device`) of a simulator's state directory.
fn device_pid(state: &std::path::Path) -> Option<u32> {
    let want = state.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "sim-device") && args.contains(&want)).then_some(pid)
    })
}

/// The peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn publish_file(broker: &Broker, topic: &str, file: &PathBuf, retain: bool) {
    let mut cmd = Command::new(tool("mosquitto_pub"));
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-t",
        topic,
    ])
    .arg("-f")
    .arg(file);
    if retain {
        cmd.arg("-r");
    }
    assert!(cmd.status().expect("mosquitto_pub").success());
}

#[test]
fn a_64_mb_retained_command_is_never_read_and_the_device_keeps_working() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&config("big", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    let pid = device_pid(&sim.state()).expect("device process");
    std::thread::sleep(S(2));
    let before = peak_rss(pid);
    assert!(before > 0);

    let dir = TempDir::new("big");
    let file = dir.0.join("64mb.bin");
    std::fs::write(&file, vec![b'x'; 64 << 20]).unwrap();
    // Live, then at the next connection (the broker replays it as retained).
    publish_file(&broker, "cmnd/big/anything", &file, true);
    std::thread::sleep(S(2));
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("network lost", S(10)), "{}", sim.dump());
    assert!(sim.ctl("wifi up").starts_with("ok"));
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(30)),
        "{}",
        sim.dump()
    );
    std::thread::sleep(S(2));
    // Still answering commands on the same session.
    let asked = Instant::now();
    broker.publish("cmnd/big/Refresh", "1", false);
    obs.wait_for("stat/big/Uptime", S(10), |m| m.at > asked)
        .unwrap_or_else(|| panic!("no answer to Refresh\n{}", sim.dump()));
    assert_eq!(device_pid(&sim.state()), Some(pid), "{}", sim.dump());
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
    let after = peak_rss(pid);
    println!(
        "device peak RSS {:.1} MiB before, {:.1} MiB after a 64 MiB retained message",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    assert!(
        after < before + (8 << 20),
        "peak memory grew from {before} to {after} bytes\n{}",
        sim.dump()
    );
}

#[test]
fn a_switch_board_switches_while_the_network_is_down_and_reports_after_the_return() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let text = config_for("switch", "sw9", broker.port, "switchboard Direct4\n");
    let sim = Sim::start(&text);
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    obs.wait_for("stat/sw9/0/State", S(10), |m| m.payload == "0")
        .unwrap_or_else(|| panic!("{}", sim.dump()));
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("network lost", S(10)), "{}", sim.dump());
    // A press on input 0 toggles output 0 (the default program) with no network at all.
    let lines = sim.log_count("gpio:");
    assert!(sim.ctl("input 0 on").starts_with("ok"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sim.ctl("input 0 off").starts_with("ok"));
    assert!(
        wait_until(S(5), || sim.log_count("gpio:") > lines),
        "the output must switch offline\n{}",
        sim.dump()
    );
    let connected = sim.log_count("mqtt connected");
    assert!(sim.ctl("wifi up").starts_with("ok"));
    let up = Instant::now();
    assert!(
        sim.wait_log_count("mqtt connected", connected + 1, S(30)),
        "{}",
        sim.dump()
    );
    // The state that changed while offline reaches the broker.
    obs.wait_for("stat/sw9/0/State", S(10), |m| m.at > up && m.payload == "1")
        .unwrap_or_else(|| {
            panic!(
                "the offline change never reached the broker\n{}",
                sim.dump()
            )
        });
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
}

/// One MQTT packet from `s`: its first byte and body.
fn read_packet(s: &mut std::net::TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut head = Vec::new();
    let (len, _) = loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        head.push(b[0]);
        match hearth_fleet::client::decode_remaining_length(&head[1..]) {
            Ok(Some(v)) => break v,
            Ok(None) => continue,
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    };
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// An MQTT 5 PUBLISH (QoS 0, no properties).
fn publish_packet(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    body.push(0); // no properties
    body.extend_from_slice(payload);
    let mut out = vec![0x30 | u8::from(retain)];
    hearth_fleet::client::encode_remaining_length(body.len(), &mut out).unwrap();
    out.extend(body);
    out
}

#[test]
fn a_broker_that_ignores_the_maximum_packet_size_cannot_break_the_session() {
    use std::io::Write;
    // A minimal MQTT 5 broker that sends what the device said it cannot take.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sim = Sim::start(&config("rude", port, ""));
    listener.set_nonblocking(false).unwrap();
    let (mut s, _) = listener.accept().expect("the device connects");
    s.set_read_timeout(Some(S(20))).unwrap();
    let (first, connect) = read_packet(&mut s).unwrap();
    assert_eq!(first, 0x10, "CONNECT");
    // Maximum Packet Size (property 0x27) is in the CONNECT.
    assert!(connect.windows(1).any(|w| w[0] == 0x27), "{connect:?}");
    s.write_all(&[0x20, 3, 0, 0, 0]).unwrap(); // CONNACK: accepted, no properties
                                               // Two SUBSCRIBEs awaited: Home Assistant's status, then the commands (the discovery
                                               // one after them is not awaited).
    for _ in 0..2 {
        let (first, sub) = read_packet(&mut s).unwrap();
        assert_eq!(first & 0xf0, 0x80, "SUBSCRIBE");
        s.write_all(&[0x90, 4, sub[0], sub[1], 0, 0]).unwrap(); // SUBACK granted QoS 0
    }
    let mut seen_uptime_after_refresh = false;
    let mut uptimes = 0;
    let asked = Instant::now();
    let mut pings = 0;
    while asked.elapsed() < S(15) {
        let Ok((first, body)) = read_packet(&mut s) else {
            break;
        };
        match first & 0xf0 {
            0x30 => {
                let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
                // The discovery fence comes back to its subscriber, as from any broker.
                if topic.ends_with("/fence/config") {
                    s.write_all(&publish_packet(&topic, b"", false)).unwrap();
                }
                // Once at the connection; then, behind a retained command of 1 MiB, a live
                // Refresh, which publishes it once more.
                if topic == "stat/rude/Uptime" {
                    uptimes += 1;
                    if uptimes == 1 {
                        s.write_all(&publish_packet(
                            "cmnd/rude/anything",
                            &vec![b'x'; 1 << 20],
                            true,
                        ))
                        .unwrap();
                        s.write_all(&publish_packet("cmnd/rude/Refresh", b"1", false))
                            .unwrap();
                    }
                    if uptimes == 2 {
                        seen_uptime_after_refresh = true;
                        break;
                    }
                }
            }
            0xc0 => {
                pings += 1;
                s.write_all(&[0xd0, 0]).unwrap(); // PINGRESP
            }
            _ => {}
        }
    }
    assert!(
        seen_uptime_after_refresh,
        "the session must survive and serve Refresh ({pings} pings)\n{}",
        sim.dump()
    );
    assert!(
        sim.wait_log(
            "dropped an MQTT packet of 1048597 bytes from the broker",
            S(5)
        ),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.log_count("mqtt connected"), 1, "{}", sim.dump());
    assert_eq!(sim.log_count("mqtt lost"), 0, "{}", sim.dump());
}
