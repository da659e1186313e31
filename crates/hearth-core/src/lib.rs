//! hearth-core: the sans-IO heart of every Hearth appliance.
//!
//! Nothing here performs I/O or reads a clock. Every policy takes `now` (milliseconds of a
//! monotonic 64-bit clock) and its inputs, and answers with what to do. That keeps them
//! deterministic and lets the unit tests run ten minutes of virtual time in microseconds.
#![no_std]

extern crate alloc;

pub mod discovery;
pub mod publish;
pub mod reboot;
pub mod rng;
pub mod supervisor;
pub mod topics;
pub mod update_status;

/// Milliseconds of a monotonic clock that never wraps in practice (u64: 584 million years).
pub type Millis = u64;

/// One second in [`Millis`].
pub const SECOND: Millis = 1000;
/// One minute in [`Millis`].
pub const MINUTE: Millis = 60 * SECOND;
