//! A real Home Assistant (from PyPI, in the virtual environment `scripts/ha-env.sh` caches)
//! against the test's mosquitto and every appliance in the simulator. What is checked is Home
//! Assistant's own view, through its REST API with a long-lived token made in the test: every
//! entity the devices announce exists under the entity id the discovery config asks for, is
//! available, and shows the state the device published; a switch toggled from Home Assistant
//! switches the simulated relay; a keyfob press becomes an event with the template's
//! attributes; `hearth release` makes the update entity show an available update; the
//! diagnostics follow the device; the identify and restart buttons act on it; a device that
//! finds the per-entity configs of earlier firmware moves them into its device config and
//! keeps the entities' ids and the names given in Home Assistant; and Home Assistant logged no
//! complaint about any discovery config.

#[path = "support/ha.rs"]
mod ha;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ha::HomeAssistant;
use serde_json::{json, Value};
use support::{config_for, Broker, Sim, TempDir};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// What a retained discovery config asks of Home Assistant.
struct Announced {
    component: String,
    device: String,
    entity_id: String,
    state_topic: Option<String>,
    command_topic: Option<String>,
}

fn announced(broker: &Broker) -> Vec<Announced> {
    broker
        .retained("homeassistant/device/+/config")
        .into_iter()
        .flat_map(|(topic, payload)| {
            let name = topic.split('/').nth(2).expect("a device name").to_string();
            support::schema::device_entities(&topic, &payload, &name)
        })
        .map(|(topic, payload)| {
            let parts: Vec<&str> = topic.split('/').collect();
            support::schema::check(&topic, &payload, parts[2]);
            let v: Value = serde_json::from_str(&payload).expect("config JSON");
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
            Announced {
                component: parts[1].to_string(),
                device: parts[2].to_string(),
                entity_id: text("default_entity_id").expect("default_entity_id"),
                state_topic: text("state_topic"),
                command_topic: text("command_topic"),
            }
        })
        .collect()
}

/// Do Home Assistant's state and the device's published value agree? Numbers are compared as
/// numbers (Home Assistant may write `81.0` as `81.0` or `81`).
fn same_value(ha: &str, published: &str) -> bool {
    match (ha.parse::<f64>(), published.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() < 1e-9,
        _ => ha == published.trim(),
    }
}

#[test]
fn home_assistant_shows_every_appliance_and_drives_a_relay() {
    let broker = Broker::start();
    let ha = HomeAssistant::start(&broker);
    eprintln!("Home Assistant {}", ha.version);

    let port = broker.port;
    let air = TempDir::new("ha-air");
    let psk = "ha-test-psk-0123456";
    let devices: Vec<(&str, Sim)> = [
        ("weather", "wx1", ""),
        ("relay", "r1", "relays 2\nrelay1max 600\n"),
        ("energy", "e1", ""),
        ("rx433", "rf1", ""),
        (
            "h2o",
            "tank1",
            "unit L\ncapacity 1000\nlevelsensors 25,50,75,100\nflowpulserate 7.5\nmaxflow 30\n",
        ),
        ("switch", "sw1", "switchboard Direct4\n"),
        ("termo", "th1", ""),
        (
            "scale_manager",
            "hub",
            &format!("espnowgroup g\nespnowpsk {psk}\nespnowchannel 1\n"),
        ),
    ]
    .iter()
    .map(|(profile, name, extra)| {
        (
            *name,
            Sim::start_on_air(&config_for(profile, name, port, extra), Some(&air.0)),
        )
    })
    .collect();
    let sim = |name: &str| &devices.iter().find(|(n, _)| *n == name).unwrap().1;
    let dump = || {
        devices
            .iter()
            .map(|(_, d)| d.dump())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The scale's sensor: not on MQTT; the manager forwards its weight as entities of its own.
    let scale = Sim::scale_on_air(psk, &air.0, "1.25");

    // Every device announced itself, the scale's sender included.
    let ready = support::wait_until(s(60), || {
        let a = announced(&broker);
        devices
            .iter()
            .all(|(name, _)| a.iter().filter(|e| e.device == *name).count() >= 3)
            && a.iter().any(|e| e.entity_id.ends_with("_weight"))
    });
    assert!(ready, "discovery configs\n{}\n{}", dump(), scale.dump());
    let configs = announced(&broker);

    // Home Assistant made every entity, under the id asked for, available.
    let mut missing = Vec::new();
    let found = support::wait_until(s(90), || {
        let states: BTreeMap<String, Value> = ha
            .states()
            .into_iter()
            .filter_map(|v| Some((v["entity_id"].as_str()?.to_string(), v)))
            .collect();
        missing = configs
            .iter()
            .filter(|e| {
                states
                    .get(&e.entity_id)
                    .is_none_or(|v| v["state"] == "unavailable")
            })
            .map(|e| e.entity_id.clone())
            .collect();
        missing.is_empty()
    });
    assert!(
        found,
        "entities Home Assistant lacks or shows unavailable: {missing:?}\n{}",
        ha.log()
    );
    eprintln!("{} entities of {} devices", configs.len(), devices.len());

    // States arrive: measurements the devices make only now (the weather station's first
    // reading is about a minute after boot; the tank's level after its float switches move;
    // the energy meter's live values once its ticker is switched on, from Home Assistant),
    // and every sensor's state is the value its device holds on the broker. The boot's reboot
    // reason (published once, right after the discovery configs) is there too.
    assert!(sim("tank1").ctl("tank 3").starts_with("ok"));
    ha.call(
        "switch",
        "turn_on",
        &json!({ "entity_id": "switch.e1_ticker" }),
    );
    let measured = [
        "sensor.wx1_temperature",
        "sensor.wx1_humidity",
        "sensor.wx1_pressure",
        "sensor.tank1_coarselevelpct",
        "sensor.e1_vnow",
        "sensor.e1_wnow",
        "sensor.hub_weight",
    ];
    let mut wrong = Vec::new();
    let agree = support::wait_until(s(150), || {
        let held: BTreeMap<String, String> = broker.retained("stat/#").into_iter().collect();
        let pending = measured.iter().filter(|id| {
            ha.state(id)
                .is_none_or(|v| v["state"] == "unknown" || v["state"] == "unavailable")
        });
        wrong = pending.map(|id| format!("{id}: no state yet")).collect();
        wrong.extend(
            configs
                .iter()
                .filter(|e| e.component == "sensor" || e.component == "binary_sensor")
                .filter_map(|e| {
                    let value = held.get(e.state_topic.as_ref()?)?;
                    let state = ha.state(&e.entity_id)?;
                    let shown = state["state"].as_str().unwrap_or("").to_string();
                    let ok = if e.component == "sensor" {
                        same_value(&shown, value)
                    } else {
                        shown == "on" || shown == "off"
                    };
                    (!ok).then(|| format!("{}: HA {shown:?}, device {value:?}", e.entity_id))
                }),
        );
        wrong.is_empty()
    });
    assert!(agree, "states differ: {wrong:#?}\n{}", ha.log());
    for e in &configs {
        let shown = ha.state(&e.entity_id).map(|v| v["state"].clone());
        eprintln!("  {} = {}", e.entity_id, shown.unwrap_or(Value::Null));
    }
    for (name, _) in &devices {
        let reason = ha
            .state(&format!("sensor.{name}_rebootreason"))
            .map(|v| v["state"].clone());
        assert_eq!(
            reason,
            Some(json!("power-on")),
            "{name}'s reboot reason in Home Assistant"
        );
    }

    // A switch toggled in Home Assistant switches the relay (active-low: on drives it low).
    let relay = configs
        .iter()
        .find(|e| e.device == "r1" && e.component == "switch")
        .expect("r1's first relay");
    assert_eq!(relay.entity_id, "switch.r1_0_state");
    assert!(relay.command_topic.is_some());
    assert_eq!(sim("r1").log_count("gpio: relay 1 low"), 0);
    ha.call(
        "switch",
        "turn_on",
        &json!({ "entity_id": relay.entity_id }),
    );
    assert!(
        sim("r1").wait_log("gpio: relay 1 low", s(10)),
        "{}",
        sim("r1").dump()
    );
    let shows = |want: &str| {
        support::wait_until(s(10), || {
            ha.state(&relay.entity_id)
                .is_some_and(|v| v["state"] == want)
        })
    };
    assert!(shows("on"), "{}\n{}", ha.log(), sim("r1").dump());
    let highs = sim("r1").log_count("gpio: relay 1 high");
    ha.call(
        "switch",
        "turn_off",
        &json!({ "entity_id": relay.entity_id }),
    );
    assert!(
        sim("r1").wait_log_count("gpio: relay 1 high", highs + 1, s(10)),
        "{}",
        sim("r1").dump()
    );
    assert!(shows("off"), "{}\n{}", ha.log(), sim("r1").dump());

    // A keyfob press is an event in Home Assistant, with the template's attributes.
    assert!(sim("rf1").ctl("press ev1527 12345 3").starts_with("ok"));
    let mut last = Value::Null;
    let pressed = support::wait_until(s(10), || {
        last = ha.state("event.rf1_keyfob").unwrap_or(Value::Null);
        last["attributes"]["event_type"] == "EV1527"
    });
    assert!(pressed, "{last}\n{}", ha.log());
    assert_eq!(last["attributes"]["address"], 12345, "{last}");
    assert_eq!(last["attributes"]["button"], 3, "{last}");

    // Diagnostics: the signal, the address, the counters, the firmware and safe mode are
    // there (their values were compared with the device's above); a weaker signal reaches
    // Home Assistant within the minute the device samples in.
    for (name, _) in &devices {
        let safe = ha.state(&format!("binary_sensor.{name}_safemode"));
        assert_eq!(
            safe.map(|v| v["state"].clone()),
            Some(json!("off")),
            "{name}"
        );
        let ip = ha.state(&format!("sensor.{name}_ip"));
        assert_eq!(
            ip.map(|v| v["state"].clone()),
            Some(json!("127.0.0.1")),
            "{name}"
        );
    }
    assert_eq!(ha.state("sensor.wx1_rssi").unwrap()["state"], "-58");
    assert_eq!(
        ha.state("sensor.wx1_rssi").unwrap()["attributes"]["unit_of_measurement"],
        "dBm"
    );
    assert!(sim("wx1").ctl("rssi -71").starts_with("ok"));
    let weaker = support::wait_until(s(75), || {
        ha.state("sensor.wx1_rssi")
            .is_some_and(|v| v["state"] == "-71")
    });
    assert!(
        weaker,
        "{:?}\n{}",
        ha.state("sensor.wx1_rssi"),
        sim("wx1").dump()
    );

    // Firmware: every device's update entity knows what it runs and, until a release is
    // announced, has nothing to compare it with. `hearth release` of a newer weather image
    // makes the weather station's entity say "update available", with the new version;
    // announcing the relay's running version keeps its entity "up to date".
    let installed = ha
        .state("update.r1_firmware")
        .and_then(|v| {
            v["attributes"]["installed_version"]
                .as_str()
                .map(String::from)
        })
        .expect("r1's installed version");
    let held = broker.retained("stat/r1/Firmware");
    assert!(held[0].1.contains(&installed), "{held:?}");
    assert_eq!(ha.state("update.wx1_firmware").unwrap()["state"], "unknown");
    let dir = TempDir::new("ha-release");
    let release = |version: &str, appliance: &str| {
        let image = dir.0.join(format!("{appliance}-{version}.img"));
        let made = support::hearth(&[
            "image",
            "--version",
            version,
            "--out",
            image.to_str().unwrap(),
        ]);
        assert!(made.status.success(), "{}", support::text(&made));
        let out = support::hearth(&[
            "release",
            image.to_str().unwrap(),
            "--appliance",
            appliance,
            "--summary",
            "Faster boot",
            "--broker",
            &format!("127.0.0.1:{port}"),
        ]);
        assert!(out.status.success(), "{}", support::text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("hearth/release/{appliance}: released\n")
        );
    };
    release("9.9.9", "weather");
    release(&installed, "relay");
    let mut wx1 = Value::Null;
    let available = support::wait_until(s(10), || {
        wx1 = ha.state("update.wx1_firmware").unwrap_or(Value::Null);
        wx1["state"] == "on"
    });
    assert!(available, "{wx1}\n{}", ha.log());
    assert_eq!(wx1["attributes"]["latest_version"], "9.9.9", "{wx1}");
    assert_eq!(
        wx1["attributes"]["installed_version"],
        installed.as_str(),
        "{wx1}"
    );
    assert_eq!(wx1["attributes"]["in_progress"], false, "{wx1}");
    // No Install button: Home Assistant holds no key to sign an image with.
    assert_eq!(
        wx1["attributes"]["supported_features"], 4,
        "PROGRESS only: {wx1}"
    );
    assert!(
        support::wait_until(s(10), || ha
            .state("update.r1_firmware")
            .is_some_and(|v| v["state"] == "off")),
        "{:?}",
        ha.state("update.r1_firmware")
    );
    assert_eq!(ha.state("update.e1_firmware").unwrap()["state"], "unknown");

    // Buttons: identify blinks the device's status LED (the simulator's is its log); restart
    // (offered since these devices have no otakey) reboots it, for the reason "command".
    assert_eq!(sim("r1").log_count("led: identify"), 0);
    ha.call(
        "button",
        "press",
        &json!({ "entity_id": "button.r1_identify" }),
    );
    assert!(
        sim("r1").wait_log("led: identify, blinking for 10 s", s(10)),
        "{}",
        sim("r1").dump()
    );
    ha.call(
        "button",
        "press",
        &json!({ "entity_id": "button.th1_restart" }),
    );
    let restarted = support::wait_until(s(30), || {
        ha.state("sensor.th1_rebootreason")
            .is_some_and(|v| v["state"] == "command: reboot requested")
    });
    assert!(
        restarted,
        "{:?}\n{}",
        ha.state("sensor.th1_rebootreason"),
        sim("th1").dump()
    );

    // An update pushed with `hearth ota` shows in Home Assistant as it happens: the entity is
    // in progress with a percentage part of the way, then reports the new version installed.
    let owner = support::new_owner();
    let up = Sim::start(&config_for(
        "weather",
        "up1",
        port,
        &format!("{}\notaconfirm 5\n", owner.otakey),
    ));
    assert!(
        support::wait_until(s(60), || ha.state("update.up1_firmware").is_some()),
        "{}",
        up.dump()
    );
    let image = owner.image("up-0.3.0.img", &["--version", "0.3.0", "--size", "409600"]);
    // Every state Home Assistant gives the entity on the way, from its own event stream.
    let watch = ha.watch("update.up1_firmware");
    let out = support::hearth(&[
        "ota",
        "up1",
        image.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        support::text(&out),
        up.dump()
    );
    let confirmed = support::wait_until(s(30), || {
        watch.states().iter().any(|v| {
            v["attributes"]["installed_version"] == "0.3.0"
                && v["attributes"]["in_progress"] == false
        })
    });
    let states = watch.stop();
    let bar: Vec<u64> = states
        .iter()
        .filter(|v| v["attributes"]["in_progress"] == true)
        .filter_map(|v| v["attributes"]["update_percentage"].as_u64())
        .collect();
    eprintln!("Home Assistant showed the update at {bar:?} %");
    assert!(
        bar.windows(2).all(|w| w[0] <= w[1])
            && bar.iter().filter(|p| (1..100).contains(*p)).count() >= 3
            && bar.last() == Some(&100),
        "the bar in Home Assistant: {bar:?}"
    );
    assert!(confirmed, "{states:?}\n{}", up.dump());
    let done = support::wait_until(s(30), || {
        ha.state("update.up1_firmware").is_some_and(|v| {
            v["attributes"]["installed_version"] == "0.3.0"
                && v["attributes"]["in_progress"] == false
        })
    });
    assert!(done, "{:?}\n{}", ha.state("update.up1_firmware"), up.dump());

    migration_keeps_the_entities_as_the_user_left_them(&ha, &broker);

    // Home Assistant took every config without a word.
    let log = ha.log_all();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| {
            (l.contains(" ERROR ") || l.contains(" WARNING "))
                && l.contains("homeassistant.components.mqtt")
        })
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}");
}

/// A weather station whose earlier firmware announced each entity on its own topic: Home
/// Assistant made them, the user renamed one; the device, on its first connection with this
/// firmware, moves them into its device config (Home Assistant's `migrate_discovery`).
fn migration_keeps_the_entities_as_the_user_left_them(ha: &HomeAssistant, broker: &Broker) {
    // The broker is out of its reach until the old configs are in place.
    let gate = support::RefusingPort::new();
    let old = Sim::start(&config_for("weather", "old1", gate.port, ""));
    assert!(old.wait_log("board: MAC ", s(10)), "{}", old.dump());
    let id: String = old
        .log()
        .lines()
        .find_map(|l| {
            l.split_once("board: MAC ")
                .map(|(_, mac)| mac.replace(':', ""))
        })
        .expect("the MAC line");
    // What earlier firmware published for two of its entities, retained.
    let device = json!({
        "identifiers": [format!("hearth_{id}")],
        "name": "old1",
        "model": "weather",
        "manufacturer": "Hearth",
        "sw_version": "0.1.0",
    });
    for (item, class, unit) in [
        ("Temperature", "temperature", "°C"),
        ("Humidity", "humidity", "%"),
    ] {
        let config = json!({
            "name": item,
            "unique_id": format!("hearth_{id}_{item}"),
            "default_entity_id": format!("sensor.old1_{}", item.to_lowercase()),
            "object_id": format!("old1_{item}"),
            "state_topic": format!("stat/old1/{item}"),
            "availability_topic": "tele/old1/LWT",
            "payload_available": "Online",
            "payload_not_available": "Offline",
            "device_class": class,
            "unit_of_measurement": unit,
            "state_class": "measurement",
            "device": device,
        });
        broker.publish(
            &format!("homeassistant/sensor/old1/{item}/config"),
            &config.to_string(),
            true,
        );
    }
    assert!(
        support::wait_until(s(30), || ha.state("sensor.old1_humidity").is_some()
            && ha.state("sensor.old1_temperature").is_some()),
        "{}",
        ha.log()
    );
    // The user renames one.
    ha.ws(&json!({
        "type": "config/entity_registry/update",
        "entity_id": "sensor.old1_temperature",
        "new_entity_id": "sensor.balcony_temperature",
        "name": "Balcony",
    }));

    gate.open_to(broker.port);
    assert!(old.wait_log("entities announced", s(30)), "{}", old.dump());
    for item in ["Temperature", "Humidity"] {
        assert!(
            old.log().contains(&format!(
                "discovery: moving homeassistant/sensor/old1/{item}/config into the device config"
            )),
            "{}",
            old.dump()
        );
    }
    // The renamed entity is the device's temperature now, under the user's id and name, and
    // shows its readings; nothing was made twice.
    let live = support::wait_until(s(60), || {
        ha.state("sensor.balcony_temperature").is_some_and(|v| {
            v["state"]
                .as_str()
                .is_some_and(|t| t.parse::<f64>().is_ok())
        }) && ha.state("sensor.old1_humidity").is_some_and(|v| {
            v["state"]
                .as_str()
                .is_some_and(|t| t.parse::<f64>().is_ok())
        })
    });
    assert!(
        live,
        "{:?} {:?}\n{}\n{}",
        ha.state("sensor.balcony_temperature"),
        ha.state("sensor.old1_humidity"),
        old.dump(),
        ha.log()
    );
    let renamed = ha.state("sensor.balcony_temperature").unwrap();
    assert_eq!(
        renamed["attributes"]["friendly_name"], "Balcony",
        "{renamed}"
    );
    assert!(ha.state("sensor.old1_temperature").is_none());
    let entries = ha.ws(&json!({ "type": "config/entity_registry/list" }));
    let mine: Vec<&Value> = entries
        .as_array()
        .expect("registry entries")
        .iter()
        .filter(|e| {
            e["unique_id"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("hearth_{id}_")))
        })
        .collect();
    let temperature: Vec<_> = mine
        .iter()
        .filter(|e| e["unique_id"] == format!("hearth_{id}_Temperature"))
        .collect();
    assert_eq!(temperature.len(), 1, "{temperature:?}");
    assert_eq!(temperature[0]["entity_id"], "sensor.balcony_temperature");
    let announced = announced(broker)
        .into_iter()
        .filter(|e| e.device == "old1")
        .count();
    assert_eq!(
        mine.len(),
        announced,
        "one registry entry per entity: {mine:#?}"
    );
    // The per-entity configs are gone from the broker.
    assert_eq!(broker.retained("homeassistant/+/old1/+/config"), vec![]);
}
