//! The real HX711 driver of `hearth-drivers`, unchanged, clocking the bit-level chip model:
//! exact raw values, the 24-bit limits, faults, power-down and recovery from a cancelled read.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Waker};

use common::{block_on, Rng};
use hearth_drivers::hx711::{Error, Hx711, SETTLING_TIME_MS};
use hearth_simchips::hx711::{CONVERSION_PERIOD_US, UNSTABLE_SPIKE_KG};
use hearth_simchips::{Hx711Dout, Hx711Fault, Hx711Model, Hx711Sck, LoadCell, SimClock, SimDelay};

/// Enough for the first conversion after power-up.
const FIRST_TIMEOUT_MS: u32 = SETTLING_TIME_MS + 100;
/// Enough for the next conversion after a read (100 ms at 10 SPS).
const NEXT_TIMEOUT_MS: u32 = 200;

type Driver = Hx711<Hx711Sck, Hx711Dout, SimDelay>;

fn scale(cell: LoadCell) -> (Hx711Model, Driver, SimClock) {
    let clock = SimClock::manual();
    let model = Hx711Model::new(clock.clone(), cell, 7);
    let driver = Hx711::new(model.sck(), model.dout(), clock.delay());
    (model, driver, clock)
}

#[test]
fn exact_raw_values_for_noise_free_loads() {
    // Raw = load: every 24-bit value is reachable, including both limits.
    let (model, mut hx, _clock) = scale(LoadCell::exact(0, 1.0));
    block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled");
    let mut values = vec![
        0, 1, -1, 2, -2, 0x55_5555, -0x55_5556, 8_388_607, -8_388_608, 8_388_606, -8_388_607,
        0x40_0000, -0x40_0000,
    ];
    let mut rng = Rng::new(0x4711);
    values.extend((0..300).map(|_| (rng.next_u64() as u32 & 0xFF_FFFF) as i32 - 0x80_0000));
    for raw in values {
        model.set_load_kg(f64::from(raw));
        assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(raw), "raw {raw}");
    }
}

#[test]
fn exact_raw_values_through_a_calibrated_cell() {
    let (model, mut hx, _clock) = scale(LoadCell::exact(-123_456, 20_000.0));
    block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled");
    for (kg, raw) in [
        (0.0, -123_456),
        (1.0, -103_456),
        (72.35, 1_323_544),
        (-3.5, -193_456),
        (419.6, 8_268_544),
    ] {
        model.set_load_kg(kg);
        assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(raw), "{kg} kg");
    }
}

#[test]
fn out_of_range_loads_saturate() {
    let (model, mut hx, _clock) = scale(LoadCell::exact(0, 1.0));
    block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled");
    model.set_load_kg(9_000_000.0);
    assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(8_388_607));
    model.set_load_kg(-9_000_000.0);
    assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(-8_388_608));
}

#[test]
fn conversions_come_at_10_per_second_and_are_polled_not_spun() {
    let (model, mut hx, clock) = scale(LoadCell::exact(0, 1.0));
    // Not ready during the 400 ms settling time.
    assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));
    // The first wait resets the chip (100 µs power-down pulse), then polls.
    assert_eq!(block_on(hx.wait_ready(300)), Err(Error::NotReady));
    assert_eq!(clock.now_us(), 300_100, "30 polls of 10 ms, nothing more");
    block_on(hx.wait_ready(200)).expect("ready 400 ms after the reset");
    assert_eq!(clock.now_us(), 400_100);

    model.set_load_kg(42.0);
    let before = clock.now_us();
    assert_eq!(block_on(hx.read_raw()), Ok(42));
    let read_us = clock.now_us() - before;
    assert_eq!(read_us, 50, "25 pulses of 1 µs high + 1 µs low");
    assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady), "converting");
    block_on(hx.wait_ready(NEXT_TIMEOUT_MS)).expect("next conversion");
    // The 25th pulse rose 2 µs before the read ended; ready 100 ms later, seen at the next poll.
    let waited_us = clock.now_us() - before - read_us;
    assert!(
        (CONVERSION_PERIOD_US - 2..CONVERSION_PERIOD_US + 10_000).contains(&waited_us),
        "{waited_us}"
    );
    assert_eq!(model.conversions_read(), 1);
}

#[test]
fn absent_chip_is_not_ready_and_recovers() {
    let (model, mut hx, clock) = scale(LoadCell::exact(0, 1.0));
    model.set_fault(Hx711Fault::Absent);
    clock.advance_ns(1_000_000_000);
    assert_eq!(block_on(hx.read(1_000)), Err(Error::NotReady));
    assert_eq!(
        clock.now_us(),
        2_000_100,
        "bounded by the timeout (after the 100 µs reset pulse)"
    );
    assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));

    model.set_fault("ok".parse().expect("fault word"));
    model.set_load_kg(-5.0);
    assert_eq!(
        block_on(hx.wait_ready(100)),
        Err(Error::NotReady),
        "settling"
    );
    assert_eq!(block_on(hx.read(FIRST_TIMEOUT_MS)), Ok(-5));
}

#[test]
fn stuck_low_dout_is_invalid_data() {
    let (model, mut hx, _clock) = scale(LoadCell::exact(0, 1.0));
    block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled");
    model.set_fault(Hx711Fault::ReadFails);
    model.set_load_kg(3.0);
    assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Err(Error::InvalidData));
    assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Err(Error::InvalidData));
    model.set_fault(Hx711Fault::None);
    // The chip saw 25 pulses while it was converting (which set channel A, gain 64); the driver
    // resets it after invalid data, so the first reading after the fault is right.
    assert_eq!(block_on(hx.read(FIRST_TIMEOUT_MS)), Ok(3));
    assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(3));
}

#[test]
fn power_down_then_power_up() {
    let (model, mut hx, clock) = scale(LoadCell::exact(1_000, 1.0));
    model.set_load_kg(10.0);
    assert_eq!(block_on(hx.read(FIRST_TIMEOUT_MS)), Ok(1_010));

    block_on(hx.power_down()).expect("power down");
    assert!(model.is_powered_down());
    // Even after a full conversion period, a powered-down chip has nothing ready.
    clock.advance_ns(3_600_000_000_000);
    assert!(model.is_powered_down());
    assert_eq!(hx.is_ready(), Ok(false));
    assert_eq!(block_on(hx.read_raw()), Err(Error::NotReady));

    block_on(hx.power_up()).expect("power up");
    assert!(!model.is_powered_down());
    let woke_us = clock.now_us();
    assert_eq!(
        block_on(hx.wait_ready(SETTLING_TIME_MS - 10)),
        Err(Error::NotReady)
    );
    block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled after power-up");
    assert_eq!(clock.now_us() - woke_us, 400_000);
    model.set_load_kg(-20.0);
    assert_eq!(block_on(hx.read_raw()), Ok(980));
}

#[test]
fn wait_ready_wakes_a_powered_down_chip() {
    let (model, mut hx, _clock) = scale(LoadCell::exact(0, 1.0));
    block_on(hx.power_down()).expect("power down");
    assert!(model.is_powered_down());
    model.set_load_kg(77.0);
    assert_eq!(block_on(hx.read(FIRST_TIMEOUT_MS)), Ok(77));
}

#[test]
fn noisy_cell_reads_within_the_noise() {
    let cell = LoadCell::default();
    let (model, mut hx, _clock) = scale(cell);
    model.set_load_kg(12.5);
    let truth = f64::from(cell.zero_offset) + cell.counts_per_kg * 12.5;
    let mut sum = 0.0;
    let mut distinct = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let raw = block_on(hx.read(FIRST_TIMEOUT_MS)).expect("read");
        assert!(
            (f64::from(raw) - truth).abs() <= cell.noise_counts + 0.5,
            "{raw}"
        );
        sum += f64::from(raw);
        distinct.insert(raw);
    }
    assert!((sum / 200.0 - truth).abs() < 20.0, "mean {}", sum / 200.0);
    assert!(distinct.len() > 50, "noise varies the readings");
}

#[test]
fn unstable_chip_spikes_every_other_reading() {
    let cell = LoadCell::exact(0, 10_000.0);
    let (model, mut hx, _clock) = scale(cell);
    model.set_load_kg(2.0);
    model.set_fault(Hx711Fault::Unstable);
    let spike = (UNSTABLE_SPIKE_KG * cell.counts_per_kg) as i32;
    for n in 0..24 {
        let raw = block_on(hx.read(FIRST_TIMEOUT_MS)).expect("read");
        if n % 2 == 0 {
            assert_eq!(raw, 20_000, "reading {n}");
        } else {
            assert!(
                raw == 20_000 + spike || raw == 20_000 - spike,
                "reading {n}: {raw}"
            );
        }
    }
}

/// A `SimDelay` that can be told to never finish its `n`-th wait (counting from 0), like a
/// timeout cancelling the driver in the middle of a read.
struct StallingDelay {
    inner: SimDelay,
    calls: usize,
    stall_at: Rc<Cell<Option<usize>>>,
}

impl embedded_hal_async::delay::DelayNs for StallingDelay {
    async fn delay_ns(&mut self, ns: u32) {
        let call = self.calls;
        self.calls += 1;
        if self.stall_at.get() == Some(call) {
            std::future::pending::<()>().await;
        }
        embedded_hal_async::delay::DelayNs::delay_ns(&mut self.inner, ns).await;
    }
}

#[test]
fn a_read_cancelled_half_way_does_not_corrupt_the_next() {
    // Delays of a read: even calls hold PD_SCK high, odd ones low. Stall (then cancel) with the
    // clock left high (the chip then powers down) and with it left low (the chip is left in the
    // middle of shifting out bits).
    for stall_in_read in [10usize, 11, 47, 48] {
        let clock = SimClock::manual();
        let model = Hx711Model::new(clock.clone(), LoadCell::exact(0, 1.0), 3);
        let stall_at = Rc::new(Cell::new(None));
        let delay = StallingDelay {
            inner: clock.delay(),
            calls: 0,
            stall_at: Rc::clone(&stall_at),
        };
        let mut hx = Hx711::new(model.sck(), model.dout(), delay);
        // A bit pattern whose bits differ, so that a shifted read-out would show.
        model.set_load_kg(f64::from(-0x35_A5C3));
        block_on(hx.wait_ready(FIRST_TIMEOUT_MS)).expect("settled");

        // 41 delays so far: the reset pulse and the polls of 10 ms during the settling time.
        assert_eq!(clock.now_us(), 400_100);
        stall_at.set(Some(41 + stall_in_read));
        {
            let mut read = pin!(hx.read_raw());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(read.as_mut().poll(&mut cx).is_pending());
            assert!(read.as_mut().poll(&mut cx).is_pending());
        } // dropped: the read is cancelled
        stall_at.set(None);
        clock.advance_ns(5_000_000);

        // A read without waiting must not deliver the half-read word.
        assert_eq!(
            block_on(hx.read_raw()),
            Err(Error::NotReady),
            "stall {stall_in_read}"
        );
        model.set_load_kg(f64::from(0x12_3456));
        assert_eq!(
            block_on(hx.read(FIRST_TIMEOUT_MS)),
            Ok(0x12_3456),
            "stall {stall_in_read}"
        );
        model.set_load_kg(-1.0);
        assert_eq!(block_on(hx.read(NEXT_TIMEOUT_MS)), Ok(-1));
    }
}
