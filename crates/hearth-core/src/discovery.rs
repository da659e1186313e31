//! Home Assistant MQTT discovery: what an appliance declares about its published items, and
//! the retained config that makes Home Assistant create one device per appliance with its
//! entities, available while the device's LWT says `Online`.
//!
//! An appliance lists [`Entity`]s; the runtime publishes them, retained, as one device-based
//! config ([`device_payload`], Home Assistant 2024.12 and later) on
//! `homeassistant/device/<node>/config`, where `<node>` is the device name. Each entity is a
//! component keyed by its item with `/` replaced ([`object_id`]). The state topic is the
//! item's `stat/<name>/<item>`; the availability topic, shared by every component, is
//! `tele/<name>/LWT` (`Online` / `Offline`).
//!
//! Payload keys follow Home Assistant's MQTT discovery schema (full names, no abbreviations).
//! The device level has `device` (`identifiers`, `name`, `model`, `manufacturer`,
//! `sw_version`), `origin` (`name`, `sw_version`), `availability_topic`, `payload_available`,
//! `payload_not_available` and `components`; each component has `platform`, `name`,
//! `unique_id`, `default_entity_id`, `object_id`, `state_topic`, `command_topic`,
//! `device_class`, `unit_of_measurement`, `state_class`, `entity_category`, `payload_on`,
//! `payload_off`, `event_types`, `value_template` as it needs.
//!
//! The entity id Home Assistant gives an entity comes from `default_entity_id`
//! (`<component>.<device>_<item>`, lower case, the key since Home Assistant 2025.10) and, for
//! releases before that, from `object_id` (`<device>_<item>`, which those releases slugify to
//! the same id). Home Assistant 2026.4 dropped `object_id` and ignores it, so both keys are sent
//! and an entity keeps its id across an upgrade of Home Assistant.
//!
//! Firmware before this one sent one config per entity, on
//! `homeassistant/<component>/<node>/<object>/config` ([`entity_config_filter`]). A device
//! that finds such a config retained for its name moves it over the way Home Assistant asks
//! ([`is_stale_entity_config`], [`MIGRATE`]), so the entities keep their ids and settings.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::topics::{Topics, OFFLINE, ONLINE};

/// The discovery prefix Home Assistant listens on by default.
pub const PREFIX: &str = "homeassistant";

/// The Home Assistant platform of an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// A value: `device_class`, `unit` and `state_class` describe it.
    Sensor {
        device_class: Option<&'static str>,
        unit: Option<&'static str>,
        state_class: Option<&'static str>,
    },
    /// An on/off state with these payloads.
    BinarySensor {
        device_class: Option<&'static str>,
        on: &'static str,
        off: &'static str,
    },
    /// A switch commanded on `cmnd/<name>/<command>` with these payloads (state on the item;
    /// a relay's ON payload is its own maximum time, so it is not a constant).
    Switch {
        command: String,
        on: String,
        off: String,
    },
    /// Events (key presses, manual inputs). The state topic carries a JSON object with an
    /// `event_type` (see [`event_payload`]); events are never retained.
    Event { event_types: Vec<String> },
    /// The device's firmware: the state topic carries the running version and a transfer's
    /// progress (`update_status::firmware_state`); Home Assistant reads the newest version of
    /// the device's appliance itself from [`release_topic`]. No install command: an image must
    /// be signed with the owner's key, which Home Assistant does not hold (`hearth ota` does).
    Update,
    /// A button: pressing it in Home Assistant publishes `payload` on `cmnd/<name>/<command>`.
    /// It has no state.
    Button {
        command: String,
        payload: &'static str,
        device_class: Option<&'static str>,
    },
}

impl Component {
    /// The component name in the discovery topic.
    pub fn name(&self) -> &'static str {
        match self {
            Component::Sensor { .. } => "sensor",
            Component::BinarySensor { .. } => "binary_sensor",
            Component::Switch { .. } => "switch",
            Component::Event { .. } => "event",
            Component::Update => "update",
            Component::Button { .. } => "button",
        }
    }
}

/// One entity of an appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The published item (`stat/<name>/<item>`).
    pub item: String,
    /// A human name ("Temperature").
    pub name: String,
    /// What it is.
    pub component: Component,
    /// Shown under diagnostics (malfunction codes, statistics).
    pub diagnostic: bool,
    /// A Jinja template extracting the value from the payload, if it is not the payload itself.
    pub value_template: Option<String>,
}

impl Entity {
    /// A sensor for `item`.
    pub fn sensor(
        item: &str,
        name: &str,
        device_class: Option<&'static str>,
        unit: Option<&'static str>,
        state_class: Option<&'static str>,
    ) -> Entity {
        Entity {
            item: item.into(),
            name: name.into(),
            component: Component::Sensor {
                device_class,
                unit,
                state_class,
            },
            diagnostic: false,
            value_template: None,
        }
    }

    /// A diagnostic sensor (e.g. the malfunction code).
    pub fn diagnostic(item: &str, name: &str) -> Entity {
        Entity {
            diagnostic: true,
            ..Entity::sensor(item, name, None, None, None)
        }
    }

    /// A switch whose state is `item` and whose command leaf is `command`.
    pub fn switch(item: &str, name: &str, command: &str, on: &str, off: &str) -> Entity {
        Entity {
            item: item.into(),
            name: name.into(),
            component: Component::Switch {
                command: command.into(),
                on: on.into(),
                off: off.into(),
            },
            diagnostic: false,
            value_template: None,
        }
    }

    /// A button (under the device's configuration) that publishes `payload` on `command`.
    pub fn button(
        item: &str,
        name: &str,
        command: &str,
        payload: &'static str,
        device_class: Option<&'static str>,
    ) -> Entity {
        Entity {
            item: item.into(),
            name: name.into(),
            component: Component::Button {
                command: command.into(),
                payload,
                device_class,
            },
            diagnostic: false,
            value_template: None,
        }
    }

    /// The firmware `update` entity on `item`.
    pub fn update(item: &str, name: &str) -> Entity {
        Entity {
            item: item.into(),
            name: name.into(),
            component: Component::Update,
            diagnostic: false,
            value_template: None,
        }
    }

    /// An event entity on `item` with these event types.
    pub fn event(item: &str, name: &str, event_types: &[&str]) -> Entity {
        Entity {
            item: item.into(),
            name: name.into(),
            component: Component::Event {
                event_types: event_types.iter().map(|s| String::from(*s)).collect(),
            },
            diagnostic: false,
            value_template: None,
        }
    }
}

/// Where `hearth release` publishes (retained) the newest firmware for an appliance, as
/// [`release_payload`]: `hearth/release/<appliance>`.
pub fn release_topic(appliance: &str) -> String {
    format!("hearth/release/{}", object_id(appliance))
}

/// The release message: `{"version":"0.2.0"}`, with the release notes' `summary` and `url`
/// when there are some (for tools and people reading the topic; Home Assistant 2025.4 reads
/// only the version from it).
pub fn release_payload(version: &str, summary: Option<&str>, url: Option<&str>) -> String {
    let mut out = String::new();
    let mut j = Json::new(&mut out);
    j.str("version", version);
    j.opt("summary", summary);
    j.opt("url", url);
    j.finish();
    out
}

/// The payload of an event for an [`Component::Event`] entity: `{"event_type":"<t>"}`.
pub fn event_payload(event_type: &str) -> String {
    format!("{{\"event_type\":{}}}", json_string(event_type))
}

/// The device the entities belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `mqttname`.
    pub name: String,
    /// A stable identity, e.g. the MAC as 12 hex digits.
    pub id: String,
    /// The appliance (`profile`).
    pub model: String,
    /// Firmware version.
    pub version: String,
}

/// Turns an item into the `<object>` part of topics and ids: ASCII letters, digits, `_` and
/// `-` are kept, anything else becomes `_`.
pub fn object_id(item: &str) -> String {
    item.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An entity id's object part as Home Assistant's `slugify` makes it from ASCII: lower case
/// letters and digits, every other run of characters one `_`, none at either end. Home
/// Assistant refuses an entity id with `__`, a leading or a trailing `_`.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// The entity id Home Assistant should give `entity` of `device`: `<component>.<slug>`.
pub fn default_entity_id(device: &DeviceInfo, entity: &Entity) -> String {
    format!(
        "{}.{}",
        entity.component.name(),
        slug(&format!("{}_{}", device.name, entity.item))
    )
}

/// The retained device-based config topic of `device`: `homeassistant/device/<node>/config`.
pub fn device_topic(device: &DeviceInfo) -> String {
    format!("{PREFIX}/device/{}/config", object_id(&device.name))
}

/// The per-entity config topics of device `name` (what firmware before device-based
/// discovery published): `homeassistant/+/<node>/+/config`. The device subscribes to it to
/// find such configs left on the broker, and [`fence_topic`] matches it.
pub fn entity_config_filter(name: &str) -> String {
    format!("{PREFIX}/+/{}/+/config", object_id(name))
}

/// A topic under [`entity_config_filter`] that Home Assistant never reads (no platform is
/// called `hearth`): the device publishes an empty message there after subscribing, and once
/// it comes back, every retained config the subscription found has arrived before it.
pub fn fence_topic(name: &str) -> String {
    format!("{PREFIX}/hearth/{}/fence/config", object_id(name))
}

/// What Home Assistant takes on a per-entity config topic as "this entity moves to
/// device-based discovery": it unloads the entity and keeps its registry entry (id, name,
/// area) for the device config to pick up.
pub const MIGRATE: &str = "{\"migrate_discovery\":true}";

/// Is this a per-entity config of device `name` that must be moved to device-based discovery:
/// on a topic under [`entity_config_filter`] (not the [`fence_topic`], not a device config),
/// and neither empty (cleared) nor [`MIGRATE`] (moved already)?
pub fn is_stale_entity_config(topic: &str, payload: &[u8], name: &str) -> bool {
    let node = object_id(name);
    let mut parts = topic.split('/');
    let (Some(PREFIX), Some(component), Some(n), Some(_), Some("config"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let payload = payload.trim_ascii();
    n == node
        && component != "device"
        && component != "hearth"
        && !payload.is_empty()
        && payload != MIGRATE.as_bytes()
}

/// The device-based config payload (JSON) of `device` with these entities: the device block,
/// the origin, the shared availability, and one component per entity keyed by its
/// [`object_id`]. Items must have distinct object ids (the scenario tests check every
/// appliance's config for a repeated key).
pub fn device_payload(device: &DeviceInfo, entities: &[Entity], topics: &Topics) -> String {
    // Measured first, then written into one allocation of exactly that size: the chip never
    // holds two copies (or a grown buffer) of a config that reaches 17 KB on a full central.
    let mut count = Count(0);
    write_device(Json::new(&mut count), device, entities, topics);
    let mut out = String::with_capacity(count.0);
    write_device(Json::new(&mut out), device, entities, topics);
    out
}

/// One writer for both passes (through `dyn Sink`, so the chip holds one copy of it).
fn write_device(mut j: Json<'_>, device: &DeviceInfo, entities: &[Entity], topics: &Topics) {
    j.open("device");
    j.key("identifiers");
    j.out.push('[');
    push_json_string(j.out, &format!("hearth_{}", device.id));
    j.out.push(']');
    j.str("name", &device.name);
    j.str("model", &device.model);
    j.str("manufacturer", "Hearth");
    j.str("sw_version", &device.version);
    j.close();
    j.open("origin");
    j.str("name", "Hearth");
    j.str("sw_version", &device.version);
    j.close();
    j.str("availability_topic", &topics.lwt());
    j.str("payload_available", ONLINE);
    j.str("payload_not_available", OFFLINE);
    j.open("components");
    for e in entities {
        j.open(&object_id(&e.item));
        component(&mut j, device, e, topics);
        j.close();
    }
    j.close();
    j.finish();
}

/// One component of [`device_payload`]: `entity` with its `platform`.
fn component(j: &mut Json<'_>, device: &DeviceInfo, entity: &Entity, topics: &Topics) {
    j.str("platform", entity.component.name());
    j.str("name", &entity.name);
    let uid = format!("hearth_{}_{}", device.id, object_id(&entity.item));
    j.str("unique_id", &uid);
    j.str("default_entity_id", &default_entity_id(device, entity));
    j.str(
        "object_id",
        &format!("{}_{}", object_id(&device.name), object_id(&entity.item)),
    );
    if !matches!(entity.component, Component::Button { .. }) {
        j.str("state_topic", &topics.stat(&entity.item));
    }
    match &entity.component {
        Component::Sensor {
            device_class,
            unit,
            state_class,
        } => {
            j.opt("device_class", *device_class);
            j.opt("unit_of_measurement", *unit);
            j.opt("state_class", *state_class);
        }
        Component::BinarySensor {
            device_class,
            on,
            off,
        } => {
            j.opt("device_class", *device_class);
            j.str("payload_on", on);
            j.str("payload_off", off);
        }
        Component::Switch { command, on, off } => {
            j.str("command_topic", &topics.cmnd(command));
            j.str("payload_on", on);
            j.str("payload_off", off);
            j.str("state_on", on);
            j.str("state_off", off);
        }
        Component::Event { event_types } => {
            j.raw(
                "event_types",
                &format!(
                    "[{}]",
                    event_types
                        .iter()
                        .map(|t| json_string(t))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            );
        }
        Component::Button {
            command,
            payload,
            device_class,
        } => {
            j.str("command_topic", &topics.cmnd(command));
            j.str("payload_press", payload);
            j.opt("device_class", *device_class);
        }
        Component::Update => {
            j.str("device_class", "firmware");
            j.str("title", "Hearth firmware");
            j.str("latest_version_topic", &release_topic(&device.model));
            j.str("latest_version_template", "{{ value_json.version }}");
        }
    }
    if entity.diagnostic {
        j.str("entity_category", "diagnostic");
    } else if matches!(entity.component, Component::Button { .. }) {
        // Buttons that act on the device itself sit under its configuration.
        j.str("entity_category", "config");
    }
    if let Some(t) = &entity.value_template {
        j.str("value_template", t);
    }
}

/// A JSON string literal of `s`, escaped per RFC 8259.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

/// Where JSON text goes: a string, or a count of its bytes.
trait Sink {
    fn push(&mut self, c: char);
    fn push_str(&mut self, s: &str);
}

impl Sink for String {
    fn push(&mut self, c: char) {
        String::push(self, c);
    }

    fn push_str(&mut self, s: &str) {
        String::push_str(self, s);
    }
}

/// The length of the text, without the text.
struct Count(usize);

impl Sink for Count {
    fn push(&mut self, c: char) {
        self.0 += c.len_utf8();
    }

    fn push_str(&mut self, s: &str) {
        self.0 += s.len();
    }
}

/// [`json_string`] appended to `out`.
fn push_json_string(out: &mut dyn Sink, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object written in place, nested objects included.
struct Json<'a> {
    out: &'a mut dyn Sink,
    /// Nothing written yet in the innermost open object (no comma before the next key).
    fresh: bool,
}

impl<'a> Json<'a> {
    fn new(out: &'a mut dyn Sink) -> Self {
        out.push('{');
        Json { out, fresh: true }
    }

    fn key(&mut self, key: &str) {
        if !self.fresh {
            self.out.push(',');
        }
        self.fresh = false;
        push_json_string(self.out, key);
        self.out.push(':');
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(value);
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        push_json_string(self.out, value);
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    /// Start the object `key`; [`Json::close`] ends it.
    fn open(&mut self, key: &str) {
        self.key(key);
        self.out.push('{');
        self.fresh = true;
    }

    fn close(&mut self) {
        self.out.push('}');
        self.fresh = false;
    }

    fn finish(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> DeviceInfo {
        DeviceInfo {
            name: "Weather1".into(),
            id: "02A1B2C3D4E5".into(),
            model: "weather".into(),
            version: "0.1.0".into(),
        }
    }

    /// The component of `entity` in its device config.
    fn component_payload(device: &DeviceInfo, entity: &Entity, topics: &Topics) -> String {
        let all = device_payload(device, core::slice::from_ref(entity), topics);
        let start = all.find("\"components\":{").unwrap() + "\"components\":{".len();
        let inner = &all[start..all.len() - 2];
        String::from(&inner[inner.find(':').unwrap() + 1..])
    }

    #[test]
    fn a_device_config_has_the_schema_keys() {
        let t = Topics::new("Weather1");
        let e = Entity::sensor(
            "Temperature",
            "Temperature",
            Some("temperature"),
            Some("°C"),
            Some("measurement"),
        );
        assert_eq!(
            device_topic(&device()),
            "homeassistant/device/Weather1/config"
        );
        assert_eq!(
            device_payload(
                &device(),
                &[e, Entity::diagnostic("Malfunction", "Malfunction")],
                &t
            ),
            "{\"device\":{\"identifiers\":[\"hearth_02A1B2C3D4E5\"],\"name\":\"Weather1\",\
\"model\":\"weather\",\"manufacturer\":\"Hearth\",\"sw_version\":\"0.1.0\"},\
\"origin\":{\"name\":\"Hearth\",\"sw_version\":\"0.1.0\"},\
\"availability_topic\":\"tele/Weather1/LWT\",\"payload_available\":\"Online\",\
\"payload_not_available\":\"Offline\",\"components\":{\
\"Temperature\":{\"platform\":\"sensor\",\"name\":\"Temperature\",\
\"unique_id\":\"hearth_02A1B2C3D4E5_Temperature\",\
\"default_entity_id\":\"sensor.weather1_temperature\",\
\"object_id\":\"Weather1_Temperature\",\"state_topic\":\"stat/Weather1/Temperature\",\
\"device_class\":\"temperature\",\"unit_of_measurement\":\"°C\",\"state_class\":\"measurement\"},\
\"Malfunction\":{\"platform\":\"sensor\",\"name\":\"Malfunction\",\
\"unique_id\":\"hearth_02A1B2C3D4E5_Malfunction\",\
\"default_entity_id\":\"sensor.weather1_malfunction\",\
\"object_id\":\"Weather1_Malfunction\",\"state_topic\":\"stat/Weather1/Malfunction\",\
\"entity_category\":\"diagnostic\"}}}"
        );
    }

    #[test]
    fn switches_events_and_diagnostics() {
        let t = Topics::new("Relay");
        let s = component_payload(
            &device(),
            &Entity::switch("Relay1", "Relay 1", "Relay1", "1", "0"),
            &t,
        );
        assert!(s.contains("\"command_topic\":\"cmnd/Relay/Relay1\""), "{s}");
        assert!(
            s.contains("\"payload_on\":\"1\",\"payload_off\":\"0\""),
            "{s}"
        );
        let e = Entity::event("Keyfob", "Keyfob", &["ev1527_a1b2c_1", "x\"y"]);
        let s = component_payload(&device(), &e, &t);
        assert!(s.starts_with("{\"platform\":\"event\","), "{s}");
        assert!(
            s.contains("\"event_types\":[\"ev1527_a1b2c_1\",\"x\\\"y\"]"),
            "{s}"
        );
        let d = device_payload(
            &device(),
            &[Entity::event("Manual1/Event", "Manual 1", &["on"])],
            &t,
        );
        assert_eq!(
            d.capacity(),
            d.len(),
            "measured, then written in one allocation"
        );
        assert!(d.contains("\"components\":{\"Manual1_Event\":{"), "{d}");
        assert_eq!(event_payload("press"), "{\"event_type\":\"press\"}");
        assert_eq!(object_id("Manual1/Event"), "Manual1_Event");
        assert_eq!(json_string("a\u{1}b\n"), "\"a\\u0001b\\n\"");
    }

    #[test]
    fn only_a_live_per_entity_config_of_this_device_is_stale() {
        let stale = |t: &str, p: &str| is_stale_entity_config(t, p.as_bytes(), "wx-1");
        assert_eq!(
            entity_config_filter("wx/1"),
            "homeassistant/+/wx_1/+/config"
        );
        assert!(stale(
            "homeassistant/sensor/wx-1/Temperature/config",
            "{\"name\":\"T\"}"
        ));
        // Cleared, moved, the fence, the device config, another device, another shape.
        assert!(!stale("homeassistant/sensor/wx-1/Temperature/config", ""));
        assert!(!stale(
            "homeassistant/sensor/wx-1/Temperature/config",
            MIGRATE
        ));
        assert!(!stale(&fence_topic("wx-1"), ""));
        assert!(!stale(&fence_topic("wx-1"), "{}"));
        assert!(!stale("homeassistant/device/wx-1/x/config", "{}"));
        assert!(!stale("homeassistant/sensor/wx-2/Temperature/config", "{}"));
        assert!(!stale(
            "homeassistant/sensor/wx-1/Temperature/config/x",
            "{}"
        ));
        assert!(!stale("homeassistant/device/wx-1/config", "{}"));
        assert!(!stale("elsewhere/sensor/wx-1/Temperature/config", "{}"));
    }

    #[test]
    fn entity_ids_are_valid_home_assistant_slugs() {
        assert_eq!(slug("Weather1_Temperature"), "weather1_temperature");
        assert_eq!(slug("wx-1__Manual1/Event"), "wx_1_manual1_event");
        assert_eq!(slug("_a-_-b_"), "a_b");
        assert_eq!(slug("--"), "");
        let mut d = device();
        d.name = "Living-Room".into();
        let e = Entity::switch("Relay1", "Relay 1", "Relay1", "1", "0");
        assert_eq!(default_entity_id(&d, &e), "switch.living_room_relay1");
        let p = component_payload(&d, &e, &Topics::new("Living-Room"));
        assert!(
            p.contains("\"default_entity_id\":\"switch.living_room_relay1\",\"object_id\":\"Living-Room_Relay1\""),
            "{p}"
        );
    }
}
