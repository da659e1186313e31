//! The two app slots and `otadata` on a NOR flash, and the writer that receives an image
//! into the slot that is not running.
//!
//! The same code runs on the chip (esp-storage, slots from the partition table) and in the
//! simulator (a flash file with the same layout), so the simulator's update and rollback tests
//! exercise what the device does.

use embedded_storage_async::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

use crate::otadata::{self, Entry, State, ENTRY_LEN, SECOND_SECTOR};

/// The size of one transfer chunk: one erase sector, so every chunk starts on a sector
/// boundary and erasing "as you go" never touches bytes already received.
pub const CHUNK: u32 = 4096;

/// Where otadata and the two slots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the otadata partition (two sectors).
    pub otadata: u32,
    /// Offsets of slots 0 and 1.
    pub slots: [u32; 2],
    /// Length of each slot.
    pub slot_size: u32,
}

/// Failures of the slot writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError<E> {
    /// The flash failed.
    Flash(E),
    /// A chunk at another offset than the one expected next.
    OutOfOrder {
        /// The offset the writer wants.
        next: u32,
    },
    /// A chunk of the wrong length.
    BadLength,
    /// The received image's SHA-256 is not the manifest's.
    HashMismatch,
    /// What reads back from the slot is not what was received.
    ReadBackMismatch,
    /// The image is not complete yet.
    Incomplete,
}

impl<E: core::fmt::Debug> core::fmt::Display for SlotError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "flash error {e:?}"),
            Self::OutOfOrder { next } => write!(f, "chunk out of order (next is {next})"),
            Self::BadLength => f.write_str("chunk of the wrong length"),
            Self::HashMismatch => f.write_str("image SHA-256 does not match the manifest"),
            Self::ReadBackMismatch => f.write_str("slot read-back does not match the image"),
            Self::Incomplete => f.write_str("image incomplete"),
        }
    }
}

/// otadata and the slots of one flash.
pub struct Slots<F> {
    flash: F,
    layout: Layout,
    running: u8,
}

impl<F: NorFlash> Slots<F> {
    /// The slots of `flash` laid out as `layout`; `running` is the slot that booted.
    pub fn new(flash: F, layout: Layout, running: u8) -> Self {
        Slots {
            flash,
            layout,
            running: running % 2,
        }
    }

    /// Give the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    /// The slot that booted.
    pub fn running(&self) -> u8 {
        self.running
    }

    /// The slot updates are written to.
    pub fn inactive(&self) -> u8 {
        1 - self.running
    }

    /// The size of each slot.
    pub fn slot_size(&self) -> u32 {
        self.layout.slot_size
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The two entries of otadata (`None` where erased or invalid).
    pub async fn entries(&mut self) -> Result<[Option<Entry>; 2], F::Error> {
        let mut out = [None; 2];
        for (i, at) in [0, SECOND_SECTOR].into_iter().enumerate() {
            let mut bytes = [0u8; ENTRY_LEN];
            self.flash
                .read(self.layout.otadata + at, &mut bytes)
                .await?;
            out[i] = otadata::decode(&bytes);
        }
        Ok(out)
    }

    /// The state recorded for the running image: the winning entry's when it selects the
    /// running slot, else `Undefined` (e.g. a board flashed by a tool with otadata erased).
    pub async fn running_state(&mut self) -> Result<State, F::Error> {
        let entries = self.entries().await?;
        Ok(match otadata::select(entries) {
            Some((_, e)) if e.slot() == self.running => e.state,
            _ => State::Undefined,
        })
    }

    /// Make `slot` the one that boots next, with `state`, without ever destroying the entry in
    /// force (see [`otadata`](crate::otadata)).
    pub async fn select(&mut self, slot: u8, state: State) -> Result<(), F::Error> {
        let entries = self.entries().await?;
        let (sector, entry) = otadata::next_entry(entries, slot, state);
        let base = self.layout.otadata + if sector == 0 { 0 } else { SECOND_SECTOR };
        self.flash.erase(base, base + SECOND_SECTOR).await?;
        let (body, crc) = otadata::encode(entry);
        self.flash.write(base, &body[..28]).await?;
        self.flash.write(base + 28, &crc).await
    }

    /// Read `buf.len()` bytes of `slot` from `offset`.
    pub async fn read(&mut self, slot: u8, offset: u32, buf: &mut [u8]) -> Result<(), F::Error> {
        self.flash
            .read(self.layout.slots[slot as usize % 2] + offset, buf)
            .await
    }

    /// SHA-256 of the first `len` bytes of `slot`.
    pub async fn hash(&mut self, slot: u8, len: u32) -> Result<[u8; 32], F::Error> {
        let mut hasher = Sha256::new();
        self.hash_into(&mut hasher, slot, len).await?;
        Ok(hasher.finalize().into())
    }

    async fn hash_into(&mut self, hasher: &mut Sha256, slot: u8, len: u32) -> Result<(), F::Error> {
        let mut buf = [0u8; 256];
        let mut at = 0u32;
        while at < len {
            let n = (len - at).min(buf.len() as u32);
            // Reads are whole words; the hash takes only the image's bytes.
            let padded = n
                .next_multiple_of(F::READ_SIZE as u32)
                .min(buf.len() as u32);
            self.read(slot, at, &mut buf[..padded as usize]).await?;
            hasher.update(&buf[..n as usize]);
            at += n;
        }
        Ok(())
    }
}

/// Receives one image into the inactive slot: chunk by chunk, in order, erasing each sector
/// just before writing it, hashing as it goes.
pub struct Writer {
    size: u32,
    sha256: [u8; 32],
    next: u32,
    hasher: Sha256,
}

impl Writer {
    /// Start receiving an image of `size` bytes with SHA-256 `sha256`, at `resume_at` (0 for a
    /// new transfer; a chunk boundary, or `size`, to continue one interrupted by a disconnect
    /// or a reboot: the bytes already in the slot are hashed again from flash).
    pub async fn begin<F: NorFlash>(
        slots: &mut Slots<F>,
        size: u32,
        sha256: [u8; 32],
        resume_at: u32,
    ) -> Result<Self, SlotError<F::Error>> {
        let resume_at =
            if resume_at == size || (resume_at < size && resume_at.is_multiple_of(CHUNK)) {
                resume_at
            } else {
                0
            };
        let mut hasher = Sha256::new();
        let slot = slots.inactive();
        slots
            .hash_into(&mut hasher, slot, resume_at)
            .await
            .map_err(SlotError::Flash)?;
        Ok(Writer {
            size,
            sha256,
            next: resume_at,
            hasher,
        })
    }

    /// The offset of the next chunk wanted.
    pub fn next(&self) -> u32 {
        self.next
    }

    /// The image size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The expected SHA-256.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Has every byte arrived?
    pub fn complete(&self) -> bool {
        self.next == self.size
    }

    /// The length of the chunk at `offset`.
    pub fn chunk_len(&self, offset: u32) -> u32 {
        CHUNK.min(self.size.saturating_sub(offset))
    }

    /// Write the chunk at `offset`. Returns the next offset wanted.
    pub async fn write<F: NorFlash>(
        &mut self,
        slots: &mut Slots<F>,
        offset: u32,
        data: &[u8],
    ) -> Result<u32, SlotError<F::Error>> {
        if offset != self.next || self.complete() {
            return Err(SlotError::OutOfOrder { next: self.next });
        }
        if data.len() as u32 != self.chunk_len(offset) {
            return Err(SlotError::BadLength);
        }
        let base = slots.layout.slots[slots.inactive() as usize];
        let erase_end = (offset + data.len() as u32).next_multiple_of(F::ERASE_SIZE as u32);
        slots
            .flash
            .erase(base + offset, base + erase_end)
            .await
            .map_err(SlotError::Flash)?;
        let whole = data.len() - data.len() % F::WRITE_SIZE;
        if whole > 0 {
            slots
                .flash
                .write(base + offset, &data[..whole])
                .await
                .map_err(SlotError::Flash)?;
        }
        if whole < data.len() {
            // The last word of the image: padded with the erased value.
            let mut tail = [0xFFu8; 16];
            let n = data.len() - whole;
            tail[..n].copy_from_slice(&data[whole..]);
            slots
                .flash
                .write(base + offset + whole as u32, &tail[..F::WRITE_SIZE.max(n)])
                .await
                .map_err(SlotError::Flash)?;
        }
        self.hasher.update(data);
        self.next += data.len() as u32;
        Ok(self.next)
    }

    /// Check the complete image: the hash of what was received, then the hash of what reads
    /// back from the slot. Only then may the slot be selected.
    pub async fn finish<F: NorFlash>(
        &mut self,
        slots: &mut Slots<F>,
    ) -> Result<(), SlotError<F::Error>> {
        if !self.complete() {
            return Err(SlotError::Incomplete);
        }
        let received: [u8; 32] = self.hasher.clone().finalize().into();
        if received != self.sha256 {
            return Err(SlotError::HashMismatch);
        }
        let slot = slots.inactive();
        let stored = slots
            .hash(slot, self.size)
            .await
            .map_err(SlotError::Flash)?;
        if stored != self.sha256 {
            return Err(SlotError::ReadBackMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_futures::block_on;
    use hearth_storage::MemFlash;

    const SLOT: u32 = 16 * 4096;

    fn layout() -> Layout {
        Layout {
            otadata: 0,
            slots: [0x2000, 0x2000 + SLOT],
            slot_size: SLOT,
        }
    }

    fn slots(running: u8) -> Slots<MemFlash> {
        Slots::new(MemFlash::new(2 + 2 * 16), layout(), running)
    }

    fn image(len: usize) -> std::vec::Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn sha(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn send(w: &mut Writer, s: &mut Slots<MemFlash>, img: &[u8]) {
        while !w.complete() {
            let at = w.next();
            let n = w.chunk_len(at) as usize;
            block_on(w.write(s, at, &img[at as usize..at as usize + n])).unwrap();
        }
    }

    #[test]
    fn an_image_is_received_checked_and_selected() {
        let mut s = slots(0);
        let img = image(3 * 4096 + 1234 + 3);
        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 0)).unwrap();
        send(&mut w, &mut s, &img);
        block_on(w.finish(&mut s)).unwrap();
        assert_eq!(block_on(s.hash(1, img.len() as u32)).unwrap(), sha(&img));
        block_on(s.select(1, State::New)).unwrap();
        let entries = block_on(s.entries()).unwrap();
        assert_eq!(otadata::boot_slot(entries), 1);
        assert_eq!(block_on(s.running_state()).unwrap(), State::Undefined);
        // Booted from slot 1: the state is its.
        let mut booted = Slots::new(s.flash, layout(), 1);
        assert_eq!(block_on(booted.running_state()).unwrap(), State::New);
        block_on(booted.select(1, State::Valid)).unwrap();
        assert_eq!(block_on(booted.running_state()).unwrap(), State::Valid);
    }

    #[test]
    fn chunks_out_of_order_or_of_the_wrong_length_are_refused() {
        let mut s = slots(0);
        let img = image(2 * 4096 + 10);
        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 0)).unwrap();
        assert_eq!(
            block_on(w.write(&mut s, 4096, &img[4096..8192])),
            Err(SlotError::OutOfOrder { next: 0 })
        );
        assert_eq!(
            block_on(w.write(&mut s, 0, &img[..100])),
            Err(SlotError::BadLength)
        );
        assert_eq!(block_on(w.finish(&mut s)), Err(SlotError::Incomplete));
    }

    #[test]
    fn a_corrupted_chunk_fails_the_hash_and_a_bad_flash_fails_the_read_back() {
        let mut s = slots(0);
        let img = image(3 * 4096);
        let mut bad = img.clone();
        bad[5000] ^= 1;
        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 0)).unwrap();
        send(&mut w, &mut s, &bad);
        assert_eq!(block_on(w.finish(&mut s)), Err(SlotError::HashMismatch));

        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 0)).unwrap();
        send(&mut w, &mut s, &img);
        // A bit the flash did not keep.
        s.flash.image_mut()[0x2000 + SLOT as usize + 100] ^= 0x10;
        assert_eq!(block_on(w.finish(&mut s)), Err(SlotError::ReadBackMismatch));
    }

    #[test]
    fn a_transfer_resumes_from_what_is_in_the_slot() {
        let mut s = slots(1);
        let img = image(5 * 4096 - 7);
        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 0)).unwrap();
        for _ in 0..3 {
            let at = w.next();
            block_on(w.write(&mut s, at, &img[at as usize..at as usize + 4096])).unwrap();
        }
        // A reboot: a new writer continues at the last chunk boundary reported.
        let mut w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 3 * 4096)).unwrap();
        assert_eq!(w.next(), 3 * 4096);
        send(&mut w, &mut s, &img);
        block_on(w.finish(&mut s)).unwrap();
        // Resuming a complete image only needs the final checks.
        let mut w = block_on(Writer::begin(
            &mut s,
            img.len() as u32,
            sha(&img),
            img.len() as u32,
        ))
        .unwrap();
        assert!(w.complete());
        block_on(w.finish(&mut s)).unwrap();
        // A resume point that is not a chunk boundary starts over.
        let w = block_on(Writer::begin(&mut s, img.len() as u32, sha(&img), 100)).unwrap();
        assert_eq!(w.next(), 0);
    }

    #[test]
    fn selecting_survives_a_torn_otadata_write() {
        let mut s = slots(0);
        block_on(s.select(0, State::Valid)).unwrap();
        block_on(s.select(1, State::New)).unwrap();
        let before = s.flash.image().to_vec();
        // Simulate a cut after the body of the next entry but before its CRC.
        let entries = block_on(s.entries()).unwrap();
        let (sector, entry) = otadata::next_entry(entries, 0, State::Aborted);
        let (body, _) = otadata::encode(entry);
        let base = sector as u32 * SECOND_SECTOR;
        use embedded_storage_async::nor_flash::NorFlash as _;
        block_on(s.flash.erase(base, base + SECOND_SECTOR)).unwrap();
        block_on(s.flash.write(base, &body[..28])).unwrap();
        // The previous winner still boots.
        assert_eq!(otadata::boot_slot(block_on(s.entries()).unwrap()), 1);
        assert_ne!(before, s.flash.image());
    }
}
