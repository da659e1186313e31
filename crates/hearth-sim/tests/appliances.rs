//! The appliances of issue 5 in the simulator against mosquitto: their topics, commands and
//! injected faults, through real processes.

mod support;

use std::time::{Duration, Instant};

use support::{Broker, Observer, Sim};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn appliance(profile: &str, name: &str, port: u16, extra: &str) -> String {
    format!(
        "profile {profile}\nssid Test Network\npassword test-passphrase\nmqttbroker 127.0.0.1:{port}\n\
         mqttname {name}\nstartdelay 0\nwdgrace 0\nmqttkeepalive 5\nmqttbackoffms 200\n\
         mqttbackoffmaxms 2000\nnetretry 1\nnetretryfudge 1\n{extra}"
    )
}

#[test]
fn relay_turns_on_for_the_clamped_time_and_survives_a_power_cut() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance(
        "relay",
        "r1",
        broker.port,
        "relay1max 4\nrelays 2\n",
    ));
    assert!(
        sim.wait_log("discovery: 4 entities announced", s(20)),
        "{}",
        sim.dump()
    );
    // Two switches in Home Assistant, commanded on their own topics.
    let sw: Vec<_> = obs
        .all()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/switch/r1/"))
        .collect();
    assert_eq!(sw.len(), 2, "{sw:?}");
    assert!(
        sw[0].payload.contains("\"command_topic\":\"cmnd/r1/"),
        "{}",
        sw[0].payload
    );

    // Asked for 100 s, clamped to relay1max = 4 s, then off by itself.
    broker.publish("cmnd/r1/0/TurnOnWithTimeout", "100", false);
    let on = obs
        .wait_for("stat/r1/0/State", s(10), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("relay on\n{}", sim.dump()));
    assert!(sim.wait_log("gpio: relay 1", s(5)), "{}", sim.dump());
    let off = obs
        .wait_for("stat/r1/0/State", s(10), |m| {
            m.payload == "0" && m.at > on.at
        })
        .unwrap_or_else(|| panic!("relay off\n{}", sim.dump()));
    let held = off.at - on.at;
    assert!(
        held >= Duration::from_millis(3_000) && held <= Duration::from_millis(6_000),
        "held {held:?}"
    );
    assert!(
        sim.log().contains("clamp"),
        "a log line says it was clamped\n{}",
        sim.dump()
    );

    // Relay 2 on for a minute; a power cut; it comes back on for the rest.
    broker.publish("cmnd/r1/1/TurnOnWithTimeout", "60", false);
    obs.wait_for("stat/r1/1/State", s(10), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("relay 2 on\n{}", sim.dump()));
    std::thread::sleep(s(1));
    obs.clear();
    assert!(sim.ctl("power-cut").starts_with("ok"));
    assert!(
        sim.wait_log_count("mqtt connected", 2, s(20)),
        "{}",
        sim.dump()
    );
    obs.wait_for("stat/r1/1/State", s(10), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("relay 2 restored\n{}", sim.dump()));
    // Garbage is ignored and logged, never fatal.
    broker.publish("cmnd/r1/1/TurnOnWithTimeout", "soon", false);
    obs.wait_for("stat/r1/Log", s(10), |m| m.payload.contains("invalid"))
        .unwrap_or_else(|| panic!("bad payload logged\n{}", sim.dump()));
    assert_eq!(sim.log_count("boot #"), 2, "{}", sim.dump());
}

#[test]
fn energy_meter_ticker_values_and_an_absent_pzem() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let t0 = Instant::now();
    let sim = Sim::start(&appliance("energy", "e1", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    broker.publish("cmnd/e1/Ticker", "on", false);
    let v = obs
        .wait_for("stat/e1/Vnow", s(40), |_| true)
        .unwrap_or_else(|| panic!("live voltage\n{}", sim.dump()));
    let volts: f64 = v.payload.parse().expect("a number");
    assert!((200.0..=250.0).contains(&volts), "{volts}");
    for item in ["Anow", "Wnow"] {
        obs.wait_for(&format!("stat/e1/{item}"), s(5), |m| {
            m.payload.parse::<f64>().is_ok()
        })
        .unwrap_or_else(|| panic!("{item}\n{}", sim.dump()));
    }
    println!("first live value {:?} after start", v.at - t0);
    // The meter goes away: malfunction, and no more values.
    assert!(sim.ctl("sensor pzem absent").starts_with("ok"));
    obs.wait_for("stat/e1/Malfunction", s(20), |m| m.payload != "0")
        .unwrap_or_else(|| panic!("malfunction\n{}", sim.dump()));
    // Back: recovers within the back-off.
    assert!(sim.ctl("sensor pzem ok").starts_with("ok"));
    obs.wait_for("stat/e1/Malfunction", s(30), |m| m.payload == "0")
        .unwrap_or_else(|| panic!("recovered\n{}", sim.dump()));
}

#[test]
fn keyfob_presses_become_events_and_an_absent_receiver_hears_nothing() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance("rx433", "rf1", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    let ev = obs
        .wait_for("homeassistant/event/rf1/Keyfob/config", s(5), |_| true)
        .unwrap_or_else(|| panic!("keyfob event entity\n{}", sim.dump()));
    assert!(ev.payload.contains("\"event_types\""), "{}", ev.payload);
    assert!(sim.ctl("press ev1527 12345 3").starts_with("ok"));
    // EV1527: 20-bit address then 4 data bits.
    let code = (12345u32 << 4) | 3;
    let press = obs
        .wait_for("stat/rf1/Keyfob", s(5), |m| {
            m.payload == format!("EV1527:{code}")
        })
        .unwrap_or_else(|| panic!("EV1527 press\n{}", sim.dump()));
    assert!(!press.retained);
    assert!(sim.ctl("press ht6p20 777 1").starts_with("ok"));
    obs.wait_for("stat/rf1/Keyfob", s(5), |m| {
        m.payload.starts_with("HT6P20:")
    })
    .unwrap_or_else(|| panic!("HT6P20 press\n{}", sim.dump()));
    // The receiver is gone: a press is heard by nobody.
    assert!(sim.ctl("sensor ook absent").starts_with("ok"));
    std::thread::sleep(Duration::from_millis(300));
    let before = obs.count("stat/rf1/Keyfob");
    assert!(sim.ctl("press ev1527 999 1").starts_with("ok"));
    std::thread::sleep(s(2));
    let heard: Vec<_> = obs
        .all()
        .into_iter()
        .filter(|m| m.topic == "stat/rf1/Keyfob" && !m.payload.is_empty())
        .collect();
    assert!(
        heard
            .iter()
            .all(|m| m.payload != format!("EV1527:{}", (999u32 << 4) | 1)),
        "{heard:?}"
    );
    assert!(obs.count("stat/rf1/Keyfob") >= before);
    // Back: heard again.
    assert!(sim.ctl("sensor ook ok").starts_with("ok"));
    assert!(sim.ctl("press ev1527 999 1").starts_with("ok"));
    obs.wait_for("stat/rf1/Keyfob", s(5), |m| {
        m.payload == format!("EV1527:{}", (999u32 << 4) | 1)
    })
    .unwrap_or_else(|| panic!("recovered\n{}", sim.dump()));
}
