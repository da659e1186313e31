//! Home Assistant MQTT discovery: a simulated device announces its entities, retained, and every
//! payload is checked against Home Assistant's discovery schema for its component (allowed and
//! required keys, device classes and their units, availability, device block).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::schema::check;
use support::{config, Broker, Observer, Sim};

#[test]
fn weather_announces_its_entities_retained_and_schema_valid() {
    let broker = Broker::start();
    let sim = Sim::start(&config("wx1", broker.port, ""));
    assert!(
        sim.wait_log("discovery: 16 entities announced", Duration::from_secs(20)),
        "{}",
        sim.dump()
    );
    // A late subscriber (Home Assistant restarting) still gets the config: it is retained.
    let obs = Observer::start(&broker);
    assert!(support::wait_until(Duration::from_secs(5), || {
        obs.entities().len() >= 6
    }));
    assert_eq!(
        support::schema::check_all(&obs, "wx1"),
        16,
        "one device config, nothing per entity"
    );
    let mut uids = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for m in obs.entities().iter() {
        assert!(m.retained, "{} must be retained", m.topic);
        let component = check(&m.topic, &m.payload, "wx1");
        let v: Value = serde_json::from_str(&m.payload).unwrap();
        assert!(
            uids.insert(v["unique_id"].as_str().unwrap().to_string()),
            "unique ids"
        );
        // A button has no state; it is known by what it sends.
        let topic = v["state_topic"].as_str().map_or_else(
            || format!("{} {}", v["command_topic"], v["payload_press"]),
            String::from,
        );
        seen.insert((component, topic));
    }
    let mut want: Vec<(&str, String)> = [
        "Temperature",
        "Humidity",
        "Pressure",
        "Malfunction",
        "Uptime",
        "RebootReason",
        // The diagnostics the simulator can report (no heap: it has none of its own).
        "RSSI",
        "IP",
        "ConnLost",
        "MqttLost",
        "Version",
        "Slot",
    ]
    .iter()
    .map(|item| ("sensor", format!("stat/wx1/{item}")))
    .collect();
    want.extend([
        ("binary_sensor", "stat/wx1/SafeMode".to_string()),
        ("update", "stat/wx1/Firmware".to_string()),
        ("button", r#""cmnd/wx1/OTA" "identify""#.to_string()),
        // No otakey: a restart needs no signature, so Home Assistant may offer it.
        ("button", r#""cmnd/wx1/OTA" "reboot""#.to_string()),
    ]);
    for (component, topic) in &want {
        assert!(
            seen.contains(&(component.to_string(), topic.clone())),
            "{component} {topic} missing: {seen:?}"
        );
    }
    assert_eq!(seen.len(), want.len(), "{seen:?}");
    // State values are retained too: a subscriber arriving after the publication gets it.
    obs.wait_for("stat/wx1/Temperature", Duration::from_secs(30), |_| true)
        .unwrap_or_else(|| panic!("temperature\n{}", sim.dump()));
    let late = Observer::start(&broker);
    late.wait_for("stat/wx1/Temperature", Duration::from_secs(5), |m| {
        m.retained
    })
    .unwrap_or_else(|| panic!("retained temperature\n{}", sim.dump()));
}

#[test]
fn a_forwarder_announces_each_new_sender() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let air = support::TempDir::new("air");
    let psk = "discovery-test-psk-123";
    let manager = Sim::start_on_air(
        &format!(
            "profile scale_manager\nssid Test Network\npassword test-passphrase\nmqttbroker 127.0.0.1:{}\n\
             mqttname hub\nstartdelay 0\nwdgrace 0\nespnowgroup g\nespnowpsk {psk}\nespnowchannel 1\n",
            broker.port
        ),
        Some(&air.0),
    );
    assert!(
        manager.wait_log("discovery: 14 entities announced", Duration::from_secs(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::scale_on_air(psk, &air.0, "1.25");
    obs.wait_for("stat/hub/Weight", Duration::from_secs(30), |m| {
        m.payload == "1.25" && !m.topic.is_empty()
    })
    .unwrap_or_else(|| panic!("{}\n{}", scale.dump(), manager.dump()));
    assert!(
        manager.wait_log("discovery: 16 entities announced", Duration::from_secs(10)),
        "{}",
        manager.dump()
    );
    let configs: Vec<_> = obs
        .entities()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .collect();
    for m in &configs {
        check(&m.topic, &m.payload, "hub");
    }
    let weight = configs
        .iter()
        .find(|m| m.topic.ends_with("_Weight/config"))
        .expect("per-sender weight entity");
    let v: Value = serde_json::from_str(&weight.payload).unwrap();
    assert_eq!(v["device_class"], "weight");
    assert_eq!(v["unit_of_measurement"], "kg");
}

#[test]
fn home_assistant_s_birth_message_gets_availability_discovery_and_states_again() {
    let broker = Broker::start();
    // A Home Assistant that publishes its birth retained: the broker hands it to the device
    // when it subscribes, with the retain flag. The connect announces everything anyway, so
    // that is not a birth.
    broker.publish("homeassistant/status", "online", true);
    let obs = Observer::start(&broker);
    let sim = Sim::start(&config("wx2", broker.port, ""));
    assert!(
        sim.wait_log("discovery: 16 entities announced", Duration::from_secs(20)),
        "{}",
        sim.dump()
    );
    // The boot's reboot reason is out (it is published on demand only, never periodically).
    assert!(support::wait_until(Duration::from_secs(10), || obs
        .all()
        .iter()
        .any(|m| m.topic == "stat/wx2/RebootReason")));
    std::thread::sleep(Duration::from_secs(6)); // past the longest birth delay
    assert!(
        !sim.log().contains("home assistant online"),
        "{}",
        sim.dump()
    );
    // Home Assistant restarts: its birth message, live.
    let sent = std::time::Instant::now();
    broker.publish("homeassistant/status", "online", false);
    let after = |topic: &str| {
        obs.all()
            .into_iter()
            .chain(obs.entities())
            .filter(|m| m.at > sent && m.topic.starts_with(topic))
            .count()
    };
    assert!(
        support::wait_until(Duration::from_secs(15), || {
            after("homeassistant/sensor/wx2/") >= 6
                && after("tele/wx2/LWT") >= 1
                && after("stat/wx2/RebootReason") >= 1
        }),
        "discovery, availability and the reboot reason again after the birth message\n{}",
        sim.dump()
    );
    let lwt = obs
        .all()
        .into_iter()
        .rev()
        .find(|m| m.topic == "tele/wx2/LWT")
        .expect("availability");
    assert_eq!(lwt.payload, "Online");
    assert!(sim
        .log()
        .contains("home assistant online: publishing again in"));
}
