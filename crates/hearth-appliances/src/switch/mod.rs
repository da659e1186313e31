//! The `switch` appliance (reference §7): a light switch / relay controller. N outputs
//! (relays, lights) and M manual inputs (wall push-buttons or switches); a small program
//! ([`program`]) maps the inputs to output patterns. The board is a preset ([`drivers::Board`])
//! reached through the [`SwitchIo`] edge.
//!
//! # Topics (numbers from 0, as the reference)
//!
//! * `stat/<name>/<n>/State`: `1`/`0`; published at once on every change, evaluated every
//!   minute, forced every 10 min, **retained** (the reference retained nothing).
//! * `cmnd/<name>/<n>/State`: `on`/`1`/`up` → on, `off`/`0`/`down` → off (trimmed, any
//!   letter case); anything else is logged as an invalid value and ignored.
//! * `stat/<name>/Manual<n>/Event`: `P`, `L`, `T+`, `T-`, `R+`, `R-`, one message per event,
//!   not retained. Unlike the reference (§13.10) the item is cleared [`EVENT_HOLD`] after the
//!   event, so `Refresh` does not repeat old events.
//! * `stat/<name>/Program`: the running program's text, forced after every successful compile
//!   and at boot; retained.
//! * `stat/<name>/ProgramCompilation`: `Success` or the compiler's message, forced after every
//!   compile attempt and at boot; retained.
//! * `cmnd/<name>/Program`: a new program (trimmed; empty is ignored), compiled at once with no
//!   fallback: on error the running program stays and only the status is published.
//! * `stat/<name>/Malfunction`: bitmap ([`MF_INPUTS`], [`MF_OUTPUTS`], [`MF_STORE`],
//!   [`MF_PROGRAM`]); evaluated every minute, forced every 10 min, retained.
//!
//! Retained and duplicate commands are filtered by the runtime (§13.9).
//!
//! # Configuration
//!
//! * `switchboard` (required): `Direct4`, `dtwonder2`, `dtwonder4`, `dtwonder8`, `hoffer6` or
//!   `minir4` (the reference's `driver` values, any letter case).
//! * `poll` (ms, 1..=1000, default 15), `debounce` (ms, 0..=10000, default 50), `longpress`
//!   (ms, 50..=60000, default 1000): the reference's keys; it required them, its sample values
//!   are the defaults here.
//! * `switchinpins`, `switchoutpins`: comma-separated GPIOs replacing a direct board's pins
//!   (as many as the board has); `switchsrpins`: `oe,latch,clock,ser,qh` for `dtwonder8`.
//!
//! # Persistence
//!
//! Output *n*'s state is a `u32` 0/1 under store key `0x1500 + n` ([`output_key`]), written
//! when it changes (and once at first boot). The program text is stored in up to
//! [`PROGRAM_CHUNKS`] byte chunks under `0x1581..` with its length under [`PROGRAM_LEN_KEY`]
//! (removed first and written last, so a torn write reads as "no program"). At boot
//! ([`Switch::restore`]) the outputs are restored and the stored program compiled; **a stored
//! program that does not compile is reported** (log line, `ProgramCompilation` carries its
//! error, [`MF_PROGRAM`]) **and kept in flash**; the default program runs without being saved
//! (the reference overwrote the user's program, §13.9). With no stored program the default
//! runs, unsaved. A failing store is logged once, retried every 10 s ([`MF_STORE`]).

pub mod drivers;
pub mod program;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use embedded_storage_async::nor_flash::NorFlash;
use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_storage::Key;

pub use drivers::{Board, DirectIo, Preset, ShiftIo, SrPins, SwitchIo, Wiring};
pub use program::{compile, default_text, CompileError, Effect, Event, Machine, Program, Timing};

use hearth_platform::store::SharedStore;
use hearth_platform::{Clock, SystemClock};
use hearth_profile::SettingError;

/// First store key of this profile (profile slot 5: `0x1000 + 0x100 * 5`); output *n* is
/// `STORE_FIRST + n`.
pub const STORE_FIRST: u16 = 0x1500;
/// The stored program's length (`u32`).
pub const PROGRAM_LEN_KEY: u16 = 0x1580;
/// Most chunks of the stored program (keys `0x1581..=0x1588`).
pub const PROGRAM_CHUNKS: usize = 8;
/// Malfunction bit: the inputs could not be read at the last poll.
pub const MF_INPUTS: u32 = 1;
/// Malfunction bit: the outputs could not be written (retrying).
pub const MF_OUTPUTS: u32 = 2;
/// Malfunction bit: states or the program could not be saved (retrying).
pub const MF_STORE: u32 = 4;
/// Malfunction bit: the stored program is invalid or unreadable; the default program runs.
pub const MF_PROGRAM: u32 = 8;
/// An event stays its item's value this long, then the item is cleared.
pub const EVENT_HOLD: Millis = 5 * SECOND;
/// How soon a failed output write or store write is retried.
pub const RETRY_EVERY: Millis = 10 * SECOND;
/// Default input polling period (the reference's sample), ms.
pub const DEFAULT_POLL: Millis = 15;
/// Default debounce time, ms.
pub const DEFAULT_DEBOUNCE: Millis = 50;
/// Default long-press time, ms.
pub const DEFAULT_LONGPRESS: Millis = 1_000;

const STATE: &str = "State";
const EVAL_EVERY: Millis = MINUTE;
const FORCE_EVERY: Millis = 10 * MINUTE;
const NOTES: usize = 8;
const PENDING_EVENTS: usize = 16;
/// The payloads Home Assistant sends and reads for the outputs.
const HA_ON: &str = "1";
const HA_OFF: &str = "0";
/// Turns an event payload into Home Assistant's event JSON.
pub const EVENT_TEMPLATE: &str = "{\"event_type\":\"{{ value }}\"}";

/// The store key of output `n`; `None` beyond 32 outputs.
pub const fn output_key(n: usize) -> Option<Key> {
    if n < program::MAX_CHANNELS {
        Some(Key::new(STORE_FIRST + n as u16))
    } else {
        None
    }
}

fn chunk_key(k: usize) -> Key {
    Key::new(PROGRAM_LEN_KEY + 1 + k as u16)
}

/// The profile's `config.txt` keys (see the module documentation).
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "switchboard",
        required: false,
        validator: board_name,
    },
    KeySpec {
        name: "poll",
        required: false,
        validator: poll_ms,
    },
    KeySpec {
        name: "debounce",
        required: false,
        validator: debounce_ms,
    },
    KeySpec {
        name: "longpress",
        required: false,
        validator: longpress_ms,
    },
    KeySpec {
        name: "switchinpins",
        required: false,
        validator: gpio_list,
    },
    KeySpec {
        name: "switchoutpins",
        required: false,
        validator: gpio_list,
    },
    KeySpec {
        name: "switchsrpins",
        required: false,
        validator: sr_pins,
    },
];

fn board_name(value: &str) -> Result<(), &'static str> {
    Board::from_name(value)
        .map(|_| ())
        .ok_or("expected Direct4, dtwonder2, dtwonder4, dtwonder8, hoffer6 or minir4")
}

fn ms(value: &str, lo: Millis, hi: Millis) -> Option<Millis> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|v| (lo..=hi).contains(v))
}

fn poll_ms(value: &str) -> Result<(), &'static str> {
    ms(value, 1, 1_000)
        .map(|_| ())
        .ok_or("expected milliseconds 1..=1000")
}

fn debounce_ms(value: &str) -> Result<(), &'static str> {
    ms(value, 0, 10_000)
        .map(|_| ())
        .ok_or("expected milliseconds 0..=10000")
}

fn longpress_ms(value: &str) -> Result<(), &'static str> {
    ms(value, 50, 60_000)
        .map(|_| ())
        .ok_or("expected milliseconds 50..=60000")
}

fn parse_gpios(value: &str) -> Option<Vec<u8>> {
    let pins: Vec<u8> = value
        .split(',')
        .map(|p| {
            let p = p.trim();
            hearth_profile::gpio_number(p)
                .ok()
                .and_then(|_| p.parse().ok())
        })
        .collect::<Option<_>>()?;
    let distinct = pins.iter().enumerate().all(|(i, p)| !pins[..i].contains(p));
    (distinct && pins.len() <= program::MAX_CHANNELS).then_some(pins)
}

fn gpio_list(value: &str) -> Result<(), &'static str> {
    parse_gpios(value)
        .map(|_| ())
        .ok_or("expected distinct GPIO numbers 0..=48 separated by commas")
}

fn sr_pins(value: &str) -> Result<(), &'static str> {
    match parse_gpios(value) {
        Some(p) if p.len() == 5 => Ok(()),
        _ => Err("expected five distinct GPIOs: oe,latch,clock,ser,qh"),
    }
}

/// The GPIOs a configured board uses (the firmware's business; the simulator ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pins {
    /// One GPIO per input and per output, in bit order.
    Direct {
        /// Input GPIOs.
        inputs: Vec<u8>,
        /// Output GPIOs.
        outputs: Vec<u8>,
    },
    /// The shift-register lines.
    ShiftRegisters(SrPins),
}

/// The appliance's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchSettings {
    /// The board preset.
    pub board: Board,
    /// Input polling period, ms.
    pub poll: Millis,
    /// Debounce and long-press times.
    pub timing: Timing,
    /// The GPIOs (the preset's unless overridden).
    pub pins: Pins,
}

impl SwitchSettings {
    /// `board` with the reference's sample timings and its preset's pins.
    pub fn for_board(board: Board) -> Self {
        let preset = board.preset();
        SwitchSettings {
            board,
            poll: DEFAULT_POLL,
            timing: Timing {
                debounce: DEFAULT_DEBOUNCE,
                longpress: DEFAULT_LONGPRESS,
            },
            pins: match preset.wiring {
                Wiring::Direct { inputs, outputs } => Pins::Direct {
                    inputs: inputs.into(),
                    outputs: outputs.into(),
                },
                Wiring::ShiftRegisters(p) => Pins::ShiftRegisters(p),
            },
        }
    }

    /// The settings of a validated config, with the rules across keys: `switchboard` is
    /// required; pin lists must match the board's counts and suit its wiring.
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        const BOARDS: &str = "Direct4, dtwonder2, dtwonder4, dtwonder8, hoffer6 or minir4";
        let get = |k: &str| config.profile_settings.get(k).map(String::as_str);
        let name = get("switchboard").ok_or(SettingError::Missing {
            key: "switchboard",
            takes: Some(BOARDS),
        })?;
        let board = Board::from_name(name).ok_or_else(|| {
            SettingError::invalid("switchboard", name, format!("one of {BOARDS}"))
        })?;
        let mut s = SwitchSettings::for_board(board);
        let timed = |key: &str, lo, hi, default| match get(key) {
            None => Ok(default),
            Some(v) => ms(v, lo, hi)
                .ok_or_else(|| SettingError::invalid(key, v, format!("{lo}..={hi} ms"))),
        };
        s.poll = timed("poll", 1, 1_000, DEFAULT_POLL)?;
        s.timing.debounce = timed("debounce", 0, 10_000, DEFAULT_DEBOUNCE)?;
        s.timing.longpress = timed("longpress", 50, 60_000, DEFAULT_LONGPRESS)?;
        let preset = board.preset();
        let list = |key: &str, want: usize| -> Result<Option<Vec<u8>>, SettingError> {
            let Some(v) = get(key) else { return Ok(None) };
            let pins = parse_gpios(v)
                .ok_or_else(|| SettingError::invalid(key, v, "distinct GPIO numbers"))?;
            if pins.len() != want {
                return Err(SettingError::invalid(
                    key,
                    v,
                    format!("{want} GPIO numbers for {}", preset.name),
                ));
            }
            Ok(Some(pins))
        };
        match &mut s.pins {
            Pins::Direct { inputs, outputs } => {
                if get("switchsrpins").is_some() {
                    return Err(SettingError::refused(
                        "switchsrpins",
                        format!(
                            "for dtwonder8 only; {} uses \"switchinpins\"/\"switchoutpins\"",
                            preset.name
                        ),
                    ));
                }
                if let Some(p) = list("switchinpins", preset.inputs)? {
                    *inputs = p;
                }
                if let Some(p) = list("switchoutpins", preset.outputs)? {
                    *outputs = p;
                }
                if let Some(p) = inputs.iter().find(|p| outputs.contains(p)) {
                    return Err(SettingError::SharedPin {
                        first: "switchinpins".into(),
                        second: "switchoutpins".into(),
                        pin: *p,
                    });
                }
            }
            Pins::ShiftRegisters(sr) => {
                for key in ["switchinpins", "switchoutpins"] {
                    if get(key).is_some() {
                        return Err(SettingError::refused(
                            key,
                            "for direct boards only; dtwonder8 uses \"switchsrpins\"",
                        ));
                    }
                }
                if let Some(p) = list("switchsrpins", 5)? {
                    *sr = SrPins {
                        oe: p[0],
                        latch: p[1],
                        clock: p[2],
                        ser: p[3],
                        qh: p[4],
                    };
                }
            }
        }
        Ok(s)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    program: Option<PubId>,
    status: Option<PubId>,
    malfunction: Option<PubId>,
}

/// The switch controller over a [`SwitchIo`], the device's store and a clock.
pub struct Switch<'s, IO, F: NorFlash, C = SystemClock> {
    io: IO,
    store: &'s SharedStore<F>,
    clock: C,
    poll: Millis,
    machine: Machine,
    status: String,
    /// The program text in flash, as far as this run knows (`None`: none or unreadable).
    stored_program: Option<String>,
    program_dirty: bool,
    restored: bool,
    announce: bool,
    next_poll: Millis,
    /// What the outputs were last set to (`None`: never, or the write failed).
    written: Option<u32>,
    write_retry_at: Option<Millis>,
    /// The states in flash per output (`None`: unknown, to be written).
    saved: Vec<Option<bool>>,
    save_at: Option<Millis>,
    save_failing: bool,
    inputs_failing: bool,
    malfunction: u32,
    events: VecDeque<(usize, Event)>,
    shown_at: Vec<Option<Millis>>,
    state_ids: Vec<PubId>,
    event_ids: Vec<PubId>,
    ids: Ids,
    notes: VecDeque<String>,
    fx: Vec<Effect>,
}

impl<'s, IO: SwitchIo, F: NorFlash> Switch<'s, IO, F, SystemClock> {
    /// The controller over `io` (its input and output counts, at most 32 each, are the
    /// device's) with `settings`, polling from `now + poll`. Nothing is driven before
    /// [`restore`](Self::restore) (or the first `work` or command) sets the restored states.
    pub fn new(io: IO, store: &'s SharedStore<F>, settings: &SwitchSettings, now: Millis) -> Self {
        Self::with_clock(io, store, settings, SystemClock, now)
    }
}

impl<'s, IO: SwitchIo, F: NorFlash, C: Clock> Switch<'s, IO, F, C> {
    /// As [`Switch::new`] with another clock (tests, or a simulator with its own time).
    pub fn with_clock(
        io: IO,
        store: &'s SharedStore<F>,
        settings: &SwitchSettings,
        clock: C,
        now: Millis,
    ) -> Self {
        let (inputs, outputs) = (
            io.inputs().min(program::MAX_CHANNELS),
            io.outputs().min(program::MAX_CHANNELS),
        );
        Switch {
            io,
            store,
            clock,
            poll: settings.poll.max(1),
            machine: Machine::new(Program::empty(inputs, outputs), settings.timing),
            status: String::from(program::SUCCESS),
            stored_program: None,
            program_dirty: false,
            restored: false,
            announce: false,
            next_poll: now.saturating_add(settings.poll.max(1)),
            written: None,
            write_retry_at: None,
            saved: alloc::vec![None; outputs],
            save_at: None,
            save_failing: false,
            inputs_failing: false,
            malfunction: 0,
            events: VecDeque::new(),
            shown_at: alloc::vec![None; inputs],
            state_ids: Vec::new(),
            event_ids: Vec::new(),
            ids: Ids::default(),
            notes: VecDeque::new(),
            fx: Vec::new(),
        }
    }

    /// Manual inputs.
    pub fn inputs(&self) -> usize {
        self.machine.program().inputs()
    }

    /// Outputs.
    pub fn outputs(&self) -> usize {
        self.machine.program().outputs()
    }

    /// Whether output `n` is on.
    pub fn is_on(&self, n: usize) -> bool {
        n < 32 && self.machine.outputs() & (1 << n) != 0
    }

    /// The outputs' states as a bitmap.
    pub fn output_bits(&self) -> u32 {
        self.machine.outputs()
    }

    /// The running program's text.
    pub fn program_text(&self) -> &str {
        self.machine.program().text()
    }

    /// The last compilation status (`Success` or the message).
    pub fn status(&self) -> &str {
        &self.status
    }

    /// The malfunction bitmap.
    pub fn malfunction(&self) -> u32 {
        self.malfunction
    }

    /// Restores the outputs and the program from the store (once; later calls do nothing)
    /// and writes the outputs. See the module documentation.
    pub async fn restore(&mut self) {
        let now = self.clock.now();
        self.restore_at(now).await;
    }

    async fn restore_at(&mut self, now: Millis) {
        if self.restored {
            return;
        }
        self.restored = true;
        self.announce = true;
        let mut bits = 0u32;
        for n in 0..self.outputs() {
            let Some(key) = output_key(n) else { continue };
            let got = self.store.lock().await.get_u32(key).await;
            self.saved[n] = match got {
                Ok(Some(v @ (0 | 1))) => {
                    bits |= v << n;
                    Some(v == 1)
                }
                Ok(None) => None,
                Ok(Some(v)) => {
                    self.note(format!("output {n}: stored state {v} unreadable; off"));
                    None
                }
                Err(e) => {
                    self.note(format!("output {n}: stored state unreadable ({e}); off"));
                    None
                }
            };
        }
        self.machine.restore_outputs(bits);
        self.write_outputs(now).await;
        let (inputs, outputs) = (self.inputs(), self.outputs());
        let stored = self.read_program().await;
        let program = match stored {
            Ok(Some(text)) => {
                let result = compile(&text, inputs, outputs);
                self.stored_program = Some(text);
                match result {
                    Ok(p) => {
                        for w in p.warnings() {
                            self.note(format!("stored program: {w}"));
                        }
                        Some(p)
                    }
                    Err(e) => {
                        self.status = e.to_string();
                        self.malfunction |= MF_PROGRAM;
                        self.note(format!(
                            "stored program does not compile ({e}); running the default program, the stored one is kept"
                        ));
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                self.malfunction |= MF_PROGRAM;
                self.note(format!(
                    "stored program unreadable ({e}); running the default program"
                ));
                None
            }
        };
        let program = match program {
            Some(p) => p,
            None => match compile(&default_text(inputs, outputs), inputs, outputs) {
                Ok(p) => p,
                // Only a device without inputs has no default program.
                Err(_) => Program::empty(inputs, outputs),
            },
        };
        self.machine.set_program(program);
        self.save(now).await;
    }

    async fn read_program(&mut self) -> Result<Option<String>, String> {
        let mut store = self.store.lock().await;
        let len = match store.get_u32(Key::new(PROGRAM_LEN_KEY)).await {
            Ok(None) => return Ok(None),
            Ok(Some(n)) if n as usize <= program::MAX_PROGRAM_LEN => n as usize,
            Ok(Some(n)) => return Err(format!("length {n}")),
            Err(e) => return Err(e.to_string()),
        };
        let mut text = Vec::with_capacity(len);
        let mut buf = [0u8; hearth_storage::MAX_VALUE_LEN];
        for k in 0..PROGRAM_CHUNKS {
            if text.len() >= len {
                break;
            }
            match store.get_bytes(chunk_key(k), &mut buf).await {
                Ok(Some(n)) => text.extend_from_slice(&buf[..n]),
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        if text.len() != len {
            return Err(format!("{} bytes of {len}", text.len()));
        }
        String::from_utf8(text)
            .map(Some)
            .map_err(|_| String::from("not UTF-8"))
    }

    async fn write_program(&mut self, text: &str) -> Result<(), String> {
        let mut store = self.store.lock().await;
        let size = store
            .max_value_len()
            .clamp(1, hearth_storage::MAX_VALUE_LEN);
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(size).collect();
        if chunks.len() > PROGRAM_CHUNKS {
            return Err(String::from("too long for the store"));
        }
        let len_key = Key::new(PROGRAM_LEN_KEY);
        store.remove(len_key).await.map_err(|e| e.to_string())?;
        for (k, chunk) in chunks.iter().enumerate() {
            store
                .set_bytes(chunk_key(k), chunk)
                .await
                .map_err(|e| e.to_string())?;
        }
        for k in chunks.len()..PROGRAM_CHUNKS {
            store
                .remove(chunk_key(k))
                .await
                .map_err(|e| e.to_string())?;
        }
        store
            .set_u32(len_key, text.len() as u32)
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes the outputs to the hardware if they differ from what was written.
    async fn write_outputs(&mut self, now: Millis) {
        let bits = self.machine.outputs();
        if self.written == Some(bits) {
            return;
        }
        match self.io.write_outputs(bits).await {
            Ok(()) => {
                self.written = Some(bits);
                self.write_retry_at = None;
                if self.malfunction & MF_OUTPUTS != 0 {
                    self.malfunction &= !MF_OUTPUTS;
                    self.note(String::from("outputs work again"));
                }
            }
            Err(kind) => {
                self.written = None;
                self.write_retry_at = Some(now.saturating_add(RETRY_EVERY));
                if self.malfunction & MF_OUTPUTS == 0 {
                    self.malfunction |= MF_OUTPUTS;
                    self.note(format!(
                        "output write failed ({kind:?}); retrying every 10 s"
                    ));
                }
            }
        }
    }

    /// Saves what the store lacks: changed output states and a new program.
    async fn save(&mut self, now: Millis) {
        let mut error = None;
        for n in 0..self.outputs() {
            let on = self.is_on(n);
            if self.saved[n] == Some(on) {
                continue;
            }
            let Some(key) = output_key(n) else { continue };
            let result = self.store.lock().await.set_u32(key, u32::from(on)).await;
            match result {
                Ok(()) => self.saved[n] = Some(on),
                Err(e) => {
                    self.saved[n] = None;
                    error = Some(e.to_string());
                }
            }
        }
        if self.program_dirty {
            let text = String::from(self.machine.program().text());
            match self.write_program(&text).await {
                Ok(()) => {
                    self.program_dirty = false;
                    self.stored_program = Some(text);
                }
                Err(e) => {
                    // The length key may be gone: what flash holds is unknown.
                    self.stored_program = None;
                    error = Some(e);
                }
            }
        }
        match error {
            None => {
                self.save_at = None;
                if core::mem::take(&mut self.save_failing) {
                    self.malfunction &= !MF_STORE;
                    self.note(String::from("states saved again"));
                }
            }
            Some(e) => {
                self.save_at = Some(now.saturating_add(RETRY_EVERY));
                self.malfunction |= MF_STORE;
                if !core::mem::replace(&mut self.save_failing, true) {
                    self.note(format!(
                        "cannot save states or program ({e}); retrying every 10 s, a reboot now would restore old ones"
                    ));
                }
            }
        }
    }

    fn note(&mut self, line: String) {
        log::warn!("{line}");
        program::push_bounded(&mut self.notes, line, NOTES);
    }

    fn flush_notes(&mut self, pubs: &mut Publications) {
        while let Some(line) = self.notes.pop_front() {
            pubs.log(line);
        }
    }

    /// Handles the interpreter's effects: states to publish, events to queue, log lines.
    fn take_effects(&mut self, pubs: &mut Publications, now: Millis) {
        let fx = core::mem::take(&mut self.fx);
        for effect in &fx {
            match *effect {
                Effect::Output { index, .. } => {
                    if let Some(&id) = self.state_ids.get(index) {
                        pubs.expedite(id, now);
                    }
                }
                Effect::Event { input, event } => {
                    program::push_bounded(&mut self.events, (input, event), PENDING_EVENTS);
                }
                Effect::Unprogrammed { input } => {
                    self.note(format!("No program for manual {input}"));
                }
            }
        }
        self.fx = fx;
        self.fx.clear();
    }

    /// Offers at most one event per input (an item keeps only its latest value until sent)
    /// and clears events older than [`EVENT_HOLD`].
    fn publish_events(&mut self, pubs: &mut Publications, now: Millis) {
        let mut offered = 0u32;
        let mut keep = VecDeque::new();
        while let Some((input, event)) = self.events.pop_front() {
            let bit = 1u32 << input;
            match self.event_ids.get(input) {
                Some(&id) if offered & bit == 0 => {
                    pubs.offer(id, now, Some(event.as_str().into()), true);
                    self.shown_at[input] = Some(now);
                    offered |= bit;
                }
                Some(_) => keep.push_back((input, event)),
                None => {}
            }
        }
        self.events = keep;
        for (input, shown) in self.shown_at.iter_mut().enumerate() {
            if offered & (1 << input) == 0
                && shown.is_some_and(|t| now.saturating_sub(t) >= EVENT_HOLD)
            {
                *shown = None;
                if let Some(&id) = self.event_ids.get(input) {
                    pubs.offer(id, now, None, false);
                }
            }
        }
    }

    fn expedite_malfunction(&self, before: u32, pubs: &mut Publications, now: Millis) {
        if before != self.malfunction {
            if let Some(id) = self.ids.malfunction {
                pubs.expedite(id, now);
            }
        }
    }

    fn announce(&mut self, pubs: &mut Publications, now: Millis, program: bool) {
        if let (true, Some(id)) = (program, self.ids.program) {
            pubs.offer(id, now, Some(self.program_text().into()), true);
        }
        if let Some(id) = self.ids.status {
            pubs.offer(id, now, Some(self.status.clone()), true);
        }
    }

    /// After an output changed by a command or the program: hardware, store, publications.
    async fn settle(&mut self, pubs: &mut Publications, now: Millis, before: u32) {
        self.take_effects(pubs, now);
        self.write_outputs(now).await;
        if self
            .saved
            .iter()
            .enumerate()
            .any(|(n, s)| *s != Some(self.is_on(n)))
            || self.program_dirty
        {
            self.save(now).await;
        }
        self.expedite_malfunction(before, pubs, now);
        self.flush_notes(pubs);
    }

    async fn program_command(&mut self, payload: &str, pubs: &mut Publications, now: Millis) {
        let text = payload.trim();
        if text.is_empty() {
            pubs.log("empty program ignored");
            return;
        }
        let before = self.malfunction;
        let ok = match compile(text, self.inputs(), self.outputs()) {
            Ok(p) => {
                self.status = String::from(program::SUCCESS);
                for w in p.warnings() {
                    pubs.log(format!("program: {w}"));
                }
                self.program_dirty = self.stored_program.as_deref() != Some(p.text());
                self.machine.set_program(p);
                self.malfunction &= !MF_PROGRAM;
                true
            }
            Err(e) => {
                self.status = e.to_string();
                false
            }
        };
        self.announce(pubs, now, ok);
        self.settle(pubs, now, before).await;
    }
}

/// The output index of a command leaf `<n>/State` (decimal, no leading zeros).
fn output_of(leaf: &str, outputs: usize) -> Option<usize> {
    let n = leaf.strip_suffix("/State")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok().filter(|&n| n < outputs)
}

/// Parses a `<n>/State` payload: `on`/`1`/`up` or `off`/`0`/`down`, trimmed, any letter case.
pub fn parse_state(payload: &str) -> Option<bool> {
    let p = payload.trim();
    ["on", "1", "up"]
        .iter()
        .any(|w| p.eq_ignore_ascii_case(w))
        .then_some(true)
        .or_else(|| {
            ["off", "0", "down"]
                .iter()
                .any(|w| p.eq_ignore_ascii_case(w))
                .then_some(false)
        })
}

impl<IO: SwitchIo, F: NorFlash, C: Clock> hearth_profile::Profile for Switch<'_, IO, F, C> {
    fn name(&self) -> &'static str {
        "switch"
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        let retained = |item: &str| PubSpec::periodic(item, EVAL_EVERY, FORCE_EVERY).retained();
        self.state_ids = (0..self.outputs())
            .map(|n| pubs.register(retained(&format!("{n}/{STATE}")), now))
            .collect();
        self.event_ids = (0..self.inputs())
            .map(|n| pubs.register(PubSpec::on_demand(&format!("Manual{n}/Event")), now))
            .collect();
        let on_demand_retained = |item: &str| PubSpec::on_demand(item).retained();
        self.ids = Ids {
            program: Some(pubs.register(on_demand_retained("Program"), now)),
            status: Some(pubs.register(on_demand_retained("ProgramCompilation"), now)),
            malfunction: Some(pubs.register(retained("Malfunction"), now)),
        };
    }

    fn next_work(&self) -> Millis {
        if !self.restored || self.announce || !self.notes.is_empty() || !self.events.is_empty() {
            return 0;
        }
        let clear = self
            .shown_at
            .iter()
            .flatten()
            .map(|t| t.saturating_add(EVENT_HOLD))
            .min();
        [
            Some(self.next_poll),
            self.machine.next_deadline(),
            self.save_at,
            self.write_retry_at,
            clear,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Millis::MAX)
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        let before = self.malfunction;
        if !self.restored {
            self.restore_at(now).await;
        }
        if core::mem::take(&mut self.announce) {
            self.announce(pubs, now, true);
            for &id in &self.state_ids {
                pubs.expedite(id, now);
            }
            if let Some(id) = self.ids.malfunction {
                pubs.expedite(id, now);
            }
        }
        self.machine.tick(now, &mut self.fx);
        if now >= self.next_poll {
            self.next_poll = now.saturating_add(self.poll);
            match self.io.read_inputs().await {
                Ok(bits) => {
                    if core::mem::take(&mut self.inputs_failing) {
                        self.malfunction &= !MF_INPUTS;
                        self.note(String::from("inputs readable again"));
                    }
                    for i in 0..self.inputs() {
                        self.machine
                            .input(i, bits & (1 << i) != 0, now, &mut self.fx);
                    }
                }
                Err(kind) => {
                    self.malfunction |= MF_INPUTS;
                    if !core::mem::replace(&mut self.inputs_failing, true) {
                        self.note(format!("input read failed ({kind:?})"));
                    }
                }
            }
        }
        if self.write_retry_at.is_some_and(|t| t <= now) {
            self.written = None;
        }
        if self.save_at.is_some_and(|t| t <= now) {
            self.save(now).await;
        }
        self.settle(pubs, now, before).await;
        self.publish_events(pubs, now);
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        if let Some(n) = self.state_ids.iter().position(|&s| s == id) {
            return Some(String::from(if self.is_on(n) { HA_ON } else { HA_OFF }));
        }
        if Some(id) == self.ids.malfunction {
            return Some(self.malfunction.to_string());
        }
        if Some(id) == self.ids.program {
            return Some(self.program_text().into());
        }
        if Some(id) == self.ids.status {
            return Some(self.status.clone());
        }
        // Events are only offered by `work`.
        None
    }

    async fn command(&mut self, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        let now = self.clock.now();
        if leaf == "Program" {
            // A command before the first `work` must not be undone by a later restore.
            self.restore_at(now).await;
            self.program_command(payload, pubs, now).await;
            return true;
        }
        let Some(n) = output_of(leaf, self.outputs()) else {
            return false;
        };
        self.restore_at(now).await;
        let before = self.malfunction;
        match parse_state(payload) {
            Some(on) => self.machine.set_output(n, on, &mut self.fx),
            None => pubs.log(format!(
                "output {n}: invalid value {} for {leaf} (expected on/off, 1/0, up/down); ignored",
                hearth_profile::shown(payload)
            )),
        }
        self.settle(pubs, now, before).await;
        true
    }

    fn entities(&self) -> Vec<Entity> {
        let mut out: Vec<Entity> = (0..self.outputs())
            .map(|n| {
                let item = format!("{n}/{STATE}");
                Entity::switch(&item, &format!("Output {n}"), &item, HA_ON, HA_OFF)
            })
            .collect();
        let types: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        out.extend((0..self.inputs()).map(|n| Entity {
            value_template: Some(EVENT_TEMPLATE.into()),
            ..Entity::event(&format!("Manual{n}/Event"), &format!("Manual {n}"), &types)
        }));
        out.extend([
            Entity::diagnostic("Program", "Program"),
            Entity::diagnostic("ProgramCompilation", "Program compilation"),
            Entity::diagnostic("Malfunction", "Malfunction"),
        ]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::{Cell, RefCell};
    use embassy_futures::block_on;
    use embedded_hal::digital::ErrorKind;
    use hearth_profile::Profile;
    use hearth_storage::KvStore;

    use hearth_storage::test_flash::{TestFlash, SECTOR};

    /// Inputs set by the test, outputs recorded; both can fail.
    #[derive(Clone, Default)]
    struct FakeIo {
        inputs: Rc<Cell<u32>>,
        writes: Rc<RefCell<Vec<u32>>>,
        fail_read: Rc<Cell<bool>>,
        fail_write: Rc<Cell<bool>>,
    }

    impl FakeIo {
        fn last(&self) -> Option<u32> {
            self.writes.borrow().last().copied()
        }
    }

    impl SwitchIo for FakeIo {
        fn inputs(&self) -> usize {
            4
        }
        fn outputs(&self) -> usize {
            4
        }
        async fn read_inputs(&mut self) -> Result<u32, ErrorKind> {
            if self.fail_read.get() {
                return Err(ErrorKind::Other);
            }
            Ok(self.inputs.get())
        }
        async fn write_outputs(&mut self, bits: u32) -> Result<(), ErrorKind> {
            if self.fail_write.get() {
                return Err(ErrorKind::Other);
            }
            self.writes.borrow_mut().push(bits);
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

    type TestSwitch<'s> = Switch<'s, FakeIo, TestFlash, TestClock>;

    fn open(flash: &TestFlash) -> SharedStore<TestFlash> {
        let store = block_on(KvStore::open(flash.clone(), 0..(SECTOR * 4) as u32)).unwrap();
        hearth_platform::store::shared(store)
    }

    fn boot<'s>(
        io: &FakeIo,
        store: &'s SharedStore<TestFlash>,
        clock: &Rc<Cell<Millis>>,
        pubs: &mut Publications,
    ) -> TestSwitch<'s> {
        let mut s = Switch::with_clock(
            io.clone(),
            store,
            &SwitchSettings::for_board(Board::Direct4),
            TestClock(clock.clone()),
            clock.get(),
        );
        s.register(pubs, clock.get());
        block_on(s.restore());
        s
    }

    /// Runs work and the due evaluations from `from` to `to` in 5 ms steps; returns what was
    /// published as (item, payload, retain).
    fn run(
        s: &mut TestSwitch<'_>,
        pubs: &mut Publications,
        clock: &Rc<Cell<Millis>>,
        to: Millis,
    ) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        loop {
            let now = clock.get();
            if s.next_work() <= now {
                block_on(s.work(now, pubs));
            }
            while let Some((id, force)) = pubs.due(now) {
                let v = s.evaluate(id, now);
                pubs.offer(id, now, v, force);
            }
            while let Some(m) = pubs.pop() {
                out.push((m.item, m.payload, m.retain));
            }
            if now >= to {
                return out;
            }
            clock.set(now + 5);
        }
    }

    fn stored_state(store: &SharedStore<TestFlash>, n: usize) -> Option<u32> {
        block_on(async { store.lock().await.get_u32(output_key(n).unwrap()).await }).unwrap()
    }

    fn has(out: &[(String, String, bool)], item: &str, payload: &str) -> bool {
        out.iter().any(|(i, p, _)| i == item && p == payload)
    }

    #[test]
    fn first_boot_runs_the_default_program_without_saving_it() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        assert_eq!(
            io.last(),
            Some(0),
            "the restored (off) states are written once"
        );
        assert_eq!(
            s.program_text(),
            "0:P:-0/+0; 1:P:-1/+1; 2:P:-2/+2; 3:P:-3/+3;"
        );
        assert_eq!(s.status(), "Success");
        assert_eq!(s.malfunction(), 0);
        let out = run(&mut s, &mut pubs, &clock, 0);
        assert!(out.contains(&("Program".into(), s.program_text().into(), true)));
        assert!(out.contains(&("ProgramCompilation".into(), "Success".into(), true)));
        assert!(out.contains(&("0/State".into(), "0".into(), true)));
        assert!(out.contains(&("Malfunction".into(), "0".into(), true)));
        // Every state is stored (0) as the reference does; the program is not.
        assert_eq!(stored_state(&store, 3), Some(0));
        assert_eq!(block_on(s.read_program()), Ok(None));
    }

    #[test]
    fn presses_switch_outputs_publish_events_and_persist_across_reboot() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        io.inputs.set(0b0000);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        run(&mut s, &mut pubs, &clock, 200);
        io.inputs.set(0b0100);
        let out = run(&mut s, &mut pubs, &clock, 400);
        assert!(s.is_on(2));
        assert_eq!(io.last(), Some(0b0100));
        assert!(out.contains(&("2/State".into(), "1".into(), true)));
        assert!(out.contains(&("Manual2/Event".into(), "P".into(), false)));
        assert_eq!(stored_state(&store, 2), Some(1));
        // Held: a long press 1 s later runs phase 0 (off) and says L.
        let out = run(&mut s, &mut pubs, &clock, 1_400);
        assert!(has(&out, "Manual2/Event", "L"));
        assert!(has(&out, "2/State", "0"));
        assert!(!s.is_on(2));
        // A command turns output 1 on; after a "reboot" it is restored.
        assert!(block_on(s.command("1/State", " ON ", &mut pubs)));
        assert!(s.is_on(1));
        assert_eq!(io.last(), Some(0b0010));
        drop(s);
        let io2 = FakeIo::default();
        let mut pubs2 = Publications::new(16);
        let s2 = boot(&io2, &store, &clock, &mut pubs2);
        assert_eq!(s2.output_bits(), 0b0010);
        assert_eq!(io2.writes.borrow().as_slice(), &[0b0010]);
    }

    #[test]
    fn events_are_cleared_so_refresh_does_not_repeat_them() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        run(&mut s, &mut pubs, &clock, 100);
        io.inputs.set(1);
        run(&mut s, &mut pubs, &clock, 300);
        io.inputs.set(0);
        run(&mut s, &mut pubs, &clock, 300 + EVENT_HOLD + 100);
        pubs.refresh();
        let out = run(&mut s, &mut pubs, &clock, 300 + EVENT_HOLD + 100);
        assert!(
            !out.iter().any(|(i, _, _)| i.starts_with("Manual")),
            "{out:?}"
        );
        assert!(has(&out, "0/State", "1"));
    }

    #[test]
    fn program_commands_compile_save_and_report() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        run(&mut s, &mut pubs, &clock, 0);
        // A bad program: only the status, the old program stays.
        assert!(block_on(s.command(
            "Program",
            "0:P:-0/+0;0:X:+1",
            &mut pubs
        )));
        let out = run(&mut s, &mut pubs, &clock, 5);
        assert_eq!(
            out,
            vec![(
                "ProgramCompilation".into(),
                "Program kind unexp: 0:X:+1".into(),
                true
            )]
        );
        assert!(s.program_text().starts_with("0:P:-0/+0; 1:P"));
        // A good one: status and program, saved trimmed.
        let text = "0:R:-0,-1/+0,+1; 3:T:-3/+3";
        assert!(block_on(s.command(
            "Program",
            &format!("  {text}\n"),
            &mut pubs
        )));
        let out = run(&mut s, &mut pubs, &clock, 10);
        assert!(has(&out, "Program", text) && has(&out, "ProgramCompilation", "Success"));
        assert_eq!(block_on(s.read_program()), Ok(Some(text.into())));
        // Empty: ignored with a log line.
        assert!(block_on(s.command("Program", "  ", &mut pubs)));
        assert_eq!(s.program_text(), text);
        // The R input dictates the outputs at its first reading after boot.
        io.inputs.set(0b0001);
        let out = run(&mut s, &mut pubs, &clock, 200);
        assert!(has(&out, "Manual0/Event", "R+"));
        assert_eq!(s.output_bits(), 0b0011);
        // Reboot: the saved program runs.
        drop(s);
        let mut pubs2 = Publications::new(16);
        let s2 = boot(&FakeIo::default(), &store, &clock, &mut pubs2);
        assert_eq!(s2.program_text(), text);
        // A long program spans several chunks and reads back.
        let mut s3 = s2;
        let long = (0..4)
            .map(|m| {
                                format!("{m}:P:-0,-1,-2,-3/+0,+1,+2,+3/+0,-1,+2,-3/-0,+1,-2,+3/+0,+1,-2,-3/-0,-1,+2,+3/+0,-1,-2,+3/-0,+1,+2,-3")
            })
            .collect::<Vec<_>>()
            .join("; ");
        assert!(long.len() > 256 && long.len() <= program::MAX_PROGRAM_LEN);
        assert!(block_on(s3.command("Program", &long, &mut pubs2)));
        assert_eq!(s3.status(), "Success");
        assert_eq!(block_on(s3.read_program()), Ok(Some(long.clone())));
        // Shorter again: the extra chunks go.
        assert!(block_on(s3.command("Program", text, &mut pubs2)));
        assert_eq!(block_on(s3.read_program()), Ok(Some(text.into())));
    }

    #[test]
    fn a_stored_program_that_does_not_compile_is_reported_and_kept() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        {
            let mut s = boot(&FakeIo::default(), &store, &clock, &mut pubs);
            // Valid for 4 inputs when saved; corrupt it through the store.
            assert!(block_on(s.command("Program", "0:P:-0/+0", &mut pubs)));
        }
        block_on(async {
            let mut st = store.lock().await;
            st.set_bytes(chunk_key(0), b"0:P:-0//+0").await.unwrap();
            st.set_u32(Key::new(PROGRAM_LEN_KEY), 10).await.unwrap();
        });
        let mut pubs = Publications::new(16);
        let mut s = boot(&FakeIo::default(), &store, &clock, &mut pubs);
        assert_eq!(s.status(), "Phase empty");
        assert_eq!(s.malfunction(), MF_PROGRAM);
        assert_eq!(s.program_text(), default_text(4, 4));
        let out = run(&mut s, &mut pubs, &clock, 0);
        assert!(has(&out, "ProgramCompilation", "Phase empty"));
        assert!(has(&out, "Program", &default_text(4, 4)));
        assert!(has(&out, "Malfunction", "8"));
        assert!(out
            .iter()
            .any(|(i, p, _)| i == hearth_core::publish::LOG_ITEM
                && p.contains("stored program does not compile (Phase empty)")));
        // Not overwritten by the default.
        assert_eq!(block_on(s.read_program()), Ok(Some("0:P:-0//+0".into())));
        // A valid program clears the malfunction and replaces it.
        assert!(block_on(s.command("Program", "1:T:-1/+1", &mut pubs)));
        assert_eq!(s.malfunction(), 0);
        assert_eq!(block_on(s.read_program()), Ok(Some("1:T:-1/+1".into())));
    }

    #[test]
    fn state_commands_and_bad_payloads() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(32);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        run(&mut s, &mut pubs, &clock, 0);
        for (payload, on) in [
            ("on", true),
            ("0", false),
            ("UP", true),
            (" down ", false),
            ("1", true),
            ("Off", false),
        ] {
            assert!(block_on(s.command("3/State", payload, &mut pubs)));
            assert_eq!(s.is_on(3), on, "{payload}");
        }
        for bad in ["", "2", "yes", "onn", "1.0"] {
            assert!(block_on(s.command("3/State", bad, &mut pubs)));
            assert!(!s.is_on(3));
        }
        let out = run(&mut s, &mut pubs, &clock, 5);
        assert_eq!(
            out.iter()
                .filter(
                    |(i, p, _)| i == hearth_core::publish::LOG_ITEM && p.contains("invalid value")
                )
                .count(),
            5
        );
        for leaf in [
            "4/State", "03/State", "-1/State", "State", "/State", "0/state", "0/Stat", "program",
        ] {
            assert!(!block_on(s.command(leaf, "on", &mut pubs)), "{leaf}");
        }
        assert_eq!(parse_state("ON"), Some(true));
        assert_eq!(parse_state("nope"), None);
    }

    #[test]
    fn hardware_and_store_failures_are_reported_and_retried() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let io = FakeIo::default();
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(32);
        let mut s = boot(&io, &store, &clock, &mut pubs);
        run(&mut s, &mut pubs, &clock, 0);
        io.fail_read.set(true);
        let out = run(&mut s, &mut pubs, &clock, 100);
        assert_eq!(s.malfunction(), MF_INPUTS);
        assert_eq!(
            out.iter()
                .filter(|(_, p, _)| p.contains("input read failed"))
                .count(),
            1
        );
        io.fail_read.set(false);
        run(&mut s, &mut pubs, &clock, 200);
        assert_eq!(s.malfunction(), 0);
        io.fail_write.set(true);
        flash.fail_writes.set(true);
        assert!(block_on(s.command("0/State", "on", &mut pubs)));
        assert_eq!(s.malfunction(), MF_OUTPUTS | MF_STORE);
        assert!(s.is_on(0));
        io.fail_write.set(false);
        flash.fail_writes.set(false);
        let out = run(&mut s, &mut pubs, &clock, 200 + RETRY_EVERY + 10);
        assert_eq!(s.malfunction(), 0);
        assert_eq!(io.last(), Some(1));
        assert_eq!(stored_state(&store, 0), Some(1));
        assert!(has(&out, "Malfunction", "0"));
        assert!(out.iter().any(|(_, p, _)| p.contains("outputs work again")));
    }

    #[test]
    fn entities_are_switches_events_and_diagnostics() {
        let flash = TestFlash::new();
        let store = open(&flash);
        let clock = Rc::new(Cell::new(0));
        let mut pubs = Publications::new(16);
        let s = boot(&FakeIo::default(), &store, &clock, &mut pubs);
        let e = s.entities();
        assert_eq!(e.len(), 4 + 4 + 3);
        assert_eq!(
            e[2],
            Entity::switch("2/State", "Output 2", "2/State", "1", "0")
        );
        assert_eq!(e[5].item, "Manual1/Event");
        assert_eq!(
            e[5].component,
            hearth_core::discovery::Component::Event {
                event_types: ["P", "L", "T+", "T-", "R+", "R-"]
                    .map(String::from)
                    .to_vec()
            }
        );
        assert_eq!(e[5].value_template.as_deref(), Some(EVENT_TEMPLATE));
        assert!(e[8..].iter().all(|d| d.diagnostic));
        assert_eq!(e[10].item, "Malfunction");
    }

    fn config(extra: &str) -> Result<SwitchSettings, String> {
        let text = format!("profile switch\nssid (wired)\nmqttbroker b\nmqttname Sw\n{extra}");
        let c = hearth_config::parse_with(&text, &["switch"], CONFIG_KEYS)
            .map_err(|e| format!("{}", e.located("config.txt")))?;
        SwitchSettings::from_config(&c).map_err(|e| e.to_string())
    }

    #[test]
    fn config_selects_presets_and_overrides_pins() {
        let s = config("switchboard Direct4\n").unwrap();
        assert_eq!(s, SwitchSettings::for_board(Board::Direct4));
        assert_eq!(
            (s.poll, s.timing.debounce, s.timing.longpress),
            (15, 50, 1_000)
        );
        let s = config(
            "switchboard DTWONDER8\npoll 20\ndebounce 0\nlongpress 800\nswitchsrpins 1,2,3,4,5\n",
        )
        .unwrap();
        assert_eq!(s.board, Board::Dingtian8);
        assert_eq!(
            (s.poll, s.timing.debounce, s.timing.longpress),
            (20, 0, 800)
        );
        assert_eq!(
            s.pins,
            Pins::ShiftRegisters(SrPins {
                oe: 1,
                latch: 2,
                clock: 3,
                ser: 4,
                qh: 5
            })
        );
        let s = config("switchboard minir4\nswitchinpins 5, 9\nswitchoutpins 4\n").unwrap();
        assert_eq!(
            s.pins,
            Pins::Direct {
                inputs: vec![5, 9],
                outputs: vec![4]
            }
        );
        for (extra, expect) in [
            ("", "\"switchboard\" is required"),
            ("switchboard Direct5\n", "dtwonder8"),
            ("switchboard Direct4\npoll 0\n", "1..=1000"),
            ("switchboard Direct4\nlongpress 10\n", "50..=60000"),
            ("switchboard Direct4\ndebounce x\n", "0..=10000"),
            (
                "switchboard Direct4\nswitchinpins 1,2,3\n",
                "\"switchinpins\" must be 4 GPIO numbers for Direct4, not \"1,2,3\"",
            ),
            ("switchboard Direct4\nswitchinpins 1,2,3,3\n", "distinct"),
            (
                "switchboard Direct4\nswitchinpins 1,2,3,4\nswitchoutpins 5,6,7,1\n",
                "\"switchinpins\" and \"switchoutpins\" are both GPIO 1",
            ),
            (
                "switchboard Direct4\nswitchsrpins 1,2,3,4,5\n",
                "for dtwonder8",
            ),
            (
                "switchboard dtwonder8\nswitchoutpins 1,2,3,4,5,6,7,8\n",
                "for direct boards",
            ),
            ("switchboard dtwonder8\nswitchsrpins 1,2,3\n", "five"),
        ] {
            let e = config(extra).expect_err(extra);
            assert!(e.contains(expect), "{extra}: {e}");
        }
    }

    #[test]
    fn presets_match_the_reference_table() {
        let counts: Vec<(&str, usize, usize, bool)> = Board::ALL
            .iter()
            .map(|b| {
                let p = b.preset();
                (p.name, p.inputs, p.outputs, p.inputs_active_low)
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("Direct4", 4, 4, true),
                ("dtwonder2", 2, 2, true),
                ("dtwonder4", 4, 4, true),
                ("dtwonder8", 8, 8, true),
                ("hoffer6", 8, 6, false),
                ("minir4", 2, 1, true),
            ]
        );
        for b in Board::ALL {
            let p = b.preset();
            if let Wiring::Direct { inputs, outputs } = p.wiring {
                assert_eq!(
                    (inputs.len(), outputs.len()),
                    (p.inputs, p.outputs),
                    "{}",
                    p.name
                );
            }
            assert_eq!(Board::from_name(p.name), Some(b));
        }
        assert_eq!(Board::MiniR4.preset().led, Some((19, true)));
        assert_eq!(Board::Dingtian8.preset().led, None);
    }

    /// A GPIO for [`DirectIo`]: a level that reads back what was set.
    #[derive(Clone, Default)]
    struct Gpio(Rc<Cell<bool>>);

    impl embedded_hal::digital::ErrorType for Gpio {
        type Error = ErrorKind;
    }
    impl embedded_hal::digital::InputPin for Gpio {
        fn is_high(&mut self) -> Result<bool, ErrorKind> {
            Ok(self.0.get())
        }
        fn is_low(&mut self) -> Result<bool, ErrorKind> {
            Ok(!self.0.get())
        }
    }
    impl embedded_hal::digital::OutputPin for Gpio {
        fn set_low(&mut self) -> Result<(), ErrorKind> {
            self.0.set(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), ErrorKind> {
            self.0.set(true);
            Ok(())
        }
    }

    #[test]
    fn direct_io_inverts_inputs_and_drives_outputs_high_for_on() {
        let ins: Vec<Gpio> = (0..3).map(|_| Gpio::default()).collect();
        let outs: Vec<Gpio> = (0..2).map(|_| Gpio::default()).collect();
        let mut io = DirectIo::new(ins.clone(), outs.clone(), true);
        assert_eq!((io.inputs(), io.outputs()), (3, 2));
        ins[0].0.set(true);
        ins[2].0.set(true);
        assert_eq!(block_on(io.read_inputs()), Ok(0b010), "low = active");
        block_on(io.write_outputs(0b10)).unwrap();
        assert!(!outs[0].0.get() && outs[1].0.get());
        let mut io = DirectIo::new(ins.clone(), outs, false);
        assert_eq!(block_on(io.read_inputs()), Ok(0b101));
    }
}
