//! The flow meter model through the `PulseCounter` edge: exact pulse accrual, the PCNT filter
//! clamp, noise and its removal by the filter, over-range bursts, faults.

use hearth_drivers::pulses::{PulseCounter, PCNT_FILTER_MAX_NS};
use hearth_simchips::{FlowFault, FlowMeter, SimClock};

const SECOND_NS: u64 = 1_000_000_000;

#[test]
fn pulses_accrue_with_the_rate_and_carry_fractions() {
    let clock = SimClock::manual();
    let mut meter = FlowMeter::new(clock.clone(), 1);
    assert_eq!(meter.take(), Ok(0));
    // 30 L/min at 4.8 pulses/s per L/min = 144 pulses/s.
    meter.set_rate(144.0);
    clock.advance_ns(SECOND_NS);
    assert_eq!(meter.take(), Ok(144));
    meter.set_rate(2.5);
    let mut total = 0;
    for _ in 0..10 {
        clock.advance_ns(SECOND_NS);
        total += meter.take().unwrap();
    }
    assert_eq!(total, 25);
    // Counting continues between reads; taking clears.
    clock.advance_ns(4 * SECOND_NS);
    assert_eq!(meter.pending(), 10);
    assert_eq!(meter.take(), Ok(10));
    assert_eq!(meter.take(), Ok(0));
}

#[test]
fn the_filter_is_clamped_to_the_pcnt_limit() {
    let clock = SimClock::manual();
    let mut meter = FlowMeter::new(clock.clone(), 1);
    let f = meter.set_glitch_filter_ns(1_736_000);
    assert!(f.clamped());
    assert_eq!(f.applied_ns, PCNT_FILTER_MAX_NS);
    assert_eq!(meter.filter(), f);
    // Real pulses at 144/s are 3.5 ms wide: they pass the 12.8 µs filter.
    meter.set_rate(144.0);
    clock.advance_ns(SECOND_NS);
    assert_eq!(meter.take(), Ok(144));
}

#[test]
fn noise_counts_without_a_filter_and_is_removed_by_one() {
    let clock = SimClock::manual();
    let mut meter = FlowMeter::new(clock.clone(), 9);
    meter.set_fault("noisy".parse().unwrap());
    meter.set_rate(10.0);
    clock.advance_ns(SECOND_NS);
    let noisy = meter.take().unwrap();
    assert!((110..1010).contains(&noisy), "{noisy}");
    meter.set_glitch_filter_ns(5_000);
    clock.advance_ns(SECOND_NS);
    assert_eq!(meter.take(), Ok(10));
}

#[test]
fn noise_is_reproducible_from_the_seed() {
    let run = |seed| {
        let clock = SimClock::manual();
        let mut meter = FlowMeter::new(clock.clone(), seed);
        meter.set_fault(FlowFault::Noisy);
        (0..5)
            .map(|_| {
                clock.advance_ns(SECOND_NS);
                meter.take().unwrap()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(4), run(4));
    assert_ne!(run(4), run(5));
}

#[test]
fn faults_bursts_and_the_16_bit_counter() {
    let clock = SimClock::manual();
    let mut meter = FlowMeter::new(clock.clone(), 1);
    meter.set_rate(50.0);
    meter.set_fault(FlowFault::ReadFails);
    clock.advance_ns(SECOND_NS);
    assert!(meter.take().is_err());
    meter.set_fault(FlowFault::None);
    assert_eq!(meter.take(), Ok(50));
    meter.set_fault(FlowFault::Stuck);
    clock.advance_ns(SECOND_NS);
    assert_eq!(meter.take(), Ok(0));
    meter.set_fault(FlowFault::None);
    meter.inject(1000);
    assert_eq!(meter.take(), Ok(1000));
    meter.inject(100_000);
    assert_eq!(meter.take(), Ok(32_767));
    assert!("broken".parse::<FlowFault>().unwrap_err().contains("noisy"));
    assert_eq!("Read-Fails".parse::<FlowFault>(), Ok(FlowFault::ReadFails));
    meter.set_rate(f64::NAN);
    assert_eq!(meter.rate(), 0.0);
}
