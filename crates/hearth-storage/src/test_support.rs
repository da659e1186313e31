//! Helpers shared by this crate's tests: a small deterministic PRNG, a self-removing temporary
//! directory, and `block_on` for driving the async store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub use embassy_futures::block_on;

/// SplitMix64: tiny, fast and good enough to pick test inputs reproducibly from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias does not matter for tests.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop (also when the
/// test fails).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hearth-storage-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes erased per recorded erase step, as [`crate::FileFlash`] does per system call.
pub const ERASE_CHUNK: usize = 256;

/// One primitive flash operation, the unit at which a power cut can land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Program one 4-byte word (new = old AND word).
    Write { at: u32, word: [u8; 4] },
    /// Erase one [`ERASE_CHUNK`].
    Erase { at: u32 },
}

impl Op {
    /// Apply the operation fully.
    pub fn apply(&self, image: &mut [u8]) {
        match *self {
            Op::Write { at, word } => {
                for (cell, w) in image[at as usize..][..4].iter_mut().zip(word) {
                    *cell &= w;
                }
            }
            Op::Erase { at } => image[at as usize..][..ERASE_CHUNK].fill(0xFF),
        }
    }

    /// Apply the operation as a power cut would leave it: a write clears only some of the bits
    /// it should, an erase sets only some of the bits it should.
    pub fn apply_torn(&self, image: &mut [u8], rng: &mut Rng) {
        match *self {
            Op::Write { at, word } => {
                let keep = rng.next_u32().to_le_bytes();
                for ((cell, w), k) in image[at as usize..][..4].iter_mut().zip(word).zip(keep) {
                    *cell &= w | k;
                }
            }
            Op::Erase { at } => {
                let mut set = [0u8; ERASE_CHUNK];
                rng.fill(&mut set);
                for (cell, s) in image[at as usize..][..ERASE_CHUNK].iter_mut().zip(set) {
                    *cell |= s;
                }
            }
        }
    }
}

/// Flash state shared between a store under test and the test itself.
pub struct Shared {
    pub flash: crate::MemFlash,
    /// Every primitive operation since creation, when `record` is set.
    pub ops: Vec<Op>,
    pub record: bool,
    /// When set, every operation fails with an I/O error and changes nothing.
    pub fail: bool,
}

/// A [`crate::MemFlash`] that the test can inspect and change while a store owns it, and that
/// can record every primitive operation. It also insists on word-aligned write buffers, as
/// esp-storage prefers.
#[derive(Clone)]
pub struct SharedFlash(pub std::rc::Rc<std::cell::RefCell<Shared>>);

impl SharedFlash {
    pub fn new(flash: crate::MemFlash, record: bool) -> Self {
        SharedFlash(std::rc::Rc::new(std::cell::RefCell::new(Shared {
            flash,
            ops: Vec::new(),
            record,
            fail: false,
        })))
    }

    pub fn op_count(&self) -> usize {
        self.0.borrow().ops.len()
    }

    pub fn image(&self) -> Vec<u8> {
        self.0.borrow().flash.image().to_vec()
    }
}

mod shared_flash_impl {
    use super::*;
    use embedded_storage::nor_flash as blocking;
    use embedded_storage_async::nor_flash as nb;
    use nb::NorFlashErrorKind;

    impl nb::ErrorType for SharedFlash {
        type Error = NorFlashErrorKind;
    }

    impl nb::ReadNorFlash for SharedFlash {
        const READ_SIZE: usize = 4;

        async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            if self.0.borrow().fail {
                return Err(NorFlashErrorKind::Other);
            }
            blocking::ReadNorFlash::read(&mut self.0.borrow_mut().flash, offset, bytes)
        }

        fn capacity(&self) -> usize {
            self.0.borrow().flash.image().len()
        }
    }

    impl nb::NorFlash for SharedFlash {
        const WRITE_SIZE: usize = 4;
        const ERASE_SIZE: usize = 4096;

        async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            let mut shared = self.0.borrow_mut();
            if shared.fail {
                return Err(NorFlashErrorKind::Other);
            }
            blocking::check_erase(&shared.flash, from, to)?;
            for at in (from..to).step_by(ERASE_CHUNK) {
                let op = Op::Erase { at };
                op.apply(shared.flash.image_mut());
                if shared.record {
                    shared.ops.push(op);
                }
            }
            Ok(())
        }

        async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
            assert_eq!(bytes.as_ptr() as usize % 4, 0, "unaligned write buffer");
            let mut shared = self.0.borrow_mut();
            if shared.fail {
                return Err(NorFlashErrorKind::Other);
            }
            blocking::check_write(&shared.flash, offset, bytes.len())?;
            for (i, chunk) in bytes.chunks_exact(4).enumerate() {
                let op = Op::Write {
                    at: offset + 4 * i as u32,
                    word: [chunk[0], chunk[1], chunk[2], chunk[3]],
                };
                op.apply(shared.flash.image_mut());
                if shared.record {
                    shared.ops.push(op);
                }
            }
            Ok(())
        }
    }
}
