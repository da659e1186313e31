//! The status LED: one GPIO (`led`, lit high, or lit low with `ledinvert 1`) blinked by a task
//! according to the device's status.
//!
//! | shown | pattern | period |
//! |---|---|---|
//! | `Booting` (from the config read until the runtime looks for the network) | solid on | — |
//! | `NoNetwork` (no link or no DHCP address yet, retrying) | fast blink: 100 ms on, 100 ms off | 200 ms |
//! | `NoBroker` (link up, no MQTT session) | double blink: 100 on, 150 off, 100 on, 650 off | 1 s |
//! | `Online` (MQTT session up) | one 50 ms flash | 5 s |
//! | boot error (`fatal`) | three long blinks (600 on, 300 off), then 2 s off | 4.4 s |
//! | identify (`cmnd/<name>/OTA identify`, Home Assistant's button), for 10 s | 250 ms on, 250 ms off | 500 ms |
//!
//! Without a `led` key there is no LED and nothing is blinked. A boot error before the config
//! has been read (or one about the LED's own pin) cannot be shown.
//!
//! The runtime's `Console::status` and the boot-error path hand the wanted pattern to the task
//! through an embassy-sync `Signal` (critical-section mutex; no atomic read-modify-write is
//! needed, which riscv32imc lacks); the task restarts its pattern when a new one arrives. When
//! no task runs (no LED) the signal just holds the last value.

use core::sync::atomic::{AtomicBool, Ordering};
use embassy_executor::Spawner;

use embassy_futures::select::{select3, Either3};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Timer};
use esp_hal::gpio::{AnyPin, Level, Output, OutputConfig};
use hearth_platform::DeviceStatus;

use crate::pins;

/// What the LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// The runtime's status.
    Status(DeviceStatus),
    /// A boot error: the device idles (or resets later).
    Fault,
    /// Someone asked the device to show itself: a fast even blink for this many ms, then the
    /// status again.
    Identify(u64),
}

static WISH: Signal<CriticalSectionRawMutex, Show> = Signal::new();

/// Show `show` from now on (does nothing visible without a LED).
pub fn show(show: Show) {
    WISH.signal(show);
}

/// One step of a pattern: lit or not, for so many milliseconds.
type Step = (bool, u64);

/// The pattern for `show`, repeated forever (see the table in the module comment).
fn pattern(show: Show) -> &'static [Step] {
    match show {
        Show::Status(DeviceStatus::Booting) => &[(true, 1_000)],
        Show::Status(DeviceStatus::NoNetwork) => &[(true, 100), (false, 100)],
        Show::Status(DeviceStatus::NoBroker) => {
            &[(true, 100), (false, 150), (true, 100), (false, 650)]
        }
        Show::Status(DeviceStatus::Online) => &[(true, 50), (false, 4_950)],
        Show::Identify(_) => &[(true, 250), (false, 250)],
        Show::Fault => &[
            (true, 600),
            (false, 300),
            (true, 600),
            (false, 300),
            (true, 600),
            (false, 2_000),
        ],
    }
}

/// The LED pin and its polarity.
struct Led {
    pin: Output<'static>,
    inverted: bool,
}

impl Led {
    fn level(lit: bool, inverted: bool) -> Level {
        if lit != inverted {
            Level::High
        } else {
            Level::Low
        }
    }

    fn set(&mut self, lit: bool) {
        self.pin.set_level(Self::level(lit, self.inverted));
    }
}

/// Light the LED (booting) and start the task that blinks it.
pub fn start(spawner: Spawner, led: pins::Led) {
    // SAFETY: `pins::check` checked that the GPIO exists on this chip, is not a flash or USB
    // pin, and is used by nothing else in this firmware, so this is its only owner.
    let pin = unsafe { AnyPin::steal(led.pin) };
    let output = Output::new(pin, Led::level(true, led.inverted), OutputConfig::default());
    log::info!(
        "led: GPIO{}{}",
        led.pin,
        if led.inverted { ", lit when low" } else { "" }
    );
    PRESENT.store(true, Ordering::Relaxed);
    spawner.spawn(
        blink(Led {
            pin: output,
            inverted: led.inverted,
        })
        .expect("the LED task is spawned once"),
    );
}

/// Is there a LED (and a task blinking it)? Only set by [`start`]; read by `identify`.
static PRESENT: AtomicBool = AtomicBool::new(false);

/// Does this device have a status LED?
pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

#[embassy_executor::task]
async fn blink(mut led: Led) -> ! {
    let mut status = Show::Status(DeviceStatus::Booting);
    // While identifying: until when. A status arriving meanwhile is shown afterwards.
    let mut identify: Option<Instant> = None;
    loop {
        let shown = match identify {
            Some(_) => Show::Identify(0),
            None => status,
        };
        let over = async {
            match identify {
                Some(at) => Timer::at(at).await,
                None => core::future::pending::<()>().await,
            }
        };
        match select3(play(&mut led, pattern(shown)), WISH.wait(), over).await {
            Either3::First(never) => match never {},
            Either3::Second(Show::Identify(ms)) => {
                identify = Some(Instant::now() + Duration::from_millis(ms));
            }
            Either3::Second(next) => status = next,
            Either3::Third(()) => identify = None,
        }
    }
}

/// Play `steps` over and over.
async fn play(led: &mut Led, steps: &[Step]) -> ! {
    loop {
        for &(lit, ms) in steps {
            led.set(lit);
            Timer::after_millis(ms).await;
        }
    }
}
