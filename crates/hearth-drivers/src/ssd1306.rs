//! Driver for the Solomon SSD1306 128×64 monochrome OLED on I2C (address 0x3C or 0x3D): the
//! initialisation sequence of the reference, a 1 KiB frame buffer in the controller's own layout,
//! pixels, rectangles and text in a small built-in 5×7 font, and sending the buffer.
//!
//! Frame buffer layout (the controller's GDDRAM, "MONO_VLSB"): 8 pages of 8 pixel rows; byte
//! `page * 128 + x` holds column `x` of rows `8 * page ..= 8 * page + 7`, bit 0 the top row.
//! Drawing only changes the buffer; [`Ssd1306::flush`] sends all of it (horizontal addressing
//! mode, column window 0..=127, page window 0..=7, then 1024 data bytes).
//!
//! On the wire every transfer starts with a control byte: `0x00` = the rest are commands,
//! `0x40` = the rest are display data. The reference sent each command in its own 2-byte transfer
//! (`0x80, cmd`); this driver sends the whole initialisation in one command transfer.

use embedded_hal::i2c::Operation;
use embedded_hal_async::i2c::I2c;

use crate::Error;

/// The usual address (SA0 low).
pub const ADDRESS: u8 = 0x3C;
/// Width in pixels.
pub const WIDTH: usize = 128;
/// Height in pixels.
pub const HEIGHT: usize = 64;
/// Frame buffer size in bytes.
pub const BUFFER_LEN: usize = WIDTH * HEIGHT / 8;

/// Control byte: the following bytes are commands.
pub const CONTROL_COMMANDS: u8 = 0x00;
/// Control byte: the following bytes are display data.
pub const CONTROL_DATA: u8 = 0x40;

/// The initialisation of the reference (internal charge pump): display off, horizontal
/// addressing, start line 0, segment remap, multiplex 64, COM scan reversed, no offset,
/// alternative COM pins, clock divide 0x80, pre-charge 0xF1, VCOMH 0x30, contrast 0xFF, display
/// follows RAM, normal (not inverted), charge pump on, display on.
pub const INIT_SEQUENCE: [u8; 25] = [
    0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 0x3F, 0xC8, 0xD3, 0x00, 0xDA, 0x12, 0xD5, 0x80, 0xD9, 0xF1,
    0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF,
];

/// The built-in font: 5×7 glyphs for ASCII 32..=126, drawn in 6×8 cells (one blank column and
/// one blank row of spacing).
pub mod font {
    /// Glyph width in pixels.
    pub const GLYPH_WIDTH: usize = 5;
    /// Glyph height in pixels.
    pub const GLYPH_HEIGHT: usize = 7;
    /// Horizontal advance per character.
    pub const CELL_WIDTH: usize = 6;
    /// Line height.
    pub const CELL_HEIGHT: usize = 8;
    /// The first character of the table.
    pub const FIRST: char = ' ';
    /// The last character of the table.
    pub const LAST: char = '~';

    /// Five columns per glyph, bit 0 = top row, from `' '` to `'~'`.
    #[rustfmt::skip]
    const GLYPHS: [u8; 95 * GLYPH_WIDTH] = [
    0x00,0x00,0x00,0x00,0x00, 0x00,0x00,0x5F,0x00,0x00, 0x00,0x03,0x00,0x03,0x00, 0x14,0x7F,0x14,0x7F,0x14, // ' ' '!' '"' '#'
    0x24,0x2A,0x7F,0x2A,0x12, 0x23,0x13,0x08,0x64,0x62, 0x36,0x49,0x55,0x22,0x50, 0x00,0x04,0x03,0x00,0x00, // '$' '%' '&' "'"
    0x00,0x1C,0x22,0x41,0x00, 0x00,0x41,0x22,0x1C,0x00, 0x14,0x08,0x3E,0x08,0x14, 0x08,0x08,0x3E,0x08,0x08, // '(' ')' '*' '+'
    0x00,0x50,0x30,0x00,0x00, 0x08,0x08,0x08,0x08,0x08, 0x00,0x60,0x60,0x00,0x00, 0x20,0x10,0x08,0x04,0x02, // ',' '-' '.' '/'
    0x3E,0x51,0x49,0x45,0x3E, 0x00,0x42,0x7F,0x40,0x00, 0x42,0x61,0x51,0x49,0x46, 0x21,0x41,0x45,0x4B,0x31, // '0' '1' '2' '3'
    0x18,0x14,0x12,0x7F,0x10, 0x27,0x45,0x45,0x45,0x39, 0x3C,0x4A,0x49,0x49,0x30, 0x01,0x71,0x09,0x05,0x03, // '4' '5' '6' '7'
    0x36,0x49,0x49,0x49,0x36, 0x06,0x49,0x49,0x29,0x1E, 0x00,0x36,0x36,0x00,0x00, 0x00,0x56,0x36,0x00,0x00, // '8' '9' ':' ';'
    0x08,0x14,0x22,0x41,0x00, 0x14,0x14,0x14,0x14,0x14, 0x00,0x41,0x22,0x14,0x08, 0x02,0x01,0x51,0x09,0x06, // '<' '=' '>' '?'
    0x32,0x49,0x79,0x41,0x3E, 0x7E,0x09,0x09,0x09,0x7E, 0x7F,0x49,0x49,0x49,0x36, 0x3E,0x41,0x41,0x41,0x22, // '@' 'A' 'B' 'C'
    0x7F,0x41,0x41,0x22,0x1C, 0x7F,0x49,0x49,0x49,0x41, 0x7F,0x09,0x09,0x09,0x01, 0x3E,0x41,0x49,0x49,0x7A, // 'D' 'E' 'F' 'G'
    0x7F,0x08,0x08,0x08,0x7F, 0x00,0x41,0x7F,0x41,0x00, 0x20,0x40,0x41,0x3F,0x01, 0x7F,0x08,0x14,0x22,0x41, // 'H' 'I' 'J' 'K'
    0x7F,0x40,0x40,0x40,0x40, 0x7F,0x02,0x0C,0x02,0x7F, 0x7F,0x04,0x08,0x10,0x7F, 0x3E,0x41,0x41,0x41,0x3E, // 'L' 'M' 'N' 'O'
    0x7F,0x09,0x09,0x09,0x06, 0x3E,0x41,0x51,0x21,0x5E, 0x7F,0x09,0x19,0x29,0x46, 0x46,0x49,0x49,0x49,0x31, // 'P' 'Q' 'R' 'S'
    0x01,0x01,0x7F,0x01,0x01, 0x3F,0x40,0x40,0x40,0x3F, 0x1F,0x20,0x40,0x20,0x1F, 0x3F,0x40,0x38,0x40,0x3F, // 'T' 'U' 'V' 'W'
    0x63,0x14,0x08,0x14,0x63, 0x03,0x04,0x78,0x04,0x03, 0x61,0x51,0x49,0x45,0x43, 0x00,0x7F,0x41,0x41,0x00, // 'X' 'Y' 'Z' '['
    0x02,0x04,0x08,0x10,0x20, 0x00,0x41,0x41,0x7F,0x00, 0x04,0x02,0x01,0x02,0x04, 0x40,0x40,0x40,0x40,0x40, // '\\' ']' '^' '_'
    0x00,0x01,0x02,0x04,0x00, 0x20,0x54,0x54,0x54,0x78, 0x7F,0x48,0x44,0x44,0x38, 0x38,0x44,0x44,0x44,0x20, // '`' 'a' 'b' 'c'
    0x38,0x44,0x44,0x48,0x7F, 0x38,0x54,0x54,0x54,0x18, 0x08,0x7E,0x09,0x01,0x02, 0x0C,0x52,0x52,0x52,0x3E, // 'd' 'e' 'f' 'g'
    0x7F,0x08,0x04,0x04,0x78, 0x00,0x44,0x7D,0x40,0x00, 0x20,0x40,0x44,0x3D,0x00, 0x7F,0x10,0x28,0x44,0x00, // 'h' 'i' 'j' 'k'
    0x00,0x41,0x7F,0x40,0x00, 0x7C,0x04,0x18,0x04,0x78, 0x7C,0x08,0x04,0x04,0x78, 0x38,0x44,0x44,0x44,0x38, // 'l' 'm' 'n' 'o'
    0x7C,0x14,0x14,0x14,0x08, 0x08,0x14,0x14,0x18,0x7C, 0x7C,0x08,0x04,0x04,0x08, 0x48,0x54,0x54,0x54,0x20, // 'p' 'q' 'r' 's'
    0x04,0x3F,0x44,0x40,0x20, 0x3C,0x40,0x40,0x20,0x7C, 0x1C,0x20,0x40,0x20,0x1C, 0x3C,0x40,0x30,0x40,0x3C, // 't' 'u' 'v' 'w'
    0x44,0x28,0x10,0x28,0x44, 0x0C,0x50,0x50,0x50,0x3C, 0x44,0x64,0x54,0x4C,0x44, 0x00,0x08,0x36,0x41,0x00, // 'x' 'y' 'z' '{'
    0x00,0x00,0x7F,0x00,0x00, 0x00,0x41,0x36,0x08,0x00, 0x08,0x04,0x08,0x10,0x08, // '|' '}' '~'
    ];

    /// The glyph's columns (bit 0 = top row). Characters outside ASCII 32..=126 draw as `?`.
    pub fn glyph(c: char) -> [u8; GLYPH_WIDTH] {
        let c = if (FIRST..=LAST).contains(&c) { c } else { '?' };
        let i = (c as usize - FIRST as usize) * GLYPH_WIDTH;
        let mut out = [0u8; GLYPH_WIDTH];
        out.copy_from_slice(&GLYPHS[i..i + GLYPH_WIDTH]);
        out
    }

    /// The character whose glyph is exactly `columns`, if any (the space for an empty cell).
    pub fn recognise(columns: [u8; GLYPH_WIDTH]) -> Option<char> {
        (FIRST..=LAST).find(|&c| glyph(c) == columns)
    }
}

/// An SSD1306 on an async I2C bus, with its frame buffer.
#[derive(Debug)]
pub struct Ssd1306<I2C> {
    i2c: I2C,
    address: u8,
    buffer: [u8; BUFFER_LEN],
}

impl<I2C: I2c> Ssd1306<I2C> {
    /// Wraps the bus for the display at `address`; nothing is sent yet, the buffer is blank.
    pub fn new(i2c: I2C, address: u8) -> Self {
        Self {
            i2c,
            address,
            buffer: [0; BUFFER_LEN],
        }
    }

    /// Sends [`INIT_SEQUENCE`], then clears the screen. A display that is not there fails here
    /// (its address is not acknowledged).
    pub async fn init(&mut self) -> Result<(), Error<I2C::Error>> {
        let mut bytes = [0u8; INIT_SEQUENCE.len() + 1];
        bytes[0] = CONTROL_COMMANDS;
        bytes[1..].copy_from_slice(&INIT_SEQUENCE);
        self.i2c
            .write(self.address, &bytes)
            .await
            .map_err(Error::Bus)?;
        self.clear();
        self.flush().await
    }

    /// Switches the panel on or off (RAM is kept).
    pub async fn set_on(&mut self, on: bool) -> Result<(), Error<I2C::Error>> {
        let cmd = if on { 0xAF } else { 0xAE };
        self.i2c
            .write(self.address, &[CONTROL_COMMANDS, cmd])
            .await
            .map_err(Error::Bus)
    }

    /// Sends the whole frame buffer.
    pub async fn flush(&mut self) -> Result<(), Error<I2C::Error>> {
        let window = [
            CONTROL_COMMANDS,
            0x21,
            0,
            (WIDTH - 1) as u8,
            0x22,
            0,
            (HEIGHT / 8 - 1) as u8,
        ];
        self.i2c
            .write(self.address, &window)
            .await
            .map_err(Error::Bus)?;
        // Two writes in one transaction are one transfer on the wire: control byte, then data.
        self.i2c
            .transaction(
                self.address,
                &mut [
                    Operation::Write(&[CONTROL_DATA]),
                    Operation::Write(&self.buffer),
                ],
            )
            .await
            .map_err(Error::Bus)
    }

    /// Blanks the frame buffer.
    pub fn clear(&mut self) {
        self.buffer.fill(0);
    }

    /// The frame buffer (see the module documentation for its layout).
    pub fn buffer(&self) -> &[u8; BUFFER_LEN] {
        &self.buffer
    }

    /// Whether the pixel at (`x`, `y`) is lit in the buffer; false outside the screen.
    pub fn pixel(&self, x: i32, y: i32) -> bool {
        match index(x, y) {
            Some((i, bit)) => self.buffer[i] & bit != 0,
            None => false,
        }
    }

    /// Sets one pixel; coordinates outside the screen are ignored.
    pub fn set_pixel(&mut self, x: i32, y: i32, on: bool) {
        if let Some((i, bit)) = index(x, y) {
            if on {
                self.buffer[i] |= bit;
            } else {
                self.buffer[i] &= !bit;
            }
        }
    }

    /// Fills the `w` × `h` rectangle whose top-left corner is (`x`, `y`), clipped to the screen.
    pub fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, on: bool) {
        let (x0, x1) = (x.max(0), x.saturating_add(w).min(WIDTH as i32));
        let (y0, y1) = (y.max(0), y.saturating_add(h).min(HEIGHT as i32));
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.set_pixel(xx, yy, on);
            }
        }
    }

    /// Draws the outline of the `w` × `h` rectangle whose top-left corner is (`x`, `y`).
    pub fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, on: bool) {
        if w <= 0 || h <= 0 {
            return;
        }
        self.fill_rect(x, y, w, 1, on);
        self.fill_rect(x, y + h - 1, w, 1, on);
        self.fill_rect(x, y, 1, h, on);
        self.fill_rect(x + w - 1, y, 1, h, on);
    }

    /// Draws `text` with its first cell's top-left corner at (`x`, `y`), lit pixels on an
    /// untouched background, clipped to the screen; returns the x after the last character.
    pub fn text(&mut self, x: i32, y: i32, text: &str) -> i32 {
        let mut cx = x;
        for c in text.chars() {
            if cx >= WIDTH as i32 {
                break;
            }
            for (dx, column) in font::glyph(c).into_iter().enumerate() {
                for dy in 0..font::GLYPH_HEIGHT {
                    if column & (1 << dy) != 0 {
                        self.set_pixel(cx + dx as i32, y + dy as i32, true);
                    }
                }
            }
            cx += font::CELL_WIDTH as i32;
        }
        cx
    }

    /// Gives the bus back.
    pub fn release(self) -> I2C {
        self.i2c
    }
}

/// The buffer index and bit mask of pixel (`x`, `y`), if it is on the screen.
fn index(x: i32, y: i32) -> Option<(usize, u8)> {
    let (x, y) = (usize::try_from(x).ok()?, usize::try_from(y).ok()?);
    (x < WIDTH && y < HEIGHT).then(|| ((y / 8) * WIDTH + x, 1u8 << (y % 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bus that never gets used: drawing is local.
    struct NoBus;
    impl embedded_hal_async::i2c::ErrorType for NoBus {
        type Error = core::convert::Infallible;
    }
    impl I2c for NoBus {
        async fn transaction(
            &mut self,
            _address: u8,
            _operations: &mut [Operation<'_>],
        ) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[test]
    fn pixels_use_the_vertical_byte_layout() {
        let mut d = Ssd1306::new(NoBus, ADDRESS);
        d.set_pixel(0, 0, true);
        d.set_pixel(5, 9, true);
        d.set_pixel(127, 63, true);
        d.set_pixel(128, 0, true);
        d.set_pixel(-1, 3, true);
        assert_eq!(d.buffer()[0], 0x01);
        assert_eq!(d.buffer()[128 + 5], 0x02);
        assert_eq!(d.buffer()[1023], 0x80);
        assert_eq!(d.buffer().iter().filter(|b| **b != 0).count(), 3);
        assert!(d.pixel(5, 9) && !d.pixel(5, 8) && !d.pixel(200, 9));
        d.set_pixel(5, 9, false);
        assert!(!d.pixel(5, 9));
    }

    #[test]
    fn rectangles_clip_and_outline() {
        let mut d = Ssd1306::new(NoBus, ADDRESS);
        d.rect(0, 0, 12, 64, true);
        assert!(d.pixel(0, 0) && d.pixel(11, 0) && d.pixel(0, 63) && d.pixel(11, 63));
        assert!(!d.pixel(5, 30) && d.pixel(0, 30) && d.pixel(11, 30));
        d.clear();
        d.fill_rect(120, 60, 20, 20, true);
        let lit = (0..64)
            .flat_map(|y| (0..128).map(move |x| (x, y)))
            .filter(|&(x, y)| d.pixel(x, y))
            .count();
        assert_eq!(lit, 8 * 4);
    }

    #[test]
    fn every_glyph_is_distinct_and_fits_seven_rows() {
        for c in font::FIRST..=font::LAST {
            let g = font::glyph(c);
            assert!(g.iter().all(|col| col & 0x80 == 0), "{c:?} uses row 8");
            assert_eq!(font::recognise(g), Some(c), "{c:?} is ambiguous");
        }
        assert_eq!(font::glyph('\u{e9}'), font::glyph('?'));
        assert_eq!(font::glyph(' '), [0; 5]);
        // 'I': a vertical bar with serifs at rows 0 and 6.
        assert_eq!(font::glyph('I'), [0x00, 0x41, 0x7F, 0x41, 0x00]);
    }

    #[test]
    fn text_is_drawn_at_any_row_and_advances_six_pixels() {
        let mut d = Ssd1306::new(NoBus, ADDRESS);
        let end = d.text(20, 12, "Hi");
        assert_eq!(end, 32);
        // 'H': columns 0 and 4 full height, the bar on row 3.
        for dy in 0..7 {
            assert!(d.pixel(20, 12 + dy) && d.pixel(24, 12 + dy));
        }
        assert!(d.pixel(22, 15) && !d.pixel(22, 14));
        assert!(!d.pixel(25, 12) && !d.pixel(20, 19));
        // Text running off the right edge is clipped, not wrapped.
        assert_eq!(d.text(120, 0, "abc"), 132);
        assert!(!d.pixel(0, 8));
    }
}
