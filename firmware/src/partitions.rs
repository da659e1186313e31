//! The flash layout: finds Hearth's two data partitions in the ESP-IDF partition table
//! (`partitions.csv`): `hearth`, the key-value store, and `config`, the `config.txt` blob.
//!
//! Both are found by type `data` and label, as `hearth flash` finds the config partition, and
//! both have the subtype `undefined` (0x06). Custom data subtypes (0x40 and up) would be
//! natural but break both ends of the tool chain: espflash's partition-table parser
//! (esp-idf-part 0.6) panics on a data partition with an unknown subtype, and
//! esp-bootloader-esp-idf's `find_partition` panics when it walks past one (its
//! `PartitionType` has no variant for them). Lookup here uses only the raw fields, so a table
//! made by ESP-IDF's own tool with custom subtypes still works on the device.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::ops::Range;

use esp_bootloader_esp_idf::partitions::{self, PartitionEntry, PARTITION_TABLE_MAX_LEN};
use esp_storage::FlashStorage;

/// ESP-IDF partition type `data`.
const TYPE_DATA: u8 = 0x01;
/// ESP-IDF data subtype `undefined`, the one `partitions.csv` gives Hearth's partitions.
const SUBTYPE_UNDEFINED: u8 = 0x06;
/// Label of the key-value store's partition (a sequential-storage map, see `hearth-storage`).
pub const LABEL_STORE: &str = "hearth";
/// Label of the config partition (`config.txt` as a blob, see [`crate::config`]).
pub const LABEL_CONFIG: &str = "config";

/// A partition's place on flash, in absolute flash addresses.
#[derive(Debug, Clone)]
pub struct Region {
    /// The label in the partition table.
    pub label: String,
    /// First byte.
    pub offset: u32,
    /// Size in bytes.
    pub len: u32,
}

impl Region {
    /// The absolute flash range.
    pub fn range(&self) -> Range<u32> {
        self.offset..self.offset + self.len
    }

    fn from_entry(entry: &PartitionEntry) -> Self {
        // `label_as_str` trusts the bytes to be UTF-8; decode them ourselves instead.
        let raw = entry.label();
        let end = raw
            .iter()
            .position(|&b| b == 0 || b == 0xff)
            .unwrap_or(raw.len());
        Self {
            label: String::from_utf8_lossy(&raw[..end]).into_owned(),
            offset: entry.offset(),
            len: entry.len(),
        }
    }
}

impl core::fmt::Display for Region {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`{}` at {:#x}, {} KiB",
            self.label,
            self.offset,
            self.len / 1024
        )
    }
}

/// Hearth's data partitions.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The key-value store.
    pub store: Region,
    /// The config blob.
    pub config: Region,
    /// otadata and the two app slots, and the slot that booted; `None` (with the reason) when
    /// the table lacks them or the app did not boot from one of them.
    pub ota: Result<(hearth_ota::Layout, u8), String>,
}

/// ESP-IDF partition type `app`, subtypes `ota_0` and `ota_1`; data subtype `ota`.
const TYPE_APP: u8 = 0x00;
const SUBTYPE_OTA_0: u8 = 0x10;
const SUBTYPE_OTA_1: u8 = 0x11;
const SUBTYPE_OTADATA: u8 = 0x00;

/// The update slots of `table`, and which one booted.
fn ota_layout(table: &partitions::PartitionTable<'_>) -> Result<(hearth_ota::Layout, u8), String> {
    let find = |ty: u8, sub: u8, what: &str| {
        table
            .iter()
            .find(|e| e.raw_type() == ty && e.raw_subtype() == sub)
            .ok_or_else(|| format!("the partition table has no {what} partition: updates are off"))
    };
    let otadata = find(TYPE_DATA, SUBTYPE_OTADATA, "otadata")?;
    let slot0 = find(TYPE_APP, SUBTYPE_OTA_0, "ota_0")?;
    let slot1 = find(TYPE_APP, SUBTYPE_OTA_1, "ota_1")?;
    if otadata.len() < hearth_ota::otadata::OTADATA_LEN {
        return Err(String::from(
            "otadata is smaller than two sectors: updates are off",
        ));
    }
    let booted = table
        .booted_partition()
        .map_err(|e| format!("cannot tell the booted partition: {e}"))?
        .ok_or("the booted partition is not in the table")?;
    let running = if booted.offset() == slot0.offset() {
        0
    } else if booted.offset() == slot1.offset() {
        1
    } else {
        return Err(String::from(
            "the app did not boot from ota_0 or ota_1: updates are off",
        ));
    };
    let layout = hearth_ota::Layout {
        otadata: otadata.offset(),
        slots: [slot0.offset(), slot1.offset()],
        slot_size: slot0.len().min(slot1.len()),
    };
    Ok((layout, running))
}

/// Read the partition table and find Hearth's partitions. Every problem is described in the
/// returned text, which names the partition the table lacks.
pub fn find(flash: &mut FlashStorage<'_>) -> Result<Layout, String> {
    let mut buf = vec![0u8; PARTITION_TABLE_MAX_LEN];
    let table = partitions::read_partition_table(flash, &mut buf)
        .map_err(|e| format!("cannot read the partition table: {e}"))?;
    let find = |name: &str| {
        let entry = table
            .iter()
            .find(|e| e.raw_type() == TYPE_DATA && Region::from_entry(e).label == name)
            .ok_or_else(|| {
                format!(
                    "the partition table has no data partition labelled `{name}`; flash the \
                     image built with firmware/partitions.csv (hearth flash)"
                )
            })?;
        if entry.raw_subtype() != SUBTYPE_UNDEFINED {
            log::info!(
                "partitions: `{name}` has data subtype {:#04x} (partitions.csv uses undefined)",
                entry.raw_subtype()
            );
        }
        Ok::<_, String>(Region::from_entry(&entry))
    };
    let store = find(LABEL_STORE)?;
    let config = find(LABEL_CONFIG)?;
    let sector = FlashStorage::SECTOR_SIZE;
    for region in [&store, &config] {
        if region.offset % sector != 0 || region.len % sector != 0 || region.len == 0 {
            return Err(format!(
                "partition {region} is not aligned to the {sector}-byte flash sector"
            ));
        }
    }
    let ota = ota_layout(&table);
    Ok(Layout { store, config, ota })
}
