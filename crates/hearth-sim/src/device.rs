//! The device process of the simulator: the very same runtime and profile code as the firmware,
//! on simulated hardware — a NOR flash file, an I2C bus with register-level chip models, a
//! network link the board controls, and a watchdog thread that resets the process when the loop
//! stops proving it is alive.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::faults::{FaultQueue, LoopFault, LoopFaults};
use crate::firmware::Health;
use hearth_appliances::energy::Energy;
use hearth_appliances::forwarder::Forwarder;
use hearth_appliances::h2o::H2o;
use hearth_appliances::relay::{Relay, RelayPanel};
use hearth_appliances::rx433::Rx433;
use hearth_appliances::scale_sensor::ScaleSensor;
use hearth_appliances::switch::{DirectIo, ShiftIo, Switch, Wiring};
use hearth_appliances::termo::Termo;
use hearth_appliances::tnowp::TNowP;
use hearth_appliances::weather::Weather;
use hearth_appliances::{Mqtt, Peripheral};
use hearth_core::reboot::HardwareReset;
use hearth_core::supervisor::LoopWatchdog;
use hearth_core::{Millis, SECOND};
use hearth_device::profiles::safe::SafeMode;
use hearth_device::profiles::{OnMqtt, Plan};
use hearth_drivers::hx711::Hx711;
use hearth_drivers::shiftreg::{Lines, ShiftRegisters};
use hearth_platform::{Console, Entropy, FirmwareStore, Identity, Reset, Watchdog};
use hearth_profile::link::CentralPort;
use hearth_profile::{DynProfile, SettingError};
use hearth_runtime::link::{run_central, run_peripheral};
use hearth_runtime::update::BootMode;
use hearth_simchips::hx711::{Hx711Fault, Hx711Model, LoadCell};
use hearth_simchips::shiftreg::Line;
use hearth_simchips::{
    Encoder, FlowMeter, Mcp23017Model, OneWireSimBus, OokFault, OokModel, PzemModel, SensorKind,
    ShiftRegModel, Ssd1306Model,
};
use hearth_simchips::{SimClock, SimI2cBus, WeatherHandle};
use hearth_storage::{FileFlash, KvStore};

use crate::air::{air_dir, SimRadio};
use crate::env::EnvMsg;
use crate::net::{Link, SimNetwork};

/// Exit code of a deep sleep: the board restarts the device after the time in [`SLEEP_FILE`].
pub const EXIT_SLEEP: i32 = 5;
/// File in the state directory holding the requested sleep, in ms.
pub const SLEEP_FILE: &str = "sleep-ms";
/// Environment variable naming the simulated air (`hearth sim --air`); unset = the default
/// air every simulated device on this machine shares.
pub const AIR_ENV: &str = "HEARTH_AIR";

/// Exit code of a software reset (the runtime asked for it).
pub const EXIT_RESET: i32 = 3;
/// Exit code of a watchdog reset.
pub const EXIT_WATCHDOG: i32 = 4;
/// Exit code when the configuration is invalid: the board must not restart the device.
pub const EXIT_CONFIG: i32 = 2;
/// Environment variable carrying the reset cause from the board.
pub const RESET_CAUSE_ENV: &str = "HEARTH_RESET_CAUSE";
/// A config pushed over MQTT (`hearth config push`), used instead of the `--config` file
/// from then on, as a board keeps the config it was sent in its flash.
pub const PUSHED_CONFIG: &str = "pushed-config.txt";
/// The config in force before the last push, kept while the pushed one is on trial (absent:
/// the `--config` file was).
pub const PREVIOUS_CONFIG: &str = "pushed-config.prev";
/// The chip whose boot rules the simulated device checks pushed configs against, when this
/// file in the state directory names one (`esp32c3`): a test standing in for a chip. The
/// simulator itself still runs what it runs.
pub const RULES_CHIP: &str = "rules-chip";
/// The message of the panic that ended the last run.
pub const PANIC_FILE: &str = "last-panic.txt";
/// The fingerprint of a config that makes the appliance crash (`hearth sim ctl DIR crash-config`).
pub const CRASH_CONFIG_FILE: &str = "crash-config";

/// The fingerprint of a config file's bytes: their SHA-256 in hex.
pub fn config_fingerprint(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Exit code: neither slot holds a bootable image.
pub const EXIT_NO_IMAGE: i32 = 6;
/// The flash file in the state directory.
pub const FLASH_NAME: &str = "flash.bin";
/// Size of the simulated key-value partition (16 KiB; the firmware's `hearth` partition has
/// 64 KiB, which only changes how often the store recycles a sector).
pub const FLASH_SIZE: u32 = 0x4000;

/// A config file's text; on error print why and return the exit code.
fn read_config(path: &Path) -> Result<String, ExitCode> {
    let shown = path.display();
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            eprintln!("{shown}: not UTF-8 text; config.txt must be plain text");
            ExitCode::from(EXIT_CONFIG as u8)
        }),
        Err(e) => {
            eprintln!("{shown}: cannot read: {e}");
            Err(ExitCode::from(EXIT_CONFIG as u8))
        }
    }
}

/// A parsed config, or every problem printed and the exit code.
fn parsed(
    path: &Path,
    parsed: Result<hearth_config::Config, hearth_config::ConfigErrors>,
) -> Result<hearth_config::Config, ExitCode> {
    parsed.map_err(|errors| {
        let shown = path.display().to_string();
        for e in errors.as_slice() {
            eprintln!("{}", e.located(&shown));
        }
        eprintln!("{shown}: {} error(s); nothing was started", errors.len());
        ExitCode::from(EXIT_CONFIG as u8)
    })
}

/// Read and validate a config file; on error print every problem and return the exit code.
pub fn load(path: &Path) -> Result<(hearth_config::Config, Plan), ExitCode> {
    let shown = path.display().to_string();
    let text = read_config(path)?;
    let config = parsed(path, hearth_device::profiles::parse_config(&text))?;
    match hearth_device::profiles::plan(&config) {
        Ok(p) => Ok((config, p)),
        Err(e) => {
            eprintln!("{shown}: {e}");
            Err(ExitCode::from(EXIT_CONFIG as u8))
        }
    }
}

/// How many switch inputs the board of the config at `path` has: its switch board's, none for
/// every other appliance; `None` when the file does not check (then no limit is known). The
/// config file is the board's wiring: a pushed config changes settings, not the hardware.
pub fn switch_inputs(path: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let config = hearth_device::profiles::parse_config(&text).ok()?;
    match hearth_device::profiles::plan(&config).ok()? {
        Plan::Mqtt {
            appliance: OnMqtt::Appliance(Mqtt::Switch(sw)),
            ..
        } => Some(sw.board.preset().inputs),
        _ => Some(0),
    }
}

/// An appliance of your own, outside `hearth-appliances`, run on the simulated board by
/// [`run_custom`] with the same runtime, store and MQTT session as every appliance (see
/// `examples/counter`). It has no simulated hardware: what it reads, it models itself.
pub struct Custom {
    /// Its `profile` name.
    pub name: &'static str,
    /// Its own config keys (beyond Hearth's, the board's and the update keys).
    pub keys: &'static [hearth_config::KeySpec],
    /// Its profile, from a parsed config; or the rule the config breaks.
    pub build: fn(&hearth_config::Config) -> Result<Box<dyn DynProfile>, SettingError>,
}

/// The custom appliance this process runs, for the config rules of pushes (a plain function,
/// as the runtime takes them).
static CUSTOM: std::sync::OnceLock<&'static Custom> = std::sync::OnceLock::new();

impl Custom {
    /// `text` parsed with this appliance's keys and name.
    fn parse(&self, text: &str) -> Result<hearth_config::Config, hearth_config::ConfigErrors> {
        let mut keys = hearth_device::profiles::config_keys();
        keys.extend_from_slice(self.keys);
        hearth_config::parse_with(text, &[self.name], &keys)
    }

    /// Every rule a config of this appliance must pass: the keys, the runtime's settings,
    /// the appliance's own. The settings and the profile on success.
    fn check(
        &self,
        config: &hearth_config::Config,
    ) -> Result<(hearth_runtime::Settings, Box<dyn DynProfile>), String> {
        let settings = hearth_runtime::Settings::from_config(config).map_err(|e| e.to_string())?;
        let profile =
            (self.build)(config).map_err(|error| format!("profile {}: {error}", self.name))?;
        Ok((settings, profile))
    }
}

/// What a pushed config must pass on a device running the [`Custom`] appliance.
fn custom_rules(
    text: &str,
    _chip: &str,
    _image: &[&str],
) -> Result<hearth_config::Config, Vec<String>> {
    let Some(custom) = CUSTOM.get() else {
        return Err(vec![String::from("no appliance is running")]);
    };
    let config = custom.parse(text).map_err(|e| e.located_lines("config"))?;
    custom
        .check(&config)
        .map_err(|e| vec![format!("config: {e}")])?;
    Ok(config)
}

/// `hearth config check FILE [--chip CHIP]`: the simulator's rules, and with `chip` every
/// rule that chip applies at boot (`hearth_device::chips`, for a full image).
pub fn config_check(path: &Path, chip: Option<&str>) -> ExitCode {
    let (config, plan) = match load(path) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let shown = path.display();
    let mut on = String::new();
    if let Some(name) = chip {
        let Some(chip) = hearth_device::chips::chip(name) else {
            eprintln!("unknown chip {name:?}");
            return ExitCode::from(EXIT_CONFIG as u8);
        };
        match hearth_device::chips::check(&config, &plan, chip, hearth_device::chips::FULL_IMAGE) {
            Ok(wiring) => {
                for w in &wiring.warnings {
                    println!("{shown}: warning: {w}");
                }
            }
            Err(rejected) => {
                for p in &rejected.problems {
                    eprintln!("{shown}: {p}");
                }
                eprintln!(
                    "{shown}: {} error(s) on the {name}: it would not boot there",
                    rejected.problems.len()
                );
                return ExitCode::from(EXIT_CONFIG as u8);
            }
        }
        on = format!(", boots on the {name}");
    }
    println!(
        "{shown}: ok (profile {}, device {}{on})",
        config.profile, config.mqtt.name
    );
    ExitCode::SUCCESS
}

/// The wall clock once SNTP set it: Unix ms minus the monotonic ms (0: not set).
static WALL_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Where the device's console goes when it is one of a fleet in this process (`hearth sim
/// --fleet`): its name, state directory, boot time and wall clock, and the fleet's log.
pub struct Member {
    /// The device's name (its `mqttname`).
    pub name: String,
    /// Its state directory.
    pub state: PathBuf,
    /// The monotonic ms at its last boot: the console shows the time since.
    boot_ms: AtomicU64,
    /// As [`WALL_OFFSET`], for this device.
    wall_offset: AtomicU64,
    sink: Box<dyn Fn(&str) + Send + Sync>,
}

impl Member {
    /// A fleet member named `name` in `state`, its console lines (already stamped and
    /// prefixed with its name) given to `sink`.
    pub fn new(name: String, state: PathBuf, sink: Box<dyn Fn(&str) + Send + Sync>) -> Self {
        Self {
            name,
            state,
            boot_ms: AtomicU64::new(0),
            wall_offset: AtomicU64::new(0),
            sink,
        }
    }

    /// The device (re)boots now.
    pub fn booting(&self) {
        self.boot_ms
            .store(embassy_time::Instant::now().as_millis(), Ordering::Relaxed);
        self.wall_offset.store(0, Ordering::Relaxed);
    }

    /// The monotonic ms of its last boot.
    pub fn boot_ms(&self) -> u64 {
        self.boot_ms.load(Ordering::Relaxed)
    }

    /// One console line of this device.
    pub fn line(&self, line: &str) {
        let mono = embassy_time::Instant::now().as_millis();
        let up = mono.saturating_sub(self.boot_ms.load(Ordering::Relaxed));
        (self.sink)(&stamped(
            up,
            self.wall_offset.load(Ordering::Relaxed),
            mono,
            line,
        ));
    }
}

std::thread_local! {
    /// The fleet member whose code runs on this thread now (none: the process is one device).
    static CURRENT: std::cell::RefCell<Option<Arc<Member>>> = const { std::cell::RefCell::new(None) };
}

/// The fleet member running on this thread, if any.
pub fn current_member() -> Option<Arc<Member>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// While this lives, console lines and resets on this thread are `member`'s.
pub struct Entered(Option<Arc<Member>>);

/// Run the following code as `member` (until the guard drops).
pub fn enter(member: &Arc<Member>) -> Entered {
    Entered(CURRENT.with(|c| c.replace(Some(member.clone()))))
}

impl Drop for Entered {
    fn drop(&mut self) {
        let before = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = before);
    }
}

/// How a run of the device ended, as its board sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The runtime reset the chip.
    Reset,
    /// Deep sleep for this many ms.
    Sleep(Millis),
    /// The watchdog reset it.
    Watchdog,
    /// The config cannot run: restarting would not help.
    Config,
    /// Neither slot holds a bootable image.
    NoImage,
    /// It panicked.
    Panic,
    /// Its power failed.
    PowerCut,
}

impl Stop {
    /// The exit code a device process ends with.
    fn exit_code(self) -> i32 {
        match self {
            Self::Reset => EXIT_RESET,
            Self::Sleep(_) => EXIT_SLEEP,
            Self::Watchdog => EXIT_WATCHDOG,
            Self::Config => EXIT_CONFIG,
            Self::NoImage => EXIT_NO_IMAGE,
            Self::Panic => 101,
            Self::PowerCut => 137,
        }
    }

    /// The reset cause the next boot reads.
    pub fn cause(self) -> HardwareReset {
        match self {
            Self::Reset => HardwareReset::Software,
            Self::Sleep(_) => HardwareReset::DeepSleepWake,
            Self::Watchdog => HardwareReset::Watchdog,
            Self::Panic => HardwareReset::Panic,
            Self::PowerCut => HardwareReset::PowerOn,
            Self::Config | Self::NoImage => HardwareReset::Other,
        }
    }
}

/// End this run of the device: a device process exits with the stop's code; a fleet member's
/// run unwinds to its board ([`crate::fleet`]), which restarts it as the hardware would.
fn stop(why: Stop) -> ! {
    if current_member().is_some() {
        std::panic::resume_unwind(Box::new(why))
    }
    if why == Stop::PowerCut {
        // As the board's power-cut: no cleanup, nothing flushed beyond what the files hold.
        // SAFETY: kill(2) on our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    std::process::exit(why.exit_code())
}

/// A console line with the time since boot and, once known, the time of day.
fn stamped(up_ms: u64, wall_offset: u64, mono: u64, line: &str) -> String {
    let t = up_ms as f64 / 1000.0;
    match wall_offset {
        0 => format!("[{t:>9.3}] {line}"),
        // The time of day (UTC) after the time since boot, which tools read.
        offset => format!(
            "[{t:>9.3}] {} {line}",
            hearth_core::sntp::TimeOfDay(mono + offset)
        ),
    }
}

fn console(line: &str) {
    if let Some(member) = current_member() {
        return member.line(line);
    }
    let mono = embassy_time::Instant::now().as_millis();
    let line = stamped(mono, WALL_OFFSET.load(Ordering::Relaxed), mono, line);
    crate::console::mirror(&line);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `hearth sim`'s check before it powers the device up: [`load`], except that a config that
/// lacks only its Wi-Fi passes (the device asks for it on its console, [`crate::console`]).
pub fn check_before_power(path: &Path) -> Result<(), ExitCode> {
    let text = read_config(path)?;
    if hearth_config::provision::awaits_wifi(&hearth_device::profiles::parse_config(&text)) {
        println!(
            "{}: no Wi-Fi in the config: the device will wait for it on its console",
            path.display()
        );
        return Ok(());
    }
    load(path).map(|_| ())
}

/// A config that lacks only its Wi-Fi: ask for it on the console until credentials pass every
/// rule and join; the path of the complete config, stored. `None`: the config is not of that
/// kind (the caller loads it as it is).
fn provision_wifi(
    path: &Path,
    state: &Path,
    version: &str,
    parse: &dyn Fn(&str) -> Result<hearth_config::Config, hearth_config::ConfigErrors>,
) -> Option<Result<PathBuf, ExitCode>> {
    // A console left from an earlier boot is gone with the process that opened it.
    let _ = std::fs::remove_file(state.join(crate::console::CONSOLE_LINK));
    let text = std::fs::read_to_string(path).ok()?;
    let chip = std::fs::read_to_string(state.join(RULES_CHIP))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| crate::firmware::CHIP.to_string());
    let check = |full: &str| match CUSTOM.get() {
        Some(_) => custom_rules(full, &chip, hearth_appliances::FULL_IMAGE),
        None => hearth_device::CONFIG_RULES(full, &chip, hearth_appliances::FULL_IMAGE),
    };
    // Anything but a config that a network would complete is refused as it is.
    let name = hearth_config::provision::awaiting(&text, parse, check)?
        .mqtt
        .name;
    let info = hearth_core::improv::DeviceInfo {
        firmware: "Hearth".into(),
        version: version.into(),
        chip: crate::firmware::CHIP.into(),
        name,
    };
    Some(
        match crate::console::provision(state, &text, info, &check, &|l| console(l)) {
            Ok(_) => Ok(state.join(crate::console::PROVISIONED_CONFIG)),
            Err(e) => {
                console(&format!("improv: the console failed: {e}"));
                Err(ExitCode::from(EXIT_CONFIG as u8))
            }
        },
    )
}

/// Faults and switches the board sends, shared with the loop.
#[derive(Default)]
struct Faults {
    /// The loop faults, for [`LoopFaults`].
    pending: FaultQueue,
    /// Flash operations on otadata until the injected power cut (0: none armed).
    cut_otadata: AtomicU32,
    stress: AtomicBool,
    /// Set when `stress` changes.
    stress_changed: crate::latch::Latch<()>,
    repair: AtomicBool,
}

/// The simulated board.
pub struct SimBoard {
    reset: HardwareReset,
    watchdog: Arc<Mutex<LoopWatchdog>>,
    faults: Arc<Faults>,
    weather: WeatherHandle,
    seed: u64,
    id: [u8; 6],
    state: PathBuf,
    /// The booted image's version.
    version: String,
    /// The firmware slots.
    slots: Option<hearth_ota::Slots<SlotFlash>>,
    /// The panic message that ended the previous run.
    last_panic: Option<String>,
}

/// Why the simulator could not store or restore a config: the file and what the OS said.
#[derive(Debug)]
pub struct ConfigFileError {
    /// The file that could not be read, written, renamed or removed.
    pub path: PathBuf,
    /// What the OS said.
    pub error: std::io::Error,
}

impl std::fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl FirmwareStore for SimBoard {
    type Slots = SlotFlash;
    type ConfigError = ConfigFileError;

    fn slots(&mut self) -> Option<&mut hearth_ota::Slots<SlotFlash>> {
        self.slots.as_mut()
    }

    async fn store_config(&mut self, text: &str) -> Result<(), ConfigFileError> {
        // As on the chip: the config in force is kept as the previous copy first (a pushed
        // one in `pushed-config.prev`; none there means the `--config` file), then the new
        // one is written whole, synced, and renamed over the old.
        let path = self.state.join(PUSHED_CONFIG);
        let prev = self.state.join(PREVIOUS_CONFIG);
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |error| ConfigFileError { path, error }
        };
        match std::fs::read(&path) {
            Ok(old) => write_atomic(&prev, &old).map_err(at(&prev))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::remove_file(&prev)
            {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&prev)(e)),
            },
            Err(e) => return Err(at(&path)(e)),
        }
        write_atomic(&path, text.as_bytes()).map_err(at(&path))
    }

    async fn restore_config(&mut self) -> Result<(), ConfigFileError> {
        restore_previous(&self.state).map_err(|error| ConfigFileError {
            path: self.state.join(PUSHED_CONFIG),
            error,
        })
    }
}

impl Identity for SimBoard {
    fn chip(&self) -> &str {
        crate::firmware::CHIP
    }

    fn config_chip(&self) -> String {
        // `RULES_CHIP` in the state directory: a test standing in for a chip.
        match std::fs::read_to_string(self.state.join(RULES_CHIP)) {
            Ok(chip) => chip.trim().to_string(),
            Err(_) => crate::firmware::CHIP.to_string(),
        }
    }

    fn image_appliances(&self) -> &'static [&'static str] {
        // The simulator builds every appliance in.
        hearth_appliances::FULL_IMAGE
    }

    fn unique_id(&self) -> [u8; 6] {
        self.id
    }

    fn version(&self) -> &str {
        &self.version
    }
}

impl Reset for SimBoard {
    fn last_panic(&mut self) -> Option<String> {
        self.last_panic.clone()
    }

    fn hardware_reset(&self) -> HardwareReset {
        self.reset
    }

    fn reset(&mut self) -> ! {
        console("reset");
        stop(Stop::Reset)
    }

    fn deep_sleep(&mut self, ms: Millis) -> ! {
        // The request lives next to the flash; the board reads it when the process has ended
        // (a fleet's board is told directly).
        if current_member().is_none() {
            if let Err(e) = std::fs::write(self.state.join(SLEEP_FILE), ms.to_string()) {
                console(&format!("deep sleep: cannot record the sleep time: {e}"));
            }
        }
        console(&format!("deep sleep {ms} ms"));
        stop(Stop::Sleep(ms))
    }
}

impl Watchdog for SimBoard {
    fn heartbeat(&mut self, now: Millis) {
        lock(&self.watchdog).heartbeat(now);
        // The loop is about to do its work: the simulated world moves on. (The loop faults of
        // `hearth sim ctl`, `block` and `slow`, strike in the wrapper around this board,
        // `crate::faults::LoopFaults`.)
        self.weather.advance_to(wall_clock_ms());
    }

    fn may_block(&mut self, now: Millis) {
        lock(&self.watchdog).may_block(now);
    }

    fn may_block_exit(&mut self, now: Millis) {
        lock(&self.watchdog).may_block_exit(now);
    }
}

impl Entropy for SimBoard {
    fn seed(&mut self) -> u64 {
        // A new value at every call, as the chip's hardware RNG gives: the OS-keyed hasher of
        // the standard library mixes the process's random keys into the running seed.
        use std::hash::BuildHasher;
        let fresh = std::collections::hash_map::RandomState::new().hash_one(self.seed);
        self.seed = self.seed.rotate_left(29) ^ fresh;
        self.seed
    }
}

impl Console for SimBoard {
    fn console(&mut self, line: &str) {
        console(line);
    }

    fn wall_clock(&mut self, unix_ms: u64) {
        let mono = embassy_time::Instant::now().as_millis();
        let offset = unix_ms.saturating_sub(mono).max(1);
        match current_member() {
            Some(member) => member.wall_offset.store(offset, Ordering::Relaxed),
            None => WALL_OFFSET.store(offset, Ordering::Relaxed),
        }
    }

    /// The simulated board's status LED is its log.
    fn identify(&mut self, ms: hearth_core::Millis) -> bool {
        console(&format!("led: identify, blinking for {} s", ms / 1000));
        true
    }

    fn take_repair_request(&mut self) -> bool {
        self.faults.repair.swap(false, Ordering::SeqCst)
    }
}

/// Put the config in force before the last push back, in the state directory `state`: one
/// rename (the previous pushed config) or one unlink (back to the `--config` file), atomic.
fn restore_previous(state: &Path) -> std::io::Result<()> {
    let path = state.join(PUSHED_CONFIG);
    let prev = state.join(PREVIOUS_CONFIG);
    if prev.exists() {
        std::fs::rename(&prev, &path)
    } else {
        std::fs::remove_file(&path)
    }
}

/// Write `bytes` to `path` whole: a new file, synced, renamed over the old one.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The firmware flash, with the injected power cut of `power-cut-at otadata N`.
pub struct SlotFlash {
    flash: FileFlash,
    faults: Arc<Faults>,
}

impl SlotFlash {
    fn before(&self, offset: u32) {
        let otadata = crate::firmware::LAYOUT.otadata
            ..crate::firmware::LAYOUT.otadata + hearth_ota::otadata::OTADATA_LEN;
        if !otadata.contains(&offset) {
            return;
        }
        let left = self.faults.cut_otadata.load(Ordering::SeqCst);
        match left {
            0 => {}
            1 => {
                console("power cut (injected) in the middle of an otadata update");
                stop(Stop::PowerCut)
            }
            n => self.faults.cut_otadata.store(n - 1, Ordering::SeqCst),
        }
    }
}

impl embedded_storage_async::nor_flash::ErrorType for SlotFlash {
    type Error = hearth_storage::FileFlashError;
}

impl embedded_storage_async::nor_flash::ReadNorFlash for SlotFlash {
    const READ_SIZE: usize =
        <FileFlash as embedded_storage_async::nor_flash::ReadNorFlash>::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.flash.read(offset, bytes).await
    }

    fn capacity(&self) -> usize {
        embedded_storage_async::nor_flash::ReadNorFlash::capacity(&self.flash)
    }
}

impl embedded_storage_async::nor_flash::NorFlash for SlotFlash {
    const WRITE_SIZE: usize =
        <FileFlash as embedded_storage_async::nor_flash::NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize =
        <FileFlash as embedded_storage_async::nor_flash::NorFlash>::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.before(from);
        self.flash.erase(from, to).await
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.before(offset);
        self.flash.write(offset, bytes).await
    }
}

/// A delay for bit-banged chips: microsecond waits spin (an executor timer would hold the
/// HX711's clock line high long enough to power it down), longer ones await a timer.
struct SpinDelay;

impl embedded_hal_async::delay::DelayNs for SpinDelay {
    async fn delay_ns(&mut self, ns: u32) {
        if ns < 1_000_000 {
            let until = std::time::Instant::now() + Duration::from_nanos(u64::from(ns));
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        } else {
            embassy_time::Timer::after(embassy_time::Duration::from_micros(u64::from(ns / 1000)))
                .await;
        }
    }
}

/// Simulated weather time: the wall clock folded onto one week (a whole number of days, so the
/// daily cycle stays at the right UTC hours). The model replays its random walk from the start
/// of the week at every boot, which costs well under a millisecond; the walk restarts once a
/// week, at Thursday 00:00 UTC.
fn wall_clock_ms() -> u64 {
    const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        % WEEK_MS
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reset_cause() -> HardwareReset {
    match std::env::var(RESET_CAUSE_ENV).as_deref() {
        Ok("software") => HardwareReset::Software,
        Ok("watchdog") => HardwareReset::Watchdog,
        Ok("deep-sleep") => HardwareReset::DeepSleepWake,
        Ok("panic") => HardwareReset::Panic,
        Ok("power-on") | Err(_) => HardwareReset::PowerOn,
        Ok(_) => HardwareReset::Other,
    }
}

/// A stable 6-byte identity from the state directory, like a MAC address.
fn identity(state: &Path) -> [u8; 6] {
    let canonical = state.canonicalize().unwrap_or_else(|_| state.to_path_buf());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.to_string_lossy().bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    // Locally administered, unicast.
    [(b[2] & 0xfe) | 0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// The simulated load cell for a config: the scale's own calibration when it has one.
fn load_cell(config: &hearth_config::Config) -> LoadCell {
    match hearth_appliances::scale_sensor::ScaleSettings::from_config(config) {
        Ok(s) => LoadCell {
            zero_offset: (-f64::from(s.b)).round() as i32,
            counts_per_kg: f64::from(s.a),
            noise_counts: (f64::from(s.a) * 0.005).abs(),
        },
        Err(_) => LoadCell::default(),
    }
}

/// The hardware watchdog of one device: fed while the loop-liveness policy allows, it bites
/// when the loop starves it for `timeout`. It is armed after the grace period.
pub(crate) struct HardwareWatchdog {
    policy: Arc<Mutex<LoopWatchdog>>,
    grace_until: Millis,
    timeout: Millis,
    last_fed: Millis,
}

impl HardwareWatchdog {
    /// A watchdog started now.
    fn new(policy: Arc<Mutex<LoopWatchdog>>, grace: Millis, timeout: Millis) -> Self {
        let now = embassy_time::Instant::now().as_millis();
        Self {
            policy,
            grace_until: now + grace,
            timeout,
            last_fed: now,
        }
    }

    /// Look at the loop at `now`: feed it if the policy allows; true when it bites (the
    /// device resets).
    pub(crate) fn bites(&mut self, now: Millis) -> bool {
        if now < self.grace_until || lock(&self.policy).should_feed(now) {
            self.last_fed = now;
            false
        } else {
            now - self.last_fed >= self.timeout
        }
    }
}

/// A single device's watchdog, on a thread of its own, looking ten times a second.
fn start_watchdog(mut dog: HardwareWatchdog) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        if dog.bites(embassy_time::Instant::now().as_millis()) {
            console("watchdog: the loop stopped proving liveness; resetting");
            std::process::exit(EXIT_WATCHDOG);
        }
    });
}

/// Parse `fault` for the chip model `chip` and apply it with `set`, logging either way.
fn set_fault<F: std::str::FromStr<Err = String>>(chip: &str, fault: &str, set: impl FnOnce(F)) {
    match fault.parse::<F>() {
        Ok(f) => {
            console(&format!("environment: sensor {chip} {fault}"));
            set(f);
        }
        Err(e) => console(&format!("environment: {e}")),
    }
}

/// How long a device waits for the board's start-up environment ([`EnvMsg::Ready`]) before it
/// boots without it.
const ENV_READY_WAIT: Duration = Duration::from_secs(2);

/// The simulated hardware of a running device that its board's environment reaches: the link,
/// the faults of the loop and the flash, and the chips.
#[derive(Clone)]
pub struct Live {
    link: Arc<Link>,
    faults: Arc<Faults>,
    chips: Chips,
    /// The tank's wet switches and the flow rate last set, so the log shows changes only.
    tank_flow: Arc<Mutex<(u16, u32)>>,
}

impl Live {
    /// Apply one environment message, logging it; true for [`EnvMsg::Ready`].
    pub fn apply(&self, msg: EnvMsg) -> bool {
        let Chips {
            bus,
            hx711,
            pzem,
            ook,
            mcp,
            flow,
            shiftreg,
            inputs,
            onewire,
            ..
        } = &self.chips;
        let (link, faults) = (&self.link, &self.faults);
        // The board replays the whole environment at each boot; the log shows what differs
        // from a quiet board, so a relay's boot does not list a tank it has not got.
        let mut tank_flow = lock(&self.tank_flow);
        let (wet, rate) = &mut *tank_flow;
        match msg {
            EnvMsg::Wifi(w) => {
                console(&format!("environment: wifi {}", w.as_str()));
                link.set_wifi(w);
            }
            EnvMsg::Rssi(r) => {
                console(&format!("environment: rssi {r} dBm"));
                link.set_rssi(r);
            }
            EnvMsg::StorageStress(on) => {
                faults.stress.store(on, Ordering::SeqCst);
                faults.stress_changed.set(());
            }
            EnvMsg::Load(g) => {
                if g != 0 || hx711.load_kg() != 0.0 {
                    console(&format!("environment: load {:.3} kg", g as f64 / 1000.0));
                }
                hx711.set_load_kg(g as f64 / 1000.0);
            }
            EnvMsg::CutOtadata(n) => {
                console(&format!(
                    "environment: power fails before otadata operation {n}"
                ));
                faults.cut_otadata.store(n, Ordering::SeqCst);
            }
            EnvMsg::Repair => {
                console("environment: re-pair requested");
                faults.repair.store(true, Ordering::SeqCst);
            }
            EnvMsg::Temperature(mc) => {
                let c = f64::from(mc) / 1000.0;
                console(&format!("environment: temperature {c:.1} °C"));
                onewire.set_all_temperatures(c);
            }
            EnvMsg::Sensor(chip, fault) if chip == "onewire" => {
                set_fault::<hearth_simchips::OneWireFault>(&chip, &fault, |f| {
                    onewire.set_bus_fault(f)
                })
            }
            EnvMsg::Tank(mask) => {
                if mask != 0 || *wet != 0 {
                    console(&format!("environment: tank switches wet {mask:#06x}"));
                }
                *wet = mask;
                mcp.set_switches(mask);
            }
            EnvMsg::Flow(r) => {
                if r != 0 || *rate != 0 {
                    console(&format!("environment: flow {r} pulses/s"));
                }
                *rate = r;
                flow.set_rate(f64::from(r));
            }
            EnvMsg::Input(k, on) => {
                console(&format!(
                    "environment: input {k} {}",
                    if on { "on" } else { "off" }
                ));
                if on {
                    inputs.fetch_or(1 << k, Ordering::SeqCst);
                } else {
                    inputs.fetch_and(!(1 << k), Ordering::SeqCst);
                }
                // The Dingtian 8's '165 inputs are active low.
                shiftreg.set_input_level(k, !on);
            }
            EnvMsg::Sensor(chip, fault) if chip == "flow" => {
                set_fault::<hearth_simchips::FlowFault>(&chip, &fault, |f| flow.set_fault(f))
            }
            EnvMsg::Sensor(chip, fault) if chip == "shiftreg" => {
                set_fault::<hearth_simchips::ShiftRegFault>(&chip, &fault, |f| {
                    shiftreg.set_fault(f)
                })
            }
            EnvMsg::Press(encoder, address, button) => {
                let e = match encoder.as_str() {
                    "ht6p20" => Encoder::Ht6p20,
                    _ => Encoder::Ev1527,
                };
                console(&format!(
                    "environment: keyfob {encoder} {address} button {button}"
                ));
                ook.press(e, address, button);
            }
            EnvMsg::Sensor(chip, fault) if chip == "ook" => {
                set_fault::<OokFault>(&chip, &fault, |f| ook.set_fault(f))
            }
            EnvMsg::Sensor(chip, fault) if chip == "pzem" => {
                set_fault::<hearth_simchips::ChipFault>(&chip, &fault, |f| pzem.set_fault(f))
            }
            EnvMsg::Sensor(chip, fault) if chip == "hx711" => {
                set_fault::<Hx711Fault>(&chip, &fault, |f| hx711.set_fault(f))
            }
            EnvMsg::Sensor(chip, fault) => {
                match hearth_simchips::parse_sensor_fault(&chip, &fault) {
                    Ok((addr, f)) => {
                        console(&format!("environment: sensor {chip} {fault}"));
                        if let Err(e) = bus.set_fault(addr, f) {
                            console(&format!("environment: {e}"));
                        }
                    }
                    Err(e) => console(&format!("environment: {e}")),
                }
            }
            EnvMsg::Block(ms) => lock(&faults.pending).push_back(LoopFault::Block(ms)),
            EnvMsg::Slow(ms) => lock(&faults.pending).push_back(LoopFault::Slow(ms)),
            EnvMsg::Ready => return true,
        }
        false
    }
}

/// Read environment messages from the board on standard input; the board going away powers
/// the device off.
fn start_env_reader(live: Live, ready: std::sync::mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            match EnvMsg::parse(&line) {
                Ok(msg) => {
                    if live.apply(msg) {
                        let _ = ready.send(());
                    }
                }
                Err(e) => console(&format!("environment: {e}")),
            }
        }
        // EOF: the board is gone.
        std::process::exit(0);
    });
}

/// Everything the device task needs.
/// What the device runs: an appliance of the build, as planned, or a [`Custom`] one.
pub(crate) enum Target {
    Plan(Plan),
    Custom(hearth_runtime::Settings, Box<dyn DynProfile>),
}

pub(crate) struct Parts {
    plan: Target,
    net: SimNetwork,
    board: SimBoard,
    flash: FileFlash,
    chips: Chips,
    state: PathBuf,
    name: String,
    config: hearth_config::Config,
    /// The appliance crashes soon after it starts (`crash-config`).
    crash_appliance: bool,
    /// The booted image crashes this long after the start (`health=crash`), with this message.
    crash_image: Option<(Duration, String)>,
}

/// The simulated hardware of every appliance; each run uses the part its profile needs.
#[derive(Clone)]
struct Chips {
    /// The weather station's I2C bus (HDC1080, BME280).
    bus: SimI2cBus,
    /// The scale's load-cell ADC.
    hx711: Hx711Model,
    /// The energy meter on its UART.
    pzem: PzemModel,
    /// The 433 MHz receiver's air: keyfob presses and noise.
    ook: OokModel,
    /// The tank's level switches on an MCP23017 (on the I2C bus, with the SSD1306).
    mcp: Mcp23017Model,
    /// The h2o flow meter's pulse counter.
    flow: FlowMeter,
    /// The Dingtian 8's shift-register chains.
    shiftreg: ShiftRegModel,
    /// The switch's manual inputs held active, for boards with direct GPIO inputs.
    inputs: Arc<AtomicU32>,
    /// termo's 1-Wire bus with two DS18B20s and a DS18S20.
    onewire: OneWireSimBus,
}

/// A GPIO input of a switch board with direct inputs, reading the held inputs.
struct SimInputPin {
    k: u8,
    held: Arc<AtomicU32>,
    active_low: bool,
}

impl embedded_hal::digital::ErrorType for SimInputPin {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::InputPin for SimInputPin {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        let held = self.held.load(Ordering::SeqCst) & (1 << self.k) != 0;
        Ok(held != self.active_low)
    }

    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.is_high().map(|h| !h)
    }
}

/// A GPIO output of the simulated board; level changes go to the device log.
struct SimPin {
    name: String,
    high: Option<bool>,
}

impl embedded_hal::digital::ErrorType for SimPin {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.set(true);
        Ok(())
    }
}

impl SimPin {
    fn set(&mut self, high: bool) {
        if self.high != Some(high) {
            self.high = Some(high);
            console(&format!(
                "gpio: {} {}",
                self.name,
                if high { "high" } else { "low" }
            ));
        }
    }
}

fn open_radio(state: &Path, mac: [u8; 6]) -> SimRadio {
    let air = std::env::var(AIR_ENV).ok();
    let dir = air_dir(air.as_deref());
    match SimRadio::open(&dir, mac, 1) {
        Ok(r) => {
            console(&format!("radio: on air {}", dir.display()));
            r
        }
        Err(e) => {
            console(&format!("radio: cannot join air {}: {e}", dir.display()));
            let _ = state;
            stop(Stop::Config)
        }
    }
}

#[embassy_executor::task]
async fn device_task(parts: Parts) {
    device_main(parts).await;
}

/// The device from power-up: its store, the runtime with its appliance, and the simulated
/// defects its image or config has. It ends only by [`stop`].
pub(crate) async fn device_main(parts: Parts) {
    let Parts {
        plan,
        mut net,
        board,
        flash,
        chips,
        state,
        name,
        config,
        crash_appliance,
        crash_image,
    } = parts;
    // The simulated defects strike in the device's own task (a panic there is what a panic is
    // on the chip), at their time.
    let crash = crate::latch::Latch::new();
    if let Some(at) = crash_image {
        crash.set(at);
    }
    let crasher = async {
        let (after, message) = crash.wait().await;
        embassy_time::Timer::after(embassy_time::Duration::from_millis(after.as_millis() as u64))
            .await;
        panic!("{message}");
    };
    let Chips {
        bus,
        hx711,
        pzem,
        ook,
        flow,
        shiftreg,
        inputs,
        onewire,
        ..
    } = chips;
    if let Some(power) = config.wifi_tx_power {
        // The chip caps its radio here; the simulated one has no power to cap.
        console(&format!(
            "radio: transmit power at most {power} dBm (wifitxpower; nothing to cap in the simulator)"
        ));
    }
    let store = match KvStore::open(flash, 0..FLASH_SIZE).await {
        Ok(store) => {
            let report = store.report();
            if let Some(reason) = report.formatted {
                console(&format!("storage: {reason}; the store has been formatted"));
            } else if report.scrubbed_pages > 0 {
                console(&format!("storage: {report}"));
            }
            store
        }
        Err(e) => {
            console(&format!("storage: cannot open the store: {e}"));
            stop(Stop::Config)
        }
    };
    let store = hearth_platform::store::shared(store);
    // The board's storage-stress switch runs beside the device, as a task of the simulator.
    let stress = board.faults.clone();
    let mut board = LoopFaults::new(board, stress.pending.clone());
    // The MQTT runtime with an appliance of the build and the device's config rules: one
    // expression for every arm below (a macro, not an async fn, so that no arm pays for a
    // wrapper's copy of the arguments). `@future` gives the future unawaited, for a central
    // that joins it with its link.
    macro_rules! run_appliance {
        ($settings:expr, $profile:expr) => {
            run_appliance!(@future $settings, $profile).await
        };
        (@future $settings:expr, $profile:expr) => {
            hearth_runtime::run(
                $settings,
                &mut net,
                &mut board,
                &store,
                $profile,
                hearth_device::CONFIG_RULES,
            )
        };
    }
    let device = async {
        let now = embassy_time::Instant::now().as_millis();
        let seed = board.seed();
        let plan = match plan {
            Target::Custom(mut settings, mut profile) => {
                settings.boot_mode =
                    hearth_runtime::update::boot(&mut board, &store, &settings.update).await;
                let mut safe;
                let profile: &mut dyn DynProfile = match settings.boot_mode {
                    BootMode::Safe { .. } => {
                        safe = SafeMode::of(profile.name());
                        &mut safe
                    }
                    _ => profile.as_mut(),
                };
                hearth_runtime::run(
                    settings,
                    &mut net,
                    &mut board,
                    &store,
                    profile,
                    custom_rules,
                )
                .await
            }
            Target::Plan(plan) => plan,
        };
        let plan = match plan {
            Plan::Mqtt {
                mut settings,
                appliance,
            } => {
                settings.boot_mode =
                    hearth_runtime::update::boot(&mut board, &store, &settings.update).await;
                if let BootMode::Safe { .. } = settings.boot_mode {
                    let mut profile = SafeMode::new(&config.profile);
                    run_appliance!(settings, &mut profile)
                }
                if crash_appliance {
                    crash.set((
                        Duration::from_secs(2),
                        "the appliance crashed: a defect this config triggers (simulated fault crash-config)".into(),
                    ));
                }
                Plan::Mqtt {
                    settings,
                    appliance,
                }
            }
            other => other,
        };
        match plan {
            Plan::Mqtt {
                settings,
                appliance: OnMqtt::Appliance(appliance),
            } => match appliance {
                Mqtt::Relay(relays) => {
                    let pins = (1..=relays.relays.len())
                        .map(|i| SimPin {
                            name: format!("relay {i}"),
                            high: None,
                        })
                        .collect();
                    let mut relay = Relay::new(pins, &store, &relays, now);
                    relay.restore().await;
                    if relays.display {
                        let mut profile = RelayPanel::new(relay, bus, now);
                        run_appliance!(settings, &mut profile)
                    } else {
                        let mut profile = relay;
                        run_appliance!(settings, &mut profile)
                    }
                }
                Mqtt::Energy(_) => {
                    let mut profile = Energy::new(pzem.uart(), now);
                    run_appliance!(settings, &mut profile)
                }
                Mqtt::Rx433(_) => {
                    let mut profile = Rx433::new(ook.receiver(), now);
                    run_appliance!(settings, &mut profile)
                }
                Mqtt::Termo(t) => {
                    let mut profile = Termo::new(onewire, t, now);
                    run_appliance!(settings, &mut profile)
                }
                Mqtt::H2o(h2o) => {
                    let mut profile =
                        H2o::new(bus.clone(), bus, flow, embassy_time::Delay, *h2o, now);
                    run_appliance!(settings, &mut profile)
                }
                Mqtt::Switch(sw) => {
                    let preset = sw.board.preset();
                    match preset.wiring {
                        Wiring::Direct { .. } => {
                            let ins = (0..preset.inputs)
                                .map(|k| SimInputPin {
                                    k: k as u8,
                                    held: inputs.clone(),
                                    active_low: preset.inputs_active_low,
                                })
                                .collect();
                            let outs = (0..preset.outputs)
                                .map(|k| SimPin {
                                    name: format!("output {k}"),
                                    high: None,
                                })
                                .collect();
                            let io = DirectIo::new(ins, outs, preset.inputs_active_low);
                            let mut profile = Switch::new(io, &store, &sw, now);
                            profile.restore().await;
                            run_appliance!(settings, &mut profile)
                        }
                        Wiring::ShiftRegisters(_) => {
                            let lines = Lines {
                                oe: shiftreg.pin(Line::Oe),
                                latch: shiftreg.pin(Line::Latch),
                                clock: shiftreg.pin(Line::Clock),
                                ser: shiftreg.pin(Line::Ser),
                                qh: shiftreg.qh(),
                            };
                            let chains = ShiftRegisters::new(lines, SpinDelay, 8, 8);
                            let io = ShiftIo::new(chains, preset.inputs_active_low);
                            let mut profile = Switch::new(io, &store, &sw, now);
                            profile.restore().await;
                            run_appliance!(settings, &mut profile)
                        }
                    }
                }
                Mqtt::Weather => {
                    let mut profile = Weather::new(bus.clone(), bus, embassy_time::Delay, now);
                    run_appliance!(settings, &mut profile)
                }
            },
            Plan::Mqtt {
                settings,
                appliance: OnMqtt::Central(flavor, link),
            } => {
                let mut radio = open_radio(&state, board.inner().id);
                let port = CentralPort::new();
                let mut profile = Forwarder::new(flavor, &port, seed, now);
                let epoch_random = [board.seed(), board.seed()];
                let device = run_appliance!(@future settings, &mut profile);
                let central = run_central(
                    &link,
                    &mut radio,
                    &store,
                    seed ^ 0x5eed,
                    epoch_random,
                    &port,
                );
                embassy_futures::join::join(device, central).await;
            }
            Plan::Peripheral { link, appliance } => {
                let mut radio = open_radio(&state, board.inner().id);
                match appliance {
                    Peripheral::ScaleSensor(settings) => {
                        let hx = Hx711::new(hx711.sck(), hx711.dout(), SpinDelay);
                        let mut app = ScaleSensor::new(hx, settings, now);
                        run_peripheral(&link, &mut board, &mut radio, &store, &mut app).await
                    }
                    Peripheral::TNowP => {
                        let mut app = TNowP::new(&name, seed, now);
                        run_peripheral(&link, &mut board, &mut radio, &store, &mut app).await
                    }
                }
            }
        }
    };
    embassy_futures::join::join3(
        device,
        crate::stress::run(&store, &stress.stress, &stress.stress_changed, console),
        crasher,
    )
    .await;
}

/// `hearth sim-device`: run the device until it resets.
pub fn run(config: &Path, state: &Path) -> ExitCode {
    boot(config, state, None)
}

/// Run the device with the appliance `custom` (its config names it) until it resets: the
/// simulated board, its flash and firmware slots in `state`, the network, the runtime. Without
/// the board process of `hearth sim` around it, a reset ends the process with the reset's exit
/// code, and the environment (Wi-Fi faults) is read from standard input as `hearth sim`
/// would send it.
pub fn run_custom(config: &Path, state: &Path, custom: &'static Custom) -> ExitCode {
    if CUSTOM.set(custom).is_err() {
        eprintln!("run_custom: one custom appliance per process");
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    boot(config, state, Some(custom))
}

fn boot(config: &Path, state: &Path, custom: Option<&'static Custom>) -> ExitCode {
    // The last panic is kept (as RTC memory would keep it across resets) until a new one.
    let panic_path = state.join(PANIC_FILE);
    std::panic::set_hook(Box::new(move |info| {
        let text = info.to_string();
        console(&format!("panic: {text}"));
        let _ = std::fs::write(&panic_path, &text);
        // As on the chip: a panic resets the device.
        std::process::exit(101);
    }));
    let Prepared {
        parts,
        live,
        watchdog,
    } = match prepare(config, state, custom, reset_cause()) {
        Ok(p) => p,
        Err(why) => return ExitCode::from(why.exit_code() as u8),
    };
    if let Some(dog) = watchdog {
        start_watchdog(dog);
    }
    let (ready, environment) = std::sync::mpsc::channel();
    start_env_reader(live, ready);
    // Boot in the environment the board powered the device up in, not before it arrived.
    let _ = environment.recv_timeout(ENV_READY_WAIT);
    let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
    executor.run(move |spawner| {
        spawner.spawn(device_task(parts).expect("the device task is spawned once"));
    })
}

/// A device ready to run: its parts, the hardware its board's environment reaches, and its
/// watchdog when the config arms one.
pub(crate) struct Prepared {
    pub(crate) parts: Parts,
    pub(crate) live: Live,
    pub(crate) watchdog: Option<HardwareWatchdog>,
}

/// Power-up to the start of the firmware: the config in force, the bootloader, the config's
/// checks, the flash, the chips. `reset` is what the hardware reports as the reset cause.
pub(crate) fn prepare(
    config: &Path,
    state: &Path,
    custom: Option<&'static Custom>,
    reset: HardwareReset,
) -> Result<Prepared, Stop> {
    let pushed = state.join(PUSHED_CONFIG);
    let provisioned = state.join(crate::console::PROVISIONED_CONFIG);
    let mut config = if pushed.exists() {
        console(&format!(
            "config: using the config pushed over MQTT ({}) instead of {}",
            pushed.display(),
            config.display()
        ));
        pushed.as_path()
    } else if provisioned.exists() {
        console(&format!(
            "config: using the config with the Wi-Fi given over the console ({}) instead of {}",
            provisioned.display(),
            config.display()
        ));
        provisioned.as_path()
    } else {
        config
    };
    let last_panic = std::fs::read_to_string(state.join(PANIC_FILE)).ok();
    let booted = match embassy_futures::block_on(crate::firmware::boot(state, &mut |l| console(l)))
    {
        Ok(b) => b,
        Err(e) => {
            console(&format!("bootloader: {e}: the device cannot start"));
            return Err(Stop::NoImage);
        }
    };
    let parse = |text: &str| match custom {
        Some(c) => c.parse(text),
        None => hearth_device::profiles::parse_config(text),
    };
    // A fleet's members have their Wi-Fi in their config: no console to provision over.
    if current_member().is_none() {
        match provision_wifi(config, state, &booted.info.version, &parse) {
            Some(Ok(_)) => config = provisioned.as_path(),
            Some(Err(_)) => return Err(Stop::Config),
            None => {}
        }
    }
    // `hearth sim ctl DIR crash-config`: the appliance crashes with this config.
    let crash_appliance = match (
        std::fs::read_to_string(state.join(CRASH_CONFIG_FILE)),
        std::fs::read(config),
    ) {
        (Ok(bad), Ok(bytes)) => bad.trim() == config_fingerprint(&bytes),
        _ => false,
    };
    let loaded = match custom {
        None => load(config).map(|(c, plan)| (c, Target::Plan(plan))),
        Some(custom) => read_config(config)
            .and_then(|text| parsed(config, custom.parse(&text)))
            .and_then(|c| match custom.check(&c) {
                Ok((settings, profile)) => Ok((c, Target::Custom(settings, profile))),
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    Err(ExitCode::from(EXIT_CONFIG as u8))
                }
            }),
    };
    let (config, plan) = match loaded {
        Ok(v) => v,
        Err(_) if config == pushed.as_path() => {
            // As on the chip: a pushed config that cannot run here is undone at boot, so a
            // push never leaves the device off the network (the device checked it with the
            // same rules before accepting it; this covers rules that changed since).
            match restore_previous(state) {
                Ok(()) => {
                    console("config: the config pushed over MQTT cannot run here: the previous config is back; resetting into it");
                    return Err(Stop::Reset);
                }
                Err(e) => {
                    console(&format!("config: cannot put the previous config back: {e}"));
                    return Err(Stop::Config);
                }
            }
        }
        Err(_) => return Err(Stop::Config),
    };
    let flash_path: PathBuf = state.join(FLASH_NAME);
    let flash = match FileFlash::open_or_create(&flash_path, FLASH_SIZE as usize) {
        Ok(mut f) => {
            // A fleet's members hold no flash file open (thousands of them would pass the
            // process's limit of open files).
            if current_member().is_some() {
                f.close_between_operations();
            }
            f
        }
        Err(e) => {
            console(&format!("{}: {e}", flash_path.display()));
            return Err(Stop::Config);
        }
    };
    let t = &config.timings;
    let watchdog = Arc::new(Mutex::new(LoopWatchdog::new(
        embassy_time::Instant::now().as_millis(),
        LoopWatchdog::FEED_WINDOW,
        t.may_block_s as Millis * SECOND,
    )));
    let armed = t.watchdog_s.map(|timeout_s| {
        HardwareWatchdog::new(
            watchdog.clone(),
            t.watchdog_grace_s as Millis * SECOND,
            timeout_s as Millis * SECOND,
        )
    });
    let id = identity(state);
    // What a router lists the board by, and the id in its Home Assistant unique ids.
    console(&format!("board: MAC {}", crate::air::mac_text(&id)));
    let seed = {
        let mut s = [0u8; 8];
        s[..6].copy_from_slice(&id);
        u64::from_le_bytes(s) ^ std::process::id() as u64 ^ embassy_time::Instant::now().as_ticks()
    };
    // The weather follows the wall clock and the device identity, so it continues across
    // reboots and has its daily cycle at the right hours.
    let clock = SimClock::external(|| embassy_time::Instant::now().as_micros());
    let (bus, mut weather) = hearth_simchips::weather_station_on(
        u64::from_le_bytes([id[0], id[1], id[2], id[3], id[4], id[5], 0, 0]),
        clock,
    );
    weather.advance_to(wall_clock_ms());
    // The scale's load cell matches the device's calibration (`calibration_a` counts per kg,
    // `calibration_b` the negated raw zero), with noise of ±5 g, so `sim ctl DIR load 72.4`
    // reads 72.4 kg; without a calibration, the default cell (20 000 counts per kg above a
    // raw zero of 50 000).
    let hx711 = Hx711Model::new(
        SimClock::external(|| embassy_time::Instant::now().as_micros()),
        load_cell(&config),
        seed,
    );
    // On a host thread a "1 µs" clock pulse can be preempted for far longer than the chip's
    // 60 µs power-down threshold, so the simulated chip powers down only after 5 ms of SCK
    // high. The driver's deliberate power-down leaves SCK high until the next wake, far longer.
    hx711.set_power_down_us(5_000);
    let link = Arc::new(Link::default());
    let faults = Arc::new(Faults::default());
    // The energy meter sees a household mains (the model's defaults) on its own clock.
    let pzem = PzemModel::new(
        SimClock::external(|| embassy_time::Instant::now().as_micros()),
        seed,
    );
    let ook = OokModel::new(
        SimClock::external(|| embassy_time::Instant::now().as_micros()),
        seed,
    );
    // The tank's level switches and the h2o display share the I2C bus with the weather chips
    // (distinct addresses); only the appliance that uses them talks to them.
    let mcp = Mcp23017Model::new(seed);
    let _ = bus.attach(hearth_drivers::mcp23017::ADDRESS, mcp.clone());
    let _ = bus.attach(hearth_drivers::ssd1306::ADDRESS, Ssd1306Model::new());
    // Stable ROMs from the device identity, so topics survive restarts.
    let onewire = OneWireSimBus::new(
        SimClock::external(|| embassy_time::Instant::now().as_micros()),
        seed,
    );
    for (i, kind) in [
        SensorKind::Ds18b20,
        SensorKind::Ds18b20,
        SensorKind::Ds18s20,
    ]
    .into_iter()
    .enumerate()
    {
        let mut serial = [0u8; 6];
        serial[..5].copy_from_slice(&id[1..]);
        serial[5] = i as u8;
        onewire.add_serial(kind, serial);
    }
    onewire.set_all_temperatures(21.5);
    let flow = FlowMeter::new(
        SimClock::external(|| embassy_time::Instant::now().as_micros()),
        seed,
    );
    let chips = Chips {
        bus,
        hx711,
        pzem,
        ook,
        mcp,
        flow,
        shiftreg: ShiftRegModel::new(8, 8, seed),
        inputs: Arc::new(AtomicU32::new(0)),
        onewire,
    };
    let live = Live {
        link: link.clone(),
        faults: faults.clone(),
        chips: chips.clone(),
        tank_flow: Arc::default(),
    };
    let board = SimBoard {
        reset,
        watchdog,
        faults: faults.clone(),
        weather,
        seed,
        id,
        state: state.to_path_buf(),
        version: booted.info.version.clone(),
        slots: Some({
            let running = booted.slots.running();
            let layout = booted.slots.layout();
            let flash = SlotFlash {
                flash: booted.slots.into_flash(),
                faults: faults.clone(),
            };
            hearth_ota::Slots::new(flash, layout, running)
        }),
        last_panic,
    };
    let net = match booted.info.health {
        Health::Never => SimNetwork::new(link).broken(),
        _ => SimNetwork::new(link),
    };
    let crash_image = (booted.info.health == Health::Crash).then(|| {
        (
            Duration::from_secs(3),
            format!(
                "firmware {} crashed (a simulated defect of this image)",
                booted.info.version
            ),
        )
    });
    let parts = Parts {
        plan,
        net,
        board,
        flash,
        chips,
        state: state.to_path_buf(),
        name: config.mqtt.name.clone(),
        config,
        crash_appliance,
        crash_image,
    };
    Ok(Prepared {
        parts,
        live,
        watchdog: armed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_cell_follows_the_scale_s_calibration() {
        // The documented example: a load put on the simulated cell reads as that load.
        let text = include_str!("../../../docs/examples/scale_sensor.txt");
        let config = hearth_device::profiles::parse_config(text).expect("the example parses");
        let cell = load_cell(&config);
        let settings = hearth_appliances::scale_sensor::ScaleSettings::from_config(&config)
            .expect("a scale config");
        for kg in [0.0, 1.25, 72.4] {
            let raw = (f64::from(cell.zero_offset) + cell.counts_per_kg * kg).round() as i32;
            let read =
                hearth_appliances::scale_filter::calibrate(raw, settings.a, settings.b).unwrap();
            assert!(
                (f64::from(read) - kg).abs() < 0.001,
                "{kg} kg read as {read}"
            );
        }
        // ±5 g of noise whatever the counts per kg.
        assert!((cell.noise_counts / cell.counts_per_kg - 0.005).abs() < 1e-9);
        // Another appliance: the default cell.
        let weather = hearth_device::profiles::parse_config(
            "profile weather\nssid T\npassword test-passphrase\nmqttbroker 10.0.0.2\nmqttname w\n",
        )
        .unwrap();
        assert_eq!(
            load_cell(&weather).zero_offset,
            LoadCell::default().zero_offset
        );
    }
}
