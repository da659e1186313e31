//! The machine in virtual time: a small world (a link that is up or not, a broker that
//! answers, refuses or stays silent, packets due at given times) performs each action the
//! machine asks for and moves the clock only where an action waits.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hearth_core::publish::{PubId, Publications};
use hearth_core::Millis;

use super::{Action, Command, Counter, Machine, Route};
use crate::session::Incoming;
use crate::settings::Settings;
use crate::update::Handled;
use hearth_platform::{Console, DeviceStatus};
use hearth_profile::Profile;

/// What the machine printed.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    status: Vec<DeviceStatus>,
}

impl Console for Out {
    fn console(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }
    fn status(&mut self, status: DeviceStatus) {
        self.status.push(status);
    }
}

/// An appliance with no items and no hardware work.
struct Quiet;

impl Profile for Quiet {
    fn name(&self) -> &'static str {
        "quiet"
    }
    fn register(&mut self, _: &mut Publications, _: Millis) {}
    fn next_work(&self) -> Millis {
        Millis::MAX
    }
    async fn work(&mut self, _: Millis, _: &mut Publications) {}
    fn evaluate(&mut self, _: PubId, _: Millis) -> Option<String> {
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Broker {
    /// Accepts sessions and answers pings.
    Up,
    /// Accepts sessions, then never answers anything.
    Silent,
    /// Refuses the TCP connection (it is restarting); an open session reads a reset.
    Down,
}

struct World {
    m: Machine,
    now: Millis,
    out: Out,
    profile: Quiet,
    link: bool,
    /// The link is up only from this time on (and while `link`).
    link_at: Millis,
    broker: Broker,
    /// Packets the broker sends, each at its time.
    inbox: VecDeque<(Millis, Incoming)>,
    /// Every action with the time it was asked for.
    log: Vec<(Millis, Action)>,
    /// What went out on `stat/`, in order.
    published: Vec<(String, String)>,
    counters: u32,
    /// Per-entity discovery configs the broker holds retained for this device (topics).
    stale: Vec<String>,
    /// Each per-entity config moved, with the time of the announce that moved it.
    moved: Vec<(Millis, String)>,
}

const BOOT: Millis = 1_000;

/// A config with a 10 s keepalive and no start-up delay, unless `extra` sets one.
fn settings(extra: &str) -> Settings {
    let delay = if extra.contains("startdelay") {
        ""
    } else {
        "startdelay 0\n"
    };
    let text = alloc::format!(
        "profile weather\nssid Home\npassword secretpass\nmqttbroker 10.0.0.2\nmqttname dev\n\
         mqttkeepalive 10\n{delay}{extra}"
    );
    let config = hearth_config::parse(&text, &["weather"]).expect("a valid config");
    Settings::from_config(&config).expect("has a broker")
}

impl World {
    fn new(extra: &str) -> Self {
        Self {
            m: Machine::new(&settings(extra), BOOT, "power-on", 7),
            now: BOOT,
            out: Out::default(),
            profile: Quiet,
            link: true,
            link_at: 0,
            broker: Broker::Up,
            inbox: VecDeque::new(),
            log: Vec::new(),
            published: Vec::new(),
            counters: 0,
            stale: Vec::new(),
            moved: Vec::new(),
        }
    }

    /// Ask the machine once and perform what it says.
    fn step(&mut self) -> Action {
        let action = self.m.poll(self.now, &mut self.profile, &mut self.out);
        self.log.push((self.now, action.clone()));
        let (m, now, out) = (&mut self.m, self.now, &mut self.out);
        match &action {
            Action::Heartbeat
            | Action::NetUp
            | Action::NetDown
            | Action::UpdaterTick
            | Action::Offline
            | Action::Available
            | Action::Reboot(_) => {}
            Action::Sleep(until) => self.now = self.now.max(*until),
            Action::Turn => m.link(now, self.link && now >= self.link_at, out),
            Action::Count(counter) => {
                self.counters += 1;
                m.counted(counter, self.counters);
            }
            Action::Work => m.work_done(false),
            Action::Connect => match self.broker {
                Broker::Up => {
                    m.connected(now, out);
                    // The subscription's retained configs, then the fence behind them.
                    for topic in &self.stale {
                        self.inbox
                            .push_back((now + 3, message(topic, "{\"name\":\"T\"}", true)));
                    }
                    let fence = hearth_core::discovery::fence_topic("dev");
                    self.inbox.push_back((now + 5, message(&fence, "", false)));
                }
                Broker::Silent => m.connected(now, out),
                Broker::Down => m.connect_failed(now, "tcp: connection refused", true, out),
            },
            Action::Probe => m.probed(now, true, out),
            Action::Announce => {
                for topic in m.take_stale() {
                    self.stale.retain(|t| *t != topic);
                    self.moved.push((now, topic));
                }
                m.announced(now, 2, out);
            }
            Action::Ping => {
                m.ping_sent(now);
                if self.broker == Broker::Up {
                    self.inbox.push_back((now + 20, Incoming::Pong));
                }
            }
            Action::Publish { topic, msg } => {
                self.published.push((topic.clone(), msg.payload.clone()));
                m.published(now, topic, msg, out);
            }
            Action::Receive(until) => {
                if self.broker == Broker::Down {
                    m.session_lost(now, "read: connection reset", out);
                } else if self.inbox.front().is_some_and(|(at, _)| at <= until) {
                    let (at, incoming) = self.inbox.pop_front().expect("front");
                    self.now = self.now.max(at);
                    m.received(self.now, incoming, out);
                } else {
                    self.now = self.now.max(*until);
                }
            }
            Action::Command(_) => {}
        }
        action
    }

    /// Step until the clock reaches `t` (a reboot ends the run early).
    fn run_until(&mut self, t: Millis) {
        let mut steps = 0;
        while self.now < t {
            if matches!(self.step(), Action::Reboot(_)) {
                return;
            }
            steps += 1;
            assert!(steps < 100_000, "the machine spins without time passing");
        }
    }

    /// Step until an action matches; returns it and its time.
    fn until(&mut self, what: impl Fn(&Action) -> bool) -> (Millis, Action) {
        for _ in 0..100_000 {
            let a = self.step();
            if what(&a) {
                return (self.now, a);
            }
        }
        panic!(
            "no such action; the last ones: {:?}",
            &self.log[self.log.len().saturating_sub(20)..]
        );
    }

    fn times(&self, what: impl Fn(&Action) -> bool) -> Vec<Millis> {
        self.log
            .iter()
            .filter(|(_, a)| what(a))
            .map(|(t, _)| *t)
            .collect()
    }

    fn printed(&self, line: &str) -> bool {
        self.out.lines.iter().any(|l| l == line)
    }

    fn message(&mut self, at: Millis, leaf: &str, payload: &str, retained: bool) {
        self.inbox.push_back((
            at,
            Incoming::Message {
                topic: alloc::format!("cmnd/dev/{leaf}"),
                payload: payload.as_bytes().to_vec(),
                retained,
            },
        ));
    }
}

fn is_connect(a: &Action) -> bool {
    *a == Action::Connect
}

fn is_announce(a: &Action) -> bool {
    *a == Action::Announce
}

#[test]
fn nothing_connects_before_the_link_then_connect_announce_and_publish_in_that_order() {
    let mut w = World::new("");
    // The link comes up between two turns of the loop.
    w.link_at = BOOT + 5_050;
    w.run_until(BOOT + 5_000);
    assert!(w.times(is_connect).is_empty(), "no session without a link");
    assert!(w.published.is_empty());
    w.run_until(BOOT + 7_000);
    let connect = w.times(is_connect);
    let announce = w.times(is_announce);
    assert_eq!(connect.len(), 1, "one attempt, and it succeeded");
    assert_eq!(announce.len(), 1, "discovery once per session");
    let first_publish = w
        .times(|a| matches!(a, Action::Publish { .. }))
        .first()
        .copied()
        .expect("publishes once online");
    assert!(connect[0] <= announce[0] && announce[0] <= first_publish);
    // Noticed within one link poll of the link coming up, not at the next loop period.
    assert!(connect[0] <= BOOT + 5_050 + super::LINK_POLL, "{connect:?}");
    let order: Vec<&str> = w
        .log
        .iter()
        .filter_map(|(_, a)| match a {
            Action::Connect => Some("connect"),
            Action::Announce => Some("announce"),
            Action::Publish { .. } => Some("publish"),
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(order, ["connect", "announce", "publish"]);
    assert!(w
        .published
        .contains(&("stat/dev/RebootReason".into(), "power-on".into())));
    assert!(w
        .published
        .iter()
        .any(|(t, p)| t == "stat/dev/Log" && p == "boot: reason power-on"));
    assert_eq!(
        w.out.status,
        [
            DeviceStatus::NoNetwork,
            DeviceStatus::NoBroker,
            DeviceStatus::Online
        ]
    );
    assert!(w.printed("mqtt connected"));
    assert!(w.printed("discovery: 2 entities announced"));
}

#[test]
fn the_start_up_delay_holds_the_network_back_with_heartbeats() {
    let mut w = World::new("startdelay 5\n");
    let (at, _) = w.until(|a| *a == Action::NetUp);
    let delay: Millis = w.out.lines[0]
        .strip_prefix("start-up delay ")
        .and_then(|s| s.strip_suffix(" ms"))
        .expect("the delay is printed first")
        .parse()
        .expect("a number");
    assert!(delay > 0 && delay < 5_000, "{delay}");
    assert_eq!(at, BOOT + delay, "the network starts when the delay ends");
    // Proving liveness all along: no sleep longer than a loop period.
    let beats = w.times(|a| *a == Action::Heartbeat);
    assert!(
        beats.len() as Millis >= delay / super::LOOP_PERIOD,
        "{beats:?}"
    );
}

#[test]
fn a_silent_broker_is_pinged_then_dropped_when_no_pingresp_comes() {
    // keepalive 10 s: ping after 5 s of quiet, dead 5 s after an unanswered ping.
    let mut w = World::new("");
    w.broker = Broker::Silent;
    // (No fence comes back either: discovery goes out after its wait, which is not traffic.)
    let (online_at, _) = w.until(|a| *a == Action::Connect);
    w.run_until(online_at + 30_000);
    let pings = w.times(|a| *a == Action::Ping);
    let lost = w.times(|a| matches!(a, Action::Offline));
    assert!(!pings.is_empty() && !lost.is_empty(), "{pings:?} {lost:?}");
    assert!(
        pings[0] >= online_at + 5_000 && pings[0] <= online_at + 5_100,
        "{pings:?}"
    );
    assert!(
        lost[0] >= pings[0] + 5_000 && lost[0] <= pings[0] + 5_100,
        "{lost:?}"
    );
    assert!(w.printed("mqtt lost: no PINGRESP: broker silent"));
    assert!(w
        .log
        .iter()
        .any(|(_, a)| *a == Action::Count(Counter::MqttLost("no PINGRESP: broker silent".into()))));
    assert_eq!(
        w.out.status.last(),
        Some(&DeviceStatus::Online),
        "it reconnected"
    );
    assert!(w.times(is_connect).len() >= 2);
}

#[test]
fn a_broker_that_answers_pings_keeps_its_session() {
    let mut w = World::new("");
    let (online_at, _) = w.until(is_announce);
    w.run_until(online_at + 120_000);
    assert!(w.times(|a| *a == Action::Ping).len() >= 10);
    assert!(
        w.times(|a| *a == Action::Offline).is_empty(),
        "{:?}",
        w.out.lines
    );
    assert_eq!(w.times(is_connect).len(), 1);
}

#[test]
fn a_broker_restart_backs_off_between_attempts_then_reconnects_and_announces_again() {
    let mut w = World::new("mqttbackoffms 500\n");
    let (online_at, _) = w.until(is_announce);
    w.run_until(online_at + 1_000);
    w.broker = Broker::Down;
    let (lost_at, _) = w.until(|a| *a == Action::Offline);
    w.run_until(lost_at + 6_000);
    let attempts = w.times(is_connect);
    let retries: Vec<Millis> = attempts[1..].to_vec();
    assert!(retries.len() >= 4, "{retries:?}");
    // Each wait is the back-off (500 ms, then 1.5 times longer) plus up to half of it.
    let mut since = lost_at;
    let mut backoff = 500;
    for at in &retries {
        let wait = at - since;
        assert!(
            wait >= backoff && wait <= backoff + backoff / 2,
            "waited {wait} ms with a back-off of {backoff}: {retries:?}"
        );
        since = *at;
        backoff = backoff * 3 / 2;
    }
    assert!(w.printed("mqtt connect failed: tcp: connection refused"));

    w.broker = Broker::Up;
    let (back_at, _) = w.until(|a| *a == Action::Announce);
    assert!(back_at - since <= 60_000);
    assert_eq!(
        w.times(is_announce).len(),
        2,
        "discovery again on the new session"
    );
    // The loss is logged with its count once the session is back.
    w.run_until(back_at + 100);
    assert!(
        w.published
            .iter()
            .any(|(t, p)| t == "stat/dev/Log"
                && p == "mqtt lost: read: connection reset (mqttlost 1)"),
        "{:?}",
        w.published
    );
}

#[test]
fn a_retained_command_is_never_obeyed_and_a_live_one_is() {
    let mut w = World::new("");
    let (online_at, _) = w.until(is_announce);
    w.message(online_at + 100, "Relay", "ON", true);
    w.message(online_at + 200, "Relay", "OFF", false);
    let (_, action) = w.until(|a| matches!(a, Action::Command(_)));
    let Action::Command(cmd) = action else {
        unreachable!()
    };
    assert_eq!(
        cmd,
        Command {
            leaf: "Relay".into(),
            payload: b"OFF".to_vec()
        },
        "the retained ON never became a command"
    );
    assert!(w.printed("ignored retained command on cmnd/dev/Relay"));
    w.run_until(w.now + 100);
    assert!(w
        .published
        .iter()
        .any(|(t, p)| t == "stat/dev/Log" && p == "ignored retained command on cmnd/dev/Relay"));
    assert_eq!(
        w.m.route(cmd, Handled::No, &mut w.out),
        Route::Appliance {
            leaf: "Relay".into(),
            payload: "OFF".into()
        }
    );
}

#[test]
fn refresh_publishes_every_item_with_a_value_again() {
    let mut w = World::new("");
    let (online_at, _) = w.until(is_announce);
    w.run_until(online_at + 500);
    let reason = ("stat/dev/RebootReason".to_string(), "power-on".to_string());
    let count = |w: &World| w.published.iter().filter(|p| **p == reason).count();
    assert_eq!(count(&w), 1);

    // An empty payload refreshes nothing.
    let empty = Command {
        leaf: "Refresh".into(),
        payload: Vec::new(),
    };
    assert_eq!(w.m.route(empty, Handled::No, &mut w.out), Route::Done);
    w.run_until(w.now + 500);
    assert_eq!(count(&w), 1);
    // ... and says why, on the console and in the device's log.
    let why = "Refresh ignored: its payload is empty (send any text, e.g. 1)";
    assert!(w.printed(why));
    assert!(
        w.published
            .iter()
            .any(|(t, p)| t == "stat/dev/Log" && p == why),
        "{:?}",
        w.published
    );

    let refresh = Command {
        leaf: "Refresh".into(),
        payload: b" 1\n".to_vec(),
    };
    assert_eq!(w.m.route(refresh, Handled::No, &mut w.out), Route::Done);
    w.run_until(w.now + 500);
    assert_eq!(count(&w), 2, "{:?}", w.published);
    assert!(w.printed("command Refresh \" 1\\n\""));
}

#[test]
fn commands_are_routed_by_their_leaf_and_binary_ones_are_logged() {
    let mut w = World::new("");
    let cmd = |leaf: &str, payload: &[u8]| Command {
        leaf: leaf.into(),
        payload: payload.to_vec(),
    };
    assert_eq!(
        w.m.route(cmd("OTA", b" stats "), Handled::No, &mut w.out),
        Route::Ota {
            command: "stats".into(),
            signed: false
        }
    );
    assert_eq!(
        w.m.route(
            cmd("Signed", b"\x00\x01"),
            Handled::Signed("reboot".into()),
            &mut w.out
        ),
        Route::Ota {
            command: "reboot".into(),
            signed: true
        }
    );
    assert_eq!(
        w.m.route(cmd("OTAChunk", b"\xff"), Handled::Yes, &mut w.out),
        Route::Done
    );
    assert_eq!(
        w.m.route(cmd("Relay", b"\xff\xfe"), Handled::No, &mut w.out),
        Route::Done
    );
    w.link = true;
    let (online_at, _) = w.until(is_announce);
    w.run_until(online_at + 100);
    assert!(w
        .published
        .iter()
        .any(|(t, p)| t == "stat/dev/Log" && p == "ignored Relay: payload is not UTF-8"));
}

#[test]
fn a_lost_link_ends_the_session_and_counts_both_losses() {
    let mut w = World::new("");
    let (online_at, _) = w.until(is_announce);
    w.run_until(online_at + 1_000);
    w.link = false;
    let (_, _) = w.until(|a| *a == Action::NetDown);
    let counted: Vec<&Action> = w
        .log
        .iter()
        .map(|(_, a)| a)
        .filter(|a| matches!(a, Action::Count(_)))
        .collect();
    assert_eq!(
        counted,
        [
            &Action::Count(Counter::NetworkLost),
            &Action::Count(Counter::MqttLost("network down".into()))
        ]
    );
    assert!(w.printed("network lost"));
    assert!(w.printed("mqtt lost: network down"));
    assert!(!w.m.online());
    assert_eq!(w.out.status.last(), Some(&DeviceStatus::NoNetwork));
    // No attempt while the link is down.
    let before = w.times(is_connect).len();
    w.run_until(w.now + 20_000);
    assert_eq!(w.times(is_connect).len(), before);
}

/// A message from the broker on `topic`.
fn message(topic: &str, payload: &str, retained: bool) -> Incoming {
    Incoming::Message {
        topic: topic.to_string(),
        payload: payload.as_bytes().to_vec(),
        retained,
    }
}

#[test]
fn home_assistant_coming_online_gets_availability_discovery_and_states_again() {
    use super::{BIRTH_JITTER_MAX, HA_STATUS};
    assert_eq!(
        HA_STATUS,
        alloc::format!("{}/status", hearth_core::discovery::PREFIX)
    );
    let mut w = World::new("");
    let (connected, _) = w.until(|a| matches!(a, Action::Announce));
    w.run_until(connected + 5_000);
    let reasons = |w: &World| {
        w.published
            .iter()
            .filter(|(topic, _)| topic == "stat/dev/RebootReason")
            .count()
    };
    assert_eq!(reasons(&w), 1, "the boot's reboot reason");

    // Home Assistant restarts: its birth message.
    let birth = w.now + 100;
    w.inbox
        .push_back((birth, message(HA_STATUS, "online", false)));
    let (available, _) = w.until(|a| matches!(a, Action::Available));
    assert!(
        (birth..=birth + BIRTH_JITTER_MAX).contains(&available),
        "availability at {available}, birth at {birth}"
    );
    let (announced, _) = w.until(|a| matches!(a, Action::Announce));
    assert!(announced >= available);
    w.run_until(announced + 2_000);
    assert_eq!(reasons(&w), 2, "every state with a value goes out again");

    // What a new subscriber gets (a retained birth) and Home Assistant's last will change
    // nothing; the session stays up.
    let later = w.now;
    w.inbox
        .push_back((later + 100, message(HA_STATUS, "online", true)));
    w.inbox
        .push_back((later + 200, message(HA_STATUS, "offline", false)));
    w.run_until(later + 30_000);
    let again = w.times(|a| matches!(a, Action::Available | Action::Announce));
    assert!(again.iter().all(|&t| t <= announced), "{again:?}");
    assert!(w.m.online());
}

/// When the first message went out on `stat/`.
fn first_publish(w: &World) -> Millis {
    w.times(|a| matches!(a, Action::Publish { .. }))[0]
}

#[test]
fn discovery_waits_for_the_fence_and_goes_out_before_any_state() {
    let mut w = World::new("");
    let (connected, _) = w.until(|a| *a == Action::Connect);
    let (announced, _) = w.until(is_announce);
    // The broker model sends the fence 5 ms after the connect.
    assert_eq!(announced, connected + 5, "{:?}", w.log);
    w.run_until(announced + 2_000);
    assert!(first_publish(&w) >= announced);
    assert_eq!(w.times(is_announce).len(), 1);
    assert!(w.moved.is_empty());

    // A broker that never returns the fence (an ACL refusing it) delays discovery by the wait.
    let mut w = World::new("");
    w.broker = Broker::Silent;
    let (connected, _) = w.until(|a| *a == Action::Connect);
    let (announced, _) = w.until(is_announce);
    assert_eq!(announced, connected + super::FENCE_WAIT);
}

#[test]
fn per_entity_configs_left_by_earlier_firmware_are_moved_before_the_device_config() {
    let mut w = World::new("");
    let old = [
        "homeassistant/sensor/dev/Temperature/config",
        "homeassistant/switch/dev/Relay1/config",
    ];
    w.stale = old.iter().map(|t| String::from(*t)).collect();
    let (announced, _) = w.until(is_announce);
    // Moved by the first announce, which comes after the fence.
    assert_eq!(
        w.moved,
        old.iter()
            .map(|t| (announced, String::from(*t)))
            .collect::<Vec<_>>()
    );
    assert!(w.stale.is_empty());
    assert!(w.out.lines.iter().any(|l| l.starts_with(
        "discovery: moving homeassistant/switch/dev/Relay1/config into the device config"
    )));
    w.run_until(announced + 5_000);
    assert_eq!(
        w.times(is_announce).len(),
        1,
        "one device config for the burst"
    );

    // The device's own migration and clear coming back, another device's config, the fence
    // again: nothing moves, nothing is announced again.
    let t = w.now;
    let own = discovery_message(old[0], super::discovery::MIGRATE);
    w.inbox.push_back((t + 10, own));
    w.inbox.push_back((t + 20, discovery_message(old[0], "")));
    w.inbox.push_back((
        t + 30,
        discovery_message("homeassistant/sensor/other/T/config", "{}"),
    ));
    w.run_until(t + 3_000);
    assert_eq!(w.moved.len(), 2);
    assert_eq!(w.times(is_announce).len(), 1);

    // One published later by someone else: moved, and the device config goes out again once.
    let t = w.now;
    w.inbox
        .push_back((t + 10, discovery_message(old[1], "{\"name\":\"R\"}")));
    w.inbox
        .push_back((t + 50, discovery_message(old[0], "{\"name\":\"T\"}")));
    w.run_until(t + 3_000);
    assert_eq!(w.moved.len(), 4);
    let again = w.times(is_announce);
    assert_eq!(again.len(), 2, "{again:?}");
    assert!(again[1] >= t + 50 + 300, "{again:?}");

    // A flood of them (every one a new topic) is bounded: the rest waits for a connection.
    let t = w.now;
    for i in 0..200 {
        let topic = alloc::format!("homeassistant/sensor/dev/Flood{i}/config");
        w.inbox.push_back((t + 10, discovery_message(&topic, "{}")));
    }
    w.run_until(t + 3_000);
    assert_eq!(w.moved.len(), 4 + 64);
    assert!(w.printed(
        "discovery: homeassistant/sensor/dev/Flood199/config left for the next connection"
    ));

    // The next session finds nothing left.
    w.stale.clear();
    let moved = w.moved.len();
    w.broker = Broker::Down;
    w.run_until(w.now + 1_000);
    w.broker = Broker::Up;
    w.run_until(w.now + 60_000);
    assert_eq!(w.moved.len(), moved);
    assert!(w.times(is_announce).len() >= 4);
}

fn discovery_message(topic: &str, payload: &str) -> Incoming {
    message(topic, payload, false)
}
