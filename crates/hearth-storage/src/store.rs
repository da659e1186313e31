//! [`KvStore`]: typed, power-loss-safe key-value storage on a range of NOR flash, built on
//! sequential-storage's map. Owns the typed API, the open sequence (repairs from
//! [`crate::recovery`], a full scan, a format when the contents are unusable), the read-back
//! check of every write, and the corruption policy during operations.

use core::ops::Range;

use embedded_storage_async::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use sequential_storage::cache::key_pointers::ArrayKeyPointers;
use sequential_storage::cache::page_pointers::ArrayPagePointers;
use sequential_storage::cache::page_states::ArrayPageStates;
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};
use sequential_storage::Error as SsError;

use crate::error::{FormatReason, OpenReport, StoreError};
use crate::keys::{self, Key, KEY_CACHE_SLOTS};
use crate::recovery;
use crate::value::{Stored, ValueKind, ITEM_PREFIX_LEN, MAX_VALUE_LEN};

/// Most erase sectors one store may span (128 KiB with 4 KiB sectors). Bounds the RAM of the
/// page caches, which are fixed-size arrays.
pub const MAX_PAGES: usize = 32;

/// Attempts at a write that does not read back before the range is declared corrupted.
const WRITE_ATTEMPTS: u32 = 3;

/// Largest flash word sequential-storage supports; buffers are rounded up to it.
pub(crate) const MAX_WORD: usize = 32;

/// Item data buffer: large enough for any item that fits a 4 KiB sector (the ESP32's), not
/// just for the largest value this firmware writes. Then no item in flash, whether written by
/// another firmware version or left by a power cut with a damaged header that still checks
/// out, is too large to read past or to copy during garbage collection.
const ITEM_BUF_LEN: usize = 4096;

const _: () = assert!(ITEM_BUF_LEN >= ITEM_PREFIX_LEN + MAX_VALUE_LEN);
const _: () = assert!(ITEM_BUF_LEN.is_multiple_of(MAX_WORD));

/// The caches: page states and page write pointers for every sector, and the flash address of
/// the newest item of up to [`KEY_CACHE_SLOTS`] keys. About 450 bytes of RAM; they save almost
/// all flash reads of a lookup. They start empty at every `open`.
type KvCache = Cache<
    ArrayPageStates<MAX_PAGES>,
    ArrayPagePointers<MAX_PAGES>,
    ArrayKeyPointers<Key, KEY_CACHE_SLOTS>,
    Key,
>;

type Map<F> = MapStorage<Key, F, KvCache>;

fn fresh_cache() -> KvCache {
    Cache::new(
        ArrayPageStates::new(),
        ArrayPagePointers::new(),
        ArrayKeyPointers::new(),
    )
}

/// Word-aligned item buffer. sequential-storage writes item data straight from this buffer,
/// and esp-storage has to copy unaligned buffers first.
#[repr(C, align(4))]
pub(crate) struct ItemBuf(pub(crate) [u8; ITEM_BUF_LEN]);

impl ItemBuf {
    pub(crate) const fn new() -> Self {
        ItemBuf([0; ITEM_BUF_LEN])
    }
}

/// A typed key-value store in `range` of the NOR flash `F`.
///
/// Values are `u32`, byte strings or UTF-8 text of at most [`MAX_VALUE_LEN`] bytes; each is
/// stored with a type tag so that reading with the wrong type is [`StoreError::WrongType`].
/// Well-known keys ([`keys::WELL_KNOWN`]) also have a declared type and length that writes must
/// respect.
///
/// Every write appends one item (sequential-storage), so a power cut at any moment leaves each
/// key at its previous or its new value. See the crate documentation for the corruption policy.
pub struct KvStore<F: NorFlash> {
    /// Always `Some` between calls: it is only taken inside [`Self::erase_range`] to rebuild the
    /// caches and is put back before that function returns.
    map: Option<Map<F>>,
    range: Range<u32>,
    max_value_len: usize,
    report: OpenReport,
    buf: ItemBuf,
}

impl<F: NorFlash> KvStore<F> {
    /// Open the store in `range` of `flash`, repairing or formatting it if needed.
    ///
    /// Fails only when the range is unusable ([`StoreError::BadRange`]) or the flash driver
    /// reports an I/O error. Corrupted or foreign contents are erased instead, and
    /// [`Self::report`] says so; check it and log it.
    pub async fn open(flash: F, range: Range<u32>) -> Result<Self, StoreError> {
        let config = validate_range::<F>(&flash, &range)?;
        let mut store = KvStore {
            map: Some(MapStorage::new(flash, config, fresh_cache())),
            max_value_len: max_value_len::<F>(),
            range,
            report: OpenReport::default(),
            buf: ItemBuf::new(),
        };
        // The caches are still empty, so the flash may change under the map until first use.
        let flash = live(&mut store.map)?.flash();
        store.report.scrubbed_pages =
            recovery::prepare(flash, &store.range, &mut store.buf.0).await?;
        if let Some(reason) = store.health_check().await? {
            log::error!("storage: {reason}; formatting the whole range, all values are lost");
            store.erase_range().await?;
            store.report.formatted = Some(reason);
        }
        Ok(store)
    }

    /// What [`Self::open`] found and did.
    pub fn report(&self) -> OpenReport {
        self.report
    }

    /// The flash range of the store.
    pub fn range(&self) -> Range<u32> {
        self.range.clone()
    }

    /// Largest value length this store accepts: [`MAX_VALUE_LEN`], or less when a flash sector
    /// is too small to hold it.
    pub fn max_value_len(&self) -> usize {
        self.max_value_len
    }

    /// The `u32` stored under `key`, `None` if missing.
    pub async fn get_u32(&mut self, key: Key) -> Result<Option<u32>, StoreError> {
        self.read(key, |stored| match stored {
            Stored::Present {
                kind: ValueKind::U32,
                payload,
            } => <[u8; 4]>::try_from(payload)
                .map(u32::from_le_bytes)
                .map_err(|_| StoreError::Undecodable { key }),
            other => Err(wrong_type(key, ValueKind::U32, other)),
        })
        .await
    }

    /// Store a `u32` under `key`.
    pub async fn set_u32(&mut self, key: Key, value: u32) -> Result<(), StoreError> {
        let kind = self.admit(key, ValueKind::U32, 4)?;
        self.write(
            key,
            Stored::Present {
                kind,
                payload: &value.to_le_bytes(),
            },
        )
        .await
    }

    /// Add one to the `u32` under `key` (a missing key counts as 0; the count saturates at
    /// `u32::MAX`) and return the new value.
    pub async fn incr_u32(&mut self, key: Key) -> Result<u32, StoreError> {
        let next = self.get_u32(key).await?.unwrap_or(0).saturating_add(1);
        self.set_u32(key, next).await?;
        Ok(next)
    }

    /// Copy the byte string (or text) stored under `key` into `buf`; returns its length, `None`
    /// if missing. [`StoreError::BufferTooSmall`] if `buf` cannot hold it.
    pub async fn get_bytes(
        &mut self,
        key: Key,
        buf: &mut [u8],
    ) -> Result<Option<usize>, StoreError> {
        self.read(key, |stored| match stored {
            Stored::Present {
                kind: ValueKind::Bytes | ValueKind::Str,
                payload,
            } => {
                let out = buf
                    .get_mut(..payload.len())
                    .ok_or(StoreError::BufferTooSmall {
                        key,
                        needed: payload.len(),
                    })?;
                out.copy_from_slice(payload);
                Ok(payload.len())
            }
            other => Err(wrong_type(key, ValueKind::Bytes, other)),
        })
        .await
    }

    /// Store a byte string under `key`. For a well-known key declared as text the bytes must be
    /// UTF-8 and are stored as text.
    pub async fn set_bytes(&mut self, key: Key, value: &[u8]) -> Result<(), StoreError> {
        let kind = self.admit(key, ValueKind::Bytes, value.len())?;
        if kind == ValueKind::Str && core::str::from_utf8(value).is_err() {
            return Err(StoreError::WrongType {
                key,
                requested: ValueKind::Bytes,
                actual: ValueKind::Str,
            });
        }
        self.write(
            key,
            Stored::Present {
                kind,
                payload: value,
            },
        )
        .await
    }

    /// The text stored under `key`, `None` if missing. [`StoreError::BufferTooSmall`] if it is
    /// longer than `N` bytes.
    pub async fn get_str<const N: usize>(
        &mut self,
        key: Key,
    ) -> Result<Option<heapless::String<N>>, StoreError> {
        self.read(key, |stored| match stored {
            Stored::Present {
                kind: ValueKind::Str,
                payload,
            } => {
                let text =
                    core::str::from_utf8(payload).map_err(|_| StoreError::Undecodable { key })?;
                heapless::String::try_from(text).map_err(|_| StoreError::BufferTooSmall {
                    key,
                    needed: payload.len(),
                })
            }
            other => Err(wrong_type(key, ValueKind::Str, other)),
        })
        .await
    }

    /// Store UTF-8 text under `key`.
    pub async fn set_str(&mut self, key: Key, value: &str) -> Result<(), StoreError> {
        let kind = self.admit(key, ValueKind::Str, value.len())?;
        self.write(
            key,
            Stored::Present {
                kind,
                payload: value.as_bytes(),
            },
        )
        .await
    }

    /// Remove `key`; later reads return `None`. Removing a missing key writes nothing.
    ///
    /// Removal appends a tombstone (one small item), so it is as power-loss-safe as a write and
    /// works on any NOR flash; the tombstone of a key stays in flash until the key is written
    /// again.
    pub async fn remove(&mut self, key: Key) -> Result<(), StoreError> {
        let map = live(&mut self.map)?;
        let present = match map.fetch_item::<&[u8]>(&mut self.buf.0, &key).await {
            Ok(None) => false,
            Ok(Some(raw)) => Stored::decode(raw) != Some(Stored::Removed),
            Err(e) => return Err(self.fail(key, 0, e).await),
        };
        if !present {
            return Ok(());
        }
        self.write(key, Stored::Removed).await
    }

    /// Erase the whole range: a factory reset of the store. Every key is lost.
    pub async fn erase_all(&mut self) -> Result<(), StoreError> {
        self.erase_range().await
    }

    /// Check what a write of `len` bytes of type `requested` to `key` may do; returns the type
    /// to store (bytes written to a key declared as text are stored as text).
    fn admit(&self, key: Key, requested: ValueKind, len: usize) -> Result<ValueKind, StoreError> {
        let mut kind = requested;
        let mut min = 0;
        let mut max = self.max_value_len;
        if let Some(spec) = key.spec() {
            match (spec.kind, requested) {
                (declared, asked) if declared == asked => {}
                (ValueKind::Str, ValueKind::Bytes) => kind = ValueKind::Str,
                (declared, asked) => {
                    return Err(StoreError::WrongType {
                        key,
                        requested: asked,
                        actual: declared,
                    })
                }
            }
            min = spec.min_len;
            max = max.min(spec.max_len);
        }
        if len > max {
            return Err(StoreError::ValueTooLarge { key, len, max });
        }
        if len < min {
            return Err(StoreError::ValueTooShort { key, len, min });
        }
        Ok(kind)
    }

    /// Fetch `key` and give its decoded value to `decode`. Missing keys and tombstones are
    /// `None`.
    async fn read<T>(
        &mut self,
        key: Key,
        decode: impl FnOnce(Stored<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let map = live(&mut self.map)?;
        match map.fetch_item::<&[u8]>(&mut self.buf.0, &key).await {
            Ok(None) => Ok(None),
            Ok(Some(raw)) => match Stored::decode(raw) {
                None => Err(StoreError::Undecodable { key }),
                Some(Stored::Removed) => Ok(None),
                Some(stored) => decode(stored).map(Some),
            },
            Err(e) => Err(self.fail(key, 0, e).await),
        }
    }

    /// Append `stored` for `key` and read it back. sequential-storage reports success once the
    /// item is programmed; if stray bits in the free space damaged it (bit rot, foreign data:
    /// never a power cut, which these items survive), the read-back shows the old value. Then
    /// the write is retried further on, and if it keeps failing the range is erased.
    async fn write(&mut self, key: Key, stored: Stored<'_>) -> Result<(), StoreError> {
        let len = match stored {
            Stored::Present { payload, .. } => payload.len(),
            Stored::Removed => 0,
        };
        for attempt in 1..=WRITE_ATTEMPTS {
            let map = live(&mut self.map)?;
            if let Err(e) = map.store_item(&mut self.buf.0, &key, &stored).await {
                return Err(self.fail(key, len, e).await);
            }
            match map.fetch_item::<&[u8]>(&mut self.buf.0, &key).await {
                Ok(Some(raw)) if Stored::decode(raw) == Some(stored) => return Ok(()),
                Ok(_) => log::warn!("storage: {key} did not read back after write {attempt}"),
                Err(e) => return Err(self.fail(key, len, e).await),
            }
        }
        let reason = FormatReason::Corrupted;
        log::error!("storage: writes of {key} do not read back; erasing the whole range");
        self.erase_range().await?;
        Err(StoreError::Wiped(reason))
    }

    /// Turn a sequential-storage error into a [`StoreError`]. Corruption that its own repair
    /// could not fix erases the whole range, so the store works again; the error says so.
    async fn fail(&mut self, key: Key, len: usize, error: SsError<F::Error>) -> StoreError {
        let reason = match classify(error) {
            Verdict::Error(e) => return e,
            Verdict::ItemTooBig => {
                return StoreError::ValueTooLarge {
                    key,
                    len,
                    max: self.max_value_len,
                }
            }
            Verdict::Unusable(reason) => reason,
        };
        log::error!("storage: {reason} while accessing {key}; erasing the whole range");
        match self.erase_range().await {
            Ok(()) => StoreError::Wiped(reason),
            Err(e) => e,
        }
    }

    /// Read everything once, the way later operations will. `Some` when the contents cannot be
    /// used and the range must be formatted.
    async fn health_check(&mut self) -> Result<Option<FormatReason>, StoreError> {
        let map = live(&mut self.map)?;
        let verdict = 'scan: {
            // A lookup first: unlike `fetch_all_items`, `fetch_item` runs sequential-storage's
            // repair when it meets a half-erased sector (in 8.0.2 `fetch_all_items` returns
            // `Corrupted` early from inside its repair wrapper).
            if let Err(e) = map
                .fetch_item::<&[u8]>(&mut self.buf.0, &keys::BOOT_COUNT)
                .await
            {
                break 'scan classify(e);
            }
            let mut items = match map.fetch_all_items(&mut self.buf.0).await {
                Ok(items) => items,
                Err(e) => break 'scan classify(e),
            };
            loop {
                match items.next::<&[u8]>(&mut self.buf.0).await {
                    // An item larger than a 4 KiB sector's worth (only possible on flash with
                    // larger sectors) is passed over; sequential-storage will report it if an
                    // operation needs it.
                    Ok(Some(_)) | Err(SsError::BufferTooSmall(_)) => {}
                    Ok(None) => return Ok(None),
                    Err(e) => break 'scan classify(e),
                }
            }
        };
        match verdict {
            Verdict::Error(e) => Err(e),
            Verdict::ItemTooBig => Ok(Some(FormatReason::ForeignData)),
            Verdict::Unusable(reason) => Ok(Some(reason)),
        }
    }

    /// Erase the whole range and start again with empty caches (sequential-storage's own
    /// `erase_all` leaves its caches describing the old contents).
    async fn erase_range(&mut self) -> Result<(), StoreError> {
        // Validated in `open`; computed before the map is taken so nothing below returns early.
        let config = MapConfig::try_new(self.range.clone()).map_err(|_| StoreError::BadRange {
            start: self.range.start,
            end: self.range.end,
        })?;
        let map = self.map.take().ok_or(UNREACHABLE)?;
        let (mut flash, _stale_cache) = map.destroy();
        let erased = flash
            .erase(self.range.start, self.range.end)
            .await
            .map_err(|e| StoreError::Flash(e.kind()));
        self.map = Some(MapStorage::new(flash, config, fresh_cache()));
        erased
    }
}

/// Reported if the map were ever missing, which the structure of `erase_range` rules out.
const UNREACHABLE: StoreError = StoreError::Flash(NorFlashErrorKind::Other);

fn live<F: NorFlash>(map: &mut Option<Map<F>>) -> Result<&mut Map<F>, StoreError> {
    map.as_mut().ok_or(UNREACHABLE)
}

fn wrong_type(key: Key, requested: ValueKind, stored: Stored<'_>) -> StoreError {
    match stored {
        Stored::Present { kind, .. } => StoreError::WrongType {
            key,
            requested,
            actual: kind,
        },
        // Tombstones are filtered out before decoding; treat one as an unknown encoding.
        Stored::Removed => StoreError::Undecodable { key },
    }
}

enum Verdict {
    /// An error to pass on as it is.
    Error(StoreError),
    /// sequential-storage refused an item as too large for a sector.
    ItemTooBig,
    /// The contents cannot be used: erase the range.
    Unusable(FormatReason),
}

fn classify<E: NorFlashError>(error: SsError<E>) -> Verdict {
    match error {
        SsError::Storage { value, .. } => Verdict::Error(StoreError::Flash(value.kind())),
        SsError::FullStorage => Verdict::Error(StoreError::Full),
        SsError::ItemTooBig => Verdict::ItemTooBig,
        SsError::Corrupted { .. } => Verdict::Unusable(FormatReason::Corrupted),
        SsError::LogicBug { .. } => Verdict::Unusable(FormatReason::InternalError),
        // An item larger than any this firmware writes, or one whose key does not parse.
        SsError::BufferTooSmall(_) | SsError::SerializationError(_) => {
            Verdict::Unusable(FormatReason::ForeignData)
        }
        _ => Verdict::Unusable(FormatReason::Corrupted),
    }
}

/// The flash word as sequential-storage sees it: the larger of read and write sizes.
const fn word_size<F: NorFlash>() -> usize {
    if F::WRITE_SIZE > F::READ_SIZE {
        F::WRITE_SIZE
    } else {
        F::READ_SIZE
    }
}

/// Largest value that fits one sector: a sector minus its two state words, minus the item
/// header (8 bytes rounded up to a word), minus key and tag.
fn max_value_len<F: NorFlash>() -> usize {
    let word = word_size::<F>();
    let header = 8usize.next_multiple_of(word);
    let per_sector = F::ERASE_SIZE.saturating_sub(2 * word + header + ITEM_PREFIX_LEN);
    per_sector.min(MAX_VALUE_LEN)
}

fn validate_range<F: NorFlash>(flash: &F, range: &Range<u32>) -> Result<MapConfig<F>, StoreError> {
    let bad = StoreError::BadRange {
        start: range.start,
        end: range.end,
    };
    let sector = F::ERASE_SIZE as u64;
    let (start, end) = (u64::from(range.start), u64::from(range.end));
    let usable = start < end
        && start % sector == 0
        && end % sector == 0
        && end <= flash.capacity() as u64
        && (2..=MAX_PAGES as u64).contains(&((end - start) / sector))
        && word_size::<F>() <= MAX_WORD
        && ITEM_BUF_LEN.is_multiple_of(word_size::<F>());
    if !usable {
        return Err(bad);
    }
    MapConfig::try_new(range.clone()).map_err(|_| bad)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod power_loss_tests;
