//! hearth-sim: the host world. One simulated appliance is one OS process (the "device") with real
//! TCP to a real broker, a flash file with NOR semantics, and I2C chips simulated at the register
//! level. A second process (the "board") plays power supply, watchdog reset line and
//! environment: it restarts the device after a reset, keeps the flash file, and takes fault
//! commands on a control socket in the state directory.

pub mod air;
pub mod board;
pub mod control;
pub mod demo;
pub mod device;
pub mod env;
pub mod espnow_tool;
pub mod faults;
pub mod firmware;
pub mod net;
pub mod power;
pub mod stress;
pub mod tls;
