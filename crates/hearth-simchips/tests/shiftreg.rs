//! The real 74HC595/74HC165 driver of `hearth-drivers`, unchanged, clocking the edge-level
//! model of a Dingtian board's chains: outputs latched and enabled only by a transfer, inputs
//! read in wire order, wide chains, and the faults.

mod common;

use common::{block_on, Rng};
use hearth_drivers::shiftreg::{Error, Lines, NoPin, ShiftRegisters};
use hearth_simchips::shiftreg::{Line, ShiftRegFault, ShiftRegModel, SrOut, SrQh};
use hearth_simchips::{SimClock, SimDelay};

type Driver = ShiftRegisters<SrOut, SrOut, SrOut, SrOut, SrQh, SimDelay>;

fn board(bits: u8) -> (ShiftRegModel, Driver, SimClock) {
    let clock = SimClock::manual();
    let model = ShiftRegModel::new(bits, bits, 3);
    let driver = ShiftRegisters::new(
        Lines {
            oe: model.pin(Line::Oe),
            latch: model.pin(Line::Latch),
            clock: model.pin(Line::Clock),
            ser: model.pin(Line::Ser),
            qh: model.qh(),
        },
        clock.delay(),
        bits,
        bits,
    );
    (model, driver, clock)
}

#[test]
fn outputs_stay_off_until_the_first_transfer_then_follow_it() {
    let (model, mut sr, clock) = board(8);
    assert!(!model.enabled());
    assert_eq!(model.outputs(), 0);
    sr.rest().unwrap();
    assert!(!model.enabled(), "resting does not enable the outputs");
    let levels = block_on(sr.transfer(0b1010_0001)).unwrap();
    assert!(model.enabled());
    assert_eq!(model.outputs(), 0b1010_0001);
    assert!(model.output(0) && !model.output(1) && model.output(7));
    assert_eq!(levels, 0xFF, "idle Dingtian inputs are high");
    assert_eq!(model.edges(), (8, 1));
    // 1 µs before and 2 µs per bit.
    assert_eq!(clock.now_us(), 17);
    block_on(sr.transfer(0)).unwrap();
    assert_eq!(model.outputs(), 0);
}

#[test]
fn every_input_pattern_reads_back_and_outputs_are_not_disturbed() {
    let (model, mut sr, _) = board(8);
    let mut rng = Rng::new(99);
    for _ in 0..200 {
        let levels = (rng.next_u64() & 0xFF) as u32;
        let out = (rng.next_u64() & 0xFF) as u32;
        model.set_input_levels(levels);
        assert_eq!(block_on(sr.transfer(out)), Ok(levels));
        assert_eq!(model.outputs(), out);
    }
    model.set_input_level(3, false);
    model.set_input_levels(0xFF);
    model.set_input_level(3, false);
    assert_eq!(model.input_levels(), 0xF7);
    assert_eq!(block_on(sr.transfer(0)), Ok(0xF7));
}

#[test]
fn a_32_bit_chain_and_a_chain_without_inputs() {
    let (model, mut sr, _) = board(32);
    model.set_input_levels(0x8000_0001);
    assert_eq!(block_on(sr.transfer(0xDEAD_BEEF)), Ok(0x8000_0001));
    assert_eq!(model.outputs(), 0xDEAD_BEEF);
    // Outputs only: `QH` not connected.
    let model = ShiftRegModel::new(16, 0, 1);
    let mut sr = ShiftRegisters::new(
        Lines {
            oe: model.pin(Line::Oe),
            latch: model.pin(Line::Latch),
            clock: model.pin(Line::Clock),
            ser: model.pin(Line::Ser),
            qh: NoPin,
        },
        SimClock::manual().delay(),
        16,
        0,
    );
    assert_eq!(block_on(sr.transfer(0x8001)), Ok(0));
    assert_eq!(model.outputs(), 0x8001);
}

#[test]
fn faults_show_as_the_driver_would_see_them() {
    let (model, mut sr, _) = board(8);
    model.set_input_levels(0x0F);
    model.set_fault(ShiftRegFault::Absent);
    assert_eq!(block_on(sr.transfer(0xFF)), Ok(0xFF), "QH floats high");
    assert_eq!(model.outputs(), 0, "no relay turns on");
    model.set_fault(ShiftRegFault::ReadFails);
    assert!(matches!(block_on(sr.transfer(1)), Err(Error::Pin(_))));
    model.set_fault(ShiftRegFault::Garbage);
    let reads: Vec<u32> = (0..8).map(|_| block_on(sr.transfer(1)).unwrap()).collect();
    assert!(reads.iter().any(|&r| r != 0x0F), "{reads:x?}");
    // Deterministic under the seed.
    let (model2, mut sr2, _) = board(8);
    model2.set_fault(ShiftRegFault::Garbage);
    let again: Vec<u32> = (0..8).map(|_| block_on(sr2.transfer(1)).unwrap()).collect();
    assert_eq!(reads, again);
    model.set_fault(ShiftRegFault::None);
    assert_eq!(block_on(sr.transfer(1)), Ok(0x0F));
    assert_eq!(model.outputs(), 1);
}

#[test]
fn fault_words_parse() {
    for (word, fault) in [
        ("ok", ShiftRegFault::None),
        ("NONE", ShiftRegFault::None),
        ("absent", ShiftRegFault::Absent),
        ("read-fails", ShiftRegFault::ReadFails),
        (" garbage ", ShiftRegFault::Garbage),
    ] {
        assert_eq!(word.parse::<ShiftRegFault>(), Ok(fault), "{word}");
        assert_eq!(fault.name().parse::<ShiftRegFault>(), Ok(fault));
    }
    let e = "stuck".parse::<ShiftRegFault>().unwrap_err();
    assert!(e.contains("'stuck'") && e.contains("readfails"), "{e}");
}
