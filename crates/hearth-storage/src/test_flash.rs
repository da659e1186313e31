//! NOR flash in RAM for the unit tests, with the ESP32's geometry (4-byte words, 4 KiB
//! sectors): writes only clear bits, erases set a sector to 0xFF, misaligned or out-of-range
//! access is an error. Its image survives a "reboot" (clones share it), and its reads or writes
//! can be made to fail. For the unit tests of the `no_std` crates above (feature `testing`);
//! [`MemFlash`](crate::MemFlash) is the blocking host flash of the `std` feature.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embedded_storage_async::nor_flash::{self as nor, NorFlashErrorKind};

/// The erase unit.
pub const SECTOR: usize = 4096;
/// Sectors in a [`TestFlash`].
pub const SECTORS: usize = 4;

/// See the module documentation.
#[derive(Clone)]
pub struct TestFlash {
    /// The flash image.
    pub data: Rc<RefCell<Vec<u8>>>,
    /// Every erase and write fails while set.
    pub fail_writes: Rc<Cell<bool>>,
    /// Every read fails while set.
    pub fail_reads: Rc<Cell<bool>>,
}

impl Default for TestFlash {
    fn default() -> Self {
        Self::new()
    }
}

impl TestFlash {
    /// [`SECTORS`] erased sectors.
    pub fn new() -> Self {
        TestFlash {
            data: Rc::new(RefCell::new(vec![0xFF; SECTOR * SECTORS])),
            fail_writes: Rc::new(Cell::new(false)),
            fail_reads: Rc::new(Cell::new(false)),
        }
    }

    fn at(&self, offset: u32, len: usize, align: usize) -> Result<usize, NorFlashErrorKind> {
        let at = offset as usize;
        if !at.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if at + len > self.data.borrow().len() {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        Ok(at)
    }
}

impl nor::ErrorType for TestFlash {
    type Error = NorFlashErrorKind;
}

impl nor::ReadNorFlash for TestFlash {
    const READ_SIZE: usize = 4;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if self.fail_reads.get() {
            return Err(NorFlashErrorKind::Other);
        }
        let at = self.at(offset, bytes.len(), 4)?;
        bytes.copy_from_slice(&self.data.borrow()[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.borrow().len()
    }
}

impl nor::NorFlash for TestFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if self.fail_writes.get() {
            return Err(NorFlashErrorKind::Other);
        }
        let at = self.at(from, (to - from) as usize, SECTOR)?;
        self.data.borrow_mut()[at..to as usize].fill(0xFF);
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if self.fail_writes.get() {
            return Err(NorFlashErrorKind::Other);
        }
        let at = self.at(offset, bytes.len(), 4)?;
        for (cell, new) in self.data.borrow_mut()[at..].iter_mut().zip(bytes) {
            *cell &= new;
        }
        Ok(())
    }
}
