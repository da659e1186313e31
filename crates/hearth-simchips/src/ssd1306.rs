//! Register-level model of the Solomon SSD1306 128×64 OLED controller on I2C: the control byte
//! (Co and D/C# bits), the command set with its argument bytes (commands may be split across
//! transfers), the three memory addressing modes with their column/page windows, and the 1 KiB
//! GDDRAM, plus the display state (on/off, charge pump, contrast, inversion).
//!
//! Tests and the simulator read the screen back: [`Ssd1306Model::lines`] renders it as 64 text
//! lines of `#` and `.`, [`Ssd1306Model::text_at`] recognises characters written in the driver's
//! 5×7 font. Scrolling commands are accepted and ignored. A read returns the status byte (bit 6 =
//! display off).

use std::sync::{Arc, Mutex, MutexGuard};

use hearth_drivers::ssd1306::font;

use crate::bus::{BusFault, I2cDevice};

/// The model's default address.
pub const ADDRESS: u8 = 0x3C;
/// Width in pixels.
pub const WIDTH: usize = 128;
/// Height in pixels.
pub const HEIGHT: usize = 64;
const PAGES: usize = HEIGHT / 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Horizontal,
    Vertical,
    Page,
}

#[derive(Debug)]
struct State {
    ram: [u8; WIDTH * PAGES],
    on: bool,
    charge_pump: bool,
    inverted: bool,
    contrast: u8,
    mode: Mode,
    col: (usize, usize),
    page: (usize, usize),
    cursor: (usize, usize),
    /// A command still collecting its argument bytes.
    pending: Vec<u8>,
    commands: u64,
}

/// A simulated SSD1306; a cloneable handle (attach one clone to the bus, keep one to look).
#[derive(Debug, Clone)]
pub struct Ssd1306Model(Arc<Mutex<State>>);

impl Default for Ssd1306Model {
    fn default() -> Self {
        Self::new()
    }
}

/// Number of argument bytes of command `cmd`.
fn arguments(cmd: u8) -> usize {
    match cmd {
        0x20 | 0x81 | 0x8D | 0xA8 | 0xD3 | 0xD5 | 0xD9 | 0xDA | 0xDB => 1,
        0x21 | 0x22 | 0xA3 => 2,
        0x29 | 0x2A => 5,
        0x26 | 0x27 => 6,
        _ => 0,
    }
}

impl Ssd1306Model {
    /// A controller after reset: display off, charge pump off, page addressing, RAM blank.
    pub fn new() -> Self {
        Ssd1306Model(Arc::new(Mutex::new(State {
            ram: [0; WIDTH * PAGES],
            on: false,
            charge_pump: false,
            inverted: false,
            contrast: 0x7F,
            mode: Mode::Page,
            col: (0, WIDTH - 1),
            page: (0, PAGES - 1),
            cursor: (0, 0),
            pending: Vec::new(),
            commands: 0,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the panel shows anything: display on and charge pump enabled.
    pub fn is_lit(&self) -> bool {
        let s = self.state();
        s.on && s.charge_pump
    }

    /// The contrast setting.
    pub fn contrast(&self) -> u8 {
        self.state().contrast
    }

    /// How many complete commands the controller has executed.
    pub fn commands(&self) -> u64 {
        self.state().commands
    }

    /// The GDDRAM pixel at (`x`, `y`) (inversion not applied); false outside.
    pub fn pixel(&self, x: usize, y: usize) -> bool {
        x < WIDTH && y < HEIGHT && self.state().ram[(y / 8) * WIDTH + x] & (1 << (y % 8)) != 0
    }

    /// Number of lit pixels in RAM.
    pub fn lit(&self) -> usize {
        self.state()
            .ram
            .iter()
            .map(|b| b.count_ones() as usize)
            .sum()
    }

    /// The screen as 64 lines of 128 characters, `#` lit and `.` dark (with the display's
    /// inversion applied; all dark when the panel is not lit).
    pub fn lines(&self) -> Vec<String> {
        let lit = self.is_lit();
        let inverted = self.state().inverted;
        (0..HEIGHT)
            .map(|y| {
                (0..WIDTH)
                    .map(|x| {
                        let on = lit && (self.pixel(x, y) != inverted);
                        if on {
                            '#'
                        } else {
                            '.'
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Reads up to `max_chars` characters of the driver's font whose first cell's top-left
    /// corner is (`x`, `y`): each 6-pixel cell is matched against the glyphs, an unknown cell
    /// reads as `\u{FFFD}`. Trailing spaces are removed.
    pub fn text_at(&self, x: usize, y: usize, max_chars: usize) -> String {
        let mut out = String::new();
        for i in 0..max_chars {
            let cx = x + i * font::CELL_WIDTH;
            if cx + font::GLYPH_WIDTH > WIDTH {
                break;
            }
            let mut columns = [0u8; font::GLYPH_WIDTH];
            for (dx, column) in columns.iter_mut().enumerate() {
                for dy in 0..font::GLYPH_HEIGHT {
                    if self.pixel(cx + dx, y + dy) {
                        *column |= 1 << dy;
                    }
                }
            }
            out.push(font::recognise(columns).unwrap_or('\u{FFFD}'));
        }
        out.truncate(out.trim_end_matches(' ').len());
        out
    }
}

impl State {
    fn command(&mut self, cmd: &[u8]) {
        self.commands += 1;
        let arg = |i: usize| usize::from(cmd.get(i).copied().unwrap_or(0));
        match cmd[0] {
            0x20 => {
                self.mode = match arg(1) & 3 {
                    0 => Mode::Horizontal,
                    1 => Mode::Vertical,
                    _ => Mode::Page,
                }
            }
            0x21 => {
                self.col = (arg(1) & 0x7F, arg(2) & 0x7F);
                self.cursor.0 = self.col.0;
            }
            0x22 => {
                self.page = (arg(1) & 7, arg(2) & 7);
                self.cursor.1 = self.page.0;
            }
            c @ 0x00..=0x0F => self.cursor.0 = (self.cursor.0 & 0xF0) | usize::from(c),
            c @ 0x10..=0x17 => {
                self.cursor.0 = (self.cursor.0 & 0x0F) | (usize::from(c & 0x07) << 4)
            }
            c @ 0xB0..=0xB7 => self.cursor.1 = usize::from(c & 7),
            0x81 => self.contrast = arg(1) as u8,
            0x8D => self.charge_pump = arg(1) & 0x04 != 0,
            0xA6 => self.inverted = false,
            0xA7 => self.inverted = true,
            0xAE => self.on = false,
            0xAF => self.on = true,
            // Start line, remap, multiplex, scan direction, offset, timing: accepted.
            _ => {}
        }
    }

    fn data(&mut self, byte: u8) {
        let (c, p) = self.cursor;
        if let Some(cell) = self.ram.get_mut(p * WIDTH + c) {
            *cell = byte;
        }
        let (c0, c1) = self.col;
        let (p0, p1) = self.page;
        self.cursor = match self.mode {
            Mode::Page => (if c >= WIDTH - 1 { c } else { c + 1 }, p),
            Mode::Horizontal if c >= c1 => (c0, if p >= p1 { p0 } else { p + 1 }),
            Mode::Horizontal => (c + 1, p),
            Mode::Vertical if p >= p1 => (if c >= c1 { c0 } else { c + 1 }, p0),
            Mode::Vertical => (c, p + 1),
        };
    }

    fn command_byte(&mut self, byte: u8) {
        self.pending.push(byte);
        if self.pending.len() > arguments(self.pending[0]) {
            let cmd = std::mem::take(&mut self.pending);
            self.command(&cmd);
        }
    }
}

impl I2cDevice for Ssd1306Model {
    fn write(&mut self, _now_us: u64, bytes: &[u8]) -> Result<(), BusFault> {
        let mut s = self.state();
        let mut rest = bytes;
        while let Some((&control, tail)) = rest.split_first() {
            let continuation = control & 0x80 != 0;
            let data = control & 0x40 != 0;
            if control & 0x3F != 0 {
                // Reserved control bits: the byte is not acknowledged.
                return Err(BusFault::DataNack);
            }
            let (now, after) = if continuation {
                tail.split_at(tail.len().min(1))
            } else {
                (tail, &[][..])
            };
            for &b in now {
                if data {
                    s.data(b);
                } else {
                    s.command_byte(b);
                }
            }
            rest = after;
        }
        Ok(())
    }

    fn read(&mut self, _now_us: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        let status = if self.state().on { 0x00 } else { 0x40 };
        buf.fill(status);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_over_control_bytes_and_transfers() {
        let mut m = Ssd1306Model::new();
        // Co = 1 pairs, as the reference sends them.
        m.write(0, &[0x80, 0x8D, 0x80, 0x14, 0x80, 0xAF]).unwrap();
        assert!(m.is_lit());
        m.write(0, &[0x00, 0x81]).unwrap();
        m.write(0, &[0x00, 0x10]).unwrap();
        assert_eq!(m.contrast(), 0x10);
        assert_eq!(m.write(0, &[0x01, 0xAE]), Err(BusFault::DataNack));
    }

    #[test]
    fn horizontal_window_wraps_to_the_next_page() {
        let mut m = Ssd1306Model::new();
        m.write(0, &[0x00, 0x20, 0x00, 0x21, 10, 11, 0x22, 2, 3])
            .unwrap();
        m.write(0, &[0x40, 0x01, 0x02, 0x04, 0x80, 0xFF]).unwrap();
        assert!(m.pixel(10, 16) && m.pixel(11, 17) && m.pixel(10, 26) && m.pixel(11, 31));
        // The fifth byte wrapped back to the first page of the window.
        assert!(m.pixel(10, 23) && m.pixel(10, 20));
        assert_eq!(m.lit(), 1 + 1 + 1 + 1 + 8 - 1);
    }

    #[test]
    fn page_mode_stays_on_its_page() {
        let mut m = Ssd1306Model::new();
        m.write(0, &[0x00, 0xB7, 0x0F, 0x17]).unwrap();
        m.write(0, &[0x40, 0x80, 0x80]).unwrap();
        assert!(m.pixel(127, 63));
        assert_eq!(m.lit(), 1);
        let mut status = [0u8];
        m.read(0, &mut status).unwrap();
        assert_eq!(status, [0x40]);
    }
}
