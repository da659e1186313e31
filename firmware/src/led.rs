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
//!
//! Without a `led` key there is no LED and nothing is blinked. A boot error before the config
//! has been read (or one about the LED's own pin) cannot be shown.
//!
//! The runtime's `Console::status` and the boot-error path hand the wanted pattern to the task
//! through an embassy-sync `Signal` (critical-section mutex; no atomic read-modify-write is
//! needed, which riscv32imc lacks); the task restarts its pattern when a new one arrives. When
//! no task runs (no LED) the signal just holds the last value.

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::Timer;
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
    spawner.spawn(
        blink(Led {
            pin: output,
            inverted: led.inverted,
        })
        .expect("the LED task is spawned once"),
    );
}

#[embassy_executor::task]
async fn blink(mut led: Led) -> ! {
    let mut shown = Show::Status(DeviceStatus::Booting);
    loop {
        match select(play(&mut led, pattern(shown)), WISH.wait()).await {
            Either::First(never) => match never {},
            Either::Second(next) => shown = next,
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
