//! [`FileFlash`]: a file that behaves like the ESP32's NOR flash, for the simulator. A reboot
//! (process restart) keeps its contents; a SIGKILL can land in the middle of a write or an
//! erase and leave it torn, like a power cut on the chip.
//!
//! Writes go to the file one flash word per `pwrite`, erases one 256-byte chunk per `pwrite`,
//! so a kill between two calls leaves a half-done operation. Data sits in the OS page cache,
//! which survives the death of the process; [`FileFlash::sync`] pushes it to the disk.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use embedded_storage::nor_flash as blocking;
use embedded_storage_async::nor_flash as nb;
use nb::NorFlashErrorKind;

use crate::ESP32_GEOMETRY as GEOMETRY;

/// Bytes per `pwrite` when erasing.
const ERASE_CHUNK: usize = 256;

/// A file with NOR-flash semantics and the geometry of the ESP32's esp-storage driver.
#[derive(Debug)]
pub struct FileFlash {
    /// The open file; `None` when it is opened for each operation instead
    /// ([`FileFlash::close_between_operations`]).
    file: Option<File>,
    path: PathBuf,
    capacity: usize,
}

impl FileFlash {
    /// Open the flash file at `path`, or create it fully erased (all 0xFF) with `capacity`
    /// bytes if it does not exist. An existing file keeps its contents; one of another size is
    /// refused with [`FileFlashOpenError::WrongSize`], never silently reformatted.
    ///
    /// `capacity` must be a non-zero whole number of 4096-byte erase sectors, below 4 GiB.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
    ) -> Result<Self, FileFlashOpenError> {
        let path = path.as_ref();
        if capacity == 0
            || !capacity.is_multiple_of(GEOMETRY.erase_size)
            || u32::try_from(capacity).is_err()
        {
            return Err(FileFlashOpenError::BadCapacity { capacity });
        }
        let wrong_size = |found| FileFlashOpenError::WrongSize {
            path: path.to_path_buf(),
            expected: capacity as u64,
            found,
        };
        match fs::metadata(path) {
            Ok(meta) if meta.len() != capacity as u64 => return Err(wrong_size(meta.len())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_erased(path, capacity)?,
            Err(e) => return Err(FileFlashOpenError::io(path, e)),
        }
        let flash = Self::open(path)?;
        if flash.capacity != capacity {
            return Err(wrong_size(flash.capacity as u64));
        }
        Ok(flash)
    }

    /// Open an existing flash file; its size is the capacity and must be a non-zero whole
    /// number of erase sectors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FileFlashOpenError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| FileFlashOpenError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| FileFlashOpenError::io(path, e))?
            .len();
        let sector = GEOMETRY.erase_size as u64;
        let capacity = match usize::try_from(len) {
            Ok(capacity) if len > 0 && len.is_multiple_of(sector) && u32::try_from(len).is_ok() => {
                capacity
            }
            _ => {
                return Err(FileFlashOpenError::WrongSize {
                    path: path.to_path_buf(),
                    expected: len.next_multiple_of(sector).max(sector),
                    found: len,
                })
            }
        };
        Ok(FileFlash {
            file: Some(file),
            path: path.to_path_buf(),
            capacity,
        })
    }

    /// Size of the flash in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Path of the backing file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Push every completed write to the disk (not needed to survive a killed process, only a
    /// crash of the host).
    pub fn sync(&self) -> io::Result<()> {
        self.with_file(|f| f.sync_data())
    }

    /// Hold no open file: open it for each read, write or erase and close it after. For
    /// thousands of simulated devices in one process (`hearth sim --fleet`), each with two
    /// flash files, under the process's limit of open files. Every operation still goes to the
    /// file as before, so a kill leaves the same torn state.
    pub fn close_between_operations(&mut self) {
        self.file = None;
    }

    /// Run `f` on the open file, or on the file opened for it.
    fn with_file<R>(&self, f: impl FnOnce(&File) -> io::Result<R>) -> io::Result<R> {
        match &self.file {
            Some(file) => f(file),
            None => f(&OpenOptions::new().read(true).write(true).open(&self.path)?),
        }
    }
}

/// Write a fully erased image next to `path` and rename it into place, so that a file at
/// `path` is always complete even if the process dies while creating it.
fn create_erased(path: &Path, capacity: usize) -> Result<(), FileFlashOpenError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".creating-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let file = File::create(&tmp)?;
        let block = vec![0xFF; 64 * 1024];
        let mut at = 0;
        while at < capacity {
            let len = block.len().min(capacity - at);
            platform::write_all_at(&file, &block[..len], at as u64)?;
            at += len;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| FileFlashOpenError::io(path, e))
}

#[cfg(unix)]
mod platform {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;

    pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        file.read_exact_at(buf, offset)
    }

    pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::File;
    use std::io;
    use std::os::windows::fs::FileExt;

    pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_read(buf, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }

    pub fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match file.seek_write(buf, offset)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Why a flash file could not be opened or created.
#[derive(Debug)]
pub enum FileFlashOpenError {
    /// The requested capacity is zero, not a whole number of erase sectors, or 4 GiB or more.
    BadCapacity {
        /// The capacity asked for.
        capacity: usize,
    },
    /// The file exists with another size than the flash it should hold.
    WrongSize {
        /// The file.
        path: PathBuf,
        /// The size expected, in bytes.
        expected: u64,
        /// The size found, in bytes.
        found: u64,
    },
    /// The file system refused.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl FileFlashOpenError {
    fn io(path: &Path, source: io::Error) -> Self {
        FileFlashOpenError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for FileFlashOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileFlashOpenError::BadCapacity { capacity } => write!(
                f,
                "flash capacity {capacity} is not a non-zero multiple of {} bytes below 4 GiB",
                GEOMETRY.erase_size
            ),
            FileFlashOpenError::WrongSize {
                path,
                expected,
                found,
            } => write!(
                f,
                "flash file {} is {found} bytes, expected {expected}; \
                 remove it to start with an erased flash",
                path.display()
            ),
            FileFlashOpenError::Io { path, source } => {
                write!(f, "flash file {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for FileFlashOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileFlashOpenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A failed flash operation on a [`FileFlash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFlashError {
    /// Offset or length not a multiple of the read, write or erase size.
    NotAligned,
    /// The access reaches past the end of the flash.
    OutOfBounds,
    /// The file system failed.
    Io(io::ErrorKind),
}

impl FileFlashError {
    fn io(e: io::Error) -> Self {
        FileFlashError::Io(e.kind())
    }
}

impl From<NorFlashErrorKind> for FileFlashError {
    fn from(kind: NorFlashErrorKind) -> Self {
        match kind {
            NorFlashErrorKind::NotAligned => FileFlashError::NotAligned,
            NorFlashErrorKind::OutOfBounds => FileFlashError::OutOfBounds,
            _ => FileFlashError::Io(io::ErrorKind::Other),
        }
    }
}

impl fmt::Display for FileFlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileFlashError::NotAligned => f.write_str("flash access not aligned"),
            FileFlashError::OutOfBounds => f.write_str("flash access out of bounds"),
            FileFlashError::Io(kind) => write!(f, "flash file I/O error: {kind}"),
        }
    }
}

impl std::error::Error for FileFlashError {}

impl nb::NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FileFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FileFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FileFlashError::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

impl blocking::ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl blocking::ReadNorFlash for FileFlash {
    const READ_SIZE: usize = GEOMETRY.read_size;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        blocking::check_read(&*self, offset, bytes.len())?;
        self.with_file(|f| platform::read_exact_at(f, bytes, u64::from(offset)))
            .map_err(FileFlashError::io)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl blocking::NorFlash for FileFlash {
    const WRITE_SIZE: usize = GEOMETRY.write_size;
    const ERASE_SIZE: usize = GEOMETRY.erase_size;

    /// Sets `from..to` to 0xFF, one 256-byte chunk per system call, front to back.
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        blocking::check_erase(&*self, from, to)?;
        let erased = [0xFF; ERASE_CHUNK];
        self.with_file(|file| {
            for at in (u64::from(from)..u64::from(to)).step_by(ERASE_CHUNK) {
                platform::write_all_at(file, &erased, at)?;
            }
            Ok(())
        })
        .map_err(FileFlashError::io)
    }

    /// Programs `bytes` (new = old AND data), one flash word per system call; words that would
    /// not change are skipped.
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        blocking::check_write(&*self, offset, bytes.len())?;
        let word = GEOMETRY.write_size;
        let mut old = [0u8; ERASE_CHUNK];
        let mut at = u64::from(offset);
        self.with_file(|file| {
            for data in bytes.chunks(ERASE_CHUNK) {
                let old = &mut old[..data.len()];
                platform::read_exact_at(file, old, at)?;
                for (old_word, data_word) in old.chunks_exact_mut(word).zip(data.chunks_exact(word))
                {
                    let mut changed = false;
                    for (o, d) in old_word.iter_mut().zip(data_word) {
                        changed |= *o & d != *o;
                        *o &= d;
                    }
                    if changed {
                        platform::write_all_at(file, old_word, at)?;
                    }
                    at += word as u64;
                }
            }
            Ok(())
        })
        .map_err(FileFlashError::io)
    }
}

/// Writing a word again can only clear more bits, as on the ESP32's flash.
impl blocking::MultiwriteNorFlash for FileFlash {}

impl nb::ReadNorFlash for FileFlash {
    const READ_SIZE: usize = GEOMETRY.read_size;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        blocking::ReadNorFlash::read(self, offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

impl nb::NorFlash for FileFlash {
    const WRITE_SIZE: usize = GEOMETRY.write_size;
    const ERASE_SIZE: usize = GEOMETRY.erase_size;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        blocking::NorFlash::erase(self, from, to)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        blocking::NorFlash::write(self, offset, bytes)
    }
}

impl nb::MultiwriteNorFlash for FileFlash {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use blocking::{NorFlash, ReadNorFlash};

    const CAP: usize = 4 * 4096;

    fn read_vec(flash: &mut FileFlash, offset: u32, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        flash.read(offset, &mut buf).unwrap();
        buf
    }

    #[test]
    fn fresh_flash_reads_erased() {
        let dir = TempDir::new("fresh");
        let mut flash = FileFlash::open_or_create(dir.join("flash.bin"), CAP).unwrap();
        assert_eq!(ReadNorFlash::capacity(&flash), CAP);
        assert!(read_vec(&mut flash, 0, CAP).iter().all(|b| *b == 0xFF));
        assert_eq!(
            fs::metadata(dir.join("flash.bin")).unwrap().len(),
            CAP as u64
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_only_clear_bits_and_erase_sets_whole_sectors() {
        let dir = TempDir::new("and");
        let mut flash = FileFlash::open_or_create(dir.join("f"), CAP).unwrap();
        flash
            .write(4096, &[0xF0, 0x0F, 0xAA, 0x55, 1, 2, 3, 4])
            .unwrap();
        flash.write(4096, &[0x3C, 0xFF, 0xFF, 0x00]).unwrap();
        assert_eq!(
            read_vec(&mut flash, 4096, 8),
            [0x30, 0x0F, 0xAA, 0x00, 1, 2, 3, 4]
        );
        // Writing 1 bits over 0 bits does not set them.
        flash.write(4100, &[0xFF; 4]).unwrap();
        assert_eq!(read_vec(&mut flash, 4100, 4), [1, 2, 3, 4]);
        // A long write crossing the internal chunk size.
        let long: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        flash.write(8192, &long).unwrap();
        assert_eq!(read_vec(&mut flash, 8192, 1000), long);

        flash.erase(4096, 8192).unwrap();
        assert!(read_vec(&mut flash, 4096, 4096).iter().all(|b| *b == 0xFF));
        assert_eq!(
            read_vec(&mut flash, 8192, 1000),
            long,
            "next sector untouched"
        );
    }

    #[test]
    fn misaligned_and_out_of_bounds_are_errors() {
        let dir = TempDir::new("align");
        let mut flash = FileFlash::open_or_create(dir.join("f"), CAP).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(flash.read(1, &mut buf), Err(FileFlashError::NotAligned));
        assert_eq!(
            flash.read(0, &mut buf[..3]),
            Err(FileFlashError::NotAligned)
        );
        assert_eq!(flash.write(2, &[0; 4]), Err(FileFlashError::NotAligned));
        assert_eq!(flash.write(0, &[0; 6]), Err(FileFlashError::NotAligned));
        assert_eq!(flash.erase(0, 2048), Err(FileFlashError::NotAligned));
        assert_eq!(flash.erase(100, 4096), Err(FileFlashError::NotAligned));
        assert_eq!(
            flash.read(CAP as u32, &mut buf),
            Err(FileFlashError::OutOfBounds)
        );
        assert_eq!(
            flash.write(CAP as u32 - 4, &[0; 8]),
            Err(FileFlashError::OutOfBounds)
        );
        assert_eq!(
            flash.erase(0, CAP as u32 + 4096),
            Err(FileFlashError::OutOfBounds)
        );
        assert_eq!(flash.erase(8192, 4096), Err(FileFlashError::OutOfBounds));
        use nb::NorFlashError;
        assert_eq!(
            FileFlashError::NotAligned.kind(),
            NorFlashErrorKind::NotAligned
        );
        assert_eq!(
            FileFlashError::OutOfBounds.kind(),
            NorFlashErrorKind::OutOfBounds
        );
        // Nothing was changed by the refused operations.
        assert!(read_vec(&mut flash, 0, CAP).iter().all(|b| *b == 0xFF));
    }

    #[test]
    fn closed_between_operations_it_holds_no_file_and_behaves_the_same() {
        let dir = TempDir::new("closed");
        let path = dir.join("closed.bin");
        let mut flash = FileFlash::open_or_create(&path, 8192).unwrap();
        flash.close_between_operations();
        assert!(flash.file.is_none());
        blocking::NorFlash::write(&mut flash, 4, &[0x0f, 0xf0, 0x00, 0xff]).unwrap();
        blocking::NorFlash::write(&mut flash, 4, &[0xff, 0xff, 0xff, 0x0f]).unwrap();
        assert_eq!(read_vec(&mut flash, 4, 4), [0x0f, 0xf0, 0x00, 0x0f]);
        blocking::NorFlash::erase(&mut flash, 0, 4096).unwrap();
        assert_eq!(read_vec(&mut flash, 0, 8), [0xff; 8]);
        // The file is what another handle reads, and a missing file is an error, not a panic.
        blocking::NorFlash::write(&mut flash, 4096, &[1, 2, 3, 4]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap()[4096..4100], [1, 2, 3, 4]);
        std::fs::remove_file(&path).unwrap();
        let mut b = [0u8; 4];
        assert!(blocking::ReadNorFlash::read(&mut flash, 0, &mut b).is_err());
    }

    #[test]
    fn contents_survive_reopen() {
        let dir = TempDir::new("reopen");
        let path = dir.join("f");
        {
            let mut flash = FileFlash::open_or_create(&path, CAP).unwrap();
            flash.write(12, &[9, 8, 7, 6]).unwrap();
            flash.sync().unwrap();
        }
        let mut flash = FileFlash::open_or_create(&path, CAP).unwrap();
        assert_eq!(read_vec(&mut flash, 12, 4), [9, 8, 7, 6]);
        let mut flash = FileFlash::open(&path).unwrap();
        assert_eq!(read_vec(&mut flash, 12, 4), [9, 8, 7, 6]);
        assert_eq!(flash.path(), path.as_path());
    }

    #[test]
    fn wrong_size_is_refused_and_left_alone() {
        let dir = TempDir::new("size");
        let path = dir.join("f");
        fs::write(&path, [0x12; 5000]).unwrap();
        let err = FileFlash::open_or_create(&path, CAP).unwrap_err();
        assert!(
            matches!(err, FileFlashOpenError::WrongSize { expected, found: 5000, .. } if expected == CAP as u64),
            "{err}"
        );
        assert!(err.to_string().contains("5000"), "{err}");
        assert!(FileFlash::open(&path).is_err());
        assert_eq!(
            fs::read(&path).unwrap(),
            vec![0x12; 5000],
            "not reformatted"
        );

        fs::write(&path, vec![0xFF; 2 * 4096]).unwrap();
        assert!(matches!(
            FileFlash::open_or_create(&path, CAP),
            Err(FileFlashOpenError::WrongSize { .. })
        ));
        assert!(FileFlash::open(&path).is_ok());
    }

    #[test]
    fn bad_capacity_and_missing_directory_are_errors() {
        let dir = TempDir::new("cap");
        for capacity in [0, 100, 4097] {
            assert!(matches!(
                FileFlash::open_or_create(dir.join("f"), capacity),
                Err(FileFlashOpenError::BadCapacity { .. })
            ));
        }
        let err = FileFlash::open_or_create(dir.join("missing/f"), CAP).unwrap_err();
        assert!(matches!(err, FileFlashOpenError::Io { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn async_traits_match_blocking_ones() {
        let dir = TempDir::new("async");
        let mut flash = FileFlash::open_or_create(dir.join("f"), CAP).unwrap();
        embassy_futures::block_on(async {
            nb::NorFlash::write(&mut flash, 16, &[1, 2, 3, 4])
                .await
                .unwrap();
            let mut buf = [0u8; 4];
            nb::ReadNorFlash::read(&mut flash, 16, &mut buf)
                .await
                .unwrap();
            assert_eq!(buf, [1, 2, 3, 4]);
            nb::NorFlash::erase(&mut flash, 0, 4096).await.unwrap();
            nb::ReadNorFlash::read(&mut flash, 16, &mut buf)
                .await
                .unwrap();
            assert_eq!(buf, [0xFF; 4]);
            assert_eq!(
                nb::NorFlash::write(&mut flash, 1, &[0; 4]).await,
                Err(FileFlashError::NotAligned)
            );
        });
    }
}
