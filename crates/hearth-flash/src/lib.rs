//! hearth-flash: turns a firmware ELF and a `config.txt` into what goes on a board's flash —
//! the ESP-IDF second-stage bootloader, Hearth's partition table, the app image and the config
//! blob — using espflash as a library. It can save one merged image (no board needed) or write
//! the segments to a board over its serial port, and it can show the board's serial log.
//!
//! It owns the board's flash layout ([`PARTITIONS_CSV`]) and the last check before anything is
//! written: [`load_config`] applies every rule the chip applies at boot, so a config it
//! accepts boots.
//!
//! ```
//! use hearth_flash::{load_config, FlashError, Target};
//!
//! let target = Target::parse("c3").unwrap();
//! assert_eq!(target.triple(), "riscv32imc-unknown-none-elf");
//!
//! let path = std::env::temp_dir().join(format!("hearth-flash-doc-{}.txt", std::process::id()));
//! let config = "profile weather\nssid Home\nmqttbroker 192.168.1.2\nmqttname attic\n";
//! std::fs::write(&path, config).unwrap();
//! assert_eq!(load_config(&path, target).unwrap(), config);
//!
//! // GPIO12 is wired to the C3's SPI flash: refused before an image is built.
//! std::fs::write(&path, format!("{config}i2csda 12\n")).unwrap();
//! let err = load_config(&path, target).unwrap_err();
//! assert!(matches!(err, FlashError::Config(_)));
//! assert!(err.to_string().contains("GPIO12 belongs to the SPI flash"), "{err}");
//!
//! // Without Wi-Fi: written as it is (the board asks for it on its console, `provision`),
//! // checked by every other rule.
//! let no_wifi = config.replace("ssid Home\n", "");
//! std::fs::write(&path, &no_wifi).unwrap();
//! assert_eq!(load_config(&path, target).unwrap(), no_wifi);
//! std::fs::write(&path, format!("{no_wifi}i2csda 12\n")).unwrap();
//! assert!(load_config(&path, target).is_err());
//! std::fs::remove_file(&path).unwrap();
//! ```

pub mod ask;
pub mod provision;

use std::borrow::Cow;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use espflash::flasher::{FlashData, FlashSettings};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::image_format::Segment;
use espflash::target::{Chip, XtalFrequency};

/// Hearth's partition table: two OTA app slots, otadata, and the data partitions the firmware
/// looks up by name (`hearth` for the key-value store, `config` for `config.txt`).
pub const PARTITIONS_CSV: &str = include_str!("../../../firmware/partitions.csv");

/// The name of the config partition in [`PARTITIONS_CSV`].
pub const CONFIG_PARTITION: &str = "config";

/// A chip Hearth builds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// ESP32-C3 (riscv32imc).
    Esp32c3,
    /// ESP32-C6 (riscv32imac).
    Esp32c6,
}

impl Target {
    /// Parse `esp32c3` / `c3` / `esp32c6` / `c6`.
    pub fn parse(s: &str) -> Result<Self, FlashError> {
        match s.to_ascii_lowercase().as_str() {
            "esp32c3" | "c3" | "esp32-c3" => Ok(Self::Esp32c3),
            "esp32c6" | "c6" | "esp32-c6" => Ok(Self::Esp32c6),
            _ => Err(FlashError::Usage(format!(
                "unknown chip {s:?}: Hearth builds for esp32c3 and esp32c6 (classic ESP32 and ESP32-S3 need Espressif's toolchain)"
            ))),
        }
    }

    /// The Rust target triple of the firmware.
    pub fn triple(self) -> &'static str {
        match self {
            Self::Esp32c3 => "riscv32imc-unknown-none-elf",
            Self::Esp32c6 => "riscv32imac-unknown-none-elf",
        }
    }

    fn chip(self) -> Chip {
        match self {
            Self::Esp32c3 => Chip::Esp32c3,
            Self::Esp32c6 => Chip::Esp32c6,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Esp32c3 => "esp32c3",
            Self::Esp32c6 => "esp32c6",
        })
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The config file is invalid; nothing was written.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// espflash refused the ELF or the partition table.
    #[error("building the image failed: {0}")]
    Image(String),
    /// The config does not fit its partition.
    #[error("the config needs {need} bytes but the config partition holds {room}")]
    ConfigTooLarge {
        /// Bytes needed.
        need: usize,
        /// Partition size.
        room: usize,
    },
    /// Talking to the board failed.
    #[error("board: {0}")]
    Board(String),
}

fn io_err(path: &Path, source: std::io::Error) -> FlashError {
    FlashError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Read and validate a config file for `target`: the same rules as the simulator and every
/// rule the chip applies at boot (`hearth_device::chips`: its pins, the appliances a full
/// image contains, ...), so a config this accepts boots. Every error is listed with its line.
pub fn load_config(path: &Path, target: Target) -> Result<String, FlashError> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| FlashError::Config(format!("{}: not UTF-8 text", path.display())))?;
    check_config(&text, &path.display().to_string(), target)?;
    Ok(text)
}

/// [`load_config`]'s checks on a config's text (`shown`: its name in messages).
pub fn check_config(text: &str, shown: &str, target: Target) -> Result<(), FlashError> {
    let text = text.to_string();
    // A config without Wi-Fi is written as it is, checked as it will be once the board has
    // been given a network over its console (Improv: `hearth provision`, a browser installer).
    let awaiting =
        hearth_config::provision::awaits_wifi(&hearth_device::profiles::parse_config(&text));
    let checked = match awaiting {
        true => hearth_config::provision::with_wifi(&text, "probe", "")
            .map_err(|e| FlashError::Config(format!("{shown}: {e}")))?,
        false => text.clone(),
    };
    if awaiting {
        eprintln!(
            "{shown}: no Wi-Fi: the board will wait for it on its USB console \
             (`hearth provision --port PORT`, or a browser installer)"
        );
    }
    let config = match hearth_device::profiles::parse_config(&checked) {
        Ok(c) => c,
        Err(errors) => {
            return Err(FlashError::Config(format!(
                "{}\n{shown}: {} error(s); nothing was written",
                errors.located(shown),
                errors.len()
            )))
        }
    };
    let plan = match hearth_device::profiles::plan(&config) {
        Ok(plan) => plan,
        Err(e) => {
            return Err(FlashError::Config(format!(
                "{shown}: {e}; nothing was written"
            )))
        }
    };
    let chip = hearth_device::chips::chip(&target.to_string())
        .ok_or_else(|| FlashError::Usage(format!("no chip rules for {target}")))?;
    match hearth_device::chips::check(&config, &plan, chip, hearth_device::chips::FULL_IMAGE) {
        Ok(wiring) => {
            for w in wiring.warnings {
                eprintln!("{shown}: warning: {w}");
            }
            Ok(())
        }
        Err(rejected) => Err(FlashError::Config(format!(
            "{}\n{shown}: {} error(s) on the {target}; nothing was written",
            rejected
                .problems
                .iter()
                .map(|p| format!("{shown}: {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
            rejected.problems.len()
        ))),
    }
}

/// The segments of a complete board image: bootloader, partition table, app, config.
pub struct BoardImage {
    /// Segments in address order.
    pub segments: Vec<Segment<'static>>,
    /// Size of the app image alone (what an OTA update sends).
    pub app_size: usize,
}

fn owned(seg: Segment<'_>) -> Segment<'static> {
    Segment {
        addr: seg.addr,
        data: Cow::Owned(seg.data.into_owned()),
    }
}

/// Build the image for `target` from the firmware ELF and the config text.
pub fn build_image(
    target: Target,
    elf: &[u8],
    config_text: &str,
) -> Result<BoardImage, FlashError> {
    // espflash reads the table from a path: give every call its own file.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("hearth-flash-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    let csv = dir.join("partitions.csv");
    std::fs::write(&csv, PARTITIONS_CSV).map_err(|e| io_err(&csv, e))?;
    let flash_data = FlashData::new(
        FlashSettings::default(),
        0,
        None,
        target.chip(),
        XtalFrequency::_40Mhz,
    );
    let built = IdfBootloaderFormat::new(elf, &flash_data, Some(&csv), None, None, None);
    let _ = std::fs::remove_dir_all(&dir);
    let format = built.map_err(|e| FlashError::Image(e.to_string()))?;
    let table = format.partition_table();
    let config = table.find(CONFIG_PARTITION).ok_or_else(|| {
        FlashError::Image(format!(
            "the partition table has no `{CONFIG_PARTITION}` partition"
        ))
    })?;
    let (config_offset, config_size) = (config.offset(), config.size() as usize);
    let mut segments: Vec<Segment<'static>> = format.flash_segments().map(owned).collect();
    let app_size = segments.last().map_or(0, |s| s.data().len());
    let mut blob = hearth_config::blob::encode(config_text);
    if blob.len() > config_size {
        return Err(FlashError::ConfigTooLarge {
            need: blob.len(),
            room: config_size,
        });
    }
    // The whole partition: flashing a config also erases a copy pushed over MQTT, which
    // would otherwise stay in force (see `hearth_config::blob`).
    blob.resize(config_size, 0xFF);
    segments.push(Segment {
        addr: config_offset,
        data: Cow::Owned(blob),
    });
    segments.sort_by_key(|s| s.addr);
    Ok(BoardImage { segments, app_size })
}

/// One image of the whole flash from address 0, gaps filled with erased bytes (0xFF).
pub fn merge(image: &BoardImage) -> Vec<u8> {
    let end = image
        .segments
        .iter()
        .map(|s| s.addr as usize + s.data().len())
        .max()
        .unwrap_or(0);
    let mut out = vec![0xFF; end];
    for s in &image.segments {
        let at = s.addr as usize;
        out[at..at + s.data().len()].copy_from_slice(s.data());
    }
    out
}

/// `hearth flash --save-image`: write the merged image to `out`.
pub fn save_image(
    target: Target,
    elf_path: &Path,
    config_path: &Path,
    out: &Path,
) -> Result<BoardImage, FlashError> {
    let config = load_config(config_path, target)?;
    save_image_text(target, elf_path, &config, out)
}

/// [`save_image`] with a config text that has been checked ([`check_config`]).
pub fn save_image_text(
    target: Target,
    elf_path: &Path,
    config: &str,
    out: &Path,
) -> Result<BoardImage, FlashError> {
    let elf = std::fs::read(elf_path).map_err(|e| io_err(elf_path, e))?;
    let image = build_image(target, &elf, config)?;
    std::fs::write(out, merge(&image)).map_err(|e| io_err(out, e))?;
    Ok(image)
}

struct Progress {
    total: usize,
    addr: u32,
}

impl espflash::target::ProgressCallbacks for Progress {
    fn init(&mut self, addr: u32, total: usize) {
        self.addr = addr;
        self.total = total.max(1);
        print!("  0x{addr:06x} [{:<40}]   0%", "");
        let _ = std::io::stdout().flush();
    }

    fn update(&mut self, current: usize) {
        let filled = current * 40 / self.total;
        print!(
            "\r  0x{:06x} [{:<40}] {:>3}%",
            self.addr,
            "#".repeat(filled.min(40)),
            current * 100 / self.total
        );
        let _ = std::io::stdout().flush();
    }

    fn verifying(&mut self) {
        print!("  verifying");
        let _ = std::io::stdout().flush();
    }

    fn finish(&mut self, skipped: bool) {
        println!(
            "{}",
            if skipped {
                "  (unchanged, skipped)"
            } else {
                "  done"
            }
        );
    }
}

fn open_port(port: &str, baud: u32) -> Result<espflash::connection::Port, FlashError> {
    serialport::new(port, baud)
        .timeout(Duration::from_secs(3))
        .open_native()
        .map_err(|e| FlashError::Board(format!("cannot open {port}: {e}")))
}

/// `hearth flash --port`: write every segment to the board on `port` and reset it.
pub fn flash(target: Target, image: &BoardImage, port: &str) -> Result<(), FlashError> {
    use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
    let serial = open_port(port, 115_200)?;
    let info = serialport::UsbPortInfo {
        vid: 0,
        pid: 0,
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let connection = Connection::new(
        serial,
        info,
        ResetAfterOperation::HardReset,
        ResetBeforeOperation::DefaultReset,
        115_200,
    );
    let mut flasher = espflash::flasher::Flasher::connect(
        connection,
        true,
        true,
        true,
        Some(target.chip()),
        Some(921_600),
    )
    .map_err(|e| FlashError::Board(e.to_string()))?;
    let mut progress = Progress { total: 1, addr: 0 };
    flasher
        .write_bins_to_flash(&image.segments, &mut progress)
        .map_err(|e| FlashError::Board(e.to_string()))?;
    flasher
        .connection()
        .reset()
        .map_err(|e| FlashError::Board(format!("flashed, but the reset failed: {e}")))?;
    Ok(())
}

/// `hearth flash monitor`: copy the board's serial output to stdout until the port closes.
pub fn monitor(port: &str, baud: u32) -> Result<(), FlashError> {
    let mut serial = open_port(port, baud)?;
    let mut buf = [0u8; 1024];
    let mut out = std::io::stdout();
    loop {
        match serial.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(FlashError::Board(format!("{port}: {e}"))),
        }
    }
}
