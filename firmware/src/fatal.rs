//! What the device does when it cannot start the runtime: the safe idle state for boot errors
//! (no or bad config, missing partitions, an unusable store, bad pins, the I2C bus, a network
//! the Wi-Fi driver rejects), and a slow reset for a network driver that fails to start (the
//! Wi-Fi driver, or a W5500 that does not answer).
//!
//! Both show the boot-error pattern on the status LED (three long blinks, then a pause) when
//! the LED is known, i.e. the config has been read and its `led` pin is good.
//!
//! The device logs every problem on the serial console, then idles: the network is never
//! started, nothing is retried and the device does not reset itself, so a bad config cannot
//! make it crash-loop. It keeps feeding the RTC watchdog's boot guard from this loop (if the
//! loop itself hung, the guard would reset the chip, which would boot into the same idle
//! state) and repeats the problems every [`REPEAT_S`] seconds, so a console attached later
//! still sees them. The way out is to flash a good config (`hearth flash --config FILE`) and reset.

use alloc::string::String;

use embassy_time::Timer;
use embedded_storage_async::nor_flash::NorFlash;
use hearth_core::reboot::RebootReason;
use hearth_storage::{keys, KvStore};

use crate::led::{self, Show};
use crate::watchdog::Watchdogs;

/// How often the problems are printed again.
pub const REPEAT_S: u32 = 30;

/// Log `problems` and idle forever (a boot error).
pub async fn idle(problems: &[String], dogs: &mut Watchdogs) -> ! {
    led::show(Show::Fault);
    loop {
        for line in problems {
            log::error!("{line}");
        }
        log::error!(
            "hearth: not started; idling without retrying. Fix the problem above \
             (hearth flash --config FILE) and reset the device."
        );
        for _ in 0..REPEAT_S {
            dogs.feed_boot_guard();
            Timer::after_secs(1).await;
        }
    }
}

/// A config that cannot run here: when it is a config pushed over MQTT, put the previous
/// config back (`config::restore`) and reset into it, so a push can never leave the device
/// idle without a network (the device checks a push with the same rules before accepting
/// it; this covers a firmware whose rules changed since). Otherwise, or when the previous
/// config cannot be put back, [`idle`].
pub async fn config_refused<F>(
    problems: &[String],
    flash: &mut F,
    partition: &crate::partitions::Region,
    dogs: &mut Watchdogs,
) -> !
where
    F: embedded_storage::nor_flash::NorFlash<Error = esp_storage::FlashStorageError>,
{
    if crate::config::pushed_in_force(flash, partition) {
        for line in problems {
            log::error!("{line}");
        }
        match crate::config::restore(flash, partition) {
            Ok(()) => {
                log::warn!(
                    "config: the config pushed over MQTT cannot run here: the previous config \
                     is back; resetting into it"
                );
                esp_hal::system::software_reset()
            }
            Err(e) => log::error!("config: cannot put the previous config back: {e}"),
        }
    }
    idle(problems, dogs).await
}

/// How long a device whose driver failed to start waits before resetting.
pub const RESET_AFTER_S: u32 = 60;

/// A failure that is not the config's fault and may be transient (the Wi-Fi driver did not
/// start, the W5500 did not answer): log it, wait [`RESET_AFTER_S`] seconds feeding the boot
/// guard, record the reason and reset. A persistent failure thus resets once a minute, never
/// in a tight loop.
pub async fn reset_later<F: NorFlash>(
    problem: &str,
    dogs: &mut Watchdogs,
    store: &mut KvStore<F>,
) -> ! {
    led::show(Show::Fault);
    log::error!("{problem}");
    log::error!("hearth: resetting in {RESET_AFTER_S} s");
    for _ in 0..RESET_AFTER_S {
        dogs.feed_boot_guard();
        Timer::after_secs(1).await;
    }
    let reason = RebootReason::Fault.as_str();
    if let Err(e) = store
        .set_bytes(keys::REBOOT_REASON, reason.as_bytes())
        .await
    {
        log::error!("storage: could not record the reboot reason: {e}");
    }
    esp_hal::system::software_reset()
}
