//! A counter you add to from Home Assistant: the smallest complete Hearth appliance, to copy
//! when you write your own. It shows each part an appliance has:
//!
//! - **its keys** ([`CONFIG_KEYS`]): `counterstep`, how much one `Add` adds (1..=1000, default 1),
//!   checked by the parser like every Hearth key;
//! - **its settings and their rules** ([`CounterSettings::from_config`]), returning a
//!   [`SettingError`] that `hearth config check` and the device print as one line;
//! - **its behaviour** ([`Counter`], a [`Profile`]): it publishes `stat/<name>/Count`
//!   (retained, so a dashboard shows it at once), answers `cmnd/<name>/Add` (the payload is how
//!   much, empty for one step) and `cmnd/<name>/Reset`, and reads the time through a
//!   [`Clock`], so its tests drive time;
//! - **what Home Assistant shows** ([`Profile::entities`]): one sensor, announced by the runtime.
//!
//! It has no hardware. An appliance with a sensor takes its driver (from `hearth-drivers`,
//! over `embedded-hal`) as a type parameter the same way it takes the clock here; see
//! `hearth_appliances::weather` for one. `src/main.rs` runs it on the simulated board against a
//! real broker: `cargo run -p hearth-example-counter -- --config examples/counter/counter.txt
//! --state /tmp/counter`.
//!
//! ```
//! use hearth_example_counter::{CounterSettings, CONFIG_KEYS, NAME};
//!
//! let text = "profile counter\nssid Home\nmqttbroker 192.168.1.2\nmqttname hall\ncounterstep 5\n";
//! let config = hearth_config::parse_with(text, &[NAME], CONFIG_KEYS).expect("a valid config");
//! assert_eq!(CounterSettings::from_config(&config).unwrap().step, 5);
//!
//! // The parser checks the key's syntax with its line number.
//! let bad = text.replace("counterstep 5", "counterstep 0");
//! let errors = hearth_config::parse_with(&bad, &[NAME], CONFIG_KEYS).unwrap_err();
//! assert!(errors.to_string().contains("counterstep"), "{errors}");
//! ```

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_config::{Config, KeySpec};
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE};
use hearth_platform::Clock;
use hearth_profile::{Profile, SettingError};

/// The appliance's name: the value of `profile` in `config.txt`.
pub const NAME: &str = "counter";

/// Its own key, beyond Hearth's.
pub const CONFIG_KEYS: &[KeySpec] = &[KeySpec {
    name: "counterstep",
    required: false,
    validator: step,
}];

/// The syntax of `counterstep`, checked by the parser with the key's line number.
fn step(value: &str) -> Result<(), &'static str> {
    match value.parse::<u32>() {
        Ok(1..=1000) => Ok(()),
        _ => Err("expected a whole number 1..=1000"),
    }
}

/// The counter's settings from `config.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSettings {
    /// How much one `Add` with an empty payload adds.
    pub step: u32,
}

impl CounterSettings {
    /// The settings of a parsed config (the parser checked `counterstep`'s syntax already;
    /// this is where rules across keys would go).
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let step = match config.profile_settings.get("counterstep") {
            None => 1,
            Some(v) => v
                .parse()
                .map_err(|_| SettingError::invalid("counterstep", v, "1..=1000"))?,
        };
        Ok(CounterSettings { step })
    }
}

/// The most one `Add` may add.
pub const MAX_ADD: u32 = 1_000_000;

/// The appliance.
pub struct Counter<C: Clock> {
    settings: CounterSettings,
    clock: C,
    count: u64,
    item: Option<PubId>,
}

impl<C: Clock> Counter<C> {
    /// A counter at 0.
    pub fn new(settings: CounterSettings, clock: C) -> Self {
        Counter {
            settings,
            clock,
            count: 0,
            item: None,
        }
    }

    /// The count.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<C: Clock> Profile for Counter<C> {
    fn name(&self) -> &'static str {
        NAME
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        // Evaluated every minute, published when it changed and at least every 10 minutes.
        let mut spec = PubSpec::periodic("Count", MINUTE, 10 * MINUTE);
        spec.retain = true;
        self.item = Some(pubs.register(spec, now));
    }

    fn next_work(&self) -> Millis {
        // No hardware to read.
        Millis::MAX
    }

    async fn work(&mut self, _now: Millis, _pubs: &mut Publications) {}

    fn evaluate(&mut self, _id: PubId, _now: Millis) -> Option<String> {
        Some(format!("{}", self.count))
    }

    async fn command(&mut self, leaf: &str, payload: &str, pubs: &mut Publications) -> bool {
        match leaf {
            "Add" => {
                let add = match payload.trim() {
                    "" => Some(self.settings.step),
                    text => text.parse().ok().filter(|n| (1..=MAX_ADD).contains(n)),
                };
                match add {
                    Some(n) => self.count = self.count.saturating_add(n.into()),
                    None => {
                        pubs.log(format!(
                            "counter: Add {}: expected a whole number 1..={MAX_ADD}, or nothing \
                             for one step; ignored",
                            hearth_profile::shown(payload)
                        ));
                        return true;
                    }
                }
            }
            "Reset" => self.count = 0,
            _ => return false,
        }
        // Publish the new count now rather than at the next minute.
        if let Some(id) = self.item {
            pubs.expedite(id, self.clock.now());
        }
        true
    }

    fn entities(&self) -> Vec<Entity> {
        Vec::from([Entity::sensor(
            "Count",
            "Count",
            None,
            None,
            Some("total_increasing"),
        )])
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::cell::Cell;
    use embassy_futures::block_on;

    /// Time the test sets.
    #[derive(Default)]
    struct TestClock(Cell<Millis>);

    impl Clock for &TestClock {
        fn now(&self) -> Millis {
            self.0.get()
        }
    }

    fn config(extra: &str) -> Config {
        let text = format!("profile counter\nssid A\nmqttbroker b\nmqttname c\n{extra}");
        hearth_config::parse_with(&text, &[NAME], CONFIG_KEYS).expect("a valid config")
    }

    #[test]
    fn the_step_is_read_and_checked() {
        assert_eq!(CounterSettings::from_config(&config("")).unwrap().step, 1);
        let five = config("counterstep 5\n");
        assert_eq!(CounterSettings::from_config(&five).unwrap().step, 5);
        let text = "profile counter\nssid A\nmqttbroker b\nmqttname c\ncounterstep 0\n";
        let errors = hearth_config::parse_with(text, &[NAME], CONFIG_KEYS).unwrap_err();
        let shown = format!("{}", errors.as_slice()[0]);
        assert!(shown.contains("1..=1000"), "{shown}");
    }

    #[test]
    fn add_and_reset_change_the_count_and_publish_it_at_once() {
        let clock = TestClock::default();
        let settings = CounterSettings::from_config(&config("counterstep 5\n")).unwrap();
        let mut counter = Counter::new(settings, &clock);
        let mut pubs = Publications::new(8);
        counter.register(&mut pubs, 0);
        // The first evaluation is due at once; take it.
        let (id, _) = pubs.due(0).expect("due at boot");
        let first = counter.evaluate(id, 0);
        assert!(pubs.offer(id, 0, first, false));
        while pubs.pop().is_some() {}
        assert_eq!(pubs.due(1_000), None, "nothing due before the minute");

        clock.0.set(1_000);
        assert!(block_on(counter.command("Add", "", &mut pubs)));
        assert_eq!(counter.count(), 5);
        assert!(block_on(counter.command("Add", "7", &mut pubs)));
        assert_eq!(counter.count(), 12);
        // Expedited: due now, not at the next minute.
        assert_eq!(pubs.due(1_000).map(|(i, _)| i), Some(id));
        assert_eq!(counter.evaluate(id, 1_000).as_deref(), Some("12"));

        assert!(block_on(counter.command("Reset", "", &mut pubs)));
        assert_eq!(counter.count(), 0);
        assert!(!block_on(counter.command("Subtract", "1", &mut pubs)));
    }

    #[test]
    fn a_bad_payload_is_logged_and_changes_nothing() {
        let clock = TestClock::default();
        let mut counter = Counter::new(CounterSettings { step: 1 }, &clock);
        let mut pubs = Publications::new(8);
        counter.register(&mut pubs, 0);
        for bad in ["-3", "0", "1000001", "lots", "9999999999999999999999"] {
            assert!(block_on(counter.command("Add", bad, &mut pubs)));
            assert_eq!(counter.count(), 0, "{bad}");
        }
        let logged: Vec<_> = core::iter::from_fn(|| pubs.pop())
            .filter(|m| m.id.is_none())
            .collect();
        assert_eq!(logged.len(), 5);
        assert!(
            logged[0].payload.contains("Add \"-3\""),
            "{}",
            logged[0].payload
        );
    }

    #[test]
    fn home_assistant_sees_one_total_sensor() {
        let clock = TestClock::default();
        let counter = Counter::new(CounterSettings { step: 1 }, &clock);
        let e = counter.entities();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].item, "Count");
    }
}
