//! hearth-runtime: the device's runtimes over the platform traits (`hearth-platform`) and the
//! appliance seam (`hearth-profile`). The MQTT runtime is a sans-IO value ([`machine`]: events
//! and time in, actions out) with a thin async driver ([`run`]) compiled once per image; around
//! it the MQTT session on rust-mqtt ([`session`], its stream bounded by [`bounded`]), the
//! runtime's settings from a config ([`settings`]), the device side of signed updates and
//! config pushes ([`update`]), and the ESP-NOW link runtimes ([`link`]). It knows no appliance
//! and no chip: the rules a pushed config must pass ([`update::ConfigRules`]) are handed in by
//! whoever composes it with the appliances (`hearth_device::CONFIG_RULES`).
//!
//! ```
//! use hearth_core::publish::{PubId, Publications};
//! use hearth_core::{Millis, SECOND};
//! use hearth_platform::Console;
//! use hearth_profile::Profile;
//! use hearth_runtime::machine::{Action, Machine};
//! use hearth_runtime::Settings;
//!
//! struct Idle;
//! impl Profile for Idle {
//!     fn name(&self) -> &'static str { "idle" }
//!     fn register(&mut self, _: &mut Publications, _: Millis) {}
//!     fn next_work(&self) -> Millis { Millis::MAX }
//!     async fn work(&mut self, _: Millis, _: &mut Publications) {}
//!     fn evaluate(&mut self, _: PubId, _: Millis) -> Option<String> { None }
//! }
//! struct Lines(Vec<String>);
//! impl Console for Lines {
//!     fn console(&mut self, line: &str) { self.0.push(line.into()) }
//! }
//!
//! // Virtual time, no I/O: until the driver reports a link, the machine never asks for a
//! // broker connection.
//! let settings = Settings::with_defaults("attic", "192.168.1.2", 1883);
//! let mut machine = Machine::new(&settings, 0, "power-on", 7);
//! let (mut idle, mut console) = (Idle, Lines(Vec::new()));
//! for t in (0..30).map(|s| s * SECOND) {
//!     let action = machine.poll(t, &mut idle, &mut console);
//!     assert!(!matches!(action, Action::Connect), "{action:?} at {t} ms");
//! }
//! ```
#![no_std]

extern crate alloc;

pub mod bounded;
pub mod diagnostics;
mod driver;
pub mod link;
pub mod machine;
pub mod session;
pub mod settings;
pub mod update;

#[cfg(test)]
extern crate std;
// The tests' timers run on the host's embassy-time driver.
#[cfg(test)]
use hearth_hosttime as _;
#[cfg(test)]
mod test_board;

pub use driver::run;
pub use machine::LOOP_PERIOD;
pub use settings::Settings;
