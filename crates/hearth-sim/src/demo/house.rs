//! The demo's view of the house: what each device's row shows, made from the messages the
//! broker routes and the lines the simulated boards print. No terminal here: [`House`] is fed
//! and asked for [`Row`]s, so what a row shows for a stream of messages is unit-tested;
//! `screen` draws the rows.

use std::collections::BTreeMap;

/// A device of the demo, as it was started.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Its `mqttname`, which is also its directory in the demo's state.
    pub name: String,
    /// Its `profile`.
    pub appliance: String,
    /// Something to try on it from another terminal.
    pub try_it: Try,
    /// It speaks MQTT itself (a battery ESP-NOW peripheral does not).
    pub mqtt: bool,
}

/// Something to try on a device from another terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Try {
    /// `hearth sim ctl DIR/<device>/state <command>`.
    Ctl(&'static str),
    /// `hearth pub --broker … <topic> <payload>`.
    Pub(String, &'static str),
}

impl Try {
    /// The short form the TRY column shows.
    pub fn short(&self) -> String {
        match self {
            Self::Ctl(c) => format!("ctl {c}"),
            Self::Pub(t, p) => format!("pub {t} {p}"),
        }
    }
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The device's name.
    pub name: String,
    /// Its appliance.
    pub appliance: String,
    /// `online`, `offline`, `starting`, `asleep`, `awake`, with a malfunction when there is one.
    pub status: String,
    /// Offline, or a malfunction: drawn as a warning.
    pub alert: bool,
    /// Its latest readings with their units, in the order its discovery config lists them.
    pub readings: String,
    /// Its last event, `[12s] relay 1 on` (seconds since the demo started), or empty.
    pub event: String,
    /// The event is less than [`FRESH`] seconds old: drawn highlighted.
    pub fresh: bool,
    /// What to try on it.
    pub try_it: String,
}

/// How long an event stays highlighted, seconds.
pub const FRESH: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platform {
    Sensor,
    BinarySensor,
    Switch,
    Event,
    /// Buttons, the update entity, …: not shown.
    Other,
}

/// An entity from a device's discovery config.
#[derive(Debug, Clone)]
struct Entity {
    topic: String,
    name: String,
    platform: Platform,
    unit: Option<String>,
    diagnostic: bool,
    on: String,
    off: String,
}

impl Entity {
    /// `on`/`off` for a switch or binary sensor payload (its own payloads, or `1`/`0`, which a
    /// relay's value template maps), the payload otherwise.
    fn state<'a>(&self, payload: &'a str) -> &'a str {
        if payload == self.on || payload == "1" {
            "on"
        } else if payload == self.off || payload == "0" {
            "off"
        } else {
            payload
        }
    }

    fn is_malfunction(&self) -> bool {
        self.topic.ends_with("/Malfunction")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    /// No word from it yet.
    Unknown,
    /// Its board started it (a device without MQTT: the battery scale).
    Awake,
    /// Its board put it to deep sleep.
    Asleep,
}

#[derive(Debug)]
struct Device {
    spec: Spec,
    /// Its radio address as forwarded topics name it (`6E8445A1FE2E`), once its board said.
    mac: Option<String>,
    /// Its availability (`tele/<name>/LWT`), once seen.
    online: Option<bool>,
    power: Power,
    entities: Vec<Entity>,
    /// The latest payload of each of its state topics.
    values: BTreeMap<String, String>,
    malfunction: Option<String>,
    event: Option<(f64, String)>,
}

impl Device {
    fn note(&mut self, at: f64, text: impl Into<String>) {
        self.event = Some((at, text.into()));
    }

    fn readings(&self) -> String {
        let mut parts = Vec::new();
        for e in &self.entities {
            let Some(v) = self.values.get(&e.topic) else {
                continue;
            };
            match e.platform {
                Platform::Sensor if !e.diagnostic => parts.push(match &e.unit {
                    Some(u) => format!("{} {v} {u}", e.name),
                    None => format!("{} {v}", e.name),
                }),
                Platform::Switch | Platform::BinarySensor if !e.diagnostic => {
                    parts.push(format!("{} {}", e.name, e.state(v)));
                }
                _ => {}
            }
        }
        parts.join(" · ")
    }

    fn status(&self) -> (String, bool) {
        let (base, down) = match (self.online, self.power) {
            (Some(true), _) => ("online", false),
            (Some(false), _) => ("offline", true),
            (None, Power::Asleep) => ("asleep", false),
            (None, Power::Awake) => ("awake", false),
            (None, Power::Unknown) => ("starting", false),
        };
        match self.malfunction.as_deref() {
            Some(m) if m != "0" => (format!("{base}, malfunction {m}"), true),
            _ => (base.to_string(), down),
        }
    }
}

/// The house: every device of the demo and what the view knows of it.
#[derive(Debug)]
pub struct House {
    devices: Vec<Device>,
}

/// The device a topic is about: `stat/<name>/…`, `tele/<name>/…`, `cmnd/<name>/…`,
/// `homeassistant/device/<name>/config`, `homeassistant/<platform>/<name>/<id>/config`.
fn topic_device(topic: &str) -> Option<&str> {
    let mut parts = topic.split('/');
    match parts.next()? {
        "stat" | "tele" | "cmnd" => parts.next(),
        "homeassistant" => {
            parts.next()?;
            parts.next()
        }
        _ => None,
    }
}

/// The entities of a device-based discovery config, in the order the config lists them
/// (`raw` is its text: the parsed map has lost the order), `None` if it is not one.
fn entities(raw: &[u8]) -> Option<Vec<Entity>> {
    let config: serde_json::Value = serde_json::from_slice(raw).ok()?;
    let components = config.get("components")?.as_object()?;
    let text =
        |c: &serde_json::Value, key: &str| c.get(key).and_then(|v| v.as_str()).map(String::from);
    let mut list: Vec<Entity> = components
        .values()
        .filter_map(|c| {
            let platform = match c.get("platform")?.as_str()? {
                "sensor" => Platform::Sensor,
                "binary_sensor" => Platform::BinarySensor,
                "switch" => Platform::Switch,
                "event" => Platform::Event,
                _ => Platform::Other,
            };
            let topic = text(c, "state_topic")?;
            Some(Entity {
                // The uptime is a reading of the device, not of its house: the view
                // leaves it out with the diagnostics.
                diagnostic: c.get("entity_category").is_some() || topic.ends_with("/Uptime"),
                topic,
                name: text(c, "name").unwrap_or_default(),
                platform,
                unit: text(c, "unit_of_measurement"),
                on: text(c, "state_on")
                    .or_else(|| text(c, "payload_on"))
                    .unwrap_or_else(|| "ON".into()),
                off: text(c, "state_off")
                    .or_else(|| text(c, "payload_off"))
                    .unwrap_or_else(|| "OFF".into()),
            })
        })
        .collect();
    let text = String::from_utf8_lossy(raw);
    list.sort_by_key(|e| text.find(&format!("\"{}\"", e.topic)).unwrap_or(usize::MAX));
    Some(list)
}

/// One line for a discovery config in the plain stream, instead of its JSON: how many
/// entities it announces and its size. `None` when the topic is no discovery config.
pub fn discovery_summary(topic: &str, payload: &[u8]) -> Option<String> {
    if !(topic.starts_with("homeassistant/") && topic.ends_with("/config")) {
        return None;
    }
    if payload.is_empty() {
        return Some("(discovery config cleared)".into());
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
    let what = match parsed
        .as_ref()
        .and_then(|v| v.get("components")?.as_object())
    {
        Some(c) => format!(
            "{} entit{}",
            c.len(),
            if c.len() == 1 { "y" } else { "ies" }
        ),
        None => "one entity".into(),
    };
    Some(format!(
        "(discovery: {what}, {} bytes; --raw shows it)",
        payload.len()
    ))
}

impl House {
    /// A house of these devices, in this order.
    pub fn new(specs: Vec<Spec>) -> Self {
        Self {
            devices: specs
                .into_iter()
                .map(|spec| Device {
                    spec,
                    mac: None,
                    online: None,
                    power: Power::Unknown,
                    entities: Vec::new(),
                    values: BTreeMap::new(),
                    malfunction: None,
                    event: None,
                })
                .collect(),
        }
    }

    fn device(&mut self, name: &str) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| d.spec.name == name)
    }

    /// A message the broker routed, `at` seconds after the demo started.
    pub fn message(&mut self, topic: &str, payload: &[u8], at: f64) {
        let Some(name) = topic_device(topic) else {
            return;
        };
        let text = String::from_utf8_lossy(payload);
        if topic.starts_with("homeassistant/device/") && topic.ends_with("/config") {
            let Some(list) = entities(payload) else {
                return;
            };
            // A forwarder announces its senders' entities: each goes to the sender's row
            // when the sender is a device of the house (`stat/scales/6E8445A1FE2E/Weight`,
            // by the radio address its board printed).
            let mut own = Vec::new();
            for mut e in list {
                let sender = e.topic.split('/').nth(2).unwrap_or_default().to_string();
                let found = self
                    .devices
                    .iter_mut()
                    .find(|d| d.spec.name == sender || d.mac.as_deref() == Some(sender.as_str()));
                match found {
                    Some(d) if d.spec.name != name => {
                        // `6E8445A1FE2E Weight` is the sender's `Weight`.
                        if let Some(short) = e.name.strip_prefix(&format!("{sender} ")) {
                            e.name = short.to_string();
                        }
                        d.entities.retain(|x| x.topic != e.topic);
                        d.entities.push(e);
                    }
                    _ => own.push(e),
                }
            }
            if let Some(d) = self.device(name) {
                d.entities = own;
            }
            return;
        }
        if topic == format!("tele/{name}/LWT") {
            let Some(d) = self.device(name) else { return };
            let online = text == "Online";
            if d.online != Some(online) {
                d.note(at, if online { "online" } else { "offline" });
            }
            d.online = Some(online);
            return;
        }
        // A state topic: whose entity is it?
        let owner = self
            .devices
            .iter()
            .position(|d| d.entities.iter().any(|e| e.topic == topic))
            .or_else(|| self.devices.iter().position(|d| d.spec.name == name));
        let Some(d) = owner.map(|i| &mut self.devices[i]) else {
            return;
        };
        let entity = d.entities.iter().find(|e| e.topic == topic).cloned();
        let old = d.values.insert(topic.to_string(), text.to_string());
        let Some(e) = entity else {
            return;
        };
        if e.is_malfunction() {
            if old.is_some() && old.as_deref() != Some(&*text) {
                d.note(
                    at,
                    if text == "0" {
                        "malfunction cleared".to_string()
                    } else {
                        format!("malfunction {text}")
                    },
                );
            }
            d.malfunction = Some(text.to_string());
            return;
        }
        match e.platform {
            Platform::Event => d.note(at, format!("{}: {text}", e.name)),
            Platform::Switch | Platform::BinarySensor
                if old.is_some() && old.as_deref() != Some(&*text) =>
            {
                d.note(at, format!("{} {}", e.name, e.state(&text)));
            }
            _ => {}
        }
    }

    /// A line device `name`'s board printed, `at` seconds after the demo started.
    pub fn log(&mut self, name: &str, line: &str, at: f64) {
        let Some(d) = self.device(name) else { return };
        if let Some(i) = line.find("board: MAC ") {
            let mac: String = line[i + "board: MAC ".len()..]
                .chars()
                .filter(char::is_ascii_hexdigit)
                .collect();
            d.mac = Some(mac.to_ascii_uppercase());
        } else if let Some(reply) = line.strip_prefix("board: sim ctl: ") {
            if let Some(done) = reply.strip_prefix("ok ") {
                d.note(at, done);
            }
        } else if line.starts_with("board: power cut") {
            d.note(at, "power cut");
        } else if line.starts_with("board: device started") {
            d.power = Power::Awake;
        } else if let Some(rest) = line.strip_prefix("board: deep sleep for ") {
            d.power = Power::Asleep;
            d.note(at, format!("asleep for {rest}"));
        } else if line.starts_with("board: device ended (Crash)") {
            d.note(at, "crashed");
        } else if let Some(i) = line.find("rebooting: ") {
            d.note(at, &line[i..]);
        } else if line.contains("] safe mode: ") {
            d.note(at, "safe mode");
        }
    }

    /// Devices online, of those that speak MQTT.
    pub fn online(&self) -> (usize, usize) {
        let mqtt = self.devices.iter().filter(|d| d.spec.mqtt);
        let up = mqtt.clone().filter(|d| d.online == Some(true)).count();
        (up, mqtt.count())
    }

    /// The rows, in the order the devices were given, at `now` seconds.
    pub fn rows(&self, now: f64) -> Vec<Row> {
        self.devices
            .iter()
            .map(|d| {
                let (status, alert) = d.status();
                let (event, fresh) = match &d.event {
                    Some((at, text)) => (format!("[{at:.0}s] {text}"), now - at < FRESH),
                    None => (String::new(), false),
                };
                Row {
                    name: d.spec.name.clone(),
                    appliance: d.spec.appliance.clone(),
                    status,
                    alert,
                    readings: d.readings(),
                    event,
                    fresh,
                    try_it: d.spec.try_it.short(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn house() -> House {
        House::new(vec![
            Spec {
                name: "weather-1".into(),
                appliance: "weather".into(),
                try_it: Try::Ctl("power-cut"),
                mqtt: true,
            },
            Spec {
                name: "relays".into(),
                appliance: "relay".into(),
                try_it: Try::Pub("cmnd/relays/0/TurnOnWithTimeout".into(), "30"),
                mqtt: true,
            },
            Spec {
                name: "scales".into(),
                appliance: "scale_manager".into(),
                try_it: Try::Ctl("power-cut"),
                mqtt: true,
            },
            Spec {
                name: "bathroom-scale".into(),
                appliance: "scale_sensor".into(),
                try_it: Try::Ctl("load 80"),
                mqtt: false,
            },
        ])
    }

    const WEATHER: &str = r#"{"device":{"name":"weather-1"},"availability_topic":"tele/weather-1/LWT","components":{
        "Temperature":{"platform":"sensor","name":"Temperature","state_topic":"stat/weather-1/Temperature","unit_of_measurement":"°C"},
        "Humidity":{"platform":"sensor","name":"Humidity","state_topic":"stat/weather-1/Humidity","unit_of_measurement":"%"},
        "Uptime":{"platform":"sensor","name":"Uptime","state_topic":"stat/weather-1/Uptime","unit_of_measurement":"s","entity_category":"diagnostic"},
        "Malfunction":{"platform":"sensor","name":"Malfunction","state_topic":"stat/weather-1/Malfunction","entity_category":"diagnostic"},
        "Restart":{"platform":"button","name":"Restart","command_topic":"cmnd/weather-1/Restart"}}}"#;

    const RELAYS: &str = r#"{"components":{
        "0_State":{"platform":"switch","name":"Relay 1","state_topic":"stat/relays/0/State","payload_on":"86400","payload_off":"0","state_on":"86400","state_off":"0"},
        "1_State":{"platform":"switch","name":"Relay 2","state_topic":"stat/relays/1/State","payload_on":"1","payload_off":"0"}}}"#;

    fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
        rows.iter().find(|r| r.name == name).unwrap()
    }

    #[test]
    fn a_row_shows_readings_with_units_in_discovery_order_without_diagnostics() {
        let mut h = house();
        h.message(
            "homeassistant/device/weather-1/config",
            WEATHER.as_bytes(),
            1.0,
        );
        // Before its config, values are kept but not shown as readings.
        h.message("stat/weather-1/Humidity", b"45", 1.5);
        h.message("stat/weather-1/Temperature", b"21.4", 2.0);
        h.message("stat/weather-1/Uptime", b"12", 2.0);
        h.message("stat/weather-1/Malfunction", b"0", 2.0);
        let rows = h.rows(3.0);
        let r = row(&rows, "weather-1");
        assert_eq!(r.readings, "Temperature 21.4 °C · Humidity 45 %");
        assert_eq!((r.status.as_str(), r.alert), ("starting", false));
        assert_eq!(r.try_it, "ctl power-cut");
        assert_eq!(r.event, "");
    }

    #[test]
    fn availability_turns_a_row_online_and_offline_with_an_event() {
        let mut h = house();
        h.message("tele/weather-1/LWT", b"Online", 2.0);
        let r = h.rows(2.5);
        let r = row(&r, "weather-1");
        assert_eq!((r.status.as_str(), r.alert), ("online", false));
        assert_eq!((r.event.as_str(), r.fresh), ("[2s] online", true));
        h.message("tele/weather-1/LWT", b"Offline", 30.0);
        let r = h.rows(40.0);
        let r = row(&r, "weather-1");
        assert_eq!((r.status.as_str(), r.alert), ("offline", true));
        assert_eq!((r.event.as_str(), r.fresh), ("[30s] offline", false));
        assert_eq!(h.online(), (0, 3), "the scale has no MQTT");
    }

    #[test]
    fn a_malfunction_shows_in_the_status_and_as_an_event_when_it_changes() {
        let mut h = house();
        h.message(
            "homeassistant/device/weather-1/config",
            WEATHER.as_bytes(),
            1.0,
        );
        h.message("tele/weather-1/LWT", b"Online", 2.0);
        h.message("stat/weather-1/Malfunction", b"0", 2.0);
        assert_eq!(row(&h.rows(3.0), "weather-1").event, "[2s] online");
        h.message("stat/weather-1/Malfunction", b"2", 9.0);
        let rows = h.rows(9.5);
        let r = row(&rows, "weather-1");
        assert_eq!(
            (r.status.as_str(), r.alert),
            ("online, malfunction 2", true)
        );
        assert_eq!(r.event, "[9s] malfunction 2");
        h.message("stat/weather-1/Malfunction", b"0", 20.0);
        let rows = h.rows(21.0);
        let r = row(&rows, "weather-1");
        assert_eq!((r.status.as_str(), r.alert), ("online", false));
        assert_eq!(r.event, "[20s] malfunction cleared");
    }

    #[test]
    fn a_switch_shows_on_and_off_by_its_own_payloads_and_a_change_is_an_event() {
        let mut h = house();
        h.message("homeassistant/device/relays/config", RELAYS.as_bytes(), 1.0);
        h.message("stat/relays/0/State", b"0", 2.0);
        h.message("stat/relays/1/State", b"0", 2.0);
        let rows = h.rows(2.0);
        assert_eq!(row(&rows, "relays").readings, "Relay 1 off · Relay 2 off");
        assert_eq!(
            row(&rows, "relays").event,
            "",
            "the first value is no event"
        );
        h.message("stat/relays/1/State", b"1", 5.0);
        let rows = h.rows(5.2);
        let r = row(&rows, "relays");
        assert_eq!(r.readings, "Relay 1 off · Relay 2 on");
        assert_eq!((r.event.as_str(), r.fresh), ("[5s] Relay 2 on", true));
        assert_eq!(r.try_it, "pub cmnd/relays/0/TurnOnWithTimeout 30");
    }

    #[test]
    fn a_forwarded_reading_goes_to_its_sender_s_row() {
        let mut h = house();
        let config = r#"{"components":{
            "Weight":{"platform":"sensor","name":"Weight","state_topic":"stat/scales/Weight","unit_of_measurement":"kg"},
            "6E8445A1FE2E_Weight":{"platform":"sensor","name":"6E8445A1FE2E Weight","state_topic":"stat/scales/6E8445A1FE2E/Weight","unit_of_measurement":"kg"}}}"#;
        // The board names the scale's radio address before the forwarder's config comes.
        h.log(
            "bathroom-scale",
            "[    0.012] board: MAC 6E:84:45:A1:fe:2e",
            0.4,
        );
        h.message("homeassistant/device/scales/config", config.as_bytes(), 1.0);
        h.message("stat/scales/Weight", b"72.40", 4.0);
        h.message("stat/scales/6E8445A1FE2E/Weight", b"72.40", 4.0);
        h.log(
            "bathroom-scale",
            "board: device started (pid 7, reset cause power-on)",
            0.5,
        );
        let rows = h.rows(5.0);
        assert_eq!(row(&rows, "scales").readings, "Weight 72.40 kg");
        let scale = row(&rows, "bathroom-scale");
        assert_eq!(scale.readings, "Weight 72.40 kg");
        assert_eq!(scale.status, "awake");
        h.log("bathroom-scale", "board: deep sleep for 20.0 s", 6.0);
        let rows = h.rows(6.5);
        let scale = row(&rows, "bathroom-scale");
        assert_eq!(scale.status, "asleep");
        assert_eq!(scale.event, "[6s] asleep for 20.0 s");
    }

    #[test]
    fn injected_faults_from_the_board_s_output_are_events() {
        let mut h = house();
        h.log("weather-1", "board: sim ctl: ok wifi down", 10.0);
        assert_eq!(row(&h.rows(10.2), "weather-1").event, "[10s] wifi down");
        h.log(
            "weather-1",
            "board: sim ctl: error: the device is awake",
            11.0,
        );
        assert_eq!(row(&h.rows(11.2), "weather-1").event, "[10s] wifi down");
        h.log("weather-1", "board: power cut", 12.0);
        assert_eq!(row(&h.rows(12.2), "weather-1").event, "[12s] power cut");
        h.log(
            "weather-1",
            "[   40.002] rebooting: network down for 30 s",
            40.0,
        );
        assert_eq!(
            row(&h.rows(40.2), "weather-1").event,
            "[40s] rebooting: network down for 30 s"
        );
        // Lines of unknown devices and other lines change nothing.
        h.log("nobody", "board: power cut", 41.0);
        h.log("weather-1", "[   41.000] mqtt connected", 41.0);
        assert_eq!(
            row(&h.rows(41.2), "weather-1").event,
            "[40s] rebooting: network down for 30 s"
        );
    }

    #[test]
    fn an_event_entity_is_an_event_and_no_reading() {
        let mut h = House::new(vec![Spec {
            name: "keyfobs".into(),
            appliance: "rx433".into(),
            try_it: Try::Ctl("press ev1527 74565 2"),
            mqtt: true,
        }]);
        let config = r#"{"components":{"Keyfob":{"platform":"event","name":"Keyfob","state_topic":"stat/keyfobs/Keyfob"}}}"#;
        h.message(
            "homeassistant/device/keyfobs/config",
            config.as_bytes(),
            1.0,
        );
        h.message("stat/keyfobs/Keyfob", b"ev1527_74565_2", 8.0);
        let rows = h.rows(8.1);
        assert_eq!(rows[0].readings, "");
        assert_eq!(rows[0].event, "[8s] Keyfob: ev1527_74565_2");
    }

    #[test]
    fn discovery_is_summarised_in_one_line() {
        assert_eq!(
            discovery_summary("homeassistant/device/relays/config", RELAYS.as_bytes()).unwrap(),
            format!(
                "(discovery: 2 entities, {} bytes; --raw shows it)",
                RELAYS.len()
            )
        );
        assert_eq!(
            discovery_summary("homeassistant/sensor/x/T/config", b"{\"name\":\"T\"}").unwrap(),
            "(discovery: one entity, 12 bytes; --raw shows it)"
        );
        assert_eq!(
            discovery_summary("homeassistant/sensor/x/T/config", b"").unwrap(),
            "(discovery config cleared)"
        );
        assert_eq!(discovery_summary("stat/x/T", b"1"), None);
        assert_eq!(discovery_summary("homeassistant/status", b"online"), None);
    }

    #[test]
    fn garbage_changes_nothing_and_never_panics() {
        let mut h = house();
        for (t, p) in [
            ("homeassistant/device/weather-1/config", &b"{not json"[..]),
            (
                "homeassistant/device/weather-1/config",
                b"{\"components\":7}",
            ),
            ("homeassistant/device/weather-1/config", &[0xff, 0xfe][..]),
            ("stat/weather-1/Temperature", &[0xff][..]),
            ("", b""),
            ("stat", b"x"),
            ("tele/unknown/LWT", b"Online"),
        ] {
            h.message(t, p, 1.0);
        }
        let rows = h.rows(2.0);
        assert_eq!(row(&rows, "weather-1").readings, "");
        assert_eq!(row(&rows, "weather-1").status, "starting");
    }
}
