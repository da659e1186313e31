//! Safe mode: the appliance did not become healthy several boots in a row, so it does not run.
//! The device keeps its network, MQTT, updates, config pushes and commands, so the fault can be
//! fixed from afar (see `hearth_runtime::update`). It answers to the configured appliance's name, so an
//! update built for that appliance is accepted.

use hearth_core::publish::{PubId, Publications};
use hearth_core::Millis;

use hearth_appliances::PROFILES;
use hearth_profile::Profile;

/// The stand-in for an appliance in safe mode.
pub struct SafeMode {
    appliance: &'static str,
}

impl SafeMode {
    /// Safe mode for a device running the appliance `appliance`, of this build or not.
    pub fn of(appliance: &'static str) -> Self {
        SafeMode { appliance }
    }

    /// Safe mode for a device configured as `appliance`.
    pub fn new(appliance: &str) -> Self {
        SafeMode {
            appliance: PROFILES
                .iter()
                .copied()
                .find(|p| *p == appliance)
                .unwrap_or("unknown"),
        }
    }
}

impl Profile for SafeMode {
    fn name(&self) -> &'static str {
        self.appliance
    }

    fn register(&mut self, _pubs: &mut Publications, _now: Millis) {}

    fn next_work(&self) -> Millis {
        Millis::MAX
    }

    async fn work(&mut self, _now: Millis, _pubs: &mut Publications) {}

    fn evaluate(&mut self, _id: PubId, _now: Millis) -> Option<alloc::string::String> {
        None
    }
}
