//! ESP-NOW scenarios with real processes: simulated centrals (MQTT to a real mosquitto) and
//! battery peripherals on a simulated air of their own, with deep sleep as process exit and
//! restart.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Broker, Observer, Sim, TempDir};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

const PSK: &str = "test-psk-of-twenty-chars";

fn central(profile: &str, name: &str, port: u16, channel: u8, extra: &str) -> String {
    format!(
        "profile {profile}\nssid Test Network\npassword test-passphrase\nmqttbroker 127.0.0.1:{port}\n\
         mqttname {name}\nstartdelay 0\nwdgrace 0\nmqttkeepalive 5\nmqttbackoffms 200\n\
         mqttbackoffmaxms 2000\nnetretry 1\nnetretryfudge 1\nespnowgroup house\n\
         espnowpsk {PSK}\nespnowchannel {channel}\n{extra}"
    )
}

fn scale(name: &str, sleep_s: u32, extra: &str) -> String {
    format!(
        "profile scale_sensor\nssid (none)\nmqttname {name}\nwdgrace 0\nespnowgroup house\n\
         espnowpsk {PSK}\ncalibration_a 20000\ncalibration_b -50000\nsleep {sleep_s}\n{extra}"
    )
}

/// The `[  t.ttt]` console time of the first log line at or after `from` containing `needle`.
fn log_time(log: &str, needle: &str, from: usize) -> Option<(f64, usize)> {
    let at = log[from..].find(needle)? + from;
    let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &log[line_start..];
    let t = line
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some((t, at + needle.len()))
}

fn air_conf(air: &Path, loss: u8) {
    std::fs::create_dir_all(air).expect("air dir");
    std::fs::write(air.join("air.conf"), format!("loss {loss}\nrssi -60\n")).expect("air.conf");
}

#[test]
fn scale_pairs_on_channel_5_reports_is_confirmed_sleeps_and_is_forwarded() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    let manager = Sim::start_on_air(
        &central("scale_manager", "kitchen", broker.port, 5, ""),
        Some(&air.0),
    );
    assert!(
        manager.wait_log("mqtt connected", s(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::start_on_air(&scale("bathscale", 10, ""), Some(&air.0));
    assert!(scale.ctl("load 72.4").starts_with("ok"));
    // Channels 1..4 take 5 s each before channel 5.
    assert!(
        scale.wait_log("paired with", s(60)),
        "never paired\n{}\n{}",
        scale.dump(),
        manager.dump()
    );
    assert!(scale.log().contains("on channel 5"), "{}", scale.dump());
    obs.wait_for("stat/kitchen/Weight", s(30), |m| m.payload == "72.40")
        .unwrap_or_else(|| panic!("no weight forwarded\n{}\n{}", scale.dump(), manager.dump()));
    // The weight is retained (it holds the last reading): a subscriber arriving now gets it.
    // (A live subscription never shows the retain flag, so ask the broker as a newcomer.)
    let kept = broker.retained("stat/kitchen/Weight");
    assert_eq!(
        kept,
        [("stat/kitchen/Weight".to_string(), "72.40".to_string())],
        "the forwarded weight is not retained"
    );
    // The sender's own topic, named after its address.
    let own = obs
        .all()
        .into_iter()
        .find(|m| {
            m.topic.starts_with("stat/kitchen/")
                && m.topic.ends_with("/Weight")
                && m.topic != "stat/kitchen/Weight"
        })
        .expect("per-sender topic");
    assert_eq!(own.payload, "72.40");
    assert!(
        scale.wait_log("deep sleep 10000 ms", s(10)),
        "{}",
        scale.dump()
    );

    // The next wake: paired from flash (no scan), reports at once.
    assert!(scale.ctl("load 72.9").starts_with("ok"));
    assert!(
        scale.wait_log("reset cause deep-sleep", s(20)),
        "no wake\n{}",
        scale.dump()
    );
    obs.wait_for("stat/kitchen/Weight", s(20), |m| m.payload == "72.90")
        .unwrap_or_else(|| panic!("second reading\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.wait_log_count("deep sleep 10000 ms", 2, s(10)),
        "{}",
        scale.dump()
    );
    let log = scale.log();
    let wake = log.rfind("reset cause deep-sleep").expect("wake");
    let (booted, from) = log_time(&log, "boot: reason deep-sleep wake", wake).expect("boot line");
    let (confirmed, _) = log_time(&log, "espnow: Confirmed", from).expect("confirmed line");
    let ms = (confirmed - booted) * 1000.0;
    println!(
        "wake to confirmed: {ms:.0} ms (HX711 power-up: 400 ms settling, one conversion thrown \
         away, 12 samples at 10 per second; then one ESP-NOW exchange)"
    );
    // The weighing bounds it from below (1.7 s); the link adds milliseconds, not seconds.
    assert!(
        ms < 5_000.0,
        "wake to confirmed took {ms} ms\n{}",
        &log[wake..]
    );
    assert!(
        !log[wake..].contains("unpaired: scanning"),
        "the wake must use the stored pairing\n{log}"
    );
}

#[test]
fn with_30_percent_air_loss_every_reading_still_arrives() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    air_conf(&air.0, 30);
    let manager = Sim::start_on_air(
        &central("scale_manager", "lossy", broker.port, 1, ""),
        Some(&air.0),
    );
    assert!(
        manager.wait_log("mqtt connected", s(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::start_on_air(&scale("lossyscale", 10, ""), Some(&air.0));
    for (i, kg) in ["10.00", "11.00", "12.00"].iter().enumerate() {
        assert!(scale.ctl(&format!("load {kg}")).starts_with("ok"));
        obs.wait_for("stat/lossy/Weight", s(90), |m| m.payload == *kg)
            .unwrap_or_else(|| {
                panic!(
                    "reading {i} ({kg}) lost\n{}\n{}",
                    scale.dump(),
                    manager.dump()
                )
            });
        // The reading is in, but its confirm may be lost too: a woken scale that sent on the
        // fast path must learn the time before it sends again, with a wakeup every 5 s that
        // gets through both ways with p = 0.7² ≈ 0.49. 30 s (six tries) missed one run in 50
        // under CI's load; 90 s leaves one in 10⁵.
        assert!(
            scale.wait_log_count("deep sleep 10000 ms", i + 1, s(90)),
            "{}",
            scale.dump()
        );
    }
}

/// The epochs a device logged, in order ("new epoch E" at each boot without a counter record).
fn epochs(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split("new epoch ").nth(1))
        .filter_map(|rest| rest.split(',').next())
        .map(String::from)
        .collect()
}

#[test]
fn a_scale_whose_flash_is_erased_starts_a_new_epoch_and_still_reports() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    let manager = Sim::start_on_air(
        &central("scale_manager", "hall", broker.port, 1, ""),
        Some(&air.0),
    );
    assert!(
        manager.wait_log("mqtt connected", s(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::start_on_air(&scale("wipedscale", 10, ""), Some(&air.0));
    assert!(scale.ctl("load 61.2").starts_with("ok"));
    obs.wait_for("stat/hall/Weight", s(60), |m| m.payload == "61.20")
        .unwrap_or_else(|| panic!("first reading\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.wait_log("deep sleep 10000 ms", s(10)),
        "{}",
        scale.dump()
    );
    let first = epochs(&scale.log());
    assert_eq!(
        first.len(),
        1,
        "a new store starts one epoch\n{}",
        scale.dump()
    );
    // While it sleeps, its flash is erased (as `espflash erase-flash`, or a store formatted
    // after corruption); the PSK comes back with the same config.
    let flash = scale.state().join("flash.bin");
    let len = std::fs::metadata(&flash).expect("flash file").len() as usize;
    std::fs::write(&flash, vec![0xff; len]).expect("erase the flash");
    assert!(scale.ctl("load 61.9").starts_with("ok"));
    assert!(
        scale.wait_log_count("new epoch", 2, s(30)),
        "no new epoch after the erase\n{}",
        scale.dump()
    );
    // It pairs again and its reading is forwarded: the central takes its new epoch.
    obs.wait_for("stat/hall/Weight", s(60), |m| m.payload == "61.90")
        .unwrap_or_else(|| {
            panic!(
                "reading after the erase\n{}\n{}",
                scale.dump(),
                manager.dump()
            )
        });
    let both = epochs(&scale.log());
    assert_eq!(both.len(), 2, "{}", scale.dump());
    assert_eq!(both[0], first[0]);
    assert_eq!(both[1].len(), 24, "{both:?}");
    assert_ne!(both[0], both[1], "the erased scale reused its epoch");
    // The next wake continues the new epoch from flash: no third one.
    assert!(scale.ctl("load 62.5").starts_with("ok"));
    obs.wait_for("stat/hall/Weight", s(30), |m| m.payload == "62.50")
        .unwrap_or_else(|| panic!("third reading\n{}\n{}", scale.dump(), manager.dump()));
    assert_eq!(epochs(&scale.log()).len(), 2, "{}", scale.dump());
}

#[test]
fn a_v2_peer_is_refused_by_a_v3_network_and_accepted_by_a_v2_network() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    // v3 network: the v2 peripheral's pair requests are dropped as another wire format.
    let air3 = TempDir::new("air3");
    let c3 = Sim::start_on_air(&central("tnowc", "net3", broker.port, 1, ""), Some(&air3.0));
    let peer_v2 = |name: &str| {
        format!(
            "profile tnowp\nssid (none)\nmqttname {name}\nwdgrace 0\nespnowgroup house\n\
             espnowpsk {PSK}\nespnowversion 2\n"
        )
    };
    let p3 = Sim::start_on_air(&peer_v2("old1"), Some(&air3.0));
    assert!(
        c3.wait_log("wire format v2 frame on this network", s(30)),
        "{}",
        c3.dump()
    );
    std::thread::sleep(s(3));
    assert!(!p3.log().contains("paired with"), "{}", p3.dump());

    // v2 network: it pairs and its reports are forwarded.
    let air2 = TempDir::new("air2");
    let c2 = Sim::start_on_air(
        &central("tnowc", "net2", broker.port, 1, "espnowversion 2\n"),
        Some(&air2.0),
    );
    let p2 = Sim::start_on_air(&peer_v2("old2"), Some(&air2.0));
    let t = Instant::now();
    assert!(
        p2.wait_log("paired with", s(30)),
        "{}\n{}",
        p2.dump(),
        c2.dump()
    );
    // tnowp reports every 15..30 s.
    obs.wait_for("stat/net2/Value", s(45), |_| true)
        .unwrap_or_else(|| panic!("no Value forwarded\n{}\n{}", p2.dump(), c2.dump()));
    println!("v2 pair and first report after {:?}", t.elapsed());
    assert!(obs.count("stat/net3/Value") == 0);
}

#[test]
fn hx711_faults_become_malfunction_reports_and_repair_pairs_again() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    let manager = Sim::start_on_air(
        &central("scale_manager", "faults", broker.port, 1, ""),
        Some(&air.0),
    );
    assert!(
        manager.wait_log("mqtt connected", s(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::start_on_air(&scale("faultyscale", 10, ""), Some(&air.0));
    obs.wait_for("stat/faults/Weight", s(30), |m| m.payload == "0.00")
        .unwrap_or_else(|| panic!("first reading\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.wait_log("deep sleep 10000 ms", s(10)),
        "{}",
        scale.dump()
    );
    // While it sleeps: the HX711 comes loose. The next wake reports malfunction 1.
    assert!(scale.ctl("sensor hx711 absent").starts_with("ok"));
    obs.wait_for("stat/faults/Malfunction", s(30), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("malfunction 1\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.wait_log_count("deep sleep 10000 ms", 2, s(10)),
        "{}",
        scale.dump()
    );
    // Readings that never settle: malfunction 8 after the filter's retries.
    assert!(scale.ctl("sensor hx711 unstable").starts_with("ok"));
    obs.wait_for("stat/faults/Malfunction", s(30), |m| m.payload == "8")
        .unwrap_or_else(|| panic!("malfunction 8\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.wait_log_count("deep sleep 10000 ms", 3, s(10)),
        "{}",
        scale.dump()
    );
    // Fixed while it sleeps, and the user asks for a new pairing: done at the next wake.
    assert!(scale.ctl("sensor hx711 ok").starts_with("ok"));
    assert!(scale.ctl("load 3.5").starts_with("ok"));
    assert!(scale.ctl("repair").starts_with("ok"));
    obs.wait_for("stat/faults/Weight", s(30), |m| m.payload == "3.50")
        .unwrap_or_else(|| panic!("after repair\n{}\n{}", scale.dump(), manager.dump()));
    assert!(
        scale.log_count("espnow: paired with") >= 2,
        "re-paired\n{}",
        scale.dump()
    );
}

#[test]
fn a_sleeping_scale_wakes_on_sim_ctl_wake_and_weighs_with_its_own_calibration() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    let _manager = Sim::start_on_air(
        &central("scale_manager", "hall", broker.port, 1, ""),
        Some(&air.0),
    );
    // The calibration of docs/examples/scale_sensor.txt, not the simulator's default cell,
    // and a sleep of ten minutes.
    let scale = Sim::start_on_air(
        &format!(
            "profile scale_sensor\nssid (none)\nmqttname hallscale\nwdgrace 0\n\
             espnowgroup house\nespnowpsk {PSK}\ncalibration_a 21530.5\n\
             calibration_b -84211\nsleep 600\n"
        ),
        Some(&air.0),
    );
    assert!(scale.ctl("wake").starts_with("error: the device is awake"));
    assert!(scale.ctl("load 72.4").starts_with("ok"));
    let near = |m: &support::Seen, kg: f64| {
        m.payload
            .parse::<f64>()
            .is_ok_and(|w| (w - kg).abs() <= 0.02)
    };
    obs.wait_for("stat/hall/Weight", s(60), |m| near(m, 72.4))
        .unwrap_or_else(|| panic!("no 72.4 kg forwarded\n{}", scale.dump()));
    assert!(
        scale.wait_log("deep sleep 600000 ms", s(10)),
        "{}",
        scale.dump()
    );
    // Asleep for ten minutes: woken now instead.
    assert!(scale.ctl("load 80").starts_with("ok"));
    let woken = Instant::now();
    assert_eq!(scale.ctl("wake"), "ok waking now");
    obs.wait_for("stat/hall/Weight", s(20), |m| near(m, 80.0))
        .unwrap_or_else(|| panic!("no reading after the wake\n{}", scale.dump()));
    assert!(woken.elapsed() < s(20));
    assert!(
        scale.log().contains("board: woken by `sim ctl wake`"),
        "{}",
        scale.dump()
    );
}

#[test]
fn a_frame_stamped_with_the_central_s_time_is_forwarded_and_a_wrong_time_is_not() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = TempDir::new("air");
    let hall = Sim::start_on_air(
        &central("scale_manager", "hall", broker.port, 4, ""),
        Some(&air.0),
    );
    assert!(hall.wait_log("mqtt connected", s(20)), "{}", hall.dump());
    let send = |payload: &str, time: &[&str]| {
        std::process::Command::new(support::HEARTH)
            .args(["espnow", "send", "--air"])
            .arg(&air.0)
            .args(["--channel", "4", "--psk", PSK, "--group", "house", "data"])
            .args(time)
            .args(["--payload", payload])
            .output()
            .expect("hearth espnow send")
    };
    // The clock's time is not the central's network time: refused, nothing forwarded.
    let wrong = send("stat/x/Weight\\n61.00", &[]);
    assert!(wrong.status.success(), "{wrong:?}");
    // Its own time, from its next broadcast: forwarded.
    let right = send("stat/x/Weight\\n80.00", &["--ts-from-central"]);
    let said = String::from_utf8_lossy(&right.stderr);
    assert!(right.status.success(), "{right:?}\n{}", hall.dump());
    assert!(said.contains("the central's network time: "), "{said}");
    obs.wait_for("stat/hall/Weight", s(10), |m| m.payload == "80.00")
        .unwrap_or_else(|| panic!("not forwarded\n{said}\n{}", hall.dump()));
    assert!(
        !obs.all()
            .iter()
            .any(|m| m.topic == "stat/hall/Weight" && m.payload == "61.00"),
        "a frame with the clock's time was forwarded\n{}",
        hall.dump()
    );
    // Both at once is a usage error.
    let both = send("stat/x/Weight\\n1.00", &["--ts-from-central", "--ts", "5"]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("either --ts or --ts-from-central"),
        "{both:?}"
    );
}
