//! The device's configuration at boot: reads `config.txt` from the `config` data partition,
//! validates it with `hearth-config`, decides how to run it (`hearth_device::profiles::plan`,
//! as the simulator does: the MQTT runtime for `weather`, the MQTT runtime plus the ESP-NOW
//! central for `scale_manager`/`tnowc`, the ESP-NOW peripheral runtime for
//! `scale_sensor`/`tnowp`), picks the network (Wi-Fi, a W5500 on SPI for `ssid (wired)` and
//! `ssid (wired2)`, none for the battery peripherals, which must say `ssid (none)`), and
//! rejects what no device can run (a battery profile with a network, missing ESP-NOW keys or
//! scale calibration). The chip's own rules (an MQTT profile without a network, an IPv6
//! broker, pins, appliances the image lacks) are `crate::pins::check`.
//!
//! # On-flash format of the `config` partition (data, 8 KiB)
//!
//! Defined once, in `hearth_config::blob`, for both the writer (`hearth flash --config FILE`)
//! and this reader:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 4 | magic `HCFG` |
//! | 4 | 4 | text length N, little-endian `u32` |
//! | 8 | 4 | CRC-32 (IEEE 802.3, as zlib) of the text, little-endian |
//! | 12 | N | the UTF-8 text of `config.txt` |
//!
//! The rest of the partition is erased flash (0xFF). A config pushed over MQTT
//! (`hearth config push`) is installed as a second copy in the second sector, atomically
//! ([`store`], `hearth_config::blob`); the second copy, when valid, is the one in force, and
//! the first then holds the config in force before the push, for [`restore`] when the pushed
//! one fails its trial.
//!
//! # When the config is unusable
//!
//! An erased partition, a foreign or corrupted blob, a text that fails validation, or a valid
//! config this firmware cannot run is a *boot error*: every problem is logged on the serial
//! console and the device enters the safe idle state of [`crate::fatal`]. It does not reset and
//! retries nothing, so a bad config cannot crash-loop the device; flashing a good config and
//! resetting is the way out.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use esp_storage::{FlashStorage, FlashStorageError};
use hearth_config::blob::{self, BlobError, HEADER_LEN};
use hearth_config::{Config, Network};
use hearth_device::profiles::Plan;

use crate::partitions::Region;

/// The name used for the config in messages (errors carry line numbers within it).
const SHOWN: &str = "config.txt";

/// A config the firmware can run.
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// How it runs (runtime settings, ESP-NOW link settings, the scale's settings).
    pub plan: Plan,
    /// How the device reaches the LAN.
    pub uplink: Uplink,
}

/// How the device reaches the LAN.
pub enum Uplink {
    /// A Wi-Fi station.
    Wifi(Wifi),
    /// Ethernet through a W5500 on SPI (`ssid (wired)`; also `ssid (wired2)`, which names an
    /// RMII board in the reference: these chips have no Ethernet MAC, so both mean the W5500).
    Ethernet,
    /// No LAN (`ssid (none)`): a battery ESP-NOW peripheral.
    None,
}

/// The Wi-Fi station credentials.
pub struct Wifi {
    /// Network name.
    pub ssid: String,
    /// WPA2 passphrase; `None` = open network.
    pub password: Option<String>,
}

/// Read, validate and check the config. On failure, returns every problem as a line of text.
pub fn load(flash: &mut FlashStorage<'_>, partition: &Region) -> Result<Loaded, Vec<String>> {
    let text = read_text(flash, partition)
        .map_err(|e| alloc::vec![format!("{SHOWN} (partition {partition}): {e}")])?;
    from_text(&text)
}

/// The config in force, when the one thing it lacks is its Wi-Fi (`hearth_config::provision`):
/// the board then asks for it on its console (`crate::improv`). Its text and the device name.
pub fn awaiting_wifi(flash: &mut FlashStorage<'_>, partition: &Region) -> Option<(String, String)> {
    let text = read_text(flash, partition).ok()?;
    let rules = |t: &str| hearth_device::CONFIG_RULES(t, crate::board::CHIP_ID, crate::pins::IMAGE);
    let name =
        hearth_config::provision::awaiting(&text, hearth_device::profiles::parse_config, rules)?
            .mqtt
            .name;
    Some((text, name))
}

/// Validate `text` as [`load`] does.
pub fn from_text(text: &str) -> Result<Loaded, Vec<String>> {
    let config = hearth_device::profiles::parse_config(text).map_err(|errors| {
        let mut lines: Vec<String> = errors
            .as_slice()
            .iter()
            .map(|e| format!("{}", e.located(SHOWN)))
            .collect();
        lines.push(format!("{SHOWN}: {} error(s)", errors.len()));
        lines
    })?;
    let plan = hearth_device::profiles::plan(&config).map_err(|e| vec![format!("{SHOWN}: {e}")])?;
    // The chip's own rules (firmware profiles, appliances in the image, IPv4, pins) are
    // `crate::pins::check`, run next by `main` with the rest of the wiring.
    let uplink = match &config.network {
        Network::Wifi { ssid, password } => Uplink::Wifi(Wifi {
            ssid: ssid.clone(),
            password: password.clone(),
        }),
        Network::Wired => Uplink::Ethernet,
        Network::Wired2 => {
            log::warn!(
                "{SHOWN}: `ssid (wired2)` (a LAN8720 board in the reference) means the W5500 on \
                 SPI here, as `ssid (wired)` does"
            );
            Uplink::Ethernet
        }
        // `pins::check` refuses it for the MQTT profiles (no network).
        Network::None => Uplink::None,
    };
    Ok(Loaded {
        config,
        plan,
        uplink,
    })
}

/// The config in force: the pushed copy in the partition's second sector when it is valid,
/// else the copy `hearth flash` wrote at its start (see `hearth_config::blob`).
fn read_text<F: ReadNorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
) -> Result<String, ReadError> {
    if let Some(second) = second_copy(partition) {
        if let Ok(text) = read_copy(flash, &second) {
            log::info!("config: using the config pushed over MQTT");
            return Ok(text);
        }
    }
    read_copy(flash, partition)
}

/// Is the config in force the one pushed over MQTT (the second copy, valid)?
pub fn pushed_in_force<F: ReadNorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
) -> bool {
    second_copy(partition).is_some_and(|second| read_copy(flash, &second).is_ok())
}

/// Where the pushed copy lives: the partition's second sector, if the partition has one.
fn second_copy(partition: &Region) -> Option<Region> {
    (partition.len as usize >= blob::SECOND_COPY + blob::COPY_LEN).then(|| Region {
        label: partition.label.clone(),
        offset: partition.offset + blob::SECOND_COPY as u32,
        len: blob::COPY_LEN as u32,
    })
}

/// The text of the config blob at the start of `partition`.
fn read_copy<F: ReadNorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
) -> Result<String, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    flash
        .read(partition.offset, &mut header)
        .map_err(ReadError::Flash)?;
    let Some(total) = blob::declared_len(&header) else {
        // Not our magic: let the decoder say whether it is erased or foreign.
        return Err(match blob::decode(&header) {
            Err(e) => ReadError::Blob(e),
            Ok(_) => ReadError::Blob(BlobError::BadMagic),
        });
    };
    let room = partition.len as usize;
    if total > room {
        return Err(ReadError::Blob(BlobError::TooLong {
            declared: total - HEADER_LEN,
            room: room - HEADER_LEN,
        }));
    }
    let mut bytes = vec![0u8; total];
    flash
        .read(partition.offset, &mut bytes)
        .map_err(ReadError::Flash)?;
    blob::decode(&bytes)
        .map(String::from)
        .map_err(ReadError::Blob)
}

/// Why a config could not be stored or restored.
#[derive(Debug)]
pub enum StoreError {
    /// The partition table has no `config` partition.
    NoPartition,
    /// The config partition is one sector: there is no room for a second copy, so a pushed
    /// config cannot be installed beside the one in force, nor taken back.
    NoSecondCopy(Region),
    /// The copies on flash do not allow it (`hearth_config::blob::plan_push`/`plan_restore`
    /// say why: too long, nothing to go back from, the previous copy not whole).
    Refused(&'static str),
    /// The flash refused a read, an erase or a write.
    Flash(FlashStorageError),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoPartition => f.write_str("no config partition"),
            Self::NoSecondCopy(p) => {
                write!(f, "the config partition {p} has no room for a second copy")
            }
            Self::Refused(why) => f.write_str(why),
            Self::Flash(e) => write!(f, "flash: {e:?}"),
        }
    }
}

/// Install `text` as the config of the next boot, atomically, keeping the config in force as
/// the previous copy (two copies, see `hearth_config::blob`): a power cut at any point leaves
/// the old config or the new one, and a complete push leaves the old one in the first copy
/// for [`restore`].
pub fn store<F: NorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
    text: &str,
) -> Result<(), StoreError> {
    let second =
        second_copy(partition).ok_or_else(|| StoreError::NoSecondCopy(partition.clone()))?;
    let in_force = read_copy(flash, &second).ok();
    let mut header = [0u8; HEADER_LEN];
    flash
        .read(partition.offset, &mut header)
        .map_err(StoreError::Flash)?;
    let first_len = blob::declared_len(&header).unwrap_or(0);
    let new = blob::encode(text);
    let keep =
        blob::plan_push(in_force.is_some(), first_len, new.len()).map_err(StoreError::Refused)?;
    if let (true, Some(old)) = (keep, in_force) {
        // The pushed config in force becomes the previous copy; it stays in force meanwhile.
        write_copy(flash, partition.offset, blob::encode(&old))?;
    }
    write_copy(flash, second.offset, new)
}

/// Replace the config in force by `text` for good (the Wi-Fi given over the console): written
/// as the second copy first, then as the first, then the second copy erased, so a power cut at
/// any point leaves a whole config in force (the old one, or the new one in either copy).
pub fn store_provisioned<F: NorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
    text: &str,
) -> Result<(), StoreError> {
    let second =
        second_copy(partition).ok_or_else(|| StoreError::NoSecondCopy(partition.clone()))?;
    let new = blob::encode(text);
    if new.len() > blob::COPY_LEN {
        return Err(StoreError::Refused("the config does not fit its partition"));
    }
    write_copy(flash, second.offset, new.clone())?;
    write_copy(flash, partition.offset, new)?;
    flash
        .erase(second.offset, second.offset + blob::COPY_LEN as u32)
        .map_err(StoreError::Flash)
}

/// Put back the config that was in force before the last [`store`]: erase the pushed copy,
/// once the previous one (the first copy) is known to be whole.
pub fn restore<F: NorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    partition: &Region,
) -> Result<(), StoreError> {
    let second =
        second_copy(partition).ok_or_else(|| StoreError::NoSecondCopy(partition.clone()))?;
    let first = read_copy(flash, partition).is_ok();
    let pushed = read_copy(flash, &second).is_ok();
    let erase = blob::plan_restore(first, pushed).map_err(StoreError::Refused)?;
    let at = partition.offset + erase.offset() as u32;
    flash
        .erase(at, at + blob::COPY_LEN as u32)
        .map_err(StoreError::Flash)
}

/// Erase the sector at `at` and write `bytes` (one blob, at most a sector) there.
fn write_copy<F: NorFlash<Error = FlashStorageError>>(
    flash: &mut F,
    at: u32,
    mut bytes: Vec<u8>,
) -> Result<(), StoreError> {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0xFF);
    }
    flash
        .erase(at, at + blob::COPY_LEN as u32)
        .map_err(StoreError::Flash)?;
    flash.write(at, &bytes).map_err(StoreError::Flash)
}

enum ReadError {
    Flash(esp_storage::FlashStorageError),
    Blob(BlobError),
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "flash read failed: {e:?}"),
            Self::Blob(e) => write!(f, "{e}"),
        }
    }
}
