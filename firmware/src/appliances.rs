//! The appliances' hardware (`relay`, `energy`, `rx433`, `h2o`, `switch`, `termo`): which GPIOs each
//! uses (`hearth_device::chips::appliance_pins`, checked by `crate::pins` with every other pin), the peripherals built on
//! them ([`build`], right after the pin check and before the store, so relay outputs are at
//! their off level before anything else happens) and the runtime over them ([`run`]), mirroring
//! the simulator's `device_task`.
//!
//! | appliance | peripheral | pins (config keys) |
//! |---|---|---|
//! | `relay` | GPIO push-pull outputs, driven to the off level at once; with `relaydisplay 1` an SSD1306 on I2C0 | `relay1pin`..`relay4pin`, `i2csda`, `i2cscl` |
//! | `energy` | UART1, async, 9600 8N1 (PZEM-004T v3.0) | `pzemtx`, `pzemrx` |
//! | `rx433` | RMT channel 2, receive mode, 1 µs ticks ([`Rx433Source`]) | `rx433pin` |
//! | `h2o` | I2C0 (MCP23017 + SSD1306, shared bus); flow meter on PCNT unit 0 (C6) or a GPIO edge interrupt (C3) | `i2csda`, `i2cscl`, `flowpin` |
//! | `termo` | one open-drain GPIO with pull-up, bit-banged 1-Wire (`hearth_drivers::onewire::BitBang`, busy-wait µs timing) | `onewire` |
//! | `switch` | GPIO inputs/outputs (`DirectIo`) or five GPIOs to 74HC595/74HC165 chains (`ShiftIo`) | `switchinpins`, `switchoutpins`, `switchsrpins` (else the board preset's) |
//!
//! Every appliance is in the image unless the cargo feature `lean` is set; `lean` plus
//! `appliance-<name>` (`appliance-relay`, ...) puts one back. A config naming an appliance the
//! image lacks is a boot error naming the feature. (The chip invocations of
//! `scripts/firmware.sh`, `--no-default-features --features esp32c6`, thus build the full
//! image.)

// A `lean` image compiles the planning code without its appliances.
#![cfg_attr(feature = "lean", allow(unused, unreachable_code, dead_code))]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_appliances::Mqtt;
use hearth_device::profiles::{OnMqtt, Plan};

#[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
mod flow;
#[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
mod rx433;

/// The appliance and its settings.
pub enum What {
    /// Timed relays.
    #[cfg(any(feature = "appliance-relay", not(feature = "lean")))]
    Relay(hearth_appliances::relay::RelaySettings),
    /// PZEM-004T meter.
    #[cfg(any(feature = "appliance-energy", not(feature = "lean")))]
    Energy,
    /// 433 MHz keyfob receiver.
    #[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
    Rx433,
    /// Water tank.
    #[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
    H2o(hearth_appliances::h2o::H2oSettings),
    /// Light switch / relay board.
    #[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
    Switch(hearth_appliances::switch::SwitchSettings),
    /// DS18x20 thermometers.
    #[cfg(any(feature = "appliance-termo", not(feature = "lean")))]
    Termo(hearth_appliances::termo::Settings),
}

/// The appliance hardware `plan` asks for: `None` for `weather` (its bus is the sensors'
/// code), the centrals and the peripherals, which `main` wires. Its GPIOs are
/// `hearth_device::chips::appliance_pins`, checked with every other pin by `pins::check`.
/// `Err`: an appliance whose cargo feature is off in this image (`pins::check` refuses it
/// first).
pub fn plan(plan: &Plan) -> Result<Option<What>, String> {
    let appliance = match plan {
        Plan::Mqtt {
            appliance: OnMqtt::Appliance(appliance),
            ..
        } => appliance,
        _ => return Ok(None),
    };
    Ok(Some(match appliance {
        Mqtt::Weather => return Ok(None),
        #[cfg(any(feature = "appliance-relay", not(feature = "lean")))]
        Mqtt::Relay(settings) => What::Relay(settings.clone()),
        #[cfg(any(feature = "appliance-energy", not(feature = "lean")))]
        Mqtt::Energy(_) => What::Energy,
        #[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
        Mqtt::Rx433(_) => What::Rx433,
        #[cfg(any(feature = "appliance-termo", not(feature = "lean")))]
        Mqtt::Termo(settings) => What::Termo(*settings),
        #[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
        Mqtt::H2o(settings) => What::H2o(settings.as_ref().clone()),
        #[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
        Mqtt::Switch(settings) => What::Switch(settings.as_ref().clone()),
        #[allow(unreachable_patterns)]
        other => {
            let name = other.name();
            let feature = hearth_appliances::appliance(name)
                .and_then(|a| a.lean_feature)
                .unwrap_or("?");
            return Err(format!(
                "config.txt: profile {name}: this image was built with the cargo feature `lean` \
                 and without `{feature}` (build with it, or flash an image that has it)"
            ));
        }
    }))
}

/// The peripherals the appliances may take.
pub struct Peripherals {
    /// For `energy`.
    pub uart1: esp_hal::peripherals::UART1<'static>,
    /// For `rx433`.
    pub rmt: esp_hal::peripherals::RMT<'static>,
    /// For the h2o flow meter on the C6.
    #[cfg(feature = "esp32c6")]
    pub pcnt: esp_hal::peripherals::PCNT<'static>,
    /// For the h2o flow meter's edge interrupt on the C3.
    #[cfg(feature = "esp32c3")]
    pub io_mux: esp_hal::peripherals::IO_MUX<'static>,
}

/// An appliance's hardware, ready for [`run`].
pub enum Hardware {
    /// Relay outputs (already at the off level).
    #[cfg(any(feature = "appliance-relay", not(feature = "lean")))]
    Relay(
        hearth_appliances::relay::RelaySettings,
        Vec<esp_hal::gpio::Output<'static>>,
    ),
    /// The meter's UART.
    #[cfg(any(feature = "appliance-energy", not(feature = "lean")))]
    Energy(esp_hal::uart::Uart<'static, esp_hal::Async>),
    /// The receiver's pulses.
    #[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
    Rx433(rx433::Rx433Source),
    /// The flow counter (the I2C bus is opened with the weather sensors' code).
    #[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
    H2o(hearth_appliances::h2o::H2oSettings, flow::FlowCounter),
    /// The switch board's pins.
    #[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
    Switch(hearth_appliances::switch::SwitchSettings, switch::Io),
    /// The 1-Wire bus.
    #[cfg(any(feature = "appliance-termo", not(feature = "lean")))]
    Termo(
        hearth_appliances::termo::Settings,
        hearth_drivers::onewire::BitBang<esp_hal::gpio::Flex<'static>, esp_hal::delay::Delay>,
    ),
}

/// Take GPIO `n`.
///
/// # Safety
/// `n` must have passed `pins::check` (exists, not flash/USB, used once).
unsafe fn gpio(n: u8) -> esp_hal::gpio::AnyPin<'static> {
    // SAFETY: the caller's promise.
    unsafe { esp_hal::gpio::AnyPin::steal(n) }
}

/// Build the appliance's hardware on `pins` (checked by `pins::check`, in the order of
/// `hearth_device::chips::appliance_pins`). `Err`: a peripheral refused its configuration.
#[allow(unused_variables)]
pub fn build(
    spawner: embassy_executor::Spawner,
    what: What,
    pins: &[u8],
    p: Peripherals,
) -> Result<Hardware, String> {
    match what {
        #[cfg(any(feature = "appliance-relay", not(feature = "lean")))]
        What::Relay(settings) => {
            use esp_hal::gpio::{Level, Output, OutputConfig};
            let level = Level::from(bool::from(settings.off_level()));
            // SAFETY: checked by `pins::check`.
            let outputs = pins
                .iter()
                .map(|&n| Output::new(unsafe { gpio(n) }, level, OutputConfig::default()))
                .collect();
            log::info!(
                "relay: outputs on GPIO {pins:?}, {} (off = {level:?})",
                if settings.active_low {
                    "active low"
                } else {
                    "active high"
                }
            );
            Ok(Hardware::Relay(settings, outputs))
        }
        #[cfg(any(feature = "appliance-energy", not(feature = "lean")))]
        What::Energy => {
            use esp_hal::uart::{Config, DataBits, Parity, StopBits, Uart};
            let config = Config::default()
                .with_baudrate(9600)
                .with_data_bits(DataBits::_8)
                .with_parity(Parity::None)
                .with_stop_bits(StopBits::_1);
            let uart = Uart::new(p.uart1, config)
                .map_err(|e| format!("energy: cannot configure UART1: {e:?}"))?;
            // SAFETY: checked by `pins::check`.
            let (tx, rx) = unsafe { (gpio(pins[0]), gpio(pins[1])) };
            let uart = uart.with_tx(tx).with_rx(rx).into_async();
            log::info!(
                "energy: PZEM-004T on UART1 at 9600 8N1, TX GPIO{}, RX GPIO{}",
                pins[0],
                pins[1]
            );
            Ok(Hardware::Energy(uart))
        }
        #[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
        What::Rx433 => {
            // SAFETY: checked by `pins::check`.
            let source = rx433::start(spawner, p.rmt, unsafe { gpio(pins[0]) })?;
            log::info!("rx433: receiver on GPIO{} (RMT channel 2)", pins[0]);
            Ok(Hardware::Rx433(source))
        }
        #[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
        What::H2o(settings) => {
            #[cfg(feature = "esp32c6")]
            let counter = flow::FlowCounter::new(p.pcnt, unsafe { gpio(pins[0]) })?;
            #[cfg(feature = "esp32c3")]
            let counter = flow::FlowCounter::new(p.io_mux, unsafe { gpio(pins[0]) });
            log::info!("h2o: flow meter on GPIO{} ({})", pins[0], flow::HOW);
            Ok(Hardware::H2o(settings, counter))
        }
        #[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
        What::Switch(settings) => {
            let io = switch::Io::new(&settings, pins);
            Ok(Hardware::Switch(settings, io))
        }
        #[cfg(any(feature = "appliance-termo", not(feature = "lean")))]
        What::Termo(settings) => {
            use esp_hal::gpio::{DriveMode, Flex, OutputConfig, Pull};
            // SAFETY: checked by `pins::check`.
            let mut line = Flex::new(unsafe { gpio(pins[0]) });
            // Open drain with the internal pull-up (add a 4.7 kΩ external one for long
            // cables), released (high) until the first reset pulse.
            line.apply_output_config(
                &OutputConfig::default()
                    .with_drive_mode(DriveMode::OpenDrain)
                    .with_pull(Pull::Up),
            );
            line.set_high();
            line.set_output_enable(true);
            line.set_input_enable(true);
            // A blocking delay on purpose: a 1-Wire slot must not be stretched by another task.
            let bus = hearth_drivers::onewire::BitBang::new(line, esp_hal::delay::Delay::new());
            log::info!("termo: 1-Wire bus on GPIO{} (open drain, pull-up)", pins[0]);
            Ok(Hardware::Termo(settings, bus))
        }
    }
}

/// The h2o appliance's I2C bus (the weather sensors' bus code).
pub type Bus = crate::sensors::SharedBus;

/// Run the appliance's profile under the runtime; never returns.
#[allow(unused_variables)]
pub async fn run<N, B, F>(
    hardware: Hardware,
    bus: Option<&Bus>,
    settings: hearth_runtime::Settings,
    net: &mut N,
    board: &mut B,
    store: &hearth_platform::store::SharedStore<F>,
    now: hearth_core::Millis,
) -> !
where
    N: hearth_platform::Network,
    B: hearth_platform::Board,
    F: embedded_storage_async::nor_flash::NorFlash,
{
    // The runtime with the appliance each arm builds: a macro rather than an async fn, which
    // would keep a second copy of the arguments in the main task (static RAM).
    macro_rules! run_appliance {
        ($profile:expr) => {
            hearth_runtime::run(
                settings,
                net,
                board,
                store,
                $profile,
                hearth_device::CONFIG_RULES,
            )
            .await
        };
    }
    match hardware {
        #[cfg(any(feature = "appliance-relay", not(feature = "lean")))]
        Hardware::Relay(relays, outputs) => {
            use hearth_appliances::relay::{Relay, RelayPanel};
            let mut relay = Relay::new(outputs, store, &relays, now);
            relay.restore().await;
            match bus.filter(|_| relays.display) {
                Some(bus) => {
                    use embassy_embedded_hal::shared_bus::asynch::i2c::I2cDevice;
                    // The reference's optional SSD1306 on I2C0 (`relaydisplay 1`).
                    let mut profile = RelayPanel::new(relay, I2cDevice::new(bus), now);
                    run_appliance!(&mut profile)
                }
                None => {
                    let mut profile = relay;
                    run_appliance!(&mut profile)
                }
            }
        }
        #[cfg(any(feature = "appliance-energy", not(feature = "lean")))]
        Hardware::Energy(uart) => {
            use hearth_appliances::energy::Energy;
            let mut profile = Energy::new(uart, now);
            run_appliance!(&mut profile)
        }
        #[cfg(any(feature = "appliance-rx433", not(feature = "lean")))]
        Hardware::Rx433(source) => {
            use hearth_appliances::rx433::Rx433;
            let mut profile = Rx433::new(source, now);
            run_appliance!(&mut profile)
        }
        #[cfg(any(feature = "appliance-h2o", not(feature = "lean")))]
        Hardware::H2o(h2o, counter) => {
            use embassy_embedded_hal::shared_bus::asynch::i2c::I2cDevice;
            use hearth_appliances::h2o::H2o;
            let Some(bus) = bus else {
                // Cannot happen: `pins::check` gives h2o its I2C pins and main opens the bus.
                log::error!("internal: h2o without its I2C bus; resetting in 60 s");
                embassy_time::Timer::after_secs(60).await;
                esp_hal::system::software_reset()
            };
            let mut profile = H2o::new(
                I2cDevice::new(bus),
                I2cDevice::new(bus),
                counter,
                embassy_time::Delay,
                h2o,
                now,
            );
            run_appliance!(&mut profile)
        }
        #[cfg(any(feature = "appliance-termo", not(feature = "lean")))]
        Hardware::Termo(t, bus) => {
            use hearth_appliances::termo::Termo;
            let mut profile = Termo::new(bus, t, now);
            run_appliance!(&mut profile)
        }
        #[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
        Hardware::Switch(sw, io) => match io {
            switch::Io::Direct(io) => {
                use hearth_appliances::switch::Switch;
                let mut profile = Switch::new(io, store, &sw, now);
                profile.restore().await;
                run_appliance!(&mut profile)
            }
            switch::Io::Shift(io) => {
                use hearth_appliances::switch::Switch;
                let mut profile = Switch::new(io, store, &sw, now);
                profile.restore().await;
                run_appliance!(&mut profile)
            }
        },
    }
}

#[cfg(any(feature = "appliance-switch", not(feature = "lean")))]
mod switch {
    //! The switch board: direct GPIOs, or the Dingtian 8's shift-register chains.
    //!
    //! - Direct inputs: pull-up for active-low boards (buttons to ground), no pull otherwise
    //!   (`hoffer6`: its inputs are driven). Direct outputs: push-pull, low (off) until the
    //!   appliance restores the stored states.
    //! - Shift registers: `/OE` starts high (outputs disabled, as the board's pull-up holds it;
    //!   the driver pulls it low after the first transfer, which already carries the restored
    //!   states), `latch` high (the '165 loading, the '595 holding), `clock` and `ser` low,
    //!   `qh` an input without pull. 1 µs busy-wait pauses (`scale::HxDelay`).

    use alloc::vec::Vec;

    use esp_hal::gpio::{Input, InputConfig, Level, Output, OutputConfig, Pull};
    use hearth_appliances::switch::{DirectIo, ShiftIo, SwitchSettings};
    use hearth_drivers::shiftreg::{Lines, ShiftRegisters};

    use super::gpio;
    use crate::scale::HxDelay;

    /// The board's I/O.
    pub enum Io {
        /// One GPIO per input and output.
        Direct(DirectIo<Input<'static>, Output<'static>>),
        /// The '595/'165 chains (8 + 8 bits).
        Shift(
            ShiftIo<
                Output<'static>,
                Output<'static>,
                Output<'static>,
                Output<'static>,
                Input<'static>,
                HxDelay,
            >,
        ),
    }

    impl Io {
        /// The I/O on `pins` (inputs then outputs, or `oe, latch, clock, ser, qh`).
        pub fn new(settings: &SwitchSettings, pins: &[u8]) -> Self {
            let preset = settings.board.preset();
            let out = |n: u8, level| {
                // SAFETY: checked by `pins::check`.
                Output::new(unsafe { gpio(n) }, level, OutputConfig::default())
            };
            let input = |n: u8, pull| {
                // SAFETY: checked by `pins::check`.
                Input::new(unsafe { gpio(n) }, InputConfig::default().with_pull(pull))
            };
            match settings.pins {
                hearth_appliances::switch::Pins::Direct { .. } => {
                    let (ins, outs) = pins.split_at(preset.inputs.min(pins.len()));
                    let pull = if preset.inputs_active_low {
                        Pull::Up
                    } else {
                        Pull::None
                    };
                    log::info!(
                        "switch: {} inputs on GPIO {ins:?}, outputs on GPIO {outs:?}",
                        preset.name
                    );
                    let inputs: Vec<_> = ins.iter().map(|&n| input(n, pull)).collect();
                    let outputs: Vec<_> = outs.iter().map(|&n| out(n, Level::Low)).collect();
                    Io::Direct(DirectIo::new(inputs, outputs, preset.inputs_active_low))
                }
                hearth_appliances::switch::Pins::ShiftRegisters(_) => {
                    log::info!(
                        "switch: {} shift registers, oe/latch/clock/ser/qh on GPIO {pins:?}",
                        preset.name
                    );
                    let lines = Lines {
                        oe: out(pins[0], Level::High),
                        latch: out(pins[1], Level::High),
                        clock: out(pins[2], Level::Low),
                        ser: out(pins[3], Level::Low),
                        qh: input(pins[4], Pull::None),
                    };
                    let chains = ShiftRegisters::new(lines, HxDelay::new(), 8, 8);
                    Io::Shift(ShiftIo::new(chains, preset.inputs_active_low))
                }
            }
        }
    }
}
