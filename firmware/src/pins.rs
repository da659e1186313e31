//! The board's wiring: which GPIO does what, from `config.txt` (`led`, `ledinvert`, `i2csda`,
//! `i2cscl`, `ethsck`, `ethmosi`, `ethmiso`, `ethcs`, `ethint`, `ethrst`, `hx711sck`,
//! `hx711dout`, the appliances' pin keys) or the chip's defaults, checked against the chip
//! before any pin is touched.
//!
//! The chip facts (its GPIOs, the SPI-flash and USB-console pins, the default wiring) and
//! every rule checked here are `hearth_device::chips`, shared with `hearth config check
//! --chip`, `hearth flash` and the device's check of a pushed config, and tested on the host:
//! a config those accept boots here. This module picks this image's chip and the appliances
//! the image contains, and logs the warnings. A bad choice is a boot error (every problem is
//! reported), never a panic.

use hearth_config::Config;
use hearth_device::chips::{self, Chip};
use hearth_device::profiles::Plan;

pub use hearth_device::chips::{Ethernet, Led, Rejected, Wiring};

/// This image's chip.
#[cfg(feature = "esp32c3")]
pub const CHIP: &Chip = &chips::ESP32C3;
/// This image's chip.
#[cfg(feature = "esp32c6")]
pub const CHIP: &Chip = &chips::ESP32C6;

/// Is the appliance behind `feature` in this image? (`lean` leaves out those not named.)
macro_rules! built {
    ($feature:literal, $name:literal) => {
        if cfg!(any(feature = $feature, not(feature = "lean"))) {
            $name
        } else {
            ""
        }
    };
}

/// The appliances this image contains (an empty entry for each one left out).
pub const IMAGE: &[&str] = &[
    built!("appliance-relay", "relay"),
    built!("appliance-energy", "energy"),
    built!("appliance-rx433", "rx433"),
    built!("appliance-h2o", "h2o"),
    built!("appliance-switch", "switch"),
    built!("appliance-termo", "termo"),
];

/// Every rule this chip applies to `config` (planned as `plan`), and its wiring.
pub fn check(config: &Config, plan: &Plan) -> Result<Wiring, Rejected> {
    let wiring = chips::check(config, plan, CHIP, IMAGE)?;
    for w in &wiring.warnings {
        log::warn!("{w}");
    }
    Ok(wiring)
}
