//! The **central**, sans-IO: it keeps the network time, broadcasts it, confirms what it accepts
//! and hands data to the application (a forwarder to MQTT). It never unicasts, so it needs no
//! ESP-NOW peer slots (as the reference, §9.2).
//!
//! Feed it frames with [`Central::receive`] and the passing of time with [`Central::tick`] (at
//! the latest at [`Central::next_deadline`]); after each call, drain [`Central::poll`] and carry
//! the outputs out in order.
//!
//! # Behaviour (reference §9.2 unless noted)
//!
//! - Network time: a random 95-bit base at start advanced by the local clock. Every broadcast
//!   carries a time strictly above the previous one; unlike the reference the bump does not
//!   accumulate (it runs no faster than the clock).
//! - A default timestamp broadcast at start and every 25 s + 0..10 s; a confirm or back-data
//!   broadcast restarts that period.
//! - Data and ping: accepted when `|ts − own time| ≤ 1000 ms` and the tid is new within 2 s
//!   (v2 and v3 alike). Each accepted one is confirmed. v3 records the sender's epoch and
//!   counter from such a *timed* frame ([`CounterTable::record_fresh`]): a frame shown fresh by
//!   its time moves the counter up, or records the sender's new epoch when it lost its counters.
//! - v3 fast path: data with a zero timestamp (a sleepy sender that does not know the time yet)
//!   is accepted only from a sender whose epoch and counter this central knows, and only with a
//!   counter above it by at most 2^20 ([`CounterTable::check_fast`]). A lost peer table (wiped
//!   or unreadable store) therefore reopens no old fast-path frame, and neither does a sender's
//!   new epoch: those senders are refused
//!   ([`ReplayError::UnknownSender`](crate::replay::ReplayError::UnknownSender),
//!   [`ReplayError::OtherEpoch`](crate::replay::ReplayError::OtherEpoch)) and fall back to a
//!   wakeup and timed data, which records their epoch and counter again.
//! - Wakeup: a tid new within 2 s (v2 and v3); confirmed.
//! - Pair request: answered with a broadcast now; v3 answers with a confirm of the request's
//!   challenge (new within 2 s), so a peripheral pairs only on an answer to its own fresh
//!   request (reference §13.5). Answers are rate-limited by a token bucket (3, then one per
//!   10 s; the reference allows one per 30 s), wakeup and ping confirms by another (10, then one
//!   per 500 ms; the reference does not limit them, §13.7).
//! - v3: a frame whose header sender id differs from the radio source is dropped; every
//!   recorded counter is persisted ([`Persist::PeerCounter`]) before the frame is acted on
//!   (the caller drops the confirm and the data if that write fails), and restored at boot.
//! - All caches are bounded: 64 tids (v2), 32 peers (v3). Full never evicts (see
//!   [`crate::replay`]).

use crate::link::{
    sealed, Bucket, Codec, Counters, DropReason, Entropy, FrameBuf, Mac, Msg, Outbox, Output,
    Payload, Persist, Scratch, Version, BROADCAST,
};
use crate::replay::{within, CounterTable, TidCache, CENTRAL_SKEW_MS};
use crate::v3::{Epoch, SenderId};
use crate::{Tid, Timestamp, TsSubtype};

/// Period of the default timestamp broadcast, before fudge.
pub const BROADCAST_EVERY_MS: u64 = 25_000;
/// Random extra on each broadcast period, `0..` this.
pub const BROADCAST_FUDGE_MS: u64 = 10_000;
/// Pair-request answers at once …
pub const PAIR_BURST: u32 = 3;
/// … then one per this many ms.
pub const PAIR_REFILL_MS: u64 = 10_000;
/// Wakeup and ping confirms at once …
pub const ANSWER_BURST: u32 = 10;
/// … then one per this many ms.
pub const ANSWER_REFILL_MS: u64 = 500;
/// Tids remembered (v2).
pub const TID_CAPACITY: usize = 64;
/// Peers remembered (v3).
pub const PEER_CAPACITY: usize = 32;

const OUTBOX: usize = 8;

/// What the central tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CentralEvent {
    /// Accepted data from a peripheral (v3: `from` is its authenticated sender id).
    Data {
        from: Mac,
        rssi: i8,
        payload: Payload,
    },
    /// A frame was dropped, and why.
    Dropped { from: Mac, reason: DropReason },
}

/// Why the application could not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The payload is longer than a frame of this version holds.
    TooLong { len: usize, max: usize },
    /// v3: this device's counter space is exhausted (re-key the network), or its reservation
    /// could not be queued because the caller is not draining [`Central::poll`].
    CounterExhausted,
}

/// The central state machine.
pub struct Central<R: Entropy> {
    codec: Codec,
    me: Mac,
    rng: R,
    base: u128,
    base_at: u64,
    last_sent: u128,
    next_broadcast: u64,
    tids: TidCache<TID_CAPACITY>,
    peers: CounterTable<PEER_CAPACITY>,
    counters: Counters,
    pair_answers: Bucket,
    answers: Bucket,
    out: Outbox<CentralEvent, OUTBOX>,
}

impl<R: Entropy> Central<R> {
    /// A central with address `me` on `channel`, starting at `now`. `peers` are the persisted
    /// peer epochs and counters, and `epoch` and `counter` this device's own, from its
    /// persisted reservation (all v3; no peers, a new random epoch and 0 on a fresh device).
    /// Peers beyond the table's capacity are ignored (and refused
    /// until the table is cleared). The first outputs tune the radio and broadcast the time.
    pub fn new(
        codec: Codec,
        me: Mac,
        channel: u8,
        mut rng: R,
        peers: &[(SenderId, Epoch, u64)],
        (epoch, counter): (Epoch, u64),
        now: u64,
    ) -> Self {
        let mut raw = [0u8; 16];
        rng.fill(&mut raw[4..]);
        raw[4] &= 0x7f; // 95 random bits, as the reference
        let base = u128::from_be_bytes(raw);
        let mut table = CounterTable::new();
        for chunk in peers.chunks(1) {
            // Merge one by one so a long list fills the table instead of failing as a whole.
            let _ = table.restore(chunk);
        }
        let mut c = Central {
            codec,
            me,
            rng,
            base,
            base_at: now,
            last_sent: 0,
            next_broadcast: now,
            tids: TidCache::default(),
            peers: table,
            counters: Counters::new(epoch, counter),
            pair_answers: Bucket::new(PAIR_BURST, PAIR_REFILL_MS, now),
            answers: Bucket::new(ANSWER_BURST, ANSWER_REFILL_MS, now),
            out: Outbox::new(),
        };
        c.out.put(Output::SetChannel(channel));
        c.tick(now);
        c
    }

    /// The wire format.
    pub fn version(&self) -> Version {
        self.codec.version()
    }

    /// The network time at `now`.
    pub fn time(&self, now: u64) -> Timestamp {
        let t = self.base + u128::from(now.saturating_sub(self.base_at));
        Timestamp::new(t).unwrap_or(Timestamp::MAX)
    }

    /// When [`tick`](Self::tick) must be called next.
    pub fn next_deadline(&self) -> u64 {
        self.next_broadcast
    }

    /// The next output, if any.
    pub fn poll(&mut self) -> Option<Output<CentralEvent>> {
        self.out.pop()
    }

    /// Outputs lost because the caller did not drain [`poll`](Self::poll).
    pub fn overflows(&self) -> u32 {
        self.out.overflows
    }

    /// The known v3 peers, their epochs and last accepted counters.
    pub fn peers(&self) -> impl Iterator<Item = (SenderId, Epoch, u64)> + '_ {
        self.peers.entries()
    }

    /// Time passes.
    pub fn tick(&mut self, now: u64) {
        if now >= self.next_broadcast {
            self.broadcast(TsSubtype::Default, now);
        }
    }

    /// Broadcast `payload` to every peripheral of the network (back-data).
    pub fn send_backdata(&mut self, payload: &[u8], now: u64) -> Result<(), SendError> {
        let max = self.codec.version().max_backdata_payload();
        if payload.len() > max {
            return Err(SendError::TooLong {
                len: payload.len(),
                max,
            });
        }
        if self.broadcast(TsSubtype::Backdata(payload), now) {
            Ok(())
        } else {
            Err(SendError::CounterExhausted)
        }
    }

    /// The caller could not store `p` (a failed flash write). A counter reservation is asked for
    /// again before the next frame; the caller must not send frames sealed after the failed
    /// one ([`CounterGuard`](crate::link::CounterGuard)) and must not act on the frame whose
    /// [`Persist::PeerCounter`] failed (drop its confirm and its data).
    pub fn persist_failed(&mut self, p: &Persist) {
        if let Persist::CounterReserve(..) = p {
            self.counters.reserve_failed();
        }
    }

    /// A frame arrived from `from` with `rssi`, at `now`.
    pub fn receive(&mut self, from: Mac, rssi: i8, bytes: &[u8], now: u64) {
        let mut scratch = Scratch::new();
        let opened = match self.codec.open(bytes, &mut scratch) {
            Ok(o) => o,
            Err(e) => return self.drop(from, DropReason::Undecodable(e)),
        };
        let origin = match opened.sender {
            Some((sender, ..)) if sender.0 != from => {
                return self.drop(from, DropReason::SenderMismatch)
            }
            other => other,
        };
        match opened.msg {
            Msg::PairRequest { challenge } => {
                // Throttled first, so a flood of requests takes no tid slots. v3: the same
                // request again inside the tid window is not answered twice; an older replay
                // gets an answer nobody waits for (each request has a fresh challenge). v2
                // requests carry no challenge.
                if !self.pair_answers.take(now) {
                    return self.drop(from, DropReason::Throttled);
                }
                if origin.is_some() {
                    if let Err(e) = self.tids.check_and_insert(challenge, now) {
                        return self.drop(from, DropReason::Replay(e));
                    }
                }
                let subtype = match self.codec {
                    Codec::V2 { .. } => TsSubtype::Default,
                    Codec::V3 { .. } => TsSubtype::Confirm(challenge),
                };
                self.broadcast(subtype, now);
            }
            Msg::Wakeup { tid } => {
                if let Err(e) = self.tids.check_and_insert(tid, now) {
                    return self.drop(from, DropReason::Replay(e));
                }
                if !self.answers.take(now) {
                    return self.drop(from, DropReason::Throttled);
                }
                self.confirm(tid, now);
            }
            Msg::Ping { ts, tid } => {
                if !within(ts, self.time(now), CENTRAL_SKEW_MS) {
                    return self.drop(from, DropReason::OutOfWindow);
                }
                if let Err(e) = self.tids.check_and_insert(tid, now) {
                    return self.drop(from, DropReason::Replay(e));
                }
                if !self.answers.take(now) {
                    return self.drop(from, DropReason::Throttled);
                }
                if !self.record_fresh(origin, now) {
                    return;
                }
                self.confirm(tid, now);
            }
            Msg::Data { ts, tid, payload } => {
                match origin {
                    // v3 may send before it knows the time (zero timestamp): only the counter
                    // shows such a frame is new, and only against a counter this central knows.
                    Some((sender, epoch, counter)) if ts == Timestamp::ZERO => {
                        if let Err(e) = self.peers.accept_fast(sender, epoch, counter, now) {
                            return self.drop(from, DropReason::Replay(e));
                        }
                        if !self.out.push(Output::Persist(Persist::PeerCounter(
                            sender, epoch, counter,
                        ))) {
                            return;
                        }
                    }
                    _ => {
                        if !within(ts, self.time(now), CENTRAL_SKEW_MS) {
                            return self.drop(from, DropReason::OutOfWindow);
                        }
                        if let Err(e) = self.tids.check_and_insert(tid, now) {
                            return self.drop(from, DropReason::Replay(e));
                        }
                        if !self.record_fresh(origin, now) {
                            return;
                        }
                    }
                }
                let payload = Payload::new(payload);
                self.confirm(tid, now);
                self.out.put(Output::Event(CentralEvent::Data {
                    from,
                    rssi,
                    payload,
                }));
            }
            Msg::Timestamp { .. } => self.drop(from, DropReason::Unexpected),
        }
    }

    /// v3: records the epoch and counter of a frame shown fresh by its time and tid
    /// ([`CounterTable::record_fresh`]) and asks for them to be persisted if they changed.
    /// False only if that request did not fit the output queue: then the frame is not acted on.
    fn record_fresh(&mut self, origin: Option<(SenderId, Epoch, u64)>, now: u64) -> bool {
        let Some((sender, epoch, counter)) = origin else {
            return true;
        };
        match self.peers.record_fresh(sender, epoch, counter, now) {
            Ok(true) => self.out.push(Output::Persist(Persist::PeerCounter(
                sender, epoch, counter,
            ))),
            // Unchanged, or a full table: the frame is fresh anyway; the sender just has no
            // fast path here.
            Ok(false) | Err(_) => true,
        }
    }

    fn confirm(&mut self, tid: Tid, now: u64) {
        self.broadcast(TsSubtype::Confirm(tid), now);
    }

    fn drop(&mut self, from: Mac, reason: DropReason) {
        self.out
            .put(Output::Event(CentralEvent::Dropped { from, reason }));
    }

    /// Broadcasts a timestamp frame and restarts the broadcast period. False if it could not
    /// be sealed (v3 counter space exhausted).
    fn broadcast(&mut self, subtype: TsSubtype<'_>, now: u64) -> bool {
        let t = self.time(now).as_millis().max(self.last_sent + 1);
        self.last_sent = t;
        let msg = Msg::Timestamp {
            subtype,
            ttid: self.rng.tid(),
            ts: Timestamp::new(t).unwrap_or(Timestamp::MAX),
        };
        self.next_broadcast = now
            .saturating_add(BROADCAST_EVERY_MS)
            .saturating_add(self.rng.below(BROADCAST_FUDGE_MS));
        let frame: Option<FrameBuf> = sealed(
            &self.codec,
            &self.me,
            &mut self.counters,
            &mut self.rng,
            &mut self.out,
            &msg,
        );
        match frame {
            Some(frame) => {
                self.out.put(Output::Send {
                    to: BROADCAST,
                    frame,
                    ack: false,
                });
                true
            }
            None => false,
        }
    }
}
