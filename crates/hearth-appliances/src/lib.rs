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

use hearth_config::KeySpec;

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
