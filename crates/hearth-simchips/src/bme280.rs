//! Register-level model of the Bosch BME280: chip id, soft reset with its NVM copy, the factory
//! trimming block, ctrl_hum/ctrl_meas/config with the datasheet's latching rules, forced and
//! normal mode with the measuring bit, and ADC data registers holding the raw values that the
//! chip's own compensation turns back into the ambient truth.
//!
//! The raw values are found by inverting the compensation: a binary search over the ADC codes
//! the configured oversampling can produce, using the datasheet's *floating-point* compensation
//! formulas implemented here. The drivers use the datasheet's *integer* formulas, so the
//! end-to-end tests compare two independent implementations of the chip's arithmetic.

use crate::ambient::Ambient;
use crate::bus::{BusFault, I2cDevice};

/// Address with SDO tied to GND (the weather station's wiring).
pub const ADDRESS_PRIMARY: u8 = 0x76;
/// Address with SDO tied to VDDIO.
pub const ADDRESS_SECONDARY: u8 = 0x77;

const CALIB_T_P: u8 = 0x88;
const CHIP_ID: u8 = 0xD0;
const RESET: u8 = 0xE0;
const CALIB_H: u8 = 0xE1;
const CTRL_HUM: u8 = 0xF2;
const STATUS: u8 = 0xF3;
const CTRL_MEAS: u8 = 0xF4;
const CONFIG: u8 = 0xF5;
const DATA: u8 = 0xF7;
/// press_msb ..= hum_lsb.
const DATA_RANGE: std::ops::Range<usize> = DATA as usize..DATA as usize + 8;

const CHIP_ID_VALUE: u8 = 0x60;
const RESET_COMMAND: u8 = 0xB6;
const STATUS_MEASURING: u8 = 1 << 3;
const STATUS_IM_UPDATE: u8 = 1 << 0;
/// Start-up time after a reset, during which the NVM is copied (im_update set).
const STARTUP_US: u64 = 2_000;
/// Data registers after reset: 0x80000 for pressure and temperature, 0x8000 for humidity.
const DATA_RESET: [u8; 8] = [0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00];

/// The factory trimming parameters a chip carries in its NVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Trimming {
    pub t1: u16,
    pub t2: i16,
    pub t3: i16,
    pub p1: u16,
    pub p2: i16,
    pub p3: i16,
    pub p4: i16,
    pub p5: i16,
    pub p6: i16,
    pub p7: i16,
    pub p8: i16,
    pub p9: i16,
    pub h1: u8,
    pub h2: i16,
    pub h3: u8,
    pub h4: i16,
    pub h5: i16,
    pub h6: i8,
}

impl Trimming {
    /// Temperature and pressure values of Bosch's worked example; humidity values as found on a
    /// typical chip.
    pub const TYPICAL: Trimming = Trimming {
        t1: 27504,
        t2: 26435,
        t3: -1000,
        p1: 36477,
        p2: -10685,
        p3: 3024,
        p4: 2855,
        p5: 140,
        p6: -7,
        p7: 15500,
        p8: -14600,
        p9: 6000,
        h1: 75,
        h2: 362,
        h3: 0,
        h4: 313,
        h5: 50,
        h6: 30,
    };

    /// The 26 bytes at 0x88..=0xA1: little-endian words T1..P9, reserved 0xA0, H1.
    fn block_t_p(&self) -> [u8; 26] {
        let words: [[u8; 2]; 12] = [
            self.t1.to_le_bytes(),
            self.t2.to_le_bytes(),
            self.t3.to_le_bytes(),
            self.p1.to_le_bytes(),
            self.p2.to_le_bytes(),
            self.p3.to_le_bytes(),
            self.p4.to_le_bytes(),
            self.p5.to_le_bytes(),
            self.p6.to_le_bytes(),
            self.p7.to_le_bytes(),
            self.p8.to_le_bytes(),
            self.p9.to_le_bytes(),
        ];
        let mut block = [0u8; 26];
        for (i, word) in words.iter().enumerate() {
            block[2 * i..2 * i + 2].copy_from_slice(word);
        }
        block[25] = self.h1;
        block
    }

    /// The 7 bytes at 0xE1..=0xE7: H2 (LE word), H3, then the two 12-bit values H4 and H5
    /// sharing 0xE5 (H4 in its low nibble, H5 in its high nibble), then H6.
    fn block_h(&self) -> [u8; 7] {
        let [h2_lo, h2_hi] = self.h2.to_le_bytes();
        let h4 = self.h4 as u16;
        let h5 = self.h5 as u16;
        [
            h2_lo,
            h2_hi,
            self.h3,
            (h4 >> 4) as u8,
            (((h5 & 0x0F) << 4) | (h4 & 0x0F)) as u8,
            (h5 >> 4) as u8,
            self.h6 as u8,
        ]
    }

    /// Datasheet floating-point temperature: returns t_fine as the datasheet's integer
    /// conversion of it, and °C.
    fn temperature(&self, adc_t: u32) -> (i32, f64) {
        let adc = f64::from(adc_t);
        let t1 = f64::from(self.t1);
        let linear = (adc / 16_384.0 - t1 / 1_024.0) * f64::from(self.t2);
        let offset = adc / 131_072.0 - t1 / 8_192.0;
        let quadratic = offset * offset * f64::from(self.t3);
        let fine = linear + quadratic;
        (fine as i32, fine / 5_120.0)
    }

    /// Datasheet floating-point pressure in Pa.
    fn pressure(&self, adc_p: u32, t_fine: i32) -> f64 {
        let base = f64::from(t_fine) / 2.0 - 64_000.0;
        let mut offset = base * base * f64::from(self.p6) / 32_768.0;
        offset += base * f64::from(self.p5) * 2.0;
        offset = offset / 4.0 + f64::from(self.p4) * 65_536.0;
        let sens =
            (f64::from(self.p3) * base * base / 524_288.0 + f64::from(self.p2) * base) / 524_288.0;
        let sens = (1.0 + sens / 32_768.0) * f64::from(self.p1);
        if sens == 0.0 {
            return 0.0;
        }
        let p = (1_048_576.0 - f64::from(adc_p) - offset / 4_096.0) * 6_250.0 / sens;
        let square = f64::from(self.p9) * p * p / 2_147_483_648.0;
        let linear = p * f64::from(self.p8) / 32_768.0;
        p + (square + linear + f64::from(self.p7)) / 16.0
    }

    /// Datasheet floating-point relative humidity in %, clamped to 0..=100.
    fn humidity(&self, adc_h: u32, t_fine: i32) -> f64 {
        let dt = f64::from(t_fine) - 76_800.0;
        let offset = f64::from(self.h4) * 64.0 + f64::from(self.h5) / 16_384.0 * dt;
        let gain = f64::from(self.h2) / 65_536.0
            * (1.0
                + f64::from(self.h6) / 67_108_864.0
                    * dt
                    * (1.0 + f64::from(self.h3) / 67_108_864.0 * dt));
        let h = (f64::from(adc_h) - offset) * gain;
        let h = h * (1.0 - f64::from(self.h1) * h / 524_288.0);
        h.clamp(0.0, 100.0)
    }
}

impl Default for Trimming {
    fn default() -> Self {
        Trimming::TYPICAL
    }
}

/// The code `k << shift` (k < 2^bits) whose compensated value is nearest to `target`, for a
/// compensation `value` that is monotonic in the code (rising or falling).
fn nearest_code(bits: u32, shift: u32, target: f64, value: impl Fn(u32) -> f64) -> u32 {
    let last = (1u32 << bits) - 1;
    let rising = value(last << shift) >= value(0);
    // Turn the search into "first k whose key reaches the target" on a rising key.
    let key = |k: u32| {
        let v = value(k << shift);
        if rising {
            v
        } else {
            -v
        }
    };
    let goal = if rising { target } else { -target };
    let (mut lo, mut hi) = (0u32, last);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if key(mid) < goal {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let best = if lo > 0 && (goal - key(lo - 1)).abs() <= (key(lo) - goal).abs() {
        lo - 1
    } else {
        lo
    };
    best << shift
}

/// Oversampling factor of a 3-bit osrs field (0 = measurement skipped).
fn oversampling(code: u8) -> u64 {
    match code & 0x07 {
        0 => 0,
        c @ 1..=5 => 1 << (c - 1),
        _ => 16,
    }
}

/// ADC resolution in bits for pressure and temperature: 16 bits at ×1, one more per doubling.
fn adc_bits(code: u8) -> u32 {
    match code & 0x07 {
        c @ 1..=5 => 15 + u32::from(c),
        _ => 20,
    }
}

/// Standby time in normal mode for the config t_sb field, in µs.
fn standby_us(config: u8) -> u64 {
    match config >> 5 {
        0 => 500,
        1 => 62_500,
        2 => 125_000,
        3 => 250_000,
        4 => 500_000,
        5 => 1_000_000,
        6 => 10_000,
        _ => 20_000,
    }
}

#[derive(Debug, Clone, Copy)]
struct Conversion {
    started_at_us: u64,
    done_at_us: u64,
    data: [u8; 8],
}

/// A simulated BME280 sensing an [`Ambient`].
#[derive(Debug)]
pub struct Bme280Model {
    ambient: Ambient,
    trimming: Trimming,
    registers: [u8; 256],
    pointer: u8,
    /// osrs_h in effect: ctrl_hum is only latched by a ctrl_meas write.
    active_osrs_h: u8,
    conversion: Option<Conversion>,
    nvm_copy_until_us: u64,
}

impl Bme280Model {
    /// A chip with typical trimming, in sleep mode, sensing `ambient`.
    pub fn new(ambient: Ambient) -> Self {
        Self::with_trimming(ambient, Trimming::TYPICAL)
    }

    /// A chip with the given trimming (e.g. a broken NVM), in sleep mode.
    pub fn with_trimming(ambient: Ambient, trimming: Trimming) -> Self {
        let mut registers = [0u8; 256];
        registers[usize::from(CALIB_T_P)..usize::from(CALIB_T_P) + 26]
            .copy_from_slice(&trimming.block_t_p());
        registers[usize::from(CALIB_H)..usize::from(CALIB_H) + 7]
            .copy_from_slice(&trimming.block_h());
        registers[usize::from(CHIP_ID)] = CHIP_ID_VALUE;
        registers[DATA_RANGE].copy_from_slice(&DATA_RESET);
        Bme280Model {
            ambient,
            trimming,
            registers,
            pointer: 0,
            active_osrs_h: 0,
            conversion: None,
            nvm_copy_until_us: 0,
        }
    }

    fn ctrl_meas(&self) -> u8 {
        self.registers[usize::from(CTRL_MEAS)]
    }

    /// Typical conversion time for the active oversampling (datasheet appendix).
    fn measurement_time_us(&self) -> u64 {
        let ctrl = self.ctrl_meas();
        let t = oversampling(ctrl >> 5);
        let p = oversampling(ctrl >> 2);
        let h = oversampling(self.active_osrs_h);
        let phase = |n: u64| if n == 0 { 0 } else { 2_000 * n + 500 };
        1_000 + 2_000 * t + phase(p) + phase(h)
    }

    /// What the ADCs deliver for the current truth with the active oversampling.
    fn sample(&self) -> [u8; 8] {
        let truth = self.ambient.get();
        let ctrl = self.ctrl_meas();
        let (osrs_t, osrs_p) = ((ctrl >> 5) & 0x07, (ctrl >> 2) & 0x07);
        let trim = &self.trimming;

        let adc_t = if osrs_t == 0 {
            0x8_0000
        } else {
            let bits = adc_bits(osrs_t);
            nearest_code(bits, 20 - bits, f64::from(truth.temperature_c), |code| {
                trim.temperature(code).1
            })
        };
        // Pressure and humidity are compensated with the temperature actually measured.
        let (t_fine, _) = trim.temperature(adc_t);
        let adc_p = if osrs_p == 0 {
            0x8_0000
        } else {
            let bits = adc_bits(osrs_p);
            nearest_code(bits, 20 - bits, f64::from(truth.pressure_pa), |code| {
                trim.pressure(code, t_fine)
            })
        };
        let adc_h = if self.active_osrs_h & 0x07 == 0 {
            0x8000
        } else {
            nearest_code(16, 0, f64::from(truth.humidity_rh), |code| {
                trim.humidity(code, t_fine)
            })
        };

        let twenty = |v: u32| [(v >> 12) as u8, (v >> 4) as u8, ((v & 0x0F) << 4) as u8];
        let [p0, p1, p2] = twenty(adc_p);
        let [t0, t1, t2] = twenty(adc_t);
        [p0, p1, p2, t0, t1, t2, (adc_h >> 8) as u8, adc_h as u8]
    }

    fn start_conversion(&mut self, now_us: u64) {
        self.conversion = Some(Conversion {
            started_at_us: now_us,
            done_at_us: now_us + self.measurement_time_us(),
            data: self.sample(),
        });
    }

    /// Brings the data registers up to `now_us`: publishes finished conversions, returns a
    /// forced conversion to sleep, and keeps normal mode cycling.
    fn sync(&mut self, now_us: u64) {
        let Some(conversion) = self.conversion else {
            return;
        };
        if now_us < conversion.done_at_us {
            return;
        }
        let mode = self.ctrl_meas() & 0x03;
        if mode == 0b11 {
            // Normal mode: jump to the cycle running at `now_us`; the registers hold the latest
            // finished sample (the truth only exists "now", so that is what it shows).
            let sample = self.sample();
            self.registers[DATA_RANGE].copy_from_slice(&sample);
            let period =
                self.measurement_time_us() + standby_us(self.registers[usize::from(CONFIG)]);
            let cycles = (now_us - conversion.done_at_us) / period + 1;
            let done_at_us = conversion.done_at_us + cycles * period;
            self.conversion = Some(Conversion {
                started_at_us: done_at_us - self.measurement_time_us(),
                done_at_us,
                data: [0; 8],
            });
        } else {
            self.registers[DATA_RANGE].copy_from_slice(&conversion.data);
            self.registers[usize::from(CTRL_MEAS)] &= !0x03;
            self.conversion = None;
        }
    }

    fn status(&self, now_us: u64) -> u8 {
        let mut status = 0;
        if let Some(c) = self.conversion {
            if now_us >= c.started_at_us && now_us < c.done_at_us {
                status |= STATUS_MEASURING;
            }
        }
        if now_us < self.nvm_copy_until_us {
            status |= STATUS_IM_UPDATE;
        }
        status
    }

    fn reset(&mut self, now_us: u64) {
        for reg in [CTRL_HUM, CTRL_MEAS, CONFIG] {
            self.registers[usize::from(reg)] = 0;
        }
        self.registers[DATA_RANGE].copy_from_slice(&DATA_RESET);
        self.active_osrs_h = 0;
        self.conversion = None;
        self.nvm_copy_until_us = now_us + STARTUP_US;
    }

    fn write_register(&mut self, now_us: u64, reg: u8, value: u8) {
        match reg {
            RESET if value == RESET_COMMAND => self.reset(now_us),
            CTRL_HUM => self.registers[usize::from(CTRL_HUM)] = value & 0x07,
            CTRL_MEAS => {
                self.registers[usize::from(CTRL_MEAS)] = value;
                self.active_osrs_h = self.registers[usize::from(CTRL_HUM)];
                match value & 0x03 {
                    0b00 => self.conversion = None,
                    _ => self.start_conversion(now_us),
                }
            }
            // Bit 1 is reserved.
            CONFIG => self.registers[usize::from(CONFIG)] = value & 0xFD,
            // Everything else is read-only; writes are acknowledged and ignored.
            _ => {}
        }
    }
}

impl I2cDevice for Bme280Model {
    /// The first byte sets the register pointer; further bytes come as (value, register, value,
    /// …): the chip takes register/value pairs rather than auto-incrementing on writes.
    fn write(&mut self, now_us: u64, bytes: &[u8]) -> Result<(), BusFault> {
        self.sync(now_us);
        let Some((&first, rest)) = bytes.split_first() else {
            return Ok(());
        };
        self.pointer = first;
        let mut reg = first;
        let mut rest = rest;
        while let Some((&value, tail)) = rest.split_first() {
            self.write_register(now_us, reg, value);
            match tail.split_first() {
                Some((&next, after)) => {
                    reg = next;
                    self.pointer = next;
                    rest = after;
                }
                None => rest = tail,
            }
        }
        Ok(())
    }

    /// Burst read from the pointer, auto-incrementing.
    fn read(&mut self, now_us: u64, buf: &mut [u8]) -> Result<(), BusFault> {
        self.sync(now_us);
        let mut reg = self.pointer;
        for byte in buf.iter_mut() {
            *byte = if reg == STATUS {
                self.status(now_us)
            } else {
                self.registers[usize::from(reg)]
            };
            reg = reg.wrapping_add(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ambient::Conditions;

    /// ctrl_meas from osrs_t, osrs_p and mode.
    fn ctrl_meas(osrs_t: u8, osrs_p: u8, mode: u8) -> u8 {
        (osrs_t << 5) | (osrs_p << 2) | mode
    }

    fn model(t: f32, h: f32, p: f32) -> (Bme280Model, Ambient) {
        let ambient = Ambient::new(Conditions {
            temperature_c: t,
            humidity_rh: h,
            pressure_pa: p,
        });
        (Bme280Model::new(ambient.clone()), ambient)
    }

    fn read(m: &mut Bme280Model, now: u64, reg: u8, buf: &mut [u8]) {
        m.write(now, &[reg]).unwrap();
        m.read(now, buf).unwrap();
    }

    fn raw(m: &mut Bme280Model, now: u64) -> (u32, u32, u32) {
        let mut d = [0u8; 8];
        read(m, now, DATA, &mut d);
        let twenty =
            |a: u8, b: u8, c: u8| (u32::from(a) << 12) | (u32::from(b) << 4) | (u32::from(c) >> 4);
        (
            twenty(d[0], d[1], d[2]),
            twenty(d[3], d[4], d[5]),
            (u32::from(d[6]) << 8) | u32::from(d[7]),
        )
    }

    #[test]
    fn worked_example_raw_values_give_the_worked_example_results() {
        let t = Trimming::TYPICAL;
        let (t_fine, celsius) = t.temperature(519_888);
        assert_eq!(t_fine, 128_422);
        assert!((celsius - 25.08).abs() < 0.005);
        let pressure = t.pressure(415_148, t_fine);
        assert!((pressure - 100_653.27).abs() < 0.05, "{pressure}");
    }

    #[test]
    fn trimming_blocks_pack_h4_h5_into_shared_nibbles() {
        let t = Trimming {
            h4: -1,
            h5: -2048,
            ..Trimming::TYPICAL
        };
        let block = t.block_h();
        assert_eq!(&block[3..6], &[0xFF, 0x0F, 0x80]);
        let block = Trimming::TYPICAL.block_h();
        // 313 = 0x139, 50 = 0x032.
        assert_eq!(&block[3..6], &[0x13, 0x29, 0x03]);
        assert_eq!(Trimming::TYPICAL.block_t_p()[0..2], 27504u16.to_le_bytes());
    }

    #[test]
    fn nearest_code_inverts_both_directions() {
        assert_eq!(nearest_code(8, 0, 100.4, f64::from), 100);
        assert_eq!(nearest_code(8, 0, 100.6, f64::from), 101);
        assert_eq!(nearest_code(8, 0, -100.6, |c| -f64::from(c)), 101);
        assert_eq!(nearest_code(4, 4, 33.0, f64::from), 32);
        assert_eq!(nearest_code(8, 0, 1e9, f64::from), 255);
    }

    #[test]
    fn forced_mode_measures_then_sleeps() {
        let (mut m, _) = model(21.5, 45.0, 99_000.0);
        m.write(
            0,
            &[CTRL_HUM, 0x01, CTRL_MEAS, ctrl_meas(0b010, 0b101, 0b01)],
        )
        .unwrap();
        let mut status = [0u8];
        read(&mut m, 1, STATUS, &mut status);
        assert_eq!(status[0] & STATUS_MEASURING, STATUS_MEASURING);
        assert_eq!(raw(&mut m, 1), (0x8_0000, 0x8_0000, 0x8000));
        // Typical time for T ×2, P ×16, H ×1: 1 + 4 + 32.5 + 2.5 = 40 ms.
        read(&mut m, 39_999, STATUS, &mut status);
        assert_eq!(status[0] & STATUS_MEASURING, STATUS_MEASURING);
        read(&mut m, 40_000, STATUS, &mut status);
        assert_eq!(status[0], 0);
        let mut ctrl = [0u8];
        read(&mut m, 40_000, CTRL_MEAS, &mut ctrl);
        assert_eq!(ctrl[0], ctrl_meas(0b010, 0b101, 0b00), "back to sleep");

        let (adc_p, adc_t, adc_h) = raw(&mut m, 40_000);
        let t = Trimming::TYPICAL;
        let (t_fine, celsius) = t.temperature(adc_t);
        assert!((celsius - 21.5).abs() < 0.005);
        assert_eq!(adc_t & 0x7, 0, "17-bit temperature");
        assert!((t.pressure(adc_p, t_fine) - 99_000.0).abs() < 0.2);
        assert!((t.humidity(adc_h, t_fine) - 45.0).abs() < 0.01);
    }

    #[test]
    fn ctrl_hum_takes_effect_only_with_ctrl_meas() {
        let (mut m, _) = model(20.0, 50.0, 101_325.0);
        m.write(0, &[CTRL_MEAS, ctrl_meas(0b001, 0b001, 0b01)])
            .unwrap();
        m.write(0, &[CTRL_HUM, 0x01]).unwrap();
        let (_, _, adc_h) = raw(&mut m, 100_000);
        assert_eq!(
            adc_h, 0x8000,
            "humidity skipped: ctrl_hum written after ctrl_meas"
        );
        m.write(100_000, &[CTRL_MEAS, ctrl_meas(0b001, 0b001, 0b01)])
            .unwrap();
        let (adc_p, _, adc_h) = raw(&mut m, 200_000);
        assert_ne!(adc_h, 0x8000);
        assert_eq!(adc_p & 0xF, 0, "16-bit pressure at ×1");
    }

    #[test]
    fn soft_reset_clears_controls_and_copies_nvm() {
        let (mut m, _) = model(20.0, 50.0, 101_325.0);
        m.write(0, &[CONFIG, 0xFF, CTRL_HUM, 0x05, CTRL_MEAS, 0xFF])
            .unwrap();
        let mut ctrl = [0u8; 4];
        read(&mut m, 0, CTRL_HUM, &mut ctrl);
        assert_eq!((ctrl[0], ctrl[2], ctrl[3]), (0x05, 0xFF, 0xFD));
        m.write(1_000, &[RESET, RESET_COMMAND]).unwrap();
        read(&mut m, 1_000, CTRL_HUM, &mut ctrl);
        assert_eq!(ctrl, [0, STATUS_IM_UPDATE, 0, 0]);
        read(&mut m, 3_000, CTRL_HUM, &mut ctrl);
        assert_eq!(ctrl, [0; 4]);
        let mut id = [0u8];
        read(&mut m, 3_000, CHIP_ID, &mut id);
        assert_eq!(id[0], 0x60);
    }

    #[test]
    fn normal_mode_keeps_following_the_truth() {
        let (mut m, ambient) = model(10.0, 50.0, 101_325.0);
        // T ×1, P ×1, normal mode, t_sb = 0.5 ms.
        m.write(0, &[CTRL_MEAS, ctrl_meas(0b001, 0b001, 0b11)])
            .unwrap();
        let (_, adc_t, _) = raw(&mut m, 1_000_000);
        assert!((Trimming::TYPICAL.temperature(adc_t).1 - 10.0).abs() < 0.01);
        ambient.set(Conditions {
            temperature_c: 30.0,
            ..ambient.get()
        });
        let (_, adc_t, _) = raw(&mut m, 2_000_000);
        assert!((Trimming::TYPICAL.temperature(adc_t).1 - 30.0).abs() < 0.01);
        m.write(2_000_000, &[CTRL_MEAS, 0]).unwrap();
        let mut status = [0u8];
        read(&mut m, 2_000_001, STATUS, &mut status);
        assert_eq!(status[0], 0);
    }
}
