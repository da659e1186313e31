//! The Wi-Fi link: an esp-radio station under the shared stack ([`super::StackNetwork`]).
//!
//! Two tasks run beside the device loop: the embassy-net runner, and the connection task that
//! owns the `WifiController`. While the wish is "up", the connection task associates, waits
//! for the loss of the association and associates again (after [`RECONNECT_PAUSE_MS`]),
//! retrying a failed attempt every [`RETRY_PAUSE_MS`]; the runtime's network supervisor decides
//! when to give up (`down()`), wait and try again (`up()`). On "down" it disconnects, or aborts
//! the attempt in progress.
//!
//! Security: an open network when the config has no password, else WPA2-Personal as the
//! *minimum* (the driver also joins WPA2/WPA3 transition networks). Regulatory domain: the
//! driver's default (country `CN`, channels 1–13).

use alloc::format;
use alloc::string::String;
use core::pin::pin;

use embassy_executor::Spawner;
use embassy_futures::select::{select, select3, Either, Either3};
use embassy_net::Runner;
use embassy_time::{with_timeout, Duration, Timer};
use esp_hal::peripherals::WIFI;
use esp_hal::rng::Rng;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config as WifiConfig, ControllerConfig, Interface, Password, Ssid,
    WifiController, WifiError,
};

use super::espnow::EspNowRadio;
use super::{open, Link, Medium, StackNetwork, StartError, LINK};
use crate::config::Wifi;
use hearth_config::TxPower;

/// Pause after the association was lost before associating again.
const RECONNECT_PAUSE_MS: u64 = 2_000;
/// Pause after a failed association attempt.
const RETRY_PAUSE_MS: u64 = 5_000;
/// Bound on a disconnect (waits for the driver's "disconnected" event).
const DISCONNECT_TIMEOUT_MS: u64 = 5_000;

/// Start the Wi-Fi driver and the network stack, and spawn their tasks. The station does not
/// associate until `Network::up`.
///
/// `espnow`: a Wi-Fi ESP-NOW central's `espnowchannel`. The station then also speaks 802.11 LR,
/// and ESP-NOW is returned, on the same radio: once associated it runs on the access point's
/// channel, and the connection task warns when that is not `espnowchannel`.
pub fn start(
    spawner: Spawner,
    wifi: WIFI<'static>,
    credentials: &Wifi,
    espnow: Option<u8>,
    tx_power: Option<TxPower>,
) -> Result<(StackNetwork, Option<EspNowRadio>), StartError> {
    let ssid = Ssid::try_from(credentials.ssid.as_str())
        .map_err(|e| StartError::config(format!("wifi: ssid {:?}: {e}", credentials.ssid)))?;
    let authentication = match &credentials.password {
        None => AuthenticationMethodConfig::Open,
        Some(p) => AuthenticationMethodConfig::Wpa2Personal(
            Password::try_from(p.as_str())
                .map_err(|e| StartError::config(format!("wifi: password: {e}")))?,
        ),
    };
    let mut station = StationConfig::default()
        .with_ssid(ssid)
        .with_authentication(authentication);
    if espnow.is_some() {
        station = station.with_protocols(super::espnow::protocols());
    }
    let mut controller = WifiController::new(
        wifi,
        ControllerConfig::default()
            .with_initial_config(WifiConfig::Station(station))
            // An ESP-NOW central keeps listening while the association is down.
            .with_sta_disconnected_pm(espnow.is_none()),
    )
    .map_err(|e| StartError {
        message: format!("wifi: the driver did not start: {e}"),
        // The driver validates the SSID and the passphrase against the network settings.
        config: matches!(e, WifiError::InvalidSsid | WifiError::InvalidPassword),
    })?;
    super::espnow::set_tx_power(&mut controller, tx_power)
        .map_err(|e| StartError::driver(format!("wifi: {e}")))?;
    // The RNG is a true RNG once the radio runs.
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let interface = Interface::try_station()
        .ok_or_else(|| StartError::driver(String::from("wifi: the station interface is taken")))?;
    let (network, runner) = open(
        interface,
        embassy_net::Config::dhcpv4(Default::default()),
        seed,
        Medium::Wifi,
    );
    spawner.spawn(net_runner(runner).expect("the network runner is spawned once"));
    let radio = espnow.map(|_| super::espnow::on_station(&controller));
    spawner.spawn(connection(controller, &LINK, espnow).expect("the Wi-Fi task is spawned once"));
    log::info!(
        "wifi: station for {:?} ({})",
        credentials.ssid,
        if credentials.password.is_some() {
            "WPA2-Personal or better"
        } else {
            "open network"
        }
    );
    Ok((network, radio))
}

#[embassy_executor::task]
async fn net_runner(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

/// How an association ended.
enum Ended {
    /// The access point or the radio ended it.
    Lost(Result<esp_radio::wifi::sta::DisconnectedInfo, WifiError>),
    /// `down()` ended it; `up_again` when an `up()` followed.
    Down { up_again: bool },
}

/// How an association attempt ended.
enum Attempt {
    Associated,
    Failed,
    /// `down()` arrived first.
    Cancelled,
}

#[embassy_executor::task]
async fn connection(
    mut controller: WifiController<'static>,
    link: &'static Link,
    espnow: Option<u8>,
) -> ! {
    let mut wanted = false;
    loop {
        if !wanted {
            wanted = link.control.wait().await;
            continue;
        }
        match associate(&mut controller, link, espnow).await {
            Attempt::Associated => {
                // A `down()` is also recognised by its generation bump, in case an `up()`
                // replaced it in the signal before this task saw it.
                let born = link.get().generation;
                let rssi = read_rssi(&controller);
                link.update(|s| {
                    s.carrier = true;
                    s.rssi = rssi;
                });
                let end = {
                    let mut lost = pin!(controller.wait_for_disconnect_async());
                    loop {
                        let every = Timer::after_millis(RSSI_EVERY_MS);
                        match select3(&mut lost, link.control.wait(), every).await {
                            Either3::First(info) => break Ended::Lost(info),
                            Either3::Second(true) if link.get().generation == born => continue,
                            Either3::Second(wish) => break Ended::Down { up_again: wish },
                            Either3::Third(()) => {
                                let rssi = read_rssi(&controller);
                                link.update(|s| s.rssi = rssi);
                            }
                        }
                    }
                };
                link.update(|s| {
                    s.carrier = false;
                    s.rssi = None;
                });
                match end {
                    Ended::Lost(info) => {
                        match info {
                            Ok(info) => log::warn!("wifi: association lost: {:?}", info.reason),
                            Err(e) => log::warn!("wifi: association lost: {e}"),
                        }
                        wanted = pause(link, RECONNECT_PAUSE_MS).await;
                    }
                    Ended::Down { up_again } => {
                        disconnect(&mut controller).await;
                        wanted = up_again;
                    }
                }
            }
            Attempt::Failed => wanted = pause(link, RETRY_PAUSE_MS).await,
            Attempt::Cancelled => {
                wanted = false;
                disconnect(&mut controller).await;
            }
        }
    }
}

/// How often the signal strength is read while associated (the diagnostics sample it once a
/// minute).
const RSSI_EVERY_MS: u64 = 30_000;

/// The access point's signal as the station receives it, dBm; `None` when the driver cannot
/// say.
fn read_rssi(controller: &WifiController<'static>) -> Option<i8> {
    controller
        .rssi()
        .ok()
        .map(|r| r.clamp(i32::from(i8::MIN), 0) as i8)
}

/// One association attempt, abandoned when `down()` arrives. `espnow`: the ESP-NOW central's
/// configured channel, checked against the access point's.
async fn associate(
    controller: &mut WifiController<'static>,
    link: &Link,
    espnow: Option<u8>,
) -> Attempt {
    let mut attempt = pin!(controller.connect_async());
    loop {
        match select(&mut attempt, link.control.wait()).await {
            Either::First(Ok(info)) => {
                log::info!(
                    "wifi: associated with {:?} on channel {}",
                    info.ssid,
                    info.channel
                );
                if let Some(wanted) = espnow.filter(|&c| c != info.channel) {
                    log::warn!(
                        "espnow: the access point is on channel {}, espnowchannel is {wanted}: \
                         ESP-NOW follows the access point, so the peripherals must use channel {}",
                        info.channel,
                        info.channel
                    );
                }
                return Attempt::Associated;
            }
            Either::First(Err(e)) => {
                log::warn!("wifi: association failed: {e:?}");
                return Attempt::Failed;
            }
            Either::Second(true) => continue,
            Either::Second(false) => return Attempt::Cancelled,
        }
    }
}

/// Wait `ms` unless a wish arrives; returns the wish in force afterwards (still "up" unless
/// `down()` came).
async fn pause(link: &Link, ms: u64) -> bool {
    match select(Timer::after_millis(ms), link.control.wait()).await {
        Either::First(()) => true,
        Either::Second(wish) => wish,
    }
}

/// Disconnect, or abort an attempt in progress; bounded, errors only logged.
async fn disconnect(controller: &mut WifiController<'static>) {
    match with_timeout(
        Duration::from_millis(DISCONNECT_TIMEOUT_MS),
        controller.disconnect_async(),
    )
    .await
    {
        Ok(Ok(_)) => log::info!("wifi: disconnected"),
        // Not connected (nor connecting): nothing to do.
        Ok(Err(WifiError::NotConnected)) => {}
        Ok(Err(e)) => log::warn!("wifi: disconnect failed: {e}"),
        Err(_) => log::warn!("wifi: disconnect timed out"),
    }
}
