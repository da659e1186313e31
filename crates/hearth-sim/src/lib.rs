//! hearth-sim: the host world. One simulated appliance is one OS process (the "device") with real
//! TCP to a real broker, a flash file with NOR semantics, and I2C chips simulated at the register
//! level. A second process (the "board") plays power supply, watchdog reset line and
//! environment: it restarts the device after a reset, keeps the flash file, and takes fault
//! commands on a control socket in the state directory. `hearth sim --fleet N` runs N such
//! devices as tasks of one process instead ([`fleet`]), each with its own state directory,
//! over the same device code, on the simulator's own time driver ([`clock`]).
//!
//! It owns the simulated platform (the [`device`] implements `hearth_device`'s platform
//! traits over host sockets, files and chip models; [`faults`] wraps it with the loop faults),
//! the board process ([`power`], [`board`]), the ESP-NOW air ([`air`]), the control socket
//! ([`control`]), the host's TLS set-up ([`tls`]), the simulator's firmware images and
//! bootloader ([`firmware`]) and `hearth demo` ([`demo`]).
//!
//! A simulated firmware image says what it is and carries a hash the simulated bootloader
//! checks, as ESP-IDF's checks an app image:
//!
//! ```
//! use hearth_sim::firmware::{build, verify, Health, ImageInfo};
//!
//! let info = ImageInfo {
//!     version: "1.2.0".into(),
//!     appliance: "weather".into(),
//!     health: Health::Crash, // boots, then crashes: an update that must roll back
//! };
//! let mut image = build(&info, 4096).unwrap();
//! assert_eq!(image.len(), 4096);
//! assert_eq!(verify(&image).unwrap().0, info);
//!
//! // One flipped bit and the bootloader refuses the slot.
//! image[100] ^= 1;
//! assert!(verify(&image).is_err());
//! assert!(build(&ImageInfo { version: "1.2".into(), ..info }, 4096).is_err());
//! ```

pub mod air;
pub mod board;
pub use hearth_hosttime as clock;
pub mod console;
pub mod control;
pub mod demo;
pub mod device;
pub mod env;
pub mod espnow_tool;
pub mod faults;
pub mod firmware;
pub mod fleet;
pub mod latch;
pub mod net;
pub mod power;
pub mod stress;
pub mod tls;
