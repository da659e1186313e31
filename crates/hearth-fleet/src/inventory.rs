//! `hearth ls`: every device the broker knows, from the retained messages devices leave on it
//! (their availability, the diagnostics items, the device-based discovery config), without
//! asking any device anything. A device that is offline is listed as the broker last heard it.
//!
//! The end of the retained messages is not guessed from a quiet spell: after subscribing, the
//! tool publishes a marker on a topic of its own, and the broker sends it back after every
//! retained message of the earlier subscriptions (one connection's packets are handled in
//! order).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::client::{BrokerArgs, Client, FleetError, Received};

/// What the inventory reads.
pub const FILTERS: &[&str] = &[
    "tele/+/LWT",
    "stat/+/Version",
    "stat/+/Slot",
    "stat/+/SafeMode",
    "stat/+/RebootReason",
    "stat/+/RSSI",
    "homeassistant/device/+/config",
];

/// How long to wait for the marker behind the retained messages.
const MARKER_WAIT: Duration = Duration::from_secs(10);

/// One device, as its retained messages describe it; `None`: the broker holds no such message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// Its `mqttname`.
    pub name: String,
    /// Its appliance (the discovery config's `model`).
    pub appliance: Option<String>,
    /// Its firmware version.
    pub version: Option<String>,
    /// The update slot it runs from.
    pub slot: Option<String>,
    /// Online (`tele/<name>/LWT`).
    pub online: Option<bool>,
    /// Why it last rebooted.
    pub reboot_reason: Option<String>,
    /// It runs in safe mode.
    pub safe_mode: Option<bool>,
    /// Its Wi-Fi signal, dBm.
    pub rssi: Option<i32>,
}

/// The devices the retained `messages` describe, by name.
pub fn devices(messages: &[Received]) -> Vec<Device> {
    let mut all: BTreeMap<String, Device> = BTreeMap::new();
    for m in messages {
        let text = String::from_utf8_lossy(&m.payload);
        let text = text.trim();
        let parts: Vec<&str> = m.topic.split('/').collect();
        let (name, leaf) = match parts.as_slice() {
            ["tele", name, "LWT"] => (*name, "LWT"),
            ["stat", name, leaf @ ("Version" | "Slot" | "SafeMode" | "RebootReason" | "RSSI")] => {
                (*name, *leaf)
            }
            ["homeassistant", "device", name, "config"] => (*name, "config"),
            _ => continue,
        };
        // An empty retained message is a cleared one: it says nothing about the device.
        if name.is_empty() || text.is_empty() {
            continue;
        }
        let d = all.entry(name.to_string()).or_insert_with(|| Device {
            name: name.to_string(),
            ..Device::default()
        });
        match leaf {
            "LWT" => d.online = Some(text == "Online"),
            "Version" => d.version = Some(text.to_string()),
            "Slot" => d.slot = Some(text.to_string()),
            "SafeMode" => d.safe_mode = Some(text == "ON"),
            "RebootReason" => d.reboot_reason = Some(text.to_string()),
            "RSSI" => d.rssi = text.parse().ok(),
            _ => {
                let config: Option<serde_json::Value> = serde_json::from_str(text).ok();
                d.appliance = config
                    .as_ref()
                    .and_then(|c| c.pointer("/device/model")?.as_str())
                    .map(String::from);
            }
        }
    }
    all.into_values().collect()
}

/// Read the inventory from the broker: subscribe, then wait for the marker that follows the
/// retained messages.
pub fn collect(args: &BrokerArgs) -> Result<Vec<Device>, FleetError> {
    let id = crate::commands::client_id("ls");
    let mut client = Client::connect(args, &id, Duration::from_secs(10))?;
    for f in FILTERS {
        client.subscribe(f)?;
    }
    let marker = format!("hearth/ls/{id}");
    client.subscribe(&marker)?;
    client.publish(&marker, b"end", false)?;
    let deadline = Instant::now() + MARKER_WAIT;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            client.disconnect();
            return Err(FleetError::Timeout(
                "the broker to send back the inventory's marker",
            ));
        }
        match client.recv(left)? {
            Some(m) if m.topic == marker => break,
            // Live messages that arrive meanwhile are as true as retained ones.
            Some(m) => got.push(m),
            None => {}
        }
    }
    client.disconnect();
    Ok(devices(&got))
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

/// The inventory as a table, one line a device, and a summary line.
pub fn table(devices: &[Device]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                or_dash(&d.appliance).to_string(),
                or_dash(&d.version).to_string(),
                or_dash(&d.slot).to_string(),
                match d.online {
                    Some(true) => "online".into(),
                    Some(false) => "offline".into(),
                    None => "-".into(),
                },
                or_dash(&d.reboot_reason).to_string(),
                match d.safe_mode {
                    Some(true) => "SAFE MODE".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
                d.rssi.map_or("-".into(), |r| format!("{r} dBm")),
            ]
        })
        .collect();
    let head = [
        "DEVICE",
        "APPLIANCE",
        "VERSION",
        "SLOT",
        "STATE",
        "LAST REBOOT",
        "SAFE MODE",
        "RSSI",
    ];
    let mut out = crate::table::columns(&head, &rows);
    let online = devices.iter().filter(|d| d.online == Some(true)).count();
    let safe = devices.iter().filter(|d| d.safe_mode == Some(true)).count();
    out.push_str(&format!(
        "{} device{}, {online} online{}\n",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        if safe > 0 {
            format!(", {safe} in safe mode")
        } else {
            String::new()
        }
    ));
    out
}

/// One JSON object a device: `device`, `appliance`, `version`, `slot`, `online`,
/// `reboot_reason`, `safe_mode`, `rssi_dbm` (`null` when the broker holds nothing for it).
pub fn json_line(d: &Device) -> String {
    serde_json::json!({
        "device": d.name,
        "appliance": d.appliance,
        "version": d.version,
        "slot": d.slot,
        "online": d.online,
        "reboot_reason": d.reboot_reason,
        "safe_mode": d.safe_mode,
        "rssi_dbm": d.rssi,
    })
    .to_string()
}

/// `hearth ls [--json]`, for `main`.
pub fn ls(args: &BrokerArgs, json: bool) -> ExitCode {
    let result = collect(args).map(|devices| {
        if json {
            for d in &devices {
                println!("{}", json_line(d));
            }
        } else {
            print!("{}", table(&devices));
        }
    });
    crate::client::exit_code(args, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(topic: &str, payload: &str) -> Received {
        Received {
            topic: topic.into(),
            payload: payload.into(),
            retained: true,
        }
    }

    #[test]
    fn retained_messages_make_one_device_each() {
        let got = devices(&[
            m("tele/w1/LWT", "Online"),
            m("stat/w1/Version", "0.3.0"),
            m("stat/w1/Slot", "1"),
            m("stat/w1/SafeMode", "OFF"),
            m("stat/w1/RebootReason", "ota"),
            m("stat/w1/RSSI", "-61"),
            m(
                "homeassistant/device/w1/config",
                r#"{"device":{"name":"w1","model":"weather","sw_version":"0.3.0"},"components":{}}"#,
            ),
            m("tele/r1/LWT", "Offline"),
            m("stat/r1/SafeMode", "ON"),
            m("stat/r1/RSSI", "strong"),
        ]);
        assert_eq!(
            got,
            vec![
                Device {
                    name: "r1".into(),
                    online: Some(false),
                    safe_mode: Some(true),
                    ..Device::default()
                },
                Device {
                    name: "w1".into(),
                    appliance: Some("weather".into()),
                    version: Some("0.3.0".into()),
                    slot: Some("1".into()),
                    online: Some(true),
                    reboot_reason: Some("ota".into()),
                    safe_mode: Some(false),
                    rssi: Some(-61),
                },
            ]
        );
    }

    #[test]
    fn other_topics_cleared_messages_and_garbage_make_no_device() {
        let got = devices(&[
            m("stat/w1/Temperature", "21.5"),
            m("stat/w1/0/State", "1"),
            m("tele/w2/LWT", ""),
            m("homeassistant/sensor/w3/T/config", "{}"),
            m("homeassistant/device/w4/config", "{not json"),
            m("stat//Version", "1"),
            m("x/y/z", "1"),
            Received {
                topic: "stat/w5/Version".into(),
                payload: vec![0xff, 0xfe],
                retained: true,
            },
        ]);
        let names: Vec<_> = got.iter().map(|d| d.name.as_str()).collect();
        // A broken discovery config still names a device; it has no appliance.
        assert_eq!(names, ["w4", "w5"]);
        assert_eq!(got[0].appliance, None);
        assert_eq!(got[1].version.as_deref(), Some("\u{fffd}\u{fffd}"));
    }

    #[test]
    fn the_table_and_the_json_say_the_same() {
        let d = vec![
            Device {
                name: "weather-1".into(),
                appliance: Some("weather".into()),
                version: Some("0.1.0".into()),
                slot: Some("0".into()),
                online: Some(true),
                reboot_reason: Some("power-on".into()),
                safe_mode: Some(false),
                rssi: Some(-60),
            },
            Device {
                name: "r1".into(),
                online: Some(false),
                safe_mode: Some(true),
                ..Device::default()
            },
        ];
        let t = table(&d);
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(
            lines[0],
            "DEVICE     APPLIANCE  VERSION  SLOT  STATE    LAST REBOOT  SAFE MODE  RSSI"
        );
        assert_eq!(
            lines[1],
            "weather-1  weather    0.1.0    0     online   power-on     no         -60 dBm"
        );
        assert_eq!(
            lines[2],
            "r1         -          -        -     offline  -            SAFE MODE  -"
        );
        assert_eq!(lines[3], "2 devices, 1 online, 1 in safe mode");
        let j: serde_json::Value = serde_json::from_str(&json_line(&d[1])).unwrap();
        assert_eq!(j["device"], "r1");
        assert_eq!(j["online"], false);
        assert_eq!(j["safe_mode"], true);
        assert!(j["version"].is_null() && j["rssi_dbm"].is_null());
    }
}
