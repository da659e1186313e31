//! The error type shared by the drivers of this crate.

use core::fmt;

use crate::bme280::CompensationError;

/// What can go wrong when talking to a chip. `E` is the bus error of the `I2c` implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C transfer failed (no acknowledge, arbitration lost, bus error, ...).
    Bus(E),
    /// The chip at the address answered with an identity that is not the expected one.
    WrongChipId {
        /// The identity the driver expects.
        expected: u16,
        /// The identity the chip reported.
        found: u16,
    },
    /// The chip stayed busy for longer than the bounded number of status polls.
    Timeout,
    /// A measurement was requested before `init` succeeded.
    NotInitialized,
    /// The chip answered with data no healthy chip produces (reserved bits set, a configuration
    /// that did not stick, data registers still at their reset values).
    InvalidData,
    /// The compensation could not be computed from the chip's calibration (division by zero or
    /// arithmetic overflow): the calibration read at init is implausible.
    Compensation(CompensationError),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "I2C bus error: {e:?}"),
            Error::WrongChipId { expected, found } => {
                write!(
                    f,
                    "wrong chip id: expected {expected:#06x}, found {found:#06x}"
                )
            }
            Error::Timeout => f.write_str("chip stayed busy past the polling limit"),
            Error::NotInitialized => f.write_str("driver used before a successful init"),
            Error::InvalidData => f.write_str("chip returned implausible data"),
            Error::Compensation(e) => write!(f, "compensation failed: {e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}
