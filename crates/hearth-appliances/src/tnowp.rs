//! `tnowp`, the ESP-NOW link test peripheral (reference ref-profiles §10): it reports the RSSI of
//! the last back-data it heard from its central every 15 s + 0..15 s, and never sleeps.
//!
//! Difference from the reference: it sends `stat/<name>/Value` (which a central forwards; the
//! reference sent `stat/TNow/YourRSSI`, which its own `tnowc` ignored, §13.13), and each report is
//! retried until confirmed.

use alloc::format;
use alloc::string::String;

use hearth_core::rng::{Rng, SplitMix64};
use hearth_core::{Millis, SECOND};
use hearth_netnow::link::Entropy;
use hearth_netnow::peripheral::PeripheralEvent;

use hearth_profile::link::{AppAction, LinkCtl, PeripheralApp};

/// Report period, plus up to the same again as fudge.
const EVERY: Millis = 15 * SECOND;
/// The RSSI reported before any back-data was heard (the reference's 1001).
pub const NO_RSSI: i32 = 1001;

/// The test peripheral.
pub struct TNowP {
    topic: String,
    rssi: i32,
    next: Millis,
    rng: SplitMix64,
    /// Back-data payloads heard, for the console.
    pub heard: u32,
}

impl TNowP {
    /// A test peripheral named `name` (its `mqttname`), first report due 15..30 s after `now`.
    pub fn new(name: &str, seed: u64, now: Millis) -> Self {
        let mut rng = SplitMix64::new(seed);
        TNowP {
            topic: format!("stat/{name}/Value"),
            rssi: NO_RSSI,
            next: now + EVERY + rng.below(EVERY),
            rng,
            heard: 0,
        }
    }

    /// The payload of the next report.
    pub fn payload(&self) -> String {
        format!("{}\n{}", self.topic, self.rssi)
    }
}

impl PeripheralApp for TNowP {
    fn next_work(&self) -> Millis {
        self.next
    }

    async fn work<R: Entropy>(&mut self, now: Millis, link: &mut LinkCtl<'_, R>) -> AppAction {
        self.next = now + EVERY + self.rng.below(EVERY);
        if !link.report_pending() {
            // Not paired yet: the report waits for the pairing, and is then retried until
            // confirmed.
            let _ = link.send(self.payload().as_bytes());
        }
        AppAction::Continue
    }

    fn event<R: Entropy>(
        &mut self,
        event: &PeripheralEvent,
        _now: Millis,
        _link: &mut LinkCtl<'_, R>,
    ) -> AppAction {
        if let PeripheralEvent::Backdata { rssi, .. } = event {
            self.rssi = i32::from(*rssi);
            self.heard += 1;
        }
        AppAction::Continue
    }
}
