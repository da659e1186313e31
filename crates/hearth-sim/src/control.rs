//! The control interface of a simulated device: a Unix socket `control.sock` in the state
//! directory taking one command line per connection and answering one line. `hearth sim ctl`
//! is its client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::Wifi;

/// File name of the control socket inside the state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// The control socket of the state directory `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// A command accepted on the control socket.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlCmd {
    /// Change the Wi-Fi.
    Wifi(Wifi),
    /// Stop the device's event loop for this many ms.
    Block(u64),
    /// A permitted slow operation of this many ms.
    Slow(u64),
    /// Kill the device process without any cleanup, then power it up again.
    PowerCut,
    /// Stop the simulation.
    Quit,
    /// End a deep sleep (or the pause after repeated crashes) now: the device starts.
    Wake,
    /// Inject a sensor fault (`sensor hdc1080 absent`, `sensor bme280 ok`).
    Sensor(String, String),
    /// Keep the device writing its store (`storage-stress on|off`).
    StorageStress(bool),
    /// One-line status.
    Status,
    /// Put this load (grams) on the scale's load cell (`load 12.5`, in kg).
    Load(i64),
    /// Cut the power just before the Nth flash operation on otadata from now (1: the erase of
    /// the next entry's sector, 2: the write of its body, 3: the write of its CRC), so a slot
    /// switch is interrupted exactly there.
    PowerCutAtOtadata(u32),
    /// From now on the appliance crashes two seconds after boot while the device runs the
    /// config it runs now (a defect that a config triggers; a different config, e.g. one pushed
    /// with `hearth config push`, cures it).
    CrashConfig,
    /// Ask an ESP-NOW peripheral to forget its pairing and scan again (the reference's
    /// `pair.txt`).
    Repair,
    /// Press a 433 MHz keyfob: encoder (`ev1527`, `ht6p20`), address, button.
    Press(String, u32, u8),
    /// The tank's level switches that are wet, as a bitmap (h2o).
    Tank(u16),
    /// The flow meter's pulse rate, pulses per second (h2o).
    Flow(u32),
    /// A manual input of the switch appliance held active (`on`) or released (`off`).
    Input(u8, bool),
    /// The temperature every DS18x20 on the 1-Wire bus measures, in millidegrees.
    Temperature(i32),
    /// The Wi-Fi signal strength the station receives, dBm.
    Rssi(i8),
}

/// Help text listing every command.
pub const HELP: &str =
    "commands: wifi up|down|stuck, rssi DBM, block SECONDS, slow SECONDS, power-cut, quit, \
wake, sensor CHIP FAULT (chips: hdc1080, bme280; faults: ok, absent, readfails, garbage; \
chip hx711: ok, absent, readfails, unstable; chip pzem: ok, absent, readfails, garbage; chip ook: ok, noise, absent), press ev1527|ht6p20 ADDRESS BUTTON, load KG, repair, storage-stress on|off, status";

fn seconds(word: &str) -> Result<u64, String> {
    let s: f64 = word
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {word:?}"))?;
    if !(0.0..=3600.0).contains(&s) {
        return Err(format!("seconds must be between 0 and 3600, got {word}"));
    }
    Ok((s * 1000.0).round() as u64)
}

/// A load in kg (-1000..=1000) as grams.
fn grams(word: &str) -> Result<i64, String> {
    match word.parse::<f64>() {
        Ok(kg) if (-1000.0..=1000.0).contains(&kg) => Ok((kg * 1000.0).round() as i64),
        _ => Err(format!(
            "expected a load in kg between -1000 and 1000, got {word:?}"
        )),
    }
}

impl ControlCmd {
    /// Parse a command line.
    pub fn parse(line: &str) -> Result<Self, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["wifi", "up"] => Ok(Self::Wifi(Wifi::Up)),
            ["wifi", "down"] => Ok(Self::Wifi(Wifi::Down)),
            ["wifi", "stuck"] => Ok(Self::Wifi(Wifi::Stuck)),
            ["wifi", ..] => Err("usage: wifi up|down|stuck".into()),
            ["block", s] => Ok(Self::Block(seconds(s)?)),
            ["slow", s] => Ok(Self::Slow(seconds(s)?)),
            ["block" | "slow", ..] => Err("usage: block|slow SECONDS".into()),
            ["power-cut"] => Ok(Self::PowerCut),
            ["quit"] => Ok(Self::Quit),
            ["wake"] => Ok(Self::Wake),
            ["status"] => Ok(Self::Status),
            ["tank", mask] => {
                let m = mask
                    .strip_prefix("0x")
                    .map_or_else(|| mask.parse::<u16>(), |h| u16::from_str_radix(h, 16))
                    .map_err(|_| {
                        format!("tank takes a 16-bit mask of wet switches, not {mask:?}")
                    })?;
                Ok(Self::Tank(m))
            }
            ["flow", rate] => match rate.parse::<u32>() {
                Ok(r) if r <= 100_000 => Ok(Self::Flow(r)),
                _ => Err(format!(
                    "flow takes pulses per second 0..=100000, not {rate:?}"
                )),
            },
            ["input", k, state @ ("on" | "off")] => match k.parse::<u8>() {
                Ok(k) if k < 32 => Ok(Self::Input(k, *state == "on")),
                _ => Err(format!("input takes an input number 0..=31, not {k:?}")),
            },
            ["tank" | "flow" | "input", ..] => {
                Err("usage: tank MASK | flow PULSES_PER_S | input N on|off".into())
            }
            ["rssi", dbm] => match dbm.parse::<i8>() {
                Ok(r) if (-100..=0).contains(&r) => Ok(Self::Rssi(r)),
                _ => Err(format!("rssi takes dBm in -100..=0, not {dbm:?}")),
            },
            ["temperature", c] => match c.parse::<f64>() {
                Ok(t) if (-55.0..=125.0).contains(&t) => {
                    Ok(Self::Temperature((t * 1000.0).round() as i32))
                }
                _ => Err(format!(
                    "temperature takes °C in -55..=125 (the DS18x20 range), not {c:?}"
                )),
            },
            ["sensor", "onewire", fault] => {
                fault.parse::<hearth_simchips::OneWireFault>()?;
                Ok(Self::Sensor("onewire".into(), (*fault).into()))
            }
            ["sensor", "flow", fault] => {
                fault.parse::<hearth_simchips::FlowFault>()?;
                Ok(Self::Sensor("flow".into(), (*fault).into()))
            }
            ["sensor", "shiftreg", fault] => {
                fault.parse::<hearth_simchips::ShiftRegFault>()?;
                Ok(Self::Sensor("shiftreg".into(), (*fault).into()))
            }
            ["sensor", "ook", fault] => {
                fault.parse::<hearth_simchips::OokFault>()?;
                Ok(Self::Sensor("ook".into(), (*fault).into()))
            }
            ["press", enc @ ("ev1527" | "ht6p20"), address, button] => {
                let address = address
                    .parse::<u32>()
                    .map_err(|_| format!("address must be a number, not {address:?}"))?;
                let button = button
                    .parse::<u8>()
                    .map_err(|_| format!("button must be 0..=255, not {button:?}"))?;
                Ok(Self::Press((*enc).into(), address, button))
            }
            ["press", ..] => Err("usage: press ev1527|ht6p20 ADDRESS BUTTON".into()),
            ["sensor", "pzem", fault] => {
                fault.parse::<hearth_simchips::ChipFault>()?;
                Ok(Self::Sensor("pzem".into(), (*fault).into()))
            }
            ["sensor", "hx711", fault] => {
                fault.parse::<hearth_simchips::hx711::Hx711Fault>()?;
                Ok(Self::Sensor("hx711".into(), (*fault).into()))
            }
            ["sensor", chip, fault] => {
                hearth_simchips::parse_sensor_fault(chip, fault)?;
                Ok(Self::Sensor((*chip).into(), (*fault).into()))
            }
            ["load", kg] => Ok(Self::Load(grams(kg)?)),
            ["load", ..] => Err("usage: load KG".into()),
            ["repair"] => Ok(Self::Repair),
            ["crash-config"] => Ok(Self::CrashConfig),
            ["power-cut-at", "otadata", n] => match n.parse() {
                Ok(n) if n >= 1 => Ok(Self::PowerCutAtOtadata(n)),
                _ => Err("usage: power-cut-at otadata N (N >= 1)".into()),
            },
            ["sensor", ..] => Err("usage: sensor CHIP FAULT".into()),
            ["storage-stress", "on"] => Ok(Self::StorageStress(true)),
            ["storage-stress", "off"] => Ok(Self::StorageStress(false)),
            [] => Err(format!("empty command; {HELP}")),
            [other, ..] => Err(format!("unknown command {other:?}; {HELP}")),
        }
    }
}

/// Why [`send`] got no answer from a simulator.
#[derive(Debug)]
pub enum SendError {
    /// Nothing listens on the control socket.
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// The state directory it was derived from.
        dir: PathBuf,
        /// What connecting said.
        source: std::io::Error,
    },
    /// The command could not be written.
    Write(std::io::Error),
    /// The simulator did not answer (within 30 s).
    NoAnswer(std::io::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unreachable { path, dir, source } => write!(
                f,
                "cannot reach the simulator at {}: {source} (is `hearth sim --state {}` running?)",
                path.display(),
                dir.display()
            ),
            SendError::Write(e) => write!(f, "sending the command failed: {e}"),
            SendError::NoAnswer(e) => write!(f, "no answer from the simulator: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Unreachable { source: e, .. }
            | SendError::Write(e)
            | SendError::NoAnswer(e) => Some(e),
        }
    }
}

/// Send `command` to the simulator whose state directory is `dir`; returns its answer (a
/// refused command is an answer: it starts with `error`).
pub fn send(dir: &Path, command: &str) -> Result<String, SendError> {
    let path = socket_path(dir);
    let mut stream = UnixStream::connect(&path).map_err(|source| SendError::Unreachable {
        path: path.clone(),
        dir: dir.to_path_buf(),
        source,
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    writeln!(stream, "{command}").map_err(SendError::Write)?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(SendError::NoAnswer)?;
    Ok(reply.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scale_commands() {
        assert_eq!(ControlCmd::parse("load 12.5"), Ok(ControlCmd::Load(12_500)));
        assert_eq!(ControlCmd::parse("load -0.25"), Ok(ControlCmd::Load(-250)));
        assert!(ControlCmd::parse("load heavy").is_err());
        assert!(ControlCmd::parse("load 1e9").is_err());
        assert!(ControlCmd::parse("load NaN").is_err());
        assert_eq!(
            ControlCmd::parse("sensor hx711 unstable"),
            Ok(ControlCmd::Sensor("hx711".into(), "unstable".into()))
        );
        assert!(ControlCmd::parse("sensor hx711 garbage").is_err());
        assert_eq!(ControlCmd::parse("repair"), Ok(ControlCmd::Repair));
        assert_eq!(
            ControlCmd::parse("press ev1527 12345 2"),
            Ok(ControlCmd::Press("ev1527".into(), 12345, 2))
        );
        assert!(ControlCmd::parse("press ev1527 x 2").is_err());
        assert!(ControlCmd::parse("press nec 1 2").is_err());
        assert!(ControlCmd::parse("sensor ook loud").is_err());
        assert_eq!(ControlCmd::parse("tank 0x0f"), Ok(ControlCmd::Tank(15)));
        assert_eq!(ControlCmd::parse("tank 7"), Ok(ControlCmd::Tank(7)));
        assert!(ControlCmd::parse("tank 0x1ffff").is_err());
        assert_eq!(ControlCmd::parse("flow 120"), Ok(ControlCmd::Flow(120)));
        assert_eq!(
            ControlCmd::parse("temperature -5.5"),
            Ok(ControlCmd::Temperature(-5500))
        );
        assert!(ControlCmd::parse("temperature 300").is_err());
        assert_eq!(ControlCmd::parse("rssi -71"), Ok(ControlCmd::Rssi(-71)));
        for bad in ["rssi 5", "rssi -101", "rssi x", "rssi"] {
            assert!(ControlCmd::parse(bad).is_err(), "{bad}");
        }
        assert!(ControlCmd::parse("sensor onewire hot").is_err());
        assert_eq!(
            ControlCmd::parse("input 2 on"),
            Ok(ControlCmd::Input(2, true))
        );
        assert!(ControlCmd::parse("input 40 on").is_err());
        assert!(ControlCmd::parse("input 1 maybe").is_err());
    }

    #[test]
    fn parses_every_command() {
        assert_eq!(
            ControlCmd::parse("wifi stuck"),
            Ok(ControlCmd::Wifi(Wifi::Stuck))
        );
        assert_eq!(ControlCmd::parse("block 20"), Ok(ControlCmd::Block(20_000)));
        assert_eq!(ControlCmd::parse("slow 0.5"), Ok(ControlCmd::Slow(500)));
        assert_eq!(ControlCmd::parse("power-cut"), Ok(ControlCmd::PowerCut));
        assert_eq!(ControlCmd::parse(" quit "), Ok(ControlCmd::Quit));
        assert_eq!(ControlCmd::parse("wake"), Ok(ControlCmd::Wake));
        assert_eq!(ControlCmd::parse("status"), Ok(ControlCmd::Status));
        assert_eq!(
            ControlCmd::parse("sensor hdc1080 absent"),
            Ok(ControlCmd::Sensor("hdc1080".into(), "absent".into()))
        );
        assert_eq!(
            ControlCmd::parse("storage-stress on"),
            Ok(ControlCmd::StorageStress(true))
        );
    }

    #[test]
    fn bad_commands_say_what_is_expected() {
        for bad in [
            "",
            "wifi",
            "wifi sideways",
            "block",
            "block -1",
            "block x",
            "block 99999",
            "sensor",
            "sensor nochip absent",
            "sensor hdc1080 melted",
            "dance",
        ] {
            let err = ControlCmd::parse(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
        assert!(ControlCmd::parse("dance")
            .unwrap_err()
            .contains("wifi up|down|stuck"));
    }
}
