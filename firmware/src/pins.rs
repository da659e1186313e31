//! The board's wiring: which GPIO does what, from `config.txt` (`led`, `ledinvert`, `i2csda`,
//! `i2cscl`, `ethsck`, `ethmosi`, `ethmiso`, `ethcs`, `ethint`, `ethrst`, `hx711sck`,
//! `hx711dout`) or the chip's defaults, checked against the chip before any pin is touched.
//!
//! Every pin in use must exist on the chip and must not be one of the SPI-flash pins or the
//! USB-Serial-JTAG pins (the console); no two uses may share a GPIO (so the LED and the
//! Ethernet pins are never the I2C pins, nor each other). The Ethernet pins are only in use
//! with `ssid (wired)` / `ssid (wired2)`; the I2C pins only for `weather`; the HX711 pins only
//! for `scale_sensor`; the LED only when `led` is given. A bad choice is a boot error (every
//! problem is reported), never a panic.
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

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_config::Config;
use hearth_device::profiles::gpio;

/// This chip's GPIO facts and default wiring.
struct Chip {
    /// The highest GPIO number.
    max: u8,
    /// GPIOs that belong to the SPI flash or the USB console.
    reserved: &'static [u8],
    /// Default I2C `(sda, scl)`.
    i2c: (u8, u8),
    /// Default W5500 wiring.
    ethernet: Ethernet,
    /// Default HX711 `(sck, dout)`.
    hx711: (u8, u8),
    /// The appliances' defaults.
    #[cfg_attr(feature = "lean", allow(dead_code))]
    appliance: Defaults,
}

/// The appliances' default GPIOs on this chip (used when the config names none).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "lean", allow(dead_code))]
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

/// This chip's default appliance GPIOs.
#[cfg_attr(feature = "lean", allow(dead_code))]
pub const DEFAULTS: Defaults = CHIP.appliance;

#[cfg(feature = "esp32c3")]
const CHIP: Chip = Chip {
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

#[cfg(feature = "esp32c6")]
const CHIP: Chip = Chip {
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

/// The status LED: a plain LED (with its resistor) between the GPIO and ground, or between
/// 3.3 V and the GPIO with `ledinvert 1`.
#[derive(Debug, Clone, Copy)]
pub struct Led {
    /// The GPIO number.
    pub pin: u8,
    /// Lit when the pin is low.
    pub inverted: bool,
}

/// The W5500's SPI and control pins (GPIO numbers).
#[derive(Debug, Clone, Copy)]
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

/// What the profile and the network use.
#[derive(Debug, Clone)]
pub struct Needs {
    /// The W5500 (`ssid (wired)`).
    pub ethernet: bool,
    /// The I2C sensors (`weather`).
    pub i2c: bool,
    /// The HX711 (`scale_sensor`).
    pub hx711: bool,
    /// The appliance's own GPIOs (relays, UART, receiver, flow meter, switch board), in the
    /// order the appliance wiring (`crate::appliances`) wants them back.
    pub appliance: Vec<AppPin>,
}

/// Where an appliance GPIO number came from (for the boot-error messages).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "lean", allow(dead_code))]
pub enum Source {
    /// A single-pin key of the config (`relay1pin 5`).
    Config,
    /// One entry of a pin-list key of the config (`switchinpins 1,2,3,4`).
    ConfigList,
    /// This chip's default for the key.
    Default,
    /// A switch board preset's pin (the reference's classic-ESP32 numbers), overridable with
    /// the key.
    Preset(&'static str),
}

/// One GPIO an appliance uses.
#[derive(Debug, Clone, Copy)]
pub struct AppPin {
    /// The config key that sets it.
    pub key: &'static str,
    /// The GPIO number.
    pub pin: u8,
    /// Where the number came from.
    pub source: Source,
}

/// The checked wiring.
pub struct Wiring {
    /// The status LED, if the config names one.
    pub led: Option<Led>,
    /// I2C `(sda, scl)` for the sensors, when the profile has them.
    pub i2c: Option<(u8, u8)>,
    /// The W5500's pins, when the network is wired.
    pub ethernet: Option<Ethernet>,
    /// The HX711's `(sck, dout)`, for the scale.
    pub hx711: Option<(u8, u8)>,
    /// The appliance's GPIOs, in the order of [`Needs::appliance`].
    pub appliance: Vec<u8>,
}

/// Why the wiring was refused.
pub struct Rejected {
    /// One line per problem.
    pub problems: Vec<String>,
    /// The LED, if its own pin passed every check (it can still show the boot error).
    pub led: Option<Led>,
}

/// The W5500's config keys.
const ETH_KEYS: [&str; 6] = ["ethsck", "ethmosi", "ethmiso", "ethcs", "ethint", "ethrst"];

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

/// Resolve and check the wiring for this config and what it `needs`.
pub fn resolve(config: &Config, needs: Needs) -> Result<Wiring, Rejected> {
    let wired = needs.ethernet;
    let led = gpio(config, "led").map(|pin| Led {
        pin,
        inverted: config
            .profile_settings
            .get("ledinvert")
            .is_some_and(|v| v == "1"),
    });
    if led.is_none() && config.profile_settings.contains_key("ledinvert") {
        log::warn!("config: ledinvert without led: there is no status LED");
    }

    if !wired
        && ETH_KEYS
            .iter()
            .any(|k| config.profile_settings.contains_key(*k))
    {
        log::warn!("config: the eth* pins are ignored: the network is Wi-Fi");
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
            log::warn!("config: {} are ignored: {what}", keys.join("/"));
        }
    }

    let i2c = needs.i2c.then(|| {
        [
            Use::new(config, "i2csda", CHIP.i2c.0),
            Use::new(config, "i2cscl", CHIP.i2c.1),
        ]
    });
    let hx711 = needs.hx711.then(|| {
        [
            Use::new(config, "hx711sck", CHIP.hx711.0),
            Use::new(config, "hx711dout", CHIP.hx711.1),
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
    let d = CHIP.ethernet;
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
    let mut problems: Vec<(String, [&'static str; 2])> = Vec::new();
    for u in &uses {
        if u.pin > CHIP.max {
            problems.push((
                format!(
                    "config: {}: this chip has GPIO0..=GPIO{}",
                    u.shown(),
                    CHIP.max
                ),
                [u.key, u.key],
            ));
        } else if CHIP.reserved.contains(&u.pin) {
            problems.push((
                format!(
                    "config: {}: GPIO{} belongs to the SPI flash or the USB console on this chip",
                    u.shown(),
                    u.pin
                ),
                [u.key, u.key],
            ));
        }
    }
    for (i, a) in uses.iter().enumerate() {
        for b in &uses[i + 1..] {
            if a.pin == b.pin {
                problems.push((
                    format!(
                        "config: {} and {} are both GPIO{}",
                        a.shown(),
                        b.shown(),
                        a.pin
                    ),
                    [a.key, b.key],
                ));
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
    })
}
