//! The `relay` appliance: up to four timed relays. Every ON command carries a duration and the
//! relay switches itself off when it runs out; a relay never stays on without a deadline.
//!
//! # Topics (as the reference, relays numbered from 0 on the wire)
//!
//! * `stat/<name>/<n>/State`: `1` on, `0` off; evaluated every second (published on change,
//!   and at once after a command or an auto-off), forced every 30 min, **retained** (the
//!   reference retained nothing).
//! * `cmnd/<name>/<n>/TurnOnWithTimeout`: decimal whole seconds, an optional sign allowed.
//!   Above the relay's maximum it is clamped to the maximum (and a log line says so); `0` or a
//!   negative number switches the relay off; anything else (`abc`, `1.5`, `5s`, empty) is
//!   logged as an invalid value and ignored. A new command replaces any running timer.
//!
//! # Configuration (the reference hard-coded the maxima, §13.7)
//!
//! Relay *N* in `config.txt` and in Home Assistant's names is topic index *N − 1*:
//! `relay1max` is the maximum of `0/TurnOnWithTimeout`.
//!
//! * `relays`: how many relays, 1..=4 (default 4).
//! * `relay1max` .. `relay4max`: maximum ON time in whole seconds, 1..=86400 (defaults 600,
//!   86400, 86400, 86400: the reference's hard-coded values).
//! * `relay1pin` .. `relay4pin`: GPIO numbers of the relay outputs (the firmware wires them;
//!   the simulator ignores them). Two relays may not share a pin.
//! * `relayactivelow`: `1` (default, the reference's boards: pin LOW = relay energised) or `0`.
//! * `relaydisplay`: `1` for the reference's optional SSD1306 panel on the I2C bus
//!   (`i2csda`/`i2cscl`), see [`RelayPanel`]; `0` (default) for none.
//!
//! # Persistence (the reference persisted nothing)
//!
//! Relay *i* (topic index) keeps its remaining ON time in whole seconds, rounded up, as a `u32`
//! under store key `0x1400 + i` ([`store_key`]); `0` means off. It is written when a command
//! changes the relay, when it switches off, and every [`CHECKPOINT_EVERY`] while it is on. At
//! boot ([`Relay::restore`], or the first `work`/command) a relay stored with time left turns on
//! again for that time, clamped to its current maximum.
//!
//! **Time spent powered off is not counted**: the device has no clock that runs across a reset,
//! so after a power cut the relay runs for the remaining time of the last checkpoint.
//!
//! **The deadline holds across any number of resets.** Before a restored relay turns on, its
//! stored time is lowered by one checkpoint period (the most that can run before the next
//! checkpoint), so every boot consumes at least a minute of the stored time, however soon the
//! next reset comes: a device that resets every few seconds still switches the relay off, at
//! the latest after the commanded time plus one checkpoint period of ON time in total. If that
//! write fails, the relay stays off (a relay never stays on without a deadline). A checkpoint
//! write that fails while running (flash error, full store) is logged once, retried every
//! 10 s, and its recovery logged; the relay itself keeps working from RAM meanwhile.
//!
//! Flash wear: one 16-byte item per relay per minute while on, spread by the store over its
//! whole range. Four relays always on write about 92 KB a day: in a 16 KiB range about eight
//! erases per sector a day, over 30 years of a NOR sector's 100 000 cycles.
//!
//! # Display
//!
//! The reference's optional SSD1306 view is provided as pure functions ([`display_text`],
//! [`blink_phase`], [`Relay::display_marks`]); drawing on a panel is left to the board.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embedded_hal::digital::{OutputPin, PinState};
use embedded_hal_async::i2c::I2c;
use embedded_storage_async::nor_flash::NorFlash;
use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::ssd1306::{self, Ssd1306};
use hearth_storage::Key;

use hearth_platform::store::SharedStore;
use hearth_platform::{Clock, SystemClock};
use hearth_profile::SettingError;

/// Most relays one device drives.
pub const MAX_RELAYS: usize = 4;
/// The reference's maximum ON times in seconds, in topic order: the defaults of `relayNmax`.
pub const DEFAULT_MAX_S: [u32; MAX_RELAYS] = [600, 86_400, 86_400, 86_400];
/// The largest maximum ON time `relayNmax` accepts, in seconds (one day).
pub const LONGEST_MAX_S: u32 = 86_400;
/// The OFF payload of the Home Assistant switches. (The ON payload of each is its relay's
/// maximum ON time in seconds, `relayNmax`: "on" from Home Assistant means "on for the
/// maximum", with nothing to clamp.)
pub const HA_OFF: &str = "0";
/// First store key of this profile (profile slot 4: `0x1000 + 0x100 * 4`).
pub const STORE_FIRST: u16 = 0x1400;
/// How often the remaining time of a relay that is on is written to the store.
pub const CHECKPOINT_EVERY: Millis = MINUTE;
/// How soon a failed store write or pin write is retried.
pub const RETRY_EVERY: Millis = 10 * SECOND;

const COMMAND: &str = "TurnOnWithTimeout";
const STATE: &str = "State";
const EVAL_EVERY: Millis = SECOND;
const FORCE_EVERY: Millis = 30 * MINUTE;
/// Log lines kept for the next `work` or command (restore and retry results).
const NOTES: usize = 8;
/// The display refreshes (and blinks) every this many ms.
const BLINK_HALF_PERIOD: Millis = 500;

/// The store key of relay `i` (topic index); `None` beyond [`MAX_RELAYS`].
pub const fn store_key(i: usize) -> Option<Key> {
    if i < MAX_RELAYS {
        Some(Key::new(STORE_FIRST + i as u16))
    } else {
        None
    }
}

/// The profile's `config.txt` keys (see the module documentation).
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "relays",
        required: false,
        validator: relay_count,
    },
    max_key("relay1max"),
    max_key("relay2max"),
    max_key("relay3max"),
    max_key("relay4max"),
    pin_key("relay1pin"),
    pin_key("relay2pin"),
    pin_key("relay3pin"),
    pin_key("relay4pin"),
    KeySpec {
        name: "relayactivelow",
        required: false,
        validator: zero_or_one,
    },
    KeySpec {
        name: "relaydisplay",
        required: false,
        validator: zero_or_one,
    },
];

const fn max_key(name: &'static str) -> KeySpec {
    KeySpec {
        name,
        required: false,
        validator: max_seconds,
    }
}

const fn pin_key(name: &'static str) -> KeySpec {
    KeySpec {
        name,
        required: false,
        validator: hearth_profile::gpio_number,
    }
}

fn digits(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn relay_count(value: &str) -> Result<(), &'static str> {
    match digits(value) {
        Some(n) if (1..=MAX_RELAYS as u32).contains(&n) => Ok(()),
        _ => Err("expected a relay count 1..=4"),
    }
}

fn max_seconds(value: &str) -> Result<(), &'static str> {
    match digits(value) {
        Some(s) if (1..=LONGEST_MAX_S).contains(&s) => Ok(()),
        _ => Err("expected whole seconds 1..=86400"),
    }
}

fn zero_or_one(value: &str) -> Result<(), &'static str> {
    match value {
        "0" | "1" => Ok(()),
        _ => Err("expected 0 or 1"),
    }
}

/// One relay's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Longest ON time in seconds (1..=[`LONGEST_MAX_S`]).
    pub max_s: u32,
    /// The GPIO driving it, if configured (the firmware's business).
    pub pin: Option<u8>,
}

/// The appliance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// The relays in topic order (1..=[`MAX_RELAYS`]).
    pub relays: Vec<RelayConfig>,
    /// Pin LOW energises the relay (the reference's boards).
    pub active_low: bool,
    /// `relaydisplay 1`: an SSD1306 panel on the I2C bus ([`RelayPanel`]).
    pub display: bool,
}

impl Default for RelaySettings {
    /// The reference: four relays with its maxima, active-low, no pins named.
    fn default() -> Self {
        RelaySettings {
            relays: DEFAULT_MAX_S
                .iter()
                .map(|&max_s| RelayConfig { max_s, pin: None })
                .collect(),
            active_low: true,
            display: false,
        }
    }
}

impl RelaySettings {
    /// The settings of a validated config: the per-key rules were checked by the parser; this
    /// adds the rules across keys (no keys for relays beyond `relays`, no shared pins).
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let get = |k: &str| config.profile_settings.get(k).map(String::as_str);
        let count = match get("relays") {
            None => MAX_RELAYS,
            Some(v) => digits(v)
                .map(|n| n as usize)
                .filter(|n| (1..=MAX_RELAYS).contains(n))
                .ok_or_else(|| SettingError::invalid("relays", v, "1..=4"))?,
        };
        let mut relays = Vec::with_capacity(count);
        for n in 1..=MAX_RELAYS {
            let max_key = format!("relay{n}max");
            let pin_key = format!("relay{n}pin");
            if n > count {
                for key in [&max_key, &pin_key] {
                    if get(key).is_some() {
                        return Err(SettingError::refused(
                            key,
                            format!(
                                "given but \"relays\" is {count}: remove it or raise \"relays\""
                            ),
                        ));
                    }
                }
                continue;
            }
            let max_s = match get(&max_key) {
                None => DEFAULT_MAX_S[n - 1],
                Some(v) => digits(v)
                    .filter(|s| (1..=LONGEST_MAX_S).contains(s))
                    .ok_or_else(|| SettingError::invalid(&max_key, v, "1..=86400 seconds"))?,
            };
            let pin = match get(&pin_key) {
                None => None,
                Some(v) => Some(
                    hearth_profile::gpio(config, &pin_key)
                        .ok_or_else(|| SettingError::invalid(&pin_key, v, "a GPIO number"))?,
                ),
            };
            if let Some(p) = pin {
                if let Some(other) = relays.iter().position(|r: &RelayConfig| r.pin == Some(p)) {
                    return Err(SettingError::SharedPin {
                        first: format!("relay{}pin", other + 1),
                        second: pin_key,
                        pin: p,
                    });
                }
            }
            relays.push(RelayConfig { max_s, pin });
        }
        let active_low = match get("relayactivelow") {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => return Err(SettingError::invalid("relayactivelow", v, "0 or 1")),
        };
        let display = get("relaydisplay") == Some("1");
        Ok(RelaySettings {
            relays,
            active_low,
            display,
        })
    }

    /// The level that keeps relay outputs off: the firmware drives the pins to it before
    /// anything else at boot (the reference's `boot.py`).
    pub fn off_level(&self) -> PinState {
        if self.active_low {
            PinState::High
        } else {
            PinState::Low
        }
    }
}

struct Channel<P> {
    pin: P,
    max: Millis,
    /// When the relay switches off; `None` = off.
    off_at: Option<Millis>,
    /// The remaining seconds the store holds, as far as this run knows.
    saved: Option<u32>,
    /// When the next store write is due (checkpoint or retry).
    save_at: Option<Millis>,
    save_failing: bool,
    /// When to drive the pin again after a failed write.
    pin_retry_at: Option<Millis>,
    state_id: Option<PubId>,
}

/// The timed relays over one output pin each, the device's store and a clock.
pub struct Relay<'s, P, F: NorFlash, C = SystemClock> {
    channels: Vec<Channel<P>>,
    store: &'s SharedStore<F>,
    clock: C,
    active_low: bool,
    restored: bool,
    notes: VecDeque<String>,
}

impl<'s, P: OutputPin, F: NorFlash> Relay<'s, P, F, SystemClock> {
    /// Relays on `pins` (topic order) with `settings`, all switched off at once. There are as
    /// many relays as both `pins` and `settings.relays` have; extra pins are left off and
    /// dropped. Stored states are restored by [`restore`](Self::restore) or, failing that, by
    /// the first `work` or command.
    pub fn new(
        pins: Vec<P>,
        store: &'s SharedStore<F>,
        settings: &RelaySettings,
        now: Millis,
    ) -> Self {
        Self::with_clock(pins, store, settings, SystemClock, now)
    }
}

impl<'s, P: OutputPin, F: NorFlash, C: Clock> Relay<'s, P, F, C> {
    /// As [`Relay::new`] with another clock (tests, or a simulator with its own time).
    pub fn with_clock(
        pins: Vec<P>,
        store: &'s SharedStore<F>,
        settings: &RelaySettings,
        clock: C,
        now: Millis,
    ) -> Self {
        let mut relay = Relay {
            channels: Vec::new(),
            store,
            clock,
            active_low: settings.active_low,
            restored: false,
            notes: VecDeque::new(),
        };
        let off = settings.off_level();
        for (i, mut pin) in pins.into_iter().enumerate() {
            let Some(cfg) = settings.relays.get(i).filter(|_| i < MAX_RELAYS) else {
                let _ = pin.set_state(off);
                continue;
            };
            relay.channels.push(Channel {
                pin,
                max: Millis::from(cfg.max_s) * SECOND,
                off_at: None,
                saved: None,
                save_at: None,
                save_failing: false,
                pin_retry_at: None,
                state_id: None,
            });
            relay.drive(i, now);
        }
        relay
    }

    /// How many relays there are.
    pub fn count(&self) -> usize {
        self.channels.len()
    }

    /// Whether relay `i` (topic index) is on.
    pub fn is_on(&self, i: usize) -> bool {
        self.channels.get(i).is_some_and(|c| c.off_at.is_some())
    }

    /// The ON time left on relay `i` at `now` (`None` when off or no such relay).
    pub fn remaining(&self, i: usize, now: Millis) -> Option<Millis> {
        self.channels
            .get(i)
            .and_then(|c| c.off_at)
            .map(|t| t.saturating_sub(now))
    }

    /// Which display squares are filled at `now`: the relays that are on, during the lit half
    /// of the 1 Hz blink (the reference's SSD1306 view; the others are outlines).
    pub fn display_marks(&self, now: Millis) -> Vec<bool> {
        let lit = blink_phase(now);
        self.channels
            .iter()
            .map(|c| lit && c.off_at.is_some())
            .collect()
    }

    /// Switch relay `i` on for `seconds` (clamped to its maximum; 0 = off) at `now`. Returns
    /// the ON time granted in seconds. The store is not written; use a command for that.
    fn set(&mut self, i: usize, seconds: u64, now: Millis) -> u64 {
        let Some(ch) = self.channels.get_mut(i) else {
            return 0;
        };
        let ms = seconds.saturating_mul(SECOND).min(ch.max);
        ch.off_at = (ms > 0).then(|| now.saturating_add(ms));
        self.drive(i, now);
        ms / SECOND
    }

    /// Restore the relays from the store (once; later calls do nothing). A relay stored with
    /// time left turns on for that time, clamped to its maximum; the time the device was
    /// powered off is not counted (see the module documentation).
    pub async fn restore(&mut self) {
        let now = self.clock.now();
        self.restore_at(now).await;
    }

    async fn restore_at(&mut self, now: Millis) {
        if self.restored {
            return;
        }
        self.restored = true;
        for i in 0..self.channels.len() {
            let Some(key) = store_key(i) else { continue };
            let got = self.store.lock().await.get_u32(key).await;
            match got {
                Ok(Some(s)) if s > 0 => {
                    // Charge this boot with a whole checkpoint period first, so that resets
                    // faster than the checkpoints still run the stored time down.
                    let max_s = u32::try_from(self.channels[i].max / SECOND).unwrap_or(u32::MAX);
                    let ahead = s
                        .min(max_s)
                        .saturating_sub((CHECKPOINT_EVERY / SECOND) as u32);
                    let charged = self.store.lock().await.set_u32(key, ahead).await;
                    if let Err(e) = charged {
                        self.channels[i].saved = None;
                        self.note(format!(
                            "{}: stored on for {s} s, but its deadline cannot be saved ({e}); left off",
                            label(i)
                        ));
                        continue;
                    }
                    let granted = self.set(i, u64::from(s), now);
                    let ch = &mut self.channels[i];
                    ch.saved = Some(ahead);
                    ch.save_at = Some(now.saturating_add(CHECKPOINT_EVERY));
                    let clamp = if granted < u64::from(s) {
                        format!(" (stored {s} s, clamped to the maximum)")
                    } else {
                        String::new()
                    };
                    self.note(format!(
                        "{}: restored on for {granted} s{clamp}; time powered off is not counted",
                        label(i)
                    ));
                }
                Ok(_) => self.channels[i].saved = Some(0),
                Err(e) => self.note(format!(
                    "{}: stored state unreadable ({e}); left off",
                    label(i)
                )),
            }
        }
    }

    /// Drive relay `i`'s pin to its state; a failed write is logged once and retried.
    fn drive(&mut self, i: usize, now: Millis) {
        let active_low = self.active_low;
        let Some(ch) = self.channels.get_mut(i) else {
            return;
        };
        let on = ch.off_at.is_some();
        let level = if on == active_low {
            PinState::Low
        } else {
            PinState::High
        };
        let failing = ch.pin_retry_at.is_some();
        let note = match ch.pin.set_state(level) {
            Ok(()) => {
                ch.pin_retry_at = None;
                failing.then(|| format!("{}: output works again", label(i)))
            }
            Err(e) => {
                ch.pin_retry_at = Some(now.saturating_add(RETRY_EVERY));
                let kind = embedded_hal::digital::Error::kind(&e);
                (!failing)
                    .then(|| format!("{}: output write failed ({kind:?}); retrying", label(i)))
            }
        };
        if let Some(line) = note {
            self.note(line);
        }
    }

    /// Write relay `i`'s remaining time to the store if it changed.
    async fn save(&mut self, i: usize, now: Millis) {
        let store = self.store;
        let Some(ch) = self.channels.get_mut(i) else {
            return;
        };
        let Some(key) = store_key(i) else { return };
        let value = ch.off_at.map_or(0, |t| {
            let ms = t.saturating_sub(now);
            u32::try_from(ms.div_ceil(SECOND)).unwrap_or(u32::MAX)
        });
        let next_checkpoint = ch.off_at.map(|_| now.saturating_add(CHECKPOINT_EVERY));
        if ch.saved == Some(value) {
            ch.save_at = next_checkpoint;
            return;
        }
        let result = store.lock().await.set_u32(key, value).await;
        let note = match result {
            Ok(()) => {
                ch.saved = Some(value);
                ch.save_at = next_checkpoint;
                core::mem::take(&mut ch.save_failing)
                    .then(|| format!("{}: state saved again", label(i)))
            }
            Err(e) => {
                ch.saved = None;
                ch.save_at = Some(now.saturating_add(RETRY_EVERY));
                let first = !core::mem::replace(&mut ch.save_failing, true);
                first.then(|| {
                    format!(
                        "{}: cannot save state ({e}); retrying every 10 s, a reboot now would restore an old state",
                        label(i)
                    )
                })
            }
        };
        if let Some(line) = note {
            self.note(line);
        }
    }

    fn note(&mut self, line: String) {
        log::warn!("{line}");
        if self.notes.len() >= NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back(line);
    }

    fn flush_notes(&mut self, pubs: &mut Publications) {
        while let Some(line) = self.notes.pop_front() {
            pubs.log(line);
        }
    }

    fn expedite(&self, i: usize, pubs: &mut Publications, now: Millis) {
        if let Some(id) = self.channels.get(i).and_then(|c| c.state_id) {
            pubs.expedite(id, now);
        }
    }

    /// The relay index of a command leaf `<n>/TurnOnWithTimeout`.
    fn relay_of(&self, leaf: &str) -> Option<usize> {
        let (n, command) = leaf.split_once('/')?;
        match (n.as_bytes(), command) {
            (&[d], COMMAND) if d.is_ascii_digit() => {
                let i = usize::from(d - b'0');
                (i < self.channels.len()).then_some(i)
            }
            _ => None,
        }
    }
}

/// Parse a `TurnOnWithTimeout` payload: decimal whole seconds with an optional sign,
/// surrounding whitespace allowed. Negative numbers are 0; numbers too large for a `u64`
/// saturate (they are clamped later anyway). `None` for anything else.
pub fn parse_seconds(payload: &str) -> Option<u64> {
    let text = payload.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if negative {
        return Some(0);
    }
    Some(digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Whether the display's ON squares are filled at `now` (1 Hz blink: lit for the first 500 ms
/// of every second, as the reference's 500 ms refresh toggling a flag).
pub fn blink_phase(now: Millis) -> bool {
    (now / BLINK_HALF_PERIOD).is_multiple_of(2)
}

/// The three text lines of the reference's display (column x 20, rows y 0, 12, 24): the last
/// 8 characters of the IP address or `no net`; `MQTT up` / `MQTT down`; the uptime as
/// `D:HH:MM:SS`.
pub fn display_text(ip: Option<&str>, mqtt_up: bool, uptime: Millis) -> [String; 3] {
    let ip = match ip.filter(|s| !s.is_empty()) {
        Some(ip) => {
            let skip = ip.chars().count().saturating_sub(8);
            ip.chars().skip(skip).collect()
        }
        None => String::from("no net"),
    };
    let mqtt = String::from(if mqtt_up { "MQTT up" } else { "MQTT down" });
    let s = uptime / SECOND;
    let up = format!(
        "{}:{:02}:{:02}:{:02}",
        s / 86_400,
        s / 3_600 % 24,
        s / 60 % 60,
        s % 60
    );
    [ip, mqtt, up]
}

/// How log lines name relay `i`: its config/Home Assistant number and its topic index.
fn label(i: usize) -> String {
    format!("relay {} (topic {i})", i + 1)
}

impl<P: OutputPin, F: NorFlash, C: Clock> hearth_profile::Profile for Relay<'_, P, F, C> {
    fn name(&self) -> &'static str {
        "relay"
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        for (i, ch) in self.channels.iter_mut().enumerate() {
            let spec =
                PubSpec::periodic(&format!("{i}/{STATE}"), EVAL_EVERY, FORCE_EVERY).retained();
            ch.state_id = Some(pubs.register(spec, now));
        }
    }

    fn next_work(&self) -> Millis {
        if !self.restored || !self.notes.is_empty() {
            return 0;
        }
        self.channels
            .iter()
            .flat_map(|c| [c.off_at, c.save_at, c.pin_retry_at])
            .flatten()
            .min()
            .unwrap_or(Millis::MAX)
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        if !self.restored {
            self.restore_at(now).await;
            for i in 0..self.channels.len() {
                self.expedite(i, pubs, now);
            }
        }
        for i in 0..self.channels.len() {
            let ch = &mut self.channels[i];
            if ch.off_at.is_some_and(|t| t <= now) {
                ch.off_at = None;
                self.drive(i, now);
                self.expedite(i, pubs, now);
                self.save(i, now).await;
                continue;
            }
            if ch.save_at.is_some_and(|t| t <= now) {
                self.save(i, now).await;
            }
            if self.channels[i].pin_retry_at.is_some_and(|t| t <= now) {
                self.drive(i, now);
            }
        }
        self.flush_notes(pubs);
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        self.channels
            .iter()
            .find(|c| c.state_id == Some(id))
            .map(|c| String::from(if c.off_at.is_some() { "1" } else { "0" }))
    }

    async fn command(&mut self, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        let Some(i) = self.relay_of(leaf) else {
            return false;
        };
        let now = self.clock.now();
        // A command before the first `work` must not be undone by a later restore.
        self.restore_at(now).await;
        match parse_seconds(payload) {
            None => pubs.log(format!(
                "{}: invalid value {} for {leaf} (expected whole seconds); ignored",
                label(i),
                hearth_profile::shown(payload)
            )),
            Some(asked) => {
                let granted = self.set(i, asked, now);
                if granted < asked {
                    pubs.log(format!(
                        "{}: {asked} s clamped to the maximum {granted} s",
                        label(i)
                    ));
                }
                self.expedite(i, pubs, now);
                self.save(i, now).await;
            }
        }
        self.flush_notes(pubs);
        true
    }

    fn entities(&self) -> Vec<Entity> {
        self.channels
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                let on = format!("{}", ch.max / SECOND);
                // The state is `1`/`0` but Home Assistant compares it with the payloads it
                // sends: map `1` to the ON payload.
                Entity {
                    value_template: Some(format!(
                        "{{{{ '{on}' if value == '1' else '{HA_OFF}' }}}}"
                    )),
                    ..Entity::switch(
                        &format!("{i}/{STATE}"),
                        &format!("Relay {}", i + 1),
                        &format!("{i}/{COMMAND}"),
                        &on,
                        HA_OFF,
                    )
                }
            })
            .collect()
    }
}

/// How often the panel is redrawn (the reference's 500 ms, which also makes ON relays blink
/// at 1 Hz).
pub const PANEL_EVERY: Millis = 500;

/// The relays with the reference's optional SSD1306 panel (`relaydisplay 1`): per relay a
/// 12×12 square at x 0, y 16·i, filled and blinking while the relay is on, an outline when
/// off; at x 20 the last 8 characters of the IP address (`no net` offline, `net up` if the
/// network does not say it), `MQTT up` / `MQTT down` and the uptime `D:HH:MM:SS`. A display that is absent or fails is
/// logged once and left alone, as in the reference; the relays never depend on it.
pub struct RelayPanel<'s, P, F: NorFlash, I, C = SystemClock> {
    relay: Relay<'s, P, F, C>,
    display: Option<Ssd1306<I>>,
    initialised: bool,
    next_draw: Millis,
    boot: Millis,
    online: bool,
    address: Option<String>,
}

impl<'s, P: OutputPin, F: NorFlash, I: I2c, C: Clock> RelayPanel<'s, P, F, I, C> {
    /// `relay` with a panel on `display` (the SSD1306 at its usual address 0x3C).
    pub fn new(relay: Relay<'s, P, F, C>, display: I, now: Millis) -> Self {
        RelayPanel {
            relay,
            display: Some(Ssd1306::new(display, ssd1306::ADDRESS)),
            initialised: false,
            next_draw: now,
            boot: now,
            online: false,
            address: None,
        }
    }

    /// The relays.
    pub fn relay(&mut self) -> &mut Relay<'s, P, F, C> {
        &mut self.relay
    }

    /// Whether pixel (`x`, `y`) of the last frame is lit (`false` without a display).
    pub fn pixel(&self, x: i32, y: i32) -> bool {
        self.display.as_ref().is_some_and(|d| d.pixel(x, y))
    }

    /// Draw the panel's frame for `now` into the display's buffer (not sent).
    fn draw(display: &mut Ssd1306<I>, marks: &[bool], lines: &[String; 3]) {
        display.clear();
        for (i, &lit) in marks.iter().enumerate() {
            let y = 16 * i as i32;
            if lit {
                display.fill_rect(0, y, 12, 12, true);
            } else {
                display.rect(0, y, 12, 12, true);
            }
        }
        for (k, line) in lines.iter().enumerate() {
            display.text(20, 12 * k as i32, line);
        }
    }

    async fn refresh(&mut self, now: Millis, pubs: &mut Publications) {
        let Some(display) = self.display.as_mut() else {
            return;
        };
        if !self.initialised {
            if let Err(e) = display.init().await {
                pubs.log(format!("relay: no display ({e:?}); running without it"));
                self.display = None;
                return;
            }
            self.initialised = true;
        }
        let marks = self.relay.display_marks(now);
        let mut lines = display_text(
            self.address.as_deref(),
            self.online,
            now.saturating_sub(self.boot),
        );
        if self.online && self.address.is_none() {
            lines[0] = String::from("net up");
        }
        Self::draw(display, &marks, &lines);
        if let Err(e) = display.flush().await {
            pubs.log(format!("relay: display failed ({e:?}); running without it"));
            self.display = None;
        }
    }
}

impl<P: OutputPin, F: NorFlash, I: I2c, C: Clock> hearth_profile::Profile
    for RelayPanel<'_, P, F, I, C>
{
    fn name(&self) -> &'static str {
        self.relay.name()
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        self.relay.register(pubs, now);
    }

    fn next_work(&self) -> Millis {
        let relay = self.relay.next_work();
        match self.display {
            Some(_) => relay.min(self.next_draw),
            None => relay,
        }
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        if now >= self.relay.next_work() {
            self.relay.work(now, pubs).await;
        }
        if self.display.is_some() && now >= self.next_draw {
            self.next_draw = now + PANEL_EVERY;
            self.refresh(now, pubs).await;
        }
    }

    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String> {
        self.relay.evaluate(id, now)
    }

    async fn command(&mut self, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        self.relay.command(leaf, payload, pubs).await
    }

    fn entities(&self) -> Vec<Entity> {
        self.relay.entities()
    }

    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>) {
        self.online = online;
        if online {
            self.address = address.map(|a| format!("{a}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::{Cell, RefCell};
    use embassy_futures::block_on;
    use embedded_hal::digital::{ErrorKind, ErrorType};
    use hearth_profile::Profile;
    use hearth_storage::KvStore;

    use hearth_storage::test_flash::{TestFlash, SECTOR, SECTORS};

    /// An output that records every level written (true = high) and can be made to fail.
    #[derive(Clone, Default)]
    struct FakePin {
        levels: Rc<RefCell<Vec<bool>>>,
        fail: Rc<Cell<bool>>,
    }

    impl FakePin {
        fn level(&self) -> Option<bool> {
            self.levels.borrow().last().copied()
        }
    }

    impl ErrorType for FakePin {
        type Error = ErrorKind;
    }

    impl OutputPin for FakePin {
        fn set_low(&mut self) -> Result<(), ErrorKind> {
            if self.fail.get() {
                return Err(ErrorKind::Other);
            }
            self.levels.borrow_mut().push(false);
            Ok(())
        }

        fn set_high(&mut self) -> Result<(), ErrorKind> {
            if self.fail.get() {
                return Err(ErrorKind::Other);
            }
            self.levels.borrow_mut().push(true);
            Ok(())
        }
    }

    #[derive(Clone)]
    struct TestClock(Rc<Cell<Millis>>);

    impl Clock for TestClock {
        fn now(&self) -> Millis {
            self.0.get()
        }
    }

    fn open(flash: &TestFlash) -> SharedStore<TestFlash> {
        let store = block_on(KvStore::open(flash.clone(), 0..(SECTOR * SECTORS) as u32))
            .expect("store opens");
        hearth_platform::store::shared(store)
    }

    fn pins(n: usize) -> Vec<FakePin> {
        (0..n).map(|_| FakePin::default()).collect()
    }

    fn stored(store: &SharedStore<TestFlash>, i: usize) -> Option<u32> {
        block_on(async { store.lock().await.get_u32(store_key(i).unwrap()).await }).unwrap()
    }

    fn logs(pubs: &mut Publications) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = pubs.pop() {
            if m.item == hearth_core::publish::LOG_ITEM {
                out.push(m.payload);
            }
        }
        out
    }

    type TestRelay<'s> = Relay<'s, FakePin, TestFlash, TestClock>;

    fn relay<'s>(
        p: &[FakePin],
        store: &'s SharedStore<TestFlash>,
        settings: &RelaySettings,
        clock: &Rc<Cell<Millis>>,
        pubs: &mut Publications,
    ) -> TestRelay<'s> {
        let now = clock.get();
        let mut r = Relay::with_clock(p.to_vec(), store, settings, TestClock(clock.clone()), now);
        r.register(pubs, now);
        block_on(r.restore());
        r
    }

    /// Evaluate whatever is due at `now`, as the runtime does.
    fn settle(r: &mut TestRelay<'_>, pubs: &mut Publications, now: Millis) {
        while let Some((id, force)) = pubs.due(now) {
            let value = r.evaluate(id, now);
            pubs.offer(id, now, value, force);
        }
    }

    fn cmd(r: &mut TestRelay<'_>, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        block_on(r.command(leaf, payload, pubs))
    }

    fn state(r: &mut TestRelay<'_>, pubs: &Publications, i: usize) -> Option<String> {
        let id = r.channels[i].state_id.unwrap();
        assert_eq!(pubs.item(id), format!("{i}/State"));
        r.evaluate(id, 0)
    }

    #[test]
    fn boots_with_every_relay_off_at_the_off_level() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(5);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        assert_eq!(r.count(), 4);
        // Active-low: off is HIGH, on every pin, the fifth (unused) one included.
        for pin in &p {
            assert_eq!(pin.level(), Some(true));
        }
        for i in 0..4 {
            assert_eq!(state(&mut r, &pubs, i).as_deref(), Some("0"));
        }
        assert_eq!(r.next_work(), Millis::MAX);
    }

    #[test]
    fn requested_times_are_clamped_to_the_maximum() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(2_000));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "1000", &mut pubs));
        // Relay 0's maximum is the reference's 600 s.
        assert_eq!(r.remaining(0, 2_000), Some(600_000));
        assert_eq!(p[0].level(), Some(false), "active-low: on is LOW");
        assert_eq!(stored(&store, 0), Some(600));
        assert!(logs(&mut pubs)
            .iter()
            .any(|l| l.contains("1000 s clamped to the maximum 600 s")));
        // Beyond u64: still an integer, clamped (the reference's Python int did the same).
        assert!(cmd(
            &mut r,
            "1/TurnOnWithTimeout",
            "123456789012345678901234567890",
            &mut pubs
        ));
        assert_eq!(r.remaining(1, 2_000), Some(86_400_000));
        // Within the maximum: as asked; a new command replaces the running timer.
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "30", &mut pubs));
        assert_eq!(r.remaining(0, 2_000), Some(30_000));
        assert_eq!(stored(&store, 0), Some(30));
        // Negative is off, 0 is off.
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "-5", &mut pubs));
        assert!(!r.is_on(0));
        assert_eq!(p[0].level(), Some(true));
        assert_eq!(stored(&store, 0), Some(0));
        assert!(cmd(&mut r, "1/TurnOnWithTimeout", " 0 ", &mut pubs));
        assert!(!r.is_on(1));
        assert_eq!(state(&mut r, &pubs, 1).as_deref(), Some("0"));
        // Configured maxima replace the hard-coded ones.
        let settings = RelaySettings {
            display: false,
            relays: vec![RelayConfig {
                max_s: 5,
                pin: None,
            }],
            active_low: false,
        };
        let p1 = pins(1);
        let mut r1 = relay(&p1, &store, &settings, &clock, &mut pubs);
        assert!(cmd(&mut r1, "0/TurnOnWithTimeout", "+7", &mut pubs));
        assert_eq!(r1.remaining(0, 2_000), Some(5_000));
        assert_eq!(p1[0].level(), Some(true), "active-high: on is HIGH");
    }

    /// An I2C bus that accepts every write (an SSD1306 that is there) or refuses all (absent).
    struct Bus(bool);

    impl embedded_hal_async::i2c::ErrorType for Bus {
        type Error = embedded_hal_async::i2c::ErrorKind;
    }

    impl embedded_hal_async::i2c::I2c for Bus {
        async fn transaction(
            &mut self,
            _address: u8,
            _operations: &mut [embedded_hal_async::i2c::Operation<'_>],
        ) -> Result<(), Self::Error> {
            if self.0 {
                Ok(())
            } else {
                Err(embedded_hal_async::i2c::ErrorKind::NoAcknowledge(
                    embedded_hal_async::i2c::NoAcknowledgeSource::Address,
                ))
            }
        }
    }

    #[test]
    fn the_panel_shows_a_square_per_relay_filled_while_on() {
        let flash = TestFlash::new();
        let store = open(&flash);
        // Blink phase "lit" at 0 ms.
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        let mut panel = RelayPanel::new(r, Bus(true), 0);
        assert!(block_on(panel.command(
            "1/TurnOnWithTimeout",
            "60",
            &mut pubs
        )));
        block_on(panel.work(0, &mut pubs));
        // Relay 1 (y 16..28): filled; relay 0 (y 0..12): an outline, empty inside.
        assert!(panel.pixel(5, 16 + 5), "relay 1 filled");
        assert!(panel.pixel(0, 0) && panel.pixel(11, 11), "relay 0 outlined");
        assert!(!panel.pixel(5, 5), "relay 0 empty inside");
        // The text column: offline first, then the address's last 8 characters once online.
        let line = |panel: &RelayPanel<'_, FakePin, TestFlash, Bus, TestClock>, y: i32| {
            (0..18)
                .map_while(|k| {
                    let x = 20 + 6 * k;
                    let mut columns = [0u8; ssd1306::font::GLYPH_WIDTH];
                    for (dx, c) in columns.iter_mut().enumerate() {
                        for dy in 0..ssd1306::font::GLYPH_HEIGHT {
                            if panel.pixel(x + dx as i32, y + dy as i32) {
                                *c |= 1 << dy;
                            }
                        }
                    }
                    ssd1306::font::recognise(columns)
                })
                .collect::<String>()
        };
        assert_eq!(line(&panel, 0).trim_end(), "no net");
        assert_eq!(line(&panel, 12).trim_end(), "MQTT down");
        panel.online(true, Some(core::net::Ipv4Addr::new(192, 168, 10, 42)));
        block_on(panel.work(PANEL_EVERY, &mut pubs));
        assert_eq!(line(&panel, 0).trim_end(), "68.10.42");
        assert_eq!(line(&panel, 12).trim_end(), "MQTT up");
        assert_eq!(panel.next_work(), 2 * PANEL_EVERY, "redrawn every 500 ms");
        // Without a display the relays carry on and the panel stops trying.
        let r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        let mut dark = RelayPanel::new(r, Bus(false), 0);
        block_on(dark.work(0, &mut pubs));
        assert!(logs(&mut pubs).iter().any(|l| l.contains("no display")));
        assert!(!dark.pixel(0, 0));
        assert!(block_on(dark.command(
            "0/TurnOnWithTimeout",
            "5",
            &mut pubs
        )));
        assert!(dark.relay().is_on(0));
        assert_ne!(dark.next_work(), PANEL_EVERY, "no more redraws");
    }

    #[test]
    fn a_relay_switches_off_exactly_when_its_time_runs_out() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(1_000));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        assert!(cmd(&mut r, "2/TurnOnWithTimeout", "5", &mut pubs));
        assert_eq!(state(&mut r, &pubs, 2).as_deref(), Some("1"));
        assert_eq!(r.next_work(), 6_000);
        settle(&mut r, &mut pubs, 5_999);
        block_on(r.work(5_999, &mut pubs));
        assert!(r.is_on(2));
        assert_eq!(p[2].level(), Some(false));
        block_on(r.work(6_000, &mut pubs));
        assert!(!r.is_on(2));
        assert_eq!(p[2].level(), Some(true));
        assert_eq!(state(&mut r, &pubs, 2).as_deref(), Some("0"));
        assert_eq!(stored(&store, 2), Some(0));
        assert_eq!(r.next_work(), Millis::MAX);
        // The change is evaluated at once, not at the next 1 s period.
        let id = r.channels[2].state_id.unwrap();
        assert_eq!(pubs.due(6_000).map(|(i, _)| i), Some(id));
    }

    #[test]
    fn long_runs_are_checkpointed_every_minute() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        assert!(cmd(&mut r, "1/TurnOnWithTimeout", "3600", &mut pubs));
        assert_eq!(stored(&store, 1), Some(3600));
        assert_eq!(r.next_work(), CHECKPOINT_EVERY);
        block_on(r.work(60_500, &mut pubs));
        // 3539.5 s left, stored rounded up.
        assert_eq!(stored(&store, 1), Some(3540));
        assert_eq!(r.next_work(), 120_500);
    }

    #[test]
    fn resets_faster_than_the_checkpoints_still_switch_the_relay_off() {
        let flash = TestFlash::new();
        {
            let store = open(&flash);
            let clock = Rc::new(Cell::new(0));
            let mut pubs = Publications::new(16);
            let p = pins(4);
            let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
            assert!(cmd(&mut r, "0/TurnOnWithTimeout", "600", &mut pubs));
        }
        // The device resets every 10 s, long before its first checkpoint.
        let (mut boots, mut on_s) = (0, 0);
        loop {
            boots += 1;
            assert!(boots < 100, "the relay stays on across resets");
            let store = open(&flash);
            let clock = Rc::new(Cell::new(0));
            let mut pubs = Publications::new(16);
            let p = pins(4);
            let settings = RelaySettings::default();
            let mut r = Relay::with_clock(p.clone(), &store, &settings, TestClock(clock), 0);
            r.register(&mut pubs, 0);
            block_on(r.restore());
            if !r.is_on(0) {
                break;
            }
            block_on(r.work(10_000, &mut pubs));
            on_s += 10;
        }
        // Each boot consumed a checkpoint period of the stored 600 s.
        assert_eq!(boots, 11);
        assert!(on_s <= 600 + 60, "{on_s} s on");
    }

    #[test]
    fn state_is_restored_after_a_reboot_without_the_time_powered_off() {
        let flash = TestFlash::new();
        {
            let store = open(&flash);
            let clock = Rc::new(Cell::new(0));
            let mut pubs = Publications::new(16);
            let p = pins(4);
            let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
            assert!(cmd(&mut r, "1/TurnOnWithTimeout", "100", &mut pubs));
            assert!(cmd(&mut r, "3/TurnOnWithTimeout", "5000", &mut pubs));
            assert!(cmd(&mut r, "0/TurnOnWithTimeout", "10", &mut pubs));
            block_on(r.work(10_000, &mut pubs)); // relay 0 ran out
            block_on(r.work(60_000, &mut pubs)); // checkpoint: 40 s and 4940 s left
            assert_eq!(stored(&store, 1), Some(40));
            // Power is cut at 75 s, 15 s after the checkpoint.
        }
        let store = open(&flash);
        let clock = Rc::new(Cell::new(300));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut settings = RelaySettings::default();
        settings.relays[3].max_s = 1000; // lowered while powered off
        let mut r = Relay::with_clock(p.clone(), &store, &settings, TestClock(clock.clone()), 300);
        r.register(&mut pubs, 300);
        // Not restored yet: the first work restores (or `restore`).
        assert_eq!(r.next_work(), 0);
        assert!(!r.is_on(1));
        block_on(r.work(300, &mut pubs));
        assert!(!r.is_on(0));
        assert_eq!(p[0].level(), Some(true));
        assert_eq!(r.remaining(1, 300), Some(40_000));
        assert_eq!(p[1].level(), Some(false));
        assert_eq!(
            r.remaining(3, 300),
            Some(1_000_000),
            "clamped to the new maximum"
        );
        assert_eq!(state(&mut r, &pubs, 1).as_deref(), Some("1"));
        let log = logs(&mut pubs);
        assert!(
            log.iter()
                .any(|l| l.contains("relay 2 (topic 1): restored on for 40 s")),
            "{log:?}"
        );
        assert!(log.iter().any(|l| l.contains("clamped")), "{log:?}");
        // The restored relay switches off at the rest of its time.
        assert_eq!(r.next_work(), 40_300);
        block_on(r.work(40_300, &mut pubs));
        assert!(!r.is_on(1));
        assert_eq!(stored(&store, 1), Some(0));
        // The clamped time reaches the store at the next checkpoint.
        block_on(r.work(60_300, &mut pubs));
        assert_eq!(stored(&store, 3), Some(940));
        // A second restore does nothing.
        block_on(r.restore());
        assert!(!r.is_on(1));
    }

    #[test]
    fn a_command_before_the_first_work_is_not_undone_by_the_restore() {
        let flash = TestFlash::new();
        let store = open(&flash);
        block_on(async { store.lock().await.set_u32(store_key(0).unwrap(), 500).await }).unwrap();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = Relay::with_clock(
            p.clone(),
            &store,
            &RelaySettings::default(),
            TestClock(clock.clone()),
            0,
        );
        r.register(&mut pubs, 0);
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "0", &mut pubs));
        block_on(r.work(0, &mut pubs));
        assert!(!r.is_on(0));
        assert_eq!(stored(&store, 0), Some(0));
    }

    #[test]
    fn bad_payloads_are_logged_and_ignored() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(64);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "60", &mut pubs));
        logs(&mut pubs);
        let long = "9".repeat(5000) + "x";
        for bad in [
            "", " ", "abc", "1.5", "5s", "0x10", "+-3", "-", "+", "1e3", "１２", "1 2", &long,
        ] {
            assert!(
                cmd(&mut r, "0/TurnOnWithTimeout", bad, &mut pubs),
                "{bad:?}"
            );
            assert_eq!(r.remaining(0, 0), Some(60_000), "{bad:?}");
            let log = logs(&mut pubs);
            assert_eq!(log.len(), 1, "{bad:?}: {log:?}");
            assert!(log[0].contains("invalid value"), "{log:?}");
            assert!(log[0].len() < 200, "the payload is shortened in the log");
        }
        assert_eq!(stored(&store, 0), Some(60));
        // Unknown leaves are not this profile's (the runtime logs them).
        for leaf in [
            "4/TurnOnWithTimeout",
            "9/TurnOnWithTimeout",
            "00/TurnOnWithTimeout",
            "-1/TurnOnWithTimeout",
            "0/turnonwithtimeout",
            "0/State",
            "TurnOnWithTimeout",
            "/TurnOnWithTimeout",
            "é/TurnOnWithTimeout",
            "",
        ] {
            assert!(!cmd(&mut r, leaf, "5", &mut pubs), "{leaf:?}");
        }
        assert_eq!(r.remaining(0, 0), Some(60_000));
        // With two relays, relay 2 does not exist.
        let settings = RelaySettings {
            display: false,
            relays: DEFAULT_MAX_S[..2]
                .iter()
                .map(|&max_s| RelayConfig { max_s, pin: None })
                .collect(),
            active_low: true,
        };
        let mut r2 = relay(&pins(4), &store, &settings, &clock, &mut pubs);
        assert_eq!(r2.count(), 2);
        assert!(!cmd(&mut r2, "2/TurnOnWithTimeout", "5", &mut pubs));
    }

    #[test]
    fn payload_parsing_follows_the_reference() {
        assert_eq!(parse_seconds("42"), Some(42));
        assert_eq!(parse_seconds(" +42\n"), Some(42));
        assert_eq!(parse_seconds("-42"), Some(0));
        assert_eq!(parse_seconds("-0"), Some(0));
        assert_eq!(parse_seconds("007"), Some(7));
        assert_eq!(parse_seconds("99999999999999999999999"), Some(u64::MAX));
        assert_eq!(parse_seconds("-99999999999999999999999"), Some(0));
        for bad in ["", "4.0", "four", "4 s", "--4"] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_failing_store_is_logged_once_retried_and_the_relay_still_works() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        flash.fail_writes.set(true);
        assert!(cmd(&mut r, "1/TurnOnWithTimeout", "300", &mut pubs));
        assert!(r.is_on(1));
        assert_eq!(p[1].level(), Some(false));
        let log = logs(&mut pubs);
        assert_eq!(log.len(), 1, "{log:?}");
        assert!(
            log[0].contains("relay 2 (topic 1): cannot save state"),
            "{log:?}"
        );
        assert_eq!(r.next_work(), RETRY_EVERY);
        // Still failing: no new log line.
        clock.set(RETRY_EVERY);
        block_on(r.work(RETRY_EVERY, &mut pubs));
        assert!(logs(&mut pubs).is_empty());
        assert_eq!(r.next_work(), 2 * RETRY_EVERY);
        // The flash recovers: the current remaining time is written and the recovery logged.
        flash.fail_writes.set(false);
        block_on(r.work(2 * RETRY_EVERY, &mut pubs));
        assert_eq!(stored(&store, 1), Some(280));
        let log = logs(&mut pubs);
        assert!(log.iter().any(|l| l.contains("saved again")), "{log:?}");
        assert_eq!(r.next_work(), 2 * RETRY_EVERY + CHECKPOINT_EVERY);
        // Auto-off while the store fails: the relay goes off anyway, and 0 is written later.
        flash.fail_writes.set(true);
        block_on(r.work(300_000, &mut pubs));
        assert!(!r.is_on(1));
        assert_eq!(p[1].level(), Some(true));
        assert_eq!(r.next_work(), 310_000);
        flash.fail_writes.set(false);
        block_on(r.work(310_000, &mut pubs));
        assert_eq!(stored(&store, 1), Some(0));
        assert_eq!(r.next_work(), Millis::MAX);
    }

    #[test]
    fn an_unreadable_stored_state_leaves_the_relay_off() {
        let flash = TestFlash::new();
        let store = open(&flash);
        block_on(async {
            store
                .lock()
                .await
                .set_bytes(store_key(0).unwrap(), b"junk")
                .await
        })
        .unwrap();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut r = relay(
            &pins(4),
            &store,
            &RelaySettings::default(),
            &clock,
            &mut pubs,
        );
        assert!(!r.is_on(0));
        assert_eq!(r.next_work(), 0, "the note waits for the next work");
        block_on(r.work(0, &mut pubs));
        let log = logs(&mut pubs);
        assert!(log
            .iter()
            .any(|l| l.contains("relay 1 (topic 0): stored state unreadable")));
        // The next command overwrites it.
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "3", &mut pubs));
        assert_eq!(stored(&store, 0), Some(3));
    }

    #[test]
    fn a_failing_output_is_logged_and_driven_again() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let p = pins(4);
        let mut r = relay(&p, &store, &RelaySettings::default(), &clock, &mut pubs);
        p[0].fail.set(true);
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "100", &mut pubs));
        assert!(r.is_on(0));
        assert_eq!(p[0].level(), Some(true), "the write did not happen");
        let log = logs(&mut pubs);
        assert!(
            log.iter().any(|l| l.contains("output write failed")),
            "{log:?}"
        );
        assert_eq!(r.next_work(), RETRY_EVERY);
        p[0].fail.set(false);
        block_on(r.work(RETRY_EVERY, &mut pubs));
        assert_eq!(p[0].level(), Some(false));
        assert!(logs(&mut pubs)
            .iter()
            .any(|l| l.contains("output works again")));
    }

    #[test]
    fn state_items_are_retained_and_follow_the_reference_timing() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut r = relay(
            &pins(4),
            &store,
            &RelaySettings::default(),
            &clock,
            &mut pubs,
        );
        assert_eq!(r.name(), "relay");
        let id = r.channels[0].state_id.unwrap();
        settle(&mut r, &mut pubs, 0);
        let out = pubs.pop().unwrap();
        assert_eq!(
            (out.item.as_str(), out.payload.as_str(), out.retain),
            ("0/State", "0", true)
        );
        while pubs.pop().is_some() {}
        // Next evaluation 1 s later; unchanged values are not republished until forced.
        assert_eq!(pubs.due(999), None);
        assert_eq!(pubs.due(1_000), Some((id, false)));
        settle(&mut r, &mut pubs, 1_000);
        assert!(pubs.pop().is_none(), "unchanged");
        // A command publishes the change at once; forced republication after 30 min.
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "5", &mut pubs));
        settle(&mut r, &mut pubs, 1_000);
        let out = pubs.pop().unwrap();
        assert_eq!((out.item.as_str(), out.payload.as_str()), ("0/State", "1"));
        assert_eq!(pubs.due(30 * MINUTE).map(|(_, forced)| forced), Some(true));
    }

    #[test]
    fn entities_are_switches_whose_payloads_the_command_accepts() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut r = relay(
            &pins(4),
            &store,
            &RelaySettings::default(),
            &clock,
            &mut pubs,
        );
        let entities = r.entities();
        assert_eq!(entities.len(), 4);
        for (i, e) in entities.iter().enumerate() {
            // Each relay's own maximum (the defaults 600, 86400, 86400, 86400) is its ON.
            let on = format!("{}", DEFAULT_MAX_S[i]);
            assert_eq!(e.item, format!("{i}/State"));
            assert_eq!(e.name, format!("Relay {}", i + 1));
            assert_eq!(
                e.component,
                hearth_core::discovery::Component::Switch {
                    command: format!("{i}/TurnOnWithTimeout"),
                    on: on.clone(),
                    off: "0".into(),
                }
            );
            assert_eq!(
                e.value_template.as_deref(),
                Some(format!("{{{{ '{on}' if value == '1' else '0' }}}}").as_str())
            );
            assert!(!e.diagnostic);
        }
        // "On" from Home Assistant is on for that relay's maximum, nothing clamped.
        let _ = logs(&mut pubs);
        assert!(cmd(&mut r, "3/TurnOnWithTimeout", "86400", &mut pubs));
        assert_eq!(r.remaining(3, 0), Some(86_400_000));
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", "600", &mut pubs));
        assert_eq!(r.remaining(0, 0), Some(600_000));
        let said = logs(&mut pubs);
        assert!(!said.iter().any(|l| l.contains("clamped")), "{said:?}");
        assert!(cmd(&mut r, "0/TurnOnWithTimeout", HA_OFF, &mut pubs));
        assert!(!r.is_on(0));
    }

    fn config(extra: &str) -> Result<RelaySettings, String> {
        let text =
            format!("profile relay\nssid (wired)\nmqttbroker b\nmqttname RelayControl\n{extra}");
        let c = hearth_config::parse_with(&text, &["relay"], CONFIG_KEYS)
            .map_err(|e| format!("{}", e.located("config.txt")))?;
        RelaySettings::from_config(&c).map_err(|e| format!("{e}"))
    }

    #[test]
    fn config_defaults_are_the_reference() {
        let s = config("").unwrap();
        assert_eq!(s, RelaySettings::default());
        assert_eq!(
            s.relays.iter().map(|r| r.max_s).collect::<Vec<_>>(),
            vec![600, 86_400, 86_400, 86_400]
        );
        assert_eq!(s.off_level(), PinState::High);
    }

    #[test]
    fn config_keys_are_read() {
        let s = config(
            "relays 3\nrelay1max 900\nrelay3max 1\nrelay1pin 4\nrelay2pin 5\nrelay3pin 6\nrelayactivelow 0\n",
        )
        .unwrap();
        assert_eq!(
            s.relays,
            vec![
                RelayConfig {
                    max_s: 900,
                    pin: Some(4)
                },
                RelayConfig {
                    max_s: 86_400,
                    pin: Some(5)
                },
                RelayConfig {
                    max_s: 1,
                    pin: Some(6)
                },
            ]
        );
        assert!(!s.active_low);
        assert_eq!(s.off_level(), PinState::Low);
    }

    #[test]
    fn bad_config_values_are_clear_errors() {
        for (extra, expect) in [
            ("relay1max 0\n", "1..=86400"),
            ("relay1max 86401\n", "1..=86400"),
            ("relay1max -5\n", "1..=86400"),
            ("relay1max +5\n", "1..=86400"),
            ("relay1max 1.5\n", "1..=86400"),
            ("relay2max 10m\n", "1..=86400"),
            ("relays 0\n", "1..=4"),
            ("relays 5\n", "1..=4"),
            ("relay1pin 99\n", "GPIO number"),
            ("relayactivelow yes\n", "0 or 1"),
            ("relay5max 10\n", "relay5max"),
        ] {
            let e = config(extra).expect_err(extra);
            assert!(e.contains(expect), "{extra}: {e}");
        }
        for (extra, expect) in [
            (
                "relays 2\nrelay3max 60\n",
                "\"relay3max\": given but \"relays\" is 2",
            ),
            (
                "relays 1\nrelay4pin 7\n",
                "\"relay4pin\": given but \"relays\" is 1",
            ),
            (
                "relay1pin 7\nrelay3pin 7\n",
                "\"relay1pin\" and \"relay3pin\" are both GPIO 7",
            ),
        ] {
            let e = config(extra).expect_err(extra);
            assert!(e.contains(expect), "{extra}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn store_keys_are_in_the_profile_range() {
        for i in 0..MAX_RELAYS {
            let key = store_key(i).unwrap();
            assert_eq!(key.raw(), 0x1400 + i as u16);
            assert_eq!(
                key.subsystem(),
                Some(hearth_storage::keys::Subsystem::Profile)
            );
            assert!(
                key.spec().is_none(),
                "not a well-known key of another owner"
            );
        }
        assert_eq!(store_key(MAX_RELAYS), None);
    }

    #[test]
    fn display_text_matches_the_reference() {
        assert_eq!(
            display_text(Some("192.168.1.23"), true, 0),
            [
                String::from("168.1.23"),
                String::from("MQTT up"),
                String::from("0:00:00:00")
            ]
        );
        assert_eq!(
            display_text(
                None,
                false,
                ((2 * 86_400 + 3 * 3_600 + 4 * 60 + 5) * SECOND) + 999
            ),
            [
                String::from("no net"),
                String::from("MQTT down"),
                String::from("2:03:04:05")
            ]
        );
        assert_eq!(display_text(Some("10.0.0.1"), true, 0)[0], "10.0.0.1");
        assert_eq!(display_text(Some(""), true, 0)[0], "no net");
        assert_eq!(display_text(Some("1.2.3.4"), true, 0)[0], "1.2.3.4");
        assert!(blink_phase(0) && blink_phase(499) && !blink_phase(500) && blink_phase(1_000));
    }

    #[test]
    fn display_marks_blink_for_the_relays_that_are_on() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut r = relay(
            &pins(4),
            &store,
            &RelaySettings::default(),
            &clock,
            &mut pubs,
        );
        assert!(cmd(&mut r, "1/TurnOnWithTimeout", "10", &mut pubs));
        assert_eq!(r.display_marks(200), vec![false, true, false, false]);
        assert_eq!(r.display_marks(700), vec![false; 4]);
    }
}
