//! The 433 MHz receiver's pulses from the RMT peripheral in receive mode (no busy polling).
//!
//! A task ([`capture`]) keeps RMT channel 2 receiving into a buffer of [`CODES`] pulse codes at
//! 1 µs per tick (RMT clock 1 MHz, channel divider 1); esp-hal's async receive empties the
//! channel RAM (2 blocks, wrap mode) on the half-full interrupt. A reception ends when the
//! line has had no edge for [`IDLE_US`] (the RMT idle threshold, its 15-bit maximum) or when
//! the buffer is full. Each level of the finished reception is pushed into a bounded queue
//! ([`QUEUE`] entries) that [`Rx433Source`] (the `PulseSource`) hands out; the appliance drains
//! it every 20 ms.
//!
//! Time stays contiguous as `hearth_drivers::ook` requires: the idle level that ended a
//! reception (the end marker's level) is reported, when the next reception arrives, with the
//! time between the two estimated from the embassy clock (reception end − recorded durations),
//! and at least [`IDLE_US`]. The decoder does not check the length of levels over 20 ms, so the
//! estimate's error (the task's wake-up latency) only moves the press-merging clock by that
//! much. A reception that fills the buffer (a receiver that outputs noise while no keyfob
//! sends), a hardware error, or a full queue loses pulses: the levels read are delivered, then
//! an error, and the decoder drops its frame in progress.

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use esp_hal::gpio::AnyPin;
use esp_hal::peripherals::RMT;
use esp_hal::rmt::{PulseCode, Rmt, RxChannelConfig, RxChannelCreator};
use esp_hal::time::Rate;
use esp_hal::Async;
use hearth_drivers::ook::{Pulse, PulseSource};

/// Pulse codes (two levels each) per reception.
pub const CODES: usize = 256;
/// The RMT idle threshold in µs (ticks): a reception ends after this long without an edge.
pub const IDLE_US: u16 = 32_767;
/// Levels the queue holds between the capture task and the appliance.
pub const QUEUE: usize = 1024;

/// Pulses were lost (full buffer or queue, or an RMT error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

type Queue = Channel<CriticalSectionRawMutex, Result<Pulse, Lost>, QUEUE>;

/// The receiver's pulses, for `Rx433`.
pub struct Rx433Source {
    queue: &'static Queue,
}

impl PulseSource for Rx433Source {
    type Error = Lost;

    async fn next_pulse(&mut self) -> Result<Pulse, Lost> {
        self.queue.receive().await
    }

    fn try_pulse(&mut self) -> Result<Option<Pulse>, Lost> {
        match self.queue.try_receive() {
            Ok(item) => item.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// Start the RMT on `pin` and the capture task.
pub fn start(
    spawner: embassy_executor::Spawner,
    rmt: RMT<'static>,
    pin: AnyPin<'static>,
) -> Result<Rx433Source, alloc::string::String> {
    use alloc::format;
    let rmt = Rmt::new(rmt, Rate::from_mhz(1))
        .map_err(|e| format!("rx433: cannot clock the RMT at 1 MHz: {e:?}"))?
        .into_async();
    let config = RxChannelConfig::default()
        .with_clk_divider(1)
        .with_idle_threshold(IDLE_US)
        .with_memsize(2);
    let channel = rmt
        .channel2
        .configure_rx(&config)
        .map_err(|e| format!("rx433: cannot configure RMT channel 2: {e:?}"))?
        .with_pin(pin);
    // The queue (8 KB) is taken from the heap, not static RAM, so only an rx433 device pays
    // for it; it lives as long as the device runs.
    let queue: &'static Queue = alloc::boxed::Box::leak(alloc::boxed::Box::new(Channel::new()));
    let task = capture(channel, queue)
        .map_err(|_| alloc::string::String::from("rx433: the capture task is already running"))?;
    spawner.spawn(task);
    Ok(Rx433Source { queue })
}

/// The queue's producer side: drops pulses (and remembers it) while the queue is full.
struct Feed {
    lost: bool,
    queue: &'static Queue,
}

impl Feed {
    fn push(&mut self, pulse: Pulse) {
        if self.lost {
            if self.queue.try_send(Err(Lost)).is_err() {
                return;
            }
            self.lost = false;
        }
        if self.queue.try_send(Ok(pulse)).is_err() {
            self.lost = true;
        }
    }

    fn lose(&mut self) {
        if self.queue.try_send(Err(Lost)).is_err() {
            self.lost = true;
        }
    }
}

fn now_us() -> u64 {
    embassy_time::Instant::now().as_micros()
}

#[embassy_executor::task]
async fn capture(
    mut channel: esp_hal::rmt::Channel<'static, Async, esp_hal::rmt::Rx>,
    queue: &'static Queue,
) {
    let mut codes = [PulseCode::default(); CODES];
    let mut feed = Feed { lost: false, queue };
    // The idle level that ended the last reception and when it began (µs).
    let mut idle: Option<(bool, u64)> = None;
    loop {
        codes.iter_mut().for_each(PulseCode::reset);
        let result = channel.receive(&mut codes).await;
        let done = now_us();
        // The recorded levels end at the first zero length (the end marker, or the part of the
        // buffer not reached).
        let mut recorded: u64 = 0;
        let mut end_level = None;
        'scan: for code in &codes {
            for (level, len) in [
                (code.level1(), code.length1()),
                (code.level2(), code.length2()),
            ] {
                if len == 0 {
                    end_level = Some(bool::from(level));
                    break 'scan;
                }
                recorded += u64::from(len);
            }
        }
        let ended = match result {
            Ok(_) => done.saturating_sub(u64::from(IDLE_US)),
            Err(_) => done,
        };
        let first_edge = ended.saturating_sub(recorded);
        if let Some((level, since)) = idle.take() {
            let us = first_edge
                .saturating_sub(since)
                .max(u64::from(IDLE_US))
                .min(u64::from(u32::MAX));
            feed.push(Pulse {
                high: level,
                us: us as u32,
            });
        }
        'emit: for code in &codes {
            for (level, len) in [
                (code.level1(), code.length1()),
                (code.level2(), code.length2()),
            ] {
                if len == 0 {
                    break 'emit;
                }
                feed.push(Pulse {
                    high: bool::from(level),
                    us: u32::from(len),
                });
            }
        }
        match result {
            Ok(_) => idle = Some((end_level.unwrap_or(false), ended)),
            Err(e) => {
                log::debug!("rx433: RMT reception ended early ({e:?}): pulses lost");
                feed.lose();
            }
        }
    }
}
