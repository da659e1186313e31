//! Tests of the replay structures: tid window and expiry, full caches that reject without
//! evicting, per-sender counters, persistence round trips, window arithmetic at its bounds and at
//! the ends of the 96-bit range, and randomised runs against naive models.

use super::*;
use crate::v3::Epoch;

const E: Epoch = Epoch([1; 12]);

extern crate std;

fn tid(n: u32) -> Tid {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(&n.to_be_bytes());
    Tid(t)
}

fn sender(n: u8) -> SenderId {
    SenderId([0x24, 0x6f, 0x28, 0, 0, n])
}

fn ts(ms: u128) -> Timestamp {
    Timestamp::new(ms).unwrap()
}

/// xorshift64*: a small deterministic PRNG for the property-style loops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- TidCache ----

#[test]
fn replay_inside_window_rejected_then_accepted_after_expiry() {
    let mut c = TidCache::<4>::default();
    assert_eq!(c.window_ms(), TID_WINDOW_MS);
    assert_eq!(c.check_and_insert(tid(1), 10_000), Ok(()));
    assert_eq!(c.check_and_insert(tid(1), 10_000), Err(ReplayError::Replay));
    assert_eq!(c.check_and_insert(tid(1), 11_000), Err(ReplayError::Replay));
    // The bound is included: exactly 2000 ms later is still inside.
    assert_eq!(c.check_and_insert(tid(1), 12_000), Err(ReplayError::Replay));
    assert!(c.contains(&tid(1), 12_000));
    assert!(!c.contains(&tid(1), 12_001));
    assert_eq!(c.check_and_insert(tid(1), 12_001), Ok(()));
    // Re-inserted: a fresh window from 12 001.
    assert_eq!(c.check_and_insert(tid(1), 14_001), Err(ReplayError::Replay));
    assert_eq!(c.check_and_insert(tid(2), 14_001), Ok(()));
}

#[test]
fn a_replay_does_not_refresh_the_entry() {
    let mut c = TidCache::<2>::new(100);
    c.check_and_insert(tid(1), 0).unwrap();
    assert_eq!(c.check_and_insert(tid(1), 90), Err(ReplayError::Replay));
    assert_eq!(c.check_and_insert(tid(1), 101), Ok(()));
}

#[test]
fn clock_going_backwards_keeps_entries_live() {
    let mut c = TidCache::<2>::new(100);
    c.check_and_insert(tid(1), 5_000).unwrap();
    assert_eq!(c.check_and_insert(tid(1), 0), Err(ReplayError::Replay));
}

#[test]
fn full_cache_rejects_without_evicting_and_recovers_after_expiry() {
    let mut c = TidCache::<3>::new(2_000);
    for (i, now) in [(1, 0), (2, 500), (3, 1_000)] {
        assert_eq!(c.check_and_insert(tid(i), now), Ok(()));
    }
    assert_eq!(c.live_len(1_000), 3);
    assert_eq!(c.check_and_insert(tid(4), 1_500), Err(ReplayError::Full));
    assert_eq!(c.check_and_insert(tid(5), 2_000), Err(ReplayError::Full));
    // Nothing was evicted: the originals are still replays, the refused ones were not stored.
    for i in 1..=3 {
        assert_eq!(c.check_and_insert(tid(i), 2_000), Err(ReplayError::Replay));
    }
    assert!(!c.contains(&tid(4), 2_000));
    // tid 1 expires after 2000 ms: exactly one slot comes back.
    assert_eq!(c.check_and_insert(tid(4), 2_001), Ok(()));
    assert_eq!(c.check_and_insert(tid(5), 2_001), Err(ReplayError::Full));
    assert_eq!(c.check_and_insert(tid(2), 2_001), Err(ReplayError::Replay));
    // Much later, everything has expired.
    for i in 10..13 {
        assert_eq!(c.check_and_insert(tid(i), 10_000), Ok(()));
    }
    assert_eq!(c.check_and_insert(tid(13), 10_000), Err(ReplayError::Full));
}

#[test]
fn a_replay_is_reported_even_when_full() {
    let mut c = TidCache::<1>::new(100);
    c.check_and_insert(tid(1), 0).unwrap();
    assert_eq!(c.check_and_insert(tid(1), 50), Err(ReplayError::Replay));
    assert_eq!(c.check_and_insert(tid(2), 50), Err(ReplayError::Full));
}

#[test]
fn zero_capacity_and_clear() {
    let mut z = TidCache::<0>::default();
    assert_eq!(z.capacity(), 0);
    assert_eq!(z.check_and_insert(tid(1), 0), Err(ReplayError::Full));

    let mut c = TidCache::<2>::default();
    c.check_and_insert(tid(1), 0).unwrap();
    c.clear();
    assert_eq!(c.live_len(0), 0);
    assert_eq!(c.check_and_insert(tid(1), 0), Ok(()));
}

#[test]
fn extreme_times_do_not_panic() {
    let mut c = TidCache::<2>::new(u64::MAX);
    c.check_and_insert(tid(1), u64::MAX).unwrap();
    assert_eq!(c.check_and_insert(tid(1), 0), Err(ReplayError::Replay));
    let mut c = TidCache::<2>::new(0);
    c.check_and_insert(tid(1), 0).unwrap();
    assert_eq!(c.check_and_insert(tid(1), 0), Err(ReplayError::Replay));
    assert_eq!(c.check_and_insert(tid(1), 1), Ok(()));
    assert_eq!(c.check_and_insert(tid(2), u64::MAX), Ok(()));
}

/// Against a naive model (every accepted insert, forever): same verdict on every step, and no
/// accepted tid is ever accepted again inside its window.
#[test]
fn tid_cache_matches_model() {
    const N: usize = 8;
    const WINDOW: u64 = 300;
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut c = TidCache::<N>::new(WINDOW);
        let mut accepted: std::vec::Vec<(Tid, u64)> = std::vec::Vec::new();
        let mut now = 0u64;
        for _ in 0..2_000 {
            now += rng.below(60);
            let t = tid(rng.below(24) as u32);
            let live = |&(_, at): &(Tid, u64)| now - at <= WINDOW;
            let expected = if accepted.iter().filter(|e| live(e)).any(|(x, _)| *x == t) {
                Err(ReplayError::Replay)
            } else if accepted.iter().filter(|e| live(e)).count() >= N {
                Err(ReplayError::Full)
            } else {
                Ok(())
            };
            assert_eq!(c.check_and_insert(t, now), expected, "seed {seed} at {now}");
            if expected.is_ok() {
                accepted.push((t, now));
            }
            assert_eq!(c.live_len(now), accepted.iter().filter(|e| live(e)).count());
        }
    }
}

// ---- CounterTable ----

#[test]
fn counters_are_monotonic_per_sender() {
    let mut t = CounterTable::<4>::new();
    let a = sender(1);
    assert!(t.is_empty());
    assert_eq!(t.check(&a, &E, 0), Ok(()));
    t.accept(a, E, 5, 100).unwrap();
    assert_eq!(t.last_counter(&a), Some((E, 5)));
    assert_eq!(t.last_seen(&a), Some(100));
    assert_eq!(t.check(&a, &E, 5), Err(ReplayError::Stale));
    assert_eq!(t.check(&a, &E, 4), Err(ReplayError::Stale));
    assert_eq!(t.check(&a, &E, 0), Err(ReplayError::Stale));
    assert_eq!(t.accept(a, E, 5, 200), Err(ReplayError::Stale));
    assert_eq!(t.last_seen(&a), Some(100));
    assert_eq!(t.check(&a, &E, 6), Ok(()));
    // Gaps are fine (lost frames, counters reserved in blocks across reboots).
    t.accept(a, E, 1_000, 300).unwrap();
    assert_eq!(t.accept(a, E, 999, 400), Err(ReplayError::Stale));
    assert_eq!(t.len(), 1);
}

#[test]
fn check_records_nothing() {
    let mut t = CounterTable::<1>::new();
    assert_eq!(t.check(&sender(1), &E, 9), Ok(()));
    assert_eq!(t.last_counter(&sender(1)), None);
    assert_eq!(t.check(&sender(2), &E, 9), Ok(()));
    t.accept(sender(2), E, 9, 0).unwrap();
    assert_eq!(
        t.check(&sender(1), &E, 1),
        Err(ReplayError::UnknownSenderTableFull)
    );
}

#[test]
fn senders_are_independent() {
    let mut t = CounterTable::<4>::new();
    t.accept(sender(1), E, 100, 0).unwrap();
    assert_eq!(t.check(&sender(2), &E, 1), Ok(()));
    t.accept(sender(2), E, 1, 0).unwrap();
    assert_eq!(t.check(&sender(1), &E, 2), Err(ReplayError::Stale));
    assert_eq!(t.check(&sender(2), &E, 2), Ok(()));
    assert_eq!(t.last_counter(&sender(1)), Some((E, 100)));
    assert_eq!(t.last_counter(&sender(2)), Some((E, 1)));
}

#[test]
fn full_table_serves_known_senders_and_refuses_unknown_ones() {
    let mut t = CounterTable::<2>::new();
    t.accept(sender(1), E, 1, 0).unwrap();
    t.accept(sender(2), E, 1, 0).unwrap();
    assert_eq!(t.len(), t.capacity());
    assert_eq!(
        t.check(&sender(3), &E, 1),
        Err(ReplayError::UnknownSenderTableFull)
    );
    assert_eq!(
        t.accept(sender(3), E, 1, 0),
        Err(ReplayError::UnknownSenderTableFull)
    );
    // Known senders still work, and nobody was evicted.
    t.accept(sender(1), E, 2, 1).unwrap();
    t.accept(sender(2), E, 7, 1).unwrap();
    assert_eq!(t.accept(sender(1), E, 1, 2), Err(ReplayError::Stale));
    assert_eq!(t.last_counter(&sender(3)), None);
}

#[test]
fn remove_then_re_add() {
    let mut t = CounterTable::<1>::new();
    t.accept(sender(1), E, 50, 0).unwrap();
    assert_eq!(t.remove(&sender(2)), None);
    assert_eq!(t.remove(&sender(1)), Some((E, 50)));
    assert_eq!(t.remove(&sender(1)), None);
    assert!(t.is_empty());
    // The slot is free for another sender, and a removed sender starts afresh.
    t.accept(sender(2), E, 3, 1).unwrap();
    assert_eq!(t.remove(&sender(2)), Some((E, 3)));
    assert_eq!(t.check(&sender(1), &E, 1), Ok(()));
    t.accept(sender(1), E, 1, 2).unwrap();
    assert_eq!(t.last_counter(&sender(1)), Some((E, 1)));
}

#[test]
fn entries_restore_round_trip() {
    let mut t = CounterTable::<4>::new();
    t.accept(sender(1), E, 10, 0).unwrap();
    t.accept(sender(2), E, 20, 0).unwrap();
    t.accept(sender(3), E, 30, 0).unwrap();
    t.remove(&sender(2));
    let mut saved = [(SenderId([0; 6]), E, 0u64); 4];
    let mut n = 0;
    for (i, e) in t.entries().enumerate() {
        saved[i] = e;
        n += 1;
    }
    assert_eq!(n, 2);

    let mut back = CounterTable::<4>::new();
    back.restore(&saved[..n]).unwrap();
    assert!(back.entries().eq(t.entries()));
    assert_eq!(back.last_seen(&sender(1)), None);
    assert_eq!(back.check(&sender(1), &E, 10), Err(ReplayError::Stale));
    assert_eq!(back.check(&sender(3), &E, 31), Ok(()));
}

#[test]
fn restore_merges_and_never_moves_a_counter_back() {
    let mut t = CounterTable::<3>::new();
    t.accept(sender(1), E, 100, 5).unwrap();
    t.restore(&[
        (sender(1), E, 40),
        (sender(2), E, 7),
        (sender(2), E, 9),
        (sender(2), E, 8),
    ])
    .unwrap();
    assert_eq!(t.last_counter(&sender(1)), Some((E, 100)));
    assert_eq!(t.last_seen(&sender(1)), Some(5));
    assert_eq!(t.last_counter(&sender(2)), Some((E, 9)));
    assert_eq!(t.len(), 2);
    t.restore(&[(sender(1), E, 150)]).unwrap();
    assert_eq!(t.last_counter(&sender(1)), Some((E, 150)));
    // A stored entry of another epoch than the known one is older than what is known.
    t.restore(&[(sender(1), Epoch([9; 12]), 900)]).unwrap();
    assert_eq!(t.last_counter(&sender(1)), Some((E, 150)));
}

#[test]
fn restore_that_does_not_fit_changes_nothing() {
    let mut t = CounterTable::<2>::new();
    t.accept(sender(1), E, 1, 0).unwrap();
    assert_eq!(
        t.restore(&[(sender(1), E, 9), (sender(2), E, 2), (sender(3), E, 3)]),
        Err(ReplayError::UnknownSenderTableFull)
    );
    assert_eq!(t.len(), 1);
    assert_eq!(t.last_counter(&sender(1)), Some((E, 1)));
    // Duplicates count once.
    t.restore(&[(sender(2), E, 2), (sender(2), E, 3), (sender(1), E, 4)])
        .unwrap();
    assert_eq!(t.len(), 2);
}

/// Against a naive model: random senders (more than fit) and counters, accepted only when the
/// model says so; the counter of each sender in the table only ever grows.
#[test]
fn counter_table_matches_model() {
    const N: usize = 5;
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1);
        let mut t = CounterTable::<N>::new();
        let mut model: std::vec::Vec<(SenderId, u64)> = std::vec::Vec::new();
        for step in 0..2_000u64 {
            let s = sender(rng.below(8) as u8);
            if rng.below(50) == 0 {
                let expected = model.iter().position(|(x, _)| *x == s);
                assert_eq!(t.remove(&s), expected.map(|i| (E, model.remove(i).1)));
                continue;
            }
            let c = rng.below(64);
            let expected = match model.iter().find(|(x, _)| *x == s) {
                Some(&(_, last)) if c <= last => Err(ReplayError::Stale),
                Some(_) => Ok(()),
                None if model.len() == N => Err(ReplayError::UnknownSenderTableFull),
                None => Ok(()),
            };
            assert_eq!(t.check(&s, &E, c), expected, "seed {seed} step {step}");
            assert_eq!(t.accept(s, E, c, step), expected);
            if expected.is_ok() {
                match model.iter_mut().find(|(x, _)| *x == s) {
                    Some(e) => e.1 = c,
                    None => model.push((s, c)),
                }
            }
            assert_eq!(t.len(), model.len());
            for &(x, last) in &model {
                assert_eq!(t.last_counter(&x), Some((E, last)));
            }
        }
    }
}

// ---- time windows ----

#[test]
fn central_window_bounds() {
    let now = ts(1_000_000);
    assert!(within(ts(1_000_000), now, CENTRAL_SKEW_MS));
    assert!(within(ts(1_001_000), now, CENTRAL_SKEW_MS));
    assert!(within(ts(999_000), now, CENTRAL_SKEW_MS));
    assert!(!within(ts(1_001_001), now, CENTRAL_SKEW_MS));
    assert!(!within(ts(998_999), now, CENTRAL_SKEW_MS));
    assert!(within(ts(5), ts(5), 0));
    assert!(!within(ts(5), ts(6), 0));
}

#[test]
fn central_window_at_the_ends_of_the_range() {
    let max = Timestamp::MAX.as_millis();
    assert!(within(Timestamp::MAX, ts(max - 1_000), CENTRAL_SKEW_MS));
    assert!(!within(Timestamp::MAX, ts(max - 1_001), CENTRAL_SKEW_MS));
    assert!(within(ts(max - 1_000), Timestamp::MAX, CENTRAL_SKEW_MS));
    assert!(within(Timestamp::ZERO, ts(1_000), CENTRAL_SKEW_MS));
    assert!(!within(Timestamp::ZERO, ts(1_001), CENTRAL_SKEW_MS));
    assert!(within(ts(1_000), Timestamp::ZERO, CENTRAL_SKEW_MS));
    assert!(!within(Timestamp::ZERO, Timestamp::MAX, u64::MAX));
    assert!(!within(Timestamp::MAX, Timestamp::ZERO, u64::MAX));
    assert!(within(Timestamp::MAX, Timestamp::MAX, 0));
    assert!(within(Timestamp::ZERO, ts(u128::from(u64::MAX)), u64::MAX));
}

#[test]
fn adopt_rule() {
    use TimeVerdict::*;
    let last = ts(1_000_000);
    // Normal: the next broadcast, 25-35 s later, close to the estimate.
    assert_eq!(judge_time(ts(1_030_000), Some(last), ts(1_030_200)), Adopt);
    // The same time again: a replay.
    assert_eq!(judge_time(last, Some(last), ts(1_000_500)), Reject);
    // Step bounds: 0 < Δ < 120 000.
    assert_eq!(judge_time(ts(1_000_001), Some(last), ts(1_000_001)), Adopt);
    assert_eq!(judge_time(ts(1_119_999), Some(last), ts(1_119_999)), Adopt);
    assert_eq!(
        judge_time(ts(1_120_000), Some(last), ts(1_120_000)),
        NeedsPing
    );
    // Backwards (rebooted central, or an old broadcast).
    assert_eq!(judge_time(ts(999_999), Some(last), ts(999_999)), NeedsPing);
    // Skew bounds: |ts − estimate| < 1000, both sides.
    assert_eq!(judge_time(ts(1_030_000), Some(last), ts(1_030_999)), Adopt);
    assert_eq!(
        judge_time(ts(1_030_000), Some(last), ts(1_031_000)),
        NeedsPing
    );
    assert_eq!(judge_time(ts(1_030_000), Some(last), ts(1_029_001)), Adopt);
    assert_eq!(
        judge_time(ts(1_030_000), Some(last), ts(1_029_000)),
        NeedsPing
    );
    // A far-future time (rogue central) is never adopted from a broadcast.
    assert_eq!(
        judge_time(ts(u128::from(u64::MAX)), Some(last), ts(1_030_000)),
        NeedsPing
    );
    // Unknown time: never adopted from a broadcast either.
    assert_eq!(judge_time(ts(1_030_000), None, ts(1_030_000)), NeedsPing);
}

#[test]
fn adopt_rule_at_the_ends_of_the_range() {
    use TimeVerdict::*;
    let max = Timestamp::MAX.as_millis();
    assert_eq!(
        judge_time(Timestamp::MAX, Some(ts(max - 1)), Timestamp::MAX),
        Adopt
    );
    assert_eq!(
        judge_time(Timestamp::MAX, Some(Timestamp::ZERO), Timestamp::MAX),
        NeedsPing
    );
    assert_eq!(
        judge_time(Timestamp::ZERO, Some(Timestamp::MAX), Timestamp::ZERO),
        NeedsPing
    );
    assert_eq!(
        judge_time(Timestamp::MAX, Some(Timestamp::MAX), Timestamp::ZERO),
        Reject
    );
    assert_eq!(judge_time(ts(1), Some(Timestamp::ZERO), ts(0)), Adopt);
    assert_eq!(
        judge_time(Timestamp::ZERO, Some(ts(1)), Timestamp::MAX),
        NeedsPing
    );
}

/// Random pairs over the whole 96-bit range and near its ends: no panic, and the verdicts
/// agree with the definitions computed independently in signed 128-bit arithmetic.
#[test]
fn window_arithmetic_matches_signed_model() {
    let max = Timestamp::MAX.as_millis();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let pick = |rng: &mut Rng| -> u128 {
        let wide = (u128::from(rng.next()) << 32 | u128::from(rng.next())) & max;
        match rng.below(4) {
            0 => wide,
            1 => u128::from(rng.below(3_000)),
            2 => max - u128::from(rng.below(3_000)),
            _ => 1_000_000 + u128::from(rng.below(200_000)),
        }
    };
    for _ in 0..20_000 {
        let (a, b, e) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let w = rng.below(3_000);
        let d = a as i128 - b as i128;
        assert_eq!(within(ts(a), ts(b), w), d.abs() <= i128::from(w));
        let skew = (a as i128 - e as i128).abs();
        let expected = if d == 0 {
            TimeVerdict::Reject
        } else if d > 0 && d < 120_000 && skew < 1_000 {
            TimeVerdict::Adopt
        } else {
            TimeVerdict::NeedsPing
        };
        assert_eq!(judge_time(ts(a), Some(ts(b)), ts(e)), expected);
        assert_eq!(judge_time(ts(a), None, ts(e)), TimeVerdict::NeedsPing);
    }
}

#[test]
fn errors_display() {
    use core::fmt::Write;
    for e in [
        ReplayError::Replay,
        ReplayError::Full,
        ReplayError::Stale,
        ReplayError::UnknownSenderTableFull,
    ] {
        let mut s = std::string::String::new();
        write!(s, "{e}").unwrap();
        assert!(!s.is_empty());
    }
}

#[test]
fn fast_path_needs_a_known_counter_and_a_bounded_step() {
    let mut t = CounterTable::<2>::new();
    let s = sender(1);
    assert_eq!(t.check_fast(&s, &E, 5), Err(ReplayError::UnknownSender));
    assert_eq!(t.accept_fast(s, E, 5, 0), Err(ReplayError::UnknownSender));
    assert!(t.is_empty(), "a refused fast-path frame records nothing");
    assert_eq!(t.record_fresh(s, E, 100, 0), Ok(true));
    assert_eq!(t.check_fast(&s, &E, 100), Err(ReplayError::Stale));
    assert_eq!(t.check_fast(&s, &E, 101), Ok(()));
    assert_eq!(t.check_fast(&s, &E, 100 + MAX_COUNTER_JUMP), Ok(()));
    assert_eq!(
        t.check_fast(&s, &E, 101 + MAX_COUNTER_JUMP),
        Err(ReplayError::TooFarAhead)
    );
    assert_eq!(
        t.check_fast(&s, &E, u64::MAX),
        Err(ReplayError::TooFarAhead)
    );
    t.accept_fast(s, E, 150, 1).unwrap();
    assert_eq!(t.last_counter(&s), Some((E, 150)));
}

#[test]
fn fresh_frames_move_the_counter_up_far_down_or_to_a_new_epoch() {
    let mut t = CounterTable::<1>::new();
    let s = sender(1);
    assert_eq!(t.record_fresh(s, E, 1 << 40, 0), Ok(true));
    // Up, by any step.
    assert_eq!(t.record_fresh(s, E, (1 << 40) + (1 << 30), 1), Ok(true));
    let top = (1 << 40) + (1 << 30);
    // A little down in the same epoch (reordered frames): kept, so the frames between stay
    // refused.
    assert_eq!(t.record_fresh(s, E, top - 1, 2), Ok(false));
    assert_eq!(t.record_fresh(s, E, top - MAX_COUNTER_JUMP, 2), Ok(false));
    assert_eq!(t.last_counter(&s), Some((E, top)));
    assert_eq!(t.record_fresh(s, E, top, 3), Ok(false));
    // Far down in the same epoch: the entry had been pushed up by a forged frame.
    assert_eq!(
        t.record_fresh(s, E, top - MAX_COUNTER_JUMP - 1, 3),
        Ok(true)
    );
    assert_eq!(t.last_counter(&s), Some((E, top - MAX_COUNTER_JUMP - 1)));
    // A new epoch (the sender lost its counters and counts from 0 again): recorded.
    let new = Epoch([2; 12]);
    assert_eq!(t.record_fresh(s, new, 0, 4), Ok(true));
    assert_eq!(t.last_counter(&s), Some((new, 0)));
    // The fast path now takes the new epoch only: no frame of the old one, however high.
    assert_eq!(t.check_fast(&s, &new, 1), Ok(()));
    assert_eq!(t.check_fast(&s, &E, top + 1), Err(ReplayError::OtherEpoch));
    assert_eq!(
        t.accept_fast(s, E, top + 1, 5),
        Err(ReplayError::OtherEpoch)
    );
    assert_eq!(t.last_counter(&s), Some((new, 0)));
    // A full table refuses a new sender; the caller still takes its fresh frame.
    assert_eq!(
        t.record_fresh(sender(2), E, 9, 5),
        Err(ReplayError::UnknownSenderTableFull)
    );
}
