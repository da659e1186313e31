//! The update logic without processes: [`boot`] and the [`Updater`] driven on a
//! [`TestBoard`] with the time passed in, through trials, rollbacks, safe mode and config
//! pushes, each across the resets they end in (the flash and the board's config store
//! survive; the board, the store handle and the updater are made anew, as at a real boot).

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use ed25519_dalek::SigningKey;
use embassy_futures::block_on;
use hearth_core::publish::Publications;
use hearth_core::reboot::{HardwareReset, RebootReason};
use hearth_core::update_status::{firmware_state, UpdateState, UpdateStatus};
use hearth_core::{Millis, SECOND};
use hearth_ota::otadata;
use hearth_ota::signed::{self, Kind};
use hearth_ota::State;
use hearth_storage::keys;

use super::{boot, BootMode, Handled, UpdateSettings, Updater, CONFIG_TRIAL_BOOTS};
use crate::test_board::{expect_reset, Configs, ResetNow, TestBoard};
use hearth_platform::store::SharedStore;
use hearth_platform::FirmwareStore;
use hearth_storage::test_flash::{TestFlash, SECTOR, SECTORS};

const DEVICE: &str = "d";
const CONFIRM: Millis = 60 * SECOND;
const TRIAL: Millis = 600 * SECOND;

fn owner() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn settings() -> UpdateSettings {
    UpdateSettings {
        key: Some(owner().verifying_key().to_bytes()),
        confirm_after: CONFIRM,
        trial_limit: TRIAL,
        safe_mode_after: 3,
        config_id: 0,
    }
}

/// What survives a reset: the store's flash, the slots' flash, the board's config store.
struct World {
    store: TestFlash,
    slots: TestFlash,
    configs: Rc<RefCell<Configs>>,
}

/// A device as booted: [`boot`], then the boot report's part (read and clear the stored
/// reboot reason), then [`Updater::start`].
struct Device {
    board: TestBoard,
    store: SharedStore<TestFlash>,
    pubs: Publications,
    up: Updater,
    mode: BootMode,
}

impl World {
    fn new() -> Self {
        World {
            store: TestFlash::new(),
            slots: TestFlash::new(),
            configs: Rc::default(),
        }
    }

    /// An image just installed in slot 1 (otadata says `new`); slot 0 ran before.
    fn installed_in_slot_1() -> Self {
        let w = World::new();
        let mut board = w.board(0, HardwareReset::Software);
        block_on(board.slots().unwrap().select(1, State::New)).unwrap();
        w
    }

    fn board(&self, running: u8, cause: HardwareReset) -> TestBoard {
        let mut b = TestBoard::new(cause, Some((self.slots.clone(), running)));
        b.configs = self.configs.clone();
        b
    }

    fn open(&self) -> SharedStore<TestFlash> {
        let range = 0..(SECTOR * SECTORS) as u32;
        let kv = block_on(hearth_storage::KvStore::open(self.store.clone(), range));
        hearth_platform::store::shared(kv.unwrap())
    }

    fn power_up(&self, running: u8, cause: HardwareReset, settings: UpdateSettings) -> Device {
        let mut board = self.board(running, cause);
        let store = self.open();
        let mode = block_on(boot(&mut board, &store, &settings));
        let reason = reboot_reason(&store).unwrap_or_default();
        block_on(async { store.lock().await.remove(keys::REBOOT_REASON).await }).unwrap();
        let mut pubs = Publications::new(16);
        let mut up = Updater::new(
            settings,
            crate::test_board::test_rules,
            mode != BootMode::Normal,
            &mut pubs,
            0,
        );
        block_on(up.start(&mut board, &store, &mut pubs, &reason, 0));
        Device {
            board,
            store,
            pubs,
            up,
            mode,
        }
    }

    /// Boot, expecting [`boot`] itself to reset; the board afterwards.
    fn power_up_resets(&self, running: u8, settings: UpdateSettings) -> TestBoard {
        let mut board = self.board(running, HardwareReset::PowerOn);
        let store = self.open();
        let how = expect_reset(|| {
            block_on(boot(&mut board, &store, &settings));
        });
        assert_eq!(how, ResetNow::Reset);
        board
    }

    fn next_config(&self) -> Option<String> {
        self.configs.borrow().next.clone()
    }
}

impl Device {
    fn tick(&mut self, uptime: Millis, online: bool) {
        let (board, store, pubs) = (&mut self.board, &self.store, &mut self.pubs);
        block_on(self.up.tick(board, store, pubs, uptime, online, uptime));
    }

    fn command(&mut self, leaf: &str, payload: &[u8], now: Millis) -> Handled {
        let (board, store, pubs) = (&mut self.board, &self.store, &mut self.pubs);
        block_on(
            self.up
                .command(leaf, payload, board, store, pubs, DEVICE, "weather", now),
        )
    }

    fn status(&self) -> UpdateStatus {
        UpdateStatus::parse(
            self.pubs
                .last(self.up.reports.status)
                .expect("an update status"),
        )
        .unwrap()
    }

    /// Everything queued goes out, as once the session publishes it.
    fn publish_all(&mut self) {
        while self.pubs.pop().is_some() {}
    }

    fn reboot_reason(&self) -> Option<String> {
        reboot_reason(&self.store)
    }
}

fn reboot_reason(store: &SharedStore<TestFlash>) -> Option<String> {
    let mut buf = [0u8; 64];
    let n = block_on(async {
        let mut s = store.lock().await;
        s.get_bytes(keys::REBOOT_REASON, &mut buf).await
    })
    .unwrap()?;
    Some(core::str::from_utf8(&buf[..n]).unwrap().to_string())
}

/// The slot otadata boots next, and its state.
fn selected(board: &mut TestBoard) -> (u8, State) {
    let entries = block_on(board.slots().unwrap().entries()).unwrap();
    let (_, e) = otadata::select(entries).expect("otadata selects a slot");
    (e.slot(), e.state)
}

#[test]
fn a_new_image_is_on_trial_until_online_for_otaconfirm_then_confirmed() {
    let w = World::installed_in_slot_1();
    let mut d = w.power_up(1, HardwareReset::Software, settings());
    assert_eq!(d.mode, BootMode::Normal);
    assert_eq!(selected(&mut d.board), (1, State::PendingVerify));
    assert_eq!(d.status().state, UpdateState::Trial);
    // Home Assistant's update entity: the running version, nothing in progress.
    assert_eq!(
        d.pubs.last(d.up.reports.firmware),
        Some(firmware_state(d.board.version, None).as_str())
    );
    // Online but not long enough, then long enough but offline: still on trial.
    d.tick(CONFIRM - 1, true);
    d.tick(CONFIRM + 5 * SECOND, false);
    assert_eq!(selected(&mut d.board), (1, State::PendingVerify));
    assert_eq!(d.status().state, UpdateState::Trial);
    d.tick(CONFIRM + 6 * SECOND, true);
    assert_eq!(selected(&mut d.board), (1, State::Valid));
    let s = d.status();
    assert_eq!(
        (s.state, s.version.as_deref()),
        (UpdateState::Confirmed, Some("1.0.0"))
    );
}

#[test]
fn an_image_never_online_within_otatrial_rolls_back_and_says_so_after_the_reset() {
    let w = World::installed_in_slot_1();
    let mut d = w.power_up(1, HardwareReset::Software, settings());
    d.tick(TRIAL - 1, false);
    assert_eq!(selected(&mut d.board), (1, State::PendingVerify));
    assert_eq!(expect_reset(|| d.tick(TRIAL, false)), ResetNow::Reset);
    assert_eq!(selected(&mut d.board), (0, State::Valid));
    assert_eq!(
        d.reboot_reason().as_deref(),
        Some(RebootReason::Rollback.as_str())
    );
    // The previous image boots and reports the rollback.
    let d = w.power_up(0, HardwareReset::Software, settings());
    assert_eq!(d.mode, BootMode::Normal);
    assert_eq!(d.status().state, UpdateState::RolledBack);
}

#[test]
fn a_trial_boot_that_ended_early_rolls_back_at_the_next_boot_unless_the_old_image_is_damaged() {
    // Slot 1 booted on trial and was reset (a crash, a power cut) before it was healthy.
    let w = World::installed_in_slot_1();
    let mut d = w.power_up(1, HardwareReset::Watchdog, settings());
    assert_eq!(selected(&mut d.board), (1, State::PendingVerify));
    let mut board = w.power_up_resets(1, settings());
    assert_eq!(selected(&mut board), (0, State::Valid));

    // The same, but slot 0 no longer holds the image an update recorded there: it is never
    // selected; the running image is kept and marked valid so the next boot does not retry.
    let w = World::installed_in_slot_1();
    let mut record = [0u8; 36];
    record[..4].copy_from_slice(&16u32.to_le_bytes());
    let store = w.open();
    let key = keys::ota_slot_image(0).unwrap();
    block_on(async { store.lock().await.set_bytes(key, &record).await }).unwrap();
    let mut board = w.board(1, HardwareReset::Software);
    block_on(board.slots().unwrap().select(1, State::PendingVerify)).unwrap();
    assert_eq!(
        block_on(boot(&mut board, &store, &settings())),
        BootMode::Normal
    );
    assert_eq!(selected(&mut board), (1, State::Valid));
    assert!(board.said("cannot roll back"), "{:?}", board.lines);
}

#[test]
fn faults_in_a_row_start_safe_mode_outages_never_count_and_a_healthy_run_clears_them() {
    let w = World::new();
    let boot_with = |cause| w.power_up(0, cause, settings());
    assert_eq!(boot_with(HardwareReset::Watchdog).mode, BootMode::Normal);
    assert_eq!(boot_with(HardwareReset::Panic).mode, BootMode::Normal);
    // A power cut between them is not a fault of the code.
    assert_eq!(boot_with(HardwareReset::PowerOn).mode, BootMode::Normal);
    let d = boot_with(HardwareReset::Watchdog);
    assert_eq!(d.mode, BootMode::Safe { faults: 3 });
    let s = d.status();
    assert_eq!(s.state, UpdateState::SafeMode);
    assert_eq!(s.why.as_deref(), Some("watchdog panic watchdog"));

    // A run of otaconfirm with the appliance running (network or not) clears the count; a
    // shorter one proves nothing.
    for (ran, then) in [
        (CONFIRM - 1, BootMode::Safe { faults: 3 }),
        (CONFIRM, BootMode::Normal),
    ] {
        let w = World::new();
        w.power_up(0, HardwareReset::Watchdog, settings());
        let mut d = w.power_up(0, HardwareReset::Watchdog, settings());
        d.tick(ran, false);
        drop(d);
        let d = w.power_up(0, HardwareReset::Watchdog, settings());
        assert_eq!(d.mode, then, "after a run of {ran} ms");
    }
}

/// A config for [`DEVICE`] that keeps the owner's key, and its envelope issued at `issued`.
fn pushed_config(broker: &str, issued: u64) -> (String, Vec<u8>) {
    let key: String = owner()
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| alloc::format!("{b:02x}"))
        .collect();
    let text = alloc::format!(
        "profile weather\nssid A\nmqttbroker {broker}\nmqttname {DEVICE}\notakey {key}\n"
    );
    let env = signed::seal(Kind::Config, issued, DEVICE, text.as_bytes(), &owner()).unwrap();
    (text, env)
}

fn settings_of(text: &str) -> UpdateSettings {
    UpdateSettings::from_config(&crate::test_board::parse(text)).unwrap()
}

#[test]
fn a_pushed_config_is_stored_rebooted_into_on_trial_and_confirmed_once_healthy() {
    let w = World::new();
    let mut d = w.power_up(0, HardwareReset::PowerOn, settings());
    let (text, env) = pushed_config("10.0.0.2", 1_000);
    assert!(matches!(
        d.command("Config", &env, 5 * SECOND),
        Handled::Yes
    ));
    assert_eq!(d.status().state, UpdateState::ConfigInstalled);
    assert_eq!(w.next_config().as_deref(), Some(text.as_str()));
    // The reboot waits for the answer to go out (or for the grace period).
    d.tick(5 * SECOND + 1, true);
    d.publish_all();
    assert_eq!(
        expect_reset(|| d.tick(5 * SECOND + 2, true)),
        ResetNow::Reset
    );
    assert_eq!(
        d.reboot_reason().as_deref(),
        Some(RebootReason::Config.as_str())
    );

    // The new config runs, on trial.
    let mut d = w.power_up(0, HardwareReset::Software, settings_of(&text));
    let first = alloc::format!("on trial, boot 1 of {CONFIG_TRIAL_BOOTS}");
    assert!(d.board.said(&first), "{:?}", d.board.lines);
    // The same envelope again is a replay.
    d.command("Config", &env, SECOND);
    let s = d.status();
    assert_eq!(s.state, UpdateState::Refused);
    assert!(s.error.as_deref().unwrap().contains("replayed"), "{s:?}");
    // And no other config while this one is on trial.
    let (_, next) = pushed_config("10.0.0.3", 2_000);
    d.command("Config", &next, 2 * SECOND);
    assert!(d.status().error.unwrap().contains("on trial"));
    d.tick(CONFIRM - 1, true);
    assert_eq!(d.status().state, UpdateState::Refused);
    d.tick(CONFIRM, true);
    assert_eq!(d.status().state, UpdateState::ConfigConfirmed);
    // Confirmed: the next boot is not a trial boot.
    let d = w.power_up(0, HardwareReset::PowerOn, settings_of(&text));
    assert!(!d.board.said("on trial"), "{:?}", d.board.lines);
}

#[test]
fn a_pushed_config_never_healthy_is_put_back_by_otatrial_or_after_its_trial_boots() {
    let w = World::new();
    let (text, env) = pushed_config("10.0.0.2", 1_000);
    w.power_up(0, HardwareReset::PowerOn, settings())
        .command("Config", &env, 0);
    // Never online for otaconfirm until otatrial runs out: the previous config comes back.
    let mut d = w.power_up(0, HardwareReset::Software, settings_of(&text));
    d.tick(TRIAL - 1, false);
    assert_eq!(w.next_config().as_deref(), Some(text.as_str()));
    assert_eq!(expect_reset(|| d.tick(TRIAL, false)), ResetNow::Reset);
    assert_eq!(w.next_config(), None, "back to the config flashed by cable");
    assert_eq!(
        d.reboot_reason().as_deref(),
        Some(RebootReason::ConfigRollback.as_str())
    );
    let d = w.power_up(0, HardwareReset::Software, settings());
    assert_eq!(d.status().state, UpdateState::ConfigRolledBack);

    // Cut short every time: after CONFIG_TRIAL_BOOTS boots the next one puts it back.
    let w = World::new();
    w.power_up(0, HardwareReset::PowerOn, settings())
        .command("Config", &env, 0);
    for n in 1..=CONFIG_TRIAL_BOOTS {
        let d = w.power_up(0, HardwareReset::PowerOn, settings_of(&text));
        let line = alloc::format!("boot {n} of {CONFIG_TRIAL_BOOTS}");
        assert!(d.board.said(&line), "{:?}", d.board.lines);
        assert_eq!(w.next_config().as_deref(), Some(text.as_str()));
    }
    w.power_up_resets(0, settings_of(&text));
    assert_eq!(w.next_config(), None);
}

#[test]
fn a_board_that_cannot_store_or_restore_a_config_says_why_and_keeps_the_one_in_force() {
    let w = World::new();
    let mut d = w.power_up(0, HardwareReset::PowerOn, settings());
    w.configs.borrow_mut().refusal = Some("config partition worn out");
    let (text, env) = pushed_config("10.0.0.2", 1_000);
    d.command("Config", &env, 0);
    let s = d.status();
    assert_eq!(s.state, UpdateState::Refused);
    assert_eq!(
        s.error.as_deref(),
        Some("config: cannot store it: config partition worn out")
    );
    d.tick(10 * SECOND, true);
    assert_eq!(w.next_config(), None);
    // No trial was left behind for the next boot.
    w.configs.borrow_mut().refusal = None;
    let mut d = w.power_up(0, HardwareReset::PowerOn, settings());
    assert!(!d.board.said("on trial"), "{:?}", d.board.lines);

    // A config on trial that the board cannot take back: kept, off trial, and said why.
    let (_, env) = pushed_config("10.0.0.2", 2_000);
    d.command("Config", &env, 0);
    let mut d = w.power_up(0, HardwareReset::Software, settings_of(&text));
    w.configs.borrow_mut().refusal = Some("config partition worn out");
    d.tick(TRIAL, false);
    let s = d.status();
    assert_eq!(s.state, UpdateState::Failed);
    let error = s.error.unwrap();
    assert!(error.contains("(config partition worn out)"), "{error}");
    assert_eq!(w.next_config().as_deref(), Some(text.as_str()));
}
