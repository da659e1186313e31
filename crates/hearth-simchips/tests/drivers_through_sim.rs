//! The real drivers of `hearth-drivers`, unchanged, reading the simulated chips: they must
//! recover the physical truth within the sensors' resolution.

mod common;

use common::{block_on, Rng};
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_async::i2c::I2c;
use hearth_drivers::bme280::{Address, Bme280};
use hearth_drivers::hdc1080::Hdc1080;
use hearth_simchips::{weather_station, Conditions, SimI2cBus};

#[test]
fn hdc1080_reads_the_truth_over_many_conditions() {
    let (bus, weather) = weather_station(1);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    block_on(hdc.init(&mut delay)).expect("init");

    let mut rng = Rng::new(0x4DC1080);
    let (mut worst_t, mut worst_h) = (0.0f32, 0.0f32);
    for _ in 0..500 {
        let truth = Conditions {
            temperature_c: rng.range(-39.0, 124.0),
            humidity_rh: rng.range(0.0, 99.9),
            pressure_pa: 101_325.0,
        };
        weather.set_conditions(truth);
        let t = block_on(hdc.read_temperature(&mut delay)).expect("temperature");
        let h = block_on(hdc.read_humidity(&mut delay)).expect("humidity");
        worst_t = worst_t.max((t - truth.temperature_c).abs());
        worst_h = worst_h.max((h - truth.humidity_rh).abs());
    }
    // 14-bit resolution: 0.010 °C and 0.006 %RH per step.
    assert!(worst_t <= 0.05, "worst temperature error {worst_t}");
    assert!(worst_h <= 0.1, "worst humidity error {worst_h}");
}

#[test]
fn bme280_reads_the_truth_over_many_conditions() {
    let (bus, weather) = weather_station(2);
    let mut delay = bus.clock().delay();
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(bme.init(&mut delay)).expect("init");

    let mut rng = Rng::new(0xB3E280);
    let (mut worst_t, mut worst_p, mut worst_h) = (0.0f32, 0.0f32, 0.0f32);
    for _ in 0..300 {
        let truth = Conditions {
            temperature_c: rng.range(-30.0, 60.0),
            humidity_rh: rng.range(1.0, 99.0),
            pressure_pa: rng.range(30_000.0, 110_000.0),
        };
        weather.set_conditions(truth);
        let m = block_on(bme.measure(&mut delay)).expect("measure");
        worst_t = worst_t.max((m.temperature_c - truth.temperature_c).abs());
        worst_p = worst_p.max((m.pressure_pa - truth.pressure_pa).abs());
        worst_h = worst_h.max((m.humidity_rh - truth.humidity_rh).abs());
    }
    assert!(worst_t <= 0.02, "worst temperature error {worst_t}");
    assert!(worst_p <= 2.0, "worst pressure error {worst_p}");
    assert!(worst_h <= 0.1, "worst humidity error {worst_h}");
}

#[test]
fn both_drivers_follow_the_weather_for_an_hour() {
    let (bus, mut weather) = weather_station(42);
    let clock = bus.clock();
    let mut delay = clock.delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(hdc.init(&mut delay)).expect("hdc init");
    block_on(bme.init(&mut delay)).expect("bme init");

    // One reading every 5 s, as the weather profile does.
    for tick in 0..720u64 {
        let t_ms = tick * 5_000;
        clock.advance_to_us(t_ms * 1_000);
        let truth = weather.advance_to(t_ms);
        let h = block_on(hdc.read_humidity(&mut delay)).expect("humidity");
        let t = block_on(hdc.read_temperature(&mut delay)).expect("temperature");
        let m = block_on(bme.measure(&mut delay)).expect("measure");
        assert!((t - truth.temperature_c).abs() <= 0.05);
        assert!((h - truth.humidity_rh).abs() <= 0.1);
        assert!((m.pressure_pa - truth.pressure_pa).abs() <= 2.0);
        assert!((m.temperature_c - truth.temperature_c).abs() <= 0.02);
    }
}

#[test]
fn hdc1080_refuses_a_read_before_the_conversion_completes() {
    let (mut bus, _weather) = weather_station(3);
    let clock = bus.clock();
    let not_ready = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
    let mut buf = [0u8; 2];

    // Configure 14-bit, one quantity per trigger, then trigger a temperature conversion.
    block_on(bus.write(0x40, &[0x02, 0x00, 0x00])).expect("configure");
    block_on(bus.write(0x40, &[0x00])).expect("trigger");
    let err = block_on(bus.read(0x40, &mut buf)).expect_err("read at once");
    assert_eq!(err.kind, not_ready);
    clock.advance_ns(6_000_000);
    let err = block_on(bus.read(0x40, &mut buf)).expect_err("read after 6 ms");
    assert_eq!(err.kind, not_ready);
    clock.advance_ns(400_000);
    block_on(bus.read(0x40, &mut buf)).expect("read after 6.4 ms (14-bit: 6.35 ms)");

    // A write_read (repeated start, no wait) never sees a finished conversion.
    let err = block_on(bus.write_read(0x40, &[0x01], &mut buf)).expect_err("write_read");
    assert_eq!(err.kind, not_ready);
}

#[test]
fn bme280_driver_survives_a_chip_reset_behind_its_back() {
    let (mut bus, weather) = weather_station(4);
    let mut delay = bus.clock().delay();
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(bme.init(&mut delay)).expect("init");

    // Brown-out: the chip resets and forgets ctrl_hum / ctrl_meas / config.
    block_on(bus.write(0x76, &[0xE0, 0xB6])).expect("reset");
    bus.clock().advance_ns(5_000_000);
    let truth = weather.conditions();
    let m = block_on(bme.measure(&mut delay)).expect("measure after reset");
    assert!(
        (m.humidity_rh - truth.humidity_rh).abs() <= 0.1,
        "{m:?} vs {truth:?}"
    );
    assert!((m.pressure_pa - truth.pressure_pa).abs() <= 2.0);
}

#[test]
fn bme280_at_the_secondary_address() {
    let bus = SimI2cBus::new();
    let ambient = hearth_simchips::Ambient::new(Conditions::default());
    bus.attach(0x77, hearth_simchips::bme280::Bme280Model::new(ambient))
        .expect("attach");
    let mut delay = bus.clock().delay();
    let mut primary = Bme280::new(bus.clone(), Address::Primary);
    assert!(block_on(primary.init(&mut delay)).is_err());
    let mut secondary = Bme280::new(bus.clone(), Address::Secondary);
    block_on(secondary.init(&mut delay)).expect("init at 0x77");
    let m = block_on(secondary.measure(&mut delay)).expect("measure");
    assert!((m.temperature_c - 20.0).abs() <= 0.02);
    assert!(secondary.calibration().is_some());
    let _bus: SimI2cBus = secondary.release();
}
