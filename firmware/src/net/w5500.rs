//! The wired link: a WIZnet W5500 on SPI2 (embassy-net-wiznet, MACRAW mode) under the shared
//! stack ([`super::StackNetwork`]). Used for `ssid (wired)` and `ssid (wired2)`; this module
//! never starts the Wi-Fi radio (an ESP-NOW central starts it for ESP-NOW alone, see
//! `super::espnow`).
//!
//! - SPI2 at [`SPI_MHZ`] MHz, mode 0, through the GPIO matrix on the pins of `crate::pins`
//!   (`ethsck`, `ethmosi`, `ethmiso`, `ethcs`, or the chip's defaults). The W5500 is the only
//!   device on the bus: embassy-embedded-hal's `SpiDevice` over a no-op mutex drives CS.
//! - `ethint`: the W5500's interrupt output (active low) as an async input with the internal
//!   pull-up; the driver waits on it for received frames (and polls the PHY's link every
//!   500 ms).
//! - `ethrst`: the W5500's reset (active low) as an output; the driver pulses it at start.
//! - MAC address: the chip's base MAC (eFuse) with the locally-administered bit set and the
//!   multicast bit cleared in the first octet (`58:cf:79:12:34:56` → `5a:cf:79:12:34:56`).
//!   The W5500 has no MAC of its own; the base MAC stays the device's identity and the Wi-Fi
//!   station's address, and no universally administered address of the chip is reused.
//! - Entropy: without the radio the RNG is only pseudo-random, so the ADC entropy source
//!   (`TrngSource`, taking RNG and ADC1) is switched on for good before the stack's seed and
//!   the board's seeds are drawn.
//! - The driver's packet queues (2 receive + 2 transmit frames of 1514 bytes) are allocated
//!   from the heap, which is otherwise idle on this path, so the Wi-Fi path pays no RAM for
//!   them.

use alloc::boxed::Box;
use alloc::format;

use embassy_embedded_hal::shared_bus::asynch::spi::SpiDevice;
use embassy_executor::Spawner;
use embassy_net::Runner;
use embassy_net_wiznet::chip::W5500;
use embassy_net_wiznet::{InitError, State};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use esp_hal::gpio::{AnyPin, Input, InputConfig, Level, Output, OutputConfig, Pull};
use esp_hal::peripherals::{ADC1, RNG, SPI2};
use esp_hal::rng::{Rng, TrngSource};
use esp_hal::spi::master::{Config as SpiConfig, Spi};
use esp_hal::spi::Mode;
use esp_hal::time::Rate;
use esp_hal::Async;
use static_cell::StaticCell;

use super::{open, Medium, StackNetwork, StartError, LINK};
use crate::pins::Ethernet;

/// SPI clock. The W5500 is specified to 33.3 MHz; 10 MHz leaves margin for jumper wires and
/// the GPIO matrix and is far more than MQTT needs.
pub const SPI_MHZ: u32 = 10;
/// Frames the driver queues from the W5500 to the stack.
const RX_FRAMES: usize = 2;
/// Frames the driver queues from the stack to the W5500.
const TX_FRAMES: usize = 2;

type Bus = Mutex<NoopRawMutex, Spi<'static, Async>>;
type Device = SpiDevice<'static, NoopRawMutex, Spi<'static, Async>, Output<'static>>;
type ChipRunner =
    embassy_net_wiznet::Runner<'static, W5500, Device, Input<'static>, Output<'static>>;

static BUS: StaticCell<Bus> = StaticCell::new();
static ENTROPY: StaticCell<TrngSource<'static>> = StaticCell::new();

/// The Ethernet MAC: the base MAC, locally administered (see the module comment).
pub fn mac_address(base: [u8; 6]) -> [u8; 6] {
    let mut mac = base;
    mac[0] = (mac[0] | 0x02) & !0x01;
    mac
}

/// Bring up the W5500 on `pins` and the network stack over it, and spawn their tasks. DHCP
/// starts at `Network::up`.
pub async fn start(
    spawner: Spawner,
    spi2: SPI2<'static>,
    rng: RNG<'static>,
    adc1: ADC1<'static>,
    pins: &Ethernet,
) -> Result<StackNetwork, StartError> {
    ENTROPY.init(TrngSource::new(rng, adc1));

    // SAFETY: `pins::check` checked that these GPIOs exist on this chip, are not flash or
    // USB pins, and are pairwise distinct and distinct from every other pin this firmware
    // uses (I2C, LED); each is taken here once.
    let (sck, mosi, miso, cs, int, rst) = unsafe {
        (
            AnyPin::steal(pins.sck),
            AnyPin::steal(pins.mosi),
            AnyPin::steal(pins.miso),
            AnyPin::steal(pins.cs),
            AnyPin::steal(pins.int),
            AnyPin::steal(pins.rst),
        )
    };
    let spi = Spi::new(
        spi2,
        SpiConfig::default()
            .with_frequency(Rate::from_mhz(SPI_MHZ))
            .with_mode(Mode::_0),
    )
    .map_err(|e| StartError::driver(format!("ethernet: cannot configure SPI2: {e:?}")))?
    .with_sck(sck)
    .with_mosi(mosi)
    .with_miso(miso)
    .into_async();
    let cs = Output::new(cs, Level::High, OutputConfig::default());
    let rst = Output::new(rst, Level::High, OutputConfig::default());
    let int = Input::new(int, InputConfig::default().with_pull(Pull::Up));
    let device: Device = SpiDevice::new(BUS.init(Mutex::new(spi)), cs);

    let mut base = [0u8; 6];
    base.copy_from_slice(esp_hal::efuse::base_mac_address().as_bytes());
    let mac = mac_address(base);
    let state = Box::leak(Box::new(State::<RX_FRAMES, TX_FRAMES>::new()));
    let wiring = format!(
        "SCK GPIO{} MOSI GPIO{} MISO GPIO{} CS GPIO{} INT GPIO{} RST GPIO{}",
        pins.sck, pins.mosi, pins.miso, pins.cs, pins.int, pins.rst
    );
    let (driver, chip) = embassy_net_wiznet::new::<RX_FRAMES, TX_FRAMES, W5500, _, _, _>(
        mac, state, device, int, rst,
    )
    .await
    .map_err(|e| {
        StartError::driver(match e {
            InitError::SpiError(e) => {
                format!("ethernet: SPI error while starting the W5500 ({wiring}): {e:?}")
            }
            InitError::InvalidChipVersion { expected, actual } => format!(
                "ethernet: no W5500 answers on SPI2 ({wiring}): its version register reads \
                 0x{actual:02x}, a W5500 says 0x{expected:02x}; check the wiring, the power \
                 and the eth* pins in config.txt"
            ),
        })
    })?;

    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    // No IPv4 configuration until `up()` starts DHCP.
    let (network, runner) = open(
        driver,
        embassy_net::Config::default(),
        seed,
        Medium::Ethernet,
    );
    // The cable is the carrier: the driver reports the PHY's link to the stack.
    LINK.update(|s| s.carrier = true);
    spawner.spawn(chip_runner(chip).expect("the W5500 task is spawned once"));
    spawner.spawn(stack_runner(runner).expect("the network runner is spawned once"));
    log::info!(
        "ethernet: W5500 on SPI2 at {SPI_MHZ} MHz ({wiring}), MAC {}",
        crate::board::mac_string(&mac)
    );
    Ok(network)
}

#[embassy_executor::task]
async fn chip_runner(runner: ChipRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn stack_runner(mut runner: Runner<'static, embassy_net_wiznet::Device<'static>>) -> ! {
    runner.run().await
}
