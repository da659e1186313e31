//! Wi-Fi over the USB console (Improv Serial, `hearth_core::improv`), for a config whose one
//! missing thing is its network (`hearth_config::provision`): the board a browser installer or
//! `hearth provision --port /dev/ttyACM0` gives a network.
//!
//! 1. [`wait_for_wifi`]: the Improv service runs on the USB Serial/JTAG console (its receive
//!    side; answers go out through esp-println's printer, in its critical section, so a log
//!    line never cuts a packet). Credentials are written into the config text and checked with
//!    every rule a pushed config must pass on this chip (`hearth_device::CONFIG_RULES`); a
//!    refusal is logged and answered, and the board keeps waiting. The boot guard is fed.
//! 2. The board boots on the completed config, *not yet stored*: the Wi-Fi task joins with it.
//! 3. [`follow`] waits for an address. Joined: the config is stored for good
//!    (`config::store_provisioned`) and the client gets the provisioned state and the address.
//!    Not joined in [`JOIN_WAIT_S`] (a wrong password, a network out of range): the client gets
//!    "unable to connect" and the board resets into the config that still waits for Wi-Fi.
//!
//! The service keeps answering (state, network state) for as long as the board runs.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use embassy_futures::select::{select, Either};
use embassy_net::Stack;
use embassy_time::{Duration, Instant, Timer};
use embedded_io_async::Read;
use esp_hal::peripherals::USB_DEVICE;
use esp_hal::usb::usb_serial_jtag::{UsbSerialJtag, UsbSerialJtagRx};
use esp_hal::Async;
use hearth_core::improv::{Action, DeviceInfo, Parser, Service};

use crate::partitions::Region;
use crate::watchdog::Watchdogs;

/// How long the board may take to join once it has the credentials: the start-up delay and
/// the connect timeout of the config come on top.
pub const JOIN_WAIT_S: u64 = 60;

/// The console and the service, between the credentials and the join.
pub struct Console {
    rx: UsbSerialJtagRx<'static, Async>,
    parser: Parser,
    service: Service,
}

fn send(packets: &[Vec<u8>]) {
    for p in packets {
        esp_println::Printer::write_bytes(p);
    }
}

impl Console {
    /// Read what came in and answer it; the credentials of a join request, if one came.
    async fn serve(&mut self) -> Option<(String, String)> {
        let mut buf = [0u8; 64];
        let n = self.rx.read(&mut buf).await.unwrap_or(0);
        let mut join = None;
        for &b in &buf[..n] {
            let Some(Ok(packet)) = self.parser.push(b) else {
                continue;
            };
            let step = self.service.handle(&packet);
            send(&step.send);
            match step.action {
                Some(Action::Join { ssid, password }) => join = Some((ssid, password)),
                // Scanning would need the radio this early; the list is empty.
                Some(Action::Scan) => send(&self.service.scanned(&[])),
                None => {}
            }
        }
        join
    }
}

/// Run the Improv service until credentials complete `text` into a config this chip runs;
/// the completed text (not stored yet) and the console for [`follow`].
pub async fn wait_for_wifi(
    usb: USB_DEVICE<'static>,
    text: &str,
    name: String,
    dogs: &mut Watchdogs,
) -> (String, Console) {
    let (rx, _tx) = UsbSerialJtag::new(usb).into_async().split();
    let info = DeviceInfo {
        firmware: "Hearth".into(),
        version: crate::board::VERSION.into(),
        chip: crate::board::CHIP_ID.into(),
        name,
    };
    let mut console = Console {
        rx,
        parser: Parser::new(),
        service: Service::new(info, false, true),
    };
    let mut told = Instant::MIN;
    loop {
        if told.elapsed() >= Duration::from_secs(30) {
            log::warn!(
                "improv: the config has no Wi-Fi; waiting for it on this console \
                 (hearth provision --port PORT, or a browser installer)"
            );
            told = Instant::now();
        }
        dogs.feed_boot_guard();
        let got = match select(console.serve(), Timer::after_secs(1)).await {
            Either::First(got) => got,
            Either::Second(()) => None,
        };
        let Some((ssid, password)) = got else {
            continue;
        };
        let rules =
            |t: &str| hearth_device::CONFIG_RULES(t, crate::board::CHIP_ID, crate::pins::IMAGE);
        match hearth_config::provision::complete(text, &ssid, &password, rules) {
            Ok(full) => {
                log::info!("improv: joining {ssid}");
                return (full, console);
            }
            Err(why) => {
                for line in why {
                    log::error!("improv: refused: {line}");
                }
                send(&console.service.failed());
            }
        }
    }
}

/// Wait for the address the completed config's network gives; store the config and answer,
/// or answer the failure and reset. Then keep answering.
#[embassy_executor::task]
pub async fn follow(
    mut console: Console,
    stack: Stack<'static>,
    text: String,
    mut flash: crate::flash::SharedFlash,
    partition: Region,
    start_delay_s: u32,
) -> ! {
    let deadline = Instant::now() + Duration::from_secs(JOIN_WAIT_S + u64::from(start_delay_s));
    let address = loop {
        if let Some(c) = stack.config_v4() {
            break Some(c.address.address());
        }
        if Instant::now() >= deadline {
            break None;
        }
        let _ = select(console.serve(), Timer::after_millis(500)).await;
    };
    match address {
        Some(ip) => match crate::config::store_provisioned(&mut flash, &partition, &text) {
            Ok(()) => {
                log::info!("improv: joined, address {ip}; the config with this network is stored");
                send(&console.service.joined(Some(&ip.to_string())));
            }
            Err(e) => {
                log::error!("improv: joined, but the config cannot be stored: {e}; resetting");
                send(&console.service.failed());
                Timer::after_secs(1).await;
                esp_hal::system::software_reset()
            }
        },
        None => {
            log::error!(
                "improv: no address within {} s: the network refused the credentials or is \
                 out of range; resetting to wait for new ones",
                JOIN_WAIT_S + u64::from(start_delay_s)
            );
            send(&console.service.failed());
            Timer::after_secs(1).await;
            esp_hal::system::software_reset()
        }
    }
    loop {
        console.serve().await;
    }
}
