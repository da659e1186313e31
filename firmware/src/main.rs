//! Hearth firmware for ESP32-C3 and ESP32-C6: the boot sequence that brings up the chip's
//! implementations of the platform traits and hands them to `hearth_device::run`, the same
//! runtime the simulator runs.
//!
//! Boot order (each step that can fail on config, flash or network ends in `fatal`, never in a
//! panic):
//!
//! 1. esp-hal at 80 MHz (as the reference), the heap, the console logger; the reset cause and
//!    the panic mark are read; the RTC watchdog's boot guard starts; esp-rtos starts (it owns
//!    TIMG0 and provides the executor and the embassy time driver).
//! 2. Flash: the partition table, then `config.txt` from the `config` partition, validated
//!    (`config`). `watchdog 0` turns the boot guard off here.
//! 3. The wiring (`pins`): LED, I2C and, on a wired network, the W5500's pins, checked against
//!    the chip. A good `led` pin starts the status LED task (`led`) even when another pin is
//!    bad, so the boot error can blink.
//! 4. The key-value store on the `hearth` partition (`KvStore::open` over esp-storage through
//!    `BlockingAsync`; `FlashStorage` is a singleton, so it moves into the store only after
//!    the partition work).
//! 5. I2C and the weather profile (`sensors`).
//! 6. The network (`net`): Wi-Fi, or the W5500 on SPI2 for `ssid (wired)`/`(wired2)`, under
//!    embassy-net; their tasks are spawned, association or DHCP waits for the runtime's `up()`.
//! 7. The loop-liveness policy, the watchdog feeder task (`watchdog`), the board (`board`),
//!    then `hearth_device::run`, which never returns.
//!
//! Modules: `board` (Board: reset cause, reset, watchdog policy, RNG, MAC, status, console,
//! panic reset), `config` (the config partition's format and loading), `fatal` (the safe idle
//! state and the slow reset), `led` (the status LED task), `net` (Network: embassy-net over a
//! Wi-Fi station or a W5500), `partitions` (the flash layout), `pins` (the board's wiring),
//! `sensors` (I2C and the weather profile), `watchdog` (TIMG1/RTC watchdogs and their feeder).

#![no_std]
#![no_main]

extern crate alloc;

mod board;
mod config;
mod fatal;
mod led;
mod net;
mod partitions;
mod pins;
mod sensors;
mod watchdog;

#[cfg(all(feature = "esp32c3", feature = "esp32c6"))]
compile_error!("choose one chip: --no-default-features --features esp32c6 for the ESP32-C6");
#[cfg(not(any(feature = "esp32c3", feature = "esp32c6")))]
compile_error!("choose a chip feature: esp32c3 or esp32c6");

use alloc::format;
use alloc::string::String;
use core::cell::RefCell;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::Mutex;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::AnyPin;
use esp_hal::timer::timg::TimerGroup;
use esp_storage::FlashStorage;
use hearth_core::reboot::{HardwareReset, RebootReason};
use hearth_core::supervisor::LoopWatchdog;
use hearth_core::SECOND;
use hearth_storage::{keys, KvStore};
use static_cell::StaticCell;

use crate::board::EspBoard;
use crate::config::Uplink;
use crate::watchdog::{SharedPolicy, Watchdogs};

esp_bootloader_esp_idf::esp_app_desc!();

/// The chip this image is built for.
#[cfg(feature = "esp32c3")]
const CHIP: &str = "ESP32-C3";
/// The chip this image is built for.
#[cfg(feature = "esp32c6")]
const CHIP: &str = "ESP32-C6";

/// Heap in the RAM the ESP-IDF bootloader used (free once the app runs).
const HEAP_RECLAIMED: usize = 64 * 1024;
/// Heap in ordinary RAM. Wi-Fi takes most of the heap; the runtime and rust-mqtt use the rest.
const HEAP_MAIN: usize = 64 * 1024;

/// The CPU clock, chosen at build time as ESP-IDF does (`CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ`): the
/// clock is set in `esp_hal::init`, before the config partition can be read. 80 MHz (the
/// reference's choice for every appliance) unless built with the `cpu-160mhz` feature.
#[cfg(not(feature = "cpu-160mhz"))]
const CPU_CLOCK: CpuClock = CpuClock::_80MHz;
/// The CPU clock, chosen at build time (see above): 160 MHz.
#[cfg(feature = "cpu-160mhz")]
const CPU_CLOCK: CpuClock = CpuClock::_160MHz;

static POLICY: StaticCell<SharedPolicy> = StaticCell::new();

fn now_ms() -> u64 {
    embassy_time::Instant::now().as_millis()
}

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    esp_println::logger::init_logger_from_env();
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CPU_CLOCK));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: HEAP_RECLAIMED);
    esp_alloc::heap_allocator!(size: HEAP_MAIN);
    let reset_reason = esp_hal::system::reset_reason();
    let hardware_reset = board::classify(reset_reason);
    let panicked = board::take_panic_mark();
    let mut dogs = Watchdogs::start(p.TIMG1, p.RTC_TIMER);
    esp_rtos::start(TimerGroup::new(p.TIMG0).timer0, p.FROM_CPU_INTR0);

    log::info!(
        "hearth {} on {CHIP}: reset cause {reset_reason:?} ({hardware_reset:?})",
        board::VERSION
    );
    if panicked {
        log::warn!("the previous run ended in a panic (see its console output)");
    }

    // Flash: partitions and config first, while the flash is still ours alone.
    let mut flash = FlashStorage::new(p.FLASH);
    let layout = match partitions::find(&mut flash) {
        Ok(layout) => layout,
        Err(problem) => fatal::idle(&[problem], &mut dogs).await,
    };
    log::info!("store {}, config {}", layout.store, layout.config);
    let loaded = match config::load(&mut flash, &layout.config) {
        Ok(loaded) => loaded,
        Err(problems) => fatal::idle(&problems, &mut dogs).await,
    };
    let timings = loaded.config.timings;
    log::info!(
        "config: profile {}, device {}, broker {}:{}",
        loaded.config.profile,
        loaded.settings.name,
        loaded.settings.broker_host,
        loaded.settings.broker_port
    );
    if timings.watchdog_s.is_none() {
        dogs.disable();
        log::warn!("watchdog: disabled by the config (`watchdog 0`)");
    }

    // The wiring, and the status LED as soon as its pin is known to be good.
    let wiring = match pins::resolve(&loaded.config, loaded.uplink.is_wired()) {
        Ok(wiring) => {
            if let Some(pin) = wiring.led {
                led::start(spawner, pin);
            }
            wiring
        }
        Err(rejected) => {
            if let Some(pin) = rejected.led {
                led::start(spawner, pin);
            }
            fatal::idle(&rejected.problems, &mut dogs).await
        }
    };

    // The key-value store.
    let mut store = match KvStore::open(BlockingAsync::new(flash), layout.store.range()).await {
        Ok(store) => store,
        Err(e) => {
            let problem = format!("storage: cannot open the store in {}: {e}", layout.store);
            fatal::idle(&[problem], &mut dogs).await
        }
    };
    let report = store.report();
    if report.is_formatted() {
        log::warn!("storage: {report}");
    } else {
        log::info!("storage: {report}");
    }
    if panicked && hardware_reset == HardwareReset::Software {
        // The runtime reports the stored reason of a software reset.
        let reason = RebootReason::Fault.as_str();
        if let Err(e) = store
            .set_bytes(keys::REBOOT_REASON, reason.as_bytes())
            .await
        {
            log::error!("storage: could not record the panic as the reboot reason: {e}");
        }
    }

    // The sensors' bus (before the network, so that every boot error idles with it off).
    let (sda_pin, scl_pin) = wiring.i2c;
    // SAFETY: `pins::resolve` checked that both GPIOs exist on this chip, are not the flash or
    // USB pins, and differ from each other and from every other pin this firmware takes.
    let (sda, scl) = unsafe { (AnyPin::steal(sda_pin), AnyPin::steal(scl_pin)) };
    let bus = match sensors::open_bus(p.I2C0, sda, scl) {
        Ok(bus) => bus,
        Err(e) => fatal::idle(&[format!("i2c: cannot configure I2C0: {e:?}")], &mut dogs).await,
    };
    log::info!(
        "i2c: I2C0 at {} kHz, SDA GPIO{sda_pin}, SCL GPIO{scl_pin}",
        sensors::BUS_KHZ
    );

    // The network: Wi-Fi, or the W5500 (which never starts the radio).
    let started = match (&loaded.uplink, wiring.ethernet) {
        (Uplink::Wifi(credentials), _) => net::start_wifi(spawner, p.WIFI, credentials),
        (Uplink::Ethernet, Some(eth)) => {
            net::start_ethernet(spawner, p.SPI2, p.RNG, p.ADC1, &eth).await
        }
        // Cannot happen: `pins::resolve` returns the W5500's pins for every wired config.
        (Uplink::Ethernet, None) => Err(net::StartError {
            message: String::from("ethernet: the W5500 pins were not resolved"),
            config: true,
        }),
    };
    let mut net = match started {
        Ok(net) => net,
        Err(e) if e.config => fatal::idle(&[e.message], &mut dogs).await,
        Err(e) => fatal::reset_later(&e.message, &mut dogs, &mut store).await,
    };

    let mut profile = sensors::weather(&bus, now_ms());

    // The watchdog policy, its feeder and the board.
    let policy: &'static SharedPolicy = POLICY.init(Mutex::new(RefCell::new(LoopWatchdog::new(
        now_ms(),
        watchdog::FEED_WINDOW,
        u64::from(timings.may_block_s) * SECOND,
    ))));
    if let Some(timeout_s) = timings.watchdog_s {
        let plan = watchdog::Plan {
            arm_at: u64::from(timings.watchdog_grace_s) * SECOND,
            timeout_s,
        };
        log::info!(
            "watchdog: {timeout_s} s, armed {} s after boot",
            timings.watchdog_grace_s
        );
        spawner.spawn(
            watchdog::feeder(dogs, policy, plan).expect("the watchdog feeder is spawned once"),
        );
    }
    let mut board = EspBoard::new(hardware_reset, policy);
    log::info!(
        "device {} (MAC {}), heap free {} bytes",
        loaded.settings.name,
        board::mac_string(&hearth_device::Board::unique_id(&board)),
        esp_alloc::HEAP.free()
    );

    let store = hearth_device::store::shared(store);
    hearth_device::run(loaded.settings, &mut net, &mut board, &store, &mut profile).await
}
