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
        sim.wait_log("discovery: 14 entities announced", s(20)),
        "{}",
        sim.dump()
    );
    // A relay board has no switch inputs, and says so, and no tank (the boot log shows only
    // what the appliance has).
    assert_eq!(
        sim.ctl("input 0 on"),
        "error: this board has no switch inputs"
    );
    assert!(!sim.log().contains("tank switches"), "{}", sim.dump());
    // Two switches in Home Assistant, commanded on their own topics.
    let sw: Vec<_> = obs
        .entities()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/switch/r1/"))
        .collect();
    assert_eq!(sw.len(), 2, "{sw:?}");
    assert!(
        sw[0].payload.contains("\"command_topic\":\"cmnd/r1/"),
        "{}",
        sw[0].payload
    );

    // Asked for 100 s, clamped to relay1max = 4 s, then off by itself. The relays are
    // active-low: the boot drove relay 1's pin high (off), so `low` is the command's doing and
    // the second `high` the auto-off.
    assert_eq!(sim.log_count("gpio: relay 1 low"), 0, "{}", sim.dump());
    assert_eq!(sim.log_count("gpio: relay 1 high"), 1, "{}", sim.dump());
    broker.publish("cmnd/r1/0/TurnOnWithTimeout", "100", false);
    let on = obs
        .wait_for("stat/r1/0/State", s(10), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("relay on\n{}", sim.dump()));
    assert!(sim.wait_log("gpio: relay 1 low", s(5)), "{}", sim.dump());
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
    // The pin itself: energised for the clamped 4 s (device clock), then released.
    assert!(
        sim.wait_log_count("gpio: relay 1 high", 2, s(5)),
        "relay 1's pin never released\n{}",
        sim.dump()
    );
    let log = sim.log();
    let energised = support::log_times(&log, "gpio: relay 1 low")[0];
    let released = support::log_times(&log, "gpio: relay 1 high")[1];
    let pin_held = released - energised;
    println!("relay 1 pin held {pin_held:.3} s");
    assert!(
        (3.9..=5.0).contains(&pin_held),
        "pin held {pin_held:.3} s\n{log}"
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
    // And its pin is energised again in the new run (the boot drove it high first).
    assert!(
        support::wait_until(s(5), || {
            let log = sim.log();
            log.rsplit("board: device started")
                .next()
                .is_some_and(|run| run.contains("gpio: relay 2 low"))
        }),
        "relay 2's pin not energised after the power cut\n{}",
        sim.dump()
    );
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
    assert!(
        support::wait_until(s(10), || support::schema::check_all(&obs, "e1") >= 3),
        "discovery configs of e1\n{}",
        sim.dump()
    );
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
    // The meter goes away: malfunction (a failed read, 4), and no more values.
    assert!(sim.ctl("sensor pzem absent").starts_with("ok"));
    let broken = obs
        .wait_for("stat/e1/Malfunction", s(20), |m| m.payload == "4")
        .unwrap_or_else(|| panic!("malfunction\n{}", sim.dump()));
    std::thread::sleep(s(3));
    // Back: recovers within the back-off. (The boot published 0 too: only a 0 after the
    // repair counts.)
    let repaired = Instant::now();
    assert!(sim.ctl("sensor pzem ok").starts_with("ok"));
    let recovered = obs
        .wait_for("stat/e1/Malfunction", s(30), |m| {
            m.payload == "0" && m.at > repaired
        })
        .unwrap_or_else(|| panic!("recovered\n{}", sim.dump()));
    println!(
        "malfunction reported {:?} after the repair",
        recovered.at - repaired
    );
    // While it was away the ticker (60 s from its start) ran on, but published nothing.
    let during: Vec<_> = obs
        .all()
        .into_iter()
        .filter(|m| {
            m.topic == "stat/e1/Vnow"
                && m.at > broken.at + Duration::from_millis(500)
                && m.at < repaired
        })
        .collect();
    assert!(during.is_empty(), "values while malfunctioning: {during:?}");
}

#[test]
fn keyfob_presses_become_events_and_an_absent_receiver_hears_nothing() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance("rx433", "rf1", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    assert!(
        support::wait_until(s(10), || support::schema::check_all(&obs, "rf1") >= 3),
        "discovery configs of rf1\n{}",
        sim.dump()
    );
    let ev = obs
        .entities()
        .into_iter()
        .find(|m| m.topic == "homeassistant/event/rf1/Keyfob/config")
        .unwrap_or_else(|| panic!("keyfob event entity\n{}", sim.dump()));
    assert!(ev.payload.contains("\"event_types\""), "{}", ev.payload);
    assert!(sim.ctl("press ev1527 12345 3").starts_with("ok"));
    // EV1527: 20-bit address then 4 data bits.
    let code = (12345u32 << 4) | 3;
    obs.wait_for("stat/rf1/Keyfob", s(5), |m| {
        m.payload == format!("EV1527:{code}")
    })
    .unwrap_or_else(|| panic!("EV1527 press\n{}", sim.dump()));
    // A press is an event, not retained: a subscriber arriving now gets the retained
    // statistics but no old press.
    let kept = broker.retained("stat/rf1/#");
    assert!(
        kept.iter().any(|(t, _)| t == "stat/rf1/Statistics"),
        "the retained statistics are there\n{kept:?}"
    );
    assert!(
        !kept.iter().any(|(t, _)| t == "stat/rf1/Keyfob"),
        "the press was retained\n{kept:?}"
    );
    assert!(sim.ctl("press ht6p20 777 1").starts_with("ok"));
    obs.wait_for("stat/rf1/Keyfob", s(5), |m| {
        m.payload.starts_with("HT6P20:")
    })
    .unwrap_or_else(|| panic!("HT6P20 press\n{}", sim.dump()));
    // The receiver is gone: a press is heard by nobody, not even later.
    assert!(sim.ctl("sensor ook absent").starts_with("ok"));
    std::thread::sleep(Duration::from_millis(300));
    let before = obs.count("stat/rf1/Keyfob");
    assert!(sim.ctl("press ev1527 999 1").starts_with("ok"));
    std::thread::sleep(s(2));
    let heard: Vec<_> = obs
        .all()
        .into_iter()
        .filter(|m| m.topic == "stat/rf1/Keyfob")
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        heard.len(),
        before,
        "a press with the receiver absent was published: {heard:?}"
    );
    // Back: a new press is heard (another code, so the one sent while it was absent cannot
    // stand in for it), and the lost one never turns up.
    assert!(sim.ctl("sensor ook ok").starts_with("ok"));
    assert!(sim.ctl("press ev1527 998 2").starts_with("ok"));
    obs.wait_for("stat/rf1/Keyfob", s(5), |m| {
        m.payload == format!("EV1527:{}", (998u32 << 4) | 2)
    })
    .unwrap_or_else(|| panic!("recovered\n{}", sim.dump()));
    let lost = format!("EV1527:{}", (999u32 << 4) | 1);
    assert!(
        !obs.all()
            .iter()
            .any(|m| m.topic == "stat/rf1/Keyfob" && m.payload == lost),
        "the press sent while the receiver was absent was delivered late\n{}",
        sim.dump()
    );
}

#[test]
fn h2o_level_recovers_after_an_expander_fault_and_flow_is_measured() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance(
        "h2o",
        "tank1",
        broker.port,
        "unit L\ncapacity 1000\nlevelsensors 25,50,75,100\nflowpulserate 7.5\nmaxflow 30\n",
    ));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    assert!(
        support::wait_until(s(10), || support::schema::check_all(&obs, "tank1") >= 3),
        "discovery configs of tank1\n{}",
        sim.dump()
    );
    // The two lowest switches are wet: the level is between 50 % and 75 %.
    assert!(sim.ctl("tank 3").starts_with("ok"));
    let level = |m: &support::Seen| m.payload.parse::<f64>().ok();
    let first = obs
        .wait_for("stat/tank1/CoarseLevelPct", s(15), |m| {
            level(m).is_some_and(|l| (50.0..75.0).contains(&l))
        })
        .unwrap_or_else(|| panic!("level\n{}", sim.dump()));
    assert!(first.payload.parse::<f64>().is_ok());
    // The expander fails: malfunction, and the level is forced to full.
    assert!(sim.ctl("sensor mcp23017 absent").starts_with("ok"));
    obs.wait_for("stat/tank1/Malfunction", s(20), |m| m.payload != "0")
        .unwrap_or_else(|| panic!("malfunction\n{}", sim.dump()));
    obs.wait_for("stat/tank1/CoarseLevelPct", s(15), |m| {
        level(m) == Some(100.0)
    })
    .unwrap_or_else(|| panic!("forced full\n{}", sim.dump()));
    // It comes back with the same switches wet: the level is measured again (the reference
    // stayed at 100 % because the bitmap had not changed).
    obs.clear();
    assert!(sim.ctl("sensor mcp23017 ok").starts_with("ok"));
    obs.wait_for("stat/tank1/CoarseLevelPct", s(30), |m| {
        level(m).is_some_and(|l| (50.0..75.0).contains(&l))
    })
    .unwrap_or_else(|| panic!("level after recovery\n{}", sim.dump()));
    // Water flows at 15 pulses/s = 2 L/min at 7.5 pulses per litre.
    assert!(sim.ctl("flow 15").starts_with("ok"));
    obs.wait_for("stat/tank1/Flow", s(30), |m| {
        m.payload
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|f| f > 0.0)
    })
    .unwrap_or_else(|| panic!("flow\n{}", sim.dump()));
}

#[test]
fn switch_inputs_toggle_outputs_and_programs_are_checked() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance(
        "switch",
        "sw1",
        broker.port,
        "switchboard Direct4\n",
    ));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    assert!(
        support::wait_until(s(10), || support::schema::check_all(&obs, "sw1") >= 3),
        "discovery configs of sw1\n{}",
        sim.dump()
    );
    // Wait for the device config and the event entities in it.
    let events = || {
        obs.entities()
            .into_iter()
            .filter(|m| m.topic.starts_with("homeassistant/event/sw1/"))
            .count()
    };
    support::wait_until(s(10), || events() >= 4);
    assert_eq!(events(), 4, "one event entity per manual input");
    // A Direct4 has inputs 0 to 3: a fifth is refused, not silently ignored.
    assert_eq!(
        sim.ctl("input 4 on"),
        "error: input 4: this board's inputs are 0 to 3"
    );
    // A short press on input 0 toggles output 0 (the default program), with an event.
    assert!(sim.ctl("input 0 on").starts_with("ok"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sim.ctl("input 0 off").starts_with("ok"));
    obs.wait_for("stat/sw1/0/State", s(5), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("output 0 on\n{}", sim.dump()));
    obs.wait_for("stat/sw1/Manual0/Event", s(5), |m| m.payload == "P")
        .unwrap_or_else(|| panic!("manual event\n{}", sim.dump()));
    // An event is not retained: a subscriber arriving now gets the retained output state but
    // no old press.
    let kept = broker.retained("stat/sw1/#");
    assert!(
        kept.iter()
            .any(|(t, p)| t == "stat/sw1/0/State" && p == "1"),
        "the retained state is there\n{kept:?}"
    );
    assert!(
        !kept.iter().any(|(t, _)| t == "stat/sw1/Manual0/Event"),
        "the event was retained\n{kept:?}"
    );
    assert!(sim.log().contains("gpio: output 0 high"), "{}", sim.dump());
    // Commands switch outputs too.
    broker.publish("cmnd/sw1/2/State", "on", false);
    obs.wait_for("stat/sw1/2/State", s(5), |m| m.payload == "1")
        .unwrap_or_else(|| panic!("output 2 by command\n{}", sim.dump()));
    // A bad program is refused with the reference's message; the old one keeps running. (The
    // boot published `Success`: only an answer to this command counts.)
    let sent = Instant::now();
    broker.publish("cmnd/sw1/Program", "9:Q:+0", false);
    let c = obs
        .wait_for("stat/sw1/ProgramCompilation", s(5), |m| m.at > sent)
        .unwrap_or_else(|| panic!("compilation result\n{}", sim.dump()));
    println!("compile error: {}", c.payload);
    assert!(
        c.payload.contains("out of range"),
        "a bad program compiled: {}",
        c.payload
    );
    assert!(
        !obs.all()
            .iter()
            .any(|m| m.topic == "stat/sw1/Program" && m.at > sent),
        "the running program was replaced\n{}",
        sim.dump()
    );
    // The old program still toggles output 0 back off (it is 1 since the first press; the
    // boot's `0` does not count).
    let pressed = Instant::now();
    assert!(sim.ctl("input 0 on").starts_with("ok"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sim.ctl("input 0 off").starts_with("ok"));
    obs.wait_for("stat/sw1/0/State", s(5), |m| {
        m.payload == "0" && m.at > pressed
    })
    .unwrap_or_else(|| panic!("the old program still toggles\n{}", sim.dump()));
}

#[test]
fn termo_publishes_one_topic_per_rom_and_ignores_the_power_on_value() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let sim = Sim::start(&appliance("termo", "th1", broker.port, ""));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    // Discovery follows the connect at once; 30 s leaves room for a loaded test machine
    // (10 s was once too short with the whole suite running on two cores).
    assert!(
        support::wait_until(s(30), || support::schema::check_all(&obs, "th1") >= 3),
        "discovery configs of th1\n{}",
        sim.dump()
    );
    let near =
        |m: &support::Seen, c: f64| m.payload.parse::<f64>().is_ok_and(|t| (t - c).abs() < 1.0);
    // The first bus scan is 30 s after boot (the reference's timing).
    assert!(
        support::wait_until(s(60), || {
            let roms: std::collections::BTreeSet<String> = obs
                .all()
                .into_iter()
                .filter(|m| m.topic.starts_with("stat/th1/Temperature/") && near(m, 21.5))
                .map(|m| m.topic)
                .collect();
            roms.len() == 3
        }),
        "three sensors near 21.5 °C\n{}",
        sim.dump()
    );
    let entities = obs
        .entities()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/sensor/th1/Temperature_"))
        .count();
    assert_eq!(entities, 3, "one Home Assistant sensor per ROM");
    // The sensors lose power and come back reading the 85 °C power-on value: read, counted as
    // a failed reading of each of the three (5 × 5 × 5), and never published.
    obs.clear();
    let powered = Instant::now();
    assert!(sim.ctl("sensor onewire poweron").starts_with("ok"));
    obs.wait_for("stat/th1/Malfunction", s(15), |m| m.payload == "125")
        .unwrap_or_else(|| panic!("power-on readings not counted as failures\n{}", sim.dump()));
    std::thread::sleep(s(8).saturating_sub(powered.elapsed()));
    assert!(
        !obs.all()
            .iter()
            .any(|m| m.topic.starts_with("stat/th1/Temperature/") && near(m, 85.0)),
        "85 °C published\n{}",
        sim.dump()
    );
    // The bus breaks: a bus-failure code (2: no conversion could start; a power of 3: reads
    // failed on the bus; 1: a scan found nobody), not the power-on step's 125; it heals: back
    // to 0.
    let broken = Instant::now();
    assert!(sim.ctl("sensor onewire readfails").starts_with("ok"));
    let code = obs
        .wait_for("stat/th1/Malfunction", s(70), |m| m.at > broken)
        .unwrap_or_else(|| panic!("malfunction\n{}", sim.dump()));
    println!("bus failure code {}", code.payload);
    assert!(
        code.payload
            .parse::<u32>()
            .is_ok_and(|v| v != 0 && v % 5 != 0),
        "bus failure reported as {}\n{}",
        code.payload,
        sim.dump()
    );
    let healed = Instant::now();
    assert!(sim.ctl("sensor onewire ok").starts_with("ok"));
    obs.wait_for("stat/th1/Malfunction", s(70), |m| {
        m.payload == "0" && m.at > healed
    })
    .unwrap_or_else(|| panic!("recovered\n{}", sim.dump()));
}
