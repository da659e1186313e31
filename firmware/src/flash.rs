//! One `FlashStorage` for everything that writes flash: the key-value store and the update
//! slots. esp-storage's `FlashStorage` is a singleton; it lives in a static `RefCell` and each
//! user holds a copyable handle. Every operation is synchronous (the async adapter runs it to
//! completion), so a borrow never spans an await and never overlaps another.

use core::cell::RefCell;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use esp_storage::{FlashStorage, FlashStorageError};
use static_cell::StaticCell;

static FLASH: StaticCell<RefCell<FlashStorage<'static>>> = StaticCell::new();

/// A handle to the shared flash.
#[derive(Clone, Copy)]
pub struct SharedFlash(&'static RefCell<FlashStorage<'static>>);

impl SharedFlash {
    /// Share `flash` (once per boot).
    pub fn new(flash: FlashStorage<'static>) -> Self {
        Self(FLASH.init(RefCell::new(flash)))
    }
}

impl ErrorType for SharedFlash {
    type Error = FlashStorageError;
}

impl ReadNorFlash for SharedFlash {
    const READ_SIZE: usize = FlashStorage::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.borrow_mut().read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl NorFlash for SharedFlash {
    const WRITE_SIZE: usize = FlashStorage::WRITE_SIZE;
    const ERASE_SIZE: usize = FlashStorage::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.borrow_mut().erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.borrow_mut().write(offset, bytes)
    }
}
