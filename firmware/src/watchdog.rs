//! The hardware watchdogs and their feeder: TIMG1's main watchdog (MWDT) and the RTC watchdog
//! (RWDT), fed by an embassy task under the runtime's loop-liveness policy
//! (`hearth_core::supervisor::LoopWatchdog`, shared with [`crate::board::EspBoard`]).
//!
//! `esp_hal::init` disables every watchdog (the RWDT, both MWDTs and the super watchdog), and
//! TIMG0 belongs to esp-rtos, so Hearth uses TIMG1 and the RWDT. The phases:
//!
//! | phase | MWDT (TIMG1) | RWDT |
//! |---|---|---|
//! | boot (init, config, store, Wi-Fi) | off | boot guard, [`BOOT_GUARD_S`] s |
//! | config says `watchdog 0` | off | off (from the moment the config is read) |
//! | boot error (see `fatal`) | off | boot guard, fed by the idle loop |
//! | runtime, before `wdgrace` has passed | off | boot guard, fed every second |
//! | runtime, armed after `wdgrace` | `watchdog` s | 2 × `watchdog` s (last resort) |
//!
//! Once armed, the feeder feeds both every [`FEED_PERIOD_MS`] ms, but only while
//! `LoopWatchdog::should_feed` says the loop proved it is alive (a heartbeat less than
//! [`FEED_WINDOW`] ago, or an open may-block window). A loop that stops proving liveness
//! starves both; the MWDT resets the chip `watchdog` s later. The feeder is an ordinary task
//! on the same executor as the loop, so a loop that hogs the CPU without awaiting starves it
//! too. Both watchdogs reset the whole system on their first stage. The super watchdog stays
//! off (it needs feeding every ~1 s by hardware or software, and the MWDT covers the same
//! failures).

use core::cell::RefCell;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Timer;
use esp_hal::peripherals::{RTC_TIMER, TIMG1};
use esp_hal::rtc_cntl::{Rtc, RwdtStage};
use esp_hal::time::Duration;
use esp_hal::timer::timg::{MwdtStage, TimerGroup, Wdt};
use hearth_core::supervisor::LoopWatchdog;
use hearth_core::Millis;

/// RWDT timeout while the device boots (flash, a possible store format, Wi-Fi start).
pub const BOOT_GUARD_S: u64 = 60;
/// How long one heartbeat of the loop keeps the feeder feeding (as in the simulator).
pub const FEED_WINDOW: Millis = LoopWatchdog::FEED_WINDOW;
/// The feeder's period.
pub const FEED_PERIOD_MS: u64 = 1000;

/// The loop-liveness policy, shared by the board (heartbeats) and the feeder.
pub type SharedPolicy = Mutex<CriticalSectionRawMutex, RefCell<LoopWatchdog>>;

/// The two hardware watchdogs.
pub struct Watchdogs {
    mwdt: Wdt<TIMG1<'static>>,
    rtc: Rtc<'static>,
}

impl Watchdogs {
    /// Take the watchdogs and start the RWDT boot guard.
    pub fn start(timg1: TIMG1<'static>, rtc_timer: RTC_TIMER<'static>) -> Self {
        let mut dogs = Self {
            mwdt: TimerGroup::new(timg1).wdt,
            rtc: Rtc::new(rtc_timer),
        };
        dogs.rtc
            .rwdt
            .set_timeout(RwdtStage::Stage0, Duration::from_secs(BOOT_GUARD_S));
        dogs.rtc.rwdt.enable();
        dogs
    }

    /// Feed the boot guard (the RWDT; the MWDT is not running yet).
    pub fn feed_boot_guard(&mut self) {
        self.rtc.rwdt.feed();
    }

    /// `watchdog 0`: no hardware watchdog at all.
    pub fn disable(&mut self) {
        self.rtc.rwdt.disable();
        self.mwdt.disable();
    }

    /// Arm the MWDT with `timeout_s` and turn the RWDT into the last resort.
    fn arm(&mut self, timeout_s: u32) {
        let timeout = u64::from(timeout_s);
        self.mwdt
            .set_timeout(MwdtStage::Stage0, Duration::from_secs(timeout));
        self.mwdt.enable();
        self.mwdt.feed();
        self.rtc
            .rwdt
            .set_timeout(RwdtStage::Stage0, Duration::from_secs(2 * timeout));
        self.rtc.rwdt.feed();
    }

    fn feed(&mut self) {
        self.mwdt.feed();
        self.rtc.rwdt.feed();
    }
}

/// Stop both watchdogs for a deep sleep: the RWDT runs in the RTC domain, which stays powered,
/// and would reset the sleeping chip. Called by `Reset::deep_sleep` right before the sleep, the
/// point of no return (the wake boots the chip from the start, with the boot guard).
pub fn stop_for_deep_sleep() {
    // SAFETY: the feeder task owns the `Rtc` and the TIMG1 watchdog, but it never runs again:
    // the caller enters deep sleep synchronously on the only core, without yielding to the
    // executor. Writing the disable registers here is the last use of either watchdog.
    let mut rtc = Rtc::new(unsafe { RTC_TIMER::steal() });
    rtc.rwdt.disable();
    Wdt::<TIMG1<'static>>::new().disable();
}

/// When and how the feeder arms the hardware.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Milliseconds since boot at which the watchdogs are armed (`wdgrace`).
    pub arm_at: Millis,
    /// The MWDT timeout, seconds (`watchdog`).
    pub timeout_s: u32,
}

/// The feeder task: boot guard until `plan.arm_at`, then feed both watchdogs while the loop
/// proves its liveness.
#[embassy_executor::task]
pub async fn feeder(mut dogs: Watchdogs, policy: &'static SharedPolicy, plan: Plan) -> ! {
    let mut armed = false;
    loop {
        let now = embassy_time::Instant::now().as_millis();
        if !armed && now >= plan.arm_at {
            dogs.arm(plan.timeout_s);
            armed = true;
            log::info!(
                "watchdog: armed (TIMG1 {} s, RTC {} s)",
                plan.timeout_s,
                2 * plan.timeout_s
            );
        }
        if !armed {
            dogs.feed_boot_guard();
        } else if policy.lock(|p| p.borrow().should_feed(now)) {
            dogs.feed();
        }
        Timer::after_millis(FEED_PERIOD_MS).await;
    }
}
