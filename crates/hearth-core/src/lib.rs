//! hearth-core: the sans-IO heart of every Hearth appliance. It owns the policies both worlds
//! (the chip and the simulator) must agree on: the [`supervisor`]s that decide when to
//! reconnect, back off or reboot, the publication model ([`publish`]), the MQTT topic scheme
//! ([`topics`]), Home Assistant discovery ([`discovery`]), why the device last restarted
//! ([`reboot`]), and the update status codec the device and the fleet tools share
//! ([`update_status`]).
//!
//! Nothing here performs I/O or reads a clock. Every policy takes `now` (milliseconds of a
//! monotonic 64-bit clock) and its inputs, and answers with what to do. That keeps them
//! deterministic and lets the unit tests run ten minutes of virtual time in microseconds.
//!
//! ```
//! use hearth_core::rng::SplitMix64;
//! use hearth_core::supervisor::{NetAction, NetEvent, NetPolicy, NetState, NetSupervisor};
//! use hearth_core::{MINUTE, SECOND};
//!
//! let mut rng = SplitMix64::new(7); // seeded from hardware entropy on a device
//! let (mut net, first) = NetSupervisor::start(NetPolicy::default(), 0);
//! assert_eq!(first, NetAction::Connect);
//! assert_eq!(net.tick(2 * SECOND, true, &mut rng).event, Some(NetEvent::Up));
//!
//! // The link drops after five minutes: take it down, retry after 30 s plus up to 15 s.
//! let lost = net.tick(5 * MINUTE, false, &mut rng);
//! assert_eq!((lost.action, lost.event), (Some(NetAction::Disconnect), Some(NetEvent::Lost)));
//! let NetState::Waiting { until } = net.state() else { unreachable!() };
//! assert!((5 * MINUTE + 30 * SECOND..5 * MINUTE + 45 * SECOND).contains(&until));
//! assert_eq!(net.tick(until, false, &mut rng).action, Some(NetAction::Connect));
//!
//! // Still no link ten minutes after it was last up: give up and reset the device.
//! let mut step = |t| net.tick(t, false, &mut rng).action;
//! assert_eq!(step(15 * MINUTE), Some(NetAction::Disconnect)); // the attempt timed out
//! assert_eq!(step(16 * MINUTE), Some(NetAction::Reboot));
//! ```
#![no_std]

extern crate alloc;

pub mod decimal;
pub mod discovery;
pub mod improv;
pub mod publish;
pub mod reboot;
pub mod rng;
pub mod sntp;
pub mod supervisor;
pub mod topics;
pub mod update_status;

/// Milliseconds of a monotonic clock that never wraps in practice (u64: 584 million years).
pub type Millis = u64;

/// One second in [`Millis`].
pub const SECOND: Millis = 1000;
/// One minute in [`Millis`].
pub const MINUTE: Millis = 60 * SECOND;
