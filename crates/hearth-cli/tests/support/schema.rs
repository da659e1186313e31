//! Home Assistant's MQTT discovery schema, as far as Hearth uses it: the device-based config
//! (Home Assistant 2024.12 and later), which keys each component accepts and requires, the
//! sensor device classes with their units, the device block. Every scenario that starts an
//! appliance checks its discovery config with [`check_all`]; [`entities`] gives each entity of
//! a device config as the per-entity config Home Assistant makes of it.
#![allow(dead_code)]

use serde_json::{Map, Value};

use super::{Observer, Seen};

/// Keys Home Assistant accepts at the top of a device-based config (2025.4, unchanged through
/// 2026.x): the device, the origin, the components, and the options every component inherits.
const DEVICE_LEVEL: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "command_topic",
    "components",
    "device",
    "encoding",
    "origin",
    "payload_available",
    "payload_not_available",
    "qos",
    "state_topic",
];
/// The options a component inherits from the device level unless it sets them itself (Home
/// Assistant's `SHARED_OPTIONS`).
const SHARED: &[&str] = &[
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "command_topic",
    "payload_available",
    "payload_not_available",
    "state_topic",
];

/// Checks a device-based config of device `name` at its top level and returns its entities as
/// Home Assistant reads them: `(homeassistant/<platform>/<node>/<key>/config, config)`, the
/// config being the component with the device, the origin and the shared options merged in.
pub fn device_entities(topic: &str, payload: &str, name: &str) -> Vec<(String, String)> {
    assert_eq!(topic, format!("homeassistant/device/{name}/config"));
    let v: Value =
        serde_json::from_str(payload).unwrap_or_else(|e| panic!("{topic}: {e}\n{payload}"));
    let top = v
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    for k in top.keys() {
        assert!(
            DEVICE_LEVEL.contains(&k.as_str()),
            "{topic}: key {k} is not in Home Assistant's device discovery schema"
        );
    }
    let origin = top["origin"].as_object().expect("origin (required)");
    assert!(
        origin["name"].is_string(),
        "{topic}: origin name (required)"
    );
    for k in origin.keys() {
        assert!(
            ["name", "sw_version", "support_url"].contains(&k.as_str()),
            "{topic}: origin key {k}"
        );
    }
    assert!(top["device"].is_object(), "{topic}: device (required)");
    let components = top["components"]
        .as_object()
        .expect("components (required)");
    assert!(!components.is_empty(), "{topic}: no components");
    // A key given twice would lose an entity silently (the parser keeps the last one).
    assert_eq!(
        payload.matches("\"platform\":").count(),
        components.len(),
        "{topic}: a component key is repeated"
    );
    components
        .iter()
        .map(|(key, c)| {
            // Home Assistant's object ids in discovery topics: [a-zA-Z0-9_-].
            assert!(
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{topic}: component key {key}"
            );
            let mut c: Map<String, Value> = c.as_object().expect("a component object").clone();
            let platform = c
                .remove("platform")
                .and_then(|p| p.as_str().map(String::from))
                .unwrap_or_else(|| panic!("{topic}: {key} has no platform (required)"));
            for option in SHARED {
                if let (Some(v), false) = (top.get(*option), c.contains_key(*option)) {
                    c.insert((*option).into(), v.clone());
                }
            }
            c.insert("device".into(), top["device"].clone());
            c.insert("origin".into(), top["origin"].clone());
            (
                format!("homeassistant/{platform}/{name}/{key}/config"),
                Value::Object(c).to_string(),
            )
        })
        .collect()
}

/// Every entity of the device-based configs among `seen` (an empty one, a cleared config,
/// has none), as the per-entity message it stands for ([`device_entities`]).
pub fn entities(seen: &[Seen]) -> Vec<Seen> {
    seen.iter()
        .filter(|m| !m.payload.is_empty())
        .filter_map(|m| {
            let mut parts = m.topic.split('/');
            match (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) {
                (Some("homeassistant"), Some("device"), Some(name), Some("config"), None) => {
                    Some(device_entities(&m.topic, &m.payload, name).into_iter().map(
                        |(topic, payload)| Seen {
                            at: m.at,
                            retained: m.retained,
                            topic,
                            payload,
                        },
                    ))
                }
                _ => None,
            }
        })
        .flatten()
        .collect()
}

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
        // Home Assistant's MQTT button schema: a command, no state.
        "button" => (
            &[
                "command_template",
                "command_topic",
                "device_class",
                "payload_press",
                "retain",
            ],
            &["command_topic", "payload_press"],
        ),
        // Home Assistant's MQTT update schema (2025.4; unchanged through 2026.x).
        "update" => (
            &[
                "command_topic",
                "device_class",
                "display_precision",
                "entity_picture",
                "latest_version_template",
                "latest_version_topic",
                "payload_install",
                "release_summary",
                "release_url",
                "retain",
                "state_topic",
                "title",
                "value_template",
            ],
            &[],
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
        "data_size" => &[
            "bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB",
            "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB",
        ],
        "duration" => &["d", "h", "min", "s", "ms"],
        "voltage" => &["V", "mV", "µV", "kV", "MV"],
        "current" => &["A", "mA"],
        "power" => &["W", "kW", "MW", "GW", "TW", "mW"],
        "apparent_power" => &["VA"],
        "energy" => &["Wh", "kWh", "MWh", "GWh", "TWh", "MJ", "GJ"],
        "frequency" => &["Hz", "kHz", "MHz", "GHz"],
        "power_factor" => &["%", ""],
        "volume" | "water" | "volume_storage" => &["L", "mL", "m³", "ft³", "gal", "CCF", "fl. oz."],
        "volume_flow_rate" => &[
            "m³/h", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/h", "gal/min", "mL/s",
        ],
        _ => return None,
    })
}

/// Checks one discovery message; returns the component.
pub fn check(topic: &str, payload: &str, name: &str) -> String {
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
    if component == "button" {
        if let Some(class) = obj.get("device_class").and_then(Value::as_str) {
            assert!(
                ["identify", "restart", "update"].contains(&class),
                "{topic}: {class}"
            );
        }
    }
    if component == "update" {
        if let Some(class) = obj.get("device_class") {
            assert_eq!(class, "firmware", "{topic}: the only update device class");
        }
        // A payload_install without a command topic would promise an Install button.
        assert_eq!(
            obj.contains_key("payload_install"),
            obj.contains_key("command_topic"),
            "{topic}"
        );
        for k in ["state_topic", "latest_version_topic"] {
            if let Some(t) = obj.get(k).and_then(Value::as_str) {
                assert!(!t.is_empty() && !t.contains(['+', '#']), "{topic}: {k} {t}");
            }
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
    check_entity_id(topic, component, obj);
    let uid = obj["unique_id"].as_str().expect("unique_id");
    assert!(uid.starts_with("hearth_"), "{uid}");
    component.to_string()
}

/// `default_entity_id` (Home Assistant 2025.10 and later) must be a valid entity id of this
/// component, and `object_id` (the releases before) must slugify to the same object id, so an
/// entity keeps its id when Home Assistant is upgraded.
fn check_entity_id(topic: &str, component: &str, obj: &serde_json::Map<String, Value>) {
    let id = obj
        .get("default_entity_id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{topic}: default_entity_id missing"));
    let (domain, object) = id
        .split_once('.')
        .unwrap_or_else(|| panic!("{topic}: {id} is not <domain>.<object>"));
    assert_eq!(domain, component, "{topic}: {id}");
    // Home Assistant's valid_entity_id: [a-z0-9_] only, no `__`, no `_` at either end.
    assert!(
        !object.is_empty()
            && object
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !object.contains("__")
            && !object.starts_with('_')
            && !object.ends_with('_'),
        "{topic}: {id} is not a valid entity id"
    );
    let legacy = obj
        .get("object_id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{topic}: object_id missing"));
    let mut slug = String::new();
    for part in legacy
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        if !slug.is_empty() {
            slug.push('_');
        }
        slug.push_str(&part.to_ascii_lowercase());
    }
    assert_eq!(
        slug, object,
        "{topic}: object_id {legacy} names another entity than {id}"
    );
}

/// Checks every discovery config `obs` saw for device `name`, and that none is per entity;
/// returns how many entities they announce.
pub fn check_all(obs: &Observer, name: &str) -> usize {
    let all = obs.all();
    let per_entity: Vec<_> = all
        .iter()
        .filter(|m| {
            m.topic.starts_with("homeassistant/")
                && m.topic.split('/').nth(1) != Some("device")
                && m.topic.split('/').nth(2) == Some(name)
                && !m.payload.is_empty()
                && m.payload != r#"{"migrate_discovery":true}"#
        })
        .collect();
    assert!(per_entity.is_empty(), "per-entity configs: {per_entity:?}");
    let configs = entities(&all);
    let mine: Vec<_> = configs
        .iter()
        .filter(|m| m.topic.split('/').nth(2) == Some(name))
        .collect();
    for m in &mine {
        check(&m.topic, &m.payload, name);
    }
    mine.len()
}
