//! The simulated device's firmware flash: otadata and two app slots in `firmware.bin` next to
//! the key-value flash, the simulator's image format, and the bootloader that picks the slot.
//!
//! A simulated "image" carries what an update needs to be exercised end to end: a version, the
//! appliance it was built for, a health behaviour (`ok`, `never` = never reaches the broker,
//! `crash` = crashes a few seconds after boot), filler to a chosen size, and a SHA-256 of the
//! whole that the bootloader checks, as ESP-IDF's bootloader checks an app image's hash.
//!
//! ```text
//! "HEARTH-SIM-IMAGE" | header length u16 LE | header "key=value\n"… | filler | SHA-256 (32)
//! ```
//!
//! The bootloader behaves like espflash's ESP-IDF bootloader (built without rollback): the
//! otadata entry with the highest sequence selects the slot (slot 0 when none is valid); an
//! image that fails its hash is skipped for the other slot. Trial boots, confirmation and
//! rollback are the application's work (`hearth_runtime::update`), the same code as on the chip.

use std::path::Path;

use hearth_ota::slots::Layout;
use hearth_ota::Slots;
use hearth_storage::FileFlash;
use sha2::{Digest, Sha256};

/// The firmware flash file in the state directory.
pub const FIRMWARE_NAME: &str = "firmware.bin";
/// Each slot: 1 MiB (the chip's are 1.875 MiB; the simulator's images are small).
pub const SLOT_SIZE: u32 = 0x10_0000;
/// otadata at 0, the slots after it.
pub const LAYOUT: Layout = Layout {
    otadata: 0,
    slots: [0x2000, 0x2000 + SLOT_SIZE],
    slot_size: SLOT_SIZE,
};
/// The chip name of simulated devices.
pub const CHIP: &str = "sim";
const MAGIC: &[u8; 16] = b"HEARTH-SIM-IMAGE";
/// Smallest image: magic, header length, hash.
const MIN_LEN: usize = 16 + 2 + 32;

/// How an image behaves once booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Works.
    Ok,
    /// Never reaches the broker (a broken network stack).
    Never,
    /// Crashes a few seconds after boot.
    Crash,
}

impl Health {
    /// Parse `ok`, `never`, `crash`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "never" => Some(Self::Never),
            "crash" => Some(Self::Crash),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Never => "never",
            Self::Crash => "crash",
        }
    }
}

/// What an image says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its version, `MAJOR.MINOR.PATCH`.
    pub version: String,
    /// The appliance it contains (`all` for every one).
    pub appliance: String,
    /// Its behaviour.
    pub health: Health,
}

/// Why bytes are not a simulator image, or an image cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The version is not `MAJOR.MINOR.PATCH`.
    Version(String),
    /// Too small for its header and hash.
    TooSmall {
        /// The least it needs.
        min: usize,
    },
    /// Larger than a slot.
    TooLarge,
    /// No simulator image magic.
    NotAnImage,
    /// The header is cut short or not UTF-8.
    BadHeader,
    /// The header lacks a field.
    Missing(&'static str),
    /// The header's size is outside an image's bounds.
    BadSize,
    /// The header's health is none of `ok`, `never`, `crash`.
    UnknownHealth(String),
    /// The bytes are not as many as the header says.
    Length {
        /// The bytes there are.
        actual: usize,
        /// What the header says.
        header: usize,
    },
    /// The hash at the end does not match the bytes.
    Hash,
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Version(v) => write!(f, "version {v:?} is not MAJOR.MINOR.PATCH"),
            Self::TooSmall { min } => write!(f, "an image needs at least {min} bytes"),
            Self::TooLarge => write!(f, "an image may have at most {SLOT_SIZE} bytes (one slot)"),
            Self::NotAnImage => f.write_str("not a Hearth simulator image"),
            Self::BadHeader => f.write_str("image header truncated or not text"),
            Self::Missing(k) => write!(f, "image header has no {k}"),
            Self::BadSize => f.write_str("image header has a bad size"),
            Self::UnknownHealth(h) => write!(f, "unknown health {h:?}"),
            Self::Length { actual, header } => {
                write!(f, "image is {actual} bytes, its header says {header}")
            }
            Self::Hash => f.write_str("image hash does not match"),
        }
    }
}

impl std::error::Error for ImageError {}

/// Why the simulated bootloader found nothing to boot.
#[derive(Debug)]
pub enum BootError {
    /// The firmware flash file cannot be opened or made.
    Flash(String),
    /// otadata cannot be read.
    Otadata(String),
    /// A slot cannot be read.
    Slot(u8, String),
    /// The factory image cannot be installed on a new device.
    Install(String),
    /// Neither slot holds a valid image.
    NoImage,
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flash(e) => f.write_str(e),
            Self::Otadata(e) => write!(f, "otadata: {e}"),
            Self::Slot(slot, e) => write!(f, "slot {slot}: {e}"),
            Self::Install(e) => write!(f, "installing the factory image: {e}"),
            Self::NoImage => f.write_str("no bootable image in either slot"),
        }
    }
}

impl std::error::Error for BootError {}

/// Why a slot's image cannot boot.
#[derive(Debug)]
enum SlotError {
    Read(String),
    Image(ImageError),
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read it: {e}"),
            Self::Image(e) => e.fmt(f),
        }
    }
}

/// Build an image of exactly `size` bytes (at least large enough for the header and hash).
pub fn build(info: &ImageInfo, size: usize) -> Result<Vec<u8>, ImageError> {
    if hearth_ota::Version::parse(&info.version).is_none() {
        return Err(ImageError::Version(info.version.clone()));
    }
    let header = format!(
        "version={}\nchip={CHIP}\nappliance={}\nhealth={}\nsize={size}\n",
        info.version,
        info.appliance,
        info.health.as_str()
    );
    let min = MIN_LEN + header.len();
    if size < min {
        return Err(ImageError::TooSmall { min });
    }
    if size > SLOT_SIZE as usize {
        return Err(ImageError::TooLarge);
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    // Filler that differs per version, like code does.
    let mut x = Sha256::digest(header.as_bytes());
    while out.len() < size - 32 {
        let n = (size - 32 - out.len()).min(32);
        out.extend_from_slice(&x[..n]);
        x = Sha256::digest(x);
    }
    let hash = Sha256::digest(&out);
    out.extend_from_slice(&hash);
    Ok(out)
}

/// Parse an image's header (without checking its hash): what it says, and its length.
pub fn parse_header(bytes: &[u8]) -> Result<(ImageInfo, usize), ImageError> {
    if bytes.len() < MIN_LEN || &bytes[..16] != MAGIC {
        return Err(ImageError::NotAnImage);
    }
    let n = u16::from_le_bytes([bytes[16], bytes[17]]) as usize;
    let header = bytes
        .get(18..18 + n)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or(ImageError::BadHeader)?;
    let field = |k: &'static str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
            .ok_or(ImageError::Missing(k))
    };
    let health = field("health")?;
    let size: usize = field("size")?
        .parse()
        .ok()
        .filter(|n| (MIN_LEN..=SLOT_SIZE as usize).contains(n))
        .ok_or(ImageError::BadSize)?;
    let info = ImageInfo {
        version: field("version")?,
        appliance: field("appliance")?,
        health: Health::parse(&health).ok_or_else(|| ImageError::UnknownHealth(health.clone()))?,
    };
    Ok((info, size))
}

/// Check a whole image: header, length and hash.
pub fn verify(bytes: &[u8]) -> Result<(ImageInfo, usize), ImageError> {
    let (info, size) = parse_header(bytes)?;
    if bytes.len() != size {
        return Err(ImageError::Length {
            actual: bytes.len(),
            header: size,
        });
    }
    let (body, hash) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != hash {
        return Err(ImageError::Hash);
    }
    Ok((info, size))
}

/// Read and check the image in `slot`.
async fn read_image(slots: &mut Slots<FileFlash>, slot: u8) -> Result<ImageInfo, SlotError> {
    let mut head = [0u8; 256];
    slots
        .read(slot, 0, &mut head)
        .await
        .map_err(|e| SlotError::Read(format!("{e:?}")))?;
    let (_, size) = parse_header(&head).map_err(SlotError::Image)?;
    let mut image = vec![0u8; size.next_multiple_of(4)];
    slots
        .read(slot, 0, &mut image)
        .await
        .map_err(|e| SlotError::Read(format!("{e:?}")))?;
    image.truncate(size);
    verify(&image)
        .map(|(info, _)| info)
        .map_err(SlotError::Image)
}

/// What booted.
pub struct Booted {
    /// The slot.
    pub slot: u8,
    /// Its image.
    pub info: ImageInfo,
    /// The slots, for the runtime's updates.
    pub slots: Slots<FileFlash>,
}

/// The factory image written into slot 0 of a new device: this build's version, every
/// appliance, 64 KiB.
pub fn factory_image() -> Vec<u8> {
    let info = ImageInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        appliance: hearth_ota::manifest::ALL_APPLIANCES.into(),
        health: Health::Ok,
    };
    build(&info, 64 * 1024).expect("the factory image is valid")
}

/// The simulated bootloader: open (or make) the firmware flash, install the factory image on a
/// new device, pick the slot as ESP-IDF's bootloader does, check its image, fall back to the
/// other slot when it is bad. `log` gets one line per decision.
pub async fn boot(state: &Path, log: &mut dyn FnMut(&str)) -> Result<Booted, BootError> {
    let path = state.join(FIRMWARE_NAME);
    let len = (LAYOUT.slots[1] + SLOT_SIZE) as usize;
    let mut flash = FileFlash::open_or_create(&path, len)
        .map_err(|e| BootError::Flash(format!("{}: {e}", path.display())))?;
    if crate::device::current_member().is_some() {
        flash.close_between_operations();
    }
    let mut slots = Slots::new(flash, LAYOUT, 0);
    let entries = slots
        .entries()
        .await
        .map_err(|e| BootError::Otadata(format!("{e:?}")))?;
    let mut first = [0u8; 4];
    slots
        .read(0, 0, &mut first)
        .await
        .map_err(|e| BootError::Slot(0, format!("{e:?}")))?;
    if entries == [None, None] && first == [0xFF; 4] {
        // A new board: "flashed" with this build, as espflash would write ota_0.
        log("bootloader: new device: factory image installed in slot 0");
        let image = factory_image();
        let sha: [u8; 32] = Sha256::digest(&image).into();
        // Written through the update writer, which writes the slot that is not running.
        let mut as_if_slot_1 = Slots::new(slots.into_flash(), LAYOUT, 1);
        let mut w = hearth_ota::Writer::begin(&mut as_if_slot_1, image.len() as u32, sha, 0)
            .await
            .map_err(|e| BootError::Install(e.to_string()))?;
        while !w.complete() {
            let at = w.next() as usize;
            let n = w.chunk_len(at as u32) as usize;
            w.write(&mut as_if_slot_1, at as u32, &image[at..at + n])
                .await
                .map_err(|e| BootError::Install(e.to_string()))?;
        }
        w.finish(&mut as_if_slot_1)
            .await
            .map_err(|e| BootError::Install(e.to_string()))?;
        slots = Slots::new(as_if_slot_1.into_flash(), LAYOUT, 0);
    }
    let chosen = hearth_ota::otadata::boot_slot(entries);
    for slot in [chosen, 1 - chosen] {
        match read_image(&mut slots, slot).await {
            Ok(info) => {
                log(&format!(
                    "bootloader: slot {slot}: firmware {} ({}, health {})",
                    info.version,
                    info.appliance,
                    info.health.as_str()
                ));
                return Ok(Booted {
                    slot,
                    info,
                    slots: Slots::new(slots.into_flash(), LAYOUT, slot),
                });
            }
            Err(e) => log(&format!("bootloader: slot {slot}: no valid image: {e}")),
        }
    }
    Err(BootError::NoImage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(health: Health) -> ImageInfo {
        ImageInfo {
            version: "1.2.3".into(),
            appliance: "weather".into(),
            health,
        }
    }

    #[test]
    fn images_round_trip_and_any_change_breaks_them() {
        let img = build(&info(Health::Crash), 5000).unwrap();
        assert_eq!(img.len(), 5000);
        assert_eq!(verify(&img), Ok((info(Health::Crash), 5000)));
        let mut bad = img.clone();
        bad[3000] ^= 1;
        assert_eq!(verify(&bad), Err(ImageError::Hash));
        assert_eq!(
            verify(&img[..4000]),
            Err(ImageError::Length {
                actual: 4000,
                header: 5000
            })
        );
        assert_eq!(
            format!("{}", verify(&bad).unwrap_err()),
            "image hash does not match"
        );
        assert!(verify(&img[..4000]).is_err());
        assert!(build(&info(Health::Ok), 10).is_err());
        assert!(build(
            &ImageInfo {
                version: "1.2".into(),
                ..info(Health::Ok)
            },
            5000
        )
        .is_err());
        assert_eq!(parse_header(b"\x7fELF"), Err(ImageError::NotAnImage));
    }

    #[test]
    fn a_new_device_boots_its_factory_image_and_a_bad_slot_falls_back() {
        let dir = std::env::temp_dir().join(format!("hearth-fw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lines = Vec::new();
        let booted =
            embassy_futures::block_on(boot(&dir, &mut |l| lines.push(l.to_string()))).unwrap();
        assert_eq!(booted.slot, 0);
        assert_eq!(booted.info.version, env!("CARGO_PKG_VERSION"));
        // otadata selects slot 1, which holds nothing: slot 0 boots.
        let mut slots = booted.slots;
        embassy_futures::block_on(slots.select(1, hearth_ota::State::New)).unwrap();
        drop(slots);
        let again =
            embassy_futures::block_on(boot(&dir, &mut |l| lines.push(l.to_string()))).unwrap();
        assert_eq!(again.slot, 0);
        assert!(
            lines.iter().any(|l| l.contains("slot 1: no valid image")),
            "{lines:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
