//! Every rule a chip applies to a config at boot, as data and one function, shared by the
//! firmware (which applies them at boot), the device before it accepts a pushed config
//! (`Config` over MQTT, `hearth_runtime::update`), `hearth config check --chip` and `hearth flash`.
//! One set of rules: a config these functions accept boots on the chip, and one they refuse
//! would have stopped it at boot with no network.
//!
//! The rules ([`check`]):
//!
//! - the image contains the appliance (a `lean` image holds only the appliances built in:
//!   [`hearth_appliances::Appliance::lean_feature`]);
//! - the broker is not an IPv6 address (the firmware speaks IPv4);
//! - every GPIO in use (the status LED, I2C, the W5500, the HX711, the appliance's pins, by
//!   the config or the chip's defaults) exists on the chip, is not one of its SPI-flash or
//!   USB-console pins, and is used once.
//!
//! | chip | GPIOs | refused (flash, USB) | SDA | SCL | SCK | MOSI | MISO | CS | INT | RST | HX711 SCK | HX711 DOUT |
//! |---|---|---|---|---|---|---|---|---|---|---|---|---|
//! | ESP32-C3 | 0–21 | 12–17, 18–19 | 8 | 9 | 6 | 7 | 5 | 10 | 3 | 4 | 4 | 5 |
//! | ESP32-C6 | 0–30 | 24–30, 12–13 | 23 | 22 | 6 | 7 | 2 | 18 | 19 | 20 | 18 | 19 |
//!
//! The HX711 defaults are the reference's GPIO4/GPIO5 on the C3; on the C6 those are strapping
//! pins (MTMS/MTDI), so the C6 defaults are GPIO18/GPIO19. (They coincide with Ethernet
//! defaults, but a scale never has Ethernet: it runs with `ssid (none)`.)
//!
//! The Ethernet defaults avoid the strapping pins (C3: GPIO2, 8, 9; C6: GPIO4, 5, 8, 9, 15)
//! and the UART0 console pins (C3: GPIO20/21; C6: GPIO16/17). The config may still name them
//! (a strapping pin works if the circuit leaves it at its boot level during reset).
//!
//! The simulator's chip (`sim`) has no GPIO rules: [`chip`] does not know it, and the device
//! checks a push against the chip rules only on a chip it knows.

use core::fmt;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hearth_config::{Config, Host, Network};

use crate::profiles::{OnMqtt, Plan};
use hearth_appliances::{ApplianceError, Mqtt, Peripheral};
use hearth_profile::gpio;

/// A chip's GPIO facts and default wiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chip {
    /// Its name, as `Identity::chip` and update manifests say it (`esp32c3`).
    pub name: &'static str,
    /// The highest GPIO number.
    pub max: u8,
    /// GPIOs that belong to the SPI flash or the USB console.
    pub reserved: &'static [u8],
    /// Default I2C `(sda, scl)`.
    pub i2c: (u8, u8),
    /// Default W5500 wiring.
    pub ethernet: Ethernet,
    /// Default HX711 `(sck, dout)`.
    pub hx711: (u8, u8),
    /// The appliances' defaults.
    pub appliance: Defaults,
}

/// The appliances' default GPIOs on a chip (used when the config names none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `relay1pin`..`relay4pin`.
    pub relays: [u8; 4],
    /// PZEM-004T `(pzemtx, pzemrx)`: the ESP's TX and RX.
    pub pzem: (u8, u8),
    /// The 433 MHz receiver's data output (`rx433pin`).
    pub rx433: u8,
    /// The h2o flow meter's pulse output (`flowpin` overrides it).
    pub flow: u8,
    /// termo's 1-Wire bus (`onewire`).
    pub onewire: u8,
}

/// The W5500's SPI and control pins (GPIO numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ethernet {
    /// SPI clock.
    pub sck: u8,
    /// SPI data to the W5500.
    pub mosi: u8,
    /// SPI data from the W5500.
    pub miso: u8,
    /// Chip select (active low).
    pub cs: u8,
    /// Interrupt from the W5500 (active low).
    pub int: u8,
    /// Reset of the W5500 (active low).
    pub rst: u8,
}

/// The ESP32-C3.
pub const ESP32C3: Chip = Chip {
    name: "esp32c3",
    max: 21,
    reserved: &[12, 13, 14, 15, 16, 17, 18, 19],
    i2c: (8, 9),
    ethernet: Ethernet {
        sck: 6,
        mosi: 7,
        miso: 5,
        cs: 10,
        int: 3,
        rst: 4,
    },
    hx711: (4, 5),
    appliance: Defaults {
        relays: [4, 5, 6, 7],
        pzem: (4, 5),
        rx433: 3,
        flow: 3,
        onewire: 10,
    },
};

/// The ESP32-C6.
pub const ESP32C6: Chip = Chip {
    name: "esp32c6",
    max: 30,
    reserved: &[12, 13, 24, 25, 26, 27, 28, 29, 30],
    i2c: (23, 22),
    ethernet: Ethernet {
        sck: 6,
        mosi: 7,
        miso: 2,
        cs: 18,
        int: 19,
        rst: 20,
    },
    hx711: (18, 19),
    appliance: Defaults {
        relays: [18, 19, 20, 21],
        pzem: (2, 3),
        rx433: 10,
        flow: 3,
        onewire: 11,
    },
};

/// Every chip the firmware is built for.
pub const CHIPS: &[&Chip] = &[&ESP32C3, &ESP32C6];

/// The chip called `name` (`esp32c3`, `esp32c6`); `None` for the simulator and unknown names.
pub fn chip(name: &str) -> Option<&'static Chip> {
    CHIPS.iter().copied().find(|c| c.name == name)
}

pub use hearth_appliances::FULL_IMAGE;

/// The status LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Led {
    /// The GPIO number.
    pub pin: u8,
    /// Lit when the pin is low (`ledinvert 1`).
    pub inverted: bool,
}

/// Where a GPIO number came from (for the messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A single-pin key of the config (`relay1pin 5`).
    Config,
    /// One entry of a pin-list key of the config (`switchinpins 1,2,3,4`).
    ConfigList,
    /// The chip's default for the key.
    Default,
    /// A switch board preset's pin (the reference's classic-ESP32 numbers), overridable with
    /// the key.
    Preset(&'static str),
}

/// One GPIO an appliance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppPin {
    /// The config key that sets it.
    pub key: &'static str,
    /// The GPIO number.
    pub pin: u8,
    /// Where the number came from.
    pub source: Source,
}

/// What the profile and the network use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// The W5500 (`ssid (wired)`).
    pub ethernet: bool,
    /// The I2C bus (`weather`, `h2o`, `relay` with `relaydisplay 1`).
    pub i2c: bool,
    /// The HX711 (`scale_sensor`).
    pub hx711: bool,
    /// The appliance's own GPIOs, in the order its wiring wants them back.
    pub appliance: Vec<AppPin>,
}

/// The checked wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The status LED, if the config names one.
    pub led: Option<Led>,
    /// I2C `(sda, scl)`, when the profile has the bus.
    pub i2c: Option<(u8, u8)>,
    /// The W5500's pins, when the network is wired.
    pub ethernet: Option<Ethernet>,
    /// The HX711's `(sck, dout)`, for the scale.
    pub hx711: Option<(u8, u8)>,
    /// The appliance's GPIOs, in the order of [`Needs::appliance`].
    pub appliance: Vec<u8>,
    /// Keys the config sets that this wiring ignores (a warning each, never an error).
    pub warnings: Vec<String>,
}

/// Why the config was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Every problem found (each prints as one line).
    pub problems: Vec<Problem>,
    /// The LED, if its own pin passed every check (it can still show the boot error).
    pub led: Option<Led>,
}

impl Rejected {
    fn one(problem: Problem) -> Self {
        Self {
            problems: alloc::vec![problem],
            led: None,
        }
    }
}

/// One rule of a chip that a config breaks; it prints as the line the device logs and the
/// tools show (`config: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The image was built with the cargo feature `lean` and without the profile's feature.
    NotInImage {
        /// The config's profile.
        profile: String,
        /// The cargo feature that puts it back.
        feature: &'static str,
    },
    /// An MQTT profile with `ssid (none)`.
    NeedsNetwork {
        /// The config's profile.
        profile: String,
    },
    /// The broker is an IPv6 address; the firmware speaks IPv4 only.
    Ipv6Broker(core::net::Ipv6Addr),
    /// The appliance's own pin rules.
    Appliance(ApplianceError),
    /// A pin above the chip's highest GPIO.
    NoSuchPin {
        /// The key and its value, as the config shows them.
        shown: String,
        /// The chip's name.
        chip: &'static str,
        /// Its highest GPIO.
        max: u8,
    },
    /// A pin of the SPI flash or the USB console.
    Reserved {
        /// The key and its value, as the config shows them.
        shown: String,
        /// The GPIO.
        gpio: u8,
        /// The chip's name.
        chip: &'static str,
    },
    /// Two keys name one GPIO.
    SharedPin {
        /// The first key and its value.
        first: String,
        /// The second key and its value.
        second: String,
        /// The GPIO both name.
        gpio: u8,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotInImage { profile, feature } => write!(
                f,
                "config: profile {profile}: this image was built with the cargo feature `lean` \
                 and without `{feature}` (build with it, or flash an image that has it)"
            ),
            Problem::NeedsNetwork { profile } => {
                write!(
                    f,
                    "config: `ssid (none)`: profile {profile} needs a network"
                )
            }
            Problem::Ipv6Broker(addr) => write!(
                f,
                "config: mqttbroker [{addr}]: the firmware speaks IPv4 only; use an IPv4 address \
                 or a host name"
            ),
            Problem::Appliance(e) => write!(f, "config: {e}"),
            Problem::NoSuchPin { shown, chip, max } => {
                write!(f, "config: {shown}: the {chip} has GPIO0..=GPIO{max}")
            }
            Problem::Reserved { shown, gpio, chip } => write!(
                f,
                "config: {shown}: GPIO{gpio} belongs to the SPI flash or the USB console on the \
                 {chip}"
            ),
            Problem::SharedPin {
                first,
                second,
                gpio,
            } => write!(f, "config: {first} and {second} are both GPIO{gpio}"),
        }
    }
}

impl core::error::Error for Problem {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Problem::Appliance(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`check_text`] refused a config text.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The text does not parse (every line's problem).
    Invalid(hearth_config::ConfigErrors),
    /// It parses, but the plan refuses it (an appliance's settings).
    Plan(crate::profiles::PlanError),
    /// The chip's rules refuse it.
    Chip(Vec<Problem>),
}

impl Refusal {
    /// One line per problem, as the device logs them and the update status reports them.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Refusal::Invalid(e) => e.located_lines("config"),
            Refusal::Plan(e) => alloc::vec![e.to_string()],
            Refusal::Chip(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("; "))
    }
}

impl core::error::Error for Refusal {}

/// The W5500's config keys.
const ETH_KEYS: [&str; 6] = ["ethsck", "ethmosi", "ethmiso", "ethcs", "ethint", "ethrst"];

/// Every rule `chip` applies at boot to `config` (validated and planned as `plan`), for an
/// image holding the appliances `image` (a full image: [`FULL_IMAGE`]). The wiring on
/// success; every problem otherwise, one line each.
pub fn check(
    config: &Config,
    plan: &Plan,
    chip: &Chip,
    image: &[&str],
) -> Result<Wiring, Rejected> {
    let profile = config.profile.as_str();
    if let Some(feature) = hearth_appliances::appliance(profile).and_then(|a| a.lean_feature) {
        if !image.contains(&profile) {
            return Err(Rejected::one(Problem::NotInImage {
                profile: profile.into(),
                feature,
            }));
        }
    }
    let mqtt = matches!(plan, Plan::Mqtt { .. });
    if mqtt && config.network == Network::None {
        return Err(Rejected::one(Problem::NeedsNetwork {
            profile: profile.into(),
        }));
    }
    if let Some(broker) = config.mqtt.broker.as_ref().filter(|_| mqtt) {
        if let Host::Ipv6(addr) = broker.host {
            return Err(Rejected::one(Problem::Ipv6Broker(addr)));
        }
    }
    let on_mqtt = match plan {
        Plan::Mqtt {
            appliance: OnMqtt::Appliance(a),
            ..
        } => Some(a),
        _ => None,
    };
    let appliance = match on_mqtt {
        Some(a) => {
            appliance_pins(a, config, chip).map_err(|e| Rejected::one(Problem::Appliance(e)))?
        }
        None => Vec::new(),
    };
    let needs = Needs {
        ethernet: matches!(config.network, Network::Wired | Network::Wired2),
        i2c: match on_mqtt {
            Some(Mqtt::Weather | Mqtt::H2o(_)) => true,
            Some(Mqtt::Relay(r)) => r.display,
            _ => false,
        },
        hx711: matches!(
            plan,
            Plan::Peripheral {
                appliance: Peripheral::ScaleSensor(_),
                ..
            }
        ),
        appliance,
    };
    resolve(config, needs, chip)
}

fn pin(key: &'static str, given: Option<u8>, default: u8) -> AppPin {
    match given {
        Some(pin) => AppPin {
            key,
            pin,
            source: Source::Config,
        },
        None => AppPin {
            key,
            pin: default,
            source: Source::Default,
        },
    }
}

/// The GPIOs the MQTT appliance `appliance` (planned from `config`) uses on `chip`, in the
/// order the firmware's appliance wiring takes them (empty for `weather`, whose sensors' pins
/// are the board's). `Err`: switch pins that do not fit the chosen board.
pub fn appliance_pins(
    appliance: &Mqtt,
    config: &Config,
    chip: &Chip,
) -> Result<Vec<AppPin>, ApplianceError> {
    use hearth_appliances::switch::{Pins, Wiring as SwitchWiring};
    let bad = |error| ApplianceError {
        profile: config.profile.clone(),
        error,
    };
    let d = &chip.appliance;
    Ok(match appliance {
        Mqtt::Relay(settings) => {
            const KEYS: [&str; 4] = ["relay1pin", "relay2pin", "relay3pin", "relay4pin"];
            settings
                .relays
                .iter()
                .zip(KEYS.iter().zip(d.relays))
                .map(|(r, (key, default))| pin(key, r.pin, default))
                .collect()
        }
        Mqtt::Energy(s) => {
            alloc::vec![pin("pzemtx", s.tx, d.pzem.0), pin("pzemrx", s.rx, d.pzem.1)]
        }
        Mqtt::Rx433(s) => alloc::vec![pin("rx433pin", s.pin, d.rx433)],
        Mqtt::Termo(_) => alloc::vec![pin("onewire", gpio(config, "onewire"), d.onewire)],
        Mqtt::H2o(_) => alloc::vec![pin("flowpin", gpio(config, "flowpin"), d.flow)],
        Mqtt::Switch(s) => {
            let preset = s.board.preset();
            let source = |key: &'static str| {
                if config.profile_settings.contains_key(key) {
                    Source::ConfigList
                } else {
                    Source::Preset(preset.name)
                }
            };
            let mut pins = Vec::new();
            match (&s.pins, preset.wiring) {
                (Pins::Direct { inputs, outputs }, _) => {
                    for (key, list) in [("switchinpins", inputs), ("switchoutpins", outputs)] {
                        pins.extend(list.iter().map(|&p| AppPin {
                            key,
                            pin: p,
                            source: source(key),
                        }));
                    }
                }
                (Pins::ShiftRegisters(sr), SwitchWiring::ShiftRegisters(_)) => {
                    pins.extend([sr.oe, sr.latch, sr.clock, sr.ser, sr.qh].map(|p| AppPin {
                        key: "switchsrpins",
                        pin: p,
                        source: source("switchsrpins"),
                    }));
                }
                (Pins::ShiftRegisters(_), SwitchWiring::Direct { .. }) => {
                    return Err(bad(hearth_profile::SettingError::refused(
                        "switchsrpins",
                        format!("shift-register pins for {}, a direct board", preset.name),
                    )));
                }
            }
            pins
        }
        Mqtt::Weather => Vec::new(),
    })
}

/// One GPIO use.
struct Use {
    key: &'static str,
    pin: u8,
    source: Source,
}

impl Use {
    fn new(config: &Config, key: &'static str, default: u8) -> Self {
        match gpio(config, key) {
            Some(pin) => Self {
                key,
                pin,
                source: Source::Config,
            },
            None => Self {
                key,
                pin: default,
                source: Source::Default,
            },
        }
    }

    fn shown(&self) -> String {
        match self.source {
            Source::Config => format!("{} {}", self.key, self.pin),
            Source::ConfigList => format!("{}: GPIO{}", self.key, self.pin),
            Source::Default => format!("{} (default GPIO{})", self.key, self.pin),
            Source::Preset(board) => format!(
                "the {board} preset's GPIO{} (set {} for this chip)",
                self.pin, self.key
            ),
        }
    }
}

/// Resolve and check the wiring of `config` on `chip` for what it `needs`: every GPIO exists,
/// is not reserved, and is used once.
pub fn resolve(config: &Config, needs: Needs, chip: &Chip) -> Result<Wiring, Rejected> {
    let mut warnings = Vec::new();
    let wired = needs.ethernet;
    let led = gpio(config, "led").map(|pin| Led {
        pin,
        inverted: config
            .profile_settings
            .get("ledinvert")
            .is_some_and(|v| v == "1"),
    });
    if led.is_none() && config.profile_settings.contains_key("ledinvert") {
        warnings.push(String::from(
            "config: ledinvert without led: there is no status LED",
        ));
    }
    if !wired
        && ETH_KEYS
            .iter()
            .any(|k| config.profile_settings.contains_key(*k))
    {
        warnings.push(String::from(
            "config: the eth* pins are ignored: the network is Wi-Fi",
        ));
    }
    for (used, keys, what) in [
        (
            needs.i2c,
            ["i2csda", "i2cscl"],
            "the profile has no I2C sensors",
        ),
        (
            needs.hx711,
            ["hx711sck", "hx711dout"],
            "the profile has no HX711",
        ),
    ] {
        if !used
            && keys
                .iter()
                .any(|k| config.profile_settings.contains_key(*k))
        {
            warnings.push(format!("config: {} are ignored: {what}", keys.join("/")));
        }
    }

    let i2c = needs.i2c.then(|| {
        [
            Use::new(config, "i2csda", chip.i2c.0),
            Use::new(config, "i2cscl", chip.i2c.1),
        ]
    });
    let hx711 = needs.hx711.then(|| {
        [
            Use::new(config, "hx711sck", chip.hx711.0),
            Use::new(config, "hx711dout", chip.hx711.1),
        ]
    });
    let led_use = led.map(|led| Use {
        key: "led",
        pin: led.pin,
        source: Source::Config,
    });
    let app: Vec<Use> = needs
        .appliance
        .iter()
        .map(|a| Use {
            key: a.key,
            pin: a.pin,
            source: a.source,
        })
        .collect();
    let d = chip.ethernet;
    let eth = wired.then(|| {
        [
            Use::new(config, "ethsck", d.sck),
            Use::new(config, "ethmosi", d.mosi),
            Use::new(config, "ethmiso", d.miso),
            Use::new(config, "ethcs", d.cs),
            Use::new(config, "ethint", d.int),
            Use::new(config, "ethrst", d.rst),
        ]
    });
    let uses: Vec<&Use> = i2c
        .iter()
        .flatten()
        .chain(hx711.iter().flatten())
        .chain(led_use.as_ref())
        .chain(eth.iter().flatten())
        .chain(app.iter())
        .collect();

    // (problem, the keys it involves)
    let mut problems: Vec<(Problem, [&'static str; 2])> = Vec::new();
    for u in &uses {
        if u.pin > chip.max {
            let problem = Problem::NoSuchPin {
                shown: u.shown(),
                chip: chip.name,
                max: chip.max,
            };
            problems.push((problem, [u.key, u.key]));
        } else if chip.reserved.contains(&u.pin) {
            let problem = Problem::Reserved {
                shown: u.shown(),
                gpio: u.pin,
                chip: chip.name,
            };
            problems.push((problem, [u.key, u.key]));
        }
    }
    for (i, a) in uses.iter().enumerate() {
        for b in &uses[i + 1..] {
            if a.pin == b.pin {
                let problem = Problem::SharedPin {
                    first: a.shown(),
                    second: b.shown(),
                    gpio: a.pin,
                };
                problems.push((problem, [a.key, b.key]));
            }
        }
    }

    if !problems.is_empty() {
        let led_ok = !problems.iter().any(|(_, keys)| keys.contains(&"led"));
        return Err(Rejected {
            problems: problems.into_iter().map(|(p, _)| p).collect(),
            led: led.filter(|_| led_ok),
        });
    }
    Ok(Wiring {
        led,
        i2c: i2c.map(|[sda, scl]| (sda.pin, scl.pin)),
        hx711: hx711.map(|[sck, dout]| (sck.pin, dout.pin)),
        appliance: app.iter().map(|u| u.pin).collect(),
        ethernet: eth.map(|[sck, mosi, miso, cs, int, rst]| Ethernet {
            sck: sck.pin,
            mosi: mosi.pin,
            miso: miso.pin,
            cs: cs.pin,
            int: int.pin,
            rst: rst.pin,
        }),
        warnings,
    })
}

/// Parse, plan and check `text` for the chip called `chip` with an image holding `image`:
/// what the device runs before it accepts a push, and the host tools before they write a
/// config. On a chip [`chip`] does not know (the simulator), only parsing and planning.
/// Every problem ([`Refusal::lines`] gives one line each).
pub fn check_text(text: &str, chip_name: &str, image: &[&str]) -> Result<Config, Refusal> {
    let config = crate::profiles::parse_config(text).map_err(Refusal::Invalid)?;
    let plan = crate::profiles::plan(&config).map_err(Refusal::Plan)?;
    if let Some(chip) = chip(chip_name) {
        check(&config, &plan, chip, image).map_err(|r| Refusal::Chip(r.problems))?;
    }
    Ok(config)
}

/// [`check_text`] as the runtime takes it ([`hearth_runtime::update::ConfigRules`]): the
/// runtime knows no chip and no appliance, and puts the lines in the update status it
/// publishes.
pub fn check_text_lines(
    text: &str,
    chip_name: &str,
    image: &[&str],
) -> Result<Config, Vec<String>> {
    check_text(text, chip_name, image).map_err(|r| r.lines())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "ssid Home\nmqttbroker 192.168.1.2\nmqttname dev\n";

    fn on(chip: &str, body: &str) -> Result<Config, Vec<String>> {
        check_text_lines(&format!("{BASE}{body}"), chip, FULL_IMAGE)
    }

    #[test]
    fn the_chips_are_known_by_their_board_names() {
        assert_eq!(chip("esp32c3"), Some(&ESP32C3));
        assert_eq!(chip("esp32c6"), Some(&ESP32C6));
        assert_eq!(chip("sim"), None);
        assert_eq!(chip("esp32"), None);
    }

    #[test]
    fn every_default_is_a_usable_pin_of_its_chip() {
        for c in CHIPS {
            let d = c.appliance;
            let e = c.ethernet;
            let all = [
                c.i2c.0, c.i2c.1, c.hx711.0, c.hx711.1, e.sck, e.mosi, e.miso, e.cs, e.int, e.rst,
                d.pzem.0, d.pzem.1, d.rx433, d.flow, d.onewire,
            ];
            for p in all.iter().chain(d.relays.iter()) {
                assert!(*p <= c.max && !c.reserved.contains(p), "{} GPIO{p}", c.name);
            }
            assert!(c.reserved.iter().all(|p| *p <= c.max));
        }
    }

    #[test]
    fn a_reserved_relay_pin_is_refused_on_each_chip_and_fine_in_the_simulator() {
        let relay = "profile relay\nrelay1max 60\nrelay1pin 12\n";
        for c in ["esp32c3", "esp32c6"] {
            let e = on(c, relay).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].contains("relay1pin 12") && e[0].contains("SPI flash"),
                "{e:?}"
            );
        }
        assert!(on("sim", relay).is_ok());
        // GPIO21 exists on both chips and is free.
        assert!(on("esp32c3", "profile relay\nrelay1max 60\nrelay1pin 21\n").is_ok());
        // GPIO25 exists on the C6 only (reserved there: flash).
        let e = on("esp32c3", "profile relay\nrelay1max 60\nrelay1pin 25\n").unwrap_err();
        assert!(e[0].contains("GPIO0..=GPIO21"), "{e:?}");
    }

    #[test]
    fn shared_pins_and_default_collisions_are_refused() {
        // The C3's relay 1 defaults to GPIO4; the LED on it collides.
        let e = on("esp32c3", "profile relay\nrelay1max 60\nled 4\n").unwrap_err();
        assert!(e[0].contains("both GPIO4"), "{e:?}");
        // Relay 1 given the pin that is relay 2's default on the C6.
        let e = on(
            "esp32c6",
            "profile relay\nrelay1max 60\nrelay2max 60\nrelay1pin 19\n",
        )
        .unwrap_err();
        assert!(e[0].contains("relay2pin (default GPIO19)"), "{e:?}");
        // The W5500's defaults with an LED on its chip select.
        let wired = "profile weather\nssid (wired)\nmqttbroker 192.168.1.2\nmqttname dev\nled 10\n";
        let e = check_text(wired, "esp32c3", FULL_IMAGE).unwrap_err();
        assert!(
            matches!(&e, Refusal::Chip(p) if matches!(p[..], [Problem::SharedPin { gpio: 10, .. }])),
            "{e:?}"
        );
        assert!(e.lines()[0].contains("ethcs (default GPIO10)"), "{e:?}");
    }

    #[test]
    fn an_appliance_the_image_lacks_is_refused() {
        let relay = "profile relay\nrelay1max 60\n";
        let e = on("esp32c3", relay).map(|_| ());
        assert!(e.is_ok());
        let e = check_text(&format!("{BASE}{relay}"), "esp32c3", &["energy"]).unwrap_err();
        let Refusal::Chip(p) = &e else {
            panic!("{e:?}")
        };
        assert!(
            matches!(&p[..], [Problem::NotInImage { feature: "appliance-relay", profile }] if profile == "relay"),
            "{e:?}"
        );
        // weather has no appliance feature: any image runs it.
        assert!(check_text(&format!("{BASE}profile weather\n"), "esp32c3", &[]).is_ok());
    }

    #[test]
    fn an_ipv6_broker_is_refused_on_the_chip() {
        let text = "profile weather\nssid Home\nmqttbroker [fd00::1]\nmqttname dev\n";
        let e = check_text(text, "esp32c6", FULL_IMAGE).unwrap_err();
        let Refusal::Chip(p) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(p[..], [Problem::Ipv6Broker(_)]), "{e:?}");
        assert!(e.lines()[0].contains("IPv4"), "{e:?}");
        assert!(check_text(text, "sim", FULL_IMAGE).is_ok());
    }

    #[test]
    fn ignored_keys_are_warnings_not_errors() {
        let text = format!("{BASE}profile weather\nethcs 3\nledinvert 1\n");
        let config = crate::profiles::parse_config(&text).unwrap();
        let plan = crate::profiles::plan(&config).unwrap();
        let w = check(&config, &plan, &ESP32C3, FULL_IMAGE).unwrap();
        assert_eq!(w.warnings.len(), 2, "{:?}", w.warnings);
        assert_eq!(w.i2c, Some((8, 9)));
    }
}
