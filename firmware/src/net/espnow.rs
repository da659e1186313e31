//! The ESP-NOW radio as a `hearth_platform::Radio`: esp-radio's ESP-NOW on the Wi-Fi station
//! interface, for the centrals (`scale_manager`, `tnowc`) and the battery peripherals
//! (`scale_sensor`, `tnowp`).
//!
//! # How the radio runs
//!
//! - **Peripherals and wired centrals** (`ssid (none)`, `ssid (wired)`): [`start`] starts the
//!   Wi-Fi driver in station mode with an empty station configuration. The station interface
//!   is up but never associates, so the radio stays on the channel ESP-NOW picks
//!   (`set_channel`). No embassy-net interface is created on the radio. Power saving is off
//!   (esp-radio's default) and so is the driver's modem sleep while disconnected
//!   (`sta_disconnected_pm`), so the receiver listens all the time.
//! - **Wi-Fi centrals** (`ssid NAME`): [`on_station`] takes ESP-NOW from the controller that
//!   `net::wifi` uses for the association. Once associated, the radio is on the access point's
//!   channel and `set_channel` to another channel fails (`RadioError::Driver`); the Wi-Fi task
//!   warns at every association when the AP's channel is not `espnowchannel`, because the
//!   peripherals must then use the AP's channel.
//!
//! # Long range (802.11 LR)
//!
//! The station's 2.4 GHz protocols are 802.11b/g/n **plus LR** (Espressif's long-range mode;
//! the ESP32-C3 and ESP32-C6 have it), so the radio receives both LR and ordinary frames and a
//! Wi-Fi central still associates with ordinary access points. Every ESP-NOW peer, the
//! broadcast peer included, gets the rate configuration PHY mode LR at "LoRa 250K"
//! (`esp_now_set_peer_rate_config` through `EspNowManager::set_peer_rate`), the reference's
//! choice: frames go out at 250 kbit/s LR. esp-radio 1.0.0-beta.1 exposes both pieces
//! (`Protocol::LR` in `Protocols`, `PhyMode::Lr` + `WifiPhyRate::RateLora250k` in
//! `RateConfig`). If the driver refuses the rate for a peer, the frame goes out at the
//! driver's default rate (1 Mbit/s 11b) and a warning is logged once.
//!
//! # Peers
//!
//! ESP-NOW sends only to peers in the driver's table (20 entries at most, shared with the
//! broadcast peer that esp-radio adds at start). Unicast peers are added on the first send to
//! them, unencrypted (the link authenticates every frame itself) and without a fixed channel
//! (they follow the radio's channel). At most [`MAX_PEERS`] unicast peers are kept: adding one
//! more removes the least recently used one. Receiving needs no peer entry.
//!
//! # Send and acknowledgement
//!
//! `send` waits for esp-radio's send callback (`send_async`): for a unicast frame it reports
//! whether the peer's MAC acknowledged it (the driver's own retries included), which is the
//! ack outcome the link asks for. Broadcasts are not acknowledged; their callback only says the
//! frame went out. The wait is bounded by [`SEND_TIMEOUT_MS`] (a missing callback is a driver
//! error).
//!
//! # Receive
//!
//! esp-radio queues up to 10 received frames (dropping the oldest when full) and
//! `receive_async` takes one only when it completes, so dropping a pending `receive` loses
//! nothing. RSSI and channel come from the frame's rx control info. Frames longer than the
//! ESP-NOW v1 payload (250 bytes: ESP-NOW v2 senders) are dropped and counted.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embassy_time::{with_timeout, Duration};
use esp_hal::efuse::{interface_mac_address, InterfaceMacAddress};
use esp_hal::peripherals::WIFI;
use esp_radio::esp_now::{
    EspNowError, EspNowManager, EspNowReceiver, EspNowSender, EspNowWifiInterface, PeerInfo,
    PhyMode, RateConfig, WifiPhyRate, BROADCAST_ADDRESS,
};
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    Config as WifiConfig, ControllerConfig, Protocol, Protocols, WifiController,
};
use hearth_config::TxPower;
use hearth_platform::{Radio, RadioError, RadioFrame, BROADCAST, RADIO_MAX_FRAME};

/// Unicast peers kept in the driver's table (the driver holds 20 with the broadcast peer).
pub const MAX_PEERS: usize = 16;
/// Bound on the wait for the driver's send callback.
pub const SEND_TIMEOUT_MS: u64 = 250;

/// The station's protocols: 802.11b/g/n plus Espressif's long-range mode.
pub fn protocols() -> Protocols {
    Protocols::default().with_2_4(Protocol::B | Protocol::G | Protocol::N | Protocol::LR)
}

/// The rate of every ESP-NOW peer: LR at 250 kbit/s.
fn long_range() -> RateConfig {
    RateConfig {
        phy_mode: PhyMode::Lr,
        rate: WifiPhyRate::RateLora250k,
        ersu: false,
        dcm: false,
    }
}

/// ESP-NOW over esp-radio.
pub struct EspNowRadio {
    manager: EspNowManager,
    sender: EspNowSender,
    receiver: EspNowReceiver,
    /// Keeps the driver started (peripherals and wired centrals own the controller here).
    _controller: Option<WifiController<'static>>,
    mac: [u8; 6],
    /// Unicast peers in the driver's table, with the use counter of their last send.
    peers: Vec<([u8; 6], u32)>,
    uses: u32,
    /// The LR rate was refused once (logged once).
    rate_refused: bool,
    /// Frames dropped for being longer than an ESP-NOW v1 payload.
    oversized: u32,
}

/// Start the Wi-Fi driver for ESP-NOW alone: station mode, never associated (peripherals and
/// wired centrals).
pub fn start(wifi: WIFI<'static>, tx_power: Option<TxPower>) -> Result<EspNowRadio, String> {
    let station = StationConfig::default().with_protocols(protocols());
    let mut controller = WifiController::new(
        wifi,
        ControllerConfig::default()
            .with_initial_config(WifiConfig::Station(station))
            // Never associated: keep the receiver on instead of modem-sleeping while
            // "disconnected", or the radio would miss frames.
            .with_sta_disconnected_pm(false),
    )
    .map_err(|e| format!("espnow: the Wi-Fi driver did not start: {e}"))?;
    set_tx_power(&mut controller, tx_power).map_err(|e| format!("espnow: {e}"))?;
    let mut radio = EspNowRadio::new(&controller);
    radio._controller = Some(controller);
    Ok(radio)
}

/// Cap the radio's transmit power at `wifitxpower` (the driver's own unit is a quarter dBm);
/// without it the driver's default stays (esp-radio: 5 dBm). Many cheap ESP32-C3 boards only
/// associate when it is capped around 8.5 dBm.
pub fn set_tx_power(
    controller: &mut WifiController<'static>,
    tx_power: Option<TxPower>,
) -> Result<(), String> {
    let Some(power) = tx_power else {
        return Ok(());
    };
    // 8..=80 quarter dBm by the config's rules, inside the driver's 8..=84.
    let quarters = i8::try_from(power.quarter_dbm()).unwrap_or(i8::MAX);
    controller
        .set_max_tx_power(quarters)
        .map_err(|e| format!("cannot set the transmit power to {power} dBm: {e:?}"))?;
    log::info!("radio: transmit power at most {power} dBm (wifitxpower)");
    Ok(())
}

/// ESP-NOW on the controller of a Wi-Fi station (a Wi-Fi central); the controller stays with
/// the Wi-Fi task.
pub fn on_station(controller: &WifiController<'static>) -> EspNowRadio {
    EspNowRadio::new(controller)
}

impl EspNowRadio {
    fn new(controller: &WifiController<'static>) -> Self {
        // esp-radio initialises ESP-NOW here (once: `esp_now()` panics on a second instance and
        // on a driver that refuses to initialise, a one-time start-up failure) and adds the
        // broadcast peer on the station interface.
        let (manager, sender, receiver) = controller.esp_now().split();
        let mut mac = [0u8; 6];
        mac.copy_from_slice(interface_mac_address(InterfaceMacAddress::Station).as_bytes());
        let mut radio = Self {
            manager,
            sender,
            receiver,
            _controller: None,
            mac,
            peers: Vec::with_capacity(MAX_PEERS),
            uses: 0,
            rate_refused: false,
            oversized: 0,
        };
        if !radio.manager.peer_exists(&BROADCAST_ADDRESS) {
            if let Err(e) = radio.manager.add_peer(peer(BROADCAST_ADDRESS)) {
                log::error!("espnow: cannot add the broadcast peer: {e}");
            }
        }
        radio.set_rate(&BROADCAST_ADDRESS);
        match radio.manager.version() {
            Ok(v) => log::info!(
                "espnow: ESP-NOW v{v} on {}, 802.11b/g/n + LR{}",
                crate::board::mac_string(&radio.mac),
                if radio.rate_refused {
                    ""
                } else {
                    ", frames at LR 250 kbit/s"
                }
            ),
            Err(e) => log::warn!("espnow: ESP-NOW version unknown: {e}"),
        }
        radio
    }

    fn set_rate(&mut self, address: &[u8; 6]) {
        if let Err(e) = self.manager.set_peer_rate(address, long_range()) {
            if !self.rate_refused {
                self.rate_refused = true;
                log::warn!(
                    "espnow: the driver refused the LR 250 kbit/s rate ({e}): sending at its \
                     default rate"
                );
            }
        }
    }

    /// Make `to` a peer, removing the least recently used unicast peer if the table is full.
    fn ensure_peer(&mut self, to: [u8; 6]) -> Result<(), RadioError> {
        self.uses = self.uses.wrapping_add(1);
        let now = self.uses;
        if let Some(entry) = self.peers.iter_mut().find(|(mac, _)| *mac == to) {
            entry.1 = now;
            return Ok(());
        }
        if self.peers.len() >= MAX_PEERS {
            self.evict_oldest();
        }
        let added = match self.manager.add_peer(peer(to)) {
            Err(EspNowError::Error(esp_radio::esp_now::Error::PeerListFull)) => {
                self.evict_oldest();
                self.manager.add_peer(peer(to))
            }
            other => other,
        };
        match added {
            Ok(()) | Err(EspNowError::Error(esp_radio::esp_now::Error::PeerExists)) => {}
            Err(e) => {
                log::warn!(
                    "espnow: cannot add peer {}: {e}",
                    crate::board::mac_string(&to)
                );
                return Err(RadioError::Driver);
            }
        }
        self.set_rate(&to);
        self.peers.push((to, now));
        Ok(())
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .peers
            .iter()
            .enumerate()
            .max_by_key(|(_, (_, used))| self.uses.wrapping_sub(*used))
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            let (mac, _) = self.peers.swap_remove(i);
            if let Err(e) = self.manager.remove_peer(&mac) {
                log::warn!(
                    "espnow: cannot remove peer {}: {e}",
                    crate::board::mac_string(&mac)
                );
            }
        }
    }
}

/// An unencrypted station peer that follows the radio's channel.
fn peer(address: [u8; 6]) -> PeerInfo {
    PeerInfo {
        interface: EspNowWifiInterface::Station,
        peer_address: address,
        lmk: None,
        channel: None,
        encrypt: false,
    }
}

impl Radio for EspNowRadio {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    async fn set_channel(&mut self, channel: u8) -> Result<(), RadioError> {
        if !(1..=13).contains(&channel) {
            return Err(RadioError::BadChannel(channel));
        }
        self.manager.set_channel(channel).map_err(|e| {
            log::warn!("espnow: cannot tune to channel {channel}: {e}");
            match e {
                EspNowError::Error(esp_radio::esp_now::Error::InvalidArgument) => {
                    RadioError::BadChannel(channel)
                }
                _ => RadioError::Driver,
            }
        })
    }

    async fn send(&mut self, to: [u8; 6], frame: &[u8], ack: bool) -> Result<bool, RadioError> {
        if frame.len() > RADIO_MAX_FRAME {
            return Err(RadioError::TooLong);
        }
        let unicast = to != BROADCAST;
        if unicast {
            self.ensure_peer(to)?;
        }
        let sent = with_timeout(
            Duration::from_millis(SEND_TIMEOUT_MS),
            self.sender.send_async(&to, frame),
        )
        .await;
        match sent {
            Ok(Ok(())) => Ok(true),
            // The peer did not acknowledge (unicast only; broadcasts always succeed).
            Ok(Err(EspNowError::SendFailed)) => Ok(!(unicast && ack)),
            Ok(Err(e)) => {
                log::warn!("espnow: send failed: {e}");
                Err(RadioError::Driver)
            }
            Err(_) => {
                log::warn!("espnow: no send callback within {SEND_TIMEOUT_MS} ms");
                Err(RadioError::Driver)
            }
        }
    }

    async fn receive(&mut self) -> RadioFrame {
        loop {
            // Cancel-safe: the queue is popped only when the future completes, and nothing
            // below awaits.
            let received = self.receiver.receive_async().await;
            let info = &received.info;
            let rssi = info
                .rx_control
                .rssi
                .clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
            let channel = u8::try_from(info.rx_control.channel).unwrap_or(0);
            if let Some(frame) = RadioFrame::new(
                info.src_address,
                info.dst_address,
                rssi,
                channel,
                received.data(),
            ) {
                return frame;
            }
            self.oversized = self.oversized.wrapping_add(1);
            if self.oversized.is_power_of_two() {
                log::warn!(
                    "espnow: dropped a {}-byte frame from {} (longer than {RADIO_MAX_FRAME}; \
                     {} so far)",
                    received.data().len(),
                    crate::board::mac_string(&info.src_address),
                    self.oversized
                );
            }
        }
    }
}
