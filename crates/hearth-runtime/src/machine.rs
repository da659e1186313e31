//! The runtime's decisions as a value, without I/O: [`Machine`].
//!
//! The async driver in [`crate::driver`] owns the network, the MQTT client, the store and
//! the updater; the machine owns what the device decides: the publication queue, both
//! supervisors, the back-off, whether the session is up and announced, and the order of one
//! loop turn. The driver asks [`Machine::poll`] what to do next, performs the [`Action`] and
//! tells the machine how it went through the method the action names (quinn-proto's shape:
//! the caller brings the time and the I/O, the value brings the rules). Console and status
//! lines go straight to the [`Console`] passed in; everything that waits, reads or writes is
//! an action.
//!
//! It lives in hearth-device for now because it takes the appliance as a
//! [`DynProfile`] and prints to a [`Console`]; it moves into a runtime crate of its own once
//! those seams are crates.
//!
//! One turn, in order: [`Action::Turn`] (heartbeat, link state, network supervisor), the
//! profile's [`Action::Work`] when due, the appliance's reboot wish, [`Action::UpdaterTick`],
//! the evaluation of due items, then the session: [`Action::Announce`] after every CONNACK
//! (and when the profile's entities change), [`Action::Connect`] when offline with the link up
//! and the back-off over, else serving: [`Action::Ping`] when the keepalive wants it, one
//! [`Action::Publish`] per queued message, then [`Action::Receive`] until the next deadline
//! (offline: [`Action::Sleep`]).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hearth_core::discovery;
use hearth_core::publish::{Outgoing, PubId, PubSpec, Publications};
use hearth_core::reboot::RebootReason;
use hearth_core::rng::SplitMix64;
use hearth_core::supervisor::{
    start_delay, Keepalive, MqttPolicy, MqttSupervisor, NetAction, NetEvent, NetPolicy, NetState,
    NetSupervisor, RetryDecision,
};
use hearth_core::topics::Topics;
use hearth_core::{Millis, SECOND};

use crate::session::{Incoming, MAX_INCOMING_PACKET};
use crate::settings::Settings;
use crate::update::Handled;
use hearth_platform::{Console, DeviceStatus};
use hearth_profile::DynProfile;

/// Home Assistant's status topic: `online` when it starts (its birth message), `offline` as its
/// last will. Subscribed with the commands.
pub const HA_STATUS: &str = "homeassistant/status";
/// A device answers Home Assistant's birth after a random delay of up to this, so a house of
/// devices does not answer at once.
pub const BIRTH_JITTER_MAX: Millis = 5_000;
/// After connecting, the device config waits at most this long for the fence
/// (`discovery::fence_topic`) behind the per-entity configs earlier firmware left retained,
/// so that it goes out after they have been moved (Home Assistant refuses a device config
/// whose entities are still announced per entity).
pub const FENCE_WAIT: Millis = 2_000;
/// A per-entity config that arrives later (another client publishing one) holds the device
/// config back this long, so a burst of them is answered with one device config.
const MIGRATE_SETTLE: Millis = 300;
/// Per-entity configs waiting to be moved at most; more (a flood on those topics) wait for the
/// next connection, which finds the retained ones again.
const STALE_MAX: usize = 64;

/// The loop comes around at least this often, even with nothing to do.
pub const LOOP_PERIOD: Millis = SECOND;
/// How often the link is polled while associating.
pub const LINK_POLL: Millis = 100;
/// Unsent log lines kept while offline.
const LOG_CAPACITY: usize = 32;

/// A persistent counter the driver increments in the store, then reports with
/// [`Machine::counted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counter {
    /// An established link was lost (`connlost`).
    NetworkLost,
    /// A stuck link was dropped to re-associate (`connlost`, not logged).
    LinkStuck,
    /// A session ended, and why (`mqttlost`).
    MqttLost(String),
}

/// A command that arrived on a command topic without the retain flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The topic's last level (`Refresh`, `OTA`, an appliance's command).
    pub leaf: String,
    /// The payload as it arrived (binary for update chunks).
    pub payload: Vec<u8>,
}

/// What the driver must do next; each names the feedback it owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start-up delay: prove liveness to the watchdog. No feedback.
    Heartbeat,
    /// Wait until this time (nothing else to do while offline). No feedback.
    Sleep(Millis),
    /// A new loop turn: prove liveness, then report the link with [`Machine::link`].
    Turn,
    /// Bring the interface up and start associating. No feedback.
    NetUp,
    /// Take the interface down. No feedback.
    NetDown,
    /// Increment the counter in the store, then [`Machine::counted`].
    Count(Counter),
    /// Store the reason and reset; never returns.
    Reboot(RebootReason),
    /// Run the profile's hardware work (bounded), then [`Machine::work_done`].
    Work,
    /// Step the updater with [`Machine::pubs_mut`] and [`Machine::online`]. No feedback.
    UpdaterTick,
    /// Open a session: [`Machine::connected`] or [`Machine::connect_failed`].
    Connect,
    /// Ask whether the local network answers: [`Machine::probed`].
    Probe,
    /// The session ended: drop the client and tell the profile it is offline. No feedback.
    Offline,
    /// Move the per-entity configs of [`Machine::take_stale`] (for each: publish
    /// [`discovery::MIGRATE`] on its topic, then clear it, retained and empty), then publish the
    /// device config: [`Machine::announced`] or [`Machine::session_lost`].
    Announce,
    /// Publish the retained availability `Online` again (Home Assistant came online):
    /// nothing, or [`Machine::session_lost`].
    Available,
    /// Send a PINGREQ: [`Machine::ping_sent`] or [`Machine::session_lost`].
    Ping,
    /// Publish one message: [`Machine::published`] or [`Machine::publish_failed`].
    Publish {
        /// The message's topic.
        topic: String,
        /// The message.
        msg: Outgoing,
    },
    /// Wait for one packet until this time: [`Machine::received`], nothing on a timeout, or
    /// [`Machine::session_lost`].
    Receive(Millis),
    /// Handle a command: the updater first, then [`Machine::route`].
    Command(Command),
}

/// Where a command goes after the updater passed on it ([`Machine::route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Nothing more to do (handled, refused, or a `Refresh`).
    Done,
    /// An `OTA` command line, and whether it came signed.
    Ota {
        /// The trimmed command line.
        command: String,
        /// It arrived in a verified `Signed` envelope.
        signed: bool,
    },
    /// The appliance's own command (unknown ones are logged by the driver).
    Appliance {
        /// The command's name.
        leaf: String,
        /// The trimmed payload.
        payload: String,
    },
}

struct CoreItems {
    uptime: PubId,
    reboot_reason: PubId,
}

/// Where the machine is in a turn. The `Await*` phases wait for the feedback of the action
/// just returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Delay { start: Millis, told: bool },
    Turn,
    AwaitLink,
    Work,
    AwaitWork,
    Update,
    Evaluate,
    Session,
    AwaitConnect,
    AwaitAnnounce(usize),
    Serve { deadline: Millis },
    AwaitPing { deadline: Millis },
    Drain { deadline: Millis },
    AwaitPublish { deadline: Millis },
    AwaitReceive,
}

/// The device's decisions between boot and reset; see the [module](self).
pub struct Machine {
    boot: Millis,
    items: CoreItems,
    pubs: Publications,
    topics: Topics,
    /// [`discovery::fence_topic`] of this device.
    fence: String,
    net_policy: NetPolicy,
    mqtt_policy: MqttPolicy,
    netsup: NetSupervisor,
    mqttsup: MqttSupervisor,
    rng: SplitMix64,
    retry_at: Millis,
    /// `Some` while a session is up: the profile's entities version announced on it.
    online: Option<Option<usize>>,
    /// Home Assistant said `online` on its status topic: everything is published again at
    /// this (jittered) time.
    birth_at: Option<Millis>,
    /// The device config waits until then: for the fence after connecting, or for a burst of
    /// per-entity configs to be moved. Publications wait too, so discovery goes first.
    announce_at: Option<Millis>,
    /// Per-entity config topics to move at the next [`Action::Announce`].
    stale: Vec<String>,
    dropped_seen: u32,
    phase: Phase,
    pending: VecDeque<Action>,
}

impl Machine {
    /// The machine at boot (`boot`, the reason from the boot report): registers the core items
    /// (uptime, reboot reason), queues the reason and a log line, and draws the random
    /// start-up delay from `seed`. Register the updater's and the profile's items on
    /// [`pubs_mut`](Self::pubs_mut) before the first [`poll`](Self::poll).
    pub fn new(settings: &Settings, boot: Millis, reason: &str, seed: u64) -> Self {
        let mut pubs = Publications::new(LOG_CAPACITY);
        // Both are Home Assistant entities, so both are retained: Home Assistant subscribes to
        // a state topic only once it has processed the discovery config, after the boot's
        // values went out, and would show "unknown" until the next reboot otherwise (a real
        // Home Assistant showed it).
        let items = CoreItems {
            uptime: pubs.register(
                PubSpec::periodic("Uptime", settings.uptime_eval, settings.uptime_force).retained(),
                boot,
            ),
            reboot_reason: pubs.register(PubSpec::on_demand("RebootReason").retained(), boot),
        };
        pubs.offer(items.reboot_reason, boot, Some(String::from(reason)), true);
        pubs.log(format!("boot: reason {reason}"));
        let mut rng = SplitMix64::new(seed);
        let delay = start_delay(settings.start_delay_max, &mut rng);
        Self {
            boot,
            items,
            pubs,
            topics: Topics::new(&settings.name),
            fence: discovery::fence_topic(&settings.name),
            net_policy: settings.net,
            mqtt_policy: settings.mqtt,
            // Placeholders until the start-up delay is over; made anew then.
            netsup: NetSupervisor::start(settings.net, boot).0,
            mqttsup: MqttSupervisor::new(settings.mqtt, boot),
            rng,
            retry_at: boot,
            online: None,
            birth_at: None,
            announce_at: None,
            stale: Vec::new(),
            dropped_seen: 0,
            phase: Phase::Delay {
                start: boot + delay,
                told: false,
            },
            pending: VecDeque::new(),
        }
    }

    /// The publication queue, for the updater and the profile.
    pub fn pubs_mut(&mut self) -> &mut Publications {
        &mut self.pubs
    }

    /// Is a session up?
    pub fn online(&self) -> bool {
        self.online.is_some()
    }

    /// What to do next, at `now`.
    pub fn poll(
        &mut self,
        now: Millis,
        profile: &mut dyn DynProfile,
        out: &mut dyn Console,
    ) -> Action {
        loop {
            if let Some(action) = self.pending.pop_front() {
                return action;
            }
            match self.phase {
                Phase::Delay { start, told } => {
                    if !told {
                        out.console(&format!("start-up delay {} ms", start - self.boot));
                        self.phase = Phase::Delay { start, told: true };
                    }
                    if now < start {
                        self.pending
                            .push_back(Action::Sleep(start.min(now + LOOP_PERIOD)));
                        return Action::Heartbeat;
                    }
                    let (netsup, action) = NetSupervisor::start(self.net_policy, now);
                    self.netsup = netsup;
                    self.mqttsup = MqttSupervisor::new(self.mqtt_policy, now);
                    self.retry_at = now;
                    out.status(DeviceStatus::NoNetwork);
                    self.phase = Phase::Turn;
                    if action == NetAction::Connect {
                        return Action::NetUp;
                    }
                }
                Phase::Turn => {
                    self.phase = Phase::AwaitLink;
                    return Action::Turn;
                }
                Phase::Work => {
                    if now >= profile.next_work() {
                        self.phase = Phase::AwaitWork;
                        return Action::Work;
                    }
                    self.phase = Phase::Update;
                }
                Phase::Update => {
                    if let Some(why) = profile.wants_reboot() {
                        out.console(&format!("{}: {why}", profile.name()));
                        return Action::Reboot(RebootReason::Appliance);
                    }
                    self.phase = Phase::Evaluate;
                    return Action::UpdaterTick;
                }
                Phase::Evaluate => {
                    self.evaluate(now, profile);
                    self.phase = Phase::Session;
                }
                Phase::Session => {
                    if self.online.is_some() && self.birth_at.is_some_and(|t| now >= t) {
                        // Home Assistant (re)started: availability, discovery (a new announce
                        // on this session) and every state with a value, in that order.
                        self.birth_at = None;
                        self.online = Some(None);
                        self.pubs.refresh();
                        out.console(
                            "home assistant online: availability, discovery and states again",
                        );
                        return Action::Available;
                    }
                    if let Some(announced) = self.online {
                        let version = profile.entities_version();
                        if announced != Some(version) && self.announce_at.is_none_or(|t| now >= t) {
                            self.announce_at = None;
                            self.phase = Phase::AwaitAnnounce(version);
                            return Action::Announce;
                        }
                    }
                    let link = self.netsup.state() == NetState::Connected;
                    if self.online.is_none() && link && now >= self.retry_at {
                        self.phase = Phase::AwaitConnect;
                        return Action::Connect;
                    }
                    let deadline = self.deadline(now, link, profile);
                    self.phase = Phase::Serve { deadline };
                }
                Phase::Serve { deadline } => {
                    if self.online.is_none() {
                        self.phase = Phase::Turn;
                        return Action::Sleep(deadline);
                    }
                    match self.mqttsup.keepalive(now) {
                        Keepalive::Dead => {
                            self.session_lost(now, "no PINGRESP: broker silent", out)
                        }
                        Keepalive::SendPing => {
                            self.phase = Phase::AwaitPing { deadline };
                            return Action::Ping;
                        }
                        Keepalive::Idle => self.phase = Phase::Drain { deadline },
                    }
                }
                Phase::Drain { deadline } => {
                    // Discovery first: while it waits (for the fence), nothing is taken from
                    // the queue; only listen.
                    let next = match self.announce_at {
                        Some(_) => None,
                        None => self.pubs.pop(),
                    };
                    if let Some(msg) = next {
                        self.phase = Phase::AwaitPublish { deadline };
                        let topic = self.topics.stat(&msg.item);
                        return Action::Publish { topic, msg };
                    }
                    self.phase = Phase::AwaitReceive;
                    let until = deadline
                        .min(self.mqttsup.next_keepalive_deadline())
                        .max(now);
                    return Action::Receive(until);
                }
                // The driver owed feedback and gave none: the turn starts again.
                Phase::AwaitLink
                | Phase::AwaitWork
                | Phase::AwaitConnect
                | Phase::AwaitAnnounce(_)
                | Phase::AwaitPing { .. }
                | Phase::AwaitPublish { .. }
                | Phase::AwaitReceive => self.phase = Phase::Turn,
            }
        }
    }

    /// After [`Action::Turn`]: the link's state; steps the network supervisor.
    pub fn link(&mut self, now: Millis, up: bool, out: &mut dyn Console) {
        self.phase = Phase::Work;
        let step = self.netsup.tick(now, up, &mut self.rng);
        match step.event {
            Some(NetEvent::Up) => {
                out.console("network up");
                out.status(DeviceStatus::NoBroker);
            }
            Some(NetEvent::AttemptFailed) => out.console("network attempt timed out"),
            Some(NetEvent::Lost) => {
                out.console("network lost");
                out.status(DeviceStatus::NoNetwork);
                self.pending.push_back(Action::Count(Counter::NetworkLost));
            }
            None => {}
        }
        match step.action {
            Some(NetAction::Connect) => self.pending.push_back(Action::NetUp),
            Some(NetAction::Disconnect) => {
                if self.online.is_some() {
                    self.end_session(now, "network down", out);
                }
                if !self.rebooting() {
                    self.pending.push_back(Action::NetDown);
                    out.status(DeviceStatus::NoNetwork);
                }
            }
            Some(NetAction::Reboot) => self
                .pending
                .push_back(Action::Reboot(RebootReason::Network)),
            None => {}
        }
    }

    /// After [`Action::Count`]: the counter's new value.
    pub fn counted(&mut self, counter: &Counter, n: u32) {
        match counter {
            Counter::NetworkLost => self.pubs.log(format!("network lost (connlost {n})")),
            Counter::LinkStuck => {}
            Counter::MqttLost(why) => self.pubs.log(format!("mqtt lost: {why} (mqttlost {n})")),
        }
    }

    /// After [`Action::Work`]: did it run out of time?
    pub fn work_done(&mut self, timed_out: bool) {
        self.phase = Phase::Update;
        if timed_out {
            self.pubs.log("profile work timed out");
        }
    }

    /// After [`Action::Connect`]: the broker accepted the session.
    pub fn connected(&mut self, now: Millis, out: &mut dyn Console) {
        self.phase = Phase::Turn;
        self.mqttsup.connected(now);
        out.console("mqtt connected");
        out.status(DeviceStatus::Online);
        // Discovery goes out once the fence is back (or after its wait), before anything else.
        self.online = Some(None);
        self.announce_at = Some(now + FENCE_WAIT);
    }

    /// After [`Action::Connect`]: the attempt failed, and whether anything answered it (a TCP
    /// connection, a refusal, a TLS alert prove the link carries packets).
    pub fn connect_failed(
        &mut self,
        now: Millis,
        why: &str,
        answered: bool,
        out: &mut dyn Console,
    ) {
        self.phase = Phase::Turn;
        out.console(&format!("mqtt connect failed: {why}"));
        if !self.retry_or_reboot(now) {
            return;
        }
        let suspect = if answered {
            self.mqttsup.answered();
            false
        } else {
            self.mqttsup.unanswered()
        };
        // Confirm with a cheap check before dropping a link that may be fine.
        if suspect {
            self.pending.push_back(Action::Probe);
        }
    }

    /// After [`Action::Probe`]: does the local network answer?
    pub fn probed(&mut self, now: Millis, answers: bool, out: &mut dyn Console) {
        if answers {
            out.console("broker unreachable but the local network answers: keeping the link");
            return;
        }
        out.console("link up but nothing answers: re-associating");
        self.pubs.log("link stuck: re-associating");
        let step = self.netsup.link_stuck(now, &mut self.rng);
        if step.action == Some(NetAction::Disconnect) {
            self.pending.push_back(Action::Count(Counter::LinkStuck));
            self.pending.push_back(Action::NetDown);
            out.status(DeviceStatus::NoNetwork);
        }
    }

    /// For [`Action::Announce`]: the per-entity config topics to move first.
    pub fn take_stale(&mut self) -> Vec<String> {
        core::mem::take(&mut self.stale)
    }

    /// After [`Action::Announce`]: the device config with `n` entities went out.
    pub fn announced(&mut self, now: Millis, n: usize, out: &mut dyn Console) {
        if let (Phase::AwaitAnnounce(version), Some(announced)) = (self.phase, &mut self.online) {
            *announced = Some(version);
        }
        self.phase = Phase::Session;
        self.mqttsup.sent(now);
        out.console(&format!("discovery: {n} entities announced"));
    }

    /// After [`Action::Ping`]: the PINGREQ went out.
    pub fn ping_sent(&mut self, now: Millis) {
        if let Phase::AwaitPing { deadline } = self.phase {
            self.phase = Phase::Drain { deadline };
        }
        self.mqttsup.ping_sent(now);
    }

    /// After [`Action::Publish`]: the message went out.
    pub fn published(&mut self, now: Millis, topic: &str, msg: &Outgoing, out: &mut dyn Console) {
        if let Phase::AwaitPublish { deadline } = self.phase {
            self.phase = Phase::Drain { deadline };
        }
        self.mqttsup.sent(now);
        out.console(&format!("pub {topic} {}", msg.payload));
    }

    /// After [`Action::Publish`]: it failed; the message goes back to the queue's front and
    /// the session ends.
    pub fn publish_failed(&mut self, now: Millis, msg: Outgoing, why: &str, out: &mut dyn Console) {
        self.pubs.unpop(msg);
        self.session_lost(now, why, out);
    }

    /// After [`Action::Receive`]: a packet arrived. A command becomes [`Action::Command`];
    /// a retained one is never obeyed (it would run again at every connection).
    pub fn received(&mut self, now: Millis, incoming: Incoming, out: &mut dyn Console) {
        self.phase = Phase::Turn;
        match incoming {
            Incoming::Pong => self.mqttsup.pong(now),
            Incoming::Other => self.mqttsup.received(now),
            Incoming::Message {
                topic,
                payload,
                retained,
            } => {
                self.mqttsup.received(now);
                if topic == HA_STATUS {
                    self.ha_status(now, &payload, retained, out);
                    return;
                }
                if topic == self.fence {
                    // Every retained per-entity config came before it.
                    self.announce_at = self.announce_at.map(|t| t.min(now));
                    return;
                }
                if discovery::is_stale_entity_config(&topic, &payload, self.topics.name()) {
                    if self.stale.contains(&topic) {
                        return;
                    }
                    if self.stale.len() >= STALE_MAX {
                        out.console(&format!("discovery: {topic} left for the next connection"));
                        return;
                    }
                    out.console(&format!(
                        "discovery: moving {topic} into the device config (Home Assistant's \
                         migrate_discovery)"
                    ));
                    self.stale.push(topic);
                    // The device config goes out (again) once the burst is moved.
                    let settle = now + MIGRATE_SETTLE;
                    self.announce_at = Some(self.announce_at.map_or(settle, |t| t.max(settle)));
                    if let Some(announced) = &mut self.online {
                        *announced = None;
                    }
                    return;
                }
                if topic.starts_with(discovery::PREFIX) {
                    // The device's own migrations and clears coming back: nothing to do.
                    return;
                }
                let Some(leaf) = self.topics.command_leaf(&topic) else {
                    out.console(&format!("message on unexpected topic {topic}"));
                    return;
                };
                if retained {
                    let line = format!("ignored retained command on {topic}");
                    out.console(&line);
                    self.pubs.log(line);
                    return;
                }
                let leaf = String::from(leaf);
                self.pending
                    .push_back(Action::Command(Command { leaf, payload }));
            }
        }
    }

    /// The session's stream has thrown away `count` packets over the bound so far, the last
    /// of `last_len` bytes: reports each new one.
    pub fn dropped(&mut self, count: u32, last_len: u32, out: &mut dyn Console) {
        if count == self.dropped_seen {
            return;
        }
        self.dropped_seen = count;
        let line = format!(
            "dropped an MQTT packet of {last_len} bytes from the broker: over the {MAX_INCOMING_PACKET} bytes this device accepts ({count} so far)"
        );
        out.console(&line);
        self.pubs.log(line);
    }

    /// The session failed (an I/O error, a timeout, a failed discovery): it ends, is counted
    /// and backed off, and the turn starts again.
    pub fn session_lost(&mut self, now: Millis, why: &str, out: &mut dyn Console) {
        self.phase = Phase::Turn;
        self.end_session(now, why, out);
    }

    /// After [`Action::Command`] and the updater's verdict on it: where it goes. Logs payloads
    /// that are not text, prints the command, and serves `Refresh` itself.
    pub fn route(&mut self, cmd: Command, handled: Handled, out: &mut dyn Console) -> Route {
        let leaf = cmd.leaf;
        let (payload, signed) = match handled {
            Handled::Yes => return Route::Done,
            Handled::Signed(text) => (text, true),
            Handled::No => match String::from_utf8(cmd.payload) {
                Ok(p) => (p, false),
                Err(_) => {
                    self.pubs
                        .log(format!("ignored {leaf}: payload is not UTF-8"));
                    return Route::Done;
                }
            },
        };
        out.console(&format!("command {leaf} {payload:?}"));
        let payload = payload.trim();
        if signed {
            return Route::Ota {
                command: String::from(payload),
                signed: true,
            };
        }
        match leaf.as_str() {
            "Refresh" => {
                if payload.is_empty() {
                    // As in the reference, which tools may rely on; but say so.
                    let line = "Refresh ignored: its payload is empty (send any text, e.g. 1)";
                    out.console(line);
                    self.pubs.log(line);
                } else {
                    self.pubs.refresh();
                }
                Route::Done
            }
            "OTA" => Route::Ota {
                command: String::from(payload),
                signed: false,
            },
            _ => Route::Appliance {
                payload: String::from(payload),
                leaf,
            },
        }
    }

    fn evaluate(&mut self, now: Millis, profile: &mut dyn DynProfile) {
        while let Some((id, force)) = self.pubs.due(now) {
            let value = if id == self.items.uptime {
                Some(format!("{}", (now - self.boot) / 60_000))
            } else if id == self.items.reboot_reason {
                self.pubs.last(id).map(String::from)
            } else {
                profile.evaluate(id, now)
            };
            self.pubs.offer(id, now, value, force);
        }
    }

    /// When the turn's wait ends: the loop period, the next publication or supervisor
    /// deadline, the link poll while associating, the profile's work, and the retry.
    fn deadline(&self, now: Millis, link: bool, profile: &dyn DynProfile) -> Millis {
        let mut d = now + LOOP_PERIOD;
        if let Some(t) = self.pubs.next_deadline() {
            d = d.min(t);
        }
        if let Some(t) = self.netsup.next_deadline() {
            d = d.min(t);
        }
        if matches!(self.netsup.state(), NetState::Connecting { .. }) {
            // Notice the link coming up promptly.
            d = d.min(now + LINK_POLL);
        }
        d = d.min(profile.next_work());
        if let Some(t) = self.birth_at {
            d = d.min(t);
        }
        if let Some(t) = self.announce_at {
            d = d.min(t);
        }
        if self.online.is_none() && link {
            d = d.min(self.retry_at);
        }
        d.max(now)
    }

    /// Home Assistant's birth (`online`) or last will (`offline`) on [`HA_STATUS`]. A retained
    /// `online` is what a broker hands every new subscriber: the connect announced everything
    /// already, so only a live one counts.
    fn ha_status(&mut self, now: Millis, payload: &[u8], retained: bool, out: &mut dyn Console) {
        if retained || payload.trim_ascii() != b"online" || self.online.is_none() {
            return;
        }
        if self.birth_at.is_none() {
            let delay = hearth_core::rng::Rng::below(&mut self.rng, BIRTH_JITTER_MAX + 1);
            self.birth_at = Some(now + delay);
            out.console(&format!(
                "home assistant online: publishing again in {delay} ms"
            ));
        }
    }

    fn end_session(&mut self, now: Millis, why: &str, out: &mut dyn Console) {
        self.online = None;
        self.birth_at = None;
        self.announce_at = None;
        self.stale.clear();
        self.pending.push_back(Action::Offline);
        out.console(&format!("mqtt lost: {why}"));
        out.status(DeviceStatus::NoBroker);
        self.pending
            .push_back(Action::Count(Counter::MqttLost(String::from(why))));
        self.retry_or_reboot(now);
    }

    /// A failed attempt or session: sets the retry time, or queues the reboot the MQTT policy
    /// asks for (false).
    fn retry_or_reboot(&mut self, now: Millis) -> bool {
        match self.mqttsup.failed(now, &mut self.rng) {
            RetryDecision::RetryAt(t) => {
                self.retry_at = t;
                true
            }
            RetryDecision::Reboot => {
                self.pending.push_back(Action::Reboot(RebootReason::Mqtt));
                false
            }
        }
    }

    fn rebooting(&self) -> bool {
        self.pending.iter().any(|a| matches!(a, Action::Reboot(_)))
    }
}

#[cfg(test)]
mod tests;
