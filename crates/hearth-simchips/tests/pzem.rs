//! The real PZEM-004T driver of `hearth-drivers`, unchanged, against the UART-level meter
//! model: values with the meter's resolutions, the energy counter over simulated time, the
//! split request/complete timing, addressing and every fault.

mod common;

use common::block_on;
use embedded_io_async::Write;
use hearth_drivers::pzem::{Error, Measurement, Pzem, Reply, Request, GENERAL_ADDRESS};
use hearth_simchips::pzem::{BYTE_TIME_US, REPLY_LATENCY_US};
use hearth_simchips::{ChipFault, Mains, PzemModel, PzemUart, SimClock};

/// Long enough for a 25-byte answer (the reference waited 500 ms).
const WAIT_US: u64 = REPLY_LATENCY_US + 26 * BYTE_TIME_US;

fn meter() -> (PzemModel, Pzem<PzemUart>, SimClock) {
    let clock = SimClock::manual();
    let model = PzemModel::new(clock.clone(), 42);
    let pzem = Pzem::new(model.uart());
    (model, pzem, clock)
}

fn exchange(
    pzem: &mut Pzem<PzemUart>,
    clock: &SimClock,
    req: Request,
) -> Result<Reply, Error<core::convert::Infallible>> {
    block_on(pzem.request(req))?;
    clock.advance_ns(WAIT_US * 1_000);
    block_on(pzem.complete())
}

fn measure(pzem: &mut Pzem<PzemUart>, clock: &SimClock) -> Measurement {
    match exchange(pzem, clock, Request::ReadMeasurements) {
        Ok(Reply::Measurement(m)) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_the_mains_with_the_meters_resolutions() {
    let (model, mut pzem, clock) = meter();
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadAddress),
        Ok(Reply::Address(1))
    );
    assert_eq!(pzem.address(), 1);
    for (v, a, pf, hz) in [
        (230.0, 1.5, 0.95, 50.0),
        (218.34, 0.0, 1.0, 49.96),
        (253.7, 9.876, 0.5, 60.04),
        (80.0, 100.0, 0.99, 45.0),
    ] {
        model.set_mains(Mains {
            voltage: v,
            current: a,
            power_factor: pf,
            frequency: hz,
            voltage_noise: 0.0,
        });
        let m = measure(&mut pzem, &clock);
        let round = |x: f64, r: f64| ((x / r).round() * r) as f32;
        assert!((m.voltage_v - round(v, 0.1)).abs() < 1e-3, "{m:?}");
        assert!((m.current_a - round(a, 0.001)).abs() < 1e-4, "{m:?}");
        assert!((m.power_w - round(v * a * pf, 0.1)).abs() < 1e-2, "{m:?}");
        assert!((m.frequency_hz - round(hz, 0.1)).abs() < 1e-3, "{m:?}");
        assert!((m.power_factor - round(pf, 0.01)).abs() < 1e-4, "{m:?}");
        // 80 V × 100 A × 0.99 = 7920 W < 23 kW: no alarm.
        assert!(!m.alarm);
    }
}

#[test]
fn energy_accumulates_with_simulated_time_and_resets() {
    let (model, mut pzem, clock) = meter();
    model.set_mains(Mains {
        voltage: 230.0,
        current: 10.0,
        power_factor: 0.8,
        ..Mains::default()
    });
    // 1840 W for 30 min = 920 Wh.
    clock.advance_ns(1_800 * 1_000_000_000);
    let m = measure(&mut pzem, &clock);
    assert_eq!(m.energy_wh, 920);
    assert!((m.power_w - 1840.0).abs() < 0.01);
    // A counter beyond 16 bits: 100 kWh + 920 Wh.
    model.set_energy_wh(100_920.4);
    assert_eq!(measure(&mut pzem, &clock).energy_wh, 100_920);
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ResetEnergy),
        Ok(Reply::EnergyReset)
    );
    assert_eq!(measure(&mut pzem, &clock).energy_wh, 0);
}

#[test]
fn alarm_above_the_threshold() {
    let (model, mut pzem, clock) = meter();
    model.set_mains(Mains {
        voltage: 240.0,
        current: 100.0,
        power_factor: 1.0,
        ..Mains::default()
    });
    let m = measure(&mut pzem, &clock);
    assert!(m.alarm, "24 kW > 23 kW");
    assert!((m.current_a - 100.0).abs() < 1e-3);
}

#[test]
fn the_answer_takes_time_and_complete_does_not_wait() {
    let (_model, mut pzem, clock) = meter();
    block_on(pzem.request(Request::ReadMeasurements)).unwrap();
    // Immediately: nothing yet, and no waiting.
    assert_eq!(block_on(pzem.complete()), Err(Error::NoResponse));
    // Half-way through the answer: a truncated frame.
    block_on(pzem.request(Request::ReadMeasurements)).unwrap();
    clock.advance_ns((REPLY_LATENCY_US + 10 * BYTE_TIME_US) * 1_000);
    assert!(matches!(
        block_on(pzem.complete()),
        Err(Error::Length {
            got: 10,
            expected: 25
        })
    ));
    // The rest of that answer is stale by the next request and is discarded.
    clock.advance_ns(WAIT_US * 1_000);
    assert!(matches!(
        exchange(&mut pzem, &clock, Request::ReadMeasurements),
        Ok(Reply::Measurement(_))
    ));
}

#[test]
fn addressing() {
    let (model, mut pzem, clock) = meter();
    model.set_address(0x22);
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadAddress),
        Ok(Reply::Address(0x22))
    );
    assert!(matches!(
        exchange(&mut pzem, &clock, Request::ReadMeasurements),
        Ok(Reply::Measurement(_))
    ));
    // Another meter's address: silence.
    pzem.set_address(0x23);
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadMeasurements),
        Err(Error::NoResponse)
    );
    pzem.set_address(GENERAL_ADDRESS);
    assert!(exchange(&mut pzem, &clock, Request::ReadMeasurements).is_ok());
}

#[test]
fn malformed_requests_are_ignored_or_refused() {
    let (model, pzem, clock) = meter();
    let mut uart = pzem.release();
    let before = model.requests();
    // Bad CRC: ignored.
    block_on(uart.write_all(&[0x01, 0x04, 0, 0, 0, 10, 0x00, 0x00])).unwrap();
    assert_eq!(model.requests(), before);
    // Registers beyond 0x0009: illegal data address.
    let mut raw = uart;
    let req = hearth_drivers::pzem::frame(0x01, 0x04, 0x0008, 5);
    block_on(raw.write_all(&req)).unwrap();
    clock.advance_ns(WAIT_US * 1_000);
    let mut buf = [0u8; 8];
    let n = block_on(embedded_io_async::Read::read(&mut raw, &mut buf)).unwrap();
    assert_eq!(n, 5);
    assert_eq!(&buf[..3], &[0x01, 0x84, 0x02]);
    assert!(hearth_drivers::pzem::crc_ok(&buf[..5]));
}

#[test]
fn faults() {
    let (model, mut pzem, clock) = meter();
    model.set_fault("absent".parse().unwrap());
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadAddress),
        Err(Error::NoResponse)
    );
    model.set_fault("readfails".parse().unwrap());
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadMeasurements),
        Err(Error::Exception {
            function: 0x84,
            code: 4
        })
    );
    model.set_fault(ChipFault::Garbage);
    for _ in 0..20 {
        assert_eq!(
            exchange(&mut pzem, &clock, Request::ReadMeasurements),
            Err(Error::Crc)
        );
    }
    // Unpowered: below 80 V the meter is silent.
    model.set_fault(ChipFault::None);
    model.set_voltage(40.0);
    assert_eq!(
        exchange(&mut pzem, &clock, Request::ReadMeasurements),
        Err(Error::NoResponse)
    );
    model.set_voltage(229.9);
    let m = measure(&mut pzem, &clock);
    assert!((m.voltage_v - 229.9).abs() < 1e-3);
}

#[test]
fn noise_is_bounded_and_deterministic_per_seed() {
    let run = |seed| {
        let clock = SimClock::manual();
        let model = PzemModel::new(clock.clone(), seed);
        model.set_voltage_noise(1.0);
        let mut pzem = Pzem::new(model.uart());
        (0..20)
            .map(|_| measure(&mut pzem, &clock).voltage_v)
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    assert!(a.iter().all(|v| (228.9..=231.1).contains(v)), "{a:?}");
}
