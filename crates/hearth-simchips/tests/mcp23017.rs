//! The MCP23017 driver against the register-level model on the simulated bus.

mod common;

use common::block_on;
use hearth_drivers::mcp23017::{Mcp23017, ADDRESS};
use hearth_drivers::Error;
use hearth_simchips::{ChipFault, Drive, Mcp23017Model, SimI2cBus};

fn setup() -> (SimI2cBus, Mcp23017Model, Mcp23017<SimI2cBus>) {
    let bus = SimI2cBus::new();
    let model = Mcp23017Model::new(3);
    bus.attach(ADDRESS, model.clone()).unwrap();
    let chip = Mcp23017::new(bus.clone(), ADDRESS);
    (bus, model, chip)
}

#[test]
fn init_and_pull_ups_read_the_switches() {
    let (_bus, model, mut chip) = setup();
    // Registers left in a strange state by a previous run are reset.
    model.set_switches(0);
    block_on(chip.init()).unwrap();
    assert_eq!(model.register(0x00), Some(0xFF));
    assert_eq!(model.register(0x0C), Some(0x00));
    block_on(chip.configure(0xFFFF, 0xFFFF)).unwrap();
    assert_eq!(block_on(chip.read_gpio()).unwrap(), 0xFFFF);
    // Switches 0, 1 and 2 wet (port B bits 0..2), switch 9 wet (port A bit 1).
    model.set_switches(0b10_0000_0111);
    assert_eq!(block_on(chip.read_gpio()).unwrap(), !0b10_0000_0111u16);
    model.set_input(15, Drive::Low);
    assert_eq!(block_on(chip.read_gpio()).unwrap() & 0x8000, 0);
}

#[test]
fn outputs_follow_the_latch() {
    let (_bus, model, mut chip) = setup();
    block_on(chip.init()).unwrap();
    block_on(chip.configure(0x00FF, 0x00FF)).unwrap();
    block_on(chip.write_outputs(0xA500)).unwrap();
    assert_eq!(model.register(0x14), Some(0xA5));
    assert_eq!(block_on(chip.read_gpio()).unwrap(), 0xA5FF);
}

#[test]
fn faults_are_errors_and_heal() {
    let (bus, model, mut chip) = setup();
    bus.set_fault(ADDRESS, ChipFault::Absent).unwrap();
    assert!(matches!(block_on(chip.init()), Err(Error::Bus(_))));
    assert!(bus.scan().is_empty());
    bus.set_fault(ADDRESS, ChipFault::Garbage).unwrap();
    assert_eq!(block_on(chip.init()), Err(Error::InvalidData));
    bus.set_fault(ADDRESS, ChipFault::None).unwrap();
    block_on(chip.init()).unwrap();
    block_on(chip.configure(0xFFFF, 0xFFFF)).unwrap();
    bus.set_fault(ADDRESS, ChipFault::ReadFails).unwrap();
    assert!(matches!(block_on(chip.read_gpio()), Err(Error::Bus(_))));
    bus.set_fault(ADDRESS, ChipFault::None).unwrap();
    model.set_switches(1);
    assert_eq!(block_on(chip.read_gpio()).unwrap(), 0xFFFE);
}

#[test]
fn without_pull_ups_open_inputs_float() {
    let (_bus, _model, mut chip) = setup();
    block_on(chip.init()).unwrap();
    let reads: Vec<u16> = (0..6)
        .map(|_| block_on(chip.read_gpio()).unwrap())
        .collect();
    assert!(reads.windows(2).any(|w| w[0] != w[1]), "{reads:?}");
}
