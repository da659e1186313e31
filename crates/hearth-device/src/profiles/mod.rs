//! What a config runs: the composition of the appliances (`hearth-appliances`) with the
//! runtime. The parser for every key of this build ([`parse_config`]: Hearth's, the board's
//! ([`CONFIG_KEYS`]), each appliance's and the update keys), the [`plan`] that maps a valid
//! config to the runtime and the appliance it runs, and the safe-mode stand-in ([`safe`]).

mod error;
pub mod safe;

use hearth_appliances::{appliance, forwarder, Runs, APPLIANCES, PROFILES};
use hearth_config::{Config, ConfigErrors, KeySpec};
use hearth_profile::gpio_number;

pub use error::PlanError;

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
    match hearth_core::decimal::parse_f32(value) {
        Some(x) if x.is_finite() => Ok(()),
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

fn flag(value: &str) -> Result<(), &'static str> {
    match value {
        "0" | "1" => Ok(()),
        _ => Err("expected 0 or 1"),
    }
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
    keys.extend_from_slice(hearth_runtime::update::CONFIG_KEYS);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_appliances::FULL_IMAGE;
    use hearth_profile::gpio;

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
        use hearth_netnow::link::Version;
        use hearth_runtime::link::LinkSettings;
        let central = |p: Plan| match p {
            Plan::Mqtt {
                appliance: OnMqtt::Central(flavor, link),
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
                appliance: hearth_appliances::Peripheral::ScaleSensor(s),
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
            Plan::Peripheral {
                appliance: hearth_appliances::Peripheral::TNowP,
                ..
            }
        ));
    }

    #[test]
    fn every_appliance_plans_as_its_table_entry_says_it_runs() {
        use hearth_appliances::{Mqtt, Settings};
        let examples = [
            BASE,
            include_str!("../../../../docs/examples/energy.txt"),
            include_str!("../../../../docs/examples/h2o.txt"),
            include_str!("../../../../docs/examples/relay.txt"),
            include_str!("../../../../docs/examples/rx433.txt"),
            include_str!("../../../../docs/examples/scale_manager.txt"),
            include_str!("../../../../docs/examples/scale_sensor.txt"),
            include_str!("../../../../docs/examples/switch.txt"),
            include_str!("../../../../docs/examples/termo.txt"),
            include_str!("../../../../docs/examples/tnowc.txt"),
            include_str!("../../../../docs/examples/tnowp.txt"),
        ];
        let mut seen = alloc::vec::Vec::new();
        for text in examples {
            let config = parse_config(text).expect("a valid example");
            let entry = appliance(&config.profile).expect("an appliance");
            let settings = entry.settings(&config).expect("valid settings");
            assert_eq!(settings.runs(), entry.runs, "{}", entry.name);
            let planned = plan(&config).expect("plans");
            let agrees = match (&settings, &planned) {
                (
                    Settings::Mqtt(a),
                    Plan::Mqtt {
                        appliance: OnMqtt::Appliance(b),
                        ..
                    },
                ) => a == b,
                (
                    Settings::Central(a),
                    Plan::Mqtt {
                        appliance: OnMqtt::Central(b, _),
                        ..
                    },
                ) => a == b,
                (Settings::Peripheral(a), Plan::Peripheral { appliance: b, .. }) => a == b,
                _ => false,
            };
            assert!(agrees, "{}: {settings:?} but {planned:?}", entry.name);
            if let Settings::Mqtt(a) = &settings {
                assert_eq!(a.name(), entry.name);
            }
            seen.push(entry.name);
        }
        seen.sort_unstable();
        let mut all: alloc::vec::Vec<_> = APPLIANCES.iter().map(|a| a.name).collect();
        all.sort_unstable();
        assert_eq!(seen, all, "an example per appliance");
        // The relay example's settings are what the appliance's own parser makes of them.
        let relay = parse_config(include_str!("../../../../docs/examples/relay.txt")).unwrap();
        let Ok(Plan::Mqtt {
            appliance: OnMqtt::Appliance(Mqtt::Relay(r)),
            ..
        }) = plan(&relay)
        else {
            panic!("a relay plan")
        };
        assert_eq!(
            r,
            hearth_appliances::relay::RelaySettings::from_config(&relay).unwrap()
        );
    }

    #[test]
    fn the_plan_refuses_what_the_appliance_refuses() {
        // Each key is valid alone; the relay's own rule refuses the pair, as the chip does.
        let text = alloc::format!(
            "{}relays 2\nrelay3max 60\n",
            BASE.replace("weather", "relay")
        );
        let e = planned(&text).unwrap_err();
        assert_eq!(
            e,
            "profile relay: \"relay3max\": given but \"relays\" is 2: remove it or raise \"relays\""
        );
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
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The MQTT runtime with an appliance.
    Mqtt {
        /// Runtime settings.
        settings: hearth_runtime::settings::Settings,
        /// The appliance, with its settings.
        appliance: OnMqtt,
    },
    /// A battery ESP-NOW peripheral without Wi-Fi or MQTT.
    Peripheral {
        /// Its link.
        link: hearth_runtime::link::LinkSettings,
        /// The appliance, with its settings.
        appliance: hearth_appliances::Peripheral,
    },
}

/// What the MQTT runtime of a [`Plan`] drives.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum OnMqtt {
    /// An appliance of its own hardware (or `weather`).
    Appliance(hearth_appliances::Mqtt),
    /// A forwarding ESP-NOW central (`scale_manager`, `tnowc`) and its link.
    Central(forwarder::Flavor, hearth_runtime::link::LinkSettings),
}

/// Decide how to run `config`: the appliance's own rules over its settings, and what its
/// profile needs beyond the per-key rules (a broker for the MQTT profiles, the ESP-NOW keys
/// for the link ones, `ssid (none)` for the battery ones).
pub fn plan(config: &Config) -> Result<Plan, PlanError> {
    use hearth_appliances::Settings as Appliance;
    use hearth_runtime::link::LinkSettings;
    let link = |central: bool| LinkSettings::from_config(config, central).map_err(PlanError::Link);
    let p = config.profile.as_str();
    let Some(entry) = appliance(p) else {
        return Err(PlanError::NotInBuild { profile: p.into() });
    };
    if entry.runs == Runs::Peripheral && config.network != hearth_config::Network::None {
        return Err(PlanError::NeedsNoNetwork { profile: p.into() });
    }
    let runtime =
        || hearth_runtime::settings::Settings::from_config(config).map_err(PlanError::Runtime);
    Ok(match entry.settings(config)? {
        Appliance::Mqtt(appliance) => Plan::Mqtt {
            settings: runtime()?,
            appliance: OnMqtt::Appliance(appliance),
        },
        Appliance::Central(flavor) => Plan::Mqtt {
            settings: runtime()?,
            appliance: OnMqtt::Central(flavor, link(true)?),
        },
        Appliance::Peripheral(appliance) => Plan::Peripheral {
            link: link(false)?,
            appliance,
        },
    })
}
