//! Appliance profiles: each declares its published items and commands and does its own
//! hardware work; the runtime does everything else.

use alloc::string::String;

use hearth_core::publish::{PubId, Publications};
use hearth_core::Millis;

pub mod weather;

use hearth_config::{Config, ConfigErrors, KeySpec};

/// The profiles this build contains (the values `profile` accepts).
pub const PROFILES: &[&str] = &["weather"];

/// Keys the profiles add to `config.txt`.
pub const PROFILE_KEYS: &[KeySpec] = weather::KEYS;

/// Parse and validate a `config.txt` for any profile of this build. The simulator, the firmware
/// and `hearth flash` all use this, so one file means the same thing in both worlds.
pub fn parse_config(text: &str) -> Result<Config, ConfigErrors> {
    hearth_config::parse_with(text, PROFILES, PROFILE_KEYS)
}

/// An appliance.
#[allow(async_fn_in_trait)]
pub trait Profile {
    /// The name used by the `profile` config key.
    fn name(&self) -> &'static str;
    /// Register the published items.
    fn register(&mut self, pubs: &mut Publications, now: Millis);
    /// When [`work`](Self::work) is next due.
    fn next_work(&self) -> Millis;
    /// Do the due hardware work (sensor reads). The runtime bounds its duration. The profile
    /// may [`expedite`](Publications::expedite) items whose value just became known.
    async fn work(&mut self, now: Millis, pubs: &mut Publications);
    /// The current value of a registered item; `None` = nothing to publish.
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String>;
    /// A command on `cmnd/<name>/<leaf>`; returns false when the profile does not know it.
    async fn command(&mut self, _leaf: &str, _payload: &str, _pubs: &mut Publications) -> bool {
        false
    }
}
