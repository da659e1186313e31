//! Hearth firmware for ESP32-C3 and ESP32-C6: the boot sequence that brings up the chip's
//! implementations of the platform traits and hands them to `hearth_runtime::run`, the same
//! runtime the simulator runs.
//!
//! Boot order (each step that can fail on config, flash or network ends in `fatal`, never in a
//! panic):
//!
//! 1. esp-hal at 80 MHz (as the reference), the heap, the console logger; the reset cause and
//!    the panic mark are read; the RTC watchdog's boot guard starts; esp-rtos starts (it owns
//!    TIMG0 and provides the executor and the embassy time driver).
//! 2. Flash: the partition table, then `config.txt` from the `config` partition, validated and
//!    planned (`config`: `hearth_device::profiles::plan`, as in the simulator). `watchdog 0`
//!    turns the boot guard off here.
//! 3. Every rule of the chip (`pins::check`, i.e. `hearth_device::chips`, the rules `hearth
//!    flash` and a pushed config are checked with too): the profile and appliance are in this
//!    image, the broker is IPv4, and the wiring (LED, I2C, the HX711, the W5500, the
//!    appliance's pins) exists on the chip, avoids its reserved pins and is used once. A good
//!    `led` pin starts the status LED task (`led`) even when another pin is bad, so the boot
//!    error can blink.
//! 4. The key-value store on the `hearth` partition (`KvStore::open` over esp-storage through
//!    `BlockingAsync`; `FlashStorage` is a singleton, so it moves into the store only after
//!    the partition work).
//! 5. By the plan:
//!    - MQTT profiles: I2C and the weather sensors (`sensors`, `weather` only); the network
//!      (`net`): Wi-Fi, or the W5500 on SPI2 for `ssid (wired)`/`(wired2)`, under embassy-net
//!      (association or DHCP waits for the runtime's `up()`); for `scale_manager`/`tnowc` also
//!      ESP-NOW (`net::espnow`: on the Wi-Fi station, or the radio started for ESP-NOW alone
//!      beside the W5500).
//!    - Battery peripherals (`scale_sensor`, `tnowp`): the HX711 (`scale`) for the scale and the
//!      radio for ESP-NOW alone; no network stack.
//! 6. The loop-liveness policy, the watchdog feeder task (`watchdog`), the board (`board`),
//!    then `hearth_runtime::run` (joined with `link::run_central` for a central) or
//!    `link::run_peripheral`, which never return.
//!
//! Mains appliances (`relay`, `energy`, `rx433`, `h2o`, `switch`, `termo`): their pins are
//! checked in step 3 with the others; `appliances` builds their hardware right after the pin check
//! (relay outputs at their off level before the store is opened) and runs their profile.
//!
//! Modules: `appliances` (the mains appliances' wiring), `board` (Board: reset cause, reset, watchdog policy, RNG, MAC, status, console,
//! panic reset, deep sleep), `config` (the config partition's format, loading and plan),
//! `fatal` (the safe idle state and the slow reset), `led` (the status LED task), `net`
//! (Network: embassy-net over a Wi-Fi station or a W5500; `net::espnow`, the ESP-NOW Radio),
//! `partitions` (the flash layout), `pins` (the board's wiring), `scale` (the HX711),
//! `sensors` (I2C and the weather profile), `watchdog` (TIMG1/RTC watchdogs and their feeder).

#![no_std]
#![no_main]

extern crate alloc;

mod appliances;
mod board;
mod config;
mod fatal;
mod flash;
mod improv;
mod led;
mod logger;
mod net;
mod partitions;
mod pins;
mod scale;
mod sensors;
mod watchdog;

#[cfg(all(feature = "esp32c3", feature = "esp32c6"))]
compile_error!("choose one chip: --no-default-features --features esp32c6 for the ESP32-C6");
#[cfg(not(any(feature = "esp32c3", feature = "esp32c6")))]
compile_error!("choose a chip feature: esp32c3 or esp32c6");

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::Mutex;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::AnyPin;
use esp_hal::peripherals::LPWR;
use esp_hal::timer::timg::TimerGroup;
use esp_storage::FlashStorage;
use hearth_appliances::forwarder::{Flavor, Forwarder};
use hearth_appliances::scale_sensor::ScaleSensor;
use hearth_appliances::tnowp::TNowP;
use hearth_appliances::Peripheral;
use hearth_config::Timings;
use hearth_core::reboot::HardwareReset;
use hearth_core::supervisor::LoopWatchdog;
use hearth_core::SECOND;
use hearth_device::profiles::safe::SafeMode;
use hearth_device::profiles::{OnMqtt, Plan};
use hearth_profile::link::CentralPort;
use hearth_runtime::link::{run_central, run_peripheral, LinkSettings};
use hearth_runtime::update::BootMode;
use hearth_storage::{keys, KvStore};
use static_cell::StaticCell;

use crate::board::EspBoard;
use crate::config::Uplink;
use crate::net::espnow::EspNowRadio;
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
    logger::init();
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CPU_CLOCK));
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: HEAP_RECLAIMED);
    esp_alloc::heap_allocator!(size: HEAP_MAIN);
    let reset_reason = esp_hal::system::reset_reason();
    let panicked = board::take_panic_mark();
    let hardware_reset = match board::classify(reset_reason) {
        // The panic handler marked the panic before its software reset.
        HardwareReset::Software if panicked => HardwareReset::Panic,
        other => other,
    };
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
    // A config that lacks only its Wi-Fi: ask for it on the USB console (`improv`), boot on
    // the completed config, store it once the network is joined.
    let mut provisioning = None;
    let loaded = match config::load(&mut flash, &layout.config) {
        Ok(loaded) => loaded,
        Err(problems) => match config::awaiting_wifi(&mut flash, &layout.config) {
            Some((text, name)) => {
                let (full, console) =
                    improv::wait_for_wifi(p.USB_DEVICE, &text, name, &mut dogs).await;
                match config::from_text(&full) {
                    Ok(loaded) => {
                        provisioning = Some((console, full));
                        loaded
                    }
                    Err(problems) => fatal::idle(&problems, &mut dogs).await,
                }
            }
            None => fatal::config_refused(&problems, &mut flash, &layout.config, &mut dogs).await,
        },
    };
    let timings = loaded.config.timings;
    match &loaded.plan {
        Plan::Mqtt {
            settings,
            appliance,
        } => log::info!(
            "config: profile {}, device {}, broker {}:{}{}",
            loaded.config.profile,
            settings.name,
            settings.broker_host,
            settings.broker_port,
            match appliance {
                OnMqtt::Central(_, link) =>
                    format!(", ESP-NOW central on channel {}", link.channel.unwrap_or(1)),
                OnMqtt::Appliance(_) => String::new(),
            }
        ),
        Plan::Peripheral { .. } => log::info!(
            "config: profile {}, device {}, ESP-NOW peripheral (no Wi-Fi, no MQTT)",
            loaded.config.profile,
            loaded.config.mqtt.name
        ),
    }
    if timings.watchdog_s.is_none() {
        dogs.disable();
        log::warn!("watchdog: disabled by the config (`watchdog 0`)");
    }

    // Every rule of this chip (`hearth_device::chips`, as `hearth flash` and a pushed config
    // are checked), the wiring, and the status LED as soon as its pin is known to be good.
    let wiring = match pins::check(&loaded.config, &loaded.plan) {
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
            let lines: Vec<String> = rejected.problems.iter().map(ToString::to_string).collect();
            fatal::config_refused(&lines, &mut flash, &layout.config, &mut dogs).await
        }
    };
    // The appliance's hardware, first of all (relay outputs go to their off level here). Its
    // planned settings are taken in a block of their own, so that the main task's future keeps
    // no room for them once the hardware holds them.
    let hardware = match appliances::plan(&loaded.plan) {
        Err(problem) => {
            fatal::config_refused(&[problem], &mut flash, &layout.config, &mut dogs).await
        }
        Ok(Some(planned)) => {
            let peripherals = appliances::Peripherals {
                uart1: p.UART1,
                rmt: p.RMT,
                #[cfg(feature = "esp32c6")]
                pcnt: p.PCNT,
                #[cfg(feature = "esp32c3")]
                io_mux: p.IO_MUX,
            };
            match appliances::build(spawner, planned, &wiring.appliance, peripherals) {
                Ok(hardware) => Some(hardware),
                Err(problem) => fatal::idle(&[problem], &mut dogs).await,
            }
        }
        Ok(None) => None,
    };

    // The key-value store.
    let flash = flash::SharedFlash::new(flash);
    let slots = match layout.ota.clone() {
        Ok((ota, running)) => {
            log::info!(
                "update slots at {:#x} and {:#x} ({} KiB each), otadata at {:#x}; running slot {running}",
                ota.slots[0],
                ota.slots[1],
                ota.slot_size / 1024,
                ota.otadata
            );
            Some(hearth_ota::Slots::new(
                BlockingAsync::new(flash),
                ota,
                running,
            ))
        }
        Err(why) => {
            log::warn!("{why}");
            None
        }
    };
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
    // The newest trustworthy time for certificate expiry: the build time, or the highest
    // owner-signed issue time accepted before this boot (`net::tls`).
    let mut issued = [0u8; 8];
    let stored = match store.get_bytes(keys::OTA_LAST_ISSUED, &mut issued).await {
        Ok(Some(len)) => issued.get(..len),
        Ok(None) => None,
        Err(e) => {
            log::warn!("storage: the last signed issue time cannot be read: {e}");
            None
        }
    };
    net::set_trusted_time(stored);

    let firmware = board::Firmware {
        slots,
        config: Some((flash, layout.config.clone())),
        panicked,
    };
    match loaded.plan {
        // The appliance is borrowed, not moved out: a binding by value would keep its room in
        // the main task's future until the arm ends.
        Plan::Mqtt {
            settings,
            ref appliance,
        } => {
            let central = match appliance {
                OnMqtt::Central(flavor, link) => Some((*flavor, link)),
                OnMqtt::Appliance(_) => None,
            };
            // The sensors' bus (before the network, so that every boot error idles with it off).
            let bus = match wiring.i2c {
                Some((sda_pin, scl_pin)) => {
                    // SAFETY: `pins::check` checked that both GPIOs exist on this chip, are
                    // not the flash or USB pins, and differ from each other and from every other
                    // pin this firmware takes.
                    let (sda, scl) = unsafe { (AnyPin::steal(sda_pin), AnyPin::steal(scl_pin)) };
                    match sensors::open_bus(p.I2C0, sda, scl) {
                        Ok(bus) => {
                            log::info!(
                                "i2c: I2C0 at {} kHz, SDA GPIO{sda_pin}, SCL GPIO{scl_pin}",
                                sensors::BUS_KHZ
                            );
                            Some(bus)
                        }
                        Err(e) => {
                            let problem = format!("i2c: cannot configure I2C0: {e:?}");
                            fatal::idle(&[problem], &mut dogs).await
                        }
                    }
                }
                None => None,
            };

            // The network: Wi-Fi (which also carries ESP-NOW for a Wi-Fi central), or the
            // W5500 (which starts the radio only for ESP-NOW, never associated).
            let espnow_channel = central.map(|(_, link)| link.channel.unwrap_or(1));
            let tx_power = loaded.config.wifi_tx_power;
            let started = match (&loaded.uplink, wiring.ethernet) {
                (Uplink::Wifi(credentials), _) => {
                    net::start_wifi(spawner, p.WIFI, credentials, espnow_channel, tx_power)
                }
                (Uplink::Ethernet, Some(eth)) => {
                    match net::start_ethernet(spawner, p.SPI2, p.RNG, p.ADC1, &eth).await {
                        Ok(net) if espnow_channel.is_some() => {
                            match net::espnow::start(p.WIFI, tx_power) {
                                Ok(radio) => Ok((net, Some(radio))),
                                Err(message) => Err(net::StartError {
                                    message,
                                    config: false,
                                }),
                            }
                        }
                        Ok(net) => Ok((net, None)),
                        Err(e) => Err(e),
                    }
                }
                // Cannot happen: `pins::check` returns the W5500's pins for every wired
                // config, and `config::load` gives an MQTT profile no `Uplink::None`.
                _ => Err(net::StartError {
                    message: String::from("network: no usable uplink was resolved"),
                    config: true,
                }),
            };
            let (mut net, radio) = match started {
                Ok(started) => started,
                Err(e) if e.config => fatal::idle(&[e.message], &mut dogs).await,
                Err(e) => fatal::reset_later(&e.message, &mut dogs, &mut store).await,
            };
            if let Some((console, text)) = provisioning.take() {
                let follow = improv::follow(
                    console,
                    net.stack(),
                    text,
                    flash,
                    layout.config.clone(),
                    timings.start_delay_s,
                );
                spawner.spawn(follow.expect("the Improv follower is spawned once"));
            }

            // What runs beside the runtime: the ESP-NOW central, or the weather sensors.
            let app = match (central, radio, bus, hardware) {
                (Some((flavor, link)), Some(radio), _, _) => {
                    MqttApp::Central(flavor, link.clone(), radio)
                }
                (None, _, bus, Some(hardware)) => MqttApp::Appliance(hardware, bus),
                (None, _, Some(bus), None) => MqttApp::Weather(bus),
                // Cannot happen: a central always gets its radio, `weather` its bus.
                _ => {
                    let problem = String::from("internal: the profile's hardware was not set up");
                    fatal::reset_later(&problem, &mut dogs, &mut store).await
                }
            };

            let mut board = make_board(spawner, dogs, &timings, hardware_reset, p.LPWR, firmware);
            let store = hearth_platform::store::shared(store);
            // The MQTT runtime on this board with an appliance: a macro, not an async fn, so
            // that the main task's future pays for no wrapper's copy of the arguments. The
            // central joins the future with its link.
            macro_rules! runtime {
                ($settings:expr, $profile:expr) => {
                    hearth_runtime::run(
                        $settings,
                        &mut net,
                        &mut board,
                        &store,
                        $profile,
                        hearth_device::CONFIG_RULES,
                    )
                };
            }
            let mut settings = settings;
            settings.boot_mode =
                hearth_runtime::update::boot(&mut board, &store, &settings.update).await;
            if let BootMode::Safe { faults } = settings.boot_mode {
                log::warn!("safe mode: the last {faults} runs ended in a fault");
                let mut profile = SafeMode::new(&loaded.config.profile);
                runtime!(settings, &mut profile).await
            }
            match app {
                MqttApp::Central(flavor, link, mut radio) => {
                    let seed = hearth_platform::Entropy::seed(&mut board);
                    let port = CentralPort::new();
                    let mut profile = Forwarder::new(flavor, &port, seed, now_ms());
                    let epoch_random = [
                        hearth_platform::Entropy::seed(&mut board),
                        hearth_platform::Entropy::seed(&mut board),
                    ];
                    let device = runtime!(settings, &mut profile);
                    let central = run_central(
                        &link,
                        &mut radio,
                        &store,
                        seed ^ 0x5eed,
                        epoch_random,
                        &port,
                    );
                    let (never, _) = embassy_futures::join::join(device, central).await;
                    never
                }
                MqttApp::Weather(bus) => {
                    let mut profile = sensors::weather(&bus, now_ms());
                    runtime!(settings, &mut profile).await
                }
                MqttApp::Appliance(hardware, bus) => {
                    appliances::run(
                        hardware,
                        bus.as_ref(),
                        settings,
                        &mut net,
                        &mut board,
                        &store,
                        now_ms(),
                    )
                    .await
                }
            }
        }
        Plan::Peripheral {
            link,
            ref appliance,
        } => {
            let scale = match appliance {
                Peripheral::ScaleSensor(settings) => Some(settings.clone()),
                Peripheral::TNowP => None,
            };
            // The scale's HX711 (`pins::check` gives its pins whenever the plan has a scale).
            let scale = match (scale, wiring.hx711) {
                (Some(settings), Some((sck, dout))) => {
                    log::info!("scale: HX711 on SCK GPIO{sck}, DOUT GPIO{dout}");
                    Some((settings, scale::hx711(sck, dout)))
                }
                (None, _) => None,
                (Some(_), None) => {
                    let problem = String::from("internal: the HX711 pins were not resolved");
                    fatal::idle(&[problem], &mut dogs).await
                }
            };
            // ESP-NOW alone: the station is started, never associated.
            let mut radio = match net::espnow::start(p.WIFI, loaded.config.wifi_tx_power) {
                Ok(radio) => radio,
                Err(message) => fatal::reset_later(&message, &mut dogs, &mut store).await,
            };
            let mut board = make_board(spawner, dogs, &timings, hardware_reset, p.LPWR, firmware);
            let store = hearth_platform::store::shared(store);
            match scale {
                Some((settings, hx711)) => {
                    let mut app = ScaleSensor::new(hx711, settings, now_ms());
                    run_peripheral(&link, &mut board, &mut radio, &store, &mut app).await
                }
                None => {
                    let seed = hearth_platform::Entropy::seed(&mut board);
                    let mut app = TNowP::new(&loaded.config.mqtt.name, seed, now_ms());
                    run_peripheral(&link, &mut board, &mut radio, &store, &mut app).await
                }
            }
        }
    }
}

/// What an MQTT profile runs beside the runtime.
enum MqttApp {
    /// `scale_manager` / `tnowc`: the ESP-NOW central.
    Central(Flavor, LinkSettings, EspNowRadio),
    /// `weather`: the I2C sensors' bus.
    Weather(sensors::SharedBus),
    /// `relay`, `energy`, `rx433`, `h2o`, `switch`: the appliance's hardware (and the I2C bus
    /// for `h2o`).
    Appliance(appliances::Hardware, Option<sensors::SharedBus>),
}

/// The watchdog policy, its feeder and the board.
fn make_board(
    spawner: Spawner,
    dogs: Watchdogs,
    timings: &Timings,
    hardware_reset: HardwareReset,
    lpwr: LPWR<'static>,
    firmware: board::Firmware,
) -> EspBoard {
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
    let board = EspBoard::new(hardware_reset, policy, lpwr, firmware);
    log::info!(
        "device MAC {}, heap free {} bytes",
        board::mac_string(&hearth_platform::Identity::unique_id(&board)),
        esp_alloc::HEAP.free()
    );
    board
}
