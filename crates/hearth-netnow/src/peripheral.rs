//! The **peripheral**, sans-IO: it finds a central, stays paired with it, keeps the network time
//! and delivers one report at a time until the central confirms it.
//!
//! Feed it frames with [`Peripheral::receive`] and the passing of time with
//! [`Peripheral::tick`] (at the latest at [`Peripheral::next_deadline`]); after each call, drain
//! [`Peripheral::poll`] and carry the outputs out in order ([`Persist`] before the frames that
//! follow it).
//!
//! # Behaviour (reference §9.3 unless noted)
//!
//! - **Unpaired**: hop channels 1, 2, …, 13, 1, … every 5 s; on each channel send a pair
//!   request at once and then every 1 s. v3: the request carries a fresh random challenge and
//!   only a confirm of that challenge, from a central whose sender id is its radio address,
//!   pairs (reference §13.5: the reference adopts the first valid broadcast, replayed or not).
//!   v2 (reference centrals answer with a plain broadcast): a valid broadcast makes its sender a
//!   *candidate*; the peripheral stays on the channel, pings the candidate with the broadcast's
//!   time, and pairs only when the candidate confirms that ping, i.e. proves the time is its
//!   current one (a replayed broadcast gets no confirm). Pairing is persisted
//!   ([`Persist::Pairing`]) before anything else is sent.
//! - **Paired**: tune to the stored channel. Without a time: v3 with a report to send sends it
//!   at once with a zero timestamp (the sleepy sender's fast path, protected by its counter),
//!   once per report: a central that does not know this sender's counter (it lost its table,
//!   or this device lost its counters and started a new epoch) refuses it, so the retries wait
//!   for the time;
//!   otherwise a wakeup every 5 s. Only the confirm of its own wakeup, ping or data (its fresh
//!   tid) sets an unknown time.
//! - **Time**: a broadcast is adopted if `0 < ts − last adopted < 120 s` and it is within 1 s of
//!   the running estimate; the same time again is a replay; anything else is not adopted and
//!   triggers a ping carrying that time (at most one per 10 s), and only the ping's confirm sets
//!   the clock (a rebooted central is followed, a rogue or replayed far-future time is not).
//!   Back-data is delivered only from a broadcast whose time was adopted.
//! - **Reports** ([`Peripheral::send`]): one at a time, sent with the link-level ack and
//!   **retried every second, with a fresh tid (and counter), until confirmed** (reference
//!   §13.12 loses the reading on one lost packet). A confirm may arrive for any of the tries.
//!   Delivery is at-least-once: a try whose confirm was lost may be forwarded twice.
//! - **Lost central**: paired but nothing authenticated heard from the central for 60 s while
//!   trying → scan again (from the stored channel) without forgetting the stored pairing until
//!   a new one is made. [`Peripheral::repair`] forgets it at once (the reference's `pair.txt`).
//! - v3: only broadcasts from the paired central's sender id are taken, and its counter must
//!   increase (reference §13.5: any key holder's broadcast was trusted). v2: ttids are cached
//!   for 2 s (16 of them).

use crate::link::{
    sealed, Codec, Counters, DropReason, Entropy, Mac, Msg, Outbox, Output, Pairing, Payload,
    Persist, Scratch, Version, BROADCAST,
};
use crate::replay::{judge_time, ReplayError, TidCache, TimeVerdict};
use crate::v3::Epoch;
use crate::{Tid, Timestamp, TsSubtype};

/// Channel hop period while unpaired.
pub const HOP_EVERY_MS: u64 = 5_000;
/// Pair request period while unpaired.
pub const PAIR_REQUEST_EVERY_MS: u64 = 1_000;
/// Wakeup period while paired without a time.
pub const WAKEUP_EVERY_MS: u64 = 5_000;
/// At most one ping per this many ms.
pub const PING_MIN_INTERVAL_MS: u64 = 10_000;
/// Report retry period.
pub const RETRY_EVERY_MS: u64 = 1_000;
/// Paired but unheard for this long: scan for the central again.
pub const LOST_AFTER_MS: u64 = 60_000;
/// v2 pairing: how long to wait on a candidate's channel for the confirm of the check ping.
pub const CANDIDATE_MS: u64 = 1_500;
/// How long a sent tid stays valid for its confirm.
pub const PENDING_MS: u64 = 5_000;
/// The channels scanned.
pub const CHANNELS: u8 = 13;

const PENDING: usize = 8;
const OUTBOX: usize = 12;

/// What the peripheral tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeripheralEvent {
    /// Paired with a central (already persisted).
    Paired(Pairing),
    /// The central has not been heard for [`LOST_AFTER_MS`]: scanning again.
    Lost,
    /// The network time is known (the first time, or again after losing it).
    Ready,
    /// The pending report was confirmed by the central.
    Confirmed,
    /// Back-data from the central.
    Backdata { rssi: i8, payload: Payload },
    /// A frame was dropped, and why.
    Dropped { from: Mac, reason: DropReason },
}

/// Why a report was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Longer than a data frame of this version holds.
    TooLong { len: usize, max: usize },
    /// A report is still waiting for its confirm.
    Busy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pair,
    Candidate,
    Wakeup,
    Ping,
    Data,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    tid: Tid,
    kind: Kind,
    until: u64,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Unpaired {
        channel: u8,
        next_hop: u64,
        next_request: u64,
        /// v2: the central being checked, and until when.
        candidate: Option<(Mac, u64)>,
    },
    Paired {
        pairing: Pairing,
        next_wakeup: u64,
    },
}

#[derive(Clone, Debug)]
struct Report {
    payload: Payload,
    next_try: u64,
    /// v3: a try went out on the fast path (no time). Further tries wait for the time (a
    /// wakeup's confirm): a central that does not know this sender's counter refuses the fast
    /// path, and would go on refusing it.
    fast_sent: bool,
}

/// The peripheral state machine.
pub struct Peripheral<R: Entropy> {
    codec: Codec,
    me: Mac,
    rng: R,
    state: State,
    time: Option<(Timestamp, u64)>,
    pending: [Option<Pending>; PENDING],
    ttids: TidCache<16>,
    /// v3: the epoch and counter of the central's last accepted broadcast (RAM only).
    central_counter: Option<(Epoch, u64)>,
    last_ping: Option<u64>,
    report: Option<Report>,
    last_heard: u64,
    tries: u32,
    counters: Counters,
    out: Outbox<PeripheralEvent, OUTBOX>,
}

impl<R: Entropy> Peripheral<R> {
    /// A peripheral with address `me`, paired as stored (`None`: unpaired), with its v3 epoch
    /// and persisted counter reservation (a new random epoch and `0` on a fresh device),
    /// starting at `now`.
    pub fn new(
        codec: Codec,
        me: Mac,
        rng: R,
        pairing: Option<Pairing>,
        (epoch, counter): (Epoch, u64),
        now: u64,
    ) -> Self {
        let mut p = Peripheral {
            codec,
            me,
            rng,
            state: State::Unpaired {
                channel: CHANNELS,
                next_hop: now,
                next_request: now,
                candidate: None,
            },
            time: None,
            pending: [None; PENDING],
            ttids: TidCache::default(),
            central_counter: None,
            last_ping: None,
            report: None,
            last_heard: now,
            tries: 0,
            counters: Counters::new(epoch, counter),
            out: Outbox::new(),
        };
        if let Some(pairing) = pairing.filter(|p| (1..=CHANNELS).contains(&p.channel)) {
            p.out.put(Output::SetChannel(pairing.channel));
            p.state = State::Paired {
                pairing,
                next_wakeup: now,
            };
        }
        p.tick(now);
        p
    }

    /// The wire format.
    pub fn version(&self) -> Version {
        self.codec.version()
    }

    /// The current pairing, if paired.
    pub fn pairing(&self) -> Option<Pairing> {
        match self.state {
            State::Paired { pairing, .. } => Some(pairing),
            State::Unpaired { .. } => None,
        }
    }

    /// Paired and the network time is known (the reference's `is_ready`).
    pub fn is_ready(&self) -> bool {
        self.pairing().is_some() && self.time.is_some()
    }

    /// The estimated network time at `now`, if known.
    pub fn time(&self, now: u64) -> Option<Timestamp> {
        self.time.map(|(ts, at)| {
            Timestamp::new(ts.as_millis() + u128::from(now.saturating_sub(at)))
                .unwrap_or(Timestamp::MAX)
        })
    }

    /// Whether a report is waiting for its confirm.
    pub fn report_pending(&self) -> bool {
        self.report.is_some()
    }

    /// How many times reports were sent (tries, retries included) since start.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<Output<PeripheralEvent>> {
        self.out.pop()
    }

    /// Outputs lost because the caller did not drain [`poll`](Self::poll).
    pub fn overflows(&self) -> u32 {
        self.out.overflows
    }

    /// Queue a report; it is sent as soon as possible and retried until confirmed
    /// ([`PeripheralEvent::Confirmed`]).
    pub fn send(&mut self, payload: &[u8], now: u64) -> Result<(), SendError> {
        let max = self.codec.version().max_data_payload();
        if payload.len() > max {
            return Err(SendError::TooLong {
                len: payload.len(),
                max,
            });
        }
        if self.report.is_some() {
            return Err(SendError::Busy);
        }
        self.report = Some(Report {
            payload: Payload::new(payload),
            next_try: now,
            fast_sent: false,
        });
        self.tick(now);
        Ok(())
    }

    /// The caller could not store `p` (a failed flash write). A counter reservation is asked for
    /// again before the next frame; the caller must not send the frames sealed after the
    /// failed one ([`CounterGuard`](crate::link::CounterGuard) refuses them).
    pub fn persist_failed(&mut self, p: &Persist) {
        if let Persist::CounterReserve(..) = p {
            self.counters.reserve_failed();
        }
    }

    /// Forget the pairing and scan for a central again.
    pub fn repair(&mut self, now: u64) {
        // If the queue is full the stored pairing survives a reset (counted as an overflow):
        // that reopens nothing, the device just returns to its old central.
        self.out.put(Output::Persist(Persist::Unpaired));
        self.scan(CHANNELS, now);
        self.tick(now);
    }

    /// When [`tick`](Self::tick) must be called next.
    pub fn next_deadline(&self) -> u64 {
        let mut d = self
            .pending
            .iter()
            .flatten()
            .map(|p| p.until)
            .min()
            .unwrap_or(u64::MAX);
        match self.state {
            State::Unpaired {
                next_hop,
                next_request,
                candidate,
                ..
            } => match candidate {
                Some((_, until)) => d = d.min(until),
                None => d = d.min(next_hop).min(next_request),
            },
            State::Paired { next_wakeup, .. } => {
                d = d.min(self.last_heard.saturating_add(LOST_AFTER_MS));
                match &self.report {
                    Some(r) if self.can_send(r) => d = d.min(r.next_try),
                    _ if self.time.is_none() => d = d.min(next_wakeup),
                    _ => {}
                }
            }
        }
        d
    }

    /// Whether `report` may be tried now: with a known time, or (v3) once on the fast path.
    fn can_send(&self, report: &Report) -> bool {
        self.time.is_some() || (self.codec.version() == Version::V3 && !report.fast_sent)
    }

    /// Time passes.
    pub fn tick(&mut self, now: u64) {
        for slot in &mut self.pending {
            if slot.is_some_and(|p| p.until <= now) {
                *slot = None;
            }
        }
        match self.state {
            State::Unpaired {
                mut channel,
                mut next_hop,
                mut next_request,
                mut candidate,
            } => {
                if candidate.is_some_and(|(_, until)| now >= until) {
                    candidate = None;
                }
                if candidate.is_none() {
                    if now >= next_hop {
                        channel = channel % CHANNELS + 1;
                        self.out.put(Output::SetChannel(channel));
                        next_hop = now.saturating_add(HOP_EVERY_MS);
                        next_request = now;
                    }
                    if now >= next_request {
                        next_request = now.saturating_add(PAIR_REQUEST_EVERY_MS);
                        let challenge = self.rng.tid();
                        if let Codec::V3 { .. } = self.codec {
                            self.remember(challenge, Kind::Pair, now.saturating_add(2_000));
                        }
                        self.transmit(BROADCAST, &Msg::PairRequest { challenge }, false);
                    }
                }
                self.state = State::Unpaired {
                    channel,
                    next_hop,
                    next_request,
                    candidate,
                };
            }
            State::Paired {
                pairing,
                mut next_wakeup,
            } => {
                if now.saturating_sub(self.last_heard) >= LOST_AFTER_MS {
                    self.out.put(Output::Event(PeripheralEvent::Lost));
                    self.scan(pairing.channel, now);
                    // Start on the stored channel: the central is most likely still there.
                    self.out.put(Output::SetChannel(pairing.channel));
                    return self.tick(now);
                }
                let sendable = self.report.as_ref().is_some_and(|r| self.can_send(r));
                let due = self.report.as_ref().is_some_and(|r| now >= r.next_try);
                if due && sendable {
                    self.send_report(pairing.central, now);
                } else if self.time.is_none() && !sendable && now >= next_wakeup {
                    next_wakeup = now.saturating_add(WAKEUP_EVERY_MS);
                    let tid = self.rng.tid();
                    self.remember(tid, Kind::Wakeup, now.saturating_add(PENDING_MS));
                    self.transmit(pairing.central, &Msg::Wakeup { tid }, true);
                }
                self.state = State::Paired {
                    pairing,
                    next_wakeup,
                };
            }
        }
    }

    /// A frame arrived from `from` with `rssi`, at `now`.
    pub fn receive(&mut self, from: Mac, rssi: i8, bytes: &[u8], now: u64) {
        let mut scratch = Scratch::new();
        let opened = match self.codec.open(bytes, &mut scratch) {
            Ok(o) => o,
            Err(e) => return self.drop(from, DropReason::Undecodable(e)),
        };
        let Msg::Timestamp { subtype, ttid, ts } = opened.msg else {
            return self.drop(from, DropReason::Unexpected);
        };
        let paired = self.pairing();
        let mut counter = None;
        match opened.sender {
            Some((sender, ..)) if sender.0 != from => {
                return self.drop(from, DropReason::SenderMismatch)
            }
            Some(_) if paired.is_some_and(|p| p.central != from) => {
                return self.drop(from, DropReason::NotOurCentral)
            }
            Some((_, epoch, c)) => {
                // Within the central's epoch its counters only grow; a central with a new epoch
                // (it lost its counters) is judged by time and tids as after a boot here.
                if paired.is_some()
                    && self
                        .central_counter
                        .is_some_and(|(known, last)| known == epoch && c <= last)
                {
                    return self.drop(from, DropReason::Replay(ReplayError::Stale));
                }
                counter = Some((epoch, c));
            }
            None => {
                if let Err(e) = self.ttids.check_and_insert(ttid, now) {
                    return self.drop(from, DropReason::Replay(e));
                }
            }
        }
        let mine = match subtype {
            TsSubtype::Confirm(tid) => self.take_pending(&tid),
            _ => None,
        };
        match self.state {
            State::Unpaired {
                channel, candidate, ..
            } => match (mine, candidate) {
                (Some(Kind::Pair), _) => self.pair(from, channel, ts, counter, now),
                (Some(Kind::Candidate), Some((c, _))) if c == from => {
                    self.pair(from, channel, ts, counter, now)
                }
                (None, None) if self.codec.version() == Version::V2 => {
                    // v2: check the sender's time with a ping before pairing with it.
                    let tid = self.rng.tid();
                    let until = now.saturating_add(CANDIDATE_MS);
                    self.remember(tid, Kind::Candidate, until);
                    self.transmit(from, &Msg::Ping { ts, tid }, true);
                    if let State::Unpaired { candidate, .. } = &mut self.state {
                        *candidate = Some((from, until));
                    }
                }
                _ => self.drop(from, DropReason::NotForUs),
            },
            State::Paired { .. } => {
                self.last_heard = now;
                if let Some(kind) = mine {
                    self.central_counter = counter.or(self.central_counter);
                    self.adopt(ts, now);
                    if kind == Kind::Data {
                        self.report = None;
                        self.pending
                            .iter_mut()
                            .filter(|p| p.is_some_and(|p| p.kind == Kind::Data))
                            .for_each(|p| *p = None);
                        self.out.put(Output::Event(PeripheralEvent::Confirmed));
                    }
                } else {
                    let last = self.time.map(|(t, _)| t);
                    let estimate = self.time(now).unwrap_or(Timestamp::ZERO);
                    match judge_time(ts, last, estimate) {
                        TimeVerdict::Adopt => {
                            // Recorded only once the frame proved fresh: a replayed frame of
                            // an earlier epoch moves nothing.
                            self.central_counter = counter.or(self.central_counter);
                            self.adopt(ts, now);
                            if let TsSubtype::Backdata(p) = subtype {
                                self.out.put(Output::Event(PeripheralEvent::Backdata {
                                    rssi,
                                    payload: Payload::new(p),
                                }));
                            }
                        }
                        TimeVerdict::Reject => {
                            self.drop(from, DropReason::Replay(ReplayError::Replay))
                        }
                        TimeVerdict::NeedsPing => {
                            if last.is_some() {
                                self.ping(ts, now);
                            }
                            self.drop(from, DropReason::Unverified);
                        }
                    }
                }
            }
        }
        self.tick(now);
    }

    fn scan(&mut self, from_channel: u8, now: u64) {
        self.state = State::Unpaired {
            // The next hop moves to `from_channel % 13 + 1`; start one before it.
            channel: if from_channel <= 1 {
                CHANNELS
            } else {
                from_channel - 1
            },
            next_hop: now,
            next_request: now,
            candidate: None,
        };
        self.time = None;
        self.central_counter = None;
        self.pending = [None; PENDING];
    }

    fn pair(
        &mut self,
        central: Mac,
        channel: u8,
        ts: Timestamp,
        counter: Option<(Epoch, u64)>,
        now: u64,
    ) {
        let pairing = Pairing { central, channel };
        if !self.out.push(Output::Persist(Persist::Pairing(pairing))) {
            // Not stored, so not paired: the next request's answer pairs.
            return;
        }
        self.out
            .put(Output::Event(PeripheralEvent::Paired(pairing)));
        self.pending = [None; PENDING];
        self.state = State::Paired {
            pairing,
            next_wakeup: now,
        };
        self.last_heard = now;
        self.central_counter = counter;
        self.time = None;
        self.adopt(ts, now);
    }

    fn adopt(&mut self, ts: Timestamp, now: u64) {
        let was_unknown = self.time.is_none();
        self.time = Some((ts, now));
        self.last_ping = None;
        if was_unknown {
            self.out.put(Output::Event(PeripheralEvent::Ready));
        }
    }

    fn ping(&mut self, doubtful: Timestamp, now: u64) {
        if self
            .last_ping
            .is_some_and(|t| now.saturating_sub(t) < PING_MIN_INTERVAL_MS)
        {
            return;
        }
        let Some(pairing) = self.pairing() else {
            return;
        };
        self.last_ping = Some(now);
        let tid = self.rng.tid();
        self.remember(tid, Kind::Ping, now.saturating_add(PENDING_MS));
        self.transmit(pairing.central, &Msg::Ping { ts: doubtful, tid }, true);
    }

    fn send_report(&mut self, central: Mac, now: u64) {
        let Some(report) = self.report.take() else {
            return;
        };
        let tid = self.rng.tid();
        self.remember(tid, Kind::Data, now.saturating_add(PENDING_MS));
        let ts = self.time(now).unwrap_or(Timestamp::ZERO);
        self.transmit(
            central,
            &Msg::Data {
                ts,
                tid,
                payload: report.payload.as_slice(),
            },
            true,
        );
        self.tries = self.tries.saturating_add(1);
        self.report = Some(Report {
            next_try: now.saturating_add(RETRY_EVERY_MS),
            fast_sent: report.fast_sent || ts == Timestamp::ZERO,
            ..report
        });
    }

    /// Register a tid we sent; a full table evicts the entry expiring first (losing only the
    /// chance to honour a late confirm, never opening a replay).
    fn remember(&mut self, tid: Tid, kind: Kind, until: u64) {
        let slot = match self.pending.iter().position(Option::is_none) {
            Some(i) => i,
            None => self
                .pending
                .iter()
                .enumerate()
                .min_by_key(|(_, p)| p.map_or(0, |p| p.until))
                .map_or(0, |(i, _)| i),
        };
        self.pending[slot] = Some(Pending { tid, kind, until });
    }

    fn take_pending(&mut self, tid: &Tid) -> Option<Kind> {
        let slot = self
            .pending
            .iter_mut()
            .find(|p| p.is_some_and(|p| p.tid == *tid))?;
        slot.take().map(|p| p.kind)
    }

    fn transmit(&mut self, to: Mac, msg: &Msg<'_>, ack: bool) {
        let unicast = to != BROADCAST;
        if let Some(frame) = sealed(
            &self.codec,
            &self.me,
            &mut self.counters,
            &mut self.rng,
            &mut self.out,
            msg,
        ) {
            self.out.put(Output::Send {
                to,
                frame,
                ack: ack && unicast,
            });
        }
    }

    fn drop(&mut self, from: Mac, reason: DropReason) {
        self.out
            .put(Output::Event(PeripheralEvent::Dropped { from, reason }));
    }
}
