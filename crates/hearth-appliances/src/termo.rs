//! The `termo` appliance: any number of DS18B20 / DS18S20 thermometers on one 1-Wire bus, one
//! topic per sensor ROM (`stat/<name>/Temperature/<romhex>`), each smoothed by a scalar Kalman
//! filter with an anti-dither rule, and a `Malfunction` code, with the reference's timings.
//!
//! Cycle (reference): first bus scan 30 s after boot, then every 30 s while no sensor is found
//! (malfunction 1). With sensors: every 5 s start a conversion on all, read each ROM 1 s later.
//! A reading failure multiplies a code by 3 (bus: no presence, nobody answering, master error)
//! or 5 (anything else: CRC, implausible data, the 85 °C power-on value); one good reading
//! makes the code 0, none makes it the product.
//!
//! Deliberate differences from the reference (its §13 item 11):
//! * A conversion-start error sets malfunction 2 and the cycle goes on 5 s later (the
//!   reference stopped measuring until the reboot).
//! * The bus is re-scanned every minute, so sensors plugged in later get their topic (the
//!   reference froze the set at the first scan). At most [`MAX_SENSORS`] are kept; a sensor
//!   that disappears keeps its topic and stops publishing after [`STALE_AFTER`].
//! * The 85 °C power-on value is not fed to the filter (counted as a failed reading, ×5)
//!   unless the sensor's estimate is already within 5 °C of 85 °C.
//! * The Kalman parameters come from config keys, with the reference values as defaults.
//! * The 15-minute reboot: the reference re-armed its timer on every failed reading, so
//!   steady failures postponed it forever. Here the deadline is set when a malfunction
//!   starts (no device, or no good reading) and cleared by a good reading; when it passes,
//!   [`Termo::wants_reboot`] tells the runtime to reboot.
//! * Items are retained.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{Fixed, PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::ds18x20::{Family, Thermometers};
use hearth_drivers::onewire::Rom;

/// Malfunction: no thermometer found on the bus.
pub const MF_NO_DEVICES: u32 = 1;
/// Malfunction: starting a conversion failed.
pub const MF_CONVERSION: u32 = 2;
/// Malfunction factor of a ROM whose read failed on the bus.
pub const MF_BUS_FACTOR: u32 = 3;
/// Malfunction factor of a ROM whose read failed otherwise (CRC, data, power-on value).
pub const MF_DATA_FACTOR: u32 = 5;

/// At most this many sensors are kept (each has a topic).
pub const MAX_SENSORS: usize = 32;
/// The first scan after boot.
pub const FIRST_SCAN_AFTER: Millis = 30 * SECOND;
/// Scan period while no sensor is known.
pub const SCAN_RETRY: Millis = 30 * SECOND;
/// Re-scan period once sensors are known.
pub const RESCAN_EVERY: Millis = MINUTE;
/// Conversion period.
pub const CYCLE: Millis = 5 * SECOND;
/// From the conversion start to the read (a 12-bit conversion takes 750 ms).
pub const READ_AFTER: Millis = SECOND;
/// An unrecoverable malfunction lasting this long asks for a reboot.
pub const REBOOT_AFTER: Millis = 15 * MINUTE;
/// A sensor without a good reading for this long stops publishing.
pub const STALE_AFTER: Millis = 5 * MINUTE;
/// The reason [`Termo::wants_reboot`] gives.
pub const REBOOT_REASON: &str = "termo: unrecoverable sensor malfunction for 15 min";

const TEMP_EVAL: Millis = 5 * SECOND;
const TEMP_FORCE: Millis = 5 * MINUTE;
const MF_EVAL: Millis = MINUTE;
const MF_FORCE: Millis = 30 * MINUTE;
/// Anti-dither floor: changes below 0.1 °C (or below σ) are not published.
const DITHER_MIN: f32 = 0.1;
/// A power-on 85 °C reading is believed when the estimate is at least this.
const PLAUSIBLE_85_FROM: f32 = 80.0;

/// The keys this appliance adds to `config.txt`, all optional.
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "onewire",
        required: false,
        validator: hearth_profile::gpio_number,
    },
    KeySpec {
        name: "sensor_sigma",
        required: false,
        validator: sigma,
    },
    KeySpec {
        name: "drift_sigma",
        required: false,
        validator: sigma,
    },
    KeySpec {
        name: "initial_sigma",
        required: false,
        validator: sigma,
    },
];

fn parse_sigma(v: &str) -> Option<f32> {
    hearth_core::decimal::parse_f32(v).filter(|x| x.is_finite() && (0.001..=100.0).contains(x))
}

fn sigma(v: &str) -> Result<(), &'static str> {
    parse_sigma(v)
        .map(|_| ())
        .ok_or("expected a standard deviation in °C, 0.001..=100")
}

/// The Kalman filter's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Measurement variance R, °C² (`sensor_sigma`², default 0.5² = 0.25).
    pub r: f32,
    /// Process noise Q per millisecond, °C²/ms (`drift_sigma`² per minute / 60000, default
    /// 0.25² / 60000).
    pub q_per_ms: f32,
    /// Initial variance P, °C² (`initial_sigma`², default 10² = 100).
    pub p0: f32,
}

impl Default for Settings {
    /// The reference's values.
    fn default() -> Self {
        Settings {
            r: 0.25,
            q_per_ms: 0.0625 / 60_000.0,
            p0: 100.0,
        }
    }
}

impl Settings {
    /// From `sensor_sigma` (°C), `drift_sigma` (°C per minute) and `initial_sigma` (°C); each
    /// missing key keeps the reference value.
    pub fn from_config(config: &Config) -> Result<Self, hearth_profile::SettingError> {
        let get = |k: &str| -> Result<Option<f32>, hearth_profile::SettingError> {
            match config.profile_settings.get(k) {
                None => Ok(None),
                Some(v) => parse_sigma(v).map(Some).ok_or_else(|| {
                    hearth_profile::SettingError::invalid(k, v, "a number of °C in 0.001..=100")
                }),
            }
        };
        let mut s = Settings::default();
        if let Some(x) = get("sensor_sigma")? {
            s.r = x * x;
        }
        if let Some(x) = get("drift_sigma")? {
            s.q_per_ms = x * x / 60_000.0;
        }
        if let Some(x) = get("initial_sigma")? {
            s.p0 = x * x;
        }
        Ok(s)
    }
}

#[derive(Debug, Clone)]
struct Sensor {
    rom: Rom,
    item: String,
    id: Option<PubId>,
    x: Option<f32>,
    p: f32,
    /// The filter's stopwatch.
    last_update: Millis,
    last_ok: Option<Millis>,
    /// The anti-dither's last reported value.
    reported: Option<f32>,
}

impl Sensor {
    fn update(&mut self, z: f32, now: Millis, s: &Settings) {
        let x = *self.x.get_or_insert(z);
        let dt = now.saturating_sub(self.last_update) as f32;
        self.last_update = now;
        let pm = self.p + s.q_per_ms * dt;
        let k = pm / (pm + s.r);
        self.x = Some(k * z + (1.0 - k) * x);
        self.p = (1.0 - k) * pm;
        self.last_ok = Some(now);
    }

    fn report(&mut self, now: Millis) -> Option<String> {
        let x = self.x?;
        if self
            .last_ok
            .is_none_or(|t| now.saturating_sub(t) >= STALE_AFTER)
        {
            return None;
        }
        // |x − last| < max(0.1, √P), squared.
        let value = match self.reported {
            Some(last) if (x - last) * (x - last) < self.p.max(DITHER_MIN * DITHER_MIN) => last,
            _ => {
                self.reported = Some(x);
                x
            }
        };
        Some(format!("{}", Fixed(value, 1)))
    }
}

/// The thermometers on bus `T` (any `OneWireBus`, e.g. `hearth_drivers::onewire::BitBang` or
/// the simulator's bus).
pub struct Termo<T> {
    bus: T,
    settings: Settings,
    sensors: Vec<Sensor>,
    malfunction: Option<u32>,
    reboot_at: Option<Millis>,
    reboot: bool,
    next_scan: Millis,
    next_convert: Option<Millis>,
    read_at: Option<Millis>,
    mf_id: Option<PubId>,
    scan_failing: bool,
    full_logged: bool,
}

impl<T: Thermometers> Termo<T> {
    /// The appliance; the first bus scan is 30 s after `now`, and a reboot is asked for if no
    /// sensor works by 15 min after `now`.
    pub fn new(bus: T, settings: Settings, now: Millis) -> Self {
        Termo {
            bus,
            settings,
            sensors: Vec::new(),
            malfunction: None,
            reboot_at: Some(now + REBOOT_AFTER),
            reboot: false,
            next_scan: now + FIRST_SCAN_AFTER,
            next_convert: None,
            read_at: None,
            mf_id: None,
            scan_failing: false,
            full_logged: false,
        }
    }

    /// The malfunction code; `None` until the first scan.
    pub fn malfunction(&self) -> Option<u32> {
        self.malfunction
    }

    /// The ROMs of the known sensors, in the order found.
    pub fn roms(&self) -> Vec<Rom> {
        self.sensors.iter().map(|s| s.rom).collect()
    }

    /// The filtered temperature of `rom` and its variance P (°C²).
    pub fn estimate(&self, rom: &Rom) -> Option<(f32, f32)> {
        let s = self.sensors.iter().find(|s| s.rom == *rom)?;
        s.x.map(|x| (x, s.p))
    }

    /// For the runtime: `Some(reason)` once a malfunction has lasted [`REBOOT_AFTER`] without a
    /// good reading (no sensor found since boot, conversions failing, every read failing). The
    /// runtime should check it after each [`work`](super::Profile::work) and reboot; it stays
    /// set once set. [`next_work`](super::Profile::next_work) includes the deadline, so it is
    /// noticed on time.
    pub fn wants_reboot(&self) -> Option<&'static str> {
        self.reboot.then_some(REBOOT_REASON)
    }

    fn set_malfunction(&mut self, code: u32, now: Millis, pubs: &mut Publications) {
        if self.malfunction != Some(code) {
            self.malfunction = Some(code);
            if let Some(id) = self.mf_id {
                pubs.expedite(id, now);
            }
        }
        if code == 0 {
            self.reboot_at = None;
        } else if self.reboot_at.is_none() {
            self.reboot_at = Some(now + REBOOT_AFTER);
        }
    }

    fn add_sensor(&mut self, rom: Rom, pubs: &mut Publications, now: Millis) {
        if self.sensors.iter().any(|s| s.rom == rom) || Family::of(&rom).is_none() {
            return;
        }
        if self.sensors.len() >= MAX_SENSORS {
            if !self.full_logged {
                self.full_logged = true;
                pubs.log(format!(
                    "termo: more than {MAX_SENSORS} sensors; {rom} ignored"
                ));
            }
            return;
        }
        let item = format!("Temperature/{rom}");
        let id = self
            .mf_id
            .map(|_| pubs.register(temperature_spec(&item), now));
        pubs.log(format!("termo: new sensor {rom}"));
        self.sensors.push(Sensor {
            rom,
            item,
            id,
            x: None,
            p: self.settings.p0,
            last_update: now,
            last_ok: None,
            reported: None,
        });
    }

    async fn scan(&mut self, now: Millis, pubs: &mut Publications) {
        let mut roms = [Rom::default(); MAX_SENSORS];
        match self.bus.search(&mut roms).await {
            Ok(report) => {
                self.scan_failing = false;
                for rom in roms.iter().take(report.found) {
                    self.add_sensor(*rom, pubs, now);
                }
            }
            Err(e) => {
                if !self.scan_failing {
                    self.scan_failing = true;
                    pubs.log(format!("termo: bus scan failed: {e}"));
                }
            }
        }
        if self.sensors.is_empty() {
            self.set_malfunction(MF_NO_DEVICES, now, pubs);
            self.next_scan = now + SCAN_RETRY;
        } else {
            if self.malfunction.is_none_or(|m| m == MF_NO_DEVICES) {
                // The reference cancels the reboot timer when sensors appear.
                self.reboot_at = None;
            }
            if self.next_convert.is_none() && self.read_at.is_none() {
                self.next_convert = Some(now);
            }
            self.next_scan = now + RESCAN_EVERY;
        }
    }

    async fn read_all(&mut self, now: Millis, pubs: &mut Publications) {
        let mut code: u32 = 1;
        let mut any_ok = false;
        for i in 0..self.sensors.len() {
            let rom = self.sensors[i].rom;
            match self.bus.read_temperature(&rom).await {
                Ok(r) if r.power_on && self.sensors[i].x.is_none_or(|x| x < PLAUSIBLE_85_FROM) => {
                    code = code.saturating_mul(MF_DATA_FACTOR);
                }
                Ok(r) => {
                    let s = &mut self.sensors[i];
                    let first = s.x.is_none();
                    s.update(r.celsius, now, &self.settings);
                    any_ok = true;
                    if first {
                        if let Some(id) = s.id {
                            pubs.expedite(id, now);
                        }
                    }
                }
                Err(e) if e.is_bus() => code = code.saturating_mul(MF_BUS_FACTOR),
                Err(_) => code = code.saturating_mul(MF_DATA_FACTOR),
            }
        }
        self.set_malfunction(if any_ok { 0 } else { code }, now, pubs);
    }
}

fn temperature_spec(item: &str) -> PubSpec {
    PubSpec::periodic(item, TEMP_EVAL, TEMP_FORCE).retained()
}

impl<T: Thermometers> hearth_profile::Profile for Termo<T> {
    fn name(&self) -> &'static str {
        "termo"
    }

    fn wants_reboot(&self) -> Option<&'static str> {
        Termo::wants_reboot(self)
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        self.mf_id = Some(pubs.register(
            PubSpec::periodic("Malfunction", MF_EVAL, MF_FORCE).retained(),
            now,
        ));
        for s in &mut self.sensors {
            if s.id.is_none() {
                s.id = Some(pubs.register(temperature_spec(&s.item), now));
            }
        }
    }

    fn next_work(&self) -> Millis {
        let reboot = self.reboot_at.filter(|_| !self.reboot);
        [
            Some(self.next_scan),
            self.next_convert,
            self.read_at,
            reboot,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_scan)
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        if now >= self.next_scan {
            self.scan(now, pubs).await;
        }
        if self.read_at.is_some_and(|t| now >= t) {
            self.read_at = None;
            self.read_all(now, pubs).await;
            self.next_convert = Some(now + CYCLE - READ_AFTER);
        }
        if self.next_convert.is_some_and(|t| now >= t) {
            match self.bus.start_conversion_all().await {
                Ok(()) => {
                    self.next_convert = None;
                    self.read_at = Some(now + READ_AFTER);
                }
                Err(_) => {
                    self.set_malfunction(MF_CONVERSION, now, pubs);
                    self.next_convert = Some(now + CYCLE);
                }
            }
        }
        if self.reboot_at.is_some_and(|t| now >= t) && !self.reboot {
            self.reboot = true;
            pubs.log(REBOOT_REASON);
        }
    }

    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String> {
        if Some(id) == self.mf_id {
            return self.malfunction.map(|m| format!("{m}"));
        }
        self.sensors
            .iter_mut()
            .find(|s| s.id == Some(id))
            .and_then(|s| s.report(now))
    }

    fn entities_version(&self) -> usize {
        // Sensors are only ever added (a rescan finds new ROMs), so the count is a version.
        self.sensors.len()
    }

    fn entities(&self) -> Vec<Entity> {
        let mut v: Vec<Entity> = self
            .sensors
            .iter()
            .map(|s| {
                Entity::sensor(
                    &s.item,
                    &format!("Temperature {}", s.rom),
                    Some("temperature"),
                    Some("°C"),
                    Some("measurement"),
                )
            })
            .collect();
        v.push(Entity::diagnostic("Malfunction", "Malfunction"));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec;
    use embassy_futures::block_on;
    use hearth_drivers::ds18x20::Reading;
    use hearth_drivers::onewire::{Error, SearchReport};
    use hearth_profile::Profile;

    type R = Result<Reading, Error<()>>;

    #[derive(Default)]
    struct Fake {
        present: Vec<Rom>,
        readings: BTreeMap<Rom, R>,
        conversion_fails: bool,
        search_fails: bool,
        conversions: usize,
    }

    impl Thermometers for Fake {
        type Error = ();
        async fn search(&mut self, roms: &mut [Rom]) -> Result<SearchReport, Error<()>> {
            if self.search_fails {
                return Err(Error::NoResponse);
            }
            let n = self.present.len().min(roms.len());
            roms[..n].copy_from_slice(&self.present[..n]);
            Ok(SearchReport {
                found: n,
                ..SearchReport::default()
            })
        }
        async fn start_conversion_all(&mut self) -> Result<(), Error<()>> {
            self.conversions += 1;
            if self.conversion_fails {
                Err(Error::NoPresence)
            } else {
                Ok(())
            }
        }
        async fn read_temperature(&mut self, rom: &Rom) -> R {
            self.readings
                .get(rom)
                .cloned()
                .unwrap_or(Err(Error::NoResponse))
        }
    }

    fn ok(c: f32) -> R {
        Ok(Reading {
            celsius: c,
            power_on: c == 85.0,
        })
    }

    const A: Rom = Rom([0x28, 1, 2, 3, 4, 5, 6, 7]);
    const B: Rom = Rom([0x10, 9, 9, 9, 9, 9, 9, 9]);
    const OTHER: Rom = Rom([0x01, 1, 1, 1, 1, 1, 1, 1]);

    struct Rig {
        t: Termo<Fake>,
        pubs: Publications,
        now: Millis,
    }

    impl Rig {
        fn new(fake: Fake) -> Self {
            let mut t = Termo::new(fake, Settings::default(), 0);
            let mut pubs = Publications::new(16);
            t.register(&mut pubs, 0);
            Rig { t, pubs, now: 0 }
        }
        /// Runs work at every due time up to `until`.
        fn run_to(&mut self, until: Millis) {
            loop {
                let due = self.t.next_work();
                if due > until {
                    break;
                }
                self.now = due.max(self.now);
                block_on(self.t.work(self.now, &mut self.pubs));
            }
            self.now = until;
        }
        fn id(&self, rom: &Rom) -> PubId {
            self.t
                .sensors
                .iter()
                .find(|s| s.rom == *rom)
                .and_then(|s| s.id)
                .expect("registered")
        }
        fn value(&mut self, rom: &Rom) -> Option<String> {
            let id = self.id(rom);
            self.t.evaluate(id, self.now)
        }
        fn mf(&mut self) -> Option<String> {
            let id = self.t.mf_id.unwrap();
            self.t.evaluate(id, self.now)
        }
        fn fake(&mut self) -> &mut Fake {
            &mut self.t.bus
        }
    }

    fn two_sensors() -> Fake {
        let mut f = Fake {
            present: vec![A, B, OTHER],
            ..Fake::default()
        };
        f.readings.insert(A, ok(21.0));
        f.readings.insert(B, ok(19.5));
        f
    }

    #[test]
    fn reference_timeline_and_topics() {
        let mut rig = Rig::new(two_sensors());
        assert_eq!(rig.t.next_work(), 30 * SECOND, "first scan 30 s after boot");
        assert_eq!(rig.mf(), None, "unknown before the first scan");
        rig.run_to(30 * SECOND);
        assert_eq!(rig.t.roms(), vec![A, B], "non-thermometers ignored");
        assert_eq!(rig.fake().conversions, 1, "cycle starts at once");
        assert_eq!(rig.t.next_work(), 31 * SECOND, "read 1 s later");
        let ida = rig.id(&A);
        assert_eq!(rig.pubs.item(ida), "Temperature/2801020304050607");
        assert_eq!(rig.value(&A), None, "nothing before the first reading");
        rig.run_to(31 * SECOND);
        assert_eq!(rig.value(&A).as_deref(), Some("21.0"));
        assert_eq!(rig.value(&B).as_deref(), Some("19.5"));
        assert_eq!(rig.mf().as_deref(), Some("0"));
        assert_eq!(
            rig.t.next_work(),
            35 * SECOND,
            "next conversion 5 s after the last"
        );
        rig.run_to(60 * SECOND);
        assert_eq!(rig.fake().conversions, 7);
        assert_eq!(rig.t.wants_reboot(), None);

        let entities = rig.t.entities();
        assert_eq!(entities.len(), 3);
        let e = &entities[0];
        assert_eq!(e.item, "Temperature/2801020304050607");
        assert_eq!(
            e.component,
            hearth_core::discovery::Component::Sensor {
                device_class: Some("temperature"),
                unit: Some("°C"),
                state_class: Some("measurement"),
            }
        );
        assert!(entities[2].diagnostic && entities[2].item == "Malfunction");
    }

    #[test]
    fn kalman_follows_the_reference_equations() {
        let mut rig = Rig::new(two_sensors());
        rig.run_to(31 * SECOND);
        // First reading x = z; dt = 1000 ms since the scan; P = (1 − K)(100 + Q·1000).
        let q = 0.0625f32 / 60_000.0;
        let pm = 100.0 + q * 1000.0;
        let p1 = (1.0 - pm / (pm + 0.25)) * pm;
        let (x, p) = rig.t.estimate(&A).unwrap();
        assert_eq!(x, 21.0);
        assert!((p - p1).abs() < 1e-6, "{p} vs {p1}");
        // Second reading 5 s later.
        rig.fake().readings.insert(A, ok(23.0));
        rig.run_to(36 * SECOND);
        let pm = p1 + q * 5000.0;
        let k = pm / (pm + 0.25);
        let (x, p) = rig.t.estimate(&A).unwrap();
        assert!((x - (k * 23.0 + (1.0 - k) * 21.0)).abs() < 1e-4, "{x}");
        assert!((p - (1.0 - k) * pm).abs() < 1e-6);
    }

    #[test]
    fn anti_dither_keeps_the_last_value_for_small_changes() {
        let mut s = Sensor {
            rom: A,
            item: String::new(),
            id: None,
            x: Some(21.0),
            p: 0.0025,
            last_update: 0,
            last_ok: Some(0),
            reported: None,
        };
        assert_eq!(s.report(0).as_deref(), Some("21.0"));
        // σ = 0.05 < 0.1: the floor 0.1 applies.
        s.x = Some(21.09);
        assert_eq!(s.report(0).as_deref(), Some("21.0"), "dither suppressed");
        s.x = Some(21.12);
        assert_eq!(s.report(0).as_deref(), Some("21.1"));
        assert_eq!(s.reported, Some(21.12));
        // σ = 0.3: changes under 0.3 °C are held.
        s.p = 0.09;
        s.x = Some(21.38);
        assert_eq!(s.report(0).as_deref(), Some("21.1"));
        s.x = Some(21.47);
        assert_eq!(s.report(0).as_deref(), Some("21.5"));
        // Stale after 5 min without a good reading.
        assert_eq!(s.report(STALE_AFTER), None);
    }

    #[test]
    fn no_devices_scans_every_30_s_and_asks_for_a_reboot_at_15_min() {
        let mut rig = Rig::new(Fake::default());
        rig.run_to(30 * SECOND);
        assert_eq!(rig.mf().as_deref(), Some("1"));
        assert_eq!(rig.t.next_work(), 60 * SECOND);
        rig.run_to(15 * MINUTE - 1);
        assert_eq!(rig.t.wants_reboot(), None);
        rig.run_to(15 * MINUTE);
        assert_eq!(rig.t.wants_reboot(), Some(REBOOT_REASON));
    }

    #[test]
    fn a_sensor_found_later_gets_its_topic_and_cancels_the_reboot() {
        let mut rig = Rig::new(Fake::default());
        rig.run_to(5 * MINUTE);
        let mut f = two_sensors();
        f.present = vec![A];
        rig.t.bus = f;
        rig.run_to(5 * MINUTE + 31 * SECOND);
        assert_eq!(rig.t.roms(), vec![A]);
        assert_eq!(rig.mf().as_deref(), Some("0"));
        // A second sensor plugged in appears at the next re-scan (1 min).
        rig.fake().present = vec![A, B];
        rig.run_to(6 * MINUTE + 31 * SECOND);
        assert_eq!(rig.t.roms(), vec![A, B]);
        assert_eq!(rig.t.entities().len(), 3);
        rig.run_to(7 * MINUTE);
        assert_eq!(rig.value(&B).as_deref(), Some("19.5"));
        rig.run_to(30 * MINUTE);
        assert_eq!(rig.t.wants_reboot(), None);
    }

    #[test]
    fn conversion_errors_keep_the_cycle_going() {
        let mut rig = Rig::new(two_sensors());
        rig.run_to(31 * SECOND);
        rig.fake().conversion_fails = true;
        rig.run_to(35 * SECOND);
        assert_eq!(rig.mf().as_deref(), Some("2"));
        assert_eq!(rig.t.next_work(), 40 * SECOND, "retried 5 s later");
        rig.run_to(40 * SECOND);
        rig.fake().conversion_fails = false;
        rig.run_to(46 * SECOND);
        assert_eq!(rig.mf().as_deref(), Some("0"), "recovered without a reboot");
    }

    #[test]
    fn read_failures_make_the_product_code_and_the_reboot_after_15_min() {
        let mut rig = Rig::new(two_sensors());
        rig.run_to(31 * SECOND);
        rig.fake().readings.insert(A, Err(Error::NoPresence));
        rig.run_to(36 * SECOND);
        assert_eq!(rig.mf().as_deref(), Some("0"), "one good reading is enough");
        rig.fake().readings.insert(B, Err(Error::Crc));
        rig.run_to(41 * SECOND);
        assert_eq!(rig.mf().as_deref(), Some("15"), "3 × 5");
        rig.fake().readings.insert(B, ok(85.0));
        rig.run_to(46 * SECOND);
        assert_eq!(
            rig.mf().as_deref(),
            Some("15"),
            "85 °C power-on value rejected (×5)"
        );
        assert!((rig.t.estimate(&B).unwrap().0 - 19.5).abs() < 1e-3);
        rig.run_to(41 * SECOND + 15 * MINUTE - 1);
        assert_eq!(
            rig.t.wants_reboot(),
            None,
            "deadline not pushed by later failures"
        );
        rig.run_to(41 * SECOND + 15 * MINUTE);
        assert_eq!(rig.t.wants_reboot(), Some(REBOOT_REASON));
        // Stale sensors stop publishing.
        assert_eq!(rig.value(&A), None);
    }

    #[test]
    fn a_failure_episode_ended_by_a_good_reading_cancels_the_reboot() {
        let mut rig = Rig::new(two_sensors());
        rig.run_to(31 * SECOND);
        rig.fake().readings.clear();
        rig.run_to(10 * MINUTE);
        assert_eq!(rig.mf().as_deref(), Some("9"));
        rig.fake().readings.insert(A, ok(20.0));
        rig.run_to(11 * MINUTE);
        rig.fake().readings.clear();
        rig.run_to(20 * MINUTE);
        assert_eq!(
            rig.t.wants_reboot(),
            None,
            "a new 15-min episode started at 11 min"
        );
        rig.run_to(27 * MINUTE);
        assert_eq!(rig.t.wants_reboot(), Some(REBOOT_REASON));
    }

    #[test]
    fn a_real_85_is_accepted_near_85() {
        let mut f = two_sensors();
        f.readings.insert(A, ok(84.5));
        let mut rig = Rig::new(f);
        rig.run_to(31 * SECOND);
        rig.fake().readings.insert(A, ok(85.0));
        rig.run_to(36 * SECOND);
        let (x, _) = rig.t.estimate(&A).unwrap();
        assert!(x > 84.6, "{x}");
    }

    #[test]
    fn scan_errors_are_logged_once() {
        let mut rig = Rig::new(Fake {
            search_fails: true,
            ..Fake::default()
        });
        rig.run_to(5 * MINUTE);
        let mut lines = 0;
        while let Some(m) = rig.pubs.pop() {
            if m.item == "Log" && m.payload.contains("scan failed") {
                lines += 1;
            }
        }
        assert_eq!(lines, 1);
        assert_eq!(rig.mf().as_deref(), Some("1"));
    }

    #[test]
    fn items_are_retained() {
        let mut rig = Rig::new(two_sensors());
        rig.run_to(31 * SECOND);
        let now = rig.now;
        while let Some((id, force)) = rig.pubs.due(now) {
            let v = rig.t.evaluate(id, now);
            rig.pubs.offer(id, now, v, force);
        }
        let mut seen = 0;
        while let Some(m) = rig.pubs.pop() {
            if m.id.is_some() {
                assert!(m.retain, "{}", m.item);
                seen += 1;
            }
        }
        assert_eq!(seen, 3);
    }

    fn config(extra: &str) -> Result<Config, String> {
        hearth_config::parse_with(
            &format!("profile termo\nssid (wired)\nmqttbroker h\nmqttname Thermometers\n{extra}"),
            &["termo"],
            CONFIG_KEYS,
        )
        .map_err(|e| format!("{e}"))
    }

    #[test]
    fn settings_from_config() {
        let s = Settings::from_config(&config("").unwrap()).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!((s.r, s.p0), (0.25, 100.0));
        let s = Settings::from_config(
            &config("sensor_sigma 0.2\ndrift_sigma 0.5\ninitial_sigma 3\nonewire 14\n").unwrap(),
        )
        .unwrap();
        assert!((s.r - 0.04).abs() < 1e-7);
        assert!((s.q_per_ms - 0.25 / 60_000.0).abs() < 1e-12);
        assert_eq!(s.p0, 9.0);
        for bad in [
            "sensor_sigma 0",
            "drift_sigma x",
            "initial_sigma -1",
            "onewire 99",
        ] {
            assert!(config(&format!("{bad}\n")).is_err(), "{bad}");
        }
    }
}
