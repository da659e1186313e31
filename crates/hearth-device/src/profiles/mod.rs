//! Appliance profiles: each declares its published items and commands and does its own
//! hardware work; the runtime does everything else.

use alloc::string::String;

use hearth_core::publish::{PubId, Publications};
use hearth_core::Millis;

pub mod energy;
mod error;
pub mod forwarder;
pub mod h2o;
pub mod relay;
pub mod rx433;
pub mod safe;
pub mod scale_filter;
pub mod scale_sensor;
pub mod switch;
pub mod termo;
pub mod tnowp;
pub mod weather;

use hearth_config::{Config, ConfigErrors, KeySpec};

pub use error::{ApplianceError, PlanError, SettingError};

/// How an appliance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// The MQTT runtime, with the appliance as its profile.
    Mqtt,
    /// The MQTT runtime with an ESP-NOW central beside it that forwards what its peripherals
    /// send.
    Central(forwarder::Flavor),
    /// The battery ESP-NOW peripheral runtime: no Wi-Fi, no MQTT.
    Peripheral,
}

/// One appliance as every part of Hearth knows it: the parser (its name and keys), the plan
/// (how it runs), the chip's image rules (whether a `lean` image may leave it out), and the
/// simulator and the firmware, which build its hardware under the same name.
#[derive(Debug, Clone, Copy)]
pub struct Appliance {
    /// The value of the `profile` key.
    pub name: &'static str,
    /// How it runs.
    pub runs: Runs,
    /// Its own keys in `config.txt` (beyond Hearth's, the board's and the update keys).
    pub keys: &'static [KeySpec],
    /// The firmware's cargo feature that builds it into a `lean` image; `None`: every image
    /// has it.
    pub lean_feature: Option<&'static str>,
}

const fn mqtt(name: &'static str, keys: &'static [KeySpec], feature: &'static str) -> Appliance {
    Appliance {
        name,
        runs: Runs::Mqtt,
        keys,
        lean_feature: Some(feature),
    }
}

const fn always(name: &'static str, runs: Runs) -> Appliance {
    Appliance {
        name,
        runs,
        keys: &[],
        lean_feature: None,
    }
}

/// Every appliance. Adding one means its module, its entry here, its wiring in the simulator
/// and the firmware, and its chip models in `hearth-simchips`.
pub const APPLIANCES: &[Appliance] = &[
    always("weather", Runs::Mqtt),
    mqtt("energy", energy::CONFIG_KEYS, "appliance-energy"),
    mqtt("h2o", h2o::CONFIG_KEYS, "appliance-h2o"),
    mqtt("relay", relay::CONFIG_KEYS, "appliance-relay"),
    mqtt("rx433", rx433::CONFIG_KEYS, "appliance-rx433"),
    always(
        "scale_manager",
        Runs::Central(forwarder::Flavor::ScaleManager),
    ),
    always("scale_sensor", Runs::Peripheral),
    mqtt("switch", switch::CONFIG_KEYS, "appliance-switch"),
    mqtt("termo", termo::CONFIG_KEYS, "appliance-termo"),
    always("tnowc", Runs::Central(forwarder::Flavor::TNowC)),
    always("tnowp", Runs::Peripheral),
];

/// The appliance called `name`.
pub fn appliance(name: &str) -> Option<&'static Appliance> {
    APPLIANCES.iter().find(|a| a.name == name)
}

const NAMES: [&str; APPLIANCES.len()] = {
    let mut out = [""; APPLIANCES.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = APPLIANCES[i].name;
        i += 1;
    }
    out
};

/// The appliances' names: the values `profile` accepts.
pub const PROFILES: &[&str] = &NAMES;

const OPTIONAL: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < APPLIANCES.len() {
        if APPLIANCES[i].lean_feature.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
};

const FULL: [&str; OPTIONAL] = {
    let mut out = [""; OPTIONAL];
    let (mut i, mut n) = (0, 0);
    while i < APPLIANCES.len() {
        if APPLIANCES[i].lean_feature.is_some() {
            out[n] = APPLIANCES[i].name;
            n += 1;
        }
        i += 1;
    }
    out
};

/// The appliances a `lean` image may leave out, all of them built in: what a full image
/// contains of them, and what the host tools assume of the image a config is checked for.
pub const FULL_IMAGE: &[&str] = &FULL;

/// Keys the board and the profiles add to `config.txt` beyond Hearth's own: board wiring
/// (status LED, W5500 Ethernet on SPI for `ssid (wired)`) and the weather station's I2C pins.
/// All are optional GPIO numbers (or a 0/1 flag); the firmware checks them against its chip,
/// the simulator ignores them.
pub const CONFIG_KEYS: &[KeySpec] = &[
    gpio_key("led"),
    KeySpec {
        name: "ledinvert",
        required: false,
        validator: flag,
    },
    gpio_key("ethsck"),
    gpio_key("ethmosi"),
    gpio_key("ethmiso"),
    gpio_key("ethcs"),
    gpio_key("ethint"),
    gpio_key("ethrst"),
    gpio_key("i2csda"),
    gpio_key("i2cscl"),
    gpio_key("hx711sck"),
    gpio_key("hx711dout"),
    KeySpec {
        name: "calibration_a",
        required: false,
        validator: number,
    },
    KeySpec {
        name: "calibration_b",
        required: false,
        validator: number,
    },
    KeySpec {
        name: "sleep",
        required: false,
        validator: seconds,
    },
];

fn number(value: &str) -> Result<(), &'static str> {
    match value.parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(()),
        _ => Err("expected a number, e.g. 21530.5 or -8.2e4"),
    }
}

fn seconds(value: &str) -> Result<(), &'static str> {
    match value.parse::<u32>() {
        Ok(s) if (10..=86_400).contains(&s) => Ok(()),
        _ => Err("expected whole seconds 10..=86400"),
    }
}

const fn gpio_key(name: &'static str) -> KeySpec {
    KeySpec {
        name,
        required: false,
        validator: gpio_number,
    }
}

/// Validates a GPIO number.
pub fn gpio_number(value: &str) -> Result<(), &'static str> {
    match value.parse::<u8>() {
        Ok(n) if n <= 48 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err("expected a GPIO number 0..=48"),
    }
}

fn flag(value: &str) -> Result<(), &'static str> {
    match value {
        "0" | "1" => Ok(()),
        _ => Err("expected 0 or 1"),
    }
}

/// A command payload as log lines show it: quoted, escaped, cut to 32 characters.
pub(crate) fn shown(payload: &str) -> alloc::string::String {
    let mut text: alloc::string::String = payload.chars().take(32).collect();
    if payload.chars().nth(32).is_some() {
        text.push('…');
    }
    alloc::format!("{text:?}")
}

/// A GPIO number given for `key`, if any (values were validated by [`parse_config`]).
pub fn gpio(config: &Config, key: &str) -> Option<u8> {
    config
        .profile_settings
        .get(key)
        .and_then(|v| v.parse().ok())
}

/// Parse and validate a `config.txt` for any profile of this build. The simulator, the firmware
/// and `hearth flash` all use this, so one file means the same thing in both worlds.
pub fn parse_config(text: &str) -> Result<Config, ConfigErrors> {
    hearth_config::parse_with(text, PROFILES, &config_keys())
}

/// Every key beyond Hearth's own: the board's ([`CONFIG_KEYS`]) and each appliance's.
pub fn config_keys() -> alloc::vec::Vec<KeySpec> {
    let mut keys = alloc::vec::Vec::from(CONFIG_KEYS);
    for a in APPLIANCES {
        keys.extend_from_slice(a.keys);
    }
    keys.extend_from_slice(crate::update::CONFIG_KEYS);
    keys
}

/// An appliance.
#[allow(async_fn_in_trait)]
pub trait Profile {
    /// The name used by the `profile` config key.
    fn name(&self) -> &'static str;
    /// Register the published items.
    fn register(&mut self, pubs: &mut Publications, now: Millis);
    /// When [`work`](Self::work) is next due.
    fn next_work(&self) -> Millis;
    /// Do the due hardware work (sensor reads). The runtime bounds its duration. The profile
    /// may [`expedite`](Publications::expedite) items whose value just became known.
    async fn work(&mut self, now: Millis, pubs: &mut Publications);
    /// The current value of a registered item; `None` = nothing to publish.
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String>;
    /// A command on `cmnd/<name>/<leaf>`; returns false when the profile does not know it.
    async fn command(&mut self, _leaf: &str, _payload: &str, _pubs: &mut Publications) -> bool {
        false
    }
    /// What Home Assistant should show of this appliance (its discovery entities). Items
    /// registered later (e.g. per ESP-NOW sender) may be added; the runtime asks again at
    /// every connection and whenever [`entities_version`](Self::entities_version) changes.
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity> {
        alloc::vec::Vec::new()
    }
    /// Changes whenever [`entities`](Self::entities) would return a different set. Cheap: the
    /// runtime reads it every loop turn. Appliances whose entities never change keep the
    /// default.
    fn entities_version(&self) -> usize {
        0
    }
    /// Whether the appliance needs a reboot to recover (its hardware stayed broken too long),
    /// and why, for the log. The runtime checks after every [`work`](Self::work).
    fn wants_reboot(&self) -> Option<&'static str> {
        None
    }
    /// The broker session came up (`true`, with the interface's address if the network knows
    /// it) or was lost (`false`); for displays showing it.
    fn online(&mut self, _online: bool, _address: Option<core::net::Ipv4Addr>) {}
}

/// A future an appliance returns through [`DynProfile`], boxed so that the trait is
/// object-safe.
pub type ProfileFuture<'a, T> =
    core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = T> + 'a>>;

/// The object-safe face of every [`Profile`], for the runtime: `hearth_device::run` drives a
/// `&mut dyn DynProfile`, so the runtime's code is compiled **once** per image instead of once
/// per appliance (eleven copies of about 16 KB each on the ESP32-C3). The cost is one small
/// heap allocation per [`work`](Profile::work) and per [`command`](Profile::command) call, freed
/// when it completes. Implemented for every [`Profile`]; appliances never implement it
/// themselves.
pub trait DynProfile {
    /// [`Profile::name`].
    fn name(&self) -> &'static str;
    /// [`Profile::register`].
    fn register(&mut self, pubs: &mut Publications, now: Millis);
    /// [`Profile::next_work`].
    fn next_work(&self) -> Millis;
    /// [`Profile::work`], boxed.
    fn work<'a>(&'a mut self, now: Millis, pubs: &'a mut Publications) -> ProfileFuture<'a, ()>;
    /// [`Profile::evaluate`].
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String>;
    /// [`Profile::command`], boxed.
    fn command<'a>(
        &'a mut self,
        leaf: &'a str,
        payload: &'a str,
        pubs: &'a mut Publications,
    ) -> ProfileFuture<'a, bool>;
    /// [`Profile::entities`].
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity>;
    /// [`Profile::entities_version`].
    fn entities_version(&self) -> usize;
    /// [`Profile::wants_reboot`].
    fn wants_reboot(&self) -> Option<&'static str>;
    /// [`Profile::online`].
    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>);
}

impl<P: Profile> DynProfile for P {
    fn name(&self) -> &'static str {
        Profile::name(self)
    }
    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        Profile::register(self, pubs, now)
    }
    fn next_work(&self) -> Millis {
        Profile::next_work(self)
    }
    fn work<'a>(&'a mut self, now: Millis, pubs: &'a mut Publications) -> ProfileFuture<'a, ()> {
        alloc::boxed::Box::pin(Profile::work(self, now, pubs))
    }
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String> {
        Profile::evaluate(self, id, now)
    }
    fn command<'a>(
        &'a mut self,
        leaf: &'a str,
        payload: &'a str,
        pubs: &'a mut Publications,
    ) -> ProfileFuture<'a, bool> {
        alloc::boxed::Box::pin(Profile::command(self, leaf, payload, pubs))
    }
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity> {
        Profile::entities(self)
    }
    fn entities_version(&self) -> usize {
        Profile::entities_version(self)
    }
    fn wants_reboot(&self) -> Option<&'static str> {
        Profile::wants_reboot(self)
    }
    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>) {
        Profile::online(self, online, address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_appliance_table_is_the_one_list_of_names_keys_and_lean_features() {
        for (i, a) in APPLIANCES.iter().enumerate() {
            assert!(
                APPLIANCES[..i].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            assert_eq!(appliance(a.name).map(|b| b.name), Some(a.name));
            assert_eq!(PROFILES[i], a.name);
            let keys = config_keys();
            for k in a.keys {
                assert!(
                    keys.iter().any(|j| j.name == k.name),
                    "{}: {}",
                    a.name,
                    k.name
                );
            }
        }
        assert_eq!(PROFILES.len(), APPLIANCES.len());
        assert_eq!(
            FULL_IMAGE,
            ["energy", "h2o", "relay", "rx433", "switch", "termo"]
        );
        assert!(appliance("tank").is_none());
        // How each runs, as the plan decides it.
        let runs = |p: &str| appliance(p).unwrap().runs;
        assert_eq!(runs("weather"), Runs::Mqtt);
        assert_eq!(runs("tnowc"), Runs::Central(forwarder::Flavor::TNowC));
        assert_eq!(runs("scale_sensor"), Runs::Peripheral);
    }

    const BASE: &str = "profile weather\nssid (wired)\nmqttbroker h\nmqttname d\n";

    fn planned(text: &str) -> Result<Plan, alloc::string::String> {
        let c = parse_config(text).map_err(|e| alloc::format!("{e}"))?;
        plan(&c).map_err(|e| alloc::format!("{e}"))
    }

    #[test]
    fn the_documented_examples_parse_and_plan() {
        use crate::link::LinkSettings;
        use hearth_netnow::link::Version;
        let central = |p: Plan| match p {
            Plan::Mqtt {
                central: Some((flavor, link)),
                ..
            } => (flavor, link),
            other => panic!("{other:?}"),
        };
        let (f, l) =
            central(planned(include_str!("../../../../docs/examples/scale_manager.txt")).unwrap());
        assert_eq!(
            (f, l.version, l.channel),
            (forwarder::Flavor::ScaleManager, Version::V3, Some(6))
        );
        let (f, l) = central(planned(include_str!("../../../../docs/examples/tnowc.txt")).unwrap());
        assert_eq!((f, l.channel), (forwarder::Flavor::TNowC, Some(1)));
        let (_, l): (_, LinkSettings) = central(
            planned(include_str!(
                "../../../../docs/examples/reference_v2_scale_manager.txt"
            ))
            .unwrap(),
        );
        assert_eq!(l.version, Version::V2);
        match planned(include_str!("../../../../docs/examples/scale_sensor.txt")).unwrap() {
            Plan::Peripheral {
                scale: Some(s),
                link,
            } => {
                assert_eq!((s.a, s.b, s.sleep), (21530.5, -84211.0, 3_600_000));
                assert_eq!(s.name, "BathScale");
                assert_eq!(link.channel, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            planned(include_str!("../../../../docs/examples/tnowp.txt")).unwrap(),
            Plan::Peripheral { scale: None, .. }
        ));
    }

    #[test]
    fn appliance_rules_are_clear_errors() {
        const PSK: &str = "espnowgroup g\nespnowpsk 0123456789abcdef\n";
        for (text, expect) in [
            (
                alloc::format!("profile scale_sensor\nssid Home\nmqttbroker b\nmqttname s\n{PSK}calibration_a 1\ncalibration_b 0\n"),
                "ssid (none)",
            ),
            (
                alloc::format!("profile scale_sensor\nssid (none)\nmqttname s\n{PSK}calibration_b 0\n"),
                "calibration_a",
            ),
            (
                alloc::format!("profile scale_sensor\nssid (none)\nmqttname s\n{PSK}calibration_a 0\ncalibration_b 0\n"),
                "\"calibration_a\" must be a number other than 0",
            ),
            (
                alloc::string::String::from(
                    "profile tnowp\nssid (none)\nmqttname s\nespnowpsk 0123456789abcdef\n",
                ),
                "espnowgroup",
            ),
            (
                alloc::format!("profile scale_manager\nssid (wired)\nmqttbroker b\nmqttname m\n{PSK}"),
                "espnowchannel",
            ),
            (
                alloc::format!("profile tnowc\nssid (none)\nmqttname m\n{PSK}espnowchannel 3\n"),
                "needs MQTT",
            ),
        ] {
            let e = planned(&text).expect_err(&text);
            assert!(e.contains(expect), "{text}: {e}");
        }
        let bad = parse_config(&alloc::format!(
            "profile scale_sensor\nssid (none)\nmqttname s\n{PSK}calibration_a x\ncalibration_b 0\nsleep 5\n"
        ))
        .expect_err("bad values");
        let text = alloc::format!("{}", bad.located("config.txt"));
        assert!(
            text.contains("config.txt:6:") && text.contains("config.txt:8:"),
            "{text}"
        );
    }

    #[test]
    fn board_keys_are_accepted_and_read() {
        let text = alloc::format!(
            "{BASE}led 8\nledinvert 1\nethsck 6\nethmosi 7\nethmiso 2\nethcs 10\nethint 3\nethrst 4\n"
        );
        let c = parse_config(&text).expect("valid");
        assert_eq!(gpio(&c, "led"), Some(8));
        assert_eq!(gpio(&c, "ethcs"), Some(10));
        assert_eq!(gpio(&c, "ethsck"), Some(6));
        assert_eq!(gpio(&c, "i2csda"), None);
    }

    #[test]
    fn bad_board_values_name_their_line() {
        for (bad, expect) in [
            ("ledinvert 2", "0 or 1"),
            ("ethcs x", "GPIO number"),
            ("led 100", "GPIO number"),
        ] {
            let errs = parse_config(&alloc::format!("{BASE}{bad}\n")).expect_err(bad);
            let text = alloc::format!("{}", errs.located("config.txt"));
            assert!(
                text.contains("config.txt:5:") && text.contains(expect),
                "{text}"
            );
        }
    }
}

/// How a validated config is run: what both the simulator and the firmware start for it.
// Made once per boot and taken apart at once: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Plan {
    /// The MQTT runtime with a profile: `weather`, or a forwarding ESP-NOW central (`link` is
    /// then its link).
    Mqtt {
        /// Runtime settings.
        settings: crate::settings::Settings,
        /// The central's link, for `scale_manager` and `tnowc`.
        central: Option<(forwarder::Flavor, crate::link::LinkSettings)>,
    },
    /// A battery ESP-NOW peripheral without Wi-Fi or MQTT: `scale_sensor` (with its settings)
    /// or `tnowp`.
    Peripheral {
        /// Its link.
        link: crate::link::LinkSettings,
        /// The scale's settings, for `scale_sensor`.
        scale: Option<scale_sensor::ScaleSettings>,
    },
}

/// Decide how to run `config`, checking what its profile needs beyond the per-key rules (a
/// broker for the MQTT profiles, the ESP-NOW keys for the link ones, `ssid (none)` for the
/// battery ones, the scale's calibration).
pub fn plan(config: &Config) -> Result<Plan, PlanError> {
    use crate::link::LinkSettings;
    let link = |central: bool| LinkSettings::from_config(config, central).map_err(PlanError::Link);
    let p = config.profile.as_str();
    let Some(appliance) = appliance(p) else {
        return Err(PlanError::NotInBuild { profile: p.into() });
    };
    match appliance.runs {
        Runs::Peripheral => {
            if config.network != hearth_config::Network::None {
                return Err(PlanError::NeedsNoNetwork { profile: p.into() });
            }
            let scale = match p {
                "scale_sensor" => Some(scale_sensor::ScaleSettings::from_config(config).map_err(
                    |error| ApplianceError {
                        profile: p.into(),
                        error,
                    },
                )?),
                _ => None,
            };
            Ok(Plan::Peripheral {
                link: link(false)?,
                scale,
            })
        }
        runs => {
            let settings =
                crate::settings::Settings::from_config(config).map_err(PlanError::Runtime)?;
            let central = match runs {
                Runs::Central(flavor) => Some((flavor, link(true)?)),
                _ => None,
            };
            Ok(Plan::Mqtt { settings, central })
        }
    }
}
