//! hearth-appliances: every Hearth appliance, one module each (its settings and their rules,
//! its config keys, its behaviour over the drivers and the platform traits it needs, and its
//! tests), and the table that names them ([`APPLIANCES`]). Each implements the appliance seam
//! (`hearth_profile::Profile`, or `PeripheralApp` for battery devices); none knows the runtime
//! that drives it, and the runtime does not know them: `hearth-device` composes the two.
//!
//! ```
//! use hearth_appliances::{appliance, Runs, APPLIANCES, FULL_IMAGE};
//!
//! // A relay runs on the MQTT runtime, and a lean image may leave it out.
//! let relay = appliance("relay").unwrap();
//! assert_eq!(relay.runs, Runs::Mqtt);
//! assert_eq!(relay.lean_feature, Some("appliance-relay"));
//! assert!(relay.keys.iter().any(|k| k.name == "relay1max"));
//! assert!(FULL_IMAGE.contains(&"relay"));
//!
//! // The weather station is in every image; a scale sensor is a battery ESP-NOW device.
//! assert!(!FULL_IMAGE.contains(&"weather"));
//! assert_eq!(appliance("scale_sensor").unwrap().runs, Runs::Peripheral);
//! assert!(APPLIANCES.iter().all(|a| appliance(a.name).is_some()));
//! ```

#![no_std]

extern crate alloc;

#[cfg(test)]
extern crate std;

pub mod energy;
pub mod forwarder;
pub mod h2o;
pub mod relay;
pub mod rx433;
pub mod scale_filter;
pub mod scale_sensor;
pub mod switch;
pub mod termo;
pub mod tnowp;
pub mod weather;

use alloc::string::String;
use core::fmt;

use hearth_config::{Config, KeySpec};
use hearth_profile::SettingError;

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

/// An MQTT appliance's settings, parsed and checked by its own rules: what a world (the
/// simulator, the firmware) builds the appliance's hardware and profile from. A world matches
/// on it exhaustively, so an appliance added here is a compile error wherever it is not wired.
/// The two largest are boxed: the plan that carries this lives in the firmware's main task for
/// the whole boot, in static RAM.
#[derive(Debug, Clone, PartialEq)]
pub enum Mqtt {
    /// `weather`: its sensors' I2C pins are board keys.
    Weather,
    /// `energy`.
    Energy(energy::EnergySettings),
    /// `h2o`.
    H2o(alloc::boxed::Box<h2o::H2oSettings>),
    /// `relay`.
    Relay(relay::RelaySettings),
    /// `rx433`.
    Rx433(rx433::Settings),
    /// `switch`.
    Switch(alloc::boxed::Box<switch::SwitchSettings>),
    /// `termo`.
    Termo(termo::Settings),
}

impl Mqtt {
    /// The appliance's name (its `profile`).
    pub fn name(&self) -> &'static str {
        match self {
            Mqtt::Weather => "weather",
            Mqtt::Energy(_) => "energy",
            Mqtt::H2o(_) => "h2o",
            Mqtt::Relay(_) => "relay",
            Mqtt::Rx433(_) => "rx433",
            Mqtt::Switch(_) => "switch",
            Mqtt::Termo(_) => "termo",
        }
    }
}

/// A battery ESP-NOW appliance's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Peripheral {
    /// `scale_sensor`.
    ScaleSensor(scale_sensor::ScaleSettings),
    /// `tnowp`.
    TNowP,
}

/// What an appliance's own rules made of a config, by how it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
    /// On the MQTT runtime.
    Mqtt(Mqtt),
    /// A forwarding ESP-NOW central on the MQTT runtime (its link's settings are the
    /// runtime's business).
    Central(forwarder::Flavor),
    /// A battery ESP-NOW peripheral.
    Peripheral(Peripheral),
}

impl Settings {
    /// How an appliance with these settings runs.
    pub fn runs(&self) -> Runs {
        match self {
            Settings::Mqtt(_) => Runs::Mqtt,
            Settings::Central(flavor) => Runs::Central(*flavor),
            Settings::Peripheral(_) => Runs::Peripheral,
        }
    }
}

/// An appliance's settings from a config: its own rules over its keys (the parser checked
/// each key's syntax already).
pub type SettingsFn = fn(&Config) -> Result<Settings, SettingError>;

/// A [`SettingError`] of the appliance `profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceError {
    /// The config's `profile`.
    pub profile: String,
    /// What its settings broke.
    pub error: SettingError,
}

impl fmt::Display for ApplianceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "profile {}: {}", self.profile, self.error)
    }
}

impl core::error::Error for ApplianceError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// One appliance as every part of Hearth knows it: the parser (its name and keys), the plan
/// (how it runs, and its settings), the chip's image rules (whether a `lean` image may leave
/// it out), and the simulator and the firmware, which build its hardware from its
/// [`Settings`].
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
    /// Its settings from a config.
    pub settings: SettingsFn,
}

impl Appliance {
    /// Its settings from `config` (whose `profile` names it), or the rule they break.
    pub fn settings(&self, config: &Config) -> Result<Settings, ApplianceError> {
        (self.settings)(config).map_err(|error| ApplianceError {
            profile: self.name.into(),
            error,
        })
    }
}

const fn mqtt(
    name: &'static str,
    keys: &'static [KeySpec],
    feature: &'static str,
    settings: SettingsFn,
) -> Appliance {
    Appliance {
        name,
        runs: Runs::Mqtt,
        keys,
        lean_feature: Some(feature),
        settings,
    }
}

const fn always(name: &'static str, runs: Runs, settings: SettingsFn) -> Appliance {
    Appliance {
        name,
        runs,
        keys: &[],
        lean_feature: None,
        settings,
    }
}

/// Every appliance. Adding one means its module, its entry here (and its variant of
/// [`Settings`]), its wiring in the simulator and the firmware (the compiler points at both),
/// and its chip models in `hearth-simchips`.
pub const APPLIANCES: &[Appliance] = &[
    always("weather", Runs::Mqtt, |_| Ok(Settings::Mqtt(Mqtt::Weather))),
    mqtt("energy", energy::CONFIG_KEYS, "appliance-energy", |c| {
        energy::EnergySettings::from_config(c).map(|s| Settings::Mqtt(Mqtt::Energy(s)))
    }),
    mqtt("h2o", h2o::CONFIG_KEYS, "appliance-h2o", |c| {
        h2o::H2oSettings::from_config(c).map(|s| Settings::Mqtt(Mqtt::H2o(s.into())))
    }),
    mqtt("relay", relay::CONFIG_KEYS, "appliance-relay", |c| {
        relay::RelaySettings::from_config(c).map(|s| Settings::Mqtt(Mqtt::Relay(s)))
    }),
    mqtt("rx433", rx433::CONFIG_KEYS, "appliance-rx433", |c| {
        rx433::Settings::from_config(c).map(|s| Settings::Mqtt(Mqtt::Rx433(s)))
    }),
    always(
        "scale_manager",
        Runs::Central(forwarder::Flavor::ScaleManager),
        |_| Ok(Settings::Central(forwarder::Flavor::ScaleManager)),
    ),
    always("scale_sensor", Runs::Peripheral, |c| {
        scale_sensor::ScaleSettings::from_config(c)
            .map(|s| Settings::Peripheral(Peripheral::ScaleSensor(s)))
    }),
    mqtt("switch", switch::CONFIG_KEYS, "appliance-switch", |c| {
        switch::SwitchSettings::from_config(c).map(|s| Settings::Mqtt(Mqtt::Switch(s.into())))
    }),
    mqtt("termo", termo::CONFIG_KEYS, "appliance-termo", |c| {
        termo::Settings::from_config(c).map(|s| Settings::Mqtt(Mqtt::Termo(s)))
    }),
    always("tnowc", Runs::Central(forwarder::Flavor::TNowC), |_| {
        Ok(Settings::Central(forwarder::Flavor::TNowC))
    }),
    always("tnowp", Runs::Peripheral, |_| {
        Ok(Settings::Peripheral(Peripheral::TNowP))
    }),
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
