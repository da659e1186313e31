//! Home Assistant MQTT discovery: a simulated device announces its entities, retained, and every
//! payload is checked against Home Assistant's discovery schema for its component (allowed and
//! required keys, device classes and their units, availability, device block).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::{config, Broker, Observer, Sim};

/// Keys Home Assistant accepts in every MQTT entity config (the full names; the device block
/// is checked on its own).
const COMMON: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "device",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "name",
    "object_id",
    "default_entity_id",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "unique_id",
    "origin",
];

fn component_keys(component: &str) -> (&'static [&'static str], &'static [&'static str]) {
    // (allowed beyond COMMON, required)
    match component {
        "sensor" => (
            &[
                "device_class",
                "expire_after",
                "force_update",
                "last_reset_value_template",
                "state_class",
                "state_topic",
                "suggested_display_precision",
                "unit_of_measurement",
                "value_template",
            ],
            &["state_topic"],
        ),
        "binary_sensor" => (
            &[
                "device_class",
                "expire_after",
                "force_update",
                "off_delay",
                "payload_off",
                "payload_on",
                "state_topic",
                "value_template",
            ],
            &["state_topic"],
        ),
        "switch" => (
            &[
                "command_template",
                "command_topic",
                "device_class",
                "optimistic",
                "payload_off",
                "payload_on",
                "retain",
                "state_off",
                "state_on",
                "state_topic",
                "value_template",
            ],
            &["command_topic"],
        ),
        "event" => (
            &[
                "device_class",
                "event_types",
                "state_topic",
                "value_template",
            ],
            &["event_types", "state_topic"],
        ),
        other => panic!("unexpected component {other}"),
    }
}

/// Sensor device classes Home Assistant knows, with the units it accepts for them.
fn sensor_units(class: &str) -> Option<&'static [&'static str]> {
    Some(match class {
        "temperature" => &["°C", "°F", "K"],
        "humidity" => &["%"],
        "atmospheric_pressure" | "pressure" => &[
            "cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi",
        ],
        "weight" => &["kg", "g", "lb", "oz", "st", "µg", "mg"],
        "signal_strength" => &["dB", "dBm"],
        "duration" => &["d", "h", "min", "s", "ms"],
        "voltage" => &["V", "mV", "µV", "kV", "MV"],
        "current" => &["A", "mA"],
        "power" => &["W", "kW", "MW", "GW", "TW", "mW"],
        "apparent_power" => &["VA"],
        "energy" => &["Wh", "kWh", "MWh", "GWh", "TWh", "MJ", "GJ"],
        "frequency" => &["Hz", "kHz", "MHz", "GHz"],
        "power_factor" => &["%", ""],
        "volume" | "water" => &["L", "mL", "m³", "ft³", "gal", "CCF"],
        "volume_flow_rate" => &["m³/h", "ft³/min", "L/min", "gal/min", "mL/s"],
        _ => return None,
    })
}

/// Checks one discovery message; returns the component.
fn check(topic: &str, payload: &str, name: &str) -> String {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 5, "{topic}");
    assert_eq!((parts[0], parts[4]), ("homeassistant", "config"), "{topic}");
    assert_eq!(parts[2], name, "{topic}");
    let component = parts[1];
    let v: Value =
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: {e}\n{payload}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    let (allowed, required) = component_keys(component);
    for k in obj.keys() {
        assert!(
            COMMON.contains(&k.as_str()) || allowed.contains(&k.as_str()),
            "{topic}: key {k} is not in Home Assistant's {component} schema"
        );
    }
    for r in required {
        assert!(obj.contains_key(*r), "{topic}: required {r} missing");
    }
    assert_eq!(
        obj["availability_topic"],
        format!("tele/{name}/LWT"),
        "{topic}"
    );
    assert_eq!(obj["payload_available"], "Online");
    assert_eq!(obj["payload_not_available"], "Offline");
    if let Some(st) = obj.get("state_topic") {
        assert!(
            st.as_str().unwrap().starts_with(&format!("stat/{name}/")),
            "{topic}"
        );
    }
    if let Some(ct) = obj.get("command_topic") {
        assert!(
            ct.as_str().unwrap().starts_with(&format!("cmnd/{name}/")),
            "{topic}"
        );
    }
    if let Some(cat) = obj.get("entity_category") {
        assert!(
            ["diagnostic", "config"].contains(&cat.as_str().unwrap()),
            "{topic}"
        );
    }
    if component == "sensor" {
        if let Some(class) = obj.get("device_class").and_then(Value::as_str) {
            let units = sensor_units(class)
                .unwrap_or_else(|| panic!("{topic}: unknown device class {class}"));
            let unit = obj
                .get("unit_of_measurement")
                .and_then(Value::as_str)
                .unwrap_or("");
            assert!(
                units.contains(&unit),
                "{topic}: unit {unit:?} is not valid for {class}"
            );
        }
        if let Some(sc) = obj.get("state_class").and_then(Value::as_str) {
            assert!(
                [
                    "measurement",
                    "total",
                    "total_increasing",
                    "measurement_angle"
                ]
                .contains(&sc),
                "{topic}"
            );
        }
    }
    if component == "event" {
        let types = obj["event_types"]
            .as_array()
            .expect("event_types is a list");
        assert!(
            !types.is_empty() && types.iter().all(Value::is_string),
            "{topic}"
        );
    }
    let dev = obj["device"].as_object().expect("device block");
    for k in dev.keys() {
        assert!(
            [
                "identifiers",
                "name",
                "model",
                "manufacturer",
                "sw_version",
                "connections",
                "hw_version",
                "via_device",
                "suggested_area",
                "configuration_url",
                "serial_number",
                "model_id"
            ]
            .contains(&k.as_str()),
            "{topic}: device key {k}"
        );
    }
    assert_eq!(dev["name"], name);
    assert!(dev["identifiers"].as_array().is_some_and(|a| !a.is_empty()));
    let uid = obj["unique_id"].as_str().expect("unique_id");
    assert!(uid.starts_with("hearth_"), "{uid}");
    component.to_string()
}

#[test]
fn weather_announces_its_entities_retained_and_schema_valid() {
    let broker = Broker::start();
    let sim = Sim::start(&config("wx1", broker.port, ""));
    assert!(
        sim.wait_log("discovery: 6 entities announced", Duration::from_secs(20)),
        "{}",
        sim.dump()
    );
    // A late subscriber (Home Assistant restarting) still gets every config: they are retained.
    let obs = Observer::start(&broker);
    assert!(support::wait_until(Duration::from_secs(5), || {
        obs.all()
            .iter()
            .filter(|m| m.topic.starts_with("homeassistant/"))
            .count()
            >= 6
    }));
    let mut uids = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for m in obs
        .all()
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
    {
        assert!(m.retained, "{} must be retained", m.topic);
        let component = check(&m.topic, &m.payload, "wx1");
        let v: Value = serde_json::from_str(&m.payload).unwrap();
        assert!(
            uids.insert(v["unique_id"].as_str().unwrap().to_string()),
            "unique ids"
        );
        seen.insert((component, v["state_topic"].as_str().unwrap().to_string()));
    }
    for item in [
        "Temperature",
        "Humidity",
        "Pressure",
        "Malfunction",
        "Uptime",
        "RebootReason",
    ] {
        assert!(
            seen.contains(&("sensor".to_string(), format!("stat/wx1/{item}"))),
            "{item} missing: {seen:?}"
        );
    }
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
        manager.wait_log("discovery: 4 entities announced", Duration::from_secs(20)),
        "{}",
        manager.dump()
    );
    let scale = Sim::start_on_air(
        &format!(
            "profile scale_sensor\nssid (none)\nmqttname s1\nespnowgroup g\nespnowpsk {psk}\n\
             calibration_a 20000\ncalibration_b -50000\nsleep 60\n"
        ),
        Some(&air.0),
    );
    assert!(scale.ctl("load 1.25").starts_with("ok"));
    obs.wait_for("stat/hub/Weight", Duration::from_secs(30), |m| {
        m.payload == "1.25" && !m.topic.is_empty()
    })
    .unwrap_or_else(|| panic!("{}\n{}", scale.dump(), manager.dump()));
    assert!(
        manager.wait_log("discovery: 6 entities announced", Duration::from_secs(10)),
        "{}",
        manager.dump()
    );
    let configs: Vec<_> = obs
        .all()
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
