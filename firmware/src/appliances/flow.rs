//! The h2o flow meter as a `hearth_drivers::pulses::PulseCounter`, counting rising edges of
//! its pulse output (input with the internal pull-up, for the usual open-collector Hall
//! sensors).
//!
//! - **ESP32-C6**: PCNT unit 0, channel 0: rising edges count up, falling edges are ignored;
//!   the hardware glitch filter is set to `pulses::pcnt_filter(ns)` APB cycles (at most 1023,
//!   12.8 µs). The counter is 16 bits: `take` reads and clears it (an edge between the read and
//!   the clear is lost; the appliance reads every second, so at most one edge per read), and a
//!   count that reached the high limit (32767) saturates instead of wrapping.
//! - **ESP32-C3** (no PCNT): a GPIO rising-edge interrupt counts into an atomic. The glitch
//!   filter keeps `pcnt_filter` semantics as far as an edge interrupt can: the same clamped
//!   threshold (at most 12.787 µs) is applied as a dead time, so a rising edge less than the
//!   threshold after the previous counted one (contact bounce, a spike) is not counted; the
//!   timestamps come from the systimer (`esp_hal::time::Instant`, 1 µs). The interrupt
//!   handler shares the GPIO interrupt with esp-hal's async GPIO (which still runs after it).

use hearth_drivers::pulses::{pcnt_filter, FilterSetting, PulseCounter};

#[cfg(feature = "esp32c3")]
pub use c3::FlowCounter;
#[cfg(feature = "esp32c6")]
pub use c6::FlowCounter;

/// How this chip counts (for the boot log).
#[cfg(feature = "esp32c6")]
pub const HOW: &str = "PCNT unit 0";
/// How this chip counts (for the boot log).
#[cfg(feature = "esp32c3")]
pub const HOW: &str = "GPIO edge interrupt";

#[cfg(feature = "esp32c6")]
mod c6 {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use esp_hal::gpio::{AnyPin, Input, InputConfig, Pull};
    use esp_hal::pcnt::channel::EdgeMode;
    use esp_hal::pcnt::unit::Unit;
    use esp_hal::pcnt::Pcnt;
    use esp_hal::peripherals::PCNT;

    /// PCNT unit 0 counting the meter's rising edges.
    pub struct FlowCounter {
        unit: Unit<'static, 0>,
        _input: Input<'static>,
    }

    impl FlowCounter {
        /// Count on `pin`.
        pub fn new(pcnt: PCNT<'static>, pin: AnyPin<'static>) -> Result<Self, String> {
            let input = Input::new(pin, InputConfig::default().with_pull(Pull::Up));
            let pcnt = Pcnt::new(pcnt);
            let unit = pcnt.unit0;
            unit.set_high_limit(Some(i16::MAX))
                .map_err(|e| format!("h2o: PCNT high limit refused: {e:?}"))?;
            unit.clear();
            let channel = &unit.channel0;
            channel.set_edge_signal(input.peripheral_input());
            channel.set_input_mode(EdgeMode::Hold, EdgeMode::Increment);
            unit.resume();
            Ok(FlowCounter {
                unit,
                _input: input,
            })
        }
    }

    impl PulseCounter for FlowCounter {
        type Error = core::convert::Infallible;

        fn take(&mut self) -> Result<u32, Self::Error> {
            let saturated = self.unit.events().high_limit;
            let value = self.unit.value();
            self.unit.clear();
            if saturated {
                return Ok(i16::MAX as u32);
            }
            Ok(u32::try_from(value).unwrap_or(0))
        }

        fn set_glitch_filter_ns(&mut self, ns: u32) -> FilterSetting {
            let setting = pcnt_filter(ns);
            let cycles = (setting.cycles > 0).then_some(setting.cycles);
            if let Err(e) = self.unit.set_filter(cycles) {
                log::warn!(
                    "h2o: PCNT filter of {} cycles refused: {e:?}",
                    setting.cycles
                );
            }
            setting
        }
    }
}

#[cfg(feature = "esp32c3")]
mod c3 {
    use super::*;
    use core::cell::RefCell;
    use core::sync::atomic::{AtomicU32, Ordering};
    use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    use embassy_sync::blocking_mutex::Mutex;
    use esp_hal::gpio::{AnyPin, Event, Input, InputConfig, Io, Pull};
    use esp_hal::handler;
    use esp_hal::peripherals::IO_MUX;

    /// Counted edges since the last `take`.
    static COUNT: AtomicU32 = AtomicU32::new(0);
    /// The dead time after a counted edge, µs (from the filter setting; 0 = none).
    static DEAD_US: AtomicU32 = AtomicU32::new(0);
    /// When the last edge was counted (low 32 bits of the systimer's µs).
    static LAST_US: AtomicU32 = AtomicU32::new(0);
    /// The meter's input, for the interrupt handler.
    static INPUT: Mutex<CriticalSectionRawMutex, RefCell<Option<Input<'static>>>> =
        Mutex::new(RefCell::new(None));

    fn now_us() -> u32 {
        // Wraps every 71 minutes; only differences below the dead time matter.
        esp_hal::time::Instant::now()
            .duration_since_epoch()
            .as_micros() as u32
    }

    #[handler]
    fn on_edge() {
        INPUT.lock(|cell| {
            let mut input = cell.borrow_mut();
            let Some(input) = input.as_mut() else {
                return;
            };
            if !input.is_interrupt_set() {
                return;
            }
            input.clear_interrupt();
            let now = now_us();
            let dead = DEAD_US.load(Ordering::Relaxed);
            if dead == 0 || now.wrapping_sub(LAST_US.load(Ordering::Relaxed)) >= dead {
                LAST_US.store(now, Ordering::Relaxed);
                // Inside the critical section (the C3 has no atomic read-modify-write).
                let count = COUNT.load(Ordering::Relaxed);
                COUNT.store(count.saturating_add(1), Ordering::Relaxed);
            }
        });
    }

    /// Rising edges counted by the GPIO interrupt.
    pub struct FlowCounter {
        _io: Io<'static>,
    }

    impl FlowCounter {
        /// Count on `pin`.
        pub fn new(io_mux: IO_MUX<'static>, pin: AnyPin<'static>) -> Self {
            let mut io = Io::new(io_mux);
            io.set_interrupt_handler(on_edge);
            let mut input = Input::new(pin, InputConfig::default().with_pull(Pull::Up));
            INPUT.lock(|cell| {
                input.listen(Event::RisingEdge);
                cell.replace(Some(input));
            });
            FlowCounter { _io: io }
        }
    }

    impl PulseCounter for FlowCounter {
        type Error = core::convert::Infallible;

        fn take(&mut self) -> Result<u32, Self::Error> {
            Ok(INPUT.lock(|_| {
                let count = COUNT.load(Ordering::Relaxed);
                COUNT.store(0, Ordering::Relaxed);
                count
            }))
        }

        fn set_glitch_filter_ns(&mut self, ns: u32) -> FilterSetting {
            let setting = pcnt_filter(ns);
            DEAD_US.store(setting.applied_ns.div_ceil(1000), Ordering::Relaxed);
            setting
        }
    }
}
