//! A board for the unit tests: every platform trait, with what a test needs to see and to
//! break. Its console lines are kept, its watchdog calls recorded, its config store is a string
//! kept in [`Configs`] (shared, so it survives a reset as flash does) that can be made to
//! refuse, and its update slots are a [`TestFlash`]. `reset` and
//! `deep_sleep` unwind with a [`ResetNow`] payload, which [`expect_reset`] catches, so a test
//! can run up to a reset, look at the flash, and boot again from the same flash.

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;

use hearth_platform::{Console, DeviceStatus, Entropy, FirmwareStore, Identity, Reset, Watchdog};
use hearth_storage::test_flash::{TestFlash, SECTOR};

/// The payload of the unwind that [`Reset::reset`] and [`Reset::deep_sleep`] start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetNow {
    /// A reset.
    Reset,
    /// A deep sleep of this long.
    Sleep(Millis),
}

/// The board's config store: what the next boot reads.
#[derive(Debug, Default)]
pub struct Configs {
    /// The config stored for the next boot (`None`: the one flashed by cable).
    pub next: Option<String>,
    /// The config before the last store, for a restore.
    pub previous: Option<String>,
    /// Store and restore fail with this while set.
    pub refusal: Option<&'static str>,
}

/// See the module documentation.
pub struct TestBoard {
    /// What the hardware says about the last reset.
    pub cause: HardwareReset,
    /// The update slots: otadata in sectors 0–1, slot 0 in sector 2, slot 1 in sector 3.
    pub slots: Option<hearth_ota::Slots<TestFlash>>,
    /// The firmware version.
    pub version: &'static str,
    /// Every console line, in order.
    pub lines: Vec<String>,
    /// The watchdog calls: `("heartbeat" | "may_block" | "may_block_exit", now)`.
    pub watchdog: Vec<(&'static str, Millis)>,
    /// The config store.
    pub configs: Rc<RefCell<Configs>>,
    seed: u64,
}

impl TestBoard {
    /// A board whose last reset was `cause`, with update slots on `slots` running slot
    /// `running`.
    pub fn new(cause: HardwareReset, slots: Option<(TestFlash, u8)>) -> Self {
        TestBoard {
            cause,
            slots: slots.map(|(flash, running)| {
                let layout = hearth_ota::slots::Layout {
                    otadata: 0,
                    slots: [2 * SECTOR as u32, 3 * SECTOR as u32],
                    slot_size: SECTOR as u32,
                };
                hearth_ota::Slots::new(flash, layout, running)
            }),
            version: "1.0.0",
            lines: Vec::new(),
            watchdog: Vec::new(),
            configs: Rc::default(),
            seed: 1,
        }
    }

    /// Was a console line containing `part` written?
    pub fn said(&self, part: &str) -> bool {
        self.lines.iter().any(|l| l.contains(part))
    }
}

/// Run `f`, which must end in a reset or a deep sleep of the board; which one it was.
pub fn expect_reset(f: impl FnOnce()) -> ResetNow {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => panic!("expected a reset, but it returned"),
        Err(payload) => match payload.downcast::<ResetNow>() {
            Ok(r) => *r,
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

impl Identity for TestBoard {
    fn chip(&self) -> &str {
        "sim"
    }

    fn image_appliances(&self) -> &'static [&'static str] {
        // The runtime's tests know no appliance; the config rules they hand in ignore it.
        &[]
    }

    fn unique_id(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 1]
    }

    fn version(&self) -> &str {
        self.version
    }
}

impl Entropy for TestBoard {
    fn seed(&mut self) -> u64 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.seed
    }
}

impl Console for TestBoard {
    fn console(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }

    fn status(&mut self, _status: DeviceStatus) {}
}

impl Reset for TestBoard {
    fn hardware_reset(&self) -> HardwareReset {
        self.cause
    }

    fn reset(&mut self) -> ! {
        std::panic::panic_any(ResetNow::Reset)
    }

    fn deep_sleep(&mut self, ms: Millis) -> ! {
        std::panic::panic_any(ResetNow::Sleep(ms))
    }
}

impl Watchdog for TestBoard {
    fn heartbeat(&mut self, now: Millis) {
        self.watchdog.push(("heartbeat", now));
    }

    fn may_block(&mut self, now: Millis) {
        self.watchdog.push(("may_block", now));
    }

    fn may_block_exit(&mut self, now: Millis) {
        self.watchdog.push(("may_block_exit", now));
    }
}

impl FirmwareStore for TestBoard {
    type Slots = TestFlash;
    type ConfigError = &'static str;

    fn slots(&mut self) -> Option<&mut hearth_ota::Slots<TestFlash>> {
        self.slots.as_mut()
    }

    async fn store_config(&mut self, text: &str) -> Result<(), &'static str> {
        let mut c = self.configs.borrow_mut();
        if let Some(why) = c.refusal {
            return Err(why);
        }
        c.previous = c.next.replace(text.to_string());
        Ok(())
    }

    async fn restore_config(&mut self) -> Result<(), &'static str> {
        let mut c = self.configs.borrow_mut();
        if let Some(why) = c.refusal {
            return Err(why);
        }
        c.next = c.previous.take();
        Ok(())
    }
}

/// The config rules of the unit tests (the device's own are its chip's and appliances', in
/// `hearth_device`): the syntax of Hearth's keys and the update keys, for a `weather` device.
pub fn test_rules(
    text: &str,
    _chip: &str,
    _image: &[&str],
) -> Result<hearth_config::Config, alloc::vec::Vec<alloc::string::String>> {
    use alloc::string::ToString;
    hearth_config::parse_with(text, &["weather"], crate::update::CONFIG_KEYS)
        .map_err(|errors| errors.as_slice().iter().map(|e| e.to_string()).collect())
}

/// A config the unit tests' rules accept.
pub fn parse(text: &str) -> hearth_config::Config {
    test_rules(text, "sim", &[]).expect("a valid test config")
}
