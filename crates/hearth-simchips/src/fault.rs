//! The faults a simulated chip can be put into, and the parsing of control commands such as
//! `sensor hdc1080 absent` into a bus address and a fault.

use std::fmt;
use std::str::FromStr;

/// How a simulated chip misbehaves on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChipFault {
    /// Healthy.
    #[default]
    None,
    /// Not on the bus at all: its address is never acknowledged (unplugged, unpowered).
    Absent,
    /// Acknowledges its address and accepts writes, but every data read fails.
    ReadFails,
    /// Acknowledges everything, ignores writes and reads back 0xFF (a confused chip or a
    /// different chip answering at the address): wrong identity, implausible data.
    Garbage,
}

impl ChipFault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            ChipFault::None => "ok",
            ChipFault::Absent => "absent",
            ChipFault::ReadFails => "readfails",
            ChipFault::Garbage => "garbage",
        }
    }
}

impl fmt::Display for ChipFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The words accepted for faults, for error messages.
const FAULT_WORDS: &str = "ok (or none), absent, readfails, garbage";

impl FromStr for ChipFault {
    type Err = String;

    /// Accepts `ok`/`none`, `absent`, `readfails` (also `readfail`, `read-fails`, `read_fails`), `garbage`,
    /// in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        let word = s.trim().to_ascii_lowercase();
        match word.as_str() {
            "ok" | "none" => Ok(ChipFault::None),
            "absent" => Ok(ChipFault::Absent),
            "readfails" | "readfail" | "read-fails" | "read_fails" => Ok(ChipFault::ReadFails),
            "garbage" => Ok(ChipFault::Garbage),
            _ => Err(format!(
                "unknown sensor fault '{}': expected one of {FAULT_WORDS}",
                s.trim()
            )),
        }
    }
}

/// The sensor chips a control command can name, with their bus addresses.
pub const SENSOR_CHIPS: &[(&str, u8)] = &[
    ("hdc1080", crate::hdc1080::ADDRESS),
    ("bme280", crate::bme280::ADDRESS_PRIMARY),
    ("mcp23017", 0x20),
    ("ssd1306", 0x3C),
];

/// The bus address of a sensor chip named in a control command (case-insensitive).
pub fn sensor_address(chip: &str) -> Option<u8> {
    let chip = chip.trim();
    SENSOR_CHIPS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(chip))
        .map(|&(_, address)| address)
}

/// Parses the two words of `sensor <chip> <fault>` into the chip's address and the fault, e.g.
/// `("bme280", "ok")` → `(0x76, ChipFault::None)`.
pub fn parse_sensor_fault(chip: &str, fault: &str) -> Result<(u8, ChipFault), String> {
    let address = sensor_address(chip).ok_or_else(|| {
        let known: Vec<&str> = SENSOR_CHIPS.iter().map(|(name, _)| *name).collect();
        format!(
            "unknown sensor chip '{}': expected one of {}",
            chip.trim(),
            known.join(", ")
        )
    })?;
    let fault = fault.parse::<ChipFault>()?;
    Ok((address, fault))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse_sensor_fault("hdc1080", "absent"),
            Ok((0x40, ChipFault::Absent))
        );
        assert_eq!(
            parse_sensor_fault("BME280", "ok"),
            Ok((0x76, ChipFault::None))
        );
        assert_eq!(
            parse_sensor_fault("bme280", "none"),
            Ok((0x76, ChipFault::None))
        );
        assert_eq!(
            parse_sensor_fault(" hdc1080 ", "Read-Fails"),
            Ok((0x40, ChipFault::ReadFails))
        );
        assert_eq!(
            parse_sensor_fault("bme280", "garbage"),
            Ok((0x76, ChipFault::Garbage))
        );
    }

    #[test]
    fn errors_name_the_bad_word_and_the_choices() {
        let err = parse_sensor_fault("dht22", "ok").unwrap_err();
        assert!(err.contains("'dht22'") && err.contains("hdc1080") && err.contains("bme280"));
        let err = parse_sensor_fault("hdc1080", "broken").unwrap_err();
        assert!(err.contains("'broken'") && err.contains("absent") && err.contains("garbage"));
    }

    #[test]
    fn names_round_trip() {
        for fault in [
            ChipFault::None,
            ChipFault::Absent,
            ChipFault::ReadFails,
            ChipFault::Garbage,
        ] {
            assert_eq!(fault.to_string().parse::<ChipFault>(), Ok(fault));
        }
    }
}
