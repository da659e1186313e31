//! hearth-profile: the appliance seam. What an appliance is to the runtime ([`Profile`], with
//! the time passed in, and its object-safe face [`DynProfile`], so the runtime is compiled once
//! whatever appliance an image runs), why it refuses its settings ([`SettingError`]), and what
//! an ESP-NOW appliance shares with the link ([`link`]). The appliances (`hearth-appliances`)
//! implement these traits and the runtime (`hearth-device`) drives them; neither knows the
//! other.
//!
//! ```
//! use hearth_core::publish::{PubId, PubSpec, Publications};
//! use hearth_core::Millis;
//! use hearth_profile::{DynProfile, Profile};
//!
//! /// A counter that publishes how many times it was asked to count.
//! struct Counter { id: Option<PubId>, count: u32 }
//!
//! impl Profile for Counter {
//!     fn name(&self) -> &'static str { "counter" }
//!     fn register(&mut self, pubs: &mut Publications, now: Millis) {
//!         self.id = Some(pubs.register(PubSpec::on_demand("Count"), now));
//!     }
//!     fn next_work(&self) -> Millis { Millis::MAX }
//!     async fn work(&mut self, _now: Millis, _pubs: &mut Publications) {}
//!     fn evaluate(&mut self, _id: PubId, _now: Millis) -> Option<String> {
//!         Some(self.count.to_string())
//!     }
//!     async fn command(&mut self, leaf: &str, _payload: &str, _pubs: &mut Publications) -> bool {
//!         if leaf != "count" { return false }
//!         self.count += 1;
//!         true
//!     }
//! }
//!
//! // The runtime sees only the object-safe face.
//! let mut counter = Counter { id: None, count: 0 };
//! let appliance: &mut dyn DynProfile = &mut counter;
//! let mut pubs = Publications::new(8);
//! appliance.register(&mut pubs, 0);
//! assert!(embassy_futures::block_on(appliance.command("count", "", &mut pubs)));
//! assert!(!embassy_futures::block_on(appliance.command("reset", "", &mut pubs)));
//! let id = counter.id.unwrap();
//! assert_eq!(Profile::evaluate(&mut counter, id, 10).as_deref(), Some("1"));
//! ```

#![no_std]

extern crate alloc;

mod error;
pub mod link;

use alloc::string::String;

use hearth_config::Config;
use hearth_core::publish::{PubId, Publications};
use hearth_core::Millis;

pub use error::SettingError;

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
    /// What Home Assistant should show of this appliance (its discovery entities). Items
    /// registered later (e.g. per ESP-NOW sender) may be added; the runtime asks again at
    /// every connection and whenever [`entities_version`](Self::entities_version) changes.
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity> {
        alloc::vec::Vec::new()
    }
    /// Changes whenever [`entities`](Self::entities) would return a different set. Cheap: the
    /// runtime reads it every loop turn. Appliances whose entities never change keep the
    /// default.
    fn entities_version(&self) -> usize {
        0
    }
    /// Whether the appliance needs a reboot to recover (its hardware stayed broken too long),
    /// and why, for the log. The runtime checks after every [`work`](Self::work).
    fn wants_reboot(&self) -> Option<&'static str> {
        None
    }
    /// The broker session came up (`true`, with the interface's address if the network knows
    /// it) or was lost (`false`); for displays showing it.
    fn online(&mut self, _online: bool, _address: Option<core::net::Ipv4Addr>) {}
}

/// A future an appliance returns through [`DynProfile`], boxed so that the trait is
/// object-safe.
pub type ProfileFuture<'a, T> =
    core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = T> + 'a>>;

/// The object-safe face of every [`Profile`], for the runtime: the runtime (`hearth_runtime::run`)
/// drives a `&mut dyn DynProfile`, so the runtime's code is compiled **once** per image instead of once
/// per appliance (eleven copies of about 16 KB each on the ESP32-C3). The cost is one small
/// heap allocation per [`work`](Profile::work) and per [`command`](Profile::command) call, freed
/// when it completes. Implemented for every [`Profile`]; appliances never implement it
/// themselves.
pub trait DynProfile {
    /// [`Profile::name`].
    fn name(&self) -> &'static str;
    /// [`Profile::register`].
    fn register(&mut self, pubs: &mut Publications, now: Millis);
    /// [`Profile::next_work`].
    fn next_work(&self) -> Millis;
    /// [`Profile::work`], boxed.
    fn work<'a>(&'a mut self, now: Millis, pubs: &'a mut Publications) -> ProfileFuture<'a, ()>;
    /// [`Profile::evaluate`].
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String>;
    /// [`Profile::command`], boxed.
    fn command<'a>(
        &'a mut self,
        leaf: &'a str,
        payload: &'a str,
        pubs: &'a mut Publications,
    ) -> ProfileFuture<'a, bool>;
    /// [`Profile::entities`].
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity>;
    /// [`Profile::entities_version`].
    fn entities_version(&self) -> usize;
    /// [`Profile::wants_reboot`].
    fn wants_reboot(&self) -> Option<&'static str>;
    /// [`Profile::online`].
    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>);
}

impl<P: Profile> DynProfile for P {
    fn name(&self) -> &'static str {
        Profile::name(self)
    }
    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        Profile::register(self, pubs, now)
    }
    fn next_work(&self) -> Millis {
        Profile::next_work(self)
    }
    fn work<'a>(&'a mut self, now: Millis, pubs: &'a mut Publications) -> ProfileFuture<'a, ()> {
        alloc::boxed::Box::pin(Profile::work(self, now, pubs))
    }
    fn evaluate(&mut self, id: PubId, now: Millis) -> Option<String> {
        Profile::evaluate(self, id, now)
    }
    fn command<'a>(
        &'a mut self,
        leaf: &'a str,
        payload: &'a str,
        pubs: &'a mut Publications,
    ) -> ProfileFuture<'a, bool> {
        alloc::boxed::Box::pin(Profile::command(self, leaf, payload, pubs))
    }
    fn entities(&self) -> alloc::vec::Vec<hearth_core::discovery::Entity> {
        Profile::entities(self)
    }
    fn entities_version(&self) -> usize {
        Profile::entities_version(self)
    }
    fn wants_reboot(&self) -> Option<&'static str> {
        Profile::wants_reboot(self)
    }
    fn online(&mut self, online: bool, address: Option<core::net::Ipv4Addr>) {
        Profile::online(self, online, address)
    }
}

/// A command payload as log lines show it: quoted, escaped, cut to 32 characters.
pub fn shown(payload: &str) -> String {
    let mut text: String = payload.chars().take(32).collect();
    if payload.chars().nth(32).is_some() {
        text.push('…');
    }
    alloc::format!("{text:?}")
}

/// A GPIO number given for `key`, if any (values were validated by the parser, `hearth_device::profiles::parse_config`).
pub fn gpio(config: &Config, key: &str) -> Option<u8> {
    config
        .profile_settings
        .get(key)
        .and_then(|v| v.parse().ok())
}

/// Validates a GPIO number.
pub fn gpio_number(value: &str) -> Result<(), &'static str> {
    match value.parse::<u8>() {
        Ok(n) if n <= 48 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err("expected a GPIO number 0..=48"),
    }
}
