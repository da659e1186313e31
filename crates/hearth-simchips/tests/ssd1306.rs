//! The SSD1306 driver against the controller model: initialisation, the frame buffer layout on
//! the wire and text in the driver's font read back from the model's RAM.

mod common;

use common::block_on;
use hearth_drivers::ssd1306::{Ssd1306, ADDRESS, HEIGHT, WIDTH};
use hearth_drivers::Error;
use hearth_simchips::{ChipFault, SimI2cBus, Ssd1306Model};

fn setup() -> (SimI2cBus, Ssd1306Model, Ssd1306<SimI2cBus>) {
    let bus = SimI2cBus::new();
    let model = Ssd1306Model::new();
    bus.attach(ADDRESS, model.clone()).unwrap();
    (bus.clone(), model, Ssd1306::new(bus, ADDRESS))
}

#[test]
fn init_lights_a_blank_panel() {
    let (_bus, model, mut d) = setup();
    assert!(!model.is_lit());
    block_on(d.init()).unwrap();
    assert!(model.is_lit());
    assert_eq!(model.contrast(), 0xFF);
    assert_eq!(model.lit(), 0);
    // 25 init bytes are 16 commands, then the 2 window commands of the flush.
    assert_eq!(model.commands(), 16 + 2);
}

#[test]
fn the_frame_buffer_arrives_pixel_for_pixel() {
    let (_bus, model, mut d) = setup();
    block_on(d.init()).unwrap();
    d.rect(0, 0, 12, 64, true);
    d.fill_rect(0, 40, 12, 24, true);
    d.set_pixel(127, 0, true);
    block_on(d.flush()).unwrap();
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            assert_eq!(model.pixel(x, y), d.pixel(x as i32, y as i32), "({x},{y})");
        }
    }
    let lines = model.lines();
    assert_eq!(lines.len(), 64);
    assert_eq!(&lines[0][..13], "############.");
    assert_eq!(&lines[20][..13], "#..........#.");
    assert!(lines[0].ends_with('#'));
    // A second flush rewrites everything from the top left again.
    d.clear();
    d.text(20, 36, "60% + 12L");
    block_on(d.flush()).unwrap();
    assert_eq!(model.text_at(20, 36, 18), "60% + 12L");
    assert_eq!(
        model.lit(),
        d.buffer().iter().map(|b| b.count_ones() as usize).sum()
    );
}

#[test]
fn text_reads_back_at_unaligned_rows() {
    let (_bus, model, mut d) = setup();
    block_on(d.init()).unwrap();
    for (y, s) in [
        (0, "no net"),
        (12, "MQTT down"),
        (24, "0:00:01:05"),
        (48, "12.5L/min"),
    ] {
        d.text(20, y, s);
    }
    block_on(d.flush()).unwrap();
    assert_eq!(model.text_at(20, 0, 18), "no net");
    assert_eq!(model.text_at(20, 12, 18), "MQTT down");
    assert_eq!(model.text_at(20, 24, 18), "0:00:01:05");
    assert_eq!(model.text_at(20, 48, 18), "12.5L/min");
    assert_eq!(model.text_at(20, 36, 18), "");
}

#[test]
fn an_absent_display_fails_init_and_a_lost_one_fails_flush() {
    let (bus, _model, mut d) = setup();
    bus.set_fault(ADDRESS, ChipFault::Absent).unwrap();
    assert!(matches!(block_on(d.init()), Err(Error::Bus(_))));
    bus.set_fault(ADDRESS, ChipFault::None).unwrap();
    block_on(d.init()).unwrap();
    bus.set_fault(ADDRESS, ChipFault::Absent).unwrap();
    assert!(block_on(d.flush()).is_err());
}
