//! Safe updates from anywhere, on the device: signed firmware over MQTT into the inactive slot,
//! a trial boot that confirms itself once healthy and rolls back otherwise, safe mode after
//! repeated unhealthy boots, signed config pushes and signed commands.
//!
//! Topics (all under the device's `cmnd/<name>/` and `stat/<name>/`):
//!
//! | message | payload | answer on `stat/<name>/Update` |
//! |---|---|---|
//! | `cmnd/…/Update/Begin` | a signed firmware manifest ([`hearth_ota::signed`]) | `ready` with the `next` offset wanted (0, or where an interrupted transfer stopped), or `refused` |
//! | `cmnd/…/Update/Chunk` | offset u32 LE, CRC-32 u32 LE, the bytes (4096, the last one shorter) | `receiving` with the new `next`, or the same `next` and an `error`; nothing for a chunk at another offset than `next` |
//! | `cmnd/…/Config` | a signed config | `refused` with every error, or `rebooting` |
//! | `cmnd/…/Signed` | a signed command line (`reboot`, `resetstats`, `normal`, …) | its answer on `stat/<name>/OTA` |
//!
//! The status is JSON: `{"state":…, "version":…, "next":…, "size":…, "error":…}`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use embedded_storage_async::nor_flash::NorFlash;
use hearth_config::{Config, KeySpec};
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::reboot::RebootReason;
use hearth_core::update_status::{firmware_state, UpdateState, UpdateStatus};
use hearth_core::{Millis, SECOND};
use hearth_ota::manifest::{Manifest, Target, Version};
use hearth_ota::otadata::crc32;
use hearth_ota::signed::{self, Kind, Refusal};
use hearth_ota::{State, Writer};
use hearth_storage::keys;

use crate::driver::reboot;
use hearth_platform::store::SharedStore;
use hearth_platform::Board;

/// Default `otaconfirm`: a new image is healthy after this long with MQTT connected.
pub const DEFAULT_CONFIRM_S: u32 = 60;
/// Default `otatrial`: a new image not healthy by then is rolled back.
pub const DEFAULT_TRIAL_S: u32 = 600;
/// Default `safemode`: this many runs in a row that ended in a fault start safe mode.
pub const DEFAULT_SAFE_MODE_AFTER: u32 = 5;

fn hex_key(value: &str) -> Result<(), &'static str> {
    signed::parse_hex_key(value)
        .map(|_| ())
        .ok_or("expected the 64 hex digits of an ed25519 public key (hearth keygen writes it)")
}

fn confirm_seconds(value: &str) -> Result<(), &'static str> {
    match value.parse::<u32>() {
        Ok(s) if (5..=3600).contains(&s) => Ok(()),
        _ => Err("expected whole seconds 5..=3600"),
    }
}

fn trial_seconds(value: &str) -> Result<(), &'static str> {
    match value.parse::<u32>() {
        Ok(s) if (10..=86_400).contains(&s) => Ok(()),
        _ => Err("expected whole seconds 10..=86400"),
    }
}

fn boots(value: &str) -> Result<(), &'static str> {
    match value.parse::<u32>() {
        Ok(n) if n <= 100 => Ok(()),
        _ => Err("expected a number of boots 0..=100 (0 = never)"),
    }
}

/// The update keys: `otakey` (the owner's public key; without it nothing signed is accepted
/// and nothing that changes the device is refused), `otaconfirm`, `otatrial`, `safemode`.
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "otakey",
        required: false,
        validator: hex_key,
    },
    KeySpec {
        name: "otaconfirm",
        required: false,
        validator: confirm_seconds,
    },
    KeySpec {
        name: "otatrial",
        required: false,
        validator: trial_seconds,
    },
    KeySpec {
        name: "safemode",
        required: false,
        validator: boots,
    },
];

/// The update policy of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// The owner's ed25519 public key (`otakey`).
    pub key: Option<[u8; 32]>,
    /// A new image is healthy when MQTT is connected and it has run this long (`otaconfirm`).
    pub confirm_after: Millis,
    /// A new image not healthy by then is rolled back (`otatrial`).
    pub trial_limit: Millis,
    /// Runs in a row that ended in a fault (panic, watchdog, runtime or appliance fault)
    /// before safe mode (`safemode`; 0 = never).
    pub safe_mode_after: u32,
    /// The identity of the config in force: the CRC-32 of its canonical text
    /// ([`config_id`]), to tell whether a recorded config trial is about this config.
    pub config_id: u32,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        Self {
            key: None,
            confirm_after: DEFAULT_CONFIRM_S as Millis * SECOND,
            trial_limit: DEFAULT_TRIAL_S as Millis * SECOND,
            safe_mode_after: DEFAULT_SAFE_MODE_AFTER,
            config_id: 0,
        }
    }
}

impl UpdateSettings {
    /// The settings of a validated config (the per-key rules were checked by the parser).
    pub fn from_config(config: &Config) -> Result<Self, TrialTooShort> {
        let get = |k: &str| config.profile_settings.get(k).map(String::as_str);
        let num = |k: &str, default: u32| get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
        let confirm = num("otaconfirm", DEFAULT_CONFIRM_S);
        let trial = num("otatrial", DEFAULT_TRIAL_S);
        if trial <= confirm {
            return Err(TrialTooShort { trial, confirm });
        }
        Ok(Self {
            key: get("otakey").and_then(signed::parse_hex_key),
            confirm_after: confirm as Millis * SECOND,
            trial_limit: trial as Millis * SECOND,
            safe_mode_after: num("safemode", DEFAULT_SAFE_MODE_AFTER),
            config_id: config_id(config),
        })
    }
}

/// `otatrial` is not longer than `otaconfirm`: a new image could never prove itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialTooShort {
    /// `otatrial`, s.
    pub trial: u32,
    /// `otaconfirm`, s.
    pub confirm: u32,
}

impl core::fmt::Display for TrialTooShort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "\"otatrial\" ({} s) must be longer than \"otaconfirm\" ({} s): a new image needs time to prove itself",
            self.trial, self.confirm
        )
    }
}

/// A record in the store that cannot be read: its length is wrong, or the store failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The record has this many bytes, not the length every build writes.
    Length(usize),
    /// The store could not read it.
    Store(hearth_storage::StoreError),
}

/// Why the anti-replay mark cannot be read or raised. A mark that cannot be read refuses
/// every signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkError {
    /// It cannot be read.
    Unreadable(RecordError),
    /// It could not be raised.
    Write(hearth_storage::StoreError),
}

impl core::fmt::Display for MarkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unreadable(RecordError::Length(n)) => write!(
                f,
                "storage: the anti-replay mark is {n} bytes, not 8: refusing signed messages"
            ),
            Self::Unreadable(RecordError::Store(e)) => write!(
                f,
                "storage: cannot read the anti-replay mark ({e}): refusing signed messages"
            ),
            Self::Write(e) => write!(f, "{e}"),
        }
    }
}

/// Why the config trial record cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialRecordError(pub RecordError);

impl core::fmt::Display for TrialRecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            RecordError::Length(n) => write!(f, "the config trial record is {n} bytes, not 8"),
            RecordError::Store(e) => write!(f, "cannot read the config trial: {e}"),
        }
    }
}

/// Why a signed message was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The anti-replay mark cannot be read.
    Mark(MarkError),
    /// The envelope was refused (signature, kind, device, replay).
    Refused(Refusal),
    /// Its body is not UTF-8 text.
    NotText,
    /// Issued further ahead of the device's wall clock than [`MAX_AHEAD`]: a signer whose
    /// clock runs fast would otherwise raise the anti-replay mark into the future and lock
    /// every later message out.
    Ahead {
        /// How far ahead, s.
        by_s: u64,
    },
}

/// How far ahead of the wall clock (once SNTP set it) a signed message may be issued.
pub const MAX_AHEAD: Millis = 60 * 60 * SECOND;

/// Is `issued` (ms) too far ahead of `clock` at `now`?
fn ahead(
    clock: Option<hearth_core::sntp::WallClock>,
    issued: u64,
    now: Millis,
) -> Option<OpenError> {
    let wall = clock?.unix_ms(now);
    (issued > wall + MAX_AHEAD).then(|| OpenError::Ahead {
        by_s: (issued - wall) / 1000,
    })
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Mark(e) => write!(f, "{e}"),
            Self::Refused(r) => write!(f, "{r}"),
            Self::NotText => f.write_str("body is not UTF-8 text"),
            Self::Ahead { by_s } => write!(
                f,
                "issued {by_s} s ahead of the device's clock (more than {} s): is the signer's clock right?",
                MAX_AHEAD / SECOND
            ),
        }
    }
}

/// The identity of a config: the CRC-32 of its canonical text ([`Config::to_text`]), so the
/// same settings have the same identity whatever their order, spacing or comments.
pub fn config_id(config: &Config) -> u32 {
    hearth_config::blob::crc32(config.to_text().as_bytes())
}

/// Boots a pushed config gets to become healthy: a boot that ends before it is (a crash, a
/// watchdog, a power cut, the network or MQTT policy's reboot) starts the next trial boot,
/// and after this many the previous config is put back. More than one, so that a power cut
/// during the trial of a good config does not throw it away.
pub const CONFIG_TRIAL_BOOTS: u32 = 3;

/// The recorded config trial: the trial config's identity and the boots it has started.
async fn config_trial<F: NorFlash>(
    store: &SharedStore<F>,
) -> Result<Option<(u32, u32)>, TrialRecordError> {
    let mut buf = [0u8; 8];
    match store
        .lock()
        .await
        .get_bytes(keys::CONFIG_TRIAL, &mut buf)
        .await
    {
        Ok(Some(8)) => Ok(Some((
            u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
            u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ))),
        Ok(None) => Ok(None),
        Ok(Some(n)) => Err(TrialRecordError(RecordError::Length(n))),
        Err(e) => Err(TrialRecordError(RecordError::Store(e))),
    }
}

async fn set_config_trial<F: NorFlash>(
    store: &SharedStore<F>,
    id: u32,
    boots: u32,
) -> Result<(), hearth_storage::StoreError> {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&id.to_le_bytes());
    buf[4..].copy_from_slice(&boots.to_le_bytes());
    store.lock().await.set_bytes(keys::CONFIG_TRIAL, &buf).await
}

async fn end_config_trial<F: NorFlash>(
    store: &SharedStore<F>,
) -> Result<(), hearth_storage::StoreError> {
    store.lock().await.remove(keys::CONFIG_TRIAL).await
}

/// Count a boot of the config on trial; after [`CONFIG_TRIAL_BOOTS`] put the previous config
/// back and reboot into it. A trial record about another config (the push was cut before the
/// new config was stored, or a config was flashed by cable since) is dropped.
async fn count_config_boot<B: Board, F: NorFlash>(
    board: &mut B,
    store: &SharedStore<F>,
    settings: &UpdateSettings,
) {
    let (id, boots) = match config_trial(store).await {
        Ok(Some(trial)) => trial,
        Ok(None) => return,
        Err(e) => {
            // Unreadable: the config in force is kept (it may well be the good one).
            board.console(&format!("update: {e}: the config in force is kept"));
            let _ = end_config_trial(store).await;
            return;
        }
    };
    if id != settings.config_id {
        // The pushed config is not the one in force: the board put the previous one back at
        // boot (it could not run), or the push was cut before the config was stored, or a
        // config was flashed by cable. `Updater::start` reports it and drops the record.
        board.console("update: the config on trial is not the one in force");
        return;
    }
    let boots = boots.saturating_add(1);
    if boots > CONFIG_TRIAL_BOOTS {
        board.console(&format!(
            "update: the pushed config ended {CONFIG_TRIAL_BOOTS} trial boots before it was healthy: putting the previous config back"
        ));
        config_rollback(board, store).await;
        return;
    }
    if let Err(e) = set_config_trial(store, id, boots).await {
        board.console(&format!("update: cannot count the config trial boot: {e}"));
    }
    board.console(&format!(
        "update: pushed config on trial, boot {boots} of {CONFIG_TRIAL_BOOTS}"
    ));
}

/// Put the previous config back and reboot into it. Returns only when the board cannot: the
/// config in force is then kept, off trial, and the error returned.
async fn config_rollback<B: Board, F: NorFlash>(board: &mut B, store: &SharedStore<F>) -> String {
    match board.restore_config().await {
        Ok(()) => {
            // A cut before this leaves a trial record about another config: dropped at boot.
            let _ = end_config_trial(store).await;
            // The faults were the pushed config's: the previous config starts afresh, out of
            // safe mode, as a pushed config does.
            let _ = clear_faults(store).await;
            reboot(board, store, RebootReason::ConfigRollback).await
        }
        Err(e) => {
            board.console(&format!(
                "update: cannot put the previous config back ({e}): keeping this one"
            ));
            let _ = end_config_trial(store).await;
            format!("{e}")
        }
    }
}

/// How the device boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// Run the appliance.
    Normal,
    /// Only network, MQTT and updates: the last `faults` runs in a row ended in a fault of the
    /// running code, each before it had run healthily for `otaconfirm`.
    Safe {
        /// Consecutive runs that ended in a fault.
        faults: u32,
    },
}

/// The first thing a device does, before its appliance starts: settle the image's trial and
/// count the boot.
///
/// - The running image is `New` (its first boot after an update): it becomes
///   `PendingVerify`, its trial.
/// - It is still `PendingVerify`: its trial boot ended (a crash, a watchdog, a power cut)
///   before it was confirmed healthy. The previous image is selected again and the device
///   resets into it. This is the rollback ESP-IDF's bootloader does when built with it;
///   Hearth does it in the application so it works with any bootloader.
/// - A pushed config is on trial ([`CONFIG_TRIAL_BOOTS`]): the boot is counted, and after
///   that many boots without a healthy period the previous config is put back.
/// - The previous run is counted when it ended in a fault of the running code
///   ([`hearth_core::reboot::boot_fault`]: a panic, a watchdog reset, a runtime or appliance
///   fault); after `safemode` such runs in a row, with no healthy period of `otaconfirm`
///   between them, the device starts in safe mode. Outages, the network and MQTT policies'
///   reboots, power cuts and commanded reboots never count.
pub async fn boot<B: Board, F: NorFlash>(
    board: &mut B,
    store: &SharedStore<F>,
    settings: &UpdateSettings,
) -> BootMode {
    let state = match board.slots() {
        Some(slots) => slots.running_state().await.map_err(|e| format!("{e:?}")),
        None => Ok(State::Undefined),
    };
    match state {
        Ok(State::New) => match mark_running(board, State::PendingVerify).await {
            Ok(()) => board.console(&format!(
                "update: first boot of firmware {}: on trial until healthy",
                board.version()
            )),
            Err(e) => board.console(&format!("update: cannot mark the trial: {e:?}")),
        },
        Ok(State::PendingVerify) => {
            board.console(&format!(
                "update: firmware {} ended its trial boot before it was healthy: rolling back",
                board.version()
            ));
            rollback(board, store).await;
        }
        Ok(_) => {}
        Err(e) => board.console(&format!("update: cannot read otadata: {e}")),
    }
    count_config_boot(board, store, settings).await;
    let n = match count_fault(board, store).await {
        Ok(n) => n,
        Err(e) => {
            // Safe mode protects against a crash loop; without a count the appliance runs.
            board.console(&format!("update: cannot count faults: {e}"));
            0
        }
    };
    if settings.safe_mode_after > 0 && n >= settings.safe_mode_after {
        // Also on the console: a device that cannot reach its broker says so nowhere else.
        board.console(&format!(
            "safe mode: {n} runs in a row ended in a fault; the appliance does not run"
        ));
        BootMode::Safe { faults: n }
    } else {
        BootMode::Normal
    }
}

/// Count the previous run if it ended in a fault; the number of such runs in a row.
async fn count_fault<B: Board, F: NorFlash>(
    board: &mut B,
    store: &SharedStore<F>,
) -> Result<u32, hearth_storage::StoreError> {
    let mut s = store.lock().await;
    let mut buf = [0u8; 64];
    let stored = text(&mut s, keys::REBOOT_REASON, &mut buf).await?;
    let Some(fault) = hearth_core::reboot::boot_fault(board.hardware_reset(), Some(stored)) else {
        return Ok(s.get_u32(keys::FAULTY_BOOTS).await?.unwrap_or(0));
    };
    let n = s.incr_u32(keys::FAULTY_BOOTS).await?;
    let list = append_word(text(&mut s, keys::BOOT_FAULTS, &mut buf).await?, fault, 64);
    s.set_bytes(keys::BOOT_FAULTS, list.as_bytes()).await?;
    Ok(n)
}

/// A short text value of the store (empty when absent or not UTF-8).
async fn text<'b, F: NorFlash>(
    s: &mut hearth_storage::KvStore<F>,
    key: keys::Key,
    buf: &'b mut [u8; 64],
) -> Result<&'b str, hearth_storage::StoreError> {
    let n = s.get_bytes(key, buf).await?.unwrap_or(0);
    Ok(core::str::from_utf8(&buf[..n]).unwrap_or(""))
}

/// `list` with `word` appended (space-separated), dropping the oldest words to stay within
/// `max` bytes.
fn append_word(list: &str, word: &str, max: usize) -> String {
    let mut out = String::from(list.trim());
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(word);
    while out.len() > max {
        match out.find(' ') {
            Some(i) => {
                out.drain(..=i);
            }
            None => out.clear(),
        }
    }
    out
}

/// The faults that put the device into safe mode, for its report: how many, and their names.
async fn fault_report<F: NorFlash>(store: &SharedStore<F>) -> (u32, String) {
    let mut s = store.lock().await;
    let n = s
        .get_u32(keys::FAULTY_BOOTS)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut buf = [0u8; 64];
    let words = text(&mut s, keys::BOOT_FAULTS, &mut buf)
        .await
        .unwrap_or("");
    (n, words.to_string())
}

/// Forget the fault count: the appliance ran healthily, or the owner repaired the device.
pub(crate) async fn clear_faults<F: NorFlash>(
    store: &SharedStore<F>,
) -> Result<(), hearth_storage::StoreError> {
    let mut s = store.lock().await;
    s.set_u32(keys::FAULTY_BOOTS, 0).await?;
    s.remove(keys::BOOT_FAULTS).await
}

/// Record `state` for the running image (a new otadata entry for the same slot).
async fn mark_running<B: Board>(
    board: &mut B,
    state: State,
) -> Result<(), <B::Slots as embedded_storage_async::nor_flash::ErrorType>::Error> {
    match board.slots() {
        Some(slots) => {
            let running = slots.running();
            slots.select(running, state).await
        }
        None => Ok(()),
    }
}

/// Select the other slot again and reset into it, once its image checks out: when the image
/// in that slot was installed by an update, its recorded size and SHA-256 must match what the
/// slot holds now. An image flashed by cable has no record and is trusted as it is. A target
/// that does not check out is never selected: the running image is kept (marked valid, so the
/// next boot does not try again) and the device says so.
async fn rollback<B: Board, F: NorFlash>(board: &mut B, store: &SharedStore<F>) {
    let record = match board.slots() {
        Some(slots) => slot_record(store, slots.inactive()).await,
        None => None,
    };
    if let Some(slots) = board.slots() {
        let previous = slots.inactive();
        if let Some((size, sha)) = record {
            let ok = matches!(slots.hash(previous, size).await, Ok(h) if h == sha);
            if !ok {
                board.console(&format!(
                    "update: cannot roll back: the image in slot {previous} no longer matches the one installed there; keeping firmware {}",
                    board.version()
                ));
                if let Err(e) = mark_running(board, State::Valid).await {
                    board.console(&format!("update: cannot mark the image valid: {e:?}"));
                }
                return;
            }
        }
        if let Err(e) = slots.select(previous, State::Valid).await {
            // Nothing better to do: the reset retries the trial logic, which tries again.
            board.console(&format!("update: rollback failed to write otadata: {e:?}"));
        }
    }
    reboot(board, store, RebootReason::Rollback).await
}

/// The size and SHA-256 of the image an update installed in `slot`, if one did.
async fn slot_record<F: NorFlash>(store: &SharedStore<F>, slot: u8) -> Option<(u32, [u8; 32])> {
    let key = keys::ota_slot_image(slot)?;
    let mut buf = [0u8; 36];
    let n = store
        .lock()
        .await
        .get_bytes(key, &mut buf)
        .await
        .ok()
        .flatten()?;
    (n == 36).then(|| {
        let size = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&buf[4..]);
        (size, sha)
    })
}

/// Where the updater reports: the status answers of the update protocol, and the state of
/// Home Assistant's `update` entity, which follows them.
struct Reports {
    /// `stat/<name>/Update`: every status, as the tools read it.
    status: PubId,
    /// `stat/<name>/Firmware` (retained): the running version and the transfer's progress
    /// ([`firmware_state`]), published when it changes.
    firmware: PubId,
    /// The running firmware's version.
    installed: String,
}

fn emit(pubs: &mut Publications, to: &Reports, now: Millis, status: UpdateStatus) {
    let firmware = firmware_state(&to.installed, status.progress());
    pubs.offer(to.status, now, Some(status.to_json()), true);
    pubs.offer(to.firmware, now, Some(firmware), false);
}

/// The update being received.
struct Job {
    envelope: Vec<u8>,
    version: Version,
    writer: Writer,
}

/// What a command did, for the runtime.
pub enum Handled {
    /// Not an update command.
    No,
    /// Done; answers were queued.
    Yes,
    /// A signed command line to run with authority.
    Signed(String),
}

/// The device side of updates, owned by the runtime loop.
pub struct Updater {
    /// What a pushed config must pass.
    rules: ConfigRules,
    settings: UpdateSettings,
    reports: Reports,
    answer: PubId,
    job: Option<Job>,
    trial: bool,
    /// The config in force was pushed and is on trial: confirmed when healthy, else the
    /// previous config is put back after `otatrial`.
    config_trial: bool,
    /// Online and up for `otaconfirm`: a trial image is confirmed.
    healthy: bool,
    /// Up for `otaconfirm` with the appliance running (online or not): the fault count is
    /// cleared.
    faults_cleared: bool,
    safe_mode: bool,
    /// Why this boot happened, for the `reason` command.
    boot_reason: String,
    /// A reboot to do once the answers are out (an installed image or config).
    pending_reboot: Option<(RebootReason, Millis)>,
    /// The wall clock, once SNTP set it.
    clock: Option<hearth_core::sntp::WallClock>,
}

/// How long a pending reboot waits for its answer to be published.
const REBOOT_GRACE: Millis = 2 * SECOND;

impl Updater {
    /// Register the `Update` (status), `Firmware` (Home Assistant's update entity) and `OTA`
    /// (command answers) items.
    pub fn new(
        settings: UpdateSettings,
        rules: ConfigRules,
        safe_mode: bool,
        pubs: &mut Publications,
        now: Millis,
    ) -> Self {
        Updater {
            settings,
            rules,
            reports: Reports {
                status: pubs.register(PubSpec::on_demand("Update"), now),
                firmware: pubs.register(PubSpec::on_demand("Firmware").retained(), now),
                installed: String::new(),
            },
            answer: pubs.register(PubSpec::on_demand("OTA"), now),
            job: None,
            trial: false,
            config_trial: false,
            healthy: false,
            faults_cleared: false,
            safe_mode,
            pending_reboot: None,
            boot_reason: String::new(),
            clock: None,
        }
    }

    /// The wall clock is set: signed messages issued too far ahead of it are refused.
    pub fn set_clock(&mut self, clock: hearth_core::sntp::WallClock) {
        self.clock = Some(clock);
    }

    /// Is a key provisioned? Without one, commands that change the device are accepted
    /// unsigned, as the reference did, and updates are refused.
    pub fn has_key(&self) -> bool {
        self.settings.key.is_some()
    }

    /// After the boot report: note the trial and report what runs.
    pub async fn start<B: Board, F: NorFlash>(
        &mut self,
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        boot_reason: &str,
        now: Millis,
    ) {
        let (slot, state) = match board.slots() {
            Some(slots) => {
                let running = slots.running();
                (Some(running), slots.running_state().await.ok())
            }
            None => (None, None),
        };
        self.trial = state == Some(State::PendingVerify);
        let trial = config_trial(store).await;
        self.config_trial = matches!(trial, Ok(Some((id, _))) if id == self.settings.config_id);
        let config_back = matches!(trial, Ok(Some((id, _))) if id != self.settings.config_id);
        if config_back {
            let _ = end_config_trial(store).await;
        }
        self.boot_reason = boot_reason.to_string();
        let version = board.version().to_string();
        self.reports.installed.clone_from(&version);
        let firmware = firmware_state(&version, None);
        pubs.offer(self.reports.firmware, now, Some(firmware), true);
        let line = match (slot, state) {
            (Some(slot), Some(state)) => {
                format!("firmware {version} in slot {slot} ({})", state.describe())
            }
            _ => format!("firmware {version} (no update slots)"),
        };
        pubs.log(line);
        if self.safe_mode {
            let (n, words) = fault_report(store).await;
            pubs.log(format!(
                "safe mode: the last {n} runs ended in a fault ({words}); only network, MQTT and updates run (push a config, update, or send `normal`)"
            ));
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(version),
                    faults: Some(n),
                    why: Some(words),
                    ..UpdateStatus::new(UpdateState::SafeMode)
                },
            );
        } else if boot_reason == RebootReason::ConfigRollback.as_str() || config_back {
            let why = if config_back {
                String::from(
                    "the pushed config is not in force (it could not run on this board, or its install was cut): the previous config runs",
                )
            } else {
                format!(
                    "the pushed config was not online for otaconfirm within otatrial, or within {CONFIG_TRIAL_BOOTS} boots: the previous config is back"
                )
            };
            pubs.log(format!("config: {why}"));
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(version),
                    error: Some(why),
                    ..UpdateStatus::new(UpdateState::ConfigRolledBack)
                },
            );
        } else if boot_reason == RebootReason::Rollback.as_str() {
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(version),
                    ..UpdateStatus::new(UpdateState::RolledBack)
                },
            );
        } else if self.trial {
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(version),
                    ..UpdateStatus::new(UpdateState::Trial)
                },
            );
        }
    }

    fn offer(&self, pubs: &mut Publications, now: Millis, status: UpdateStatus) {
        emit(pubs, &self.reports, now, status);
    }

    fn refuse(&self, pubs: &mut Publications, now: Millis, error: &str) {
        pubs.log(format!("update refused: {error}"));
        self.offer(
            pubs,
            now,
            UpdateStatus {
                error: Some(error.into()),
                ..UpdateStatus::new(UpdateState::Refused)
            },
        );
    }

    /// Reboot for `reason` once the queued answers are out (at most a couple of seconds).
    pub fn reboot_soon(&mut self, reason: RebootReason, now: Millis) {
        self.pending_reboot = Some((reason, now + REBOOT_GRACE));
    }

    /// Why this boot happened.
    pub fn boot_reason(&self) -> &str {
        &self.boot_reason
    }

    /// The `partitions` answer: each slot, which one runs, the otadata entries.
    pub async fn partitions<B: Board>(&self, board: &mut B) -> String {
        let version = board.version().to_string();
        let Some(slots) = board.slots() else {
            return format!("firmware {version}; this device has no update slots");
        };
        let running = slots.running();
        let layout = slots.layout();
        let entries = match slots.entries().await {
            Ok(e) => e,
            Err(e) => return format!("otadata unreadable: {e:?}"),
        };
        let mut text = format!(
            "running slot {running} (firmware {version}); slot 0 at 0x{:x}, slot 1 at 0x{:x}, {} bytes each; otadata:",
            layout.slots[0], layout.slots[1], layout.slot_size
        );
        for (i, e) in entries.iter().enumerate() {
            match e {
                Some(e) => text.push_str(&format!(
                    " [{i}] seq {} slot {} {}",
                    e.seq,
                    e.slot(),
                    e.state.as_str()
                )),
                None => text.push_str(&format!(" [{i}] empty")),
            }
        }
        text
    }

    /// Answer an `OTA` or signed command.
    pub fn answer(&self, pubs: &mut Publications, now: Millis, text: String) {
        pubs.log(text.clone());
        pubs.offer(self.answer, now, Some(text), true);
    }

    /// Once per loop turn: confirm health, or give up on a trial.
    pub async fn tick<B: Board, F: NorFlash>(
        &mut self,
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        uptime: Millis,
        online: bool,
        now: Millis,
    ) {
        if let Some((reason, at)) = self.pending_reboot {
            if !pubs.pending() || now >= at {
                reboot(board, store, reason).await;
            }
        }
        if !self.faults_cleared && !self.safe_mode && uptime >= self.settings.confirm_after {
            // The appliance has run this long: the faults before were not a crash loop. No
            // network needed: an outage is not the appliance's fault.
            match clear_faults(store).await {
                Ok(()) => self.faults_cleared = true,
                Err(e) => board.console(&format!("update: cannot record health: {e}")),
            }
        }
        if self.config_trial {
            self.tick_config_trial(board, store, pubs, uptime, online, now)
                .await;
        }
        if self.healthy {
            return;
        }
        if online && uptime >= self.settings.confirm_after {
            self.healthy = true;
            if self.trial {
                let version = board.version().to_string();
                match mark_running(board, State::Valid).await {
                    Ok(()) => {
                        self.trial = false;
                        pubs.log(format!("update: firmware {version} is healthy: confirmed"));
                        self.offer(
                            pubs,
                            now,
                            UpdateStatus {
                                version: Some(version),
                                ..UpdateStatus::new(UpdateState::Confirmed)
                            },
                        );
                    }
                    Err(e) => {
                        self.healthy = false;
                        board.console(&format!("update: cannot confirm: {e:?}"));
                    }
                }
            }
        } else if self.trial && uptime >= self.settings.trial_limit {
            board.console(&format!(
                "update: firmware {} not healthy after {} s: rolling back",
                board.version(),
                self.settings.trial_limit / SECOND
            ));
            rollback(board, store).await;
            // Still here: the previous image did not check out, and this one was kept.
            self.trial = false;
            let version = board.version().to_string();
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(version),
                    error: Some("not healthy, and the previous image in the other slot is damaged: kept this one".into()),
                    ..UpdateStatus::new(UpdateState::Failed)
                },
            );
        }
    }

    /// The config on trial: confirmed once online for `otaconfirm`; not by `otatrial`, the
    /// previous config is put back.
    async fn tick_config_trial<B: Board, F: NorFlash>(
        &mut self,
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        uptime: Millis,
        online: bool,
        now: Millis,
    ) {
        // Safe mode does not run the appliance, so it proves nothing about the config: the
        // trial only runs out there.
        if online && uptime >= self.settings.confirm_after && !self.safe_mode {
            match end_config_trial(store).await {
                Ok(()) => {
                    self.config_trial = false;
                    pubs.log(String::from(
                        "config: the pushed config is healthy: confirmed",
                    ));
                    self.offer(
                        pubs,
                        now,
                        UpdateStatus {
                            version: Some(board.version().to_string()),
                            ..UpdateStatus::new(UpdateState::ConfigConfirmed)
                        },
                    );
                }
                Err(e) => board.console(&format!("update: cannot confirm the config: {e}")),
            }
        } else if uptime >= self.settings.trial_limit {
            board.console(&format!(
                "update: the pushed config is not healthy after {} s: putting the previous config back",
                self.settings.trial_limit / SECOND
            ));
            let e = config_rollback(board, store).await;
            // Still here: the board could not put the previous config back.
            self.config_trial = false;
            self.offer(
                pubs,
                now,
                UpdateStatus {
                    version: Some(board.version().to_string()),
                    error: Some(format!(
                        "the pushed config is not healthy, and the previous config cannot be put back ({e}): kept this one"
                    )),
                    ..UpdateStatus::new(UpdateState::Failed)
                },
            );
        }
    }

    /// Handle `Update/…`, `Config` and `Signed` messages.
    #[allow(clippy::too_many_arguments)]
    pub async fn command<B: Board, F: NorFlash>(
        &mut self,
        leaf: &str,
        payload: &[u8],
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        device: &str,
        appliance: &str,
        now: Millis,
    ) -> Handled {
        match leaf {
            "Update/Begin" => {
                self.begin(payload, board, store, pubs, device, appliance, now)
                    .await
            }
            "Update/Chunk" => self.chunk(payload, board, store, pubs, now).await,
            "Config" => self.config(payload, board, store, pubs, device, now).await,
            "Signed" => {
                return match self.open(payload, Kind::Command, store, device).await {
                    Ok((text, issued)) => {
                        if let Err(e) = set_last_issued(store, issued).await {
                            self.answer(pubs, now, format!("signed command refused: storage: {e}"));
                            return Handled::Yes;
                        }
                        Handled::Signed(text)
                    }
                    Err(e) => {
                        self.answer(pubs, now, format!("signed command refused: {e}"));
                        Handled::Yes
                    }
                }
            }
            _ => return Handled::No,
        }
        Handled::Yes
    }

    /// Open a signed envelope of `kind` for `device`; returns its body as text and its issue
    /// time.
    async fn open<F: NorFlash>(
        &self,
        payload: &[u8],
        kind: Kind,
        store: &SharedStore<F>,
        device: &str,
    ) -> Result<(String, u64), OpenError> {
        let last = last_issued(store).await.map_err(OpenError::Mark)?;
        let env = signed::accept(payload, self.settings.key.as_ref(), kind, device, last)
            .map_err(OpenError::Refused)?;
        if let Some(e) = ahead(self.clock, env.issued, hearth_platform::now_ms()) {
            return Err(e);
        }
        let text = core::str::from_utf8(env.body).map_err(|_| OpenError::NotText)?;
        Ok((text.to_string(), env.issued))
    }

    #[allow(clippy::too_many_arguments)]
    async fn begin<B: Board, F: NorFlash>(
        &mut self,
        payload: &[u8],
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        device: &str,
        appliance: &str,
        now: Millis,
    ) {
        // The same signed manifest again (a client resuming) continues the same transfer.
        // After a reboot the transfer in progress is only in flash: read it once.
        let stored = match self.job {
            Some(_) => None,
            None => stored_job(store).await,
        };
        let same = match (&self.job, &stored) {
            (Some(j), _) => j.envelope == payload,
            (None, Some(s)) => s.envelope == payload,
            (None, None) => false,
        };
        let mark = match last_issued(store).await {
            Ok(mark) => mark,
            Err(e) => return self.refuse(pubs, now, &e.to_string()),
        };
        // The anti-replay mark only grows. A client resuming sends the manifest that set it
        // (issued == mark) again: accepted without moving the mark. A stored manifest older
        // than the mark lost to a newer signed message: dropped, never resumed, because
        // accepting it would let its older issue time through.
        let last = if same { mark.saturating_sub(1) } else { mark };
        let env = match signed::accept(
            payload,
            self.settings.key.as_ref(),
            Kind::Firmware,
            device,
            last,
        ) {
            Ok(env) => env,
            Err(e) => {
                if same && matches!(e, Refusal::Stale { .. }) {
                    self.job = None;
                    forget_job(store).await;
                    return self.refuse(
                        pubs,
                        now,
                        "stale: a newer signed message was accepted since this transfer began; the transfer is dropped, start the update again",
                    );
                }
                return self.refuse(pubs, now, &e.to_string());
            }
        };
        if let Some(e) = ahead(self.clock, env.issued, now) {
            return self.refuse(pubs, now, &e.to_string());
        }
        let manifest = match Manifest::parse(env.body) {
            Ok(m) => m,
            Err(e) => return self.refuse(pubs, now, &e.to_string()),
        };
        if self.trial {
            // The inactive slot holds the image to roll back to: never write over it.
            return self.refuse(
                pubs,
                now,
                &format!(
                    "firmware {} is on trial: the next update can start once it is confirmed healthy",
                    board.version()
                ),
            );
        }
        let running = Version::parse(board.version()).unwrap_or(Version(0, 0, 0));
        let chip = board.chip().to_string();
        let Some(slots) = board.slots() else {
            return self.refuse(pubs, now, "this device has no update slots");
        };
        let target = Target {
            chip: &chip,
            appliance,
            running,
            slot_size: slots.slot_size(),
        };
        if let Err(e) = manifest.check(&target) {
            let e = match e {
                Refusal::WrongChip => {
                    format!("image is for {}, this device is {chip}", manifest.chip)
                }
                Refusal::WrongAppliance => format!(
                    "image contains {}, this device runs {appliance}",
                    manifest.appliance
                ),
                Refusal::Downgrade => format!(
                    "image version {} is not newer than the running {running}",
                    manifest.version
                ),
                other => other.to_string(),
            };
            return self.refuse(pubs, now, &e);
        }
        // Continue where this image's transfer stopped: in RAM, or in flash after a reboot.
        let resume_at = match &self.job {
            Some(j) if j.writer.sha256() == manifest.sha256 && j.writer.size() == manifest.size => {
                j.writer.next()
            }
            Some(_) => 0,
            None => match &stored {
                Some(s) if stored_manifest_matches(&s.envelope, &manifest) => s.next,
                _ => 0,
            },
        };
        {
            let mut s = store.lock().await;
            let saved = async {
                if !same {
                    // `accept` checked issued > mark: the mark grows.
                    s.set_bytes(keys::OTA_LAST_ISSUED, &env.issued.to_le_bytes())
                        .await?;
                }
                s.set_bytes(keys::OTA_JOB, payload).await?;
                s.set_u32(keys::OTA_NEXT, resume_at).await
            };
            if let Err(e) = saved.await {
                drop(s);
                return self.refuse(pubs, now, &format!("storage: {e}"));
            }
        }
        let writer = match Writer::begin(slots, manifest.size, manifest.sha256, resume_at).await {
            Ok(w) => w,
            Err(e) => return self.refuse(pubs, now, &e.to_string()),
        };
        let version = manifest.version;
        let next = writer.next();
        pubs.log(format!(
            "update: receiving firmware {version} ({} bytes) from offset {next}",
            manifest.size
        ));
        self.offer(
            pubs,
            now,
            UpdateStatus {
                version: Some(version.to_string()),
                next: Some(next),
                size: Some(manifest.size),
                chunk: Some(hearth_ota::CHUNK),
                ..UpdateStatus::new(UpdateState::Ready)
            },
        );
        let complete = writer.complete();
        self.job = Some(Job {
            envelope: payload.to_vec(),
            version,
            writer,
        });
        if complete {
            // Received before a reboot that came before the switch: finish it now.
            self.install(board, store, pubs, now).await;
        }
    }

    async fn chunk<B: Board, F: NorFlash>(
        &mut self,
        payload: &[u8],
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        now: Millis,
    ) {
        let id = &self.reports;
        let Some(job) = self.job.as_mut() else {
            return self.refuse(
                pubs,
                now,
                "chunk without an update in progress: send Update/Begin first",
            );
        };
        let version = job.version.to_string();
        let size = job.writer.size();
        let Some(slots) = board.slots() else { return };
        let receiving = |next: u32, error: Option<String>| UpdateStatus {
            version: Some(version.clone()),
            next: Some(next),
            size: Some(size),
            chunk: Some(hearth_ota::CHUNK),
            error,
            ..UpdateStatus::new(UpdateState::Receiving)
        };
        let (Some(head), Some(data)) = (payload.get(..8), payload.get(8..)) else {
            let next = job.writer.next();
            return emit(
                pubs,
                id,
                now,
                receiving(next, Some("chunk shorter than its header".into())),
            );
        };
        let offset = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if offset != job.writer.next() {
            // A duplicate, or one sent ahead of a lost one: ignored. The client notices the
            // silence and sends Begin again, whose `ready` says where to continue.
            return;
        }
        if crc32(0, data) != crc {
            let next = job.writer.next();
            let error = format!("chunk at {offset} failed its CRC: send it again");
            return emit(pubs, id, now, receiving(next, Some(error)));
        }
        let next = match job.writer.write(slots, offset, data).await {
            Ok(next) => next,
            Err(e) => {
                let next = job.writer.next();
                return emit(pubs, id, now, receiving(next, Some(e.to_string())));
            }
        };
        if let Err(e) = store.lock().await.set_u32(keys::OTA_NEXT, next).await {
            // Progress is only for resuming after a reboot; the transfer itself goes on.
            pubs.log(format!("update: cannot record progress: {e}"));
        }
        if !job.writer.complete() {
            return emit(pubs, id, now, receiving(next, None));
        }
        self.install(board, store, pubs, now).await;
    }

    /// Every byte is in: check the image as received and as read back, select it, reboot.
    /// The transfer stays recorded until the switch is done, so a power cut before it lets the
    /// same manifest finish the job without sending the image again.
    async fn install<B: Board, F: NorFlash>(
        &mut self,
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        now: Millis,
    ) {
        let id = &self.reports;
        let (Some(job), Some(slots)) = (self.job.as_mut(), board.slots()) else {
            return;
        };
        let version = job.version.to_string();
        let status = |state, error: Option<String>| UpdateStatus {
            version: Some(version.clone()),
            error,
            ..UpdateStatus::new(state)
        };
        emit(pubs, id, now, status(UpdateState::Verifying, None));
        if let Err(e) = job.writer.finish(slots).await {
            self.job = None;
            forget_job(store).await;
            pubs.log(format!("update to {version} failed: {e}"));
            return emit(
                pubs,
                id,
                now,
                status(UpdateState::Failed, Some(e.to_string())),
            );
        }
        let target = slots.inactive();
        if let Some(key) = keys::ota_slot_image(target) {
            let mut record = [0u8; 36];
            record[..4].copy_from_slice(&job.writer.size().to_le_bytes());
            record[4..].copy_from_slice(&job.writer.sha256());
            if let Err(e) = store.lock().await.set_bytes(key, &record).await {
                let error = format!("cannot record the new image: {e}");
                return emit(pubs, id, now, status(UpdateState::Failed, Some(error)));
            }
        }
        if let Err(e) = slots.select(target, State::New).await {
            let error = format!("cannot select the new image: {e:?}");
            return emit(pubs, id, now, status(UpdateState::Failed, Some(error)));
        }
        self.job = None;
        forget_job(store).await;
        // A new image gets a fresh count of faults.
        let _ = clear_faults(store).await;
        pubs.log(format!(
            "update: firmware {version} verified and selected: rebooting into it"
        ));
        emit(pubs, id, now, status(UpdateState::Rebooting, None));
        self.pending_reboot = Some((RebootReason::Update, now + REBOOT_GRACE));
    }

    /// A signed config (`Kind::Config`, or `Kind::ConfigRotateKey` when it may remove or
    /// change `otakey`): checked against every rule the chip applies at boot, recorded as on
    /// trial, stored (the board keeps the previous copy), then the device reboots into it.
    async fn config<B: Board, F: NorFlash>(
        &mut self,
        payload: &[u8],
        board: &mut B,
        store: &SharedStore<F>,
        pubs: &mut Publications,
        device: &str,
        now: Millis,
    ) {
        // The kind is covered by the signature, which `open` checks.
        let rotate =
            matches!(signed::parse(payload), Ok((env, _, _)) if env.kind == Kind::ConfigRotateKey);
        let kind = if rotate {
            Kind::ConfigRotateKey
        } else {
            Kind::Config
        };
        let (text, issued) = match self.open(payload, kind, store, device).await {
            Ok(v) => v,
            Err(e) => return self.refuse(pubs, now, &format!("config: {e}")),
        };
        if self.config_trial {
            // The previous copy is the config to go back to: never write over it.
            return self.refuse(
                pubs,
                now,
                "config: the config in force is on trial: the next config can be pushed once it is confirmed healthy",
            );
        }
        let chip = board.config_chip();
        let config = match (self.rules)(&text, &chip, board.image_appliances()) {
            Ok(c) => c,
            Err(e) => return self.refuse(pubs, now, &format!("config: {}", e.join("; "))),
        };
        let new = match UpdateSettings::from_config(&config) {
            Ok(s) => s,
            Err(e) => return self.refuse(pubs, now, &format!("config: {e}")),
        };
        if let Err(e) = key_change_allowed(self.settings.key.as_ref(), new.key.as_ref(), rotate) {
            return self.refuse(pubs, now, &format!("config: {e}"));
        }
        if let Err(e) = set_last_issued(store, issued).await {
            return self.refuse(pubs, now, &format!("config: storage: {e}"));
        }
        // On trial from its first boot. Recorded first: a cut before the store completes
        // leaves a record about another config, which the next boot drops.
        if let Err(e) = set_config_trial(store, new.config_id, 0).await {
            return self.refuse(pubs, now, &format!("config: storage: {e}"));
        }
        if let Err(e) = board.store_config(&text).await {
            let _ = end_config_trial(store).await;
            return self.refuse(pubs, now, &format!("config: cannot store it: {e}"));
        }
        let _ = clear_faults(store).await;
        pubs.log("config: new config stored: rebooting into it, on trial".to_string());
        self.offer(pubs, now, UpdateStatus::new(UpdateState::ConfigInstalled));
        self.pending_reboot = Some((RebootReason::Config, now + REBOOT_GRACE));
    }
}

/// May a pushed config take the device from key `current` to key `new`? Only with `rotate`
/// (the owner signed a `Kind::ConfigRotateKey`) when the key is removed or changed: a config
/// push that drops the key by mistake would leave the device accepting unsigned commands, and
/// one with a wrong key would lock its owner out.
pub fn key_change_allowed(
    current: Option<&[u8; 32]>,
    new: Option<&[u8; 32]>,
    rotate: bool,
) -> Result<(), &'static str> {
    match (current, new) {
        (Some(c), Some(n)) if c == n => Ok(()),
        _ if rotate => Ok(()),
        (Some(_), None) => Err(
            "it removes otakey: the device would accept unsigned commands; push it with --rotate-key if that is meant",
        ),
        (Some(_), Some(_)) => Err(
            "it changes otakey: push it with --rotate-key (signed with the current key) if the key is meant to change",
        ),
        (None, _) => Ok(()),
    }
}

/// The rules a pushed config must pass before the device stores it: every rule the device
/// applies at boot to a config for the chip called `chip` with an image holding the appliances
/// `image` (for a device composed with the appliances, `hearth_device::chips::check_text`);
/// every problem, one line each. The runtime knows no appliance and no chip, so whoever
/// composes it hands them in.
pub type ConfigRules = fn(text: &str, chip: &str, image: &[&str]) -> Result<Config, Vec<String>>;

/// The anti-replay mark: the highest issue time accepted, 0 on a device that never accepted
/// a signed message. A mark that cannot be read is an error, never 0: reading it as 0 would
/// make every envelope ever captured acceptable again.
async fn last_issued<F: NorFlash>(store: &SharedStore<F>) -> Result<u64, MarkError> {
    let mut buf = [0u8; 8];
    match store
        .lock()
        .await
        .get_bytes(keys::OTA_LAST_ISSUED, &mut buf)
        .await
    {
        Ok(Some(8)) => Ok(u64::from_le_bytes(buf)),
        Ok(None) => Ok(0),
        Ok(Some(n)) => Err(MarkError::Unreadable(RecordError::Length(n))),
        Err(e) => Err(MarkError::Unreadable(RecordError::Store(e))),
    }
}

/// The anti-replay mark, for the read-only `mark` command (fleet tools compare their clock
/// with it before they sign).
pub async fn anti_replay_mark<F: NorFlash>(store: &SharedStore<F>) -> Result<u64, MarkError> {
    last_issued(store).await
}

/// Raise the anti-replay mark to `issued`. It never moves back: a lower `issued` leaves it.
async fn set_last_issued<F: NorFlash>(
    store: &SharedStore<F>,
    issued: u64,
) -> Result<(), MarkError> {
    let mark = last_issued(store).await?;
    if issued <= mark {
        return Ok(());
    }
    store
        .lock()
        .await
        .set_bytes(keys::OTA_LAST_ISSUED, &issued.to_le_bytes())
        .await
        .map_err(MarkError::Write)
}

/// The transfer kept in flash: its signed manifest and the offset of the next chunk.
struct StoredJob {
    envelope: Vec<u8>,
    next: u32,
}

async fn stored_job<F: NorFlash>(store: &SharedStore<F>) -> Option<StoredJob> {
    let mut s = store.lock().await;
    let mut buf = [0u8; 256];
    let n = s.get_bytes(keys::OTA_JOB, &mut buf).await.ok().flatten()?;
    let next = s.get_u32(keys::OTA_NEXT).await.ok().flatten().unwrap_or(0);
    Some(StoredJob {
        envelope: buf[..n].to_vec(),
        next,
    })
}

/// Does a stored (already accepted) envelope describe the same image? Its signature was
/// checked when it was accepted; here only the image identity matters.
fn stored_manifest_matches(stored: &[u8], manifest: &Manifest<'_>) -> bool {
    signed::parse(stored)
        .ok()
        .and_then(|(env, _, _)| Manifest::parse(env.body).ok())
        .is_some_and(|m| m.sha256 == manifest.sha256 && m.size == manifest.size)
}

async fn forget_job<F: NorFlash>(store: &SharedStore<F>) {
    let mut s = store.lock().await;
    let _ = s.remove(keys::OTA_JOB).await;
    let _ = s.remove(keys::OTA_NEXT).await;
}

#[cfg(test)]
mod virtual_time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_list_keeps_the_newest_words_within_its_bound() {
        assert_eq!(append_word("", "panic", 64), "panic");
        assert_eq!(append_word("panic", "watchdog", 64), "panic watchdog");
        let mut list = String::new();
        for i in 0..40 {
            list = append_word(&list, if i % 2 == 0 { "panic" } else { "watchdog" }, 64);
            assert!(list.len() <= 64, "{list}");
        }
        assert!(list.ends_with("panic watchdog"), "{list}");
        assert!(!list.starts_with(' '));
        assert_eq!(append_word("", "a-word-longer-than-the-bound", 8), "");
    }

    fn store(
        flash: &hearth_storage::test_flash::TestFlash,
    ) -> SharedStore<hearth_storage::test_flash::TestFlash> {
        let range =
            0..(hearth_storage::test_flash::SECTOR * hearth_storage::test_flash::SECTORS) as u32;
        let kv = embassy_futures::block_on(hearth_storage::KvStore::open(flash.clone(), range));
        hearth_platform::store::shared(kv.unwrap())
    }

    #[test]
    fn the_anti_replay_mark_only_grows_and_an_unreadable_one_refuses() {
        use embassy_futures::block_on;
        let flash = hearth_storage::test_flash::TestFlash::new();
        let s = store(&flash);
        assert_eq!(block_on(last_issued(&s)), Ok(0), "a new device");
        block_on(set_last_issued(&s, 5_000)).unwrap();
        block_on(set_last_issued(&s, 4_000)).unwrap();
        assert_eq!(block_on(last_issued(&s)), Ok(5_000), "never moves back");
        block_on(set_last_issued(&s, 6_000)).unwrap();
        assert_eq!(block_on(last_issued(&s)), Ok(6_000));
        // A mark the flash cannot read: an error, never 0, and nothing is raised past it.
        flash.fail_reads.set(true);
        let e = block_on(last_issued(&s)).unwrap_err().to_string();
        assert!(e.contains("refusing signed messages"), "{e}");
        block_on(set_last_issued(&s, 7_000)).unwrap_err();
        flash.fail_reads.set(false);
        assert_eq!(block_on(last_issued(&s)), Ok(6_000));
    }

    #[test]
    fn the_safe_mode_status_says_how_many_faults_and_which() {
        let s = UpdateStatus {
            version: Some("0.2.0".into()),
            faults: Some(3),
            why: Some("panic watchdog panic".into()),
            ..UpdateStatus::new(UpdateState::SafeMode)
        };
        assert_eq!(
            s.to_json(),
            r#"{"state":"safe-mode","version":"0.2.0","faults":3,"why":"panic watchdog panic"}"#
        );
    }

    #[test]
    fn only_a_rotating_push_may_remove_or_change_the_key() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(key_change_allowed(Some(&a), Some(&a), false).is_ok());
        assert!(key_change_allowed(Some(&a), Some(&a), true).is_ok());
        let removed = key_change_allowed(Some(&a), None, false).unwrap_err();
        assert!(removed.contains("removes otakey"), "{removed}");
        let changed = key_change_allowed(Some(&a), Some(&b), false).unwrap_err();
        assert!(changed.contains("changes otakey"), "{changed}");
        assert!(key_change_allowed(Some(&a), None, true).is_ok());
        assert!(key_change_allowed(Some(&a), Some(&b), true).is_ok());
    }

    #[test]
    fn a_config_is_identified_by_its_settings_not_its_layout() {
        let parse = crate::test_board::parse;
        let one = parse("profile weather\nssid A\nmqttbroker 10.0.0.1\nmqttname d\n");
        let same = parse("# comment\nmqttname d\nprofile weather\n\nssid A\nmqttbroker 10.0.0.1\n");
        let other = parse("profile weather\nssid A\nmqttbroker 10.0.0.1:1884\nmqttname d\n");
        assert_eq!(config_id(&one), config_id(&same));
        assert_ne!(config_id(&one), config_id(&other));
    }
}
