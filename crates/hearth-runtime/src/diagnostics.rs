//! The device's health as Home Assistant diagnostic entities: Wi-Fi signal, IP address, free
//! and lowest free heap, the connection-loss counters, the firmware version and slot, and
//! whether it runs in safe mode. Each is a retained item of its own (`stat/<name>/RSSI`, …),
//! sampled at most once a minute and published only when it changed, so a device whose
//! numbers hold still sends nothing.
//!
//! The signal entity exists only on a wireless interface and the heap entities only on a
//! board that reports its heap (the chip; not the simulator, which runs on the host's
//! allocator): an entity that could never have a value is not announced.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hearth_core::discovery::{Component, Entity};
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE};
use hearth_platform::{Board, Network};

/// How often the values are sampled.
pub const SAMPLE_EVERY: Millis = MINUTE;

/// What a sample reads, apart from the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// dBm, while associated.
    pub rssi: Option<i8>,
    /// The interface's address.
    pub ip: Option<core::net::Ipv4Addr>,
    /// Free bytes and the fewest since boot.
    pub heap: Option<hearth_platform::HeapStats>,
    /// Network losses (`connlost`) and MQTT session losses (`mqttlost`) since the counters
    /// were last reset.
    pub connlost: u32,
    /// MQTT session losses.
    pub mqttlost: u32,
}

/// The diagnostic items and when they are sampled next.
pub struct Diagnostics {
    rssi: PubId,
    ip: PubId,
    heap_free: PubId,
    heap_min: PubId,
    connlost: PubId,
    mqttlost: PubId,
    next: Millis,
}

fn retained(item: &str) -> PubSpec {
    PubSpec::on_demand(item).retained()
}

fn diagnostic(entity: Entity) -> Entity {
    Entity {
        diagnostic: true,
        ..entity
    }
}

impl Diagnostics {
    /// Register the items, and publish the ones fixed for this boot: the firmware version,
    /// the slot it runs from (none on a board without update slots), and safe mode.
    pub fn new(
        pubs: &mut Publications,
        now: Millis,
        version: &str,
        slot: Option<u8>,
        safe_mode: bool,
    ) -> Self {
        let fixed = [
            ("Version", Some(version.to_string())),
            ("Slot", slot.map(|s| s.to_string())),
            (
                "SafeMode",
                Some(String::from(if safe_mode { "ON" } else { "OFF" })),
            ),
        ];
        for (item, value) in fixed {
            let id = pubs.register(retained(item), now);
            pubs.offer(id, now, value, true);
        }
        Diagnostics {
            rssi: pubs.register(retained("RSSI"), now),
            ip: pubs.register(retained("IP"), now),
            heap_free: pubs.register(retained("HeapFree"), now),
            heap_min: pubs.register(retained("HeapMin"), now),
            connlost: pubs.register(retained("ConnLost"), now),
            mqttlost: pubs.register(retained("MqttLost"), now),
            next: now,
        }
    }

    /// Sample at the next turn of the loop (a session just came up).
    pub fn sample_soon(&mut self) {
        self.next = 0;
    }

    /// Is a sample due?
    pub fn due(&self, now: Millis) -> bool {
        now >= self.next
    }

    /// Offer `sample`'s values (each is published if it changed); the next one is due in
    /// [`SAMPLE_EVERY`].
    pub fn offer(&mut self, pubs: &mut Publications, now: Millis, sample: &Sample) {
        self.next = now + SAMPLE_EVERY;
        let heap = sample.heap;
        let values = [
            (self.rssi, sample.rssi.map(|r| r.to_string())),
            (self.ip, sample.ip.map(|a| format!("{a}"))),
            (self.heap_free, heap.map(|h| h.free.to_string())),
            (self.heap_min, heap.map(|h| h.min_free.to_string())),
            (self.connlost, Some(sample.connlost.to_string())),
            (self.mqttlost, Some(sample.mqttlost.to_string())),
        ];
        for (id, value) in values {
            // An unknown value (no association yet) keeps the last one shown.
            if value.is_some() {
                pubs.offer(id, now, value, false);
            }
        }
    }

    /// Read a sample from the network and the board (the counters are the caller's).
    pub fn sample<N: Network, B: Board>(net: &mut N, board: &B) -> Sample {
        Sample {
            rssi: net.rssi(),
            ip: net.address(),
            heap: board.heap(),
            ..Sample::default()
        }
    }
}

/// The Home Assistant entities of the diagnostics: the signal only on a wireless interface,
/// the heap only where the board reports it.
pub fn entities(wireless: bool, heap: bool) -> Vec<Entity> {
    let measured = |item: &str, name: &str, class: &'static str, unit: &'static str| {
        diagnostic(Entity::sensor(
            item,
            name,
            Some(class),
            Some(unit),
            Some("measurement"),
        ))
    };
    let count = |item: &str, name: &str| {
        diagnostic(Entity::sensor(
            item,
            name,
            None,
            None,
            Some("total_increasing"),
        ))
    };
    let mut out = Vec::new();
    if wireless {
        out.push(measured("RSSI", "Wi-Fi signal", "signal_strength", "dBm"));
    }
    out.push(Entity::diagnostic("IP", "IP address"));
    if heap {
        out.push(measured("HeapFree", "Free heap", "data_size", "B"));
        out.push(measured("HeapMin", "Lowest free heap", "data_size", "B"));
    }
    out.push(count("ConnLost", "Network losses"));
    out.push(count("MqttLost", "MQTT session losses"));
    out.push(Entity::diagnostic("Version", "Firmware version"));
    out.push(Entity::diagnostic("Slot", "Firmware slot"));
    out.push(Entity {
        item: "SafeMode".into(),
        name: "Safe mode".into(),
        component: Component::BinarySensor {
            device_class: Some("problem"),
            on: "ON",
            off: "OFF",
        },
        diagnostic: true,
        value_template: None,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_platform::HeapStats;

    #[test]
    fn values_are_published_when_they_change_and_kept_while_unknown() {
        let mut pubs = Publications::new(8);
        let mut d = Diagnostics::new(&mut pubs, 0, "0.3.0", Some(1), true);
        let mut fixed = Vec::new();
        while let Some(o) = pubs.pop() {
            assert!(o.retain, "{}", o.item);
            fixed.push((o.item, o.payload));
        }
        let want = [("Version", "0.3.0"), ("Slot", "1"), ("SafeMode", "ON")];
        assert_eq!(fixed, want.map(|(i, v)| (String::from(i), String::from(v))));
        assert!(d.due(0));
        let sample = Sample {
            rssi: Some(-61),
            ip: Some(core::net::Ipv4Addr::new(192, 168, 1, 23)),
            heap: Some(HeapStats {
                free: 81_234,
                min_free: 60_211,
            }),
            connlost: 2,
            mqttlost: 5,
        };
        d.offer(&mut pubs, 0, &sample);
        let mut sent: Vec<(String, String)> = Vec::new();
        while let Some(o) = pubs.pop() {
            assert!(o.retain, "{}", o.item);
            sent.push((o.item, o.payload));
        }
        let want = [
            ("RSSI", "-61"),
            ("IP", "192.168.1.23"),
            ("HeapFree", "81234"),
            ("HeapMin", "60211"),
            ("ConnLost", "2"),
            ("MqttLost", "5"),
        ];
        assert_eq!(sent, want.map(|(i, v)| (String::from(i), String::from(v))));
        assert!(!d.due(SAMPLE_EVERY - 1));
        assert!(d.due(SAMPLE_EVERY));
        // Nothing changed but the signal, and the address is unknown for a moment: only the
        // signal goes out, and the address shown stays.
        let moved = Sample {
            rssi: Some(-70),
            ip: None,
            ..sample
        };
        d.offer(&mut pubs, SAMPLE_EVERY, &moved);
        let mut sent = Vec::new();
        while let Some(o) = pubs.pop() {
            sent.push((o.item, o.payload));
        }
        assert_eq!(sent, [(String::from("RSSI"), String::from("-70"))]);
        assert_eq!(pubs.last(d.ip), Some("192.168.1.23"));
    }

    #[test]
    fn entities_exist_only_where_a_value_can() {
        let names = |w, h| -> Vec<String> { entities(w, h).into_iter().map(|e| e.item).collect() };
        let all = names(true, true);
        assert_eq!(
            all,
            [
                "RSSI", "IP", "HeapFree", "HeapMin", "ConnLost", "MqttLost", "Version", "Slot",
                "SafeMode"
            ]
        );
        let wired_sim = names(false, false);
        assert!(!wired_sim
            .iter()
            .any(|i| i == "RSSI" || i.starts_with("Heap")));
        assert!(entities(true, true).iter().all(|e| e.diagnostic));
    }
}
