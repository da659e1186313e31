//! The switch program language: its compiler and a sans-IO interpreter.
//!
//! # Language (reference §7)
//!
//! ```text
//! program := record (";" record)*
//! record  := manual ":" kind ":" phases        kind: P | T | R (case-sensitive)
//! phases  := phase ("/" phase)*
//! phase   := item ("," item)*
//! item    := ("+" | "-") output
//! ```
//!
//! Whitespace around every token is ignored and empty records (a trailing `;`) are skipped,
//! e.g. `0:P:-0/+0; 1:P:-1,-2/+1,+2/+1,-2/-1,+2; 2:T:-3/+3`. Manual inputs and outputs are
//! numbered from 0.
//!
//! * `P` (push-button): a press runs the next phase (event `P`) and, if the button is still
//!   held [`Timing::longpress`] later, phase 0 (event `L`); any change of the input cancels the
//!   pending long press.
//! * `T` (toggle switch used as a toggler): each change runs the next phase (`T+` when it goes
//!   on, `T-` when it goes off).
//! * `R` (switch that dictates the state): on runs phase 1 (`R+`), off runs phase 0 (`R-`),
//!   including the first reading after boot, so it overrides the states restored from flash.
//!
//! The next phase is the one after the first phase whose outputs all have the listed states
//! (after phase 0 if none matches), cycling.
//!
//! # Errors
//!
//! Every message of the reference, word for word (see [`CompileError`]), plus the checks the
//! reference lacked (its FIXMEs, §13.9): numbers out of range (the reference wrapped them
//! modulo the counts), duplicate manual inputs, duplicate outputs in a phase, duplicate phases
//! in a record, an `R` record with one phase (the reference failed at run time); an `R` record
//! with more than two phases compiles, as in the reference, with a warning that only phases 0
//! and 1 act ([`Program::warnings`]),
//! and a program longer than [`MAX_PROGRAM_LEN`].

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use hearth_core::Millis;

/// Most manual inputs and outputs a program addresses (one bit each in a `u32`).
pub const MAX_CHANNELS: usize = 32;
/// The longest program text accepted, in bytes (after trimming).
pub const MAX_PROGRAM_LEN: usize = 1024;
/// The message of a successful compilation.
pub const SUCCESS: &str = "Success";

/// How a manual input is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Push-button (`P`).
    Push,
    /// Toggle switch used as a toggler (`T`).
    Toggle,
    /// Switch that dictates the state (`R`).
    Regular,
}

impl Kind {
    /// The letter of the language.
    pub const fn letter(self) -> char {
        match self {
            Kind::Push => 'P',
            Kind::Toggle => 'T',
            Kind::Regular => 'R',
        }
    }
}

/// One phase: the outputs it lists (`mask`) and their states (`on`, a subset of `mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// Bit *n* set: the phase sets output *n*.
    pub mask: u32,
    /// Bit *n* set: the phase switches output *n* on.
    pub on: u32,
}

impl Phase {
    /// Whether the outputs `state` already match this phase.
    pub fn matches(self, state: u32) -> bool {
        state & self.mask == self.on
    }

    /// `state` after running this phase.
    pub fn apply(self, state: u32) -> u32 {
        (state & !self.mask) | self.on
    }
}

/// The compiled record of one manual input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// How the input is used.
    pub kind: Kind,
    /// Its phases (at least one; exactly two for [`Kind::Regular`]).
    pub phases: Vec<Phase>,
}

impl Record {
    /// The index of the phase after the first one matching `state` (after phase 0 when none
    /// matches), cycling.
    pub fn next_phase(&self, state: u32) -> usize {
        let current = self
            .phases
            .iter()
            .position(|p| p.matches(state))
            .unwrap_or(0);
        (current + 1) % self.phases.len().max(1)
    }
}

/// A compiled program for a device with some number of manual inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    text: String,
    records: Vec<Option<Record>>,
    outputs: usize,
    warnings: Vec<String>,
}

impl Program {
    /// A program with no records (every input unprogrammed).
    pub fn empty(inputs: usize, outputs: usize) -> Self {
        Program {
            text: String::new(),
            records: (0..inputs.min(MAX_CHANNELS)).map(|_| None).collect(),
            outputs: outputs.min(MAX_CHANNELS),
            warnings: Vec::new(),
        }
    }

    /// What compiled but does not do what it says (an `R` record's phases after the second).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The (trimmed) source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The record of manual input `input`, if programmed.
    pub fn record(&self, input: usize) -> Option<&Record> {
        self.records.get(input).and_then(Option::as_ref)
    }

    /// Manual inputs of the device.
    pub fn inputs(&self) -> usize {
        self.records.len()
    }

    /// Outputs of the device.
    pub fn outputs(&self) -> usize {
        self.outputs
    }
}

/// Why a program does not compile. [`Display`](fmt::Display) gives the message published on
/// `ProgramCompilation`; the `String`s are the offending record or phase, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    /// `Program is nil`: no record at all.
    Nil,
    /// `Program manual unexp: <record>`: not three `:`-separated fields.
    Fields(String),
    /// `Program manual# unexp: <record>`: the manual input is not an integer.
    ManualNumber(String),
    /// `Program kind unexp: <record>`: the kind is not `P`, `T` or `R`.
    Kind(String),
    /// `Phase empty`: an empty phase (`0:P:`, `+0//-0`).
    PhaseEmpty,
    /// `Switch len unexp: <phase>`: an item shorter than two characters.
    SwitchLen(String),
    /// `Switch sign unexp: <phase>`: an item not starting with `+` or `-`.
    SwitchSign(String),
    /// `Phase switch# unexp: <phase>`: an output that is not an integer.
    SwitchNumber(String),
    /// Not in the reference: `Program manual# out of range (0-<max>): <record>`.
    ManualRange(String, usize),
    /// Not in the reference: `Program manual duplicate: <record>` (the later record).
    ManualDuplicate(String),
    /// Not in the reference: `Program R needs 2 phases: <record>`.
    RegularPhases(String),
    /// Not in the reference: `Phase switch# out of range (0-<max>): <phase>`.
    SwitchRange(String, usize),
    /// Not in the reference: `Phase switch duplicate: <phase>` (an output listed twice).
    SwitchDuplicate(String),
    /// Not in the reference: `Phase duplicate: <phase>` (the same outputs and states as an
    /// earlier phase of the record; the later one could never be reached).
    PhaseDuplicate(String),
    /// Not in the reference: `Program too long: <n> bytes (max 1024)`.
    TooLong(usize),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Nil => f.write_str("Program is nil"),
            CompileError::Fields(r) => write!(f, "Program manual unexp: {r}"),
            CompileError::ManualNumber(r) => write!(f, "Program manual# unexp: {r}"),
            CompileError::Kind(r) => write!(f, "Program kind unexp: {r}"),
            CompileError::PhaseEmpty => f.write_str("Phase empty"),
            CompileError::SwitchLen(p) => write!(f, "Switch len unexp: {p}"),
            CompileError::SwitchSign(p) => write!(f, "Switch sign unexp: {p}"),
            CompileError::SwitchNumber(p) => write!(f, "Phase switch# unexp: {p}"),
            CompileError::ManualRange(r, n) => {
                write!(f, "Program manual# out of range (0-{}): {r}", n - 1)
            }
            CompileError::ManualDuplicate(r) => write!(f, "Program manual duplicate: {r}"),
            CompileError::RegularPhases(r) => write!(f, "Program R needs 2 phases: {r}"),
            CompileError::SwitchRange(p, n) => {
                write!(f, "Phase switch# out of range (0-{}): {p}", n - 1)
            }
            CompileError::SwitchDuplicate(p) => write!(f, "Phase switch duplicate: {p}"),
            CompileError::PhaseDuplicate(p) => write!(f, "Phase duplicate: {p}"),
            CompileError::TooLong(n) => {
                write!(f, "Program too long: {n} bytes (max {MAX_PROGRAM_LEN})")
            }
        }
    }
}

/// An integer as Python's `int()` reads the common cases: an optional sign and ASCII digits.
/// `Some(None)` for an integer too large for an `i64` (out of any range).
fn integer(text: &str) -> Option<Option<i64>> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<i64>().ok())
}

/// The number `text` if it is an integer in `0..count`: `Err(true)` not an integer,
/// `Err(false)` out of range.
fn index(text: &str, count: usize) -> Result<usize, bool> {
    let n = integer(text).ok_or(true)?;
    n.and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n < count)
        .ok_or(false)
}

fn phase(text: &str, outputs: usize) -> Result<Phase, CompileError> {
    if text.is_empty() {
        return Err(CompileError::PhaseEmpty);
    }
    let mut p = Phase { mask: 0, on: 0 };
    for item in text.split(',').map(str::trim) {
        if item.chars().count() < 2 {
            return Err(CompileError::SwitchLen(text.into()));
        }
        let on = match item.as_bytes()[0] {
            b'+' => true,
            b'-' => false,
            _ => return Err(CompileError::SwitchSign(text.into())),
        };
        let n = match index(item[1..].trim(), outputs) {
            Ok(n) => n,
            Err(true) => return Err(CompileError::SwitchNumber(text.into())),
            Err(false) => return Err(CompileError::SwitchRange(text.into(), outputs)),
        };
        let bit = 1u32 << n;
        if p.mask & bit != 0 {
            return Err(CompileError::SwitchDuplicate(text.into()));
        }
        p.mask |= bit;
        if on {
            p.on |= bit;
        }
    }
    Ok(p)
}

/// Compiles `text` for a device with `inputs` manual inputs and `outputs` outputs (each at
/// most [`MAX_CHANNELS`]). The text is trimmed first; the program keeps the trimmed text.
pub fn compile(text: &str, inputs: usize, outputs: usize) -> Result<Program, CompileError> {
    let text = text.trim();
    if text.len() > MAX_PROGRAM_LEN {
        return Err(CompileError::TooLong(text.len()));
    }
    let mut program = Program::empty(inputs, outputs);
    let (inputs, outputs) = (program.records.len(), program.outputs);
    let mut any = false;
    for record in text.split(';').map(str::trim) {
        if record.is_empty() {
            continue;
        }
        let fields: Vec<&str> = record.split(':').map(str::trim).collect();
        let [manual, kind, phases] = fields[..] else {
            return Err(CompileError::Fields(record.into()));
        };
        let manual = match index(manual, inputs) {
            Ok(n) => n,
            Err(true) => return Err(CompileError::ManualNumber(record.into())),
            Err(false) => return Err(CompileError::ManualRange(record.into(), inputs)),
        };
        let kind = match kind {
            "P" => Kind::Push,
            "T" => Kind::Toggle,
            "R" => Kind::Regular,
            _ => return Err(CompileError::Kind(record.into())),
        };
        let mut compiled: Vec<Phase> = Vec::new();
        for text in phases.split('/').map(str::trim) {
            let p = phase(text, outputs)?;
            if compiled.contains(&p) {
                return Err(CompileError::PhaseDuplicate(text.into()));
            }
            compiled.push(p);
        }
        if kind == Kind::Regular && compiled.len() < 2 {
            return Err(CompileError::RegularPhases(record.into()));
        }
        if kind == Kind::Regular && compiled.len() > 2 {
            // The reference accepts it and only ever runs phases 0 and 1.
            program.warnings.push(format!(
                "R record with {} phases: only phases 0 (off) and 1 (on) act: {record}",
                compiled.len()
            ));
        }
        let slot = &mut program.records[manual];
        if slot.is_some() {
            return Err(CompileError::ManualDuplicate(record.into()));
        }
        *slot = Some(Record {
            kind,
            phases: compiled,
        });
        any = true;
    }
    if !any {
        return Err(CompileError::Nil);
    }
    program.text = text.into();
    Ok(program)
}

/// The reference's default program: input *n* is a push-button toggling output
/// *n* mod `outputs` (`0:P:-0/+0; 1:P:-1/+1; …;`).
pub fn default_text(inputs: usize, outputs: usize) -> String {
    let outputs = outputs.clamp(1, MAX_CHANNELS);
    let mut text = String::new();
    for n in 0..inputs.min(MAX_CHANNELS) {
        let s = n % outputs;
        text.push_str(&format!("{n}:P:-{s}/+{s}; "));
    }
    text.trim().to_string()
}

/// An event of a manual input, published on `Manual<n>/Event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `P`: a push-button was pressed.
    Press,
    /// `L`: a push-button was held for the long-press time.
    LongPress,
    /// `T+`: a toggler went on.
    ToggleOn,
    /// `T-`: a toggler went off.
    ToggleOff,
    /// `R+`: a regular switch went on.
    On,
    /// `R-`: a regular switch went off.
    Off,
}

impl Event {
    /// Every event, in payload order.
    pub const ALL: [Event; 6] = [
        Event::Press,
        Event::LongPress,
        Event::ToggleOn,
        Event::ToggleOff,
        Event::On,
        Event::Off,
    ];

    /// The payload.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Press => "P",
            Event::LongPress => "L",
            Event::ToggleOn => "T+",
            Event::ToggleOff => "T-",
            Event::On => "R+",
            Event::Off => "R-",
        }
    }
}

/// What the interpreter asks of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Output `index` changed to `on`.
    Output {
        /// The output.
        index: usize,
        /// Its new state.
        on: bool,
    },
    /// Manual input `input` produced `event`.
    Event {
        /// The input.
        input: usize,
        /// What happened.
        event: Event,
    },
    /// Manual input `input` changed but has no record ("No program for manual n").
    Unprogrammed {
        /// The input.
        input: usize,
    },
}

/// The interpreter's times, in ms (config keys `debounce` and `longpress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a new input level must hold before it counts.
    pub debounce: Millis,
    /// How long a push-button is held for a long press.
    pub longpress: Millis,
}

#[derive(Debug, Clone, Copy, Default)]
struct InputState {
    /// The debounced level; `None` until the first one after boot.
    committed: Option<bool>,
    /// A level being debounced, since when.
    candidate: Option<(bool, Millis)>,
    /// When a pending long press fires.
    long_at: Option<Millis>,
}

/// The sans-IO interpreter: fed input levels with their time ([`input`](Self::input)), ticked
/// for the long-press timers ([`tick`](Self::tick)); the outputs' states live here.
#[derive(Debug, Clone)]
pub struct Machine {
    program: Program,
    timing: Timing,
    inputs: Vec<InputState>,
    outputs: u32,
}

impl Machine {
    /// An interpreter running `program` (its input and output counts are the device's), all
    /// outputs off and every input level unknown.
    pub fn new(program: Program, timing: Timing) -> Self {
        Machine {
            inputs: alloc::vec![InputState::default(); program.inputs()],
            program,
            timing,
            outputs: 0,
        }
    }

    /// The running program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Replaces the program (same device). Pending long presses are cancelled; the inputs'
    /// debounced levels are kept.
    pub fn set_program(&mut self, program: Program) {
        for s in &mut self.inputs {
            s.long_at = None;
        }
        self.inputs.resize(program.inputs(), InputState::default());
        self.program = program;
    }

    /// The outputs' states (bit *n* = output *n* on).
    pub fn outputs(&self) -> u32 {
        self.outputs
    }

    /// Sets the outputs' states without effects (restored from flash).
    pub fn restore_outputs(&mut self, bits: u32) {
        self.outputs = bits & self.output_mask();
    }

    /// The debounced level of input `i` (`None` = not yet known).
    pub fn input_level(&self, i: usize) -> Option<bool> {
        self.inputs.get(i).and_then(|s| s.committed)
    }

    fn output_mask(&self) -> u32 {
        match self.program.outputs() {
            n if n >= 32 => u32::MAX,
            n => (1u32 << n) - 1,
        }
    }

    /// Switches output `index` (a command); pushes an [`Effect::Output`] if it changed.
    pub fn set_output(&mut self, index: usize, on: bool, fx: &mut Vec<Effect>) {
        if index >= self.program.outputs() {
            return;
        }
        let bit = 1u32 << index;
        let new = if on {
            self.outputs | bit
        } else {
            self.outputs & !bit
        };
        self.change(new, fx);
    }

    fn change(&mut self, new: u32, fx: &mut Vec<Effect>) {
        let new = new & self.output_mask();
        let old = core::mem::replace(&mut self.outputs, new);
        let diff = old ^ self.outputs;
        for index in (0..self.program.outputs()).filter(|n| diff & (1 << n) != 0) {
            fx.push(Effect::Output {
                index,
                on: self.outputs & (1 << index) != 0,
            });
        }
    }

    fn run_phase(&mut self, input: usize, phase: usize, fx: &mut Vec<Effect>) {
        let Some(p) = self
            .program
            .record(input)
            .and_then(|r| r.phases.get(phase))
            .copied()
        else {
            return;
        };
        self.change(p.apply(self.outputs), fx);
    }

    /// The level of input `i` sampled at `now` (true = active). A change counts once it has
    /// held for the debounce time at a later sample, as the reference's polling does.
    pub fn input(&mut self, i: usize, level: bool, now: Millis, fx: &mut Vec<Effect>) {
        let debounce = self.timing.debounce;
        let Some(s) = self.inputs.get_mut(i) else {
            return;
        };
        let since = match s.candidate {
            None if s.committed != Some(level) => {
                s.candidate = Some((level, now));
                now
            }
            None => return,
            Some((candidate, _)) if candidate != level => {
                s.candidate = None;
                return;
            }
            Some((_, since)) => since,
        };
        if now.saturating_sub(since) < debounce {
            return;
        }
        s.candidate = None;
        let old = s.committed.replace(level);
        self.commit(i, old, level, now, fx);
    }

    fn commit(
        &mut self,
        i: usize,
        old: Option<bool>,
        new: bool,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) {
        let Some(kind) = self.program.record(i).map(|r| r.kind) else {
            fx.push(Effect::Unprogrammed { input: i });
            return;
        };
        let event = match (kind, old, new) {
            (Kind::Push, _, _) => {
                self.inputs[i].long_at = None;
                if old != Some(false) || !new {
                    return;
                }
                self.inputs[i].long_at = Some(now.saturating_add(self.timing.longpress));
                Event::Press
            }
            (Kind::Toggle, None, _) => return,
            (Kind::Toggle, Some(_), true) => Event::ToggleOn,
            (Kind::Toggle, Some(_), false) => Event::ToggleOff,
            (Kind::Regular, _, true) => Event::On,
            (Kind::Regular, _, false) => Event::Off,
        };
        let phase = match event {
            Event::On => 1,
            Event::Off => 0,
            _ => self
                .program
                .record(i)
                .map_or(0, |r| r.next_phase(self.outputs)),
        };
        self.run_phase(i, phase, fx);
        fx.push(Effect::Event { input: i, event });
    }

    /// Fires the long presses due at `now`: phase 0 and event `L`.
    pub fn tick(&mut self, now: Millis, fx: &mut Vec<Effect>) {
        for i in 0..self.inputs.len() {
            if self.inputs[i].long_at.is_some_and(|t| t <= now) {
                self.inputs[i].long_at = None;
                self.run_phase(i, 0, fx);
                fx.push(Effect::Event {
                    input: i,
                    event: Event::LongPress,
                });
            }
        }
    }

    /// When the next long press fires, if one is pending.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.inputs.iter().filter_map(|s| s.long_at).min()
    }
}

/// A bounded FIFO of effects (the profile keeps the events it could not publish yet).
pub(crate) fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, cap: usize) {
    if queue.len() >= cap {
        queue.pop_front();
    }
    queue.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn machine(text: &str, inputs: usize, outputs: usize) -> Machine {
        let p = compile(text, inputs, outputs).expect("compiles");
        Machine::new(
            p,
            Timing {
                debounce: 50,
                longpress: 1_000,
            },
        )
    }

    /// Feeds `level` to input `i` every 15 ms from `from` to `to` (inclusive), ticking too.
    fn hold(m: &mut Machine, i: usize, level: bool, from: Millis, to: Millis) -> Vec<Effect> {
        let mut fx = Vec::new();
        let mut t = from;
        while t <= to {
            m.tick(t, &mut fx);
            m.input(i, level, t, &mut fx);
            t += 15;
        }
        fx
    }

    fn events(fx: &[Effect]) -> Vec<(usize, &'static str)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Event { input, event } => Some((*input, event.as_str())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_compile_error_message_word_for_word() {
        // (program, message) for a device with 4 inputs and 4 outputs.
        let table = [
            // The reference's messages.
            ("", "Program is nil"),
            (" ; ;; ", "Program is nil"),
            ("0:P", "Program manual unexp: 0:P"),
            ("0:P:+0:x", "Program manual unexp: 0:P:+0:x"),
            ("0:P:-0/+0; 1 ", "Program manual unexp: 1"),
            ("x:P:-0/+0", "Program manual# unexp: x:P:-0/+0"),
            ("1.5:P:-0/+0", "Program manual# unexp: 1.5:P:-0/+0"),
            (":P:-0/+0", "Program manual# unexp: :P:-0/+0"),
            ("0:p:-0/+0", "Program kind unexp: 0:p:-0/+0"),
            ("0:X:-0/+0", "Program kind unexp: 0:X:-0/+0"),
            ("0: :-0/+0", "Program kind unexp: 0: :-0/+0"),
            ("0:P:", "Phase empty"),
            ("0:P:+0//-0", "Phase empty"),
            ("0:P:+0/ /-0", "Phase empty"),
            ("0:P:+", "Switch len unexp: +"),
            ("0:P:+0,,-1", "Switch len unexp: +0,,-1"),
            ("0:P:-0/+0, 1", "Switch len unexp: +0, 1"),
            ("0:P:*0/+0", "Switch sign unexp: *0"),
            ("0:P:-0/+0,01", "Switch sign unexp: +0,01"),
            ("0:P:-0/+a", "Phase switch# unexp: +a"),
            ("0:P:-0/+1,-1.0", "Phase switch# unexp: +1,-1.0"),
            // Added: ranges (the reference wrapped them), duplicates, R phases, length.
            ("4:P:-0/+0", "Program manual# out of range (0-3): 4:P:-0/+0"),
            (
                "-1:P:-0/+0",
                "Program manual# out of range (0-3): -1:P:-0/+0",
            ),
            (
                "99999999999999999999:P:-0/+0",
                "Program manual# out of range (0-3): 99999999999999999999:P:-0/+0",
            ),
            ("0:P:-0/+4", "Phase switch# out of range (0-3): +4"),
            ("0:P:-0/+-1", "Phase switch# out of range (0-3): +-1"),
            (
                "0:P:-0/+0; 1:T:-1/+1; 0:T:-2/+2",
                "Program manual duplicate: 0:T:-2/+2",
            ),
            ("0:P:-0/+0,-0", "Phase switch duplicate: +0,-0"),
            ("0:P:-0/+1,+1", "Phase switch duplicate: +1,+1"),
            ("0:P:-0,+1/+0/+1,-0", "Phase duplicate: +1,-0"),
            ("0:R:+0", "Program R needs 2 phases: 0:R:+0"),
        ];
        for (text, message) in table {
            let e = compile(text, 4, 4).expect_err(text);
            assert_eq!(e.to_string(), message, "{text:?}");
        }
        let long = "0:P:-0/+0;".repeat(103);
        assert_eq!(
            compile(&long, 4, 4).unwrap_err().to_string(),
            "Program too long: 1030 bytes (max 1024)"
        );
    }

    #[test]
    fn programs_compile_as_the_reference_reads_them() {
        let text = "  0:P:-0/+0; 1 : P : -1 , -2 / +1,+2/+1,-2/-1,+2 ;2:T:-3/+3;3:R:-0/+0; ";
        let p = compile(text, 4, 4).unwrap();
        assert_eq!(p.text(), text.trim());
        assert_eq!(p.record(0).unwrap().kind, Kind::Push);
        assert_eq!(
            p.record(1).unwrap().phases,
            vec![
                Phase { mask: 0b110, on: 0 },
                Phase {
                    mask: 0b110,
                    on: 0b110
                },
                Phase {
                    mask: 0b110,
                    on: 0b010
                },
                Phase {
                    mask: 0b110,
                    on: 0b100
                },
            ]
        );
        assert_eq!(p.record(2).unwrap().kind, Kind::Toggle);
        assert_eq!(p.record(3).unwrap().kind, Kind::Regular);
        // Signs on numbers, as Python's int() reads them.
        assert!(compile("+1:P:-+0/+-0", 4, 4).is_ok());
        assert!(compile("+1:P:-+0/+-1", 4, 4).is_err());
        assert!(compile("+1:P:-+0/+0", 4, 4).is_ok());
        assert!(compile("-0:P:--0/+0", 4, 4).is_ok());
        assert_eq!(
            default_text(4, 4),
            "0:P:-0/+0; 1:P:-1/+1; 2:P:-2/+2; 3:P:-3/+3;"
        );
        assert_eq!(default_text(8, 6), "0:P:-0/+0; 1:P:-1/+1; 2:P:-2/+2; 3:P:-3/+3; 4:P:-4/+4; 5:P:-5/+5; 6:P:-0/+0; 7:P:-1/+1;");
        assert_eq!(default_text(2, 1), "0:P:-0/+0; 1:P:-0/+0;");
        for (i, o) in [(4, 4), (2, 2), (8, 8), (8, 6), (2, 1), (32, 32)] {
            assert!(compile(&default_text(i, o), i, o).is_ok(), "{i} {o}");
        }
        assert_eq!(compile(&default_text(0, 4), 0, 4), Err(CompileError::Nil));
    }

    #[test]
    fn a_push_button_toggles_on_press_and_long_press_runs_phase_0() {
        let mut m = machine("0:P:-0/+0", 1, 1);
        // Boot: the first commit (released) does nothing.
        assert_eq!(hold(&mut m, 0, false, 0, 90), vec![]);
        assert_eq!(m.input_level(0), Some(false));
        // Press at 105: committed once held 50 ms (at 165): phase after "-0" = "+0".
        let fx = hold(&mut m, 0, true, 105, 150);
        assert_eq!(fx, vec![]);
        let fx = hold(&mut m, 0, true, 165, 165);
        assert_eq!(
            fx,
            vec![
                Effect::Output { index: 0, on: true },
                Effect::Event {
                    input: 0,
                    event: Event::Press
                }
            ]
        );
        assert_eq!(m.next_deadline(), Some(1_165));
        // Released before the long press: cancelled, nothing else.
        assert_eq!(hold(&mut m, 0, false, 300, 400), vec![]);
        assert_eq!(m.next_deadline(), None);
        assert_eq!(m.outputs(), 1);
        // Press again: off.
        let fx = hold(&mut m, 0, true, 500, 600);
        assert_eq!(events(&fx), vec![(0, "P")]);
        assert_eq!(m.outputs(), 0);
        // Still held: long press at 560 + 1000 runs phase 0 (off, unchanged) and says L.
        let fx = hold(&mut m, 0, true, 615, 1_560);
        assert_eq!(fx.len(), 1);
        assert_eq!(events(&fx), vec![(0, "L")]);
        assert_eq!(m.next_deadline(), None);
        // Release, press, hold: on, then the long press turns it off again.
        hold(&mut m, 0, false, 1_600, 1_700);
        let fx = hold(&mut m, 0, true, 1_800, 3_000);
        assert_eq!(events(&fx), vec![(0, "P"), (0, "L")]);
        assert_eq!(
            fx.iter()
                .filter(|e| matches!(e, Effect::Output { .. }))
                .count(),
            2
        );
        assert_eq!(m.outputs(), 0);
    }

    #[test]
    fn phases_cycle_from_the_first_matching_one() {
        let mut m = machine("1:P:-1,-2/+1,+2/+1,-2/-1,+2", 2, 3);
        let press = |m: &mut Machine, t: Millis| {
            hold(m, 1, false, t, t + 60);
            hold(m, 1, true, t + 100, t + 160);
            m.outputs()
        };
        hold(&mut m, 1, false, 0, 60);
        assert_eq!(press(&mut m, 100), 0b110);
        assert_eq!(press(&mut m, 400), 0b010);
        assert_eq!(press(&mut m, 700), 0b100);
        assert_eq!(press(&mut m, 1_000), 0b000);
        assert_eq!(press(&mut m, 1_300), 0b110);
        // Output 0 is not in the phases and stays as set.
        let mut fx = Vec::new();
        m.set_output(0, true, &mut fx);
        assert_eq!(fx, vec![Effect::Output { index: 0, on: true }]);
        assert_eq!(press(&mut m, 1_600), 0b011);
        // No phase matches: the next one is phase 1.
        let mut m = machine("0:P:+0,+1/-0,-1/+0,-1", 1, 2);
        m.restore_outputs(0b10);
        hold(&mut m, 0, false, 0, 60);
        hold(&mut m, 0, true, 100, 160);
        assert_eq!(m.outputs(), 0);
    }

    #[test]
    fn a_toggler_runs_the_next_phase_on_every_change() {
        let mut m = machine("0:T:-3/+3", 1, 4);
        // Boot with the switch on: nothing (−1 → 1).
        assert_eq!(hold(&mut m, 0, true, 0, 100), vec![]);
        let fx = hold(&mut m, 0, false, 200, 300);
        assert_eq!(events(&fx), vec![(0, "T-")]);
        assert_eq!(m.outputs(), 0b1000);
        let fx = hold(&mut m, 0, true, 400, 500);
        assert_eq!(events(&fx), vec![(0, "T+")]);
        assert_eq!(m.outputs(), 0);
        assert_eq!(m.next_deadline(), None, "no long press for T");
    }

    #[test]
    fn a_regular_switch_dictates_the_state_even_at_boot() {
        let mut m = machine("0:R:-0,-1/+0,+1", 1, 2);
        m.restore_outputs(0b11);
        let fx = hold(&mut m, 0, false, 0, 60);
        assert_eq!(events(&fx), vec![(0, "R-")]);
        assert_eq!(m.outputs(), 0);
        let fx = hold(&mut m, 0, true, 100, 200);
        assert_eq!(events(&fx), vec![(0, "R+")]);
        assert_eq!(m.outputs(), 0b11);
        // Already on: R+ again after off/on keeps it so.
        let mut m = machine("0:R:-0/+0", 1, 1);
        let fx = hold(&mut m, 0, true, 0, 60);
        assert_eq!(events(&fx), vec![(0, "R+")]);
        assert_eq!(m.outputs(), 1);
    }

    #[test]
    fn a_reference_r_record_with_more_phases_compiles_with_a_warning_and_uses_two() {
        let text = "0:R:-0/+0/+1";
        let p = compile(text, 1, 2).expect("the reference accepts it");
        assert_eq!(p.warnings().len(), 1, "{:?}", p.warnings());
        assert!(p.warnings()[0].contains("only phases 0 (off) and 1 (on) act: 0:R:-0/+0/+1"));
        assert!(compile("0:R:-0/+0", 1, 2).unwrap().warnings().is_empty());
        let mut m = machine(text, 1, 2);
        for round in 0..3 {
            let t = round * 400;
            hold(&mut m, 0, true, t, t + 60);
            assert_eq!(m.outputs(), 0b01, "on runs phase 1 only");
            hold(&mut m, 0, false, t + 200, t + 260);
            assert_eq!(m.outputs(), 0b00, "off runs phase 0");
        }
    }

    #[test]
    fn debounce_ignores_glitches_and_restarts() {
        let mut m = machine("0:P:-0/+0", 1, 1);
        hold(&mut m, 0, false, 0, 60);
        let mut fx = Vec::new();
        // A 30 ms glitch: started at 100, aborted at 130.
        m.input(0, true, 100, &mut fx);
        m.input(0, true, 115, &mut fx);
        m.input(0, false, 130, &mut fx);
        m.input(0, true, 145, &mut fx);
        m.input(0, true, 190, &mut fx);
        assert!(fx.is_empty(), "{fx:?}");
        m.input(0, true, 195, &mut fx);
        assert_eq!(events(&fx), vec![(0, "P")]);
        // Zero debounce commits at the first sample.
        let mut m = Machine::new(
            compile("0:T:-0/+0", 1, 1).unwrap(),
            Timing {
                debounce: 0,
                longpress: 1_000,
            },
        );
        let mut fx = Vec::new();
        m.input(0, false, 0, &mut fx);
        m.input(0, true, 1, &mut fx);
        assert_eq!(events(&fx), vec![(0, "T+")]);
    }

    #[test]
    fn unprogrammed_inputs_and_program_changes() {
        let mut m = machine("0:P:-0/+0", 2, 1);
        let fx = hold(&mut m, 1, true, 0, 60);
        assert_eq!(fx, vec![Effect::Unprogrammed { input: 1 }]);
        hold(&mut m, 0, false, 0, 60);
        hold(&mut m, 0, true, 100, 160);
        assert!(m.next_deadline().is_some());
        m.set_program(compile("0:T:-0/+0; 1:R:-0/+0", 2, 1).unwrap());
        assert_eq!(m.next_deadline(), None, "long press cancelled");
        assert_eq!(m.input_level(0), Some(true), "levels kept");
        let fx = hold(&mut m, 1, false, 200, 300);
        assert_eq!(events(&fx), vec![(1, "R-")]);
        // Out-of-range indices are ignored.
        let mut fx = Vec::new();
        m.input(7, true, 0, &mut fx);
        m.set_output(5, true, &mut fx);
        assert!(fx.is_empty());
    }
}
