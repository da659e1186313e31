//! The simulated I2C bus: a cloneable handle implementing the `embedded-hal` and
//! `embedded-hal-async` I2C traits that routes each transfer to the chip model attached at the
//! addressed 7-bit address, applying that chip's injected fault on the way.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};

use crate::clock::SimClock;
use crate::fault::ChipFault;

/// How a chip model refuses part of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusFault {
    /// The chip does not acknowledge its address (e.g. busy converting).
    AddressNack,
    /// The chip acknowledges its address but not the data (e.g. an invalid register).
    DataNack,
}

/// A chip model on the bus. A transfer reaches the model as runs of consecutive writes and
/// reads: a repeated start separates a write run from a read run, the stop ends the transfer.
/// `now_us` is the bus clock's time.
pub trait I2cDevice: Send {
    /// The master wrote `bytes` (the address has been acknowledged).
    fn write(&mut self, now_us: u64, bytes: &[u8]) -> Result<(), BusFault>;
    /// The master reads `buf.len()` bytes.
    fn read(&mut self, now_us: u64, buf: &mut [u8]) -> Result<(), BusFault>;
}

/// A failed transfer, as the master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimI2cError {
    /// The address of the transfer.
    pub address: u8,
    /// What went wrong, in `embedded-hal` terms.
    pub kind: ErrorKind,
}

impl embedded_hal::i2c::Error for SimI2cError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for SimI2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "I2C transfer to {:#04x} failed: {}",
            self.address, self.kind
        )
    }
}

impl std::error::Error for SimI2cError {}

/// A mistake in setting up the bus or addressing a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimBusError {
    /// Not a 7-bit address.
    InvalidAddress(u8),
    /// A chip is already attached at the address.
    AddressInUse(u8),
    /// No chip is attached at the address.
    NoDevice(u8),
}

impl fmt::Display for SimBusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimBusError::InvalidAddress(a) => write!(f, "{a:#04x} is not a 7-bit I2C address"),
            SimBusError::AddressInUse(a) => write!(f, "a chip is already attached at {a:#04x}"),
            SimBusError::NoDevice(a) => write!(f, "no chip is attached at {a:#04x}"),
        }
    }
}

impl std::error::Error for SimBusError {}

struct Slot {
    device: Box<dyn I2cDevice>,
    fault: ChipFault,
}

struct BusState {
    clock: SimClock,
    slots: BTreeMap<u8, Slot>,
}

/// A simulated I2C bus. Clones share the bus, so each driver can own one and the test or the
/// simulator keeps another to inject faults.
#[derive(Clone)]
pub struct SimI2cBus(Arc<Mutex<BusState>>);

impl SimI2cBus {
    /// An empty bus on a fresh virtual clock.
    pub fn new() -> Self {
        Self::with_clock(SimClock::manual())
    }

    /// An empty bus whose chips see `clock`.
    pub fn with_clock(clock: SimClock) -> Self {
        SimI2cBus(Arc::new(Mutex::new(BusState {
            clock,
            slots: BTreeMap::new(),
        })))
    }

    /// The clock the chips see.
    pub fn clock(&self) -> SimClock {
        self.state().clock.clone()
    }

    /// Attaches a chip model at a 7-bit address.
    pub fn attach(&self, address: u8, device: impl I2cDevice + 'static) -> Result<(), SimBusError> {
        if address > 0x7F {
            return Err(SimBusError::InvalidAddress(address));
        }
        let mut state = self.state();
        if state.slots.contains_key(&address) {
            return Err(SimBusError::AddressInUse(address));
        }
        state.slots.insert(
            address,
            Slot {
                device: Box::new(device),
                fault: ChipFault::None,
            },
        );
        Ok(())
    }

    /// Puts the chip at `address` into `fault` (`ChipFault::None` heals it). The chip keeps its
    /// register state across faults.
    pub fn set_fault(&self, address: u8, fault: ChipFault) -> Result<(), SimBusError> {
        let mut state = self.state();
        let slot = state
            .slots
            .get_mut(&address)
            .ok_or(SimBusError::NoDevice(address))?;
        slot.fault = fault;
        Ok(())
    }

    /// The fault of the chip at `address`, if one is attached.
    pub fn fault(&self, address: u8) -> Option<ChipFault> {
        self.state().slots.get(&address).map(|slot| slot.fault)
    }

    /// The addresses that acknowledge, as a bus scan would find them.
    pub fn scan(&self) -> Vec<u8> {
        self.state()
            .slots
            .iter()
            .filter(|(_, slot)| slot.fault != ChipFault::Absent)
            .map(|(&address, _)| address)
            .collect()
    }

    fn state(&self) -> MutexGuard<'_, BusState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one transfer (start … stop). Consecutive operations of one direction form one run,
    /// as the `embedded-hal` contract says; each run starts with an address phase.
    fn transfer(&self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), SimI2cError> {
        let fail = |kind| SimI2cError { address, kind };
        let nack = |source| fail(ErrorKind::NoAcknowledge(source));
        if address > 0x7F {
            return Err(fail(ErrorKind::Other));
        }

        let mut state = self.state();
        let now_us = state.clock.now_us();
        let slot = state
            .slots
            .get_mut(&address)
            .ok_or(nack(NoAcknowledgeSource::Address))?;
        if slot.fault == ChipFault::Absent {
            return Err(nack(NoAcknowledgeSource::Address));
        }

        let mut rest = operations;
        while !rest.is_empty() {
            let is_write = matches!(rest[0], Operation::Write(_));
            let run_len = rest
                .iter()
                .take_while(|op| matches!(op, Operation::Write(_)) == is_write)
                .count();
            let (run, tail) = rest.split_at_mut(run_len);
            rest = tail;

            let result = if is_write {
                let mut bytes = Vec::new();
                for op in run.iter() {
                    if let Operation::Write(chunk) = op {
                        bytes.extend_from_slice(chunk);
                    }
                }
                match slot.fault {
                    ChipFault::Garbage => Ok(()),
                    _ => slot.device.write(now_us, &bytes),
                }
            } else {
                let total = run
                    .iter()
                    .map(|op| match op {
                        Operation::Read(buf) => buf.len(),
                        Operation::Write(_) => 0,
                    })
                    .sum();
                let mut bytes = vec![0u8; total];
                let result = match slot.fault {
                    ChipFault::Garbage => {
                        bytes.fill(0xFF);
                        Ok(())
                    }
                    ChipFault::ReadFails => Err(BusFault::DataNack),
                    _ => slot.device.read(now_us, &mut bytes),
                };
                let mut offset = 0;
                for op in run.iter_mut() {
                    if let Operation::Read(buf) = op {
                        let end = offset + buf.len();
                        buf.copy_from_slice(&bytes[offset..end]);
                        offset = end;
                    }
                }
                result
            };

            result.map_err(|fault| {
                nack(match fault {
                    BusFault::AddressNack => NoAcknowledgeSource::Address,
                    BusFault::DataNack => NoAcknowledgeSource::Data,
                })
            })?;
        }
        Ok(())
    }
}

impl Default for SimI2cBus {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SimI2cBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        let chips: Vec<(u8, ChipFault)> = state
            .slots
            .iter()
            .map(|(&address, slot)| (address, slot.fault))
            .collect();
        f.debug_struct("SimI2cBus")
            .field("clock", &state.clock)
            .field("chips", &chips)
            .finish()
    }
}

impl embedded_hal::i2c::ErrorType for SimI2cBus {
    type Error = SimI2cError;
}

impl embedded_hal::i2c::I2c for SimI2cBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.transfer(address, operations)
    }
}

impl embedded_hal_async::i2c::I2c for SimI2cBus {
    async fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        self.transfer(address, operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::i2c::I2c;

    /// Records writes and answers reads with a counter.
    #[derive(Default)]
    struct Echo {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        next: u8,
    }

    impl I2cDevice for Echo {
        fn write(&mut self, _now_us: u64, bytes: &[u8]) -> Result<(), BusFault> {
            self.writes.lock().unwrap().push(bytes.to_vec());
            Ok(())
        }
        fn read(&mut self, _now_us: u64, buf: &mut [u8]) -> Result<(), BusFault> {
            for b in buf {
                *b = self.next;
                self.next = self.next.wrapping_add(1);
            }
            Ok(())
        }
    }

    #[test]
    fn missing_address_is_not_acknowledged() {
        let mut bus = SimI2cBus::new();
        let err = bus.write(0x10, &[1]).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
        );
        assert_eq!(err.address, 0x10);
        assert_eq!(bus.read(0x90, &mut [0]).unwrap_err().kind, ErrorKind::Other);
    }

    #[test]
    fn runs_are_merged_and_reads_are_split_back() {
        let mut bus = SimI2cBus::new();
        let echo = Echo::default();
        let writes = Arc::clone(&echo.writes);
        bus.attach(0x20, echo).unwrap();
        let (mut a, mut b) = ([0u8; 2], [0u8; 3]);
        bus.transaction(
            0x20,
            &mut [
                Operation::Write(&[1, 2]),
                Operation::Write(&[3]),
                Operation::Read(&mut a),
                Operation::Read(&mut b),
            ],
        )
        .unwrap();
        assert_eq!(*writes.lock().unwrap(), vec![vec![1, 2, 3]]);
        assert_eq!((a, b), ([0, 1], [2, 3, 4]));
    }

    #[test]
    fn faults_apply_per_chip_and_heal() {
        let mut bus = SimI2cBus::new();
        bus.attach(0x20, Echo::default()).unwrap();
        bus.attach(0x21, Echo::default()).unwrap();
        assert_eq!(
            bus.attach(0x21, Echo::default()),
            Err(SimBusError::AddressInUse(0x21))
        );
        assert_eq!(
            bus.attach(0x80, Echo::default()),
            Err(SimBusError::InvalidAddress(0x80))
        );
        assert_eq!(
            bus.set_fault(0x22, ChipFault::Absent),
            Err(SimBusError::NoDevice(0x22))
        );

        bus.set_fault(0x20, ChipFault::Absent).unwrap();
        assert_eq!(bus.scan(), vec![0x21]);
        assert!(bus.write(0x20, &[0]).is_err());
        assert!(bus.write(0x21, &[0]).is_ok());

        bus.set_fault(0x20, ChipFault::ReadFails).unwrap();
        assert!(bus.write(0x20, &[0]).is_ok());
        let err = bus.read(0x20, &mut [0]).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)
        );

        bus.set_fault(0x20, ChipFault::Garbage).unwrap();
        let mut buf = [0u8; 3];
        bus.write_read(0x20, &[0], &mut buf).unwrap();
        assert_eq!(buf, [0xFF; 3]);

        bus.set_fault(0x20, ChipFault::None).unwrap();
        assert_eq!(bus.fault(0x20), Some(ChipFault::None));
        bus.read(0x20, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2]);
        assert_eq!(bus.scan(), vec![0x20, 0x21]);
    }
}
