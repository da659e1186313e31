//! The `energy` appliance (reference ref-profiles §1): a PZEM-004T v3.0 mains energy meter on a
//! UART (9600 baud, 8N1, Modbus-RTU), sampled about once a second, published as one-minute
//! aggregates (`V`, `Vmin`, `Vmax`, `A`, `Amax`, `W`, `VA`), live `…now` values while a ticker
//! runs, and a `Malfunction` code.
//!
//! # Cadence (as the reference)
//!
//! 20 s after boot the meter's address is read through the general address 0xF8; then, in a
//! loop: request the measurements, collect the answer [`RESPONSE_WAIT`] later (never waiting
//! in between: the UART is only read for what it already holds), idle [`READ_EVERY`]. Every
//! [`WINDOW`] the aggregate of the samples is published (forced, even if unchanged) and a new
//! window starts. `VA` is computed per sample as V × A and averaged.
//!
//! Malfunction codes: 0 ok, 1 the start (address read) failed, 4 a measurement read failed.
//! While it is not 0 no values are published.
//!
//! # Differences from the reference (§13.6)
//!
//! * After an error the meter is retried after [`RETRY_FIRST`] (5 s), doubling on each further
//!   failure up to [`RETRY_MAX`] (2 min), instead of after 10 minutes; the first good sample
//!   resets the back-off. A retry is one 8-byte request, so a missing meter costs nothing.
//! * The ticker: `cmnd/<name>/Ticker` `on`/`1`/`up` runs it for 60 s as before; `on <seconds>`
//!   (1..=86400) runs it for as long as asked; `off`/`0`/`down` stops it. Its state is
//!   published on `stat/<name>/Ticker` (`on`/`off`), so Home Assistant shows it as a switch
//!   that turns itself off when the time is up. (Retained commands are dropped by the runtime.)
//! * The meter's energy counter (`kWh`, 3 decimals = the meter's 1 Wh), frequency (`Hz`, window
//!   mean) and power factor (`PF`, window mean) are published with the aggregates.
//! * `Vmin` starts from the first sample of the window, not from 999999.9.
//! * Value items are retained, so a restarted Home Assistant sees them at once.
//! * A reply from the meter is checked more strictly (addresses, byte counts) by the driver.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hearth_core::decimal::{Decimals, Decimals64};

use embedded_io_async::{Read, ReadReady, Write};
use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::pzem::{Measurement, Pzem, Reply, Request, GENERAL_ADDRESS};
use hearth_profile::SettingError;

/// Malfunction: the start (reading the meter's address) failed.
pub const MF_START: u32 = 1;
/// Malfunction: a measurement read failed.
pub const MF_READ: u32 = 4;

/// First start after boot.
pub const STARTUP_AFTER: Millis = 20 * SECOND;
/// Idle time between a sample and the next request.
pub const READ_EVERY: Millis = 500;
/// Time between a request and the collection of its answer (the meter needs ~50 ms).
pub const RESPONSE_WAIT: Millis = 500;
/// The aggregation window.
pub const WINDOW: Millis = MINUTE;
/// How long `Ticker on` runs the ticker.
pub const TICKER_DEFAULT: Millis = MINUTE;
/// The longest ticker `Ticker on <seconds>` grants.
pub const TICKER_MAX_S: u64 = 86_400;
/// First retry after an error.
pub const RETRY_FIRST: Millis = 5 * SECOND;
/// Longest retry interval after repeated errors.
pub const RETRY_MAX: Millis = 2 * MINUTE;
const MF_EVAL: Millis = 5 * SECOND;
const FORCE_EVERY: Millis = 30 * MINUTE;

/// Keys this appliance adds to `config.txt`: the UART pins the firmware gives the meter
/// (optional; the firmware has defaults). The simulator ignores them.
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "pzemtx",
        required: false,
        validator: hearth_profile::gpio_number,
    },
    KeySpec {
        name: "pzemrx",
        required: false,
        validator: hearth_profile::gpio_number,
    },
];

/// The wiring of the meter from `config.txt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnergySettings {
    /// The ESP's TX GPIO (to the meter's RX), `pzemtx`.
    pub tx: Option<u8>,
    /// The ESP's RX GPIO (from the meter's TX), `pzemrx`.
    pub rx: Option<u8>,
}

impl EnergySettings {
    /// Reads `pzemtx` / `pzemrx`; both or neither must be given, and not the same pin.
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let tx = hearth_profile::gpio(config, "pzemtx");
        let rx = hearth_profile::gpio(config, "pzemrx");
        match (tx, rx) {
            (Some(_), None) => Err(SettingError::Needs {
                key: "pzemtx",
                needs: "pzemrx",
            }),
            (None, Some(_)) => Err(SettingError::Needs {
                key: "pzemrx",
                needs: "pzemtx",
            }),
            (Some(t), Some(r)) if t == r => Err(SettingError::SharedPin {
                first: "pzemtx".into(),
                second: "pzemrx".into(),
                pin: t,
            }),
            _ => Ok(Self { tx, rx }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Read the address (through the general address).
    Start,
    /// Collect the address.
    AwaitAddress,
    /// Request the measurements.
    Read,
    /// Collect them.
    AwaitRead,
}

/// The running aggregate of one window. Minima and maxima start from the first sample.
#[derive(Debug, Clone, Copy, Default)]
struct Aggregate {
    n: u32,
    v: f64,
    a: f64,
    w: f64,
    va: f64,
    hz: f64,
    pf: f64,
    vmin: f32,
    vmax: f32,
    amax: f32,
    energy_wh: u32,
}

impl Aggregate {
    fn add(&mut self, m: &Measurement) {
        let first = self.n == 0;
        self.n += 1;
        self.v += f64::from(m.voltage_v);
        self.a += f64::from(m.current_a);
        self.w += f64::from(m.power_w);
        self.va += f64::from(m.voltage_v) * f64::from(m.current_a);
        self.hz += f64::from(m.frequency_hz);
        self.pf += f64::from(m.power_factor);
        if first {
            self.vmin = m.voltage_v;
            self.vmax = m.voltage_v;
            self.amax = m.current_a;
        } else {
            self.vmin = self.vmin.min(m.voltage_v);
            self.vmax = self.vmax.max(m.voltage_v);
            self.amax = self.amax.max(m.current_a);
        }
        self.energy_wh = m.energy_wh;
    }

    fn mean(&self, sum: f64) -> f64 {
        sum / f64::from(self.n.max(1))
    }
}

/// The aggregate items, in publication order.
const AGG_ITEMS: [&str; 10] = [
    "V", "Vmin", "Vmax", "A", "Amax", "W", "VA", "kWh", "Hz", "PF",
];
/// The ticker's live items.
const NOW_ITEMS: [&str; 4] = ["Vnow", "Anow", "Wnow", "VAnow"];

#[derive(Debug, Clone, Default)]
struct Ids {
    agg: Vec<PubId>,
    now: Vec<PubId>,
    ticker: Option<PubId>,
    malfunction: Option<PubId>,
}

/// A ticker command waiting for the next moment the profile knows the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickerCmd {
    On(Millis),
    Off,
}

/// The energy meter appliance over a UART to a PZEM-004T v3.0. The UART is the edge the
/// firmware (esp-hal `Uart` in async mode, 9600 8N1) and the simulator
/// (`hearth_simchips::PzemUart`) both implement: `embedded-io-async` `Read + Write` plus
/// `ReadReady`, so an answer is collected without ever waiting for it.
pub struct Energy<U> {
    pzem: Pzem<U>,
    phase: Phase,
    next: Millis,
    retry: Millis,
    malfunction: u32,
    window_start: Millis,
    agg: Aggregate,
    /// The last published aggregate.
    shown: Option<Aggregate>,
    /// The last sample.
    last: Option<Measurement>,
    ticker_until: Option<Millis>,
    ticker_cmd: Option<TickerCmd>,
    /// The latest time the profile was told (for expediting from `command`).
    clock: Millis,
    ids: Ids,
}

impl<U: Read + Write + ReadReady> Energy<U> {
    /// A meter on `uart` whose first start is [`STARTUP_AFTER`] after `now`.
    pub fn new(uart: U, now: Millis) -> Self {
        Self {
            pzem: Pzem::new(uart),
            phase: Phase::Start,
            next: now + STARTUP_AFTER,
            retry: RETRY_FIRST,
            malfunction: 0,
            window_start: now,
            agg: Aggregate::default(),
            shown: None,
            last: None,
            ticker_until: None,
            ticker_cmd: None,
            clock: now,
            ids: Ids::default(),
        }
    }

    /// The malfunction code (0, [`MF_START`] or [`MF_READ`]).
    pub fn malfunction(&self) -> u32 {
        self.malfunction
    }

    /// Whether the ticker runs at `now`.
    pub fn ticker_on(&self, now: Millis) -> bool {
        self.ticker_until.is_some_and(|t| now < t)
    }

    fn tick(&mut self, now: Millis) {
        self.clock = self.clock.max(now);
        match self.ticker_cmd.take() {
            Some(TickerCmd::On(d)) => self.ticker_until = Some(now + d),
            Some(TickerCmd::Off) => self.ticker_until = None,
            None => {}
        }
    }

    fn set_malfunction(&mut self, code: u32, now: Millis, pubs: &mut Publications) {
        if self.malfunction != code {
            self.malfunction = code;
            if let Some(id) = self.ids.malfunction {
                pubs.expedite(id, now);
            }
        }
    }

    fn fail(&mut self, code: u32, now: Millis, pubs: &mut Publications) {
        self.set_malfunction(code, now, pubs);
        self.phase = Phase::Start;
        self.next = now + self.retry;
        self.retry = (self.retry * 2).min(RETRY_MAX);
        self.last = None;
    }

    fn start_window(&mut self, now: Millis) {
        self.agg = Aggregate::default();
        self.window_start = now;
    }

    fn sample(&mut self, m: Measurement, now: Millis, pubs: &mut Publications) {
        self.set_malfunction(0, now, pubs);
        self.retry = RETRY_FIRST;
        self.last = Some(m);
        self.agg.add(&m);
        if self.ticker_on(now) {
            for i in 0..self.ids.now.len() {
                let id = self.ids.now[i];
                let value = self.now_value(i);
                pubs.offer(id, now, value, true);
            }
        }
        if now.saturating_sub(self.window_start) >= WINDOW {
            if self.agg.n > 0 {
                self.shown = Some(self.agg);
                for i in 0..self.ids.agg.len() {
                    let id = self.ids.agg[i];
                    let value = self.agg_value(i);
                    pubs.offer(id, now, value, true);
                }
            }
            self.start_window(now);
        }
    }

    fn agg_value(&self, i: usize) -> Option<String> {
        if self.malfunction != 0 {
            return None;
        }
        let g = self.shown?;
        Some(match i {
            0 => format!("{}", Decimals64(g.mean(g.v), 1)),
            1 => format!("{}", Decimals(g.vmin, 1)),
            2 => format!("{}", Decimals(g.vmax, 1)),
            3 => format!("{}", Decimals64(g.mean(g.a), 2)),
            4 => format!("{}", Decimals(g.amax, 2)),
            5 => format!("{}", Decimals64(g.mean(g.w), 1)),
            6 => format!("{}", Decimals64(g.mean(g.va), 1)),
            7 => format!("{}.{:03}", g.energy_wh / 1000, g.energy_wh % 1000),
            8 => format!("{}", Decimals64(g.mean(g.hz), 1)),
            9 => format!("{}", Decimals64(g.mean(g.pf), 2)),
            _ => return None,
        })
    }

    fn now_value(&self, i: usize) -> Option<String> {
        if self.malfunction != 0 {
            return None;
        }
        let m = self.last?;
        Some(match i {
            0 => format!("{}", Decimals(m.voltage_v, 1)),
            1 => format!("{}", Decimals(m.current_a, 2)),
            2 => format!("{}", Decimals(m.power_w, 1)),
            3 => format!("{}", Decimals(m.voltage_v * m.current_a, 1)),
            _ => return None,
        })
    }
}

/// Parses a `Ticker` payload: `on`/`1`/`up` [seconds], `off`/`0`/`down` (trimmed, any case).
fn parse_ticker(payload: &str) -> Option<TickerCmd> {
    let text = payload.trim().to_ascii_lowercase();
    let mut words = text.split_whitespace();
    let verb = words.next()?;
    let arg = words.next();
    if words.next().is_some() {
        return None;
    }
    match (verb, arg) {
        ("on" | "1" | "up", None) => Some(TickerCmd::On(TICKER_DEFAULT)),
        ("on" | "1" | "up", Some(s)) if s.bytes().all(|b| b.is_ascii_digit()) => {
            match s.parse::<u64>() {
                Ok(s) if (1..=TICKER_MAX_S).contains(&s) => Some(TickerCmd::On(s * SECOND)),
                _ => None,
            }
        }
        ("off" | "0" | "down", None) => Some(TickerCmd::Off),
        _ => None,
    }
}

impl<U: Read + Write + ReadReady> hearth_profile::Profile for Energy<U> {
    fn name(&self) -> &'static str {
        "energy"
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        self.clock = self.clock.max(now);
        let value = |item: &str| PubSpec::on_demand(item).retained();
        let periodic = |item: &str| PubSpec::periodic(item, MF_EVAL, FORCE_EVERY).retained();
        self.ids = Ids {
            agg: AGG_ITEMS
                .iter()
                .map(|i| pubs.register(value(i), now))
                .collect(),
            now: NOW_ITEMS
                .iter()
                .map(|i| pubs.register(value(i), now))
                .collect(),
            ticker: Some(pubs.register(periodic("Ticker"), now)),
            malfunction: Some(pubs.register(periodic("Malfunction"), now)),
        };
    }

    fn next_work(&self) -> Millis {
        self.next
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        self.tick(now);
        if now < self.next {
            return;
        }
        // Should this round be cut short (the runtime bounds it), the meter is started afresh.
        let phase = core::mem::replace(&mut self.phase, Phase::Start);
        self.next = now + self.retry;
        match phase {
            Phase::Start => {
                self.pzem.set_address(GENERAL_ADDRESS);
                match self.pzem.request(Request::ReadAddress).await {
                    Ok(()) => {
                        self.phase = Phase::AwaitAddress;
                        self.next = now + RESPONSE_WAIT;
                    }
                    Err(_) => self.fail(MF_START, now, pubs),
                }
            }
            Phase::AwaitAddress => match self.pzem.complete().await {
                Ok(Reply::Address(_)) => {
                    self.start_window(now);
                    self.phase = Phase::Read;
                    self.next = now;
                }
                _ => self.fail(MF_START, now, pubs),
            },
            Phase::Read => match self.pzem.request(Request::ReadMeasurements).await {
                Ok(()) => {
                    self.phase = Phase::AwaitRead;
                    self.next = now + RESPONSE_WAIT;
                }
                Err(_) => self.fail(MF_READ, now, pubs),
            },
            Phase::AwaitRead => match self.pzem.complete().await {
                Ok(Reply::Measurement(m)) => {
                    self.sample(m, now, pubs);
                    self.phase = Phase::Read;
                    self.next = now + READ_EVERY;
                }
                _ => self.fail(MF_READ, now, pubs),
            },
        }
    }

    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String> {
        self.tick(now);
        if Some(id) == self.ids.malfunction {
            Some(format!("{}", self.malfunction))
        } else if Some(id) == self.ids.ticker {
            Some(String::from(if self.ticker_on(now) { "on" } else { "off" }))
        } else if let Some(i) = self.ids.agg.iter().position(|x| *x == id) {
            self.agg_value(i)
        } else if let Some(i) = self.ids.now.iter().position(|x| *x == id) {
            self.now_value(i)
        } else {
            None
        }
    }

    async fn command(&mut self, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        if leaf != "Ticker" {
            return false;
        }
        match parse_ticker(payload) {
            Some(cmd) => {
                // Applied with the time of the next evaluation, which this brings forward.
                self.ticker_cmd = Some(cmd);
                if let Some(id) = self.ids.ticker {
                    pubs.expedite(id, self.clock);
                }
            }
            None => pubs.log(format!(
                "Ticker: ignored payload {:?} (expected on [seconds 1..={TICKER_MAX_S}], off)",
                payload.chars().take(40).collect::<String>()
            )),
        }
        true
    }

    fn entities(&self) -> Vec<Entity> {
        let m = Some("measurement");
        let v = |item: &str, name: &str| Entity::sensor(item, name, Some("voltage"), Some("V"), m);
        let a = |item: &str, name: &str| Entity::sensor(item, name, Some("current"), Some("A"), m);
        let w = |item: &str, name: &str| Entity::sensor(item, name, Some("power"), Some("W"), m);
        let va = |item: &str, name: &str| {
            Entity::sensor(item, name, Some("apparent_power"), Some("VA"), m)
        };
        alloc::vec![
            v("V", "Voltage"),
            v("Vmin", "Voltage min"),
            v("Vmax", "Voltage max"),
            a("A", "Current"),
            a("Amax", "Current max"),
            w("W", "Power"),
            va("VA", "Apparent power"),
            Entity::sensor(
                "kWh",
                "Energy",
                Some("energy"),
                Some("kWh"),
                Some("total_increasing")
            ),
            Entity::sensor("Hz", "Frequency", Some("frequency"), Some("Hz"), m),
            Entity::sensor("PF", "Power factor", Some("power_factor"), None, m),
            v("Vnow", "Voltage now"),
            a("Anow", "Current now"),
            w("Wnow", "Power now"),
            va("VAnow", "Apparent power now"),
            Entity::switch("Ticker", "Ticker", "Ticker", "on", "off"),
            Entity::diagnostic("Malfunction", "Malfunction"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_profile::Profile;

    use alloc::collections::VecDeque;
    use alloc::rc::Rc;
    use alloc::string::ToString;
    use alloc::vec;
    use core::cell::RefCell;
    use embassy_futures::block_on;
    use hearth_drivers::pzem::crc16;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Ok,
        Absent,
        Exception,
        Garbage,
    }

    /// A scripted meter behind a fake UART: answers at once, voltages from a script.
    struct Meter {
        mode: Mode,
        volts: VecDeque<f32>,
        amps: f32,
        pf: f32,
        hz: f32,
        wh: u32,
        rx: VecDeque<u8>,
        requests: u32,
    }

    #[derive(Clone)]
    struct Uart(Rc<RefCell<Meter>>);

    fn reply(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend(crc16(body).to_le_bytes());
        v
    }

    impl Meter {
        fn answer(&mut self, req: &[u8]) {
            self.requests += 1;
            let mut r = match (self.mode, req[1]) {
                (Mode::Absent, _) => return,
                (Mode::Exception, f) => reply(&[1, f | 0x80, 4]),
                (_, 0x03) => reply(&[1, 3, 2, 0, 1]),
                (_, _) => {
                    let v = if self.volts.len() > 1 {
                        self.volts.pop_front().unwrap_or(230.0)
                    } else {
                        self.volts.front().copied().unwrap_or(230.0)
                    };
                    let a = (self.amps * 1000.0).round() as u32;
                    let w = (v * self.amps * self.pf * 10.0).round() as u32;
                    let regs: [u16; 10] = [
                        (v * 10.0).round() as u16,
                        a as u16,
                        (a >> 16) as u16,
                        w as u16,
                        (w >> 16) as u16,
                        self.wh as u16,
                        (self.wh >> 16) as u16,
                        (self.hz * 10.0).round() as u16,
                        (self.pf * 100.0).round() as u16,
                        0,
                    ];
                    let mut body = vec![1, 4, 20];
                    for r in regs {
                        body.extend(r.to_be_bytes());
                    }
                    reply(&body)
                }
            };
            if self.mode == Mode::Garbage {
                r[3] ^= 0x55;
            }
            self.rx.extend(r);
        }
    }

    impl embedded_io_async::ErrorType for Uart {
        type Error = core::convert::Infallible;
    }
    impl Read for Uart {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let mut m = self.0.borrow_mut();
            let n = buf.len().min(m.rx.len());
            for b in buf.iter_mut().take(n) {
                *b = m.rx.pop_front().unwrap_or(0);
            }
            Ok(n)
        }
    }
    impl ReadReady for Uart {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.0.borrow().rx.is_empty())
        }
    }
    impl Write for Uart {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.0.borrow_mut().answer(buf);
            Ok(buf.len())
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    struct Rig {
        meter: Rc<RefCell<Meter>>,
        e: Energy<Uart>,
        pubs: Publications,
        now: Millis,
        sent: Vec<(Millis, String, String)>,
    }

    impl Rig {
        fn new() -> Self {
            let meter = Rc::new(RefCell::new(Meter {
                mode: Mode::Ok,
                volts: VecDeque::from([230.0]),
                amps: 2.0,
                pf: 0.9,
                hz: 50.0,
                wh: 12_345,
                rx: VecDeque::new(),
                requests: 0,
            }));
            let mut e = Energy::new(Uart(meter.clone()), 0);
            let mut pubs = Publications::new(16);
            e.register(&mut pubs, 0);
            let mut rig = Rig {
                meter,
                e,
                pubs,
                now: 0,
                sent: Vec::new(),
            };
            rig.run_until(0);
            rig
        }

        /// Runs work and evaluations, as the runtime does, up to and including `end`.
        fn run_until(&mut self, end: Millis) {
            loop {
                let next = self
                    .e
                    .next_work()
                    .min(self.pubs.next_deadline().unwrap_or(Millis::MAX))
                    .max(self.now);
                if next > end {
                    break;
                }
                self.now = next;
                let now = self.now;
                if now >= self.e.next_work() {
                    block_on(self.e.work(now, &mut self.pubs));
                }
                while let Some((id, force)) = self.pubs.due(now) {
                    let v = self.e.evaluate(id, now);
                    self.pubs.offer(id, now, v, force);
                }
                while let Some(o) = self.pubs.pop() {
                    self.sent.push((now, o.item, o.payload));
                }
            }
            self.now = end;
        }

        fn command(&mut self, payload: &str) {
            assert!(block_on(self.e.command("Ticker", payload, &mut self.pubs)));
            let now = self.now;
            while let Some((id, force)) = self.pubs.due(now) {
                let v = self.e.evaluate(id, now);
                self.pubs.offer(id, now, v, force);
            }
            while let Some(o) = self.pubs.pop() {
                self.sent.push((now, o.item, o.payload));
            }
        }

        fn of(&self, item: &str) -> Vec<(Millis, String)> {
            self.sent
                .iter()
                .filter(|(_, i, _)| i == item)
                .map(|(t, _, p)| (*t, p.clone()))
                .collect()
        }

        fn last(&self, item: &str) -> Option<String> {
            self.of(item).last().map(|(_, p)| p.clone())
        }
    }

    #[test]
    fn starts_after_20_s_and_samples_about_once_a_second() {
        let mut r = Rig::new();
        assert_eq!(r.e.next_work(), STARTUP_AFTER);
        r.run_until(STARTUP_AFTER - 1);
        assert_eq!(r.meter.borrow().requests, 0);
        r.run_until(STARTUP_AFTER + 10 * SECOND);
        // Address read, then one measurement per second (500 ms wait + 500 ms idle).
        let n = r.meter.borrow().requests;
        assert!((10..=11).contains(&n), "{n} requests");
        assert_eq!(r.last("Malfunction").as_deref(), Some("0"));
        assert!(r.of("V").is_empty(), "no aggregate before a minute");
    }

    #[test]
    fn aggregates_every_minute_with_min_max_avg() {
        let mut r = Rig::new();
        // Window starts at 20.5 s; voltages rise then stay at 240.
        r.meter.borrow_mut().volts = (0..20).map(|i| 220.0 + i as f32).collect();
        r.run_until(STARTUP_AFTER + WINDOW + 2 * SECOND);
        let v = r.of("V");
        assert_eq!(v.len(), 1, "{:?}", r.sent);
        let t = v[0].0;
        assert!((STARTUP_AFTER + WINDOW..=STARTUP_AFTER + WINDOW + 1_500).contains(&t));
        // The window opened at 20.5 s; samples at 21.0, 22.0, ... 81.0 s, where 60 s have
        // passed: 61 samples, 220..=238 once each, then 239 × 42.
        let sum: f32 = (220..239).map(|x| x as f32).sum::<f32>() + 239.0 * 42.0;
        assert_eq!(r.last("V"), Some(format!("{:.1}", sum / 61.0)));
        assert_eq!(r.last("Vmin").as_deref(), Some("220.0"));
        assert_eq!(r.last("Vmax").as_deref(), Some("239.0"));
        assert_eq!(r.last("A").as_deref(), Some("2.00"));
        assert_eq!(r.last("Amax").as_deref(), Some("2.00"));
        assert_eq!(r.last("VA"), Some(format!("{:.1}", 2.0 * sum / 61.0)));
        assert_eq!(r.last("kWh").as_deref(), Some("12.345"));
        assert_eq!(r.last("Hz").as_deref(), Some("50.0"));
        assert_eq!(r.last("PF").as_deref(), Some("0.90"));
        // Unchanged values are still published at every window.
        r.run_until(STARTUP_AFTER + 2 * WINDOW + 2 * SECOND);
        assert_eq!(r.of("V").len(), 2);
        assert_eq!(r.of("Hz").len(), 2);
        assert_eq!(
            r.last("Vmin").as_deref(),
            Some("239.0"),
            "Vmin restarts per window"
        );
        assert!(r.of("Vnow").is_empty(), "no ticker");
    }

    #[test]
    fn vmin_is_the_lowest_sample_even_when_all_are_high() {
        let mut r = Rig::new();
        r.meter.borrow_mut().volts = VecDeque::from([250.5]);
        r.run_until(STARTUP_AFTER + WINDOW + 2 * SECOND);
        assert_eq!(r.last("Vmin").as_deref(), Some("250.5"));
        assert_eq!(r.last("Vmax").as_deref(), Some("250.5"));
    }

    #[test]
    fn failures_set_the_code_and_retry_with_back_off() {
        let mut r = Rig::new();
        r.meter.borrow_mut().mode = Mode::Absent;
        r.run_until(STARTUP_AFTER + RESPONSE_WAIT);
        assert_eq!(r.e.malfunction(), MF_START);
        assert_eq!(r.last("Malfunction").as_deref(), Some("1"));
        // Retries after 5, 10, 20, 40, 80, 120, 120 s.
        let mut t = STARTUP_AFTER + RESPONSE_WAIT;
        for gap in [5, 10, 20, 40, 80, 120, 120] {
            assert_eq!(r.e.next_work(), t + gap * SECOND);
            t += gap * SECOND + RESPONSE_WAIT;
            r.run_until(t);
            assert_eq!(r.e.malfunction(), MF_START);
        }
        // The meter comes back: the next retry succeeds and the back-off is reset.
        r.meter.borrow_mut().mode = Mode::Ok;
        r.run_until(t + 121 * SECOND);
        assert_eq!(r.e.malfunction(), 0);
        assert_eq!(r.last("Malfunction").as_deref(), Some("0"));
        // A measurement failure: code 4, retry in 5 s.
        r.meter.borrow_mut().mode = Mode::Exception;
        let t = r.now;
        r.run_until(t + 1_000);
        assert_eq!(r.e.malfunction(), MF_READ);
        assert!(r.e.next_work() <= r.now + RETRY_FIRST);
        r.meter.borrow_mut().mode = Mode::Garbage;
        r.run_until(r.now + 5_000);
        assert_ne!(r.e.malfunction(), 0);
        r.meter.borrow_mut().mode = Mode::Ok;
        r.run_until(r.now + 20 * SECOND);
        assert_eq!(r.e.malfunction(), 0);
        let codes: Vec<String> = r.of("Malfunction").into_iter().map(|x| x.1).collect();
        assert!(codes.contains(&"4".to_string()), "{codes:?}");
    }

    #[test]
    fn no_values_while_malfunctioning() {
        let mut r = Rig::new();
        r.run_until(STARTUP_AFTER + WINDOW + 2 * SECOND);
        assert_eq!(r.of("V").len(), 1);
        r.meter.borrow_mut().mode = Mode::Exception;
        r.run_until(r.now + 2 * SECOND);
        assert_eq!(r.e.malfunction(), MF_READ);
        let ids = r.e.ids.clone();
        for id in ids.agg.iter().chain(ids.now.iter()) {
            assert_eq!(r.e.evaluate(*id, r.now), None);
        }
    }

    #[test]
    fn ticker_publishes_live_values_for_as_long_as_asked() {
        let mut r = Rig::new();
        r.run_until(STARTUP_AFTER + 5 * SECOND);
        assert_eq!(r.last("Ticker").as_deref(), Some("off"));
        r.command(" ON ");
        assert_eq!(r.last("Ticker").as_deref(), Some("on"));
        let t0 = r.now;
        r.run_until(t0 + 70 * SECOND);
        let vnow = r.of("Vnow");
        assert!((59..=61).contains(&vnow.len()), "{}", vnow.len());
        assert!(vnow
            .iter()
            .all(|(t, p)| *t < t0 + TICKER_DEFAULT && p == "230.0"));
        assert_eq!(r.last("Anow").as_deref(), Some("2.00"));
        assert_eq!(r.last("Wnow").as_deref(), Some("414.0"));
        assert_eq!(r.last("VAnow").as_deref(), Some("460.0"));
        assert_eq!(r.last("Ticker").as_deref(), Some("off"), "expired");
        // As long as asked: 10 minutes.
        r.command("on 600");
        let t1 = r.now;
        r.run_until(t1 + 11 * MINUTE);
        let late = r.of("Vnow").into_iter().filter(|(t, _)| *t > t1).count();
        assert!((598..=601).contains(&late), "{late}");
        // Off stops it at once.
        r.command("1 100");
        let t2 = r.now;
        r.run_until(t2 + 3 * SECOND);
        r.command("down");
        let n = r.of("Vnow").len();
        r.run_until(r.now + 10 * SECOND);
        assert_eq!(r.of("Vnow").len(), n);
        assert_eq!(r.last("Ticker").as_deref(), Some("off"));
    }

    #[test]
    fn bad_ticker_payloads_are_ignored() {
        for bad in [
            "", "maybe", "on 0", "on -5", "on 86401", "on 5 6", "off 3", "on +5",
        ] {
            assert_eq!(parse_ticker(bad), None, "{bad:?}");
        }
        assert_eq!(parse_ticker("Up"), Some(TickerCmd::On(TICKER_DEFAULT)));
        assert_eq!(parse_ticker("on 86400"), Some(TickerCmd::On(86_400_000)));
        assert_eq!(parse_ticker(" 0 "), Some(TickerCmd::Off));
        let mut r = Rig::new();
        r.command("sideways");
        assert!(r.of("Log").iter().any(|(_, p)| p.contains("sideways")));
        assert!(!block_on(r.e.command("Other", "on", &mut r.pubs)));
    }

    #[test]
    fn entities_and_settings() {
        let r = Rig::new();
        let ents = r.e.entities();
        let items: Vec<&str> = ents.iter().map(|e| e.item.as_str()).collect();
        for item in AGG_ITEMS.iter().chain(NOW_ITEMS.iter()) {
            assert!(items.contains(item), "{item}");
        }
        let kwh = ents.iter().find(|e| e.item == "kWh").unwrap();
        assert_eq!(
            kwh.component,
            hearth_core::discovery::Component::Sensor {
                device_class: Some("energy"),
                unit: Some("kWh"),
                state_class: Some("total_increasing")
            }
        );
        assert!(ents.iter().any(|e| e.item == "Malfunction" && e.diagnostic));
        assert!(ents.iter().any(|e| matches!(
            &e.component,
            hearth_core::discovery::Component::Switch { command, .. } if command == "Ticker"
        )));

        let cfg = |extra: &str| {
            let text = format!("profile weather\nssid (wired)\nmqttbroker h\nmqttname d\n{extra}");
            hearth_config::parse_with(&text, &["weather"], CONFIG_KEYS)
        };
        let c = cfg("pzemtx 17\npzemrx 16\n").unwrap();
        assert_eq!(
            EnergySettings::from_config(&c),
            Ok(EnergySettings {
                tx: Some(17),
                rx: Some(16)
            })
        );
        assert_eq!(
            EnergySettings::from_config(&cfg("").unwrap()),
            Ok(EnergySettings::default())
        );
        let e = EnergySettings::from_config(&cfg("pzemtx 17\n").unwrap()).unwrap_err();
        assert_eq!(
            e,
            SettingError::Needs {
                key: "pzemtx",
                needs: "pzemrx"
            }
        );
        assert_eq!(
            e.to_string(),
            "\"pzemtx\" is given: \"pzemrx\" is needed too"
        );
        let e = EnergySettings::from_config(&cfg("pzemtx 5\npzemrx 5\n").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "\"pzemtx\" and \"pzemrx\" are both GPIO 5");
        assert!(cfg("pzemtx 99\n").is_err());
    }
}
