//! Decimal numbers for `f32` without `core`'s float formatting and parsing machinery.
//!
//! A Hearth device reads numbers from its config and from MQTT payloads and prints readings
//! with a fixed number of decimals (`21.5`, `0.98`). `core` does both with general algorithms
//! (Grisu/Dragon for printing, Eisel-Lemire with its 10 KB table of powers of five for
//! parsing) that cost about 30 KB of flash on an ESP32-C3. The two functions here use integer
//! arithmetic on the float's bits and give the same results:
//!
//! - [`Decimals`] (an `f32`) and [`Decimals64`] print `x` with `places` decimals exactly as
//!   `format!("{x:.places$}")` does (the exact binary value rounded half to even, `NaN`,
//!   `inf`, `-inf`, and `-0.0` for a negative value that rounds to zero).
//! - [`parse_f32`] reads what `str::parse::<f32>` reads (an optional sign, digits with an
//!   optional point, an optional exponent, `inf`, `infinity`, `nan` in any case) and rounds
//!   correctly, as `str::parse` does, wherever the value is at least 1e-24 or its first 19
//!   significant digits end within 43 places after the point; below that (tiny values written
//!   with many digits) the result can be one unit in the last place away.
//!
//! ```
//! use hearth_core::decimal::{parse_f32, Decimals};
//! assert_eq!(parse_f32("21.45"), Some(21.45));
//! assert_eq!(Decimals(0.35, 1).to_string(), "0.3"); // 0.35f32 is 0.34999999...
//! assert_eq!(Decimals(-0.04, 1).to_string(), "-0.0"); // as `{:.1}` prints it
//! assert_eq!(parse_f32("21,5"), None);
//! ```

use core::fmt;

/// `self.0` printed with `self.1` decimals, as `{:.N}` prints it (see the module docs); at
/// most [`MAX_PLACES`] decimals, a larger count is taken as that. (A reading that must never
/// show as `-0.0` is [`crate::publish::Fixed`].)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decimals(pub f32, pub u8);

/// The most decimals [`Decimals`] prints (an f32 has about 7 significant digits).
pub const MAX_PLACES: u8 = 9;

impl fmt::Display for Decimals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimals(f, self.0, self.1, true)
    }
}

/// `self.0` printed with `self.1` decimals, as `{:.N}` prints an `f64` (see [`Decimals`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decimals64(pub f64, pub u8);

impl fmt::Display for Decimals64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimals(f, self.0, self.1, true)
    }
}

/// Write `x` with `places` decimals (at most [`MAX_PLACES`]) as `{:.N}` does, except that with
/// `minus_zero` false a negative value whose printed digits are all zero has no sign. An `f32`
/// is passed widened: the conversion is exact, so the digits are the `f32`'s.
pub fn write_decimals(
    f: &mut fmt::Formatter<'_>,
    x: impl Into<f64>,
    places: u8,
    minus_zero: bool,
) -> fmt::Result {
    let x: f64 = x.into();
    if x.is_nan() {
        return f.write_str("NaN");
    }
    if x.is_infinite() {
        return f.write_str(if x < 0.0 { "-inf" } else { "inf" });
    }
    let bits = x.to_bits();
    let raw_exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    // |x| = m * 2^e exactly, m < 2^53.
    let (m, e) = if raw_exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), raw_exp - 1075)
    };
    let places = places.min(MAX_PLACES);
    let scale = 10u128.pow(u32::from(places));
    let negative = x.is_sign_negative();
    if e >= 0 {
        // A whole number, perhaps beyond u128.
        if negative {
            f.write_str("-")?;
        }
        write_whole(f, m, e.unsigned_abs())?;
    } else {
        let sh = e.unsigned_abs();
        let (int, rest) = if sh >= 64 {
            (0, m)
        } else {
            (m >> sh, m & ((1 << sh) - 1))
        };
        // rest * 10^places / 2^sh rounded half to even: rest < 2^53 and 10^9 < 2^30, so the
        // product fits in 83 bits and a shift of 84 or more leaves less than a half.
        let t = u128::from(rest) * scale;
        let (q, round_up) = if sh >= 84 {
            (0, false)
        } else {
            let q = t >> sh;
            let r = t - (q << sh);
            let half = 1u128 << (sh - 1);
            // Ties go to the even last digit, the integer's when there are no decimals.
            let last = if places == 0 { u128::from(int) } else { q };
            (q, r > half || (r == half && last & 1 == 1))
        };
        let q = q + u128::from(round_up);
        let (int, dec) = if q == scale { (int + 1, 0) } else { (int, q) };
        if negative && (minus_zero || int != 0 || dec != 0) {
            f.write_str("-")?;
        }
        write!(f, "{int}")?;
        if places > 0 {
            // dec < 10^places <= 10^9
            write!(f, ".{:0width$}", dec as u32, width = usize::from(places))?;
        }
        return Ok(());
    }
    if places > 0 {
        write!(f, ".{:0width$}", 0, width = usize::from(places))?;
    }
    Ok(())
}

/// Write `m * 2^e` in decimal (up to 2^1024: the largest finite `f64`), without `u128`'s
/// formatting (2 KB on the chip).
fn write_whole(f: &mut fmt::Formatter<'_>, m: u64, e: u32) -> fmt::Result {
    if let Some(v) = m.checked_shl(e).filter(|v| v >> e == m) {
        return write!(f, "{v}");
    }
    // Little-endian 32-bit limbs of m << e, divided by 10^9 until nothing is left.
    let mut limbs = [0u32; 34];
    let (word, bit) = ((e / 32) as usize, e % 32);
    let wide = u128::from(m) << bit;
    for i in 0..3 {
        if let Some(l) = limbs.get_mut(word + i) {
            *l = (wide >> (32 * i)) as u32;
        }
    }
    let mut chunks = [0u32; 36]; // 10^9 each, least significant first; 2^1024 < 10^309
    let mut n = 0;
    let mut top = limbs.len();
    while top > 0 {
        let mut rem = 0u64;
        for l in limbs[..top].iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks[n] = rem as u32;
        n += 1;
        while top > 0 && limbs[top - 1] == 0 {
            top -= 1;
        }
    }
    write!(f, "{}", chunks[n - 1])?;
    for c in chunks[..n - 1].iter().rev() {
        write!(f, "{c:09}")?;
    }
    Ok(())
}

/// Parse a decimal number as `str::parse::<f32>` does (see the module docs); `None` where
/// it would give an error.
pub fn parse_f32(s: &str) -> Option<f32> {
    let b = s.as_bytes();
    let (negative, b) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    let sign = |v: f32| if negative { -v } else { v };
    if b.eq_ignore_ascii_case(b"inf") || b.eq_ignore_ascii_case(b"infinity") {
        return Some(sign(f32::INFINITY));
    }
    if b.eq_ignore_ascii_case(b"nan") {
        return Some(sign(f32::NAN));
    }
    // Digits, an optional point and more digits, then an optional exponent.
    let mut mant: u64 = 0;
    let mut digits = 0u32; // significant digits kept in `mant`
    let mut dropped = false; // a nonzero digit beyond the 19 kept
    let mut exp10: i64 = 0; // value = mant * 10^exp10 (+ what was dropped)
    let mut seen_digit = false;
    let mut seen_point = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                let d = u64::from(c - b'0');
                if digits < 19 {
                    if mant != 0 || d != 0 {
                        mant = mant * 10 + d;
                        digits += 1;
                    }
                    if seen_point {
                        exp10 -= 1;
                    }
                } else {
                    dropped |= d != 0;
                    if !seen_point {
                        exp10 += 1;
                    }
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if i < b.len() {
        if b[i] != b'e' && b[i] != b'E' {
            return None;
        }
        let rest = &b[i + 1..];
        let (eneg, rest) = match rest.first() {
            Some(b'-') => (true, &rest[1..]),
            Some(b'+') => (false, &rest[1..]),
            _ => (false, rest),
        };
        if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // A huge exponent saturates: the value is then 0 or infinite either way.
        let mut e: i64 = 0;
        for &c in rest {
            e = (e * 10 + i64::from(c - b'0')).min(1_000_000);
        }
        exp10 += if eneg { -e } else { e };
    }
    Some(sign(magnitude(mant, digits, exp10, dropped)))
}

/// `mant * 10^exp10`, rounded to the nearest `f32` (ties to even); `dropped` says the true
/// value is a little above it.
fn magnitude(mant: u64, digits: u32, exp10: i64, dropped: bool) -> f32 {
    if mant == 0 {
        return 0.0;
    }
    let top = exp10 + i64::from(digits); // value < 10^top
    if top > 39 {
        return f32::INFINITY;
    }
    if top < -46 {
        return 0.0; // under 1e-46, less than half the smallest subnormal
    }
    if exp10 >= 0 {
        let Some(v) = 10u128
            .checked_pow(exp10 as u32)
            .and_then(|p| p.checked_mul(u128::from(mant)))
        else {
            return f32::INFINITY; // at least 2^128
        };
        return round(v, 0, dropped);
    }
    let k = exp10.unsigned_abs() as u32;
    if k <= 43 {
        // mant * 10^-k = mant * 2^s / 5^k * 2^-(s + k), with mant shifted to the top of 128
        // bits; 5^43 < 2^100, so the quotient keeps at least 27 bits.
        let five = 5u128.pow(k);
        let s = u128::from(mant).leading_zeros();
        let n = u128::from(mant) << s;
        let (q, r) = (n / five, n % five);
        return round(q, -(s as i32) - k as i32, dropped || r != 0);
    }
    // Tiny values written with many digits: within one unit in the last place.
    let mut v = mant as f64;
    for _ in 0..k {
        v /= 10.0;
    }
    v as f32
}

/// `n * 2^exp` rounded to the nearest `f32`, ties to even, where `sticky` says the exact value
/// is a little above `n * 2^exp` (by less than `2^exp`); subnormal results included.
fn round(n: u128, exp: i32, sticky: bool) -> f32 {
    if n == 0 {
        return 0.0;
    }
    let len = 128 - n.leading_zeros() as i32;
    let e = len - 1 + exp; // the value is in [2^e, 2^(e+1))
                           // The weight of the result's last bit: 2^(e-23) for a normal, 2^-149 for a subnormal.
    let mut ulp = (e - 23).max(-149);
    let drop = ulp - exp; // bits of `n` below that last bit
    let mut sig = if drop <= 0 {
        // Exact (callers pass `sticky` only with more bits than an f32 keeps).
        n << drop.unsigned_abs()
    } else {
        let d = drop.unsigned_abs();
        let (sig, rest) = if d >= 128 {
            (0, n)
        } else {
            (n >> d, n & ((1u128 << d) - 1))
        };
        // The half of the last bit, 2^(d-1); from 2^128 on, `rest` is always below it.
        let up = match 1u128.checked_shl(d - 1) {
            Some(half) if d <= 128 => rest > half || (rest == half && (sticky || sig & 1 == 1)),
            _ => false,
        };
        sig + u128::from(up)
    };
    if sig == 1 << 24 {
        sig >>= 1;
        ulp += 1;
    }
    if sig < 1 << 23 {
        return f32::from_bits(sig as u32); // a subnormal (ulp is -149)
    }
    let biased = ulp + 150; // sig * 2^ulp = 1.f * 2^(ulp + 23)
    if biased >= 255 {
        return f32::INFINITY;
    }
    f32::from_bits(((biased as u32) << 23) | (sig as u32 & 0x7f_ffff))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::ToString;

    /// 64-bit words from the crate's seedable generator, deterministic.
    struct Rng(crate::rng::SplitMix64);
    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(crate::rng::SplitMix64::new(seed))
        }
        fn next(&mut self) -> u64 {
            use crate::rng::Rng as _;
            (u64::from(self.0.next_u32()) << 32) | u64::from(self.0.next_u32())
        }
    }

    #[test]
    fn fixed_prints_as_std_does_for_every_kind_of_f32() {
        let special = [
            0.0f32,
            -0.0,
            0.05,
            -0.05,
            0.25,
            0.35,
            1.5,
            2.5,
            -2.5,
            0.125,
            21.45,
            99.95,
            9.995,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-45,
            f32::EPSILON,
            16_777_216.0,
            1e10,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -0.0004,
            0.9999999,
            123_456.79,
        ];
        for x in special {
            for p in 0..=MAX_PLACES {
                let p_ = usize::from(p);
                assert_eq!(
                    Decimals(x, p).to_string(),
                    format!("{x:.p_$}"),
                    "{x:e} with {p}"
                );
            }
            assert_eq!(
                Decimals(x, 200).to_string(),
                Decimals(x, MAX_PLACES).to_string()
            );
        }
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let bits = rng.next() as u32;
            let x = f32::from_bits(bits);
            let p = (rng.next() % 5) as u8;
            let p_ = usize::from(p);
            assert_eq!(
                Decimals(x, p).to_string(),
                format!("{x:.p_$}"),
                "{bits:#x} with {p}"
            );
            // Readings: small magnitudes with few decimals.
            let y = (rng.next() % 2_000_000) as f32 / 1000.0 - 1000.0;
            let std = format!("{y:.p_$}");
            assert_eq!(Decimals(y, p).to_string(), std, "{y} with {p}");
            // A reading never shows a negative zero.
            let zero = std.bytes().all(|c| matches!(c, b'-' | b'0' | b'.'));
            let reading = if zero {
                std.trim_start_matches('-')
            } else {
                &std
            };
            let fixed = crate::publish::Fixed(y, p_).to_string();
            assert_eq!(fixed, reading, "{y} with {p}");
        }
    }

    #[test]
    fn decimals64_prints_as_std_does() {
        let special = [
            0.0f64,
            -0.0,
            0.05,
            2.5,
            -2.5,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            2f64.powi(128),
            2f64.powi(128) - 2f64.powi(75),
            0.0005,
            12.345,
        ];
        for x in special {
            for p in 0..=MAX_PLACES {
                let p_ = usize::from(p);
                assert_eq!(
                    Decimals64(x, p).to_string(),
                    format!("{x:.p_$}"),
                    "{x:e} with {p}"
                );
            }
        }
        let mut rng = Rng::new(0x51f1_5eed_0bad_cafe);
        for _ in 0..200_000 {
            let x = f64::from_bits(rng.next());
            let p = (rng.next() % 5) as u8;
            let p_ = usize::from(p);
            assert_eq!(
                Decimals64(x, p).to_string(),
                format!("{x:.p_$}"),
                "{x:e} with {p}"
            );
            let y = (rng.next() % 2_000_000_000) as f64 / 7e5 - 1000.0;
            assert_eq!(
                Decimals64(y, p).to_string(),
                format!("{y:.p_$}"),
                "{y} with {p}"
            );
        }
    }

    #[test]
    fn parse_reads_what_std_reads() {
        let cases = [
            "0",
            "-0",
            "+1",
            "1.",
            ".5",
            "-.5",
            "1e3",
            "1E-3",
            "2.5e+2",
            "inf",
            "-Infinity",
            "NaN",
            "3.4028235e38",
            "3.4028236e38",
            "1e39",
            "1e-45",
            "7e-46",
            "1e-46",
            "1.4e-45",
            "0.1",
            "21.45",
            "0.000001",
            "16777217",
            "16777219",
            "1e-38",
            "1.1754942e-38",
            "123456789012345678901234567890",
            "0.30000000000000000000000000001",
            "00012.500",
            "1e999999999999",
            "1e-999999999999",
            "9.999999e-41",
        ];
        for s in cases {
            let want = s.parse::<f32>().ok();
            let got = parse_f32(s);
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits), "{s}");
        }
        for bad in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,5", " 1", "1 ", "0x10", "--1", "in",
            "nan1",
        ] {
            assert_eq!(parse_f32(bad), None, "{bad:?}");
            assert!(bad.parse::<f32>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_rounds_as_std_does_over_random_decimals_and_every_printed_f32() {
        let mut rng = Rng::new(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            // A random decimal of up to 20 digits with the point anywhere and an exponent.
            let n = 1 + rng.next() % 20;
            let mut s = std::string::String::new();
            for _ in 0..n {
                s.push(char::from(b'0' + (rng.next() % 10) as u8));
            }
            let point = (rng.next() % (n + 1)) as usize;
            s.insert(point, '.');
            let e = (rng.next() % 90) as i64 - 60;
            let s = format!("{s}e{e}");
            let want = s.parse::<f32>().unwrap();
            let got = parse_f32(&s).unwrap();
            let v = want.abs();
            if v >= 1e-24 || e > -24 {
                assert_eq!(got.to_bits(), want.to_bits(), "{s}");
            } else {
                let d = got.to_bits().abs_diff(want.to_bits());
                assert!(d <= 1, "{s}: {got:e} against {want:e}");
            }
            // What a device prints, read back.
            let x = f32::from_bits(rng.next() as u32);
            if x.is_finite() {
                let printed = format!("{x:e}");
                assert_eq!(
                    parse_f32(&printed).map(f32::to_bits),
                    Some(x.to_bits()),
                    "{printed}"
                );
                let p = (rng.next() % 4) as usize;
                let short = format!("{:.p$}", (rng.next() % 100_000) as f32 / 7.0);
                assert_eq!(
                    parse_f32(&short).map(f32::to_bits),
                    short.parse::<f32>().ok().map(f32::to_bits),
                    "{short}"
                );
            }
        }
    }
}
