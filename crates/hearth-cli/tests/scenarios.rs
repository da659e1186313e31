//! Scenario tests: real mosquitto, real `hearth sim` processes, real faults. Each test owns its
//! broker port, state directory and processes, and cleans them up on drop even when it fails.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn connects_publishes_uptime_and_lwt_and_broker_announces_offline_on_kill() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let t0 = Instant::now();
    let sim = Sim::start(&config("dev1", broker.port, ""));
    let up = obs
        .wait_for("stat/dev1/Uptime", S(20), |m| m.payload == "0")
        .unwrap_or_else(|| panic!("no Uptime\n{}", sim.dump()));
    println!(
        "process start to first Uptime on the broker: {:?}",
        up.at - t0
    );
    obs.wait_for("tele/dev1/LWT", S(5), |m| m.payload == "Online")
        .expect("LWT Online");
    // Availability is retained: a late subscriber sees it at once.
    let late = Observer::start(&broker);
    late.wait_for("tele/dev1/LWT", S(5), |m| {
        m.payload == "Online" && m.retained
    })
    .expect("retained LWT Online for a late subscriber");
    obs.wait_for("stat/dev1/RebootReason", S(5), |m| m.payload == "power-on")
        .expect("boot reason");
    // A power cut kills the process without DISCONNECT: the broker publishes the will.
    assert!(sim.ctl("power-cut").starts_with("ok"));
    obs.wait_for("tele/dev1/LWT", S(10), |m| m.payload == "Offline")
        .unwrap_or_else(|| panic!("no Offline will\n{}", sim.dump()));
    // And the device comes back by itself.
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(20)),
        "{}",
        sim.dump()
    );
}

#[test]
fn broker_restart_reconnects_without_reboot_and_commands_still_work() {
    let mut broker = Broker::start();
    let port = broker.port;
    let sim = Sim::start(&config("dev2", port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    broker.kill();
    assert!(sim.wait_log("mqtt lost", S(10)), "{}", sim.dump());
    std::thread::sleep(S(2));
    let broker = Broker::start_on(port);
    let obs = Observer::start(&broker);
    let t = Instant::now();
    // Back-off is capped at 2 s (+50 % jitter) in the test config, plus a connect timeout margin.
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(10)),
        "no reconnect\n{}",
        sim.dump()
    );
    println!("reconnected {:?} after the broker came back", t.elapsed());
    assert_eq!(
        sim.log_count("boot #"),
        1,
        "must not reboot\n{}",
        sim.dump()
    );
    // Subscriptions were restored: Refresh republishes Uptime.
    std::thread::sleep(Duration::from_millis(500));
    obs.clear();
    broker.publish("cmnd/dev2/Refresh", "1", false);
    obs.wait_for("stat/dev2/Uptime", S(5), |_| true)
        .unwrap_or_else(|| panic!("Refresh after reconnect had no effect\n{}", sim.dump()));
}

#[test]
fn frozen_broker_is_noticed_by_the_keepalive_and_the_device_recovers() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev3", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    broker.signal(libc::SIGSTOP);
    let t = Instant::now();
    // keepalive 5 s: a ping after 2.5 s of silence, dead 2.5 s later.
    assert!(
        sim.wait_log("no PINGRESP", S(12)),
        "frozen broker not noticed\n{}",
        sim.dump()
    );
    println!("frozen broker noticed after {:?}", t.elapsed());
    std::thread::sleep(S(3));
    broker.signal(libc::SIGCONT);
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(30)),
        "no recovery after thaw\n{}",
        sim.dump()
    );
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
}

/// The device-clock seconds from the first line containing `from` to the first line after it
/// containing `to`, both in the same run of the device process.
fn seconds_between(log: &str, from: &str, to: &str) -> Option<f64> {
    let start = log.find(from)?;
    let start = log[..start].rfind('\n').map_or(0, |i| i + 1);
    let mut lines = log[start..].lines();
    let t0 = line_time(lines.next()?)?;
    for line in lines {
        if line.contains("board: device started") {
            return None;
        }
        if line.contains(to) {
            return Some(line_time(line)? - t0);
        }
    }
    None
}

#[test]
fn broker_down_longer_than_the_limit_reboots_and_reports_why() {
    let mut broker = Broker::start();
    let port = broker.port;
    let obs = Observer::start(&broker);
    let sim = Sim::start(&config("dev4", port, "mqttreboot 60\n"));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    // Connected a while (keepalive traffic), then a message from the broker just before it
    // dies, so the device last heard from it when the outage began.
    std::thread::sleep(S(3));
    let sent = Instant::now();
    broker.publish("cmnd/dev4/Refresh", "1", false);
    obs.wait_for("stat/dev4/RebootReason", S(5), |m| m.at > sent)
        .unwrap_or_else(|| panic!("no answer to Refresh\n{}", sim.dump()));
    broker.kill();
    assert!(
        sim.wait_log("rebooting: mqtt", S(90)),
        "no MQTT reboot\n{}",
        sim.dump()
    );
    // Not before the limit: from the device noticing the loss (at once: the connection is
    // reset) to the reboot, on the device's clock, allowing 1 s for the last packet before
    // the kill and the back-off's granularity.
    let log = sim.log();
    let after = seconds_between(&log, "mqtt lost", "rebooting: mqtt")
        .unwrap_or_else(|| panic!("no loss before the reboot\n{log}"));
    println!("rebooted {after:.3} s after the broker was lost");
    assert!(
        (59.0..=75.0).contains(&after),
        "rebooted {after:.3} s after the broker was lost (mqttreboot 60)\n{log}"
    );
    drop(obs);
    let broker = Broker::start_on(port);
    let obs = Observer::start(&broker);
    obs.wait_for("stat/dev4/RebootReason", S(30), |m| {
        m.payload.starts_with("mqtt")
    })
    .unwrap_or_else(|| panic!("reason not published after reboot\n{}", sim.dump()));
}

#[test]
fn wifi_down_then_up_reconnects() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev5", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("network lost", S(5)), "{}", sim.dump());
    std::thread::sleep(S(3));
    assert!(sim.ctl("wifi up").starts_with("ok"));
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(20)),
        "{}",
        sim.dump()
    );
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
}

#[test]
fn wifi_down_longer_than_the_network_limit_reboots() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev6", broker.port, "netreboot 60\n"));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    // Up a while first (longer than one connect-and-wait cycle, ~7 s here, the granularity of
    // the reboot check), so a limit counted from the connection would show.
    std::thread::sleep(S(8));
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("rebooting: network", S(90)), "{}", sim.dump());
    // Not before the limit: from the link going down (the device's own record of it) to the
    // reboot, on the device's clock, allowing the 1 s loop period in which the loss is seen.
    let log = sim.log();
    let after = seconds_between(&log, "environment: wifi down", "rebooting: network")
        .unwrap_or_else(|| panic!("no outage before the reboot\n{log}"));
    println!("rebooted {after:.3} s after the link went down");
    assert!(
        (59.0..=75.0).contains(&after),
        "rebooted {after:.3} s after the link went down (netreboot 60)\n{log}"
    );
    assert!(sim.ctl("wifi up").starts_with("ok"));
    let obs = Observer::start(&broker);
    obs.wait_for("stat/dev6/RebootReason", S(30), |m| {
        m.payload.starts_with("network")
    })
    .unwrap_or_else(|| panic!("{}", sim.dump()));
}

#[test]
fn stuck_wifi_is_detected_and_recovered() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev7", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    assert!(sim.ctl("wifi stuck").starts_with("ok"));
    assert!(
        sim.wait_log("mqtt lost", S(15)),
        "stuck link not noticed\n{}",
        sim.dump()
    );
    assert!(
        sim.wait_log("re-associating", S(60)),
        "no re-association\n{}",
        sim.dump()
    );
    assert!(sim.ctl("wifi up").starts_with("ok"));
    assert!(
        sim.wait_log_count("mqtt connected", 2, S(30)),
        "{}",
        sim.dump()
    );
}

#[test]
fn a_blocked_loop_is_reset_by_the_watchdog() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev8", broker.port, "watchdog 5\n"));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    assert!(sim.ctl("block 20").starts_with("ok"));
    assert!(
        sim.wait_log("watchdog: the loop stopped", S(15)),
        "{}",
        sim.dump()
    );
    assert!(
        sim.wait_log("boot #2, reason: watchdog", S(10)),
        "{}",
        sim.dump()
    );
    let obs = Observer::start(&broker);
    obs.wait_for("stat/dev8/RebootReason", S(20), |m| m.payload == "watchdog")
        .unwrap_or_else(|| panic!("{}", sim.dump()));
}

#[test]
fn a_slow_operation_inside_the_may_block_window_does_not_reset() {
    let broker = Broker::start();
    let sim = Sim::start(&config("dev9", broker.port, "watchdog 5\nmayblock 30\n"));
    assert!(sim.wait_log("mqtt connected", S(20)), "{}", sim.dump());
    assert!(sim.ctl("slow 10").starts_with("ok"));
    assert!(sim.wait_log("slow operation done", S(15)), "{}", sim.dump());
    std::thread::sleep(S(3));
    assert_eq!(
        sim.log_count("boot #"),
        1,
        "reset although permitted\n{}",
        sim.dump()
    );
    assert_eq!(sim.log_count("watchdog:"), 0, "{}", sim.dump());
}

#[test]
fn a_retained_reboot_command_does_not_loop_the_device() {
    let broker = Broker::start();
    broker.publish("cmnd/dev10/OTA", "reboot", true);
    let sim = Sim::start(&config("dev10", broker.port, ""));
    assert!(
        sim.wait_log("ignored retained command on cmnd/dev10/OTA", S(20)),
        "{}",
        sim.dump()
    );
    std::thread::sleep(S(3));
    assert_eq!(sim.log_count("rebooting"), 0, "{}", sim.dump());
    assert_eq!(sim.log_count("boot #"), 1, "{}", sim.dump());
    // A live (non-retained) reboot command is obeyed, and only once.
    broker.publish("cmnd/dev10/OTA", "reboot", false);
    assert!(
        sim.wait_log("boot #2, reason: command", S(15)),
        "{}",
        sim.dump()
    );
    assert!(
        sim.wait_log_count("ignored retained command", 2, S(15)),
        "{}",
        sim.dump()
    );
    std::thread::sleep(S(2));
    assert_eq!(sim.log_count("boot #"), 2, "{}", sim.dump());
}

#[test]
fn refresh_republishes_every_topic() {
    const ITEMS: [&str; 6] = [
        "Uptime",
        "RebootReason",
        "Temperature",
        "Humidity",
        "Pressure",
        "Malfunction",
    ];
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&config("dev11", broker.port, ""));
    for item in ["Temperature", "Humidity", "Pressure"] {
        obs.wait_for(&format!("stat/dev11/{item}"), S(30), |_| true)
            .unwrap_or_else(|| panic!("no {item}\n{}", sim.dump()));
    }
    let last = |item: &str| {
        obs.all()
            .into_iter()
            .rev()
            .find(|m| m.topic == format!("stat/dev11/{item}"))
            .map(|m| m.payload)
    };
    let republished = |since: Instant| -> Vec<String> {
        obs.all()
            .into_iter()
            .filter(|m| m.at > since && ITEMS.iter().any(|i| m.topic == format!("stat/dev11/{i}")))
            .map(|m| m.topic)
            .collect()
    };

    // A retained Refresh is ignored: stored while the device is offline, it reaches the device
    // flagged retained when it subscribes again, and must not republish anything.
    assert!(sim.ctl("wifi down").starts_with("ok"));
    assert!(sim.wait_log("mqtt lost", S(10)), "{}", sim.dump());
    broker.publish("cmnd/dev11/Refresh", "1", true);
    assert!(sim.ctl("wifi up").starts_with("ok"));
    assert!(
        sim.wait_log("ignored retained command on cmnd/dev11/Refresh", S(20)),
        "{}",
        sim.dump()
    );
    let ignored = Instant::now();
    std::thread::sleep(S(2));
    let after = republished(ignored - Duration::from_millis(500));
    assert!(
        after.is_empty(),
        "a retained Refresh republished {after:?}\n{}",
        sim.dump()
    );
    broker.publish("cmnd/dev11/Refresh", "", true);

    // A live Refresh republishes every item, with its current value, at once (RebootReason is
    // published only at boot and on Refresh; the others are not due for a minute).
    let before: Vec<_> = ITEMS.iter().map(|i| (i, last(i))).collect();
    let sent = Instant::now();
    broker.publish("cmnd/dev11/Refresh", "1", false);
    for (item, value) in before {
        let m = obs
            .wait_for(&format!("stat/dev11/{item}"), S(3), |m| m.at > sent)
            .unwrap_or_else(|| panic!("Refresh did not republish {item}\n{}", sim.dump()));
        assert_eq!(
            Some(m.payload),
            value,
            "{item} republished with another value"
        );
    }

    // An empty Refresh does nothing.
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    broker.publish("cmnd/dev11/Refresh", "", false);
    std::thread::sleep(S(2));
    let after = republished(sent);
    assert!(
        after.is_empty(),
        "an empty Refresh republished {after:?}\n{}",
        sim.dump()
    );
}

#[test]
fn weather_values_are_plausible_and_sensor_faults_show_in_malfunction() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&config("dev12", broker.port, ""));
    let t = obs
        .wait_for("stat/dev12/Temperature", S(30), |_| true)
        .expect("temperature");
    let p = obs
        .wait_for("stat/dev12/Pressure", S(5), |_| true)
        .expect("pressure");
    let h = obs
        .wait_for("stat/dev12/Humidity", S(5), |_| true)
        .expect("humidity");
    let t: f64 = t.payload.parse().expect("temperature is a number");
    let p: f64 = p.payload.parse().expect("pressure is a number");
    let h: f64 = h.payload.parse().expect("humidity is a number");
    assert!((-30.0..50.0).contains(&t), "temperature {t}");
    assert!((900.0..1100.0).contains(&p), "pressure {p} hPa");
    assert!((0.0..=100.0).contains(&h), "humidity {h}");
    // No malfunction once the sensors have been read. (The boot published 0 before any read:
    // ask for the current value with a Refresh.)
    let asked = Instant::now();
    broker.publish("cmnd/dev12/Refresh", "1", false);
    let now = obs
        .wait_for("stat/dev12/Malfunction", S(5), |m| m.at > asked)
        .unwrap_or_else(|| panic!("no Malfunction after Refresh\n{}", sim.dump()));
    let all: Vec<_> = obs
        .all()
        .into_iter()
        .filter(|m| m.topic == "stat/dev12/Malfunction")
        .map(|m| m.payload)
        .collect();
    assert!(
        now.payload == "0" && all.iter().all(|p| p == "0"),
        "malfunction with healthy sensors: {all:?}\n{}",
        sim.dump()
    );
    assert!(sim.ctl("sensor bme280 readfails").starts_with("ok"));
    obs.wait_for("stat/dev12/Malfunction", S(20), |m| {
        m.payload.parse::<u32>().is_ok_and(|v| v & 16 != 0)
    })
    .unwrap_or_else(|| panic!("pressure failure not reported\n{}", sim.dump()));
    let cleared = Instant::now();
    assert!(sim.ctl("sensor bme280 ok").starts_with("ok"));
    obs.wait_for("stat/dev12/Malfunction", S(20), |m| {
        m.payload == "0" && m.at > cleared
    })
    .unwrap_or_else(|| panic!("recovery not reported\n{}", sim.dump()));
}

#[test]
fn two_hundred_power_cuts_never_corrupt_the_store() {
    // No broker needed: the device keeps writing its store while the power is cut at random.
    let closed = support::RefusingPort::new();
    let port = closed.port;
    let sim = Sim::start(&config("dev13", port, "watchdog 0\n"));
    assert!(sim.ctl("storage-stress on").starts_with("ok"));
    assert!(sim.wait_log("stress-ack", S(20)), "{}", sim.dump());
    let mut seed: u64 = 0x1234_5678;
    for i in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(15 + seed % 60));
        let reply = sim.ctl("power-cut");
        assert!(reply.starts_with("ok"), "cut {i}: {reply}");
    }
    // Let the last run write a little, then check every run's view of the store.
    std::thread::sleep(S(1));
    let log = sim.log();
    let mut last_ack: Option<u64> = None;
    let mut runs = 0;
    let mut checked = 0;
    // Runs that acknowledged at least one write of their own.
    let mut writing_runs = 0;
    let mut wrote = false;
    for line in log.lines() {
        if line.contains("board: device started") {
            writing_runs += usize::from(wrote);
            wrote = false;
            runs += 1;
        } else if let Some(rest) = line.split("stress-boot ").nth(1) {
            assert!(
                !rest.contains("corrupt"),
                "corrupt store after a power cut: {line}\n{log}"
            );
            let n: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .expect("stress number");
            if let Some(ack) = last_ack {
                assert!(
                    n >= ack && n <= ack + 1,
                    "acknowledged write {ack} lost: read {n}"
                );
                checked += 1;
            }
            last_ack = Some(n);
        } else if let Some(rest) = line.split("stress-ack ").nth(1) {
            last_ack = rest.trim().parse().ok();
            wrote = true;
        }
        assert!(
            !line.contains("has been formatted"),
            "store was reformatted: {line}"
        );
    }
    writing_runs += usize::from(wrote);
    println!("{runs} runs, {writing_runs} wrote, {checked} verified a stored record");
    assert!(runs >= 201, "expected 201 device runs, saw {runs}");
    // A power cut is not a fault of the code: no run may start in safe mode (the device says
    // so on its console), and the stress writes must really have happened run after run.
    assert_eq!(
        log.matches("safe mode").count(),
        0,
        "power cuts started safe mode\n{log}"
    );
    assert!(
        writing_runs >= 170,
        "only {writing_runs} of {runs} runs wrote a stress record\n{log}"
    );
    assert!(
        checked >= 150,
        "too few restarts verified a stored record: {checked}\n{log}"
    );
}

#[test]
fn a_malformed_config_gives_a_clear_error_and_no_restart_loop() {
    let dir = TempDir::new("badcfg");
    let cfg = dir.0.join("config.txt");
    std::fs::write(
        &cfg,
        "profile weather\nssid Home\nmqtbroker 10.0.0.1\nmqttname dev\nwatchdog lots\n",
    )
    .unwrap();
    let out = Command::new(HEARTH)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.txt:3: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)"),
        "{err}"
    );
    assert!(err.contains("config.txt:5:"), "{err}");
    let t = Instant::now();
    let out = Command::new(HEARTH)
        .args(["sim", "--config"])
        .arg(&cfg)
        .arg("--state")
        .arg(dir.0.join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "sim must refuse a bad config");
    assert!(t.elapsed() < S(5), "no restart loop: it must stop at once");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key"));
    assert!(
        !dir.0.join("state").join("flash.bin").exists(),
        "nothing was powered up"
    );
    // A good config passes the check.
    std::fs::write(&cfg, config("dev", 1883, "")).unwrap();
    let out = Command::new(HEARTH)
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_runs_with_its_embedded_broker_and_cleans_up() {
    let out = Command::new(HEARTH)
        .args(["demo", "--port", "0", "--devices", "2", "--for", "30"])
        .output()
        .expect("run hearth demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain lines: no escape codes, and the discovery configs summarised, one line each.
    assert!(
        !text.contains('\x1b'),
        "escape codes in the plain output:\n{text}"
    );
    assert!(
        !text.contains("\"components\""),
        "discovery JSON in the plain output:\n{text}"
    );
    let relays = text
        .lines()
        .find(|l| l.contains("homeassistant/device/relays/config"))
        .unwrap_or_else(|| panic!("no discovery line for the relays:\n{text}"));
    assert!(
        relays.contains("(discovery: ") && relays.contains(" entities, "),
        "{relays}"
    );
    for needle in [
        "tele/weather-1/LWT",
        "tele/weather-2/LWT",
        "stat/weather-1/Uptime",
        "stat/weather-1/Temperature",
        "stat/weather-2/Pressure",
        // The rest of the house.
        "stat/meter/Malfunction",
        "stat/relays/0/State",
        "stat/keyfobs/Keyfob",
        "stat/scales/Weight",
        "homeassistant/device/relays/config",
        "stat/tank/CoarseLevelPct",
        "stat/lights/Manual1/Event",
        "tele/boiler/LWT",
        "homeassistant/device/boiler/config",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle}:\n{text}");
    }
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("hearth demo: device state and logs in "))
        .expect("the demo names its state directory");
    assert!(
        !std::path::Path::new(dir.trim()).exists(),
        "demo left {dir} behind"
    );
}

#[test]
fn the_raw_demo_prints_the_discovery_json() {
    let out = Command::new(HEARTH)
        .args([
            "demo",
            "--port",
            "0",
            "--devices",
            "1",
            "--for",
            "12",
            "--raw",
        ])
        .output()
        .expect("run hearth demo --raw");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let relays = text
        .lines()
        .find(|l| l.contains("homeassistant/device/relays/config"))
        .unwrap_or_else(|| panic!("no discovery line for the relays:\n{text}"));
    assert!(relays.contains("\"components\":{"), "{relays}");
    assert!(!text.contains("(discovery: "), "{text}");
}

#[test]
fn broker_credentials_from_the_config_are_used() {
    let broker = Broker::start_with_login("hearth", "s3cret pass");
    let good = Sim::start(&config(
        "dev14",
        broker.port,
        "mqttuser hearth\nmqttpassword s3cret pass\n",
    ));
    let bad = Sim::start(&config(
        "dev15",
        broker.port,
        "mqttuser hearth\nmqttpassword wrong\n",
    ));
    let anonymous = Sim::start(&config("dev16", broker.port, ""));
    assert!(good.wait_log("mqtt connected", S(20)), "{}", good.dump());
    assert!(bad.wait_log("mqtt connect failed", S(20)), "{}", bad.dump());
    assert!(
        anonymous.wait_log("mqtt connect failed", S(20)),
        "{}",
        anonymous.dump()
    );
    std::thread::sleep(S(2));
    assert_eq!(bad.log_count("mqtt connected"), 0, "{}", bad.dump());
    assert_eq!(
        anonymous.log_count("mqtt connected"),
        0,
        "{}",
        anonymous.dump()
    );
}
