//! [`MemFlash`]: NOR flash in RAM with the ESP32's geometry and real NOR rules (erased bytes
//! read 0xFF, a write can only clear bits, misaligned or out-of-range access is an error). For
//! host tests of anything that takes a flash.

use embedded_storage::nor_flash as blocking;
use embedded_storage_async::nor_flash as nb;
use nb::NorFlashErrorKind;

use crate::ESP32_GEOMETRY as GEOMETRY;

/// NOR flash held in a `Vec`, with the geometry of the ESP32's esp-storage driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemFlash {
    data: std::vec::Vec<u8>,
}

impl MemFlash {
    /// A fully erased flash of `sectors` erase sectors.
    pub fn new(sectors: usize) -> Self {
        MemFlash {
            data: std::vec![0xFF; sectors * GEOMETRY.erase_size],
        }
    }

    /// A flash holding `image`, for example one saved from another `MemFlash` or a file.
    /// `None` unless the image is a whole number of erase sectors.
    pub fn from_image(image: std::vec::Vec<u8>) -> Option<Self> {
        image
            .len()
            .is_multiple_of(GEOMETRY.erase_size)
            .then_some(MemFlash { data: image })
    }

    /// The whole flash contents.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// The whole flash contents, writable without NOR rules (to inject faults in tests).
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl blocking::ErrorType for MemFlash {
    type Error = NorFlashErrorKind;
}

impl blocking::ReadNorFlash for MemFlash {
    const READ_SIZE: usize = GEOMETRY.read_size;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        blocking::check_read(&*self, offset, bytes.len())?;
        let at = offset as usize;
        bytes.copy_from_slice(&self.data[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl blocking::NorFlash for MemFlash {
    const WRITE_SIZE: usize = GEOMETRY.write_size;
    const ERASE_SIZE: usize = GEOMETRY.erase_size;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        blocking::check_erase(&*self, from, to)?;
        self.data[from as usize..to as usize].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        blocking::check_write(&*self, offset, bytes.len())?;
        let at = offset as usize;
        for (cell, new) in self.data[at..at + bytes.len()].iter_mut().zip(bytes) {
            *cell &= new;
        }
        Ok(())
    }
}

/// Writing a word again can only clear more bits, as on the ESP32's flash.
impl blocking::MultiwriteNorFlash for MemFlash {}

impl nb::ReadNorFlash for MemFlash {
    const READ_SIZE: usize = GEOMETRY.read_size;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        blocking::ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl nb::NorFlash for MemFlash {
    const WRITE_SIZE: usize = GEOMETRY.write_size;
    const ERASE_SIZE: usize = GEOMETRY.erase_size;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        blocking::NorFlash::erase(self, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        blocking::NorFlash::write(self, offset, bytes)
    }
}

impl nb::MultiwriteNorFlash for MemFlash {}

#[cfg(test)]
mod tests {
    use super::*;
    use blocking::{NorFlash, ReadNorFlash};

    #[test]
    fn nor_rules_hold() {
        let mut flash = MemFlash::new(2);
        let mut word = [0u8; 4];
        flash.read(4096, &mut word).unwrap();
        assert_eq!(word, [0xFF; 4]);
        flash.write(8, &[0xF0, 0x0F, 0xAA, 0x55]).unwrap();
        flash.write(8, &[0x3C, 0xFF, 0xFF, 0x00]).unwrap();
        flash.read(8, &mut word).unwrap();
        assert_eq!(word, [0x30, 0x0F, 0xAA, 0x00]);
        assert_eq!(flash.write(2, &[0; 4]), Err(NorFlashErrorKind::NotAligned));
        assert_eq!(
            flash.write(8192, &[0; 4]),
            Err(NorFlashErrorKind::OutOfBounds)
        );
        assert_eq!(flash.erase(0, 100), Err(NorFlashErrorKind::NotAligned));
        flash.erase(0, 4096).unwrap();
        flash.read(8, &mut word).unwrap();
        assert_eq!(word, [0xFF; 4]);
        assert!(MemFlash::from_image(std::vec![0xFF; 100]).is_none());
        assert_eq!(
            MemFlash::from_image(flash.image().to_vec()).as_ref(),
            Some(&flash)
        );
    }
}
