//! Injected chip faults give the driver errors a profile can act on, and the drivers recover
//! once the fault is cleared.

mod common;

use common::block_on;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use hearth_drivers::bme280::{Address, Bme280, CompensationError};
use hearth_drivers::hdc1080::Hdc1080;
use hearth_drivers::Error;
use hearth_simchips::bme280::{Bme280Model, Trimming};
use hearth_simchips::{parse_sensor_fault, weather_station, Ambient, ChipFault, SimI2cBus};
use hearth_simchips::{Conditions, SimI2cError};

const HDC: u8 = 0x40;
const BME: u8 = 0x76;

fn nack(error: Error<SimI2cError>, source: NoAcknowledgeSource) -> bool {
    matches!(error, Error::Bus(e) if e.kind == ErrorKind::NoAcknowledge(source))
}

/// Applies a control command `sensor <chip> <fault>` the way the simulator's control interface
/// would.
fn command(bus: &SimI2cBus, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [_, chip, fault] = words[..] else {
        panic!("bad command {line}");
    };
    let (address, fault) = parse_sensor_fault(chip, fault).expect("valid command");
    bus.set_fault(address, fault).expect("chip present");
}

#[test]
fn absent_chips_fail_init_and_recover() {
    let (bus, _weather) = weather_station(10);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);

    command(&bus, "sensor hdc1080 absent");
    command(&bus, "sensor bme280 absent");
    assert_eq!(bus.scan(), Vec::<u8>::new());
    let err = block_on(hdc.init(&mut delay)).expect_err("hdc absent");
    assert!(nack(err, NoAcknowledgeSource::Address), "{err}");
    let err = block_on(bme.init(&mut delay)).expect_err("bme absent");
    assert!(nack(err, NoAcknowledgeSource::Address), "{err}");
    // A failed init leaves the driver refusing to measure rather than reading nonsense.
    assert_eq!(
        block_on(hdc.read_temperature(&mut delay)),
        Err(Error::NotInitialized)
    );
    assert_eq!(
        block_on(bme.measure(&mut delay)),
        Err(Error::NotInitialized)
    );

    command(&bus, "sensor hdc1080 ok");
    command(&bus, "sensor bme280 ok");
    block_on(hdc.init(&mut delay)).expect("hdc back");
    block_on(bme.init(&mut delay)).expect("bme back");
    block_on(hdc.read_temperature(&mut delay)).expect("temperature");
    block_on(bme.measure(&mut delay)).expect("measure");
}

#[test]
fn chips_vanishing_after_init_fail_measurements() {
    let (bus, _weather) = weather_station(11);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(hdc.init(&mut delay)).expect("hdc init");
    block_on(bme.init(&mut delay)).expect("bme init");

    bus.set_fault(HDC, ChipFault::Absent).unwrap();
    bus.set_fault(BME, ChipFault::Absent).unwrap();
    let err = block_on(hdc.read_humidity(&mut delay)).expect_err("hdc gone");
    assert!(nack(err, NoAcknowledgeSource::Address));
    let err = block_on(bme.measure(&mut delay)).expect_err("bme gone");
    assert!(nack(err, NoAcknowledgeSource::Address));

    bus.set_fault(HDC, ChipFault::None).unwrap();
    bus.set_fault(BME, ChipFault::None).unwrap();
    block_on(hdc.read_humidity(&mut delay)).expect("hdc back without re-init");
    block_on(bme.measure(&mut delay)).expect("bme back without re-init");
}

#[test]
fn failing_reads_fail_measurements_and_recover() {
    let (bus, weather) = weather_station(12);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(hdc.init(&mut delay)).expect("hdc init");
    block_on(bme.init(&mut delay)).expect("bme init");

    command(&bus, "sensor hdc1080 readfails");
    command(&bus, "sensor bme280 read-fails");
    let err = block_on(hdc.read_temperature(&mut delay)).expect_err("hdc temperature");
    assert!(nack(err, NoAcknowledgeSource::Data), "{err}");
    let err = block_on(hdc.read_humidity(&mut delay)).expect_err("hdc humidity");
    assert!(nack(err, NoAcknowledgeSource::Data));
    let err = block_on(bme.measure(&mut delay)).expect_err("bme measure");
    assert!(nack(err, NoAcknowledgeSource::Data), "{err}");
    // Reads failing also make init fail.
    let mut fresh = Hdc1080::new(bus.clone());
    assert!(block_on(fresh.init(&mut delay)).is_err());

    command(&bus, "sensor hdc1080 ok");
    command(&bus, "sensor bme280 ok");
    let truth = weather.conditions();
    let t = block_on(hdc.read_temperature(&mut delay)).expect("hdc recovered");
    assert!((t - truth.temperature_c).abs() <= 0.05);
    let m = block_on(bme.measure(&mut delay)).expect("bme recovered");
    assert!((m.pressure_pa - truth.pressure_pa).abs() <= 2.0);
}

#[test]
fn garbage_gives_wrong_chip_id_and_recovers() {
    let (bus, _weather) = weather_station(13);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);

    command(&bus, "sensor hdc1080 garbage");
    command(&bus, "sensor bme280 garbage");
    assert_eq!(
        block_on(hdc.init(&mut delay)),
        Err(Error::WrongChipId {
            expected: 0x5449,
            found: 0xFFFF
        })
    );
    assert_eq!(
        block_on(bme.init(&mut delay)),
        Err(Error::WrongChipId {
            expected: 0x60,
            found: 0xFF
        })
    );

    command(&bus, "sensor hdc1080 ok");
    command(&bus, "sensor bme280 ok");
    block_on(hdc.init(&mut delay)).expect("hdc init");
    block_on(bme.init(&mut delay)).expect("bme init");
}

#[test]
fn garbage_after_init_is_detected_not_published() {
    let (bus, _weather) = weather_station(14);
    let mut delay = bus.clock().delay();
    let mut hdc = Hdc1080::new(bus.clone());
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    block_on(hdc.init(&mut delay)).expect("hdc init");
    block_on(bme.init(&mut delay)).expect("bme init");

    bus.set_fault(HDC, ChipFault::Garbage).unwrap();
    bus.set_fault(BME, ChipFault::Garbage).unwrap();
    // 0xFFFF has the always-zero reserved bits set.
    assert_eq!(
        block_on(hdc.read_temperature(&mut delay)),
        Err(Error::InvalidData)
    );
    // Status 0xFF: the measuring bit never clears.
    assert_eq!(block_on(bme.measure(&mut delay)), Err(Error::Timeout));

    bus.set_fault(HDC, ChipFault::None).unwrap();
    bus.set_fault(BME, ChipFault::None).unwrap();
    block_on(hdc.read_temperature(&mut delay)).expect("hdc recovered");
    block_on(bme.measure(&mut delay)).expect("bme recovered");
}

#[test]
fn a_zero_pressure_divisor_is_an_init_error() {
    let bus = SimI2cBus::new();
    let broken = Trimming {
        p1: 0,
        ..Trimming::TYPICAL
    };
    bus.attach(
        BME,
        Bme280Model::with_trimming(Ambient::new(Conditions::default()), broken),
    )
    .unwrap();
    let mut delay = bus.clock().delay();
    let mut bme = Bme280::new(bus.clone(), Address::Primary);
    assert_eq!(
        block_on(bme.init(&mut delay)),
        Err(Error::Compensation(CompensationError::DivisionByZero))
    );
}

#[test]
fn errors_display_clearly() {
    let (bus, _weather) = weather_station(15);
    let mut delay = bus.clock().delay();
    bus.set_fault(HDC, ChipFault::Absent).unwrap();
    let err = block_on(Hdc1080::new(bus.clone()).init(&mut delay)).expect_err("absent");
    let text = err.to_string();
    assert!(text.contains("NoAcknowledge(Address)"), "{text}");
    let text = Error::<SimI2cError>::WrongChipId {
        expected: 0x60,
        found: 0x58,
    }
    .to_string();
    assert_eq!(text, "wrong chip id: expected 0x0060, found 0x0058");
}
