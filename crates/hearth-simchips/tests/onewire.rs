//! The real 1-Wire ROM search and DS18x20 driver of `hearth-drivers`, unchanged, against the
//! slot-level bus model: every device found, exact temperatures on the 1/16 °C grid for both
//! families, the power-on value, conversion timing and every fault.

mod common;

use common::{block_on, Rng};
use hearth_drivers::ds18x20::{self, Family, Reading};
use hearth_drivers::onewire::{self, search_all, Error, Rom, Search};
use hearth_simchips::onewire::CONVERSION_US;
use hearth_simchips::{OneWireFault, OneWireSimBus, SensorKind, SimClock, SimOneWireError};

fn bus() -> (OneWireSimBus, SimClock) {
    let clock = SimClock::manual();
    (OneWireSimBus::new(clock.clone(), 0x1234), clock)
}

fn convert(bus: &mut OneWireSimBus, clock: &SimClock) {
    block_on(ds18x20::start_conversion_all(bus)).expect("conversion started");
    clock.advance_ns(CONVERSION_US * 1_000);
}

fn read(bus: &mut OneWireSimBus, rom: &Rom) -> Result<Reading, Error<SimOneWireError>> {
    block_on(ds18x20::read_temperature(bus, rom))
}

#[test]
fn search_finds_every_device_with_valid_roms() {
    let (mut bus, _) = bus();
    let mut added: Vec<Rom> = (0..6).map(|_| bus.add(SensorKind::Ds18b20)).collect();
    added.extend((0..4).map(|_| bus.add(SensorKind::Ds18s20)));
    // Two serials differing in one bit only.
    added.push(bus.add_serial(SensorKind::Ds18b20, [1, 0, 0, 0, 0, 0]));
    added.push(bus.add_serial(SensorKind::Ds18b20, [3, 0, 0, 0, 0, 0]));
    let mut found = [Rom::default(); 16];
    let report = block_on(search_all(&mut bus, &mut found)).unwrap();
    assert_eq!((report.found, report.crc_errors), (12, 0));
    let mut found = found[..12].to_vec();
    for rom in &found {
        assert!(rom.crc_ok());
        assert!(Family::of(rom).is_some());
    }
    found.sort();
    added.sort();
    assert_eq!(found, added);
}

#[test]
fn search_order_is_by_rom_bits_lsb_first_and_read_rom_works_alone() {
    let (mut bus, _) = bus();
    let only = bus.add(SensorKind::Ds18s20);
    assert_eq!(block_on(onewire::read_rom(&mut bus)), Ok(only));
    let mut search = Search::new();
    assert_eq!(block_on(search.next(&mut bus)), Ok(Some(only)));
    assert!(search.is_done());
    assert_eq!(block_on(search.next(&mut bus)), Ok(None));

    let second = bus.add(SensorKind::Ds18b20);
    // Two devices answering Read ROM at once collide (wired-AND): the CRC catches it.
    assert!(block_on(onewire::read_rom(&mut bus)).is_err());
    let mut found = [Rom::default(); 2];
    block_on(search_all(&mut bus, &mut found)).unwrap();
    let key = |r: &Rom| u64::from_le_bytes(r.0).reverse_bits();
    let (a, b) = if key(&only) < key(&second) {
        (only, second)
    } else {
        (second, only)
    };
    assert_eq!(found, [a, b]);
}

#[test]
fn before_the_first_conversion_both_families_read_85_power_on() {
    let (mut bus, _) = bus();
    let b = bus.add(SensorKind::Ds18b20);
    let s = bus.add(SensorKind::Ds18s20);
    for rom in [b, s] {
        assert_eq!(
            read(&mut bus, &rom),
            Ok(Reading {
                celsius: 85.0,
                power_on: true
            })
        );
    }
    // The DS18B20's power-up scratchpad is the well-known one.
    assert_eq!(
        block_on(ds18x20::read_scratchpad(&mut bus, &b)),
        Ok([0x50, 0x05, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10, 0x1C])
    );
}

#[test]
fn exact_temperatures_on_the_sixteenth_grid() {
    let (mut bus, clock) = bus();
    let b = bus.add(SensorKind::Ds18b20);
    let s = bus.add(SensorKind::Ds18s20);
    let mut temps = vec![
        0.0, 25.0625, 21.3, -0.5, -10.125, -25.0625, 125.0, -55.0, 85.0625, 84.9375, 0.03,
    ];
    let mut rng = Rng::new(99);
    temps.extend((0..100).map(|_| f64::from(rng.range(-55.0, 125.0))));
    for t in temps {
        bus.set_all_temperatures(t);
        convert(&mut bus, &clock);
        let expected = ((t * 16.0).round() / 16.0) as f32;
        for rom in [b, s] {
            let r = read(&mut bus, &rom).expect("reading");
            assert_eq!(r.celsius, expected, "{t} °C on {rom}");
            assert!(!r.power_on);
        }
    }
    // Out of range: the chips saturate at their limits.
    bus.set_all_temperatures(300.0);
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &b).map(|r| r.celsius), Ok(125.0));
    // A real 85 °C reads like the power-on value: flagged, the caller decides.
    bus.set_all_temperatures(85.0);
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &s).map(|r| r.power_on), Ok(true));
}

#[test]
fn the_register_changes_only_when_the_conversion_is_done() {
    let (mut bus, clock) = bus();
    let b = bus.add(SensorKind::Ds18b20);
    bus.set_temperature(&b, 30.0);
    convert(&mut bus, &clock);
    bus.set_temperature(&b, 10.0);
    block_on(ds18x20::start_conversion_all(&mut bus)).unwrap();
    assert_eq!(
        read(&mut bus, &b).map(|r| r.celsius),
        Ok(30.0),
        "still converting"
    );
    clock.advance_ns(CONVERSION_US * 1_000);
    assert_eq!(read(&mut bus, &b).map(|r| r.celsius), Ok(10.0));
    assert_eq!(bus.conversions(&b), 2);

    // 9 bits: 93.75 ms, ½ °C steps.
    assert!(bus.set_resolution(&b, 9));
    bus.set_temperature(&b, 20.3);
    block_on(ds18x20::start_conversion_all(&mut bus)).unwrap();
    clock.advance_ns(CONVERSION_US * 1_000 / 8);
    assert_eq!(read(&mut bus, &b).map(|r| r.celsius), Ok(20.0));
}

#[test]
fn per_device_faults() {
    let (mut bus, clock) = bus();
    let a = bus.add(SensorKind::Ds18b20);
    let b = bus.add(SensorKind::Ds18s20);
    bus.set_all_temperatures(22.5);
    convert(&mut bus, &clock);

    bus.set_fault(&a, OneWireFault::Garbage);
    assert_eq!(read(&mut bus, &a), Err(Error::Crc));
    assert_eq!(
        read(&mut bus, &b).map(|r| r.celsius),
        Ok(22.5),
        "others unaffected"
    );

    bus.set_fault(&a, OneWireFault::ReadFails);
    assert_eq!(read(&mut bus, &a), Err(Error::NoResponse), "all ones");
    let mut found = [Rom::default(); 4];
    let report = block_on(search_all(&mut bus, &mut found)).unwrap();
    assert_eq!((report.found, found[0]), (1, b));
    bus.set_fault(&a, OneWireFault::None);
    assert_eq!(
        read(&mut bus, &a).map(|r| r.celsius),
        Ok(22.5),
        "kept its state"
    );

    bus.set_fault(&a, OneWireFault::Absent);
    assert_eq!(read(&mut bus, &a), Err(Error::NoResponse));
    bus.set_fault(&b, OneWireFault::Absent);
    assert_eq!(read(&mut bus, &a), Err(Error::NoPresence), "nobody left");
    assert_eq!(
        block_on(ds18x20::start_conversion_all(&mut bus)),
        Err(Error::NoPresence)
    );
    bus.set_fault(&a, OneWireFault::None);
    assert_eq!(
        read(&mut bus, &a).map(|r| (r.celsius, r.power_on)),
        Ok((85.0, true)),
        "plugged back in: power-on value"
    );
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &a).map(|r| r.celsius), Ok(22.5));

    bus.set_fault(&b, OneWireFault::None);
    bus.set_fault(&b, OneWireFault::PowerOn);
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &b).map(|r| r.power_on), Ok(true));
    assert_eq!(read(&mut bus, &a).map(|r| r.power_on), Ok(false));
    assert_eq!(bus.fault(&b), Some(OneWireFault::PowerOn));
}

#[test]
fn bus_faults_override_the_devices() {
    let (mut bus, clock) = bus();
    let a = bus.add(SensorKind::Ds18b20);
    let b = bus.add(SensorKind::Ds18b20);
    bus.set_all_temperatures(-3.25);
    convert(&mut bus, &clock);

    bus.set_bus_fault(OneWireFault::ReadFails);
    let mut found = [Rom::default(); 4];
    assert_eq!(block_on(search_all(&mut bus, &mut found)).unwrap().found, 0);
    assert_eq!(read(&mut bus, &a), Err(Error::NoPresence));

    bus.set_bus_fault(OneWireFault::Garbage);
    assert_eq!(read(&mut bus, &a), Err(Error::Crc));
    assert_eq!(read(&mut bus, &b), Err(Error::Crc));

    bus.set_bus_fault(OneWireFault::PowerOn);
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &b).map(|r| r.power_on), Ok(true));

    bus.set_bus_fault(OneWireFault::Absent);
    assert_eq!(read(&mut bus, &a), Err(Error::NoPresence));
    bus.set_bus_fault(OneWireFault::None);
    assert_eq!(bus.bus_fault(), OneWireFault::None);
    convert(&mut bus, &clock);
    assert_eq!(read(&mut bus, &a).map(|r| r.celsius), Ok(-3.25));

    bus.set_shorted(true);
    assert_eq!(
        read(&mut bus, &a),
        Err(Error::Bus(SimOneWireError::Shorted))
    );
    assert!(read(&mut bus, &a).unwrap_err().is_bus());
    bus.set_shorted(false);
    assert!(bus.remove(&a));
    assert_eq!(bus.roms(), vec![b]);
}

#[test]
fn the_thermometers_facade_is_the_same_driver() {
    use ds18x20::Thermometers;
    let (mut bus, clock) = bus();
    let a = bus.add(SensorKind::Ds18s20);
    bus.set_temperature(&a, 19.8);
    let mut roms = [Rom::default(); 2];
    assert_eq!(
        block_on(Thermometers::search(&mut bus, &mut roms))
            .unwrap()
            .found,
        1
    );
    block_on(Thermometers::start_conversion_all(&mut bus)).unwrap();
    clock.advance_ns(CONVERSION_US * 1_000);
    assert_eq!(
        block_on(Thermometers::read_temperature(&mut bus, &a)).map(|r| r.celsius),
        Ok(19.8125)
    );
}
