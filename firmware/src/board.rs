//! The chip as a `hearth_platform::Board` (the platform traits of `hearth_platform`): reset cause, software reset, the loop-liveness policy
//! shared with the watchdog feeder, hardware entropy, the base MAC as identity, the version,
//! the status LED (`crate::led`), the serial console and deep sleep (the battery peripherals:
//! esp-hal's `LowPower::sleep_deep` with the RTC timer as the only wakeup source; the wake
//! boots the chip from the start with the reset cause `CoreDeepSleep`; both watchdogs are
//! stopped first so that the RTC watchdog, which keeps counting in the RTC domain, cannot reset
//! the sleeping chip). Also the panic path: a panic resets the chip (rather than halting with
//! interrupts off, which only a watchdog would end) and leaves a mark in RTC memory so the
//! next boot can report it.
//!
//! # Reset cause mapping (ESP32-C3 / ESP32-C6 `SocResetReason`)
//!
//! | hardware reason | code | `HardwareReset` |
//! |---|---|---|
//! | `ChipPowerOn` (power-on, EN pin; on these chips also chip-level brown-out and super-WDT, which the register cannot tell apart) | 0x01 | `PowerOn` |
//! | `CoreSw` (`software_reset`), `Cpu0Sw` | 0x03, 0x0C | `Software` |
//! | `CoreMwdt0`, `Cpu0Mwdt0` (TIMG0 watchdog) | 0x07, 0x0B | `Watchdog` |
//! | `CoreMwdt1`, `Cpu0Mwdt1` (TIMG1 watchdog, the one Hearth arms) | 0x08, 0x11 | `Watchdog` |
//! | `CoreRtcWdt`, `Cpu0RtcWdt`, `SysRtcWdt` (RTC watchdog) | 0x09, 0x0D, 0x10 | `Watchdog` |
//! | `SysSuperWdt` (super watchdog) | 0x12 | `Watchdog` |
//! | `SysBrownOut` | 0x0F | `Other` |
//! | `CoreDeepSleep` (the wake from `Reset::deep_sleep`) | 0x05 | `DeepSleepWake` |
//! | USB-UART / USB-JTAG reset (e.g. after flashing), eFuse CRC, clock or power glitch, SDIO, JTAG | various | `Other` |
//! | unreadable | — | `Other` |

use alloc::string::String;
use core::ptr::addr_of_mut;

use esp_hal::peripherals::LPWR;
use esp_hal::rng::Rng;
use esp_hal::rtc_cntl::sleep::{LowPower, RtcSleepConfig};
use esp_hal::rtc_cntl::SocResetReason;
use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;
use hearth_platform::{Console, DeviceStatus, Entropy, FirmwareStore, Identity, Reset, Watchdog};

use crate::config::StoreError;
use crate::led::{self, Show};
use crate::watchdog::SharedPolicy;

/// The firmware version reported by `getversion`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Written to [`PANIC_MARK`] just before a panic resets the chip.
const PANIC_MAGIC: u32 = 0x5041_4E43; // "PANC"

/// Survives software and watchdog resets (RTC fast memory, not initialised at boot); zeroed
/// at power-on by esp-hal.
#[esp_hal::ram(unstable(rtc_fast, persistent))]
static mut PANIC_MARK: u32 = 0;

/// The reset cause, classified for the runtime (see the table in the module comment).
pub fn classify(reason: Option<SocResetReason>) -> HardwareReset {
    use SocResetReason as R;
    match reason {
        Some(R::ChipPowerOn) => HardwareReset::PowerOn,
        Some(R::CoreDeepSleep) => HardwareReset::DeepSleepWake,
        Some(R::CoreSw | R::Cpu0Sw) => HardwareReset::Software,
        Some(
            R::CoreMwdt0
            | R::Cpu0Mwdt0
            | R::CoreMwdt1
            | R::Cpu0Mwdt1
            | R::CoreRtcWdt
            | R::Cpu0RtcWdt
            | R::SysRtcWdt
            | R::SysSuperWdt,
        ) => HardwareReset::Watchdog,
        _ => HardwareReset::Other,
    }
}

/// Did the previous run end in a panic? Clears the mark.
pub fn take_panic_mark() -> bool {
    // SAFETY: single-threaded at boot; the static is a plain u32 in RTC memory.
    unsafe {
        let mark = addr_of_mut!(PANIC_MARK);
        let was = mark.read_volatile() == PANIC_MAGIC;
        mark.write_volatile(0);
        was
    }
}

/// esp-backtrace's `custom-halt` hook: called after the panic message and backtrace have been
/// printed. Mark the panic and reset instead of spinning with interrupts disabled.
#[unsafe(no_mangle)]
pub extern "Rust" fn custom_halt() -> ! {
    // SAFETY: the panic handler runs with interrupts disabled; nothing else touches the mark.
    unsafe { addr_of_mut!(PANIC_MARK).write_volatile(PANIC_MAGIC) };
    esp_hal::system::software_reset()
}

/// The ESP32-C3/C6 board.
pub struct EspBoard {
    reset: HardwareReset,
    policy: &'static SharedPolicy,
    rng: Rng,
    id: [u8; 6],
    /// The status last handed to the LED (repeats do not restart its pattern).
    shown: Option<DeviceStatus>,
    /// The sleep controller.
    low_power: LowPower<'static>,
    /// Update slots, config partition, panic mark.
    firmware: Firmware,
}

/// What the board knows of its firmware and flash.
pub struct Firmware {
    /// The update slots, when the partition table has them.
    pub slots: Option<FirmwareSlots>,
    /// The flash and the config partition, for configs pushed over MQTT.
    pub config: Option<(crate::flash::SharedFlash, crate::partitions::Region)>,
    /// The previous run ended in a panic.
    pub panicked: bool,
}

/// The chip name update manifests must carry (`hearth ota` reads it from the image header).
#[cfg(feature = "esp32c3")]
pub const CHIP_ID: &str = "esp32c3";
/// The chip name update manifests must carry (`hearth ota` reads it from the image header).
#[cfg(feature = "esp32c6")]
pub const CHIP_ID: &str = "esp32c6";

/// The update slots on the shared flash.
pub type FirmwareSlots =
    hearth_ota::Slots<embassy_embedded_hal::adapter::BlockingAsync<crate::flash::SharedFlash>>;

impl EspBoard {
    /// A board whose last reset was `reset`, sharing `policy` with the watchdog feeder.
    pub fn new(
        reset: HardwareReset,
        policy: &'static SharedPolicy,
        lpwr: LPWR<'static>,
        firmware: Firmware,
    ) -> Self {
        let mut id = [0u8; 6];
        id.copy_from_slice(esp_hal::efuse::base_mac_address().as_bytes());
        Self {
            reset,
            policy,
            rng: Rng::new(),
            id,
            shown: None,
            low_power: LowPower::new(lpwr),
            firmware,
        }
    }

    fn with_policy(&self, f: impl FnOnce(&mut hearth_core::supervisor::LoopWatchdog)) {
        self.policy.lock(|p| f(&mut p.borrow_mut()));
    }
}

impl FirmwareStore for EspBoard {
    type Slots = embassy_embedded_hal::adapter::BlockingAsync<crate::flash::SharedFlash>;
    type ConfigError = StoreError;

    fn slots(&mut self) -> Option<&mut FirmwareSlots> {
        self.firmware.slots.as_mut()
    }

    async fn store_config(&mut self, text: &str) -> Result<(), StoreError> {
        match &mut self.firmware.config {
            Some((flash, partition)) => crate::config::store(flash, partition, text),
            None => Err(StoreError::NoPartition),
        }
    }

    async fn restore_config(&mut self) -> Result<(), StoreError> {
        match &mut self.firmware.config {
            Some((flash, partition)) => crate::config::restore(flash, partition),
            None => Err(StoreError::NoPartition),
        }
    }
}

impl Identity for EspBoard {
    fn chip(&self) -> &str {
        CHIP_ID
    }

    fn image_appliances(&self) -> &'static [&'static str] {
        crate::pins::IMAGE
    }

    fn unique_id(&self) -> [u8; 6] {
        self.id
    }

    fn version(&self) -> &str {
        VERSION
    }

    fn heap(&self) -> Option<hearth_platform::HeapStats> {
        let stats = esp_alloc::HEAP.stats();
        let size = u32::try_from(stats.size).unwrap_or(u32::MAX);
        let used = u32::try_from(stats.current_usage).unwrap_or(u32::MAX);
        let most = u32::try_from(stats.max_usage).unwrap_or(u32::MAX);
        Some(hearth_platform::HeapStats {
            free: size.saturating_sub(used),
            min_free: size.saturating_sub(most.max(used)),
        })
    }
}

impl Entropy for EspBoard {
    fn seed(&mut self) -> u64 {
        // True random once the radio runs or the ADC entropy source is on (the network, which
        // starts one of them, is started before the runtime asks).
        (u64::from(self.rng.random()) << 32) | u64::from(self.rng.random())
    }
}

impl Console for EspBoard {
    fn console(&mut self, line: &str) {
        log::info!("{line}");
    }

    fn wall_clock(&mut self, unix_ms: u64) {
        crate::logger::set_wall_clock(unix_ms);
    }

    fn status(&mut self, status: DeviceStatus) {
        if self.shown != Some(status) {
            self.shown = Some(status);
            led::show(Show::Status(status));
        }
    }

    fn identify(&mut self, ms: hearth_core::Millis) -> bool {
        led::show(Show::Identify(ms));
        led::present()
    }
}

impl Reset for EspBoard {
    fn hardware_reset(&self) -> HardwareReset {
        self.reset
    }

    fn last_panic(&mut self) -> Option<alloc::string::String> {
        // esp-backtrace prints the message and backtrace on the serial console; only the fact
        // survives the reset (in RTC memory).
        self.firmware.panicked.then(|| {
            alloc::string::String::from(
                "the previous run ended in a panic (message and backtrace on the serial console)",
            )
        })
    }

    fn reset(&mut self) -> ! {
        log::info!("reset");
        esp_hal::system::software_reset()
    }

    fn deep_sleep(&mut self, ms: Millis) -> ! {
        // At least 10 ms, so that the deadline cannot be missed by the sleep transition (which
        // would be a panic in esp-hal; the runtime asks for seconds anyway).
        let ms = ms.max(MIN_SLEEP_MS);
        log::info!("deep sleep for {ms} ms");
        crate::watchdog::stop_for_deep_sleep();
        // Give the console's FIFO a moment to drain.
        esp_hal::delay::Delay::new().delay_millis(5);
        let deadline = esp_hal::time::Instant::now() + esp_hal::time::Duration::from_millis(ms);
        self.low_power.set_wakeup_deadline(deadline);
        self.low_power.sleep_deep(RtcSleepConfig::deep())
    }
}

impl Watchdog for EspBoard {
    fn heartbeat(&mut self, now: Millis) {
        self.with_policy(|p| p.heartbeat(now));
    }

    fn may_block(&mut self, now: Millis) {
        self.with_policy(|p| p.may_block(now));
    }

    fn may_block_exit(&mut self, now: Millis) {
        self.with_policy(|p| p.may_block_exit(now));
    }
}

/// The shortest deep sleep.
const MIN_SLEEP_MS: Millis = 10;

/// Format a MAC address for logs.
pub fn mac_string(id: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in id.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&alloc::format!("{b:02x}"));
    }
    s
}
