//! The simulated environment a device lives in, shared between the board process and the
//! device process: the state of the Wi-Fi, one-shot loop faults, sensor faults, storage stress.
//! The board sends it to the device as text lines on the device's standard input.

use std::fmt;

/// What the simulated Wi-Fi does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wifi {
    /// Normal.
    #[default]
    Up,
    /// The access point is gone: the link reports down.
    Down,
    /// The link reports up but no packet passes.
    Stuck,
}

impl Wifi {
    /// The lowercase name used on the control socket.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Stuck => "stuck",
        }
    }
}

/// One message from the board to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvMsg {
    /// The Wi-Fi changed.
    Wifi(Wifi),
    /// Stop the event loop for this many ms (as a hung task would).
    Block(u64),
    /// Run a permitted slow operation of this many ms inside the may-block window.
    Slow(u64),
    /// A sensor fault: chip name and fault name, as understood by hearth-simchips.
    Sensor(String, String),
    /// Write storage continuously (for power-cut tests).
    StorageStress(bool),
    /// The load on the scale, grams.
    Load(i64),
    /// Forget the ESP-NOW pairing.
    Repair,
    /// Cut the power just before the Nth flash operation (erase or write) on otadata from now.
    CutOtadata(u32),
    /// A keyfob press: encoder, address, button.
    Press(String, u32, u8),
    /// The tank's wet level switches.
    Tank(u16),
    /// The flow meter's pulses per second.
    Flow(u32),
    /// A switch manual input held active or released.
    Input(u8, bool),
    /// The Wi-Fi signal strength, dBm.
    Rssi(i8),
    /// The DS18x20s' temperature, millidegrees.
    Temperature(i32),
    /// The environment sent at start-up is complete: the device may boot.
    Ready,
}

impl fmt::Display for EnvMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wifi(w) => write!(f, "wifi {}", w.as_str()),
            Self::Block(ms) => write!(f, "block-ms {ms}"),
            Self::Slow(ms) => write!(f, "slow-ms {ms}"),
            Self::Sensor(chip, fault) => write!(f, "sensor {chip} {fault}"),
            Self::StorageStress(on) => {
                write!(f, "storage-stress {}", if *on { "on" } else { "off" })
            }
            Self::Load(g) => write!(f, "load-g {g}"),
            Self::Repair => f.write_str("repair"),
            Self::CutOtadata(n) => write!(f, "cut-otadata {n}"),
            Self::Press(e, a, b) => write!(f, "press {e} {a} {b}"),
            Self::Tank(m) => write!(f, "tank {m}"),
            Self::Temperature(t) => write!(f, "temperature-mc {t}"),
            Self::Rssi(r) => write!(f, "rssi-dbm {r}"),
            Self::Flow(r) => write!(f, "flow {r}"),
            Self::Input(k, on) => write!(f, "input {k} {}", if *on { "on" } else { "off" }),
            Self::Ready => f.write_str("ready"),
        }
    }
}

impl EnvMsg {
    /// Parse the line form produced by `Display`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ms = |w: &str| {
            w.parse::<u64>()
                .map_err(|_| format!("expected milliseconds, got {w:?}"))
        };
        match words.as_slice() {
            ["wifi", "up"] => Ok(Self::Wifi(Wifi::Up)),
            ["wifi", "down"] => Ok(Self::Wifi(Wifi::Down)),
            ["wifi", "stuck"] => Ok(Self::Wifi(Wifi::Stuck)),
            ["block-ms", n] => Ok(Self::Block(ms(n)?)),
            ["slow-ms", n] => Ok(Self::Slow(ms(n)?)),
            ["sensor", chip, fault] => Ok(Self::Sensor((*chip).into(), (*fault).into())),
            ["storage-stress", "on"] => Ok(Self::StorageStress(true)),
            ["storage-stress", "off"] => Ok(Self::StorageStress(false)),
            ["load-g", g] => g
                .parse()
                .map(Self::Load)
                .map_err(|_| format!("bad load {g:?}")),
            ["repair"] => Ok(Self::Repair),
            ["ready"] => Ok(Self::Ready),
            ["cut-otadata", n] => n
                .parse()
                .map(Self::CutOtadata)
                .map_err(|_| format!("bad otadata operation count {n:?}")),
            ["rssi-dbm", r] => r
                .parse()
                .map(Self::Rssi)
                .map_err(|_| format!("bad rssi {line:?}")),
            ["temperature-mc", t] => t
                .parse()
                .map(Self::Temperature)
                .map_err(|_| format!("bad temperature {line:?}")),
            ["tank", m] => m
                .parse()
                .map(Self::Tank)
                .map_err(|_| format!("bad tank {line:?}")),
            ["flow", r] => r
                .parse()
                .map(Self::Flow)
                .map_err(|_| format!("bad flow {line:?}")),
            ["input", k, "on"] => k
                .parse()
                .map(|k| Self::Input(k, true))
                .map_err(|_| format!("bad input {line:?}")),
            ["input", k, "off"] => k
                .parse()
                .map(|k| Self::Input(k, false))
                .map_err(|_| format!("bad input {line:?}")),
            ["press", e, a, b] => match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) => Ok(Self::Press((*e).into(), a, b)),
                _ => Err(format!("bad press {line:?}")),
            },
            _ => Err(format!("unknown environment message {line:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let all = [
            EnvMsg::Wifi(Wifi::Up),
            EnvMsg::Wifi(Wifi::Down),
            EnvMsg::Wifi(Wifi::Stuck),
            EnvMsg::Block(20_000),
            EnvMsg::Slow(5),
            EnvMsg::Sensor("hdc1080".into(), "absent".into()),
            EnvMsg::StorageStress(true),
            EnvMsg::StorageStress(false),
            EnvMsg::Rssi(-71),
            EnvMsg::Ready,
        ];
        for m in all {
            assert_eq!(EnvMsg::parse(&m.to_string()), Ok(m));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(EnvMsg::parse("wifi sideways").is_err());
        assert!(EnvMsg::parse("block-ms ten").is_err());
        assert!(EnvMsg::parse("").is_err());
    }
}
