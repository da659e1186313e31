//! The `h2o` appliance: a water tank's level from float switches on an MCP23017 I/O expander,
//! the pump's flow from a pulse-output flow meter on a hardware pulse counter, estimated and
//! pumped volumes, and an optional SSD1306 status display.
//!
//! Behaviour follows the reference (topics, payload formats, timings, calibration, debounce of 4,
//! gap detection, level forced to 100 % when the expander fails so a pump controller stops
//! filling). Deliberate differences, each fixing a weakness the reference documents:
//! * After an expander failure the debounce window and the last accepted bitmap are reset, so
//!   after recovery the switches are always re-evaluated (the reference could stay at 100 %
//!   forever when the bitmap had not changed). The first reading after boot or recovery needs
//!   the same 4 consecutive readings as any other (the reference accepted it at once).
//! * The expander is re-probed every 10 s while absent (reference: every 10 min).
//! * `levelsensors` is validated: numbers 0..=100, strictly ascending, at most 16.
//! * Flow bursts above the maximum plausible flow are still discarded, but counted
//!   ([`H2o::discarded`]), logged (at most one line a minute) and flagged with malfunction bit
//!   0x10 until 10 min without a burst; the range check uses the real time between two counter
//!   reads, not an assumed 1 s.
//! * The rate is recomputed every 5 s (the reference: every ~6 s).
//! * `Pumped` is the volume of the last complete 60 s window, fixed when the window closes, so
//!   forced, repeated or `Refresh` evaluations all see the same value (the reference consumed an
//!   accumulator at each evaluation). `PumpedTotal` (new) is the volume since boot, for Home
//!   Assistant's statistics.
//! * The malfunction bitmap is published as `Malfunction` like every other appliance, and also
//!   as the reference's `Malfunctions` so existing consumers keep working.
//! * The counter's glitch filter is clamped to the ESP32 PCNT maximum (see
//!   [`hearth_drivers::pulses`]); the clamp is logged once.
//! * All value items are retained.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hearth_core::decimal::Decimals;

use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::i2c::I2c;
use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::mcp23017::{self, Mcp23017};
use hearth_drivers::pulses::{FilterSetting, PulseCounter};
use hearth_drivers::ssd1306::{self, Ssd1306};
use hearth_profile::SettingError;

/// Malfunction bit: the level switches are inconsistent (a wet switch above a dry one).
pub const MF_GAP: u32 = 0x01;
/// Malfunction bit: the expander did not initialise.
pub const MF_EXPANDER_INIT: u32 = 0x02;
/// Malfunction bit: reading the expander failed.
pub const MF_EXPANDER_READ: u32 = 0x04;
/// Malfunction bit: a flow burst above the maximum flow was discarded in the last 10 min.
pub const MF_FLOW_RANGE: u32 = 0x10;
/// Malfunction bit: the pulse counter could not be read.
pub const MF_FLOW_READ: u32 = 0x20;

/// Most level switches: the expander's 16 pins.
pub const MAX_SENSORS: usize = 16;
/// Readings that must agree before a switch bitmap is accepted.
pub const DEBOUNCE: usize = 4;

const TICK: Millis = SECOND;
const RECONNECT_EVERY: Millis = 10 * SECOND;
const RATE_EVERY: Millis = 5 * SECOND;
const PUMPED_WINDOW: Millis = MINUTE;
const RANGE_FLAG_HOLD: Millis = 10 * MINUTE;
const BURST_LOG_EVERY: Millis = MINUTE;

/// The appliance's `config.txt` keys. The reference requires all of them; they are optional in
/// this (global) list so other profiles' files stay valid, and [`H2oSettings::from_config`]
/// reports a missing one by name.
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "unit",
        required: false,
        validator: unit,
    },
    KeySpec {
        name: "capacity",
        required: false,
        validator: capacity,
    },
    KeySpec {
        name: "levelsensors",
        required: false,
        validator: levelsensors,
    },
    KeySpec {
        name: "flowpulserate",
        required: false,
        validator: flowpulserate,
    },
    KeySpec {
        name: "maxflow",
        required: false,
        validator: maxflow,
    },
    KeySpec {
        name: "flowpin",
        required: false,
        validator: hearth_profile::gpio_number,
    },
];

fn positive(value: &str, max: f32) -> Option<f32> {
    hearth_core::decimal::parse_f32(value).filter(|x| x.is_finite() && *x > 0.0 && *x <= max)
}

fn unit(value: &str) -> Result<(), &'static str> {
    let n = value.chars().count();
    if (1..=8).contains(&n) && value.chars().all(|c| !c.is_whitespace() && !c.is_control()) {
        Ok(())
    } else {
        Err("expected a unit of 1..=8 characters without spaces, e.g. L")
    }
}

fn capacity(value: &str) -> Result<(), &'static str> {
    positive(value, 1.0e7)
        .map(|_| ())
        .ok_or("expected the tank capacity, a number > 0 and <= 10000000, e.g. 1000")
}

fn flowpulserate(value: &str) -> Result<(), &'static str> {
    positive(value, 1.0e5)
        .map(|_| ())
        .ok_or("expected pulses per second at 1 unit/min, a number > 0 and <= 100000, e.g. 4.8")
}

fn maxflow(value: &str) -> Result<(), &'static str> {
    positive(value, 1.0e6)
        .map(|_| ())
        .ok_or("expected the maximum flow in units/min, a number > 0 and <= 1000000, e.g. 30")
}

fn levelsensors(value: &str) -> Result<(), &'static str> {
    parse_sensors(value).map(|_| ())
}

/// Parses `levelsensors`: comma-separated level percentages (0..=100) of switch 0, 1, … in
/// strictly ascending order, 1..=16 of them.
pub fn parse_sensors(value: &str) -> Result<Vec<f32>, &'static str> {
    let mut out: Vec<f32> = Vec::new();
    for part in value.split(',') {
        let p = hearth_core::decimal::parse_f32(part.trim())
            .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
            .ok_or("expected percentages 0..=100 separated by commas, e.g. 20,40,60,80,100")?;
        if out.len() == MAX_SENSORS {
            return Err("at most 16 level switches (the expander's pins)");
        }
        if out.last().is_some_and(|last| p <= *last) {
            return Err("levels must be strictly ascending without duplicates, e.g. 20,40,60");
        }
        out.push(p);
    }
    Ok(out)
}

/// The appliance's settings from `config.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct H2oSettings {
    /// `unit`: the volume unit in payloads and on the display.
    pub unit: String,
    /// `capacity`: the tank's volume in `unit`.
    pub capacity: f32,
    /// `levelsensors`: the level (%) of switch i, ascending.
    pub sensors: Vec<f32>,
    /// `flowpulserate`: pulses per second at a flow of 1 unit/min.
    pub pulse_rate: f32,
    /// `maxflow`: the largest plausible flow in unit/min.
    pub max_flow: f32,
}

impl H2oSettings {
    /// Reads the five keys (all required) and checks that the maximum pulse rate fits the
    /// counter (1..=30000 pulses per second).
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let get = |k: &'static str| {
            config
                .profile_settings
                .get(k)
                .map(String::as_str)
                .ok_or(SettingError::Missing {
                    key: k,
                    takes: None,
                })
        };
        let number = |k: &'static str| -> Result<f32, SettingError> {
            let v = get(k)?;
            hearth_core::decimal::parse_f32(v)
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| SettingError::invalid(k, v, "a number > 0"))
        };
        let unit = get("unit")?;
        self::unit(unit).map_err(|e| SettingError::refused("unit", e))?;
        let capacity = number("capacity")?;
        let levels = get("levelsensors")?;
        let sensors =
            parse_sensors(levels).map_err(|e| SettingError::refused("levelsensors", e))?;
        let settings = H2oSettings {
            unit: unit.into(),
            capacity,
            sensors,
            pulse_rate: number("flowpulserate")?,
            max_flow: number("maxflow")?,
        };
        let pps = settings.max_pulses_per_second();
        if !(1.0..=30_000.0).contains(&pps) {
            return Err(SettingError::refused(
                "maxflow",
                format!(
                    "\"maxflow\" × \"flowpulserate\" = {} pulses per second: must be 1..=30000",
                    Decimals(pps, 2)
                ),
            ));
        }
        Ok(settings)
    }

    /// Volume per pulse: (1/60) / `flowpulserate` (4.8 → 0.0034722).
    pub fn volume_per_pulse(&self) -> f32 {
        (1.0 / 60.0) / self.pulse_rate
    }

    /// Pulses per second at the maximum flow: `maxflow` × `flowpulserate` (30 × 4.8 = 144).
    pub fn max_pulses_per_second(&self) -> f32 {
        self.max_flow * self.pulse_rate
    }

    /// The reference's minimum pulse width: a quarter period at maximum flow, whole µs
    /// (144 → 1736).
    pub fn min_pulse_width_us(&self) -> u32 {
        (250_000.0 / self.max_pulses_per_second()) as u32
    }
}

/// Level and switch map from a debounced switch bitmap (bit i = switch i, 0 = wet/active):
/// the level of the last active switch (0 if none) and whether an active switch lies above an
/// inactive one.
pub fn level_from_bitmap(sensors: &[f32], bitmap: u16) -> (f32, bool) {
    let mut level = 0.0;
    let mut seen_inactive = false;
    let mut gap = false;
    for (i, pct) in sensors.iter().enumerate() {
        if bitmap & (1 << i) == 0 {
            level = *pct;
            gap |= seen_inactive;
        } else {
            seen_inactive = true;
        }
    }
    (level, gap)
}

/// Home Assistant's unit for a volume unit string, and its flow-rate unit with a template
/// converting the published unit/min when Home Assistant has no per-minute unit.
fn ha_units(unit: &str) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    Some(match unit {
        "L" | "l" | "litre" | "liter" | "litres" | "liters" => ("L", "L/min", None),
        "mL" | "ml" => ("mL", "mL/s", Some("{{ (value | float / 60) | round(3) }}")),
        "m3" | "m³" => ("m³", "m³/h", Some("{{ (value | float * 60) | round(3) }}")),
        "gal" => ("gal", "gal/min", None),
        "ft3" | "ft³" => ("ft³", "ft³/min", None),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    unit: Option<PubId>,
    pct: Option<PubId>,
    coarse_vol: Option<PubId>,
    est_vol: Option<PubId>,
    est_str: Option<PubId>,
    flow: Option<PubId>,
    since_change: Option<PubId>,
    pumped: Option<PubId>,
    pumped_total: Option<PubId>,
    malfunction: Option<PubId>,
    malfunctions: Option<PubId>,
    map: Option<PubId>,
}

/// What the display shows about the network; the runtime (or board) keeps it current.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStatus {
    /// The device's IP address, if it has one.
    pub ip: Option<String>,
    /// Whether the MQTT session is up.
    pub mqtt_up: bool,
}

/// Discarded over-range flow bursts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Counter reads discarded as above the maximum flow.
    pub bursts: u32,
    /// The pulses they held.
    pub pulses: u64,
}

/// The tank monitor over the expander's and the display's I2C handles (same bus), a pulse
/// counter and a delay.
pub struct H2o<E, S, C, D> {
    expander: Mcp23017<E>,
    display: Ssd1306<S>,
    counter: C,
    #[allow(dead_code)]
    delay: D,
    settings: H2oSettings,
    vpp: f32,
    boot: Millis,
    next_tick: Millis,
    started: bool,
    filter: FilterSetting,
    // Level.
    expander_ok: bool,
    next_connect: Millis,
    window: [u16; DEBOUNCE],
    window_len: usize,
    accepted: Option<u16>,
    level: Option<f32>,
    forced_full: bool,
    level_mf: u32,
    // Flow.
    flow_mf: u32,
    last_read: Millis,
    rate_pulses: u64,
    rate_since: Millis,
    rate: f32,
    since_change: u64,
    total: u64,
    window_pulses: u64,
    window_start: Millis,
    pumped_window: Option<f32>,
    discarded: Discarded,
    unreported: Discarded,
    last_burst: Option<Millis>,
    next_burst_log: Millis,
    // Display.
    display_ok: bool,
    blink: bool,
    net: NetStatus,
    ids: Ids,
}

impl<E: I2c, S: I2c, C: PulseCounter, D: DelayNs> H2o<E, S, C, D> {
    /// The appliance; the first tick (expander probe, display start, first counter read) is
    /// at `now`. Sets the counter's glitch filter to the reference's quarter period at maximum
    /// flow, clamped to what the hardware allows.
    pub fn new(
        expander_i2c: E,
        display_i2c: S,
        mut counter: C,
        delay: D,
        settings: H2oSettings,
        now: Millis,
    ) -> Self {
        let filter =
            counter.set_glitch_filter_ns(settings.min_pulse_width_us().saturating_mul(1000));
        let vpp = settings.volume_per_pulse();
        Self {
            expander: Mcp23017::new(expander_i2c, mcp23017::ADDRESS),
            display: Ssd1306::new(display_i2c, ssd1306::ADDRESS),
            counter,
            delay,
            settings,
            vpp,
            boot: now,
            next_tick: now,
            started: false,
            filter,
            expander_ok: false,
            next_connect: now,
            window: [0; DEBOUNCE],
            window_len: 0,
            accepted: None,
            level: None,
            forced_full: false,
            level_mf: 0,
            flow_mf: 0,
            last_read: now,
            rate_pulses: 0,
            rate_since: now,
            rate: 0.0,
            since_change: 0,
            total: 0,
            window_pulses: 0,
            window_start: now,
            pumped_window: None,
            discarded: Discarded::default(),
            unreported: Discarded::default(),
            last_burst: None,
            next_burst_log: now,
            display_ok: false,
            blink: false,
            net: NetStatus::default(),
            ids: Ids::default(),
        }
    }

    /// The published malfunction bitmap (level bits | flow bits).
    pub fn malfunction(&self) -> u32 {
        self.level_mf | self.flow_mf
    }

    /// The level in % as published: `None` while unknown, 100 while the expander has failed.
    pub fn level(&self) -> Option<f32> {
        if self.forced_full {
            Some(100.0)
        } else {
            self.level
        }
    }

    /// The flow in unit/min of the last rate computation.
    pub fn flow(&self) -> f32 {
        self.rate
    }

    /// Volume pumped since the level last changed.
    pub fn pumped_since_change(&self) -> f32 {
        self.since_change as f32 * self.vpp
    }

    /// Discarded over-range bursts since boot.
    pub fn discarded(&self) -> Discarded {
        self.discarded
    }

    /// The glitch filter the counter applied.
    pub fn filter(&self) -> FilterSetting {
        self.filter
    }

    /// Tells the display the network state.
    pub fn set_net_status(&mut self, net: NetStatus) {
        self.net = net;
    }

    /// The display's frame buffer as last drawn (for the simulator and tests).
    pub fn frame(&self) -> &[u8; ssd1306::BUFFER_LEN] {
        self.display.buffer()
    }

    fn force_full(&mut self) {
        self.forced_full = true;
        self.window_len = 0;
        self.accepted = None;
    }

    async fn connect(&mut self, now: Millis, pubs: &mut Publications) {
        let ok = match self.expander.init().await {
            Ok(()) => self.expander.configure(0xFFFF, 0xFFFF).await.is_ok(),
            Err(_) => false,
        };
        self.expander_ok = ok;
        set_bit(&mut self.level_mf, MF_EXPANDER_INIT, !ok);
        if !ok {
            if !self.forced_full {
                pubs.log("h2o: level switch expander not found: level forced to 100%");
            }
            self.force_full();
            self.next_connect = now + RECONNECT_EVERY;
        }
    }

    async fn read_level(&mut self, now: Millis, pubs: &mut Publications) {
        let raw = match self.expander.read_gpio().await {
            Ok(raw) => raw,
            Err(_) => {
                self.expander_ok = false;
                set_bit(&mut self.level_mf, MF_EXPANDER_READ, true);
                if !self.forced_full {
                    pubs.log("h2o: level switch read failed: level forced to 100%");
                }
                self.force_full();
                self.next_connect = now + RECONNECT_EVERY;
                return;
            }
        };
        set_bit(&mut self.level_mf, MF_EXPANDER_READ, false);
        let n = self.settings.sensors.len();
        let bits = if n >= 16 {
            raw
        } else {
            raw & ((1u16 << n) - 1)
        };
        if self.window_len == DEBOUNCE {
            self.window.copy_within(1.., 0);
            self.window_len -= 1;
        }
        self.window[self.window_len] = bits;
        self.window_len += 1;
        if self.window_len < DEBOUNCE || self.window.iter().any(|b| *b != bits) {
            return;
        }
        if self.accepted == Some(bits) {
            return;
        }
        self.accepted = Some(bits);
        self.forced_full = false;
        let (level, gap) = level_from_bitmap(&self.settings.sensors, bits);
        set_bit(&mut self.level_mf, MF_GAP, gap);
        if self.level != Some(level) {
            self.since_change = 0;
        }
        self.level = Some(level);
    }

    fn read_flow(&mut self, now: Millis, pubs: &mut Publications) {
        // The first read after boot covers up to one tick.
        let elapsed = now.saturating_sub(self.last_read).max(TICK);
        self.last_read = now;
        match self.counter.take() {
            Err(_) => set_bit(&mut self.flow_mf, MF_FLOW_READ, true),
            Ok(n) => {
                set_bit(&mut self.flow_mf, MF_FLOW_READ, false);
                let limit = self.settings.max_pulses_per_second() * elapsed as f32 / 1000.0;
                if n as f32 > limit {
                    for d in [&mut self.discarded, &mut self.unreported] {
                        d.bursts = d.bursts.saturating_add(1);
                        d.pulses = d.pulses.saturating_add(u64::from(n));
                    }
                    self.last_burst = Some(now);
                    set_bit(&mut self.flow_mf, MF_FLOW_RANGE, true);
                } else {
                    let n = u64::from(n);
                    self.rate_pulses += n;
                    self.since_change += n;
                    self.total += n;
                    self.window_pulses += n;
                }
            }
        }
        if self.unreported.bursts > 0 && now >= self.next_burst_log {
            pubs.log(format!(
                "h2o: flow too high: {} burst(s) with {} pulses discarded (limit {} pulses/s)",
                self.unreported.bursts,
                self.unreported.pulses,
                Decimals(self.settings.max_pulses_per_second(), 0)
            ));
            self.unreported = Discarded::default();
            self.next_burst_log = now + BURST_LOG_EVERY;
        }
        if self
            .last_burst
            .is_some_and(|t| now.saturating_sub(t) >= RANGE_FLAG_HOLD)
        {
            set_bit(&mut self.flow_mf, MF_FLOW_RANGE, false);
        }
        let since = now.saturating_sub(self.rate_since);
        if since >= RATE_EVERY {
            self.rate = self.rate_pulses as f32 * self.vpp / (since as f32 / 60_000.0);
            self.rate_pulses = 0;
            self.rate_since = now;
        }
        if now.saturating_sub(self.window_start) >= PUMPED_WINDOW {
            self.pumped_window = Some(self.window_pulses as f32 * self.vpp);
            self.window_pulses = 0;
            self.window_start = now;
            if let Some(id) = self.ids.pumped {
                pubs.expedite(id, now);
            }
        }
    }

    fn estimated_string(&self) -> Option<String> {
        self.level().map(|l| {
            format!(
                "{}% + {}{}",
                Decimals(l, 0),
                Decimals(self.pumped_since_change(), 0),
                self.settings.unit
            )
        })
    }

    /// Draws the reference's screen into the frame buffer.
    fn draw(&mut self, now: Millis) {
        self.blink = !self.blink;
        let mf = self.malfunction();
        let ip = match &self.net.ip {
            Some(ip) => {
                let skip = ip.chars().count().saturating_sub(8);
                ip.chars().skip(skip).collect()
            }
            // Online, but the network did not say its address.
            None if self.net.mqtt_up => String::from("net up"),
            None => String::from("no net"),
        };
        let mqtt = if self.net.mqtt_up {
            "MQTT up"
        } else {
            "MQTT down"
        };
        let s = now.saturating_sub(self.boot) / 1000;
        let uptime = format!(
            "{}:{:02}:{:02}:{:02}",
            s / 86_400,
            s / 3600 % 24,
            s / 60 % 60,
            s % 60
        );
        let status = if mf != 0 {
            format!("Error {mf}")
        } else {
            self.estimated_string()
                .unwrap_or_else(|| String::from("Level unknown"))
        };
        let flow = if self.rate > 0.0 {
            format!("{}{}/min", Decimals(self.rate, 1), self.settings.unit)
        } else if self.flow_mf != 0 {
            String::from("Flow meter MF")
        } else {
            String::from("No flow")
        };
        let pct = self.level().unwrap_or(0.0);
        let n = self.settings.sensors.len() as i32;
        let accepted = self.accepted;
        let d = &mut self.display;
        d.clear();
        if self.rate <= 0.0 || self.blink {
            d.rect(0, 0, 12, 64, true);
            let top = 63 - (62.0 * pct / 100.0) as i32;
            let width = if mf != 0 { 5 } else { 12 };
            d.fill_rect(0, top, width, 64 - top, true);
            if let (true, Some(bits)) = (mf != 0, accepted) {
                for i in 0..n {
                    if bits & (1 << i) == 0 {
                        d.fill_rect(8, 64 - (i + 1) * 64 / n, 2, 64 / n, true);
                    }
                }
            }
        }
        for (y, line) in [
            (0, ip.as_str()),
            (12, mqtt),
            (24, &uptime),
            (36, &status),
            (48, &flow),
        ] {
            d.text(20, y, line);
        }
    }

    async fn refresh_display(&mut self, now: Millis, pubs: &mut Publications) {
        if !self.display_ok {
            return;
        }
        self.draw(now);
        if self.display.flush().await.is_err() {
            self.display_ok = false;
            pubs.log("h2o: display write failed: display dropped");
        }
    }
}

fn set_bit(map: &mut u32, bit: u32, on: bool) {
    if on {
        *map |= bit;
    } else {
        *map &= !bit;
    }
}

impl<E: I2c, S: I2c, C: PulseCounter, D: DelayNs> hearth_profile::Profile for H2o<E, S, C, D> {
    fn name(&self) -> &'static str {
        "h2o"
    }

    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>) {
        self.net.mqtt_up = online;
        if online {
            self.net.ip = address.map(|a| format!("{a}"));
        }
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        let mut reg = |item, eval, force| {
            Some(pubs.register(PubSpec::periodic(item, eval, force).retained(), now))
        };
        let s10 = 10 * SECOND;
        let m10 = 10 * MINUTE;
        let m30 = 30 * MINUTE;
        self.ids = Ids {
            unit: reg("VolUnit", 1000 * MINUTE, m30),
            pct: reg("CoarseLevelPct", SECOND, m10),
            coarse_vol: reg("CoarseLevelVol", SECOND, m10),
            est_vol: reg("EstimatedLevelVol", s10, m10),
            est_str: reg("EstimatedLevelStr", s10, m10),
            flow: reg("Flow", s10, m30),
            since_change: reg("PumpedAfterLevelChange", s10, m30),
            pumped: reg("Pumped", MINUTE, m30),
            pumped_total: reg("PumpedTotal", MINUTE, m30),
            malfunction: reg("Malfunction", s10, m30),
            malfunctions: reg("Malfunctions", s10, m30),
            map: reg("LevelSensorMap", SECOND, m30),
        };
    }

    fn next_work(&self) -> Millis {
        self.next_tick
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = (self.next_tick + TICK).max(now + 1);
        if !self.started {
            self.started = true;
            if self.filter.clamped() {
                pubs.log(format!(
                    "h2o: flow glitch filter {} ns requested, {} ns applied (hardware maximum)",
                    self.filter.requested_ns, self.filter.applied_ns
                ));
            }
            self.display_ok = self.display.init().await.is_ok();
            if !self.display_ok {
                pubs.log("h2o: No display found");
            }
        }
        let mf_before = self.malfunction();
        if !self.expander_ok && now >= self.next_connect {
            self.connect(now, pubs).await;
        }
        if self.expander_ok {
            self.read_level(now, pubs).await;
        }
        self.read_flow(now, pubs);
        self.refresh_display(now, pubs).await;
        if self.malfunction() != mf_before {
            for id in [self.ids.malfunction, self.ids.malfunctions]
                .into_iter()
                .flatten()
            {
                pubs.expedite(id, now);
            }
        }
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        let ids = self.ids;
        let id = Some(id);
        let coarse = self.level().map(|l| l * self.settings.capacity / 100.0);
        if id == ids.unit {
            Some(self.settings.unit.clone())
        } else if id == ids.pct {
            self.level().map(|l| format!("{}", Decimals(l, 0)))
        } else if id == ids.coarse_vol {
            coarse.map(|v| format!("{}", Decimals(v, 0)))
        } else if id == ids.est_vol {
            coarse.map(|v| format!("{}", Decimals(v + self.pumped_since_change(), 0)))
        } else if id == ids.est_str {
            self.estimated_string()
        } else if id == ids.flow {
            Some(format!("{}", Decimals(self.rate, 1)))
        } else if id == ids.since_change {
            Some(format!("{}", Decimals(self.pumped_since_change(), 1)))
        } else if id == ids.pumped {
            self.pumped_window.map(|v| format!("{}", Decimals(v, 1)))
        } else if id == ids.pumped_total {
            Some(format!("{}", Decimals(self.total as f32 * self.vpp, 1)))
        } else if id == ids.malfunction || id == ids.malfunctions {
            Some(format!("{}", self.malfunction()))
        } else if id == ids.map {
            self.accepted.map(|bits| {
                let n = self.settings.sensors.len();
                let flags: Vec<&str> = (0..n)
                    .map(|i| if bits & (1 << i) == 0 { "1" } else { "0" })
                    .collect();
                flags.join(",")
            })
        } else {
            None
        }
    }

    fn entities(&self) -> Vec<Entity> {
        let m = Some("measurement");
        let units = ha_units(&self.settings.unit);
        let vol = units.map(|u| u.0);
        let volume =
            |item: &str, name: &str, class: &'static str, state: Option<&'static str>| match vol {
                Some(u) => Entity::sensor(item, name, Some(class), Some(u), state),
                None => Entity::sensor(item, name, None, None, state),
            };
        let flow = match units {
            Some((_, unit, template)) => Entity {
                value_template: template.map(String::from),
                ..Entity::sensor("Flow", "Flow rate", Some("volume_flow_rate"), Some(unit), m)
            },
            None => Entity::sensor("Flow", "Flow rate", None, None, m),
        };
        alloc::vec![
            Entity::sensor("CoarseLevelPct", "Level", None, Some("%"), m),
            volume("CoarseLevelVol", "Level volume", "volume_storage", m),
            volume("EstimatedLevelVol", "Estimated volume", "volume_storage", m),
            Entity::sensor("EstimatedLevelStr", "Estimated level", None, None, None),
            flow,
            volume(
                "PumpedAfterLevelChange",
                "Pumped since level change",
                "volume",
                Some("total_increasing")
            ),
            volume("Pumped", "Pumped last minute", "volume", None),
            volume(
                "PumpedTotal",
                "Pumped total",
                "volume",
                Some("total_increasing")
            ),
            Entity::sensor("LevelSensorMap", "Level switches", None, None, None),
            Entity::diagnostic("Malfunction", "Malfunction"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::RefCell;
    use embassy_futures::block_on;
    use embedded_hal_async::i2c::{ErrorKind, ErrorType, Operation};
    use hearth_profile::Profile;

    /// A minimal MCP23017 (sequential registers, pins = `pins`) or a write-only display.
    #[derive(Default)]
    struct Chip {
        regs: [u8; 0x16],
        pointer: usize,
        pins: u16,
        absent: bool,
        writes: usize,
    }

    #[derive(Clone, Default)]
    struct Bus(Rc<RefCell<Chip>>);

    impl ErrorType for Bus {
        type Error = ErrorKind;
    }

    impl I2c for Bus {
        async fn transaction(
            &mut self,
            _address: u8,
            ops: &mut [Operation<'_>],
        ) -> Result<(), ErrorKind> {
            let mut c = self.0.borrow_mut();
            if c.absent {
                return Err(ErrorKind::Other);
            }
            c.writes += 1;
            let mut first = true;
            for op in ops {
                match op {
                    Operation::Write(bytes) => {
                        for &b in bytes.iter() {
                            if first {
                                c.pointer = usize::from(b) % 0x16;
                                first = false;
                            } else {
                                let p = c.pointer;
                                c.regs[p] = b;
                                c.pointer = (p + 1) % 0x16;
                            }
                        }
                    }
                    Operation::Read(buf) => {
                        for b in buf.iter_mut() {
                            let p = c.pointer;
                            *b = match p {
                                0x12 => (c.pins >> 8) as u8,
                                0x13 => c.pins as u8,
                                _ => c.regs[p],
                            };
                            c.pointer = (p + 1) % 0x16;
                        }
                    }
                }
            }
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct Counter(Rc<RefCell<(u32, bool, u32)>>);

    impl PulseCounter for Counter {
        type Error = ();
        fn take(&mut self) -> Result<u32, ()> {
            let mut c = self.0.borrow_mut();
            if c.1 {
                return Err(());
            }
            Ok(core::mem::take(&mut c.0))
        }
        fn set_glitch_filter_ns(&mut self, ns: u32) -> FilterSetting {
            self.0.borrow_mut().2 = ns;
            hearth_drivers::pulses::pcnt_filter(ns)
        }
    }

    struct NoDelay;
    impl DelayNs for NoDelay {
        async fn delay_ns(&mut self, _ns: u32) {}
    }

    fn settings() -> H2oSettings {
        H2oSettings {
            unit: "L".into(),
            capacity: 1000.0,
            sensors: alloc::vec![20.0, 40.0, 60.0, 80.0, 100.0],
            pulse_rate: 4.8,
            max_flow: 30.0,
        }
    }

    struct Rig {
        h2o: H2o<Bus, Bus, Counter, NoDelay>,
        pubs: Publications,
        exp: Bus,
        disp: Bus,
        counter: Counter,
        now: Millis,
    }

    impl Rig {
        fn new() -> Self {
            let (exp, disp, counter) = (Bus::default(), Bus::default(), Counter::default());
            exp.0.borrow_mut().pins = 0xFFFF;
            let mut h2o = H2o::new(
                exp.clone(),
                disp.clone(),
                counter.clone(),
                NoDelay,
                settings(),
                0,
            );
            let mut pubs = Publications::new(16);
            h2o.register(&mut pubs, 0);
            Rig {
                h2o,
                pubs,
                exp,
                disp,
                counter,
                now: 0,
            }
        }

        /// Switch i wet = pin i low.
        fn wet(&self, wet: u16) {
            self.exp.0.borrow_mut().pins = !wet;
        }

        fn tick(&mut self, pulses: u32) {
            self.counter.0.borrow_mut().0 += pulses;
            block_on(self.h2o.work(self.now, &mut self.pubs));
            self.now += SECOND;
        }

        fn value(&mut self, item: &str) -> Option<String> {
            let ids = self.h2o.ids;
            let id = [
                ids.unit,
                ids.pct,
                ids.coarse_vol,
                ids.est_vol,
                ids.est_str,
                ids.flow,
                ids.since_change,
                ids.pumped,
                ids.pumped_total,
                ids.malfunction,
                ids.malfunctions,
                ids.map,
            ]
            .into_iter()
            .flatten()
            .find(|id| self.pubs.item(*id) == item)
            .expect(item);
            self.h2o.evaluate(id, self.now)
        }

        fn logs(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some(m) = self.pubs.pop() {
                if m.item == "Log" {
                    out.push(m.payload);
                }
            }
            out
        }
    }

    #[test]
    fn calibration_matches_the_reference() {
        let s = settings();
        assert!((s.volume_per_pulse() - 0.003_472_2).abs() < 1e-6);
        assert_eq!(s.max_pulses_per_second(), 144.0);
        assert_eq!(s.min_pulse_width_us(), 1736);
        let s50 = H2oSettings {
            max_flow: 50.0,
            ..settings()
        };
        assert_eq!(s50.min_pulse_width_us(), 1041);
        let r = Rig::new();
        assert_eq!(r.counter.0.borrow().2, 1_736_000);
        assert!(r.h2o.filter().clamped());
        assert_eq!(r.h2o.filter().applied_ns, 12_787);
    }

    #[test]
    fn levels_need_four_equal_readings_even_the_first() {
        let mut r = Rig::new();
        r.wet(0b00111);
        for _ in 0..3 {
            r.tick(0);
            assert_eq!(r.value("CoarseLevelPct"), None);
        }
        r.tick(0);
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("60"));
        assert_eq!(r.value("CoarseLevelVol").as_deref(), Some("600"));
        assert_eq!(r.value("LevelSensorMap").as_deref(), Some("1,1,1,0,0"));
        assert_eq!(r.value("EstimatedLevelStr").as_deref(), Some("60% + 0L"));
        // A bouncing switch is ignored until it settles for 4 readings.
        r.wet(0b01111);
        r.tick(0);
        r.wet(0b00111);
        r.tick(0);
        r.wet(0b01111);
        for _ in 0..3 {
            r.tick(0);
            assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("60"));
        }
        r.tick(0);
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("80"));
        assert_eq!(r.value("Malfunction").as_deref(), Some("0"));
    }

    #[test]
    fn a_gap_is_a_malfunction_and_unconfigured_pins_are_ignored() {
        let mut r = Rig::new();
        // Switch 1 dry below wet switches 2 and 3; pins 5.. are not switches.
        r.wet(0b1111_0000_0000_1101);
        for _ in 0..4 {
            r.tick(0);
        }
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("80"));
        assert_eq!(r.value("Malfunction").as_deref(), Some("1"));
        assert_eq!(r.value("Malfunctions").as_deref(), Some("1"));
        assert_eq!(r.value("LevelSensorMap").as_deref(), Some("1,0,1,1,0"));
        assert_eq!(level_from_bitmap(&settings().sensors, 0xFFFF), (0.0, false));
    }

    #[test]
    fn expander_failure_forces_full_and_recovery_re_evaluates_the_same_bitmap() {
        let mut r = Rig::new();
        r.wet(0b00011);
        for _ in 0..4 {
            r.tick(0);
        }
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("40"));
        r.exp.0.borrow_mut().absent = true;
        r.tick(0);
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("100"));
        assert_eq!(r.value("Malfunction").as_deref(), Some("4"));
        assert!(r.logs().iter().any(|l| l.contains("forced to 100%")));
        // Reconnection attempts fail while it is gone.
        for _ in 0..12 {
            r.tick(0);
        }
        assert_eq!(r.value("Malfunction").as_deref(), Some("6"));
        // Back with the very same switches: the level must come back (the reference's bug).
        r.exp.0.borrow_mut().absent = false;
        for _ in 0..14 {
            r.tick(0);
        }
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("40"));
        assert_eq!(r.value("Malfunction").as_deref(), Some("0"));
    }

    #[test]
    fn an_absent_expander_at_boot_reads_full() {
        let mut r = Rig::new();
        r.exp.0.borrow_mut().absent = true;
        r.disp.0.borrow_mut().absent = true;
        r.tick(0);
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("100"));
        assert_eq!(r.value("CoarseLevelVol").as_deref(), Some("1000"));
        assert_eq!(r.value("Malfunction").as_deref(), Some("2"));
        assert_eq!(r.value("LevelSensorMap"), None);
        let logs = r.logs();
        assert!(
            logs.iter().any(|l| l.contains("No display found")),
            "{logs:?}"
        );
        assert!(
            logs.iter().any(|l| l.contains("12787 ns applied")),
            "{logs:?}"
        );
    }

    #[test]
    fn flow_rate_volumes_and_pumped_windows() {
        let mut r = Rig::new();
        r.wet(0b00111);
        r.tick(0);
        // 48 pulses/s = 10 L/min.
        for _ in 0..5 {
            r.tick(48);
        }
        assert_eq!(r.value("Flow").as_deref(), Some("10.0"));
        assert_eq!(r.value("CoarseLevelPct").as_deref(), Some("60"));
        assert_eq!(r.value("Pumped"), None);
        for _ in 0..55 {
            r.tick(48);
        }
        // Window 0..60 s: the reads at 1..=60 s, 60 × 48 pulses at 1/288 L.
        let pumped = r.value("Pumped");
        assert_eq!(pumped.as_deref(), Some("10.0"));
        // Evaluating again (forced, Refresh) does not consume it.
        assert_eq!(r.value("Pumped"), pumped);
        assert_eq!(r.value("PumpedTotal").as_deref(), Some("10.0"));
        // The level became known at t = 3 s (4th reading), which starts the volume since the
        // change: 58 reads of 48 pulses at 1/288 L = 9.67 L.
        assert_eq!(r.value("PumpedAfterLevelChange").as_deref(), Some("9.7"));
        assert_eq!(r.value("EstimatedLevelVol").as_deref(), Some("610"));
        assert_eq!(r.value("EstimatedLevelStr").as_deref(), Some("60% + 10L"));
        // A level change restarts the volume since the change.
        r.wet(0b01111);
        for _ in 0..4 {
            r.tick(0);
        }
        assert_eq!(r.value("PumpedAfterLevelChange").as_deref(), Some("0.0"));
        assert_eq!(r.value("EstimatedLevelStr").as_deref(), Some("80% + 0L"));
        for _ in 0..6 {
            r.tick(0);
        }
        assert_eq!(r.value("Flow").as_deref(), Some("0.0"));
    }

    #[test]
    fn over_range_bursts_are_counted_flagged_and_logged() {
        let mut r = Rig::new();
        r.tick(0);
        r.tick(145);
        r.tick(10);
        assert_eq!(
            r.h2o.discarded(),
            Discarded {
                bursts: 1,
                pulses: 145
            }
        );
        assert_eq!(r.value("Malfunction").as_deref(), Some("16"));
        assert_eq!(r.h2o.total, 10);
        let logs = r.logs();
        assert!(
            logs.iter()
                .any(|l| l.contains("1 burst(s) with 145 pulses")),
            "{logs:?}"
        );
        // The flag holds 10 minutes after the last burst.
        for _ in 0..600 {
            r.tick(0);
        }
        assert_eq!(r.value("Malfunction").as_deref(), Some("0"));
        r.counter.0.borrow_mut().1 = true;
        r.tick(0);
        assert_eq!(r.value("Malfunction").as_deref(), Some("32"));
    }

    #[test]
    fn the_display_shows_the_reference_screen() {
        let mut r = Rig::new();
        r.wet(0b00111);
        for _ in 0..4 {
            r.tick(0);
        }
        let frame = *r.h2o.frame();
        let pixel = |x: usize, y: usize| frame[(y / 8) * 128 + x] & (1 << (y % 8)) != 0;
        // Bar outline and a 60 % fill from y = 63 - 37 = 26.
        assert!(pixel(0, 0) && pixel(11, 0) && !pixel(5, 10));
        assert!(!pixel(5, 25) && pixel(5, 26) && pixel(11, 50));
        // Text at x = 20: compare with the font's first glyph of "no net" ('n').
        let n = ssd1306::font::glyph('n');
        for (dx, col) in n.iter().enumerate() {
            for dy in 0..7 {
                assert_eq!(pixel(20 + dx, dy), col & (1 << dy) != 0);
            }
        }
        assert!(r.disp.0.borrow().writes > 4);
        // A lost display is dropped.
        r.disp.0.borrow_mut().absent = true;
        r.tick(0);
        assert!(r.logs().iter().any(|l| l.contains("display dropped")));
        let writes = r.disp.0.borrow().writes;
        r.disp.0.borrow_mut().absent = false;
        r.tick(0);
        assert_eq!(r.disp.0.borrow().writes, writes);
    }

    #[test]
    fn config_is_strict_and_errors_name_the_key() {
        let cfg = |extra: &str| {
            let text = format!("profile weather\nssid (wired)\nmqttbroker h\nmqttname d\n{extra}");
            hearth_config::parse_with(&text, &["weather"], CONFIG_KEYS)
        };
        let all =
            "unit L\ncapacity 1000\nlevelsensors 20,40,60,80,100\nflowpulserate 4.8\nmaxflow 30\n";
        let s = H2oSettings::from_config(&cfg(all).unwrap()).unwrap();
        assert_eq!(s, settings());
        let e = H2oSettings::from_config(&cfg("unit L\ncapacity 1000\n").unwrap()).unwrap_err();
        assert_eq!(
            e,
            SettingError::Missing {
                key: "levelsensors",
                takes: None
            }
        );
        for (bad, key) in [
            ("levelsensors 20,40,40\n", "levelsensors"),
            ("levelsensors 40,20\n", "levelsensors"),
            (
                "levelsensors 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n",
                "levelsensors",
            ),
            ("levelsensors 20,,40\n", "levelsensors"),
            ("levelsensors 120\n", "levelsensors"),
            ("capacity -5\n", "capacity"),
            ("flowpulserate x\n", "flowpulserate"),
            ("maxflow 0\n", "maxflow"),
            ("unit two words\n", "unit"),
        ] {
            let err = cfg(bad).expect_err(bad);
            let text = format!("{err}");
            assert!(text.contains(key), "{bad}: {text}");
        }
        assert_eq!(
            parse_sensors("5, 10 ,100").unwrap(),
            alloc::vec![5.0, 10.0, 100.0]
        );
        assert_eq!(
            parse_sensors(&"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16".replace(' ', ""))
                .unwrap()
                .len(),
            16
        );
        let e = H2oSettings::from_config(
            &cfg("unit L\ncapacity 1\nlevelsensors 50\nflowpulserate 1000\nmaxflow 100\n").unwrap(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, SettingError::Refused { key, .. } if key == "maxflow"),
            "{e}"
        );
        assert!(format!("{e}").contains("flowpulserate"), "{e}");
    }

    #[test]
    fn entities_use_home_assistant_classes_and_units() {
        let r = Rig::new();
        let es = r.h2o.entities();
        let find = |item: &str| es.iter().find(|e| e.item == item).expect(item).clone();
        assert_eq!(
            find("Flow").component,
            hearth_core::discovery::Component::Sensor {
                device_class: Some("volume_flow_rate"),
                unit: Some("L/min"),
                state_class: Some("measurement"),
            }
        );
        assert_eq!(
            find("CoarseLevelVol").component,
            hearth_core::discovery::Component::Sensor {
                device_class: Some("volume_storage"),
                unit: Some("L"),
                state_class: Some("measurement"),
            }
        );
        assert_eq!(
            find("PumpedTotal").component,
            hearth_core::discovery::Component::Sensor {
                device_class: Some("volume"),
                unit: Some("L"),
                state_class: Some("total_increasing"),
            }
        );
        assert!(find("Malfunction").diagnostic);
        assert!(es.iter().all(|e| e.item != "Malfunctions"));
        let m3 = ha_units("m3").unwrap();
        assert_eq!((m3.0, m3.1), ("m³", "m³/h"));
        assert!(ha_units("bucket").is_none());
    }
}
