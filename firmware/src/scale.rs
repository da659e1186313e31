//! The `scale_sensor` profile's hardware: an HX711 load-cell ADC on two GPIOs (`hx711sck`,
//! `hx711dout`, or the chip's defaults; resolved and checked in [`crate::pins`]), driven by
//! `hearth_drivers::hx711`.
//!
//! - `PD_SCK`: a push-pull output, low at start (the chip powered up; the driver resets it with
//!   a power-down pulse before its first read anyway).
//! - `DOUT`: an input with the internal pull-up, so an absent or unpowered HX711 reads "not
//!   ready" (high) and the scale reports it as absent instead of reading garbage.
//! - The delay ([`HxDelay`]): the driver's clock pulses are 1 µs waits, and `PD_SCK` held high
//!   for 60 µs powers the chip down in the middle of a read. Waits under a millisecond
//!   therefore busy-wait (esp-hal's `Delay`, no yield); waits of a millisecond or more (the
//!   10 ms ready polls, the settling time) await an embassy timer so the radio and the rest of
//!   the loop keep running. A read takes about 27 × 2 µs of busy-waiting.

use embedded_hal_async::delay::DelayNs;
use esp_hal::gpio::{AnyPin, Input, InputConfig, Level, Output, OutputConfig, Pull};
use hearth_drivers::hx711::Hx711;

/// The HX711 on this board.
pub type Scale = Hx711<Output<'static>, Input<'static>, HxDelay>;

/// Busy-waits below 1 ms, awaits a timer from 1 ms up (see the module comment). Also the
/// switch appliance's shift-register clock delay (1 µs pulses).
pub struct HxDelay(esp_hal::delay::Delay);

impl HxDelay {
    /// The delay.
    pub fn new() -> Self {
        HxDelay(esp_hal::delay::Delay::new())
    }
}

impl Default for HxDelay {
    fn default() -> Self {
        Self::new()
    }
}

impl DelayNs for HxDelay {
    async fn delay_ns(&mut self, ns: u32) {
        if ns < 1_000_000 {
            self.0.delay_nanos(ns);
        } else {
            embassy_time::Timer::after_micros(u64::from(ns / 1000)).await;
        }
    }

    async fn delay_us(&mut self, us: u32) {
        if us < 1000 {
            self.0.delay_micros(us);
        } else {
            embassy_time::Timer::after_micros(u64::from(us)).await;
        }
    }

    async fn delay_ms(&mut self, ms: u32) {
        embassy_time::Timer::after_millis(u64::from(ms)).await;
    }
}

/// The HX711 on `sck`/`dout` (GPIO numbers checked by `pins::check`).
pub fn hx711(sck: u8, dout: u8) -> Scale {
    // SAFETY: `pins::check` checked that both GPIOs exist on this chip, are not the flash or
    // USB pins, and differ from each other and from every other pin this firmware takes.
    let (sck, dout) = unsafe { (AnyPin::steal(sck), AnyPin::steal(dout)) };
    let sck = Output::new(sck, Level::Low, OutputConfig::default());
    let dout = Input::new(dout, InputConfig::default().with_pull(Pull::Up));
    Hx711::new(sck, dout, HxDelay::new())
}
