//! The `rx433` appliance (reference ref-profiles §4): a 433 MHz OOK receiver module whose data
//! output is captured as pulse timings ([`PulseSource`]) and decoded as EV1527 and HT6P20
//! keyfob presses by [`hearth_drivers::ook::Receiver`].
//!
//! Published, with the reference's payloads:
//! * `stat/<name>/Keyfob`: `<PROTOCOL>:<code in decimal>` (e.g. `EV1527:10597061`), one message
//!   per press, not retained. Home Assistant sees it as an event entity with the event types
//!   `EV1527` and `HT6P20` and the attributes `code`, `address` and `button`.
//! * `stat/<name>/Statistics`: `recv=%d good=%d bad=%d ook_start=%d ook_restart=%d ook_ok=%d
//!   ook_nok=%d ook_overflow=%d` (the reference's counters) followed by ` presses=%d lost=%d`,
//!   evaluated every 60 min (first at start), published on change and forced every 60 min,
//!   retained; a diagnostic entity in Home Assistant.
//!
//! Differences from the reference:
//! * No busy polling: the pulses come from a capture peripheral (the RMT on the ESP32); the
//!   appliance drains them every [`POLL_EVERY`] and decodes them as they come, from start-up (the
//!   reference waited 12 s).
//! * Decoding fixes of [`hearth_drivers::ook`]: bit polarity from the right attribute, timing
//!   tolerance that accepts ±20 % jitter, the last frame of a transmission decoded.
//! * Presses (§13.8): a press in the first 250 ms is not dropped; repeated frames of one code are
//!   one press for as long as they keep coming less than 250 ms apart (a held button is one
//!   press), and a different code is a new press at once (the reference dropped any code within
//!   250 ms of the previous one and repeated a held button every 250 ms).
//! * Refresh (§13.10): a press is an event, so [`EVENT_HOLD`] after it the item is cleared and
//!   `cmnd/<name>/Refresh` no longer republishes it; a press that could not be sent within that
//!   time (no connection) is dropped rather than delivered late.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hearth_config::KeySpec;
use hearth_core::discovery::Entity;
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::ook::{PulseSource, Receiver, Stats};

/// How often the captured pulses are drained and decoded.
pub const POLL_EVERY: Millis = 20;
/// At most this many pulses are decoded per round of work (the rest at once in the next round).
pub const PULSES_PER_WORK: usize = 4_096;
/// A press stays the `Keyfob` item's value this long, then it is cleared (see the module docs).
pub const EVENT_HOLD: Millis = 5 * SECOND;
/// Statistics: evaluation and forced publication period.
const STATS_EVERY: Millis = 60 * MINUTE;
/// Presses waiting to be offered (more in one poll round are unlikely; the oldest is dropped).
const PENDING_PRESSES: usize = 8;

/// The event types of the `Keyfob` entity: the protocol names of the payload.
pub const EVENT_TYPES: &[&str] = &["EV1527", "HT6P20"];

/// Turns the `Keyfob` payload into Home Assistant's event JSON: the protocol is the event type;
/// the code and its address and button parts (EV1527: 20 + 4 bits; HT6P20B: 22 + 2 bits and the
/// 4-bit anti-code) are attributes.
pub const KEYFOB_TEMPLATE: &str = "{% set p = value.split(':') %}{% set c = p[1] | int(0) %}\
{% if p[0] == 'HT6P20' %}{% set a = c // 64 %}{% set b = (c // 16) % 4 %}\
{% else %}{% set a = c // 16 %}{% set b = c % 16 %}{% endif %}\
{\"event_type\":\"{{ p[0] }}\",\"code\":{{ c }},\"address\":{{ a }},\"button\":{{ b }}}";

/// Keys this appliance adds to `config.txt`: `rx433pin`, the GPIO of the receiver's data output
/// (the reference: GPIO14, which an ESP32-C3 does not have), and the reference's `rmt` (accepted
/// for compatibility and ignored: the capture peripheral is always used).
pub const CONFIG_KEYS: &[KeySpec] = &[
    KeySpec {
        name: "rx433pin",
        required: false,
        validator: hearth_profile::gpio_number,
    },
    KeySpec {
        name: "rmt",
        required: false,
        validator: rmt_flag,
    },
];

fn rmt_flag(value: &str) -> Result<(), &'static str> {
    match value {
        "0" | "1" => Ok(()),
        _ => Err("expected 0 or 1 (ignored: the capture peripheral is always used)"),
    }
}

/// The appliance's settings from `config.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// GPIO of the receiver's data output, if given (the board's default otherwise).
    pub pin: Option<u8>,
}

impl Settings {
    /// Reads the settings (the values were validated by the parser).
    pub fn from_config(
        config: &hearth_config::Config,
    ) -> Result<Self, hearth_profile::SettingError> {
        let pin = match config.profile_settings.get("rx433pin") {
            None => None,
            Some(v) => Some(v.parse::<u8>().map_err(|_| {
                hearth_profile::SettingError::invalid("rx433pin", v, "a GPIO number")
            })?),
        };
        Ok(Settings { pin })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    keyfob: Option<PubId>,
    statistics: Option<PubId>,
}

/// The keyfob receiver over a pulse source.
pub struct Rx433<P> {
    source: P,
    receiver: Receiver,
    pending: VecDeque<String>,
    /// When the last press was offered (to clear it after [`EVENT_HOLD`]).
    shown_at: Option<Millis>,
    next_work: Millis,
    ids: Ids,
}

impl<P: PulseSource> Rx433<P> {
    /// A receiver decoding from `now` on.
    pub fn new(source: P, now: Millis) -> Self {
        Rx433 {
            source,
            receiver: Receiver::new(),
            pending: VecDeque::new(),
            shown_at: None,
            next_work: now,
            ids: Ids::default(),
        }
    }

    /// The decoder's counters.
    pub fn stats(&self) -> Stats {
        self.receiver.stats()
    }

    /// The `Statistics` payload.
    pub fn statistics(&self) -> String {
        let s = self.receiver.stats();
        format!(
            "recv={} good={} bad={} ook_start={} ook_restart={} ook_ok={} ook_nok={} \
ook_overflow={} presses={} lost={}",
            s.ok, s.good, s.bad, s.start, s.restart, s.ok, s.nok, s.overflow, s.presses, s.lost
        )
    }

    /// Decodes what the source has captured; returns whether the round was cut short by
    /// [`PULSES_PER_WORK`].
    fn drain(&mut self) -> bool {
        for _ in 0..PULSES_PER_WORK {
            match self.source.try_pulse() {
                Ok(Some(pulse)) => {
                    if let Some(code) = self.receiver.feed(pulse) {
                        if self.pending.len() >= PENDING_PRESSES {
                            self.pending.pop_front();
                        }
                        self.pending.push_back(code.to_string());
                    }
                }
                Ok(None) => return false,
                Err(_) => {
                    // Pulses were lost: the frame in progress is broken.
                    self.receiver.discontinuity();
                    return false;
                }
            }
        }
        true
    }
}

impl<P: PulseSource> hearth_profile::Profile for Rx433<P> {
    fn name(&self) -> &'static str {
        "rx433"
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        self.ids = Ids {
            keyfob: Some(pubs.register(PubSpec::on_demand("Keyfob"), now)),
            statistics: Some(pubs.register(
                PubSpec::periodic("Statistics", STATS_EVERY, STATS_EVERY).retained(),
                now,
            )),
        };
    }

    fn next_work(&self) -> Millis {
        self.next_work
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        let more = self.drain();
        self.next_work = if more { now } else { now + POLL_EVERY };
        let Some(id) = self.ids.keyfob else {
            return;
        };
        // One press per round: the runtime sends what is queued before the next round, and an
        // item keeps only its latest value.
        if let Some(payload) = self.pending.pop_front() {
            pubs.offer(id, now, Some(payload), true);
            self.shown_at = Some(now);
            if !self.pending.is_empty() {
                self.next_work = now;
            }
        } else if self
            .shown_at
            .is_some_and(|t| now.saturating_sub(t) >= EVENT_HOLD)
        {
            pubs.offer(id, now, None, false);
            self.shown_at = None;
        }
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        if Some(id) == self.ids.statistics {
            Some(self.statistics())
        } else {
            // The keyfob item is only offered by `work`.
            None
        }
    }

    fn entities(&self) -> Vec<Entity> {
        let mut keyfob = Entity::event("Keyfob", "Keyfob", EVENT_TYPES);
        keyfob.value_template = Some(KEYFOB_TEMPLATE.into());
        Vec::from([keyfob, Entity::diagnostic("Statistics", "Statistics")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embassy_futures::block_on;
    use hearth_core::discovery::Component;
    use hearth_drivers::ook::Pulse;
    use hearth_profile::Profile;

    /// A source replaying a list of pulses (an `Err` is a loss).
    struct Replay {
        pulses: VecDeque<Result<Pulse, ()>>,
    }

    impl PulseSource for Replay {
        type Error = ();
        async fn next_pulse(&mut self) -> Result<Pulse, ()> {
            self.pulses.pop_front().unwrap_or(Err(()))
        }
        fn try_pulse(&mut self) -> Result<Option<Pulse>, ()> {
            self.pulses.pop_front().transpose()
        }
    }

    fn ev1527(code: u32, frames: usize) -> Vec<Pulse> {
        let t = 350;
        let mut v = Vec::new();
        for _ in 0..frames {
            v.extend([Pulse::high(t), Pulse::low(31 * t)]);
            for i in (0..24).rev() {
                let (h, l) = if code >> i & 1 == 1 { (3, 1) } else { (1, 3) };
                v.extend([Pulse::high(h * t), Pulse::low(l * t)]);
            }
        }
        v.push(Pulse::high(t));
        v.push(Pulse::low(400_000));
        v
    }

    fn source(pulses: Vec<Pulse>) -> Replay {
        Replay {
            pulses: pulses.into_iter().map(Ok).collect(),
        }
    }

    fn drain(p: &mut Publications) -> Vec<(String, String, bool)> {
        core::iter::from_fn(|| p.pop())
            .map(|o| (o.item, o.payload, o.retain))
            .collect()
    }

    fn run(rx: &mut Rx433<Replay>, pubs: &mut Publications, now: Millis) {
        block_on(rx.work(now, pubs));
        while let Some((id, force)) = pubs.due(now) {
            let v = rx.evaluate(id, now);
            pubs.offer(id, now, v, force);
        }
    }

    #[test]
    fn a_press_is_one_keyfob_message_at_boot_and_statistics_follow() {
        let mut pulses = ev1527(0xA1B2C5, 4);
        pulses.extend(ev1527(0xA1B2C5, 4));
        let mut rx = Rx433::new(source(pulses), 0);
        let mut pubs = Publications::new(8);
        rx.register(&mut pubs, 0);
        run(&mut rx, &mut pubs, 0);
        let out = drain(&mut pubs);
        assert!(
            out.contains(&("Keyfob".into(), "EV1527:10597061".into(), false)),
            "{out:?}"
        );
        let stats = out
            .iter()
            .find(|o| o.0 == "Statistics")
            .expect("first at boot");
        assert!(stats.2, "statistics are retained");
        // The first poll ran before the decode; the hourly one sees all frames.
        run(&mut rx, &mut pubs, POLL_EVERY);
        let out = drain(&mut pubs);
        assert_eq!(
            out.iter().filter(|o| o.0 == "Keyfob").count(),
            1,
            "the second transmission 400 ms later is a second press: {out:?}"
        );
        assert_eq!(rx.stats().presses, 2);
        run(&mut rx, &mut pubs, STATS_EVERY);
        let out = drain(&mut pubs);
        assert_eq!(
            out,
            [(
                "Statistics".into(),
                // 2 × 4 frames; the long idle lows open frames too (restart), and the second
                // transmission's first sync high is a 1-level frame (nok).
                "recv=8 good=8 bad=0 ook_start=1 ook_restart=9 ook_ok=8 ook_nok=1 \
ook_overflow=0 presses=2 lost=0"
                    .into(),
                true
            )]
        );
    }

    #[test]
    fn the_same_code_is_sent_again_and_refresh_does_not_repeat_old_presses() {
        let mut rx = Rx433::new(source(ev1527(0x000011, 3)), 0);
        let mut pubs = Publications::new(8);
        rx.register(&mut pubs, 0);
        run(&mut rx, &mut pubs, 0);
        assert!(drain(&mut pubs).iter().any(|o| o.1 == "EV1527:17"));
        // The same button again later: published although unchanged.
        rx.source = source(ev1527(0x000011, 3));
        run(&mut rx, &mut pubs, 1_000);
        assert!(drain(&mut pubs).iter().any(|o| o.1 == "EV1527:17"));
        pubs.refresh();
        assert!(
            drain(&mut pubs).iter().any(|o| o.0 == "Keyfob"),
            "within the hold time"
        );
        run(&mut rx, &mut pubs, 1_000 + EVENT_HOLD);
        pubs.refresh();
        let out = drain(&mut pubs);
        assert!(out.iter().all(|o| o.0 != "Keyfob"), "{out:?}");
        assert!(out.iter().any(|o| o.0 == "Statistics"));
    }

    #[test]
    fn lost_pulses_break_the_frame_and_are_counted() {
        let mut pulses: VecDeque<Result<Pulse, ()>> =
            ev1527(0x123456, 1).into_iter().map(Ok).collect();
        pulses.insert(20, Err(()));
        let mut rx = Rx433::new(Replay { pulses }, 0);
        let mut pubs = Publications::new(8);
        rx.register(&mut pubs, 0);
        for i in 0..3 {
            run(&mut rx, &mut pubs, i * POLL_EVERY);
        }
        assert!(drain(&mut pubs).iter().all(|o| o.0 != "Keyfob"));
        assert_eq!((rx.stats().lost, rx.stats().good), (1, 0));
        assert!(rx.statistics().ends_with("presses=0 lost=1"));
    }

    #[test]
    fn entities_are_an_event_and_a_diagnostic() {
        let rx = Rx433::new(source(Vec::new()), 0);
        let e = rx.entities();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].item, "Keyfob");
        assert_eq!(
            e[0].component,
            Component::Event {
                event_types: alloc::vec!["EV1527".into(), "HT6P20".into()]
            }
        );
        assert!(e[0]
            .value_template
            .as_deref()
            .is_some_and(|t| t.contains("event_type") && t.contains("split(':')")));
        assert!(e[1].diagnostic && e[1].item == "Statistics");
    }

    #[test]
    fn config_keys_are_strict() {
        let v = |name: &str, value: &str| {
            let k = CONFIG_KEYS.iter().find(|k| k.name == name).unwrap();
            (k.validator)(value)
        };
        assert!(v("rx433pin", "4").is_ok());
        assert!(v("rx433pin", "x").is_err());
        assert!(v("rmt", "1").is_ok());
        assert!(v("rmt", "yes").is_err());
        let c = hearth_config::parse_with(
            "profile rx433\nssid (wired)\nmqttbroker b\nmqttname KeyfobReceiver\nrx433pin 4\n",
            &["rx433"],
            CONFIG_KEYS,
        )
        .expect("valid");
        assert_eq!(Settings::from_config(&c), Ok(Settings { pin: Some(4) }));
    }
}
