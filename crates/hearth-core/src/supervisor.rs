//! The failure policies that keep an appliance alive, as plain state machines with time passed
//! in: loop-liveness watchdog, network health, MQTT health and back-off, and the random
//! start-up delay. The runtime feeds them events and carries out what they answer.

use crate::rng::Rng;
use crate::Millis;

/// A random start-up delay in `[0, max)`, so a house of devices powered up together does not
/// hit the access point and the broker in the same instant.
pub fn start_delay(max: Millis, rng: &mut impl Rng) -> Millis {
    rng.below(max)
}

// ---------------------------------------------------------------------------------------------
// Loop-liveness watchdog
// ---------------------------------------------------------------------------------------------

/// Decides whether the hardware watchdog may be fed. The event loop proves it is alive with
/// [`heartbeat`](Self::heartbeat); an operation that is allowed to hold the loop opens a bounded
/// window with [`may_block`](Self::may_block). The feeder (a timer interrupt on the chip, a
/// thread in the simulator) feeds the hardware only while [`should_feed`](Self::should_feed)
/// holds, so a loop stuck outside such a window lets the hardware reset the device.
#[derive(Debug, Clone)]
pub struct LoopWatchdog {
    feed_window: Millis,
    may_block_window: Millis,
    alive_until: Millis,
    blocking: bool,
}

impl LoopWatchdog {
    /// The feed window both worlds use: three loop periods, so one slow iteration is tolerated
    /// but a stopped loop starves the hardware watchdog within seconds.
    pub const FEED_WINDOW: Millis = 3 * crate::SECOND;

    /// `feed_window`: how long one heartbeat keeps the feeder feeding (a little over the
    /// heartbeat period). `may_block_window`: the longest a permitted blocking operation may take.
    pub fn new(now: Millis, feed_window: Millis, may_block_window: Millis) -> Self {
        Self {
            feed_window,
            may_block_window,
            alive_until: now + feed_window,
            blocking: false,
        }
    }

    /// The loop ran an iteration.
    pub fn heartbeat(&mut self, now: Millis) {
        if !self.blocking {
            self.alive_until = self.alive_until.max(now + self.feed_window);
        }
    }

    /// The loop is about to run an operation that may block up to the may-block window.
    pub fn may_block(&mut self, now: Millis) {
        self.blocking = true;
        self.alive_until = now + self.may_block_window;
    }

    /// The blocking operation is over; liveness is proved by heartbeats again.
    pub fn may_block_exit(&mut self, now: Millis) {
        self.blocking = false;
        self.alive_until = now + self.feed_window;
    }

    /// May the hardware watchdog be fed now?
    pub fn should_feed(&self, now: Millis) -> bool {
        now < self.alive_until
    }
}

// ---------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------

/// Network policy timings (reference defaults: 60 s, 30 s + 0–15 s, reboot after 10 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetPolicy {
    /// Give up one association attempt after this long.
    pub connect_timeout: Millis,
    /// Wait this long after a loss or a failed attempt...
    pub retry: Millis,
    /// ...plus a random part in `[0, retry_fudge)`.
    pub retry_fudge: Millis,
    /// Reboot when the link has not been up for this long; 0 = never.
    pub reboot_after: Millis,
}

impl Default for NetPolicy {
    fn default() -> Self {
        Self {
            connect_timeout: 60_000,
            retry: 30_000,
            retry_fudge: 15_000,
            reboot_after: 600_000,
        }
    }
}

/// Where the network supervisor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetState {
    /// Waiting to retry at the given time.
    Waiting { until: Millis },
    /// An association attempt started at the given time.
    Connecting { since: Millis },
    /// The link is up.
    Connected,
}

/// What the runtime must do for the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetAction {
    /// Start associating (bring the interface up and connect).
    Connect,
    /// Take the interface down (after a loss or a failed attempt).
    Disconnect,
    /// Give up and reset the device.
    Reboot,
}

/// What happened, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEvent {
    /// The link came up.
    Up,
    /// An established link was lost (counts as `connlost`).
    Lost,
    /// An attempt timed out before the link came up.
    AttemptFailed,
}

/// One step of the network supervisor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStep {
    /// Action to carry out, if any.
    pub action: Option<NetAction>,
    /// Event to record, if any.
    pub event: Option<NetEvent>,
}

/// The network health state machine.
#[derive(Debug, Clone)]
pub struct NetSupervisor {
    policy: NetPolicy,
    state: NetState,
    last_up: Millis,
}

impl NetSupervisor {
    /// A supervisor that starts its first attempt at `now`; the caller performs the returned
    /// [`NetAction::Connect`].
    pub fn start(policy: NetPolicy, now: Millis) -> (Self, NetAction) {
        let sup = Self {
            policy,
            state: NetState::Connecting { since: now },
            last_up: now,
        };
        (sup, NetAction::Connect)
    }

    /// The current state.
    pub fn state(&self) -> NetState {
        self.state
    }

    /// Feed the link status as the platform reports it.
    pub fn tick(&mut self, now: Millis, link_up: bool, rng: &mut impl Rng) -> NetStep {
        match self.state {
            NetState::Connecting { since } => {
                if link_up {
                    self.state = NetState::Connected;
                    self.last_up = now;
                    NetStep {
                        action: None,
                        event: Some(NetEvent::Up),
                    }
                } else if now.saturating_sub(since) >= self.policy.connect_timeout {
                    self.wait(now, rng);
                    NetStep {
                        action: Some(NetAction::Disconnect),
                        event: Some(NetEvent::AttemptFailed),
                    }
                } else {
                    NetStep::default()
                }
            }
            NetState::Connected => {
                if link_up {
                    self.last_up = now;
                    NetStep::default()
                } else {
                    self.lose(now, rng)
                }
            }
            NetState::Waiting { until } => {
                if now < until {
                    return NetStep::default();
                }
                if self.policy.reboot_after > 0
                    && now.saturating_sub(self.last_up) >= self.policy.reboot_after
                {
                    return NetStep {
                        action: Some(NetAction::Reboot),
                        event: None,
                    };
                }
                self.state = NetState::Connecting { since: now };
                NetStep {
                    action: Some(NetAction::Connect),
                    event: None,
                }
            }
        }
    }

    /// The link claims to be up but nothing passes (the MQTT layer saw repeated failures):
    /// treat it as lost and re-associate after the usual wait.
    pub fn link_stuck(&mut self, now: Millis, rng: &mut impl Rng) -> NetStep {
        match self.state {
            NetState::Connected => self.lose(now, rng),
            _ => NetStep::default(),
        }
    }

    /// When [`tick`](Self::tick) next needs calling at the latest (it may be called earlier).
    pub fn next_deadline(&self) -> Option<Millis> {
        match self.state {
            NetState::Waiting { until } => Some(until),
            NetState::Connecting { since } => Some(since + self.policy.connect_timeout),
            NetState::Connected => None,
        }
    }

    fn lose(&mut self, now: Millis, rng: &mut impl Rng) -> NetStep {
        self.last_up = now;
        self.wait(now, rng);
        NetStep {
            action: Some(NetAction::Disconnect),
            event: Some(NetEvent::Lost),
        }
    }

    fn wait(&mut self, now: Millis, rng: &mut impl Rng) {
        let until = now + self.policy.retry + rng.below(self.policy.retry_fudge);
        self.state = NetState::Waiting { until };
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT
// ---------------------------------------------------------------------------------------------

/// MQTT policy timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttPolicy {
    /// First back-off after a failure (reference: 500 ms).
    pub backoff_initial: Millis,
    /// Back-off cap (the reference has none).
    pub backoff_max: Millis,
    /// Reboot when a connection attempt fails and nothing was heard from the broker for this
    /// long; 0 = never.
    pub reboot_after: Millis,
    /// The keepalive announced to the broker.
    pub keepalive: Millis,
    /// How long a CONNACK may take.
    pub connack_timeout: Millis,
}

impl Default for MqttPolicy {
    fn default() -> Self {
        Self {
            backoff_initial: 500,
            backoff_max: 60_000,
            reboot_after: 600_000,
            keepalive: 30_000,
            connack_timeout: 10_000,
        }
    }
}

impl MqttPolicy {
    /// Send a PINGREQ when nothing was sent or nothing was received for this long.
    pub fn ping_interval(&self) -> Millis {
        (self.keepalive / 2).max(500)
    }

    /// A PINGREQ without a PINGRESP for this long means the connection is dead.
    pub fn ping_timeout(&self) -> Millis {
        (self.keepalive / 2).max(500)
    }
}

/// What to do after a failed connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt(Millis),
    /// Give up and reset the device.
    Reboot,
}

/// What the keepalive wants now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    /// Nothing to do.
    Idle,
    /// Send a PINGREQ now.
    SendPing,
    /// The broker did not answer: drop the connection.
    Dead,
}

/// MQTT health: back-off between attempts, the reboot rule, and keepalive with ping-response
/// checking.
#[derive(Debug, Clone)]
pub struct MqttSupervisor {
    policy: MqttPolicy,
    backoff: Millis,
    last_heard: Millis,
    last_rx: Millis,
    last_tx: Millis,
    ping_sent: Option<Millis>,
    failures: u32,
    unanswered: u32,
}

/// Consecutive attempts that got no answer at all (not even a refused TCP connection) after
/// which the link is suspected to be stuck and checked.
pub const STUCK_AFTER_UNANSWERED: u32 = 3;

impl MqttSupervisor {
    /// A supervisor whose "last heard from the broker" clock starts at `now`.
    pub fn new(policy: MqttPolicy, now: Millis) -> Self {
        Self {
            policy,
            backoff: policy.backoff_initial,
            last_heard: now,
            last_rx: now,
            last_tx: now,
            ping_sent: None,
            failures: 0,
            unanswered: 0,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &MqttPolicy {
        &self.policy
    }

    /// Consecutive failed attempts (or lost sessions) since the last successful connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The back-off that the next failure will wait (before jitter).
    pub fn backoff(&self) -> Millis {
        self.backoff
    }

    /// A connection attempt or an established session failed.
    pub fn failed(&mut self, now: Millis, rng: &mut impl Rng) -> RetryDecision {
        self.failures = self.failures.saturating_add(1);
        self.ping_sent = None;
        if self.policy.reboot_after > 0
            && now.saturating_sub(self.last_heard) >= self.policy.reboot_after
        {
            return RetryDecision::Reboot;
        }
        let wait = self.backoff + rng.below(self.backoff / 2);
        self.backoff = (self.backoff.saturating_mul(3) / 2).min(self.policy.backoff_max);
        RetryDecision::RetryAt(now + wait)
    }

    /// The failed attempt just reported to [`failed`](Self::failed) got no answer at all: no
    /// TCP handshake, no refusal, no reset (a name that did not resolve counts too). True each
    /// time this has happened [`STUCK_AFTER_UNANSWERED`] times in a row: the link claims to be
    /// up but may pass nothing, so check it before the next attempt.
    pub fn unanswered(&mut self) -> bool {
        self.unanswered = self.unanswered.saturating_add(1);
        self.unanswered.is_multiple_of(STUCK_AFTER_UNANSWERED)
    }

    /// Something answered the failed attempt (a refused or reset connection, a TLS alert, a
    /// CONNACK with an error, a broker that accepted TCP and then stayed silent): the link
    /// carries packets, so a broker restart never looks like a stuck radio.
    pub fn answered(&mut self) {
        self.unanswered = 0;
    }

    /// Consecutive failed attempts that got no answer at all.
    pub fn unanswered_count(&self) -> u32 {
        self.unanswered
    }

    /// The broker accepted the connection (CONNACK success).
    pub fn connected(&mut self, now: Millis) {
        self.backoff = self.policy.backoff_initial;
        self.failures = 0;
        self.unanswered = 0;
        self.ping_sent = None;
        self.last_heard = now;
        self.last_rx = now;
        self.last_tx = now;
    }

    /// Any packet arrived from the broker.
    pub fn received(&mut self, now: Millis) {
        self.last_heard = now;
        self.last_rx = now;
    }

    /// A PINGRESP arrived.
    pub fn pong(&mut self, now: Millis) {
        self.ping_sent = None;
        self.received(now);
    }

    /// A packet was sent to the broker.
    pub fn sent(&mut self, now: Millis) {
        self.last_tx = now;
    }

    /// The keepalive's verdict at `now`. After [`Keepalive::SendPing`], call
    /// [`ping_sent`](Self::ping_sent) once the PINGREQ is written.
    pub fn keepalive(&self, now: Millis) -> Keepalive {
        match self.ping_sent {
            Some(at) if now.saturating_sub(at) >= self.policy.ping_timeout() => Keepalive::Dead,
            Some(_) => Keepalive::Idle,
            None => {
                let interval = self.policy.ping_interval();
                if now.saturating_sub(self.last_tx) >= interval
                    || now.saturating_sub(self.last_rx) >= interval
                {
                    Keepalive::SendPing
                } else {
                    Keepalive::Idle
                }
            }
        }
    }

    /// The PINGREQ went out.
    pub fn ping_sent(&mut self, now: Millis) {
        self.ping_sent = Some(now);
        self.last_tx = now;
    }

    /// When [`keepalive`](Self::keepalive) can next change its answer.
    pub fn next_keepalive_deadline(&self) -> Millis {
        match self.ping_sent {
            Some(at) => at + self.policy.ping_timeout(),
            None => self.last_tx.min(self.last_rx) + self.policy.ping_interval(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::{MINUTE, SECOND};

    /// A generator that always draws zero, to make waits exact.
    struct Zero;
    impl Rng for Zero {
        fn next_u32(&mut self) -> u32 {
            0
        }
    }

    #[test]
    fn watchdog_stops_feeding_when_the_loop_stalls() {
        let mut wd = LoopWatchdog::new(0, 2 * SECOND, 120 * SECOND);
        for t in (0..60_000).step_by(1000) {
            wd.heartbeat(t);
            assert!(wd.should_feed(t + 999));
        }
        // The loop stops at t = 59 s: feeding goes on for the feed window, then stops.
        assert!(wd.should_feed(59_000 + 1_999));
        assert!(!wd.should_feed(59_000 + 2_000));
    }

    #[test]
    fn may_block_window_is_bounded() {
        let mut wd = LoopWatchdog::new(0, 2 * SECOND, 120 * SECOND);
        wd.may_block(10_000);
        // Heartbeats cannot extend a blocking window (the loop is by definition not running).
        wd.heartbeat(20_000);
        assert!(wd.should_feed(129_999));
        assert!(
            !wd.should_feed(130_000),
            "a block longer than the window must reset"
        );
        wd.may_block_exit(50_000);
        assert!(wd.should_feed(51_999));
        assert!(!wd.should_feed(52_000));
    }

    #[test]
    fn start_delay_is_within_bounds_and_zero_disables_it() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..1000 {
            assert!(start_delay(10 * SECOND, &mut rng) < 10 * SECOND);
        }
        assert_eq!(start_delay(0, &mut rng), 0);
    }

    #[test]
    fn net_connects_and_counts_losses() {
        let (mut net, action) = NetSupervisor::start(NetPolicy::default(), 0);
        assert_eq!(action, NetAction::Connect);
        let step = net.tick(5_000, true, &mut Zero);
        assert_eq!(step.event, Some(NetEvent::Up));
        assert_eq!(net.state(), NetState::Connected);
        let step = net.tick(100_000, false, &mut Zero);
        assert_eq!(
            step,
            NetStep {
                action: Some(NetAction::Disconnect),
                event: Some(NetEvent::Lost)
            }
        );
        assert_eq!(net.state(), NetState::Waiting { until: 130_000 });
        // Nothing happens before the retry time; then a new attempt.
        assert_eq!(net.tick(129_999, false, &mut Zero), NetStep::default());
        assert_eq!(
            net.tick(130_000, false, &mut Zero).action,
            Some(NetAction::Connect)
        );
    }

    #[test]
    fn net_attempt_times_out_after_60s_and_retries_after_30_to_45s() {
        let (mut net, _) = NetSupervisor::start(NetPolicy::default(), 0);
        assert_eq!(net.tick(59_999, false, &mut Zero), NetStep::default());
        let step = net.tick(60_000, false, &mut SplitMix64::new(3));
        assert_eq!(step.event, Some(NetEvent::AttemptFailed));
        match net.state() {
            NetState::Waiting { until } => assert!((90_000..105_000).contains(&until)),
            other => panic!("expected waiting, got {other:?}"),
        }
    }

    #[test]
    fn net_reboots_after_ten_minutes_without_link() {
        let (mut net, _) = NetSupervisor::start(NetPolicy::default(), 0);
        let mut rng = SplitMix64::new(9);
        let mut t = 0;
        let mut reboot_at = None;
        while t < 20 * MINUTE {
            if let Some(NetAction::Reboot) = net.tick(t, false, &mut rng).action {
                reboot_at = Some(t);
                break;
            }
            t += 100;
        }
        let at = reboot_at.expect("must reboot");
        // Reboot happens at the first retry after 10 min: never before, at most one cycle late.
        assert!(at >= 10 * MINUTE, "rebooted too early at {at}");
        assert!(
            at <= 10 * MINUTE + 60_000 + 45_000,
            "rebooted too late at {at}"
        );
    }

    #[test]
    fn net_reboot_clock_restarts_while_link_is_up() {
        let (mut net, _) = NetSupervisor::start(NetPolicy::default(), 0);
        net.tick(1_000, true, &mut Zero);
        // Up for 30 minutes, then down: the 10-minute clock starts at the loss.
        net.tick(30 * MINUTE, true, &mut Zero);
        net.tick(30 * MINUTE + 1, false, &mut Zero);
        let mut t = 30 * MINUTE + 1;
        let mut first_reboot = None;
        while t < 50 * MINUTE {
            if net.tick(t, false, &mut Zero).action == Some(NetAction::Reboot) {
                first_reboot = Some(t);
                break;
            }
            t += 500;
        }
        let at = first_reboot.expect("reboot eventually");
        assert!(at > 40 * MINUTE);
    }

    #[test]
    fn net_reboot_zero_means_never() {
        let policy = NetPolicy {
            reboot_after: 0,
            ..NetPolicy::default()
        };
        let (mut net, _) = NetSupervisor::start(policy, 0);
        let mut t = 0;
        while t < 120 * MINUTE {
            assert_ne!(
                net.tick(t, false, &mut Zero).action,
                Some(NetAction::Reboot)
            );
            t += 1000;
        }
    }

    #[test]
    fn net_stuck_link_is_dropped_and_retried() {
        let (mut net, _) = NetSupervisor::start(NetPolicy::default(), 0);
        net.tick(1_000, true, &mut Zero);
        let step = net.link_stuck(50_000, &mut Zero);
        assert_eq!(step.action, Some(NetAction::Disconnect));
        assert_eq!(net.state(), NetState::Waiting { until: 80_000 });
        assert_eq!(net.link_stuck(60_000, &mut Zero), NetStep::default());
    }

    #[test]
    fn mqtt_backoff_grows_by_half_and_is_capped() {
        let policy = MqttPolicy {
            reboot_after: 0,
            ..MqttPolicy::default()
        };
        let mut m = MqttSupervisor::new(policy, 0);
        let mut waits = alloc::vec::Vec::new();
        let mut now = 0;
        for _ in 0..20 {
            match m.failed(now, &mut Zero) {
                RetryDecision::RetryAt(t) => {
                    waits.push(t - now);
                    now = t;
                }
                RetryDecision::Reboot => panic!("reboot disabled"),
            }
        }
        assert_eq!(&waits[..4], &[500, 750, 1125, 1687]);
        assert_eq!(*waits.last().unwrap(), 60_000, "capped at backoff_max");
        m.connected(now);
        assert_eq!(m.backoff(), 500, "success resets the back-off");
    }

    #[test]
    fn mqtt_backoff_jitter_is_at_most_half() {
        let mut m = MqttSupervisor::new(MqttPolicy::default(), 0);
        let mut rng = SplitMix64::new(5);
        for _ in 0..8 {
            let base = m.backoff();
            match m.failed(1000, &mut rng) {
                RetryDecision::RetryAt(t) => {
                    assert!(t - 1000 >= base && t - 1000 < base + base / 2 + 1)
                }
                RetryDecision::Reboot => panic!(),
            }
        }
    }

    #[test]
    fn only_unanswered_attempts_make_the_link_suspect() {
        let mut m = MqttSupervisor::new(MqttPolicy::default(), 0);
        // Refused connections (a broker restarting) never make the link suspect.
        for _ in 0..10 {
            let _ = m.failed(1_000, &mut Zero);
            m.answered();
        }
        assert_eq!(m.unanswered_count(), 0);
        // Silence: every third unanswered attempt in a row asks for a link check.
        let verdicts: alloc::vec::Vec<bool> = (0..6)
            .map(|_| {
                let _ = m.failed(2_000, &mut Zero);
                m.unanswered()
            })
            .collect();
        assert_eq!(verdicts, [false, false, true, false, false, true]);
        // An answer in between starts the count again, and so does a connection.
        let _ = m.unanswered();
        m.answered();
        assert!(!m.unanswered() && !m.unanswered());
        m.connected(3_000);
        assert_eq!(m.unanswered_count(), 0);
    }

    #[test]
    fn a_three_second_broker_restart_is_bridged_within_five_seconds_by_the_back_off() {
        // The broker goes away at t = 0 and answers again from t = 3 s; every attempt before
        // then is refused. With the default back-off and any jitter, the device is back
        // within 5 s of the broker's return, and never suspects the link.
        for seed in 0..500 {
            let mut rng = SplitMix64::new(seed);
            let mut m = MqttSupervisor::new(MqttPolicy::default(), 0);
            m.connected(0);
            let mut now = 0;
            let back = loop {
                match m.failed(now, &mut rng) {
                    RetryDecision::RetryAt(t) => now = t,
                    RetryDecision::Reboot => panic!("no reboot for a restart"),
                }
                if now >= 3_000 {
                    break now;
                }
                m.answered();
            };
            assert_eq!(m.unanswered_count(), 0);
            assert!(back - 3_000 < 5_000, "seed {seed}: back after {back} ms");
        }
    }

    #[test]
    fn mqtt_reboots_after_ten_minutes_without_the_broker() {
        let mut m = MqttSupervisor::new(MqttPolicy::default(), 0);
        m.connected(1_000);
        m.received(5_000);
        assert!(matches!(
            m.failed(5_000 + 10 * MINUTE - 1, &mut Zero),
            RetryDecision::RetryAt(_)
        ));
        assert_eq!(
            m.failed(5_000 + 10 * MINUTE, &mut Zero),
            RetryDecision::Reboot
        );
    }

    #[test]
    fn keepalive_pings_and_detects_a_silent_broker() {
        let policy = MqttPolicy {
            keepalive: 10_000,
            ..MqttPolicy::default()
        };
        let mut m = MqttSupervisor::new(policy, 0);
        m.connected(0);
        assert_eq!(m.keepalive(4_999), Keepalive::Idle);
        assert_eq!(m.next_keepalive_deadline(), 5_000);
        assert_eq!(m.keepalive(5_000), Keepalive::SendPing);
        m.ping_sent(5_000);
        assert_eq!(m.keepalive(9_999), Keepalive::Idle);
        assert_eq!(m.keepalive(10_000), Keepalive::Dead);
        // A PINGRESP in time clears it.
        m.ping_sent(20_000);
        m.pong(21_000);
        assert_eq!(m.keepalive(24_000), Keepalive::Idle);
    }

    #[test]
    fn keepalive_pings_even_when_only_receiving() {
        let policy = MqttPolicy {
            keepalive: 10_000,
            ..MqttPolicy::default()
        };
        let mut m = MqttSupervisor::new(policy, 0);
        m.connected(0);
        for t in (0..5_000).step_by(100) {
            m.received(t);
        }
        assert_eq!(
            m.keepalive(5_000),
            Keepalive::SendPing,
            "server needs to hear from us"
        );
    }
}
