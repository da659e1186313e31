//! The ESP-NOW centrals that forward to MQTT: `scale_manager` (battery scales) and `tnowc` (the
//! link test pair's central). The link itself runs as a task beside the runtime
//! (`hearth_runtime::link::run_central`); this profile drains what it accepted.
//!
//! Payloads follow the reference convention, UTF-8 `"<topic>\n<value>"` with exactly one
//! newline. Differences from the reference (ref-profiles §5, §9, §13.12/13):
//!
//! - The topic's last segment is what counts (`stat/<anything>/Weight`), not the literal
//!   `stat/LPScale/Weight`, so a scale can be renamed.
//! - Every sender also gets its own topics, `stat/<name>/<SENDER>/<Leaf>` with `SENDER` its
//!   address as 12 hex digits, so several scales never overwrite each other. The shared
//!   `stat/<name>/<Leaf>` (last value from any sender) stays for existing dashboards.
//! - The weight keeps the precision it was sent with instead of being re-printed with three
//!   decimals (the reference invents two digits).
//! - `tnowc` forwards both `Value` and the `YourRSSI` its own peripheral really sends (the
//!   reference pair never matched), and publishes the RSSI of each sender it heard.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::rng::{Rng, SplitMix64};
use hearth_core::{Millis, SECOND};

use hearth_profile::link::{CentralPort, Received};

/// How often the profile drains the link (the bound on forwarding latency).
const DRAIN_EVERY: Millis = 200;
/// Most senders given their own topics.
pub const MAX_SENDERS: usize = 16;
/// tnowc: back-data period, plus up to the same again as fudge.
const TNOWC_BACKDATA_EVERY: Millis = 60 * SECOND;

/// Which central this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Forwards `Weight` and `Malfunction`.
    ScaleManager,
    /// Forwards `Value` (and `YourRSSI`), sends RSSI back-data.
    TNowC,
}

impl Flavor {
    fn leaves(self) -> &'static [&'static str] {
        match self {
            Flavor::ScaleManager => &["Weight", "Malfunction"],
            Flavor::TNowC => &["Value", "RSSI"],
        }
    }
}

struct Sender {
    mac: [u8; 6],
    ids: Vec<PubId>,
    rssi: i8,
}

/// A forwarding central.
pub struct Forwarder<'p> {
    flavor: Flavor,
    port: &'p CentralPort,
    shared: Vec<PubId>,
    senders: Vec<Sender>,
    next_work: Millis,
    next_backdata: Millis,
    last_rssi: Option<i8>,
    rng: SplitMix64,
}

/// Why a payload was not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// Not UTF-8, or not exactly `topic\nvalue`.
    Malformed,
    /// A topic this central does not forward.
    UnknownTopic(String),
    /// The value does not parse for its topic.
    BadValue(String),
}

impl core::fmt::Display for Reject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Reject::Malformed => f.write_str("payload is not UTF-8 \"topic\\nvalue\""),
            Reject::UnknownTopic(t) => write!(f, "unknown topic {t:?}"),
            Reject::BadValue(v) => write!(f, "bad value {v:?}"),
        }
    }
}

/// Parses a payload into (leaf index, value text) for `flavor`.
pub fn parse_payload(flavor: Flavor, payload: &[u8]) -> Result<(usize, String), Reject> {
    let text = core::str::from_utf8(payload).map_err(|_| Reject::Malformed)?;
    let mut parts = text.split('\n');
    let (Some(topic), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Reject::Malformed);
    };
    let leaf = topic.rsplit('/').next().unwrap_or(topic);
    if !topic.starts_with("stat/") {
        return Err(Reject::UnknownTopic(topic.into()));
    }
    let value = value.trim();
    match (flavor, leaf) {
        (Flavor::ScaleManager, "Weight") => match hearth_core::decimal::parse_f32(value) {
            // A peer that prints a tiny negative reading as "-0.00" is forwarded as "0.00".
            Some(0.0) => Ok((0, value.trim_start_matches('-').into())),
            Some(w) if w.is_finite() => Ok((0, value.into())),
            _ => Err(Reject::BadValue(value.into())),
        },
        (Flavor::ScaleManager, "Malfunction") => match value.parse::<i32>() {
            Ok(m) => Ok((1, format!("{m}"))),
            Err(_) => Err(Reject::BadValue(value.into())),
        },
        (Flavor::TNowC, "Value" | "YourRSSI") => Ok((0, value.into())),
        _ => Err(Reject::UnknownTopic(topic.into())),
    }
}

/// An on-demand item published retained (it holds the last value).
fn retained(item: &str) -> PubSpec {
    PubSpec::on_demand(item).retained()
}

fn leaf_entity(flavor: Flavor, item: &str, leaf: &str, name: &str) -> Entity {
    match (flavor, leaf) {
        (Flavor::ScaleManager, "Weight") => {
            Entity::sensor(item, name, Some("weight"), Some("kg"), Some("measurement"))
        }
        (_, "RSSI") => Entity {
            diagnostic: true,
            ..Entity::sensor(
                item,
                name,
                Some("signal_strength"),
                Some("dBm"),
                Some("measurement"),
            )
        },
        (_, "Malfunction") => Entity::diagnostic(item, name),
        _ => Entity::sensor(item, name, None, None, None),
    }
}

fn hex12(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect()
}

impl<'p> Forwarder<'p> {
    /// A forwarder draining `port`.
    pub fn new(flavor: Flavor, port: &'p CentralPort, seed: u64, now: Millis) -> Self {
        let mut rng = SplitMix64::new(seed);
        let first = now + TNOWC_BACKDATA_EVERY + rng.below(TNOWC_BACKDATA_EVERY);
        Forwarder {
            flavor,
            port,
            shared: Vec::new(),
            senders: Vec::new(),
            next_work: now,
            next_backdata: first,
            last_rssi: None,
            rng,
        }
    }

    fn sender(&mut self, mac: [u8; 6], pubs: &mut Publications, now: Millis) -> Option<usize> {
        if let Some(i) = self.senders.iter().position(|s| s.mac == mac) {
            return Some(i);
        }
        if self.senders.len() >= MAX_SENDERS {
            return None;
        }
        let hex = hex12(&mac);
        let ids = self
            .flavor
            .leaves()
            .iter()
            .map(|leaf| pubs.register(retained(&format!("{hex}/{leaf}")), now))
            .collect();
        self.senders.push(Sender { mac, ids, rssi: 0 });
        pubs.log(format!("espnow: new sender {hex}"));
        Some(self.senders.len() - 1)
    }

    fn forward(&mut self, r: Received, pubs: &mut Publications, now: Millis) {
        let (leaf, value) = match parse_payload(self.flavor, &r.payload) {
            Ok(x) => x,
            Err(e) => {
                pubs.log(format!("espnow: from {}: {e}", hex12(&r.from)));
                return;
            }
        };
        self.last_rssi = Some(r.rssi);
        if let Some(&id) = self.shared.get(leaf) {
            pubs.offer(id, now, Some(value.clone()), true);
        }
        let Some(i) = self.sender(r.from, pubs, now) else {
            pubs.log(format!(
                "espnow: more than {MAX_SENDERS} senders; {} only on the shared topic",
                hex12(&r.from)
            ));
            return;
        };
        let s = &mut self.senders[i];
        s.rssi = r.rssi;
        if let Some(&id) = s.ids.get(leaf) {
            pubs.offer(id, now, Some(value), true);
        }
        if self.flavor == Flavor::TNowC {
            if let Some(&id) = s.ids.get(1) {
                pubs.offer(id, now, Some(format!("{}", r.rssi)), true);
            }
        }
    }
}

impl hearth_profile::Profile for Forwarder<'_> {
    fn name(&self) -> &'static str {
        match self.flavor {
            Flavor::ScaleManager => "scale_manager",
            Flavor::TNowC => "tnowc",
        }
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        let leaves: &[&str] = match self.flavor {
            Flavor::ScaleManager => &["Weight", "Malfunction"],
            Flavor::TNowC => &["Value"],
        };
        self.shared = leaves
            .iter()
            .map(|l| pubs.register(retained(l), now))
            .collect();
    }

    fn next_work(&self) -> Millis {
        self.next_work
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        self.next_work = now + DRAIN_EVERY;
        while let Some(line) = self.port.take_log() {
            pubs.log(line);
        }
        while let Some(r) = self.port.take() {
            self.forward(r, pubs, now);
        }
        if self.flavor == Flavor::TNowC && now >= self.next_backdata {
            self.next_backdata = now + TNOWC_BACKDATA_EVERY + self.rng.below(TNOWC_BACKDATA_EVERY);
            let rssi = self.last_rssi.map_or(1001, i32::from);
            let payload = format!("stat/TNowP/YourRSSI\n{rssi}");
            if !self.port.send_backdata(payload.into_bytes()) {
                pubs.log("espnow: back-data queue full");
            }
        }
    }

    fn entities_version(&self) -> usize {
        self.senders.len()
    }

    fn entities(&self) -> Vec<Entity> {
        let shared: &[&str] = match self.flavor {
            Flavor::ScaleManager => &["Weight", "Malfunction"],
            Flavor::TNowC => &["Value"],
        };
        let mut v: Vec<Entity> = shared
            .iter()
            .map(|l| leaf_entity(self.flavor, l, l, l))
            .collect();
        for s in &self.senders {
            let hex = hex12(&s.mac);
            for leaf in self.flavor.leaves() {
                v.push(leaf_entity(
                    self.flavor,
                    &format!("{hex}/{leaf}"),
                    leaf,
                    &format!("{hex} {leaf}"),
                ));
            }
        }
        v
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        let _ = id;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_central_s_device_config_stays_within_a_bound_of_the_chip_s_heap() {
        // The worst case of device-based discovery: every sender slot taken. The config is
        // built whole in RAM, in one allocation of its size (12,708 bytes for these, measured
        // 2026-12-07); the runtime adds its own ~20 entities (core items, diagnostics,
        // buttons, about 3.7 KB) to these.
        let port = CentralPort::new();
        let mut pubs = Publications::new(4);
        let mut f = Forwarder::new(Flavor::ScaleManager, &port, 1, 0);
        for i in 0..=MAX_SENDERS as u8 {
            f.sender([2, 0, 0, 0, 0, i], &mut pubs, 0);
        }
        let entities = hearth_profile::Profile::entities(&f);
        assert_eq!(entities.len(), 2 + 2 * MAX_SENDERS);
        let device = hearth_core::discovery::DeviceInfo {
            name: "scale-manager-1".into(),
            id: "02A1B2C3D4E5".into(),
            model: "scale_manager".into(),
            version: "0.1.0".into(),
        };
        let topics = hearth_core::topics::Topics::new(&device.name);
        let len = hearth_core::discovery::device_payload(&device, &entities, &topics).len();
        std::println!(
            "scale_manager, {MAX_SENDERS} senders: {} entities, {len} bytes",
            entities.len()
        );
        assert!(len < 14 * 1024, "{len}");
    }

    #[test]
    fn payloads_parse_as_the_reference_sends_them() {
        let sm = Flavor::ScaleManager;
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\n12.5"),
            Ok((0, "12.5".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\n-0.00"),
            Ok((0, "0.00".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\n-0.25"),
            Ok((0, "-0.25".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/Kitchen/Malfunction\n8"),
            Ok((1, "8".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight"),
            Err(Reject::Malformed)
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\n1\n2"),
            Err(Reject::Malformed)
        );
        assert_eq!(
            parse_payload(sm, &[0xff, b'\n', b'1']),
            Err(Reject::Malformed)
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\nheavy"),
            Err(Reject::BadValue("heavy".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Weight\nNaN"),
            Err(Reject::BadValue("NaN".into()))
        );
        assert_eq!(
            parse_payload(sm, b"stat/LPScale/Value\n1"),
            Err(Reject::UnknownTopic("stat/LPScale/Value".into()))
        );
        assert_eq!(
            parse_payload(sm, b"cmnd/LPScale/Weight\n1"),
            Err(Reject::UnknownTopic("cmnd/LPScale/Weight".into()))
        );
        let t = Flavor::TNowC;
        assert_eq!(
            parse_payload(t, b"stat/TNow/Value\nhi"),
            Ok((0, "hi".into()))
        );
        assert_eq!(
            parse_payload(t, b"stat/TNow/YourRSSI\n-61"),
            Ok((0, "-61".into()))
        );
    }
}
