//! The central and peripheral state machines together over an in-memory air with channels and
//! loss, in virtual time: pairing, reports, time keeping, and the attack suite (every attack
//! asserted to be refused).

use hearth_netnow::central::{Central, CentralEvent};
use hearth_netnow::link::{
    Codec, DropReason, Entropy, Mac, Msg, OpenError, Output, Pairing, Persist, Scratch, Version,
    BROADCAST,
};
use hearth_netnow::peripheral::{Peripheral, PeripheralEvent, SendError, LOST_AFTER_MS};
use hearth_netnow::replay::ReplayError;
use hearth_netnow::v3::{Epoch, SenderId};
use hearth_netnow::{Tid, Timestamp, TsSubtype, MAX_FRAME_LEN};

const PSK: &[u8] = b"0123456789abcdef-a-long-test-psk";
const GROUP: &[u8] = b"scales";
const CENTRAL: Mac = [0x02, 0, 0, 0, 0, 0xc0];
const SCALE: Mac = [0x02, 0, 0, 0, 0, 0x51];
const ROGUE: Mac = [0x02, 0, 0, 0, 0, 0x66];

/// SplitMix64: deterministic test entropy.
#[derive(Clone)]
struct Rng(u64);

impl Entropy for Rng {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// The counter epoch of the device with this MAC in these tests (a real device draws it).
fn epoch_of(mac: Mac) -> Epoch {
    Epoch([mac[5]; 12])
}

fn codec(v: Version) -> Codec {
    Codec::new(v, PSK, GROUP)
}

/// A frame on the air.
#[derive(Clone, Debug)]
struct Air {
    from: Mac,
    to: Mac,
    channel: u8,
    bytes: Vec<u8>,
}

/// One central, one peripheral, an air with loss, virtual time, and everything recorded.
struct World {
    now: u64,
    central: Central<Rng>,
    central_channel: u8,
    scale: Peripheral<Rng>,
    scale_channel: u8,
    loss: u64,
    dice: Rng,
    /// Every frame sent, for sniffing and replaying.
    sniffed: Vec<Air>,
    central_events: Vec<CentralEvent>,
    scale_events: Vec<PeripheralEvent>,
    scale_persisted: Vec<Persist>,
    central_persisted: Vec<Persist>,
}

impl World {
    fn new(v: Version, central_channel: u8, pairing: Option<Pairing>) -> World {
        let central = Central::new(
            codec(v),
            CENTRAL,
            central_channel,
            Rng(1),
            &[],
            (epoch_of(CENTRAL), 0),
            0,
        );
        let scale = Peripheral::new(codec(v), SCALE, Rng(2), pairing, (epoch_of(SCALE), 0), 0);
        let mut w = World {
            now: 0,
            central,
            central_channel: 0,
            scale,
            scale_channel: 0,
            loss: 0,
            dice: Rng(3),
            sniffed: Vec::new(),
            central_events: Vec::new(),
            scale_events: Vec::new(),
            scale_persisted: Vec::new(),
            central_persisted: Vec::new(),
        };
        w.pump();
        w
    }

    fn lost(&mut self) -> bool {
        let mut b = [0u8; 8];
        self.dice.fill(&mut b);
        u64::from_le_bytes(b) % 100 < self.loss
    }

    /// Put a frame on the air: record it, and hand it to the other machine if it listens on
    /// that channel and the frame is not lost.
    fn deliver(&mut self, from: Mac, to: Mac, bytes: &[u8]) {
        let (channel, peer, peer_channel) = if from == CENTRAL {
            (self.central_channel, SCALE, self.scale_channel)
        } else {
            (self.scale_channel, CENTRAL, self.central_channel)
        };
        self.sniffed.push(Air {
            from,
            to,
            channel,
            bytes: bytes.to_vec(),
        });
        if (to == BROADCAST || to == peer) && peer_channel == channel && !self.lost() {
            if from == CENTRAL {
                self.scale.receive(CENTRAL, -60, bytes, self.now);
            } else {
                self.central.receive(SCALE, -55, bytes, self.now);
            }
        }
    }

    /// Carry every output until both machines are quiet.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(o) = self.central.poll() {
                moved = true;
                match o {
                    Output::Send { to, frame, .. } => self.deliver(CENTRAL, to, frame.as_slice()),
                    Output::SetChannel(c) => self.central_channel = c,
                    Output::Persist(p) => self.central_persisted.push(p),
                    Output::Event(e) => self.central_events.push(e),
                }
            }
            while let Some(o) = self.scale.poll() {
                moved = true;
                match o {
                    Output::Send { to, frame, .. } => self.deliver(SCALE, to, frame.as_slice()),
                    Output::SetChannel(c) => self.scale_channel = c,
                    Output::Persist(p) => self.scale_persisted.push(p),
                    Output::Event(e) => self.scale_events.push(e),
                }
            }
            if !moved {
                return;
            }
        }
        panic!("outputs never settle");
    }

    /// Advance virtual time to `until`, ticking both machines at their deadlines.
    fn run_until(&mut self, until: u64) {
        let limit = until.saturating_sub(self.now);
        self.run_while(limit, |_| false);
    }

    /// Run until `done` holds (checked after each step), at most `limit` ms; returns when.
    fn run_while(&mut self, limit: u64, mut done: impl FnMut(&World) -> bool) -> Option<u64> {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return Some(self.now);
            }
            let next = self
                .central
                .next_deadline()
                .min(self.scale.next_deadline())
                .max(self.now + 1)
                .min(end);
            self.now = next;
            self.central.tick(self.now);
            self.scale.tick(self.now);
            self.pump();
        }
        done(self).then_some(self.now)
    }

    fn data_received(&self) -> Vec<Vec<u8>> {
        self.central_events
            .iter()
            .filter_map(|e| match e {
                CentralEvent::Data { payload, .. } => Some(payload.as_slice().to_vec()),
                _ => None,
            })
            .collect()
    }

    fn central_drops(&self) -> Vec<DropReason> {
        self.central_events
            .iter()
            .filter_map(|e| match e {
                CentralEvent::Dropped { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn confirmed(&self) -> usize {
        self.scale_events
            .iter()
            .filter(|e| **e == PeripheralEvent::Confirmed)
            .count()
    }

    /// Inject raw bytes at the central as if from `from` on its channel.
    fn inject_central(&mut self, from: Mac, bytes: &[u8]) {
        self.central.receive(from, -70, bytes, self.now);
        self.pump();
    }

    fn inject_scale(&mut self, from: Mac, bytes: &[u8]) {
        self.scale.receive(from, -70, bytes, self.now);
        self.pump();
    }
}

fn kind(v: Version, bytes: &[u8]) -> &'static str {
    let mut s = Scratch::new();
    codec(v)
        .open(bytes, &mut s)
        .map(|o| o.msg.kind())
        .unwrap_or("?")
}

fn paired(channel: u8) -> Option<Pairing> {
    Some(Pairing {
        central: CENTRAL,
        channel,
    })
}

// ---------------------------------------------------------------- behaviour

#[test]
fn unpaired_peripheral_finds_the_central_on_channel_5_and_stores_the_pairing() {
    for v in [Version::V3, Version::V2] {
        let mut w = World::new(v, 5, None);
        let when = w
            .run_while(120_000, |w| w.scale.pairing().is_some())
            .unwrap_or_else(|| panic!("{v:?}: never paired"));
        assert_eq!(w.scale.pairing(), paired(5), "{v:?}");
        assert!(
            w.scale_persisted
                .contains(&Persist::Pairing(paired(5).unwrap())),
            "{v:?}: pairing persisted"
        );
        assert!(w.scale.is_ready(), "{v:?}: time known once paired");
        // Channels 1..4 take 5 s each before channel 5 is tried.
        assert!(
            (20_000..26_000).contains(&when),
            "{v:?}: paired at {when} ms"
        );
        assert_eq!(w.scale_channel, 5);
        // The scan: pair requests on channels 1, 2, 3, 4, then 5, in that order.
        let mut scanned: Vec<u8> = w
            .sniffed
            .iter()
            .filter(|a| a.from == SCALE && kind(v, &a.bytes) == "pair request")
            .map(|a| a.channel)
            .collect();
        scanned.dedup();
        assert_eq!(scanned, [1, 2, 3, 4, 5], "{v:?}");
    }
}

#[test]
fn a_paired_scale_wakes_reports_and_is_confirmed() {
    for v in [Version::V3, Version::V2] {
        let mut w = World::new(v, 7, None);
        w.run_while(120_000, |w| w.scale.pairing().is_some())
            .unwrap();
        // A fresh boot (deep-sleep wake), paired from flash, 10 minutes later.
        w.run_until(w.now + 600_000);
        let counter = w
            .scale_persisted
            .iter()
            .filter_map(|p| match p {
                Persist::CounterReserve(_, c) => Some(*c),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        w.scale = Peripheral::new(
            codec(v),
            SCALE,
            Rng(9),
            paired(7),
            (epoch_of(SCALE), counter),
            w.now,
        );
        w.pump();
        let woke = w.now;
        w.scale.send(b"stat/LPScale/Weight\n12.5", w.now).unwrap();
        w.pump();
        let done = w
            .run_while(10_000, |w| w.confirmed() == 1)
            .expect("confirmed");
        assert_eq!(
            w.data_received(),
            vec![b"stat/LPScale/Weight\n12.5".to_vec()]
        );
        // v3 sends at once (fast path, one exchange); v2 needs wakeup + confirm first.
        assert_eq!(
            done, woke,
            "{v:?}: confirmed within the same instant of virtual time"
        );
        let scale_frames: Vec<_> = w
            .sniffed
            .iter()
            .filter(|a| a.from == SCALE && a.to == CENTRAL)
            .map(|a| kind(v, &a.bytes))
            .collect();
        let tail: Vec<_> = scale_frames.iter().rev().take(2).rev().copied().collect();
        match v {
            Version::V3 => assert_eq!(tail.last(), Some(&"data")),
            Version::V2 => assert_eq!(tail, ["wakeup", "data"]),
        }
    }
}

#[test]
fn with_30_percent_loss_every_hourly_reading_arrives() {
    for v in [Version::V3, Version::V2] {
        let mut w = World::new(v, 3, paired(3));
        w.loss = 30;
        let mut counter = 0;
        let mut tries = 0;
        for hour in 0..48u32 {
            w.now += 3_600_000;
            w.scale = Peripheral::new(
                codec(v),
                SCALE,
                Rng(100 + u64::from(hour)),
                paired(3),
                (epoch_of(SCALE), counter),
                w.now,
            );
            w.pump();
            let reading = format!("stat/LPScale/Weight\n{hour}.0");
            let before = w.confirmed();
            w.scale.send(reading.as_bytes(), w.now).unwrap();
            w.pump();
            w.run_while(60_000, |w| w.confirmed() > before)
                .unwrap_or_else(|| panic!("{v:?}: hour {hour} never confirmed"));
            assert!(
                w.data_received().contains(&reading.into_bytes()),
                "{v:?}: hour {hour}"
            );
            tries += w.scale.tries();
            counter = w
                .scale_persisted
                .iter()
                .filter_map(|p| match p {
                    Persist::CounterReserve(_, c) => Some(*c),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
        }
        // Loss really happened: more tries than readings.
        assert!(tries > 48, "{v:?}: {tries} tries");
    }
}

#[test]
fn a_rebooted_central_is_followed_after_a_ping() {
    let mut w = World::new(Version::V2, 4, paired(4));
    w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
    let before = w.scale.time(w.now).unwrap();
    // The central reboots: new random time base.
    w.central = Central::new(
        codec(Version::V2),
        CENTRAL,
        4,
        Rng(77),
        &[],
        (epoch_of(CENTRAL), 0),
        w.now,
    );
    w.pump();
    let central_time = w.central.time(w.now);
    assert_ne!(before, central_time);
    let pinged = w.sniffed.len();
    // The reboot broadcast triggered a ping; its confirm rebased the peripheral.
    let t = w.scale.time(w.now).unwrap();
    assert!(
        t.as_millis().abs_diff(central_time.as_millis()) < 1_000,
        "rebased"
    );
    assert!(w.sniffed[..pinged]
        .iter()
        .any(|a| a.from == SCALE && kind(Version::V2, &a.bytes) == "ping"));
}

#[test]
fn backdata_reaches_the_peripheral_and_reports_retry_until_confirmed() {
    let mut w = World::new(Version::V3, 9, paired(9));
    w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
    w.central
        .send_backdata(b"stat/TNowP/YourRSSI\n-55", w.now)
        .unwrap();
    w.pump();
    assert!(w.scale_events.iter().any(|e| matches!(e,
        PeripheralEvent::Backdata { payload, .. } if payload.as_slice() == b"stat/TNowP/YourRSSI\n-55")));
    // A second report while one is pending is refused, not queued without bound.
    w.loss = 100;
    w.scale.send(b"a", w.now).unwrap();
    assert_eq!(w.scale.send(b"b", w.now), Err(SendError::Busy));
    w.run_until(w.now + 5_500);
    assert!(
        w.scale.tries() >= 6,
        "retried every second: {}",
        w.scale.tries()
    );
    w.loss = 0;
    w.run_while(2_000, |w| w.confirmed() == 1)
        .expect("confirmed after loss ends");
    let max = Version::V3.max_data_payload();
    assert_eq!(
        w.scale.send(&vec![b'x'; max + 1], w.now),
        Err(SendError::TooLong { len: max + 1, max })
    );
}

#[test]
fn a_lost_central_is_searched_again_and_repair_forgets_the_pairing() {
    let mut w = World::new(Version::V3, 6, paired(6));
    w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
    // The central moves to channel 11 (e.g. reconfigured).
    w.central = Central::new(
        codec(Version::V3),
        CENTRAL,
        11,
        Rng(5),
        &[],
        (epoch_of(CENTRAL), 1 << 20),
        w.now,
    );
    w.pump();
    w.run_while(LOST_AFTER_MS + 120_000, |w| w.scale.pairing() == paired(11))
        .expect("re-paired on the new channel");
    assert!(w.scale_events.contains(&PeripheralEvent::Lost));
    w.scale.repair(w.now);
    w.pump();
    assert_eq!(w.scale.pairing(), None);
    assert!(w.scale_persisted.contains(&Persist::Unpaired));
}

// ---------------------------------------------------------------- attacks

/// A captured data frame from the scale, and the world it was captured in.
fn captured_data(v: Version) -> (World, Vec<u8>) {
    let mut w = World::new(v, 2, paired(2));
    w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
    w.scale.send(b"stat/LPScale/Weight\n1.0", w.now).unwrap();
    w.pump();
    assert_eq!(w.confirmed(), 1);
    let frame = w
        .sniffed
        .iter()
        .rev()
        .find(|a| a.from == SCALE && kind(v, &a.bytes) == "data")
        .unwrap()
        .bytes
        .clone();
    (w, frame)
}

#[test]
fn attack_forged_wrong_key_wrong_group_truncated_oversized_bad_version_bad_type() {
    for v in [Version::V3, Version::V2] {
        let (mut w, frame) = captured_data(v);
        let accepted = w.data_received().len();
        let mut attacks: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut forged = frame.clone();
        *forged.last_mut().unwrap() ^= 1;
        attacks.push(("forged tag", forged));
        let mut flipped = frame.clone();
        flipped[frame.len() / 2] ^= 0x80;
        attacks.push(("flipped body bit", flipped));
        attacks.push(("truncated", frame[..frame.len() - 1].to_vec()));
        attacks.push(("truncated to 20", frame[..20].to_vec()));
        let mut long = frame.clone();
        long.resize(MAX_FRAME_LEN + 1, 0);
        attacks.push(("oversized", long));
        attacks.push(("empty", Vec::new()));
        let mut s = Scratch::new();
        let opened = codec(v).open(&frame, &mut s).unwrap();
        let mut out = [0; MAX_FRAME_LEN];
        for (name, other) in [
            (
                "wrong key",
                Codec::new(v, b"another-psk-of-some-length-0000", GROUP),
            ),
            ("wrong group", Codec::new(v, PSK, b"other")),
        ] {
            let n = other
                .seal(
                    &opened.msg,
                    &SenderId(SCALE),
                    &epoch_of(SCALE),
                    1 << 30,
                    &[7; 16],
                    &mut out,
                )
                .unwrap();
            attacks.push((name, out[..n].to_vec()));
        }
        // Bad version and bad type: header bytes (v3: clear; v2: inside the ciphertext, so any
        // change breaks the tag first).
        let mut bad_version = frame.clone();
        bad_version[0] ^= 0x07;
        attacks.push(("bad version", bad_version));
        let mut bad_type = frame.clone();
        bad_type[1] = 9;
        attacks.push(("bad type", bad_type));
        for (name, bytes) in &attacks {
            w.inject_central(SCALE, bytes);
            match w.central_drops().last() {
                Some(DropReason::Undecodable(_)) => {}
                other => panic!("{v:?} {name}: {other:?}"),
            }
        }
        assert_eq!(w.data_received().len(), accepted, "{v:?}: zero accepted");
    }
}

#[test]
fn attack_replays_same_tid_same_timestamp_old_timestamp() {
    for v in [Version::V3, Version::V2] {
        let (mut w, frame) = captured_data(v);
        let accepted = w.data_received().len();
        // At once: same tid, same timestamp (v3 too: a timed frame is judged by its time and
        // tid, like v2; its counter only matters for the fast path).
        w.inject_central(SCALE, &frame);
        assert_eq!(
            w.central_drops().last(),
            Some(&DropReason::Replay(ReplayError::Replay)),
            "{v:?}"
        );
        // 3 s later: the tid has left the cache, but the timestamp is old.
        w.run_until(w.now + 3_000);
        w.inject_central(SCALE, &frame);
        assert_eq!(
            w.central_drops().last(),
            Some(&DropReason::OutOfWindow),
            "{v:?}"
        );
        // Replaying the central's confirm at the scale: same ttid / old counter.
        let confirm = w
            .sniffed
            .iter()
            .rev()
            .find(|a| a.from == CENTRAL && kind(v, &a.bytes) == "confirm")
            .unwrap()
            .bytes
            .clone();
        let time = w.scale.time(w.now);
        w.inject_scale(CENTRAL, &confirm);
        assert!(
            matches!(
                w.scale_events.last(),
                Some(PeripheralEvent::Dropped {
                    reason: DropReason::Replay(_) | DropReason::Unverified,
                    ..
                })
            ),
            "{v:?}: {:?}",
            w.scale_events.last()
        );
        assert_eq!(w.scale.time(w.now), time, "{v:?}: clock untouched");
        assert_eq!(w.data_received().len(), accepted, "{v:?}: zero accepted");
    }
}

#[test]
fn attack_v3_replay_after_central_reboot_is_refused_from_persisted_counters() {
    let (mut w, frame) = captured_data(Version::V3);
    let peers: Vec<(SenderId, Epoch, u64)> = w
        .central_persisted
        .iter()
        .filter_map(|p| match p {
            Persist::PeerCounter(s, e, c) => Some((*s, *e, *c)),
            _ => None,
        })
        .collect();
    w.central = Central::new(
        codec(Version::V3),
        CENTRAL,
        2,
        Rng(8),
        &peers,
        (epoch_of(CENTRAL), 1 << 20),
        w.now,
    );
    w.pump();
    // A timed frame is old by its time (the rebooted central even has another time base).
    w.inject_central(SCALE, &frame);
    assert_eq!(w.central_drops().last(), Some(&DropReason::OutOfWindow));
}

#[test]
fn attack_tid_cache_flood_then_replay_v2() {
    let (mut w, _) = captured_data(Version::V2);
    let c = codec(Version::V2);
    let mut rng = Rng(42);
    let mut out = [0; MAX_FRAME_LEN];
    let ts = w.central.time(w.now);
    let mut frames = Vec::new();
    for _ in 0..70 {
        let msg = Msg::Data {
            ts,
            tid: rng.tid(),
            payload: b"flood",
        };
        let mut iv = [0; 16];
        rng.fill(&mut iv);
        let n = c
            .seal(&msg, &SenderId(SCALE), &epoch_of(SCALE), 0, &iv, &mut out)
            .unwrap();
        frames.push(out[..n].to_vec());
    }
    let before = w.data_received().len();
    for f in &frames {
        w.inject_central(SCALE, f);
    }
    let accepted = w.data_received().len() - before;
    assert!(accepted <= 64, "the bounded cache took {accepted}");
    assert!(w
        .central_drops()
        .contains(&DropReason::Replay(ReplayError::Full)));
    // Replays of flooded frames inside the window: all refused, nothing was evicted.
    for f in &frames {
        w.inject_central(SCALE, f);
    }
    assert_eq!(
        w.data_received().len() - before,
        accepted,
        "zero replays accepted"
    );
}

#[test]
fn attack_rogue_central_far_future_time_is_pinged_never_adopted() {
    for v in [Version::V2, Version::V3] {
        let mut w = World::new(v, 8, paired(8));
        w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
        w.run_until(w.now + 30_000);
        let time = w.scale.time(w.now).unwrap();
        let far = Timestamp::new(time.as_millis() + 86_400_000).unwrap();
        let msg = Msg::Timestamp {
            subtype: TsSubtype::Default,
            ttid: Tid([0xaa; 12]),
            ts: far,
        };
        let mut out = [0; MAX_FRAME_LEN];
        // A key holder broadcasting as our central's address (v3: it cannot be our central's
        // sender id with a fresh counter without its key... it has the group key, so it can):
        let n = codec(v)
            .seal(
                &msg,
                &SenderId(CENTRAL),
                &epoch_of(CENTRAL),
                1 << 40,
                &[1; 16],
                &mut out,
            )
            .unwrap();
        let sent_before = w.sniffed.len();
        w.inject_scale(CENTRAL, &out[..n]);
        let t = w.scale.time(w.now).unwrap();
        assert!(
            t.as_millis().abs_diff(time.as_millis()) < 1_000,
            "{v:?}: not adopted"
        );
        let ping = w.sniffed[sent_before..]
            .iter()
            .find(|a| a.from == SCALE && kind(v, &a.bytes) == "ping")
            .unwrap_or_else(|| panic!("{v:?}: pinged before adopting"));
        assert_eq!(ping.to, CENTRAL);
        // The real central refused the ping (time far from its own): no confirm, no rebase.
        assert_eq!(
            w.central_drops().last(),
            Some(&DropReason::OutOfWindow),
            "{v:?}"
        );
        // A rogue with another address.
        let n = codec(v)
            .seal(
                &msg,
                &SenderId(ROGUE),
                &epoch_of(ROGUE),
                1 << 41,
                &[2; 16],
                &mut out,
            )
            .unwrap();
        w.inject_scale(ROGUE, &out[..n]);
        let t = w.scale.time(w.now).unwrap();
        assert!(
            t.as_millis().abs_diff(time.as_millis()) < 1_000,
            "{v:?}: not adopted"
        );
        if v == Version::V3 {
            assert!(matches!(
                w.scale_events.last(),
                Some(PeripheralEvent::Dropped {
                    reason: DropReason::NotOurCentral,
                    ..
                })
            ));
        }
    }
}

#[test]
fn attack_pair_request_flood_is_throttled() {
    for v in [Version::V3, Version::V2] {
        let mut w = World::new(v, 1, paired(1));
        w.run_while(10_000, |w| w.scale.is_ready()).expect("ready");
        let c = codec(v);
        let mut rng = Rng(7);
        let mut out = [0; MAX_FRAME_LEN];
        let before = w.sniffed.iter().filter(|a| a.from == CENTRAL).count();
        for i in 0..200u64 {
            let msg = Msg::PairRequest {
                challenge: rng.tid(),
            };
            let n = c
                .seal(
                    &msg,
                    &SenderId(ROGUE),
                    &epoch_of(ROGUE),
                    1000 + i,
                    &[3; 16],
                    &mut out,
                )
                .unwrap();
            w.central.receive(ROGUE, -40, &out[..n], w.now + i * 5);
            w.pump();
        }
        let answers = w.sniffed.iter().filter(|a| a.from == CENTRAL).count() - before;
        assert!(
            answers <= 3,
            "{v:?}: {answers} answers to 200 requests in 1 s"
        );
        assert!(
            w.central_drops()
                .iter()
                .filter(|d| **d == DropReason::Throttled)
                .count()
                >= 197
        );
    }
}

#[test]
fn attack_unpaired_v3_peripheral_ignores_replayed_broadcasts() {
    // Capture a real confirm, then replay it to an unpaired peripheral from a spoofed address:
    // it answers no challenge of this peripheral, so it does not pair.
    let (w, _) = captured_data(Version::V3);
    let confirm = w
        .sniffed
        .iter()
        .rev()
        .find(|a| a.from == CENTRAL && kind(Version::V3, &a.bytes) == "confirm")
        .unwrap()
        .bytes
        .clone();
    let mut p = Peripheral::new(
        codec(Version::V3),
        [2, 9, 9, 9, 9, 9],
        Rng(55),
        None,
        (Epoch([9; 12]), 0),
        0,
    );
    while p.poll().is_some() {}
    p.receive(CENTRAL, -50, &confirm, 10);
    assert_eq!(p.pairing(), None);
    let mut reasons = Vec::new();
    while let Some(o) = p.poll() {
        if let Output::Event(PeripheralEvent::Dropped { reason, .. }) = o {
            reasons.push(reason);
        }
    }
    assert_eq!(reasons, [DropReason::NotForUs]);
}

#[test]
fn v2_and_v3_networks_refuse_each_other() {
    let (mut w3, _) = captured_data(Version::V3);
    let (w2, v2_frame) = captured_data(Version::V2);
    w3.inject_central(SCALE, &v2_frame);
    assert!(matches!(
        w3.central_drops().last(),
        Some(DropReason::Undecodable(OpenError::OtherVersion(2)))
    ));
    let (_, v3_frame) = captured_data(Version::V3);
    let mut w2 = w2;
    w2.inject_central(SCALE, &v3_frame);
    assert!(matches!(
        w2.central_drops().last(),
        Some(DropReason::Undecodable(_))
    ));
}

// ------------------------------------------- v3 counters: fast path, lost state, queue

impl World {
    /// The scale deep-sleeps and wakes with `counter` as its stored epoch and reservation
    /// (`None`: what it last persisted), still paired: a new machine that does not know the
    /// time.
    fn wake_scale(&mut self, seed: u64, counter: Option<(Epoch, u64)>) {
        let stored = self
            .scale_persisted
            .iter()
            .rev()
            .find_map(|p| match p {
                Persist::CounterReserve(e, c) => Some((*e, *c)),
                _ => None,
            })
            .unwrap_or((epoch_of(SCALE), 0));
        let pairing = self.scale.pairing();
        self.scale = Peripheral::new(
            codec(Version::V3),
            SCALE,
            Rng(seed),
            pairing,
            counter.unwrap_or(stored),
            self.now,
        );
        // Its first wakeup is lost on the air, so the report below goes out before the time is
        // known: on the fast path.
        while let Some(o) = self.scale.poll() {
            match o {
                Output::SetChannel(c) => self.scale_channel = c,
                Output::Persist(p) => self.scale_persisted.push(p),
                Output::Send { to, frame, .. } => self.sniffed.push(Air {
                    from: SCALE,
                    to,
                    channel: self.scale_channel,
                    bytes: frame.as_slice().to_vec(),
                }),
                Output::Event(e) => self.scale_events.push(e),
            }
        }
    }

    /// The central reboots with `peers` as its restored peer table.
    fn reboot_central(&mut self, seed: u64, peers: &[(SenderId, Epoch, u64)]) {
        self.central = Central::new(
            codec(Version::V3),
            CENTRAL,
            self.central_channel,
            Rng(seed),
            peers,
            (epoch_of(CENTRAL), 1 << 40),
            self.now,
        );
        self.pump();
    }

    fn persisted_peers(&self) -> Vec<(SenderId, Epoch, u64)> {
        let mut peers: Vec<(SenderId, Epoch, u64)> = Vec::new();
        for p in &self.central_persisted {
            if let Persist::PeerCounter(s, e, c) = p {
                peers.retain(|(t, ..)| t != s);
                peers.push((*s, *e, *c));
            }
        }
        peers
    }

    /// Kinds of the frames the scale sent from sniffed index `from` on.
    fn scale_kinds_since(&self, from: usize) -> Vec<&'static str> {
        self.sniffed[from..]
            .iter()
            .filter(|a| a.from == SCALE)
            .map(|a| kind(Version::V3, &a.bytes))
            .collect()
    }

    /// Wake the scale, report once and wait for the confirm; returns the scale's frame kinds
    /// after the lost wakeup.
    fn wake_and_report(&mut self, seed: u64, counter: Option<(Epoch, u64)>) -> Vec<&'static str> {
        let confirmed = self.confirmed();
        self.wake_scale(seed, counter);
        let mark = self.sniffed.len();
        self.scale
            .send(b"stat/LPScale/Weight\n2.0", self.now)
            .unwrap();
        self.pump();
        self.run_while(20_000, |w| w.confirmed() > confirmed)
            .expect("report confirmed");
        self.scale_kinds_since(mark)
    }
}

/// The last data frame the scale sent with a zero timestamp (the fast path).
fn last_fast_path_frame(w: &World) -> Vec<u8> {
    w.sniffed
        .iter()
        .rev()
        .filter(|a| a.from == SCALE)
        .find(|a| {
            let mut s = Scratch::new();
            matches!(
                codec(Version::V3).open(&a.bytes, &mut s).map(|o| o.msg),
                Ok(Msg::Data { ts, .. }) if ts == Timestamp::ZERO
            )
        })
        .expect("a fast-path frame")
        .bytes
        .clone()
}

/// The epoch and counter a v3 frame was sealed with.
fn counter_of(bytes: &[u8]) -> (Epoch, u64) {
    let mut s = Scratch::new();
    let (_, epoch, counter) = codec(Version::V3)
        .open(bytes, &mut s)
        .unwrap()
        .sender
        .unwrap();
    (epoch, counter)
}

/// A v3 world in which the scale made one timed exchange, then woke and reported on the fast
/// path, which the central accepted.
fn fast_path_world() -> World {
    let (mut w, _) = captured_data(Version::V3);
    let kinds = w.wake_and_report(20, None);
    assert_eq!(kinds, ["data"], "one fast-path try, confirmed at once");
    w
}

#[test]
fn a_woken_v3_scale_reports_on_the_fast_path_once_the_central_knows_its_counter() {
    let mut w = World::new(Version::V3, 2, paired(2));
    // The central has never heard the scale: its fast path is refused, the scale falls back to a
    // wakeup and timed data, which also gives the central the scale's counter.
    let kinds = w.wake_and_report(10, None);
    assert_eq!(kinds, ["data", "wakeup", "data"]);
    assert!(w
        .central_drops()
        .contains(&DropReason::Replay(ReplayError::UnknownSender)));
    // From the next wake on, one frame does it.
    assert_eq!(w.wake_and_report(11, None), ["data"]);
    assert_eq!(w.data_received().len(), 2);
}

#[test]
fn attack_v3_fast_path_replay_is_refused_after_a_reboot_and_after_a_lost_peer_table() {
    let mut w = fast_path_world();
    let frame = last_fast_path_frame(&w);
    let accepted = w.data_received().len();
    w.inject_central(SCALE, &frame);
    assert_eq!(
        w.central_drops().last(),
        Some(&DropReason::Replay(ReplayError::Stale))
    );
    // Rebooted with its persisted table: refused by the restored counter.
    let peers = w.persisted_peers();
    assert!(!peers.is_empty());
    w.reboot_central(30, &peers);
    w.inject_central(SCALE, &frame);
    assert_eq!(
        w.central_drops().last(),
        Some(&DropReason::Replay(ReplayError::Stale))
    );
    // Rebooted without it (wiped or unreadable store): the counter of an unknown sender proves
    // nothing, so the fast path is closed to it ...
    w.reboot_central(31, &[]);
    w.inject_central(SCALE, &frame);
    assert_eq!(
        w.central_drops().last(),
        Some(&DropReason::Replay(ReplayError::UnknownSender))
    );
    assert_eq!(
        w.data_received().len(),
        accepted,
        "the replay was not taken"
    );
    // ... and the real scale still gets through, with one round trip more.
    assert_eq!(w.wake_and_report(32, None), ["data", "wakeup", "data"]);
    assert_eq!(w.data_received().len(), accepted + 1);
}

#[test]
fn a_v3_scale_that_lost_its_counter_is_served_and_its_old_frames_stay_refused() {
    let mut w = World::new(Version::V3, 2, paired(2));
    // First life of the scale: epoch A, counters from 0.
    let (a, b) = (Epoch([0xaa; 12]), Epoch([0xbb; 12]));
    w.wake_and_report(40, Some((a, 0)));
    assert_eq!(w.wake_and_report(41, None), ["data"]);
    let old = last_fast_path_frame(&w);
    assert_eq!(counter_of(&old).0, a);
    // Its store is wiped; it draws epoch B and counts from 0 again: its fast path is refused
    // (the central knows epoch A), the timed exchange that follows records epoch B.
    let kinds = w.wake_and_report(42, Some((b, 0)));
    assert_eq!(kinds, ["data", "wakeup", "data"]);
    assert!(w
        .central_drops()
        .contains(&DropReason::Replay(ReplayError::OtherEpoch)));
    assert_eq!(w.wake_and_report(43, None), ["data"]);
    let new = last_fast_path_frame(&w);
    // The second life reuses the first one's counter values, in another epoch: other nonces.
    assert_eq!(counter_of(&new).0, b);
    assert_eq!(counter_of(&new).1, counter_of(&old).1);
    // The first life's frames do not come back: the fast path takes epoch B only.
    let accepted = w.data_received().len();
    w.inject_central(SCALE, &old);
    assert_eq!(
        w.central_drops().last(),
        Some(&DropReason::Replay(ReplayError::OtherEpoch))
    );
    assert_eq!(w.data_received().len(), accepted);
}

#[test]
fn attack_a_forged_huge_counter_costs_the_scale_only_its_fast_path() {
    let mut w = fast_path_world();
    // A holder of the PSK forges a timed data frame from the scale with the largest counter.
    let msg = Msg::Data {
        ts: w.central.time(w.now),
        tid: Tid([0x5a; 12]),
        payload: b"stat/LPScale/Weight\n999",
    };
    let mut out = [0; MAX_FRAME_LEN];
    let n = codec(Version::V3)
        .seal(
            &msg,
            &SenderId(SCALE),
            &epoch_of(SCALE),
            hearth_netnow::v3::MAX_COUNTER,
            &[0; 16],
            &mut out,
        )
        .unwrap();
    let accepted = w.data_received().len();
    w.inject_central(SCALE, &out[..n]);
    assert_eq!(
        w.data_received().len(),
        accepted + 1,
        "a key holder can forge"
    );
    // The real scale is not locked out: one fall-back round trip puts its counter back.
    assert_eq!(w.wake_and_report(50, None), ["data", "wakeup", "data"]);
    assert_eq!(w.wake_and_report(51, None), ["data"]);
}

#[test]
fn a_central_whose_queue_overflows_never_sends_an_unreserved_counter() {
    let mut central = Central::new(
        codec(Version::V3),
        CENTRAL,
        1,
        Rng(60),
        &[],
        (epoch_of(CENTRAL), 0),
        0,
    );
    let mut guard = hearth_netnow::link::CounterGuard::new(0);
    let (mut sent, mut refused) = (0, 0);
    for round in 0..40u64 {
        // The caller does not drain for a while: outputs overflow, reservations included.
        for i in 0..(round % 13 + 1) {
            let _ = central.send_backdata(b"x", round * 100 + i);
        }
        while let Some(o) = central.poll() {
            match o {
                Output::Persist(p) => guard.persisted(&p, true),
                Output::Send { frame, .. } => {
                    if guard.may_send(&frame) {
                        sent += 1;
                    } else {
                        refused += 1;
                    }
                }
                _ => {}
            }
        }
    }
    assert!(central.overflows() > 0, "the queue did overflow");
    assert!(sent > 64, "several blocks were used ({sent} frames)");
    assert_eq!(
        refused, 0,
        "a frame was sealed with a counter never reserved"
    );
}
