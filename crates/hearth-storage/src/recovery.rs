//! The repairs [`crate::KvStore::open`] makes before sequential-storage touches the flash, for
//! two states that a power cut during a sector erase can leave and that sequential-storage
//! (8.0.2, pinned) would otherwise handle by losing data:
//!
//! 1. A sector that sequential-storage considers unused (open) but that is not blank. It never
//!    reads such a sector, so erasing it loses nothing; left alone, new items would be
//!    programmed over the stale bits and come out corrupted.
//! 2. An interrupted sector recycle. To recycle the oldest sector, sequential-storage copies its
//!    live items into the current sector, then erases it. If the erase is cut early, the old
//!    sector can still look closed while its contents are already damaged (a real sector erase
//!    leaves undefined bits, not a clean front-to-back prefix). sequential-storage's repair then
//!    erases the *copies* and copies again from the damaged sector, losing the values that
//!    lived only there. When reading the store with that sector blanked out gives the same
//!    value for every key, the copy was complete and erasing the old sector finishes the
//!    recycle without loss; otherwise the copy was cut short, the old sector is intact, and
//!    sequential-storage's own repair is the right one. If the erase also wiped the old
//!    sector's end marker, it looks in use too: it is then the one after the other in the ring
//!    (in a ring of two: the one whose end word was programmed, or the one with fewer keys),
//!    and it is read as closed for the comparison.
//!
//! The power-loss tests in `store/power_loss_tests.rs` cut every sector erase both ways.
//!
//! Both rely on sequential-storage 8.0.2's sector state markers: a sector's first and last
//! read words count as written when they hold at least 4 zero bits; first only is "partially
//! open" (in use), both is "closed", neither is "open".

use core::ops::Range;

use embedded_storage_async::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};

use crate::error::StoreError;
use crate::keys::Key;

/// Most distinct keys the recycle check follows; with more it leaves the repair to
/// sequential-storage.
const MAX_KEYS: usize = 64;

/// Make the two repairs; returns how many sectors were erased (no value is lost by them).
/// `buf` must hold the largest item.
pub(crate) async fn prepare<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    buf: &mut [u8],
) -> Result<u16, StoreError> {
    let mut erased = scrub_unused_pages(flash, range, buf).await?;
    if erased > 0 {
        log::warn!("storage: erased {erased} unused sector(s) that were not blank");
    }
    if finish_interrupted_recycle(flash, range, buf).await? {
        log::warn!("storage: finished a sector recycle interrupted by a power cut");
        erased += 1;
    }
    Ok(erased)
}

/// A sector's state as sequential-storage reads it from its two marker words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marks {
    Open,
    PartialOpen,
    Closed,
    /// Only the end marker: an erase cut short. sequential-storage erases these itself.
    HalfErased,
}

async fn marks<F: NorFlash>(
    flash: &mut F,
    start: u32,
    buf: &mut [u8],
) -> Result<Marks, StoreError> {
    let read = F::READ_SIZE;
    let end = start + F::ERASE_SIZE as u32;
    let mut written = [false; 2];
    for (marker, at) in written.iter_mut().zip([start, end - read as u32]) {
        let word = &mut buf[..read];
        flash.read(at, word).await.map_err(io::<F>)?;
        *marker = word.iter().map(|b| b.count_zeros()).sum::<u32>() >= 4;
    }
    Ok(match written {
        [false, false] => Marks::Open,
        [true, false] => Marks::PartialOpen,
        [true, true] => Marks::Closed,
        [false, true] => Marks::HalfErased,
    })
}

fn io<F: NorFlash>(e: F::Error) -> StoreError {
    StoreError::Flash(e.kind())
}

fn sectors<F: NorFlash>(range: &Range<u32>) -> impl Iterator<Item = Range<u32>> + use<F> {
    let size = F::ERASE_SIZE as u32;
    (range.start..range.end)
        .step_by(F::ERASE_SIZE)
        .map(move |start| start..start + size)
}

async fn scrub_unused_pages<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    buf: &mut [u8],
) -> Result<u16, StoreError> {
    let chunk_len = buf.len() / F::READ_SIZE * F::READ_SIZE;
    let mut scrubbed = 0;
    for sector in sectors::<F>(range) {
        if marks(flash, sector.start, buf).await? != Marks::Open {
            continue;
        }
        let mut at = sector.start;
        while at < sector.end {
            let bytes = &mut buf[..chunk_len.min((sector.end - at) as usize)];
            flash.read(at, bytes).await.map_err(io::<F>)?;
            if bytes.iter().any(|b| *b != 0xFF) {
                flash
                    .erase(sector.start, sector.end)
                    .await
                    .map_err(io::<F>)?;
                scrubbed += 1;
                break;
            }
            at += bytes.len() as u32;
        }
    }
    Ok(scrubbed)
}

/// Erase the old sector of an interrupted recycle when that provably loses nothing.
async fn finish_interrupted_recycle<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    buf: &mut [u8],
) -> Result<bool, StoreError> {
    let mut states = heapless::Vec::<(Marks, bool), { crate::MAX_PAGES }>::new();
    for sector in sectors::<F>(range) {
        let state = marks(flash, sector.start, buf).await?;
        let end_blank = end_word_is_blank(flash, &sector, buf).await?;
        // `open` checked the sector count against MAX_PAGES.
        if states.push((state, end_blank)).is_err() {
            return Ok(false);
        }
    }
    let count = states.len();
    let sector = |index: usize| sectors::<F>(range).nth(index);
    let next = |index: usize| (index + 1) % count;
    let mut in_use = (0..count).filter(|i| states[*i].0 == Marks::PartialOpen);
    let old = match (in_use.next(), in_use.next(), in_use.next()) {
        // In a consistent store the sector after the one in use is blank, ready for the next
        // recycle; closed means the recycle of that sector did not finish.
        (Some(current), None, _) if states[next(current)].0 == Marks::Closed => next(current),
        // The erase also cleared the old sector's end marker, so it looks in use too. The old
        // sector is the one after the other, unless two sectors make the whole ring.
        (Some(a), Some(b), None) => match (next(a) == b, next(b) == a) {
            (true, false) => b,
            (false, true) => a,
            (true, true) => match (states[a].1, states[b].1) {
                // Only the old sector's end word was ever programmed.
                (true, false) => b,
                (false, true) => a,
                _ => {
                    let (Some(sector_a), Some(sector_b)) = (sector(a), sector(b)) else {
                        return Ok(false);
                    };
                    match smaller_of_two(flash, range, sector_a, sector_b, buf).await {
                        Some(true) => a,
                        Some(false) => b,
                        None => return Ok(false),
                    }
                }
            },
            (false, false) => return Ok(false),
        },
        _ => return Ok(false),
    };
    let Some(old) = sector(old) else {
        return Ok(false);
    };
    // Read the old sector as closed, the way it looked before its erase began.
    let end_word = old.end - word_size::<F>() as u32..old.end;
    let Some(before) = snapshot(flash, range, 0..0, end_word, buf).await else {
        return Ok(false);
    };
    if !agrees(flash, range, old.clone(), &before, buf).await {
        return Ok(false);
    }
    flash.erase(old.start, old.end).await.map_err(io::<F>)?;
    Ok(true)
}

/// In a ring of two sectors that both look in use: which one is the damaged old sector? The
/// sector in use holds a copy of every value of the old one, so the old one, read alone, has
/// fewer keys (or the same keys and values, and then either will do). `Some(true)` for `a`.
async fn smaller_of_two<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    a: Range<u32>,
    b: Range<u32>,
    buf: &mut [u8],
) -> Option<bool> {
    let only_a = snapshot(flash, range, b.clone(), 0..0, buf).await?;
    let only_b = snapshot(flash, range, a, 0..0, buf).await?;
    let within = |small: &Snapshot, big: &Snapshot| {
        small
            .iter()
            .all(|(key, _)| big.iter().any(|(other, _)| other == key))
    };
    let same = only_a.len() == only_b.len() && only_a.iter().all(|entry| only_b.contains(entry));
    if only_a.len() < only_b.len() && within(&only_a, &only_b) {
        Some(true)
    } else if same || (only_b.len() < only_a.len() && within(&only_b, &only_a)) {
        Some(false)
    } else {
        None
    }
}

/// The flash word as sequential-storage uses it: the larger of the read and write sizes.
const fn word_size<F: NorFlash>() -> usize {
    if F::WRITE_SIZE > F::READ_SIZE {
        F::WRITE_SIZE
    } else {
        F::READ_SIZE
    }
}

/// Whether the last flash word of `sector` (where the end marker goes) is fully erased.
async fn end_word_is_blank<F: NorFlash>(
    flash: &mut F,
    sector: &Range<u32>,
    buf: &mut [u8],
) -> Result<bool, StoreError> {
    let word = &mut buf[..word_size::<F>()];
    flash
        .read(sector.end - word.len() as u32, word)
        .await
        .map_err(io::<F>)?;
    Ok(word.iter().all(|b| *b == 0xFF))
}

/// Every key of the store and a digest of its current value.
type Snapshot = heapless::Vec<(Key, u64), MAX_KEYS>;

/// Read every key through sequential-storage from a [`View`] of the flash. `None` on any error
/// or with too many keys: "not proven".
async fn snapshot<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    blank: Range<u32>,
    zeroed: Range<u32>,
    buf: &mut [u8],
) -> Option<Snapshot> {
    let config = MapConfig::try_new(range.clone()).ok()?;
    let view = View {
        inner: flash,
        blank,
        zeroed,
    };
    let mut map = MapStorage::<Key, _, _>::new(view, config, Cache::new_uncached());
    let mut keys = heapless::Vec::<Key, MAX_KEYS>::new();
    let mut items = map.fetch_all_items(buf).await.ok()?;
    loop {
        match items.next::<&[u8]>(buf).await {
            Ok(Some((key, _))) => {
                if !keys.contains(&key) {
                    keys.push(key).ok()?;
                }
            }
            Ok(None) => break,
            // A damaged header can claim a length beyond the buffer; the iterator has moved
            // past it.
            Err(sequential_storage::Error::BufferTooSmall(_)) => {}
            Err(_) => return None,
        }
    }
    let mut values = Snapshot::new();
    for key in keys {
        let value = map.fetch_item::<&[u8]>(buf, &key).await.ok()?;
        values.push((key, digest(value))).ok()?;
    }
    Some(values)
}

/// True when, with `blank` read as erased, every key of `expected` still has the same value.
async fn agrees<F: NorFlash>(
    flash: &mut F,
    range: &Range<u32>,
    blank: Range<u32>,
    expected: &Snapshot,
    buf: &mut [u8],
) -> bool {
    let Ok(config) = MapConfig::try_new(range.clone()) else {
        return false;
    };
    let view = View {
        inner: flash,
        blank,
        zeroed: 0..0,
    };
    let mut map = MapStorage::<Key, _, _>::new(view, config, Cache::new_uncached());
    for (key, digest_before) in expected {
        match map.fetch_item::<&[u8]>(buf, key).await {
            Ok(value) if digest(value) == *digest_before => {}
            _ => return false,
        }
    }
    true
}

/// FNV-1a over a fetched value (presence and bytes).
fn digest(value: Option<&[u8]>) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    let presence = [u8::from(value.is_some())];
    for byte in presence.iter().chain(value.unwrap_or_default()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// A read-only view of a flash in which `blank` reads as erased and `zeroed` as programmed to
/// zero. Writes and erases are refused, so sequential-storage cannot run a repair through it.
struct View<'a, F> {
    inner: &'a mut F,
    blank: Range<u32>,
    zeroed: Range<u32>,
}

#[derive(Debug)]
enum ViewError<E> {
    Flash(E),
    Refused,
}

impl<E: NorFlashError> NorFlashError for ViewError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            ViewError::Flash(e) => e.kind(),
            ViewError::Refused => NorFlashErrorKind::Other,
        }
    }
}

impl<F: NorFlash> ErrorType for View<'_, F> {
    type Error = ViewError<F::Error>;
}

impl<F: NorFlash> ReadNorFlash for View<'_, F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.inner
            .read(offset, bytes)
            .await
            .map_err(ViewError::Flash)?;
        let end = offset.saturating_add(bytes.len() as u32);
        for (range, fill) in [(&self.blank, 0xFF), (&self.zeroed, 0x00)] {
            let (lo, hi) = (offset.max(range.start), end.min(range.end));
            if lo < hi {
                bytes[(lo - offset) as usize..(hi - offset) as usize].fill(fill);
            }
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

impl<F: NorFlash> NorFlash for View<'_, F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, _from: u32, _to: u32) -> Result<(), Self::Error> {
        Err(ViewError::Refused)
    }

    async fn write(&mut self, _offset: u32, _bytes: &[u8]) -> Result<(), Self::Error> {
        Err(ViewError::Refused)
    }
}
