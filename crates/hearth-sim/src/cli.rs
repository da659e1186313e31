//! Command-line parsing for `hearth`: a small hand-written parser (no clap, to keep the build
//! lean) whose every error names the problem and shows the usage.

use std::path::PathBuf;

/// Usage text.
pub const USAGE: &str = "\
hearth — reliable home-automation appliances, simulated on your PC

usage:
  hearth demo [--port PORT] [--devices N] [--for SECONDS]
      start an embedded MQTT broker on 127.0.0.1 (default port 1883; 0 = any free port)
      and N simulated weather stations (default 3), and show their topics live until
      Ctrl-C (or for SECONDS)
  hearth sim --config FILE --state DIR [--air NAME|PATH]
      run one simulated appliance against the broker named in FILE; DIR keeps its
      flash, its log (device.log) and its control socket
  hearth sim ctl DIR COMMAND...
      send a fault or control command to the simulator running with state DIR:
      wifi up|down|stuck, block SECONDS, slow SECONDS, power-cut, quit,
      sensor CHIP FAULT, load KG, press ev1527|ht6p20 ADDRESS BUTTON, repair,
      storage-stress on|off, status
  hearth flash --chip esp32c3|esp32c6 --config FILE [--elf FIRMWARE] (--save-image OUT | --port PORT)
      validate FILE, then build bootloader + partition table + firmware + config and either
      save one merged flash image (no board needed) or write it to the board on PORT
  hearth flash monitor --port PORT [--baud 115200]
      show a board's serial log
  hearth config check FILE
      validate a config.txt; prints every error with its line and exits non-zero
  hearth espnow sniff [--air NAME|PATH] [--psk PSK --group NAME] [--version 2|3] [--count N] [--for SECONDS]
      print every frame of the simulated ESP-NOW air (all channels), decoded with PSK and group
  hearth espnow send [--air NAME|PATH] --channel C [--from MAC] [--to MAC|broadcast]
                     (--hex BYTES | --psk PSK --group NAME [--version 2|3] [--sender MAC] [--counter N] KIND)
      inject one frame, wire format v3 unless --version 2 (--sender, --counter: v3 only); KIND:
      data --payload TEXT [--ts MS] [--tid HEX] | ping --ts MS [--tid HEX] | pairreq | wakeup [--tid HEX]
      | ts [--subtype default|confirm|backdata] [--confirm-tid HEX] [--payload TEXT] [--ts MS] [--tid HEX]
      (--payload accepts \\n \\t \\xHH escapes)
  hearth espnow air [--air NAME|PATH] [--loss PERCENT] [--rssi DBM]
      show or set the air's frame loss (0..=100 %) and signal strength (-100..=0 dBm)
      (every espnow command: the air is $HEARTH_AIR, else `default`, unless --air is given)
  hearth help | --help | --version";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    /// `hearth demo`.
    Demo {
        /// Broker port.
        port: u16,
        /// Number of simulated devices.
        devices: u32,
        /// Stop after this many seconds (for scripts and tests); `None` = until Ctrl-C.
        seconds: Option<u64>,
    },
    /// `hearth sim`.
    Sim {
        /// Config file.
        config: PathBuf,
        /// State directory.
        state: PathBuf,
        /// The simulated ESP-NOW air (`--air NAME|PATH`); `None` = the machine's default air.
        air: Option<String>,
    },
    /// `hearth sim ctl`.
    Ctl {
        /// State directory.
        state: PathBuf,
        /// The command words joined by spaces.
        command: String,
    },
    /// The device process started by `hearth sim` (internal).
    Device {
        /// Config file.
        config: PathBuf,
        /// State directory.
        state: PathBuf,
    },
    /// `hearth flash`: build the board image and save it or write it to a board.
    Flash {
        /// Chip name (`esp32c3`, `esp32c6`).
        chip: String,
        /// Config file written into the config partition.
        config: PathBuf,
        /// Firmware ELF; default: the release build of the firmware for the chip.
        elf: Option<PathBuf>,
        /// Save the merged image here instead of flashing.
        save_image: Option<PathBuf>,
        /// Serial port of the board.
        port: Option<String>,
    },
    /// `hearth flash monitor`: show a board's serial log.
    Monitor {
        /// Serial port.
        port: String,
        /// Baud rate.
        baud: u32,
    },
    /// `hearth config check`.
    ConfigCheck {
        /// Config file.
        file: PathBuf,
    },
    /// `hearth espnow`: sniff, send on, or configure the simulated ESP-NOW air.
    Espnow(crate::espnow_tool::Command),
    /// Help.
    Help,
    /// Version.
    Version,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a str>, flag: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn config_and_state<'a>(
    args: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<(PathBuf, PathBuf), String> {
    let mut config = None;
    let mut state = None;
    let mut it = args;
    while let Some(a) = it.next() {
        match a {
            "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
            "--state" => state = Some(PathBuf::from(value(&mut it, a)?)),
            other => return Err(format!("unexpected argument {other:?} for `{what}`")),
        }
    }
    let config = config.ok_or_else(|| format!("`{what}` needs --config FILE"))?;
    let state = state.ok_or_else(|| format!("`{what}` needs --state DIR"))?;
    Ok((config, state))
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut it = args.iter().map(String::as_str);
    match it.next() {
        None | Some("help" | "--help" | "-h") => Ok(Cli::Help),
        Some("--version" | "-V") => Ok(Cli::Version),
        Some("demo") => {
            let mut port = 1883;
            let mut devices = 3;
            let mut seconds = None;
            while let Some(a) = it.next() {
                match a {
                    "--port" => {
                        let v = value(&mut it, a)?;
                        port = v
                            .parse()
                            .map_err(|_| format!("--port expects 0..=65535, got {v:?}"))?;
                    }
                    "--devices" => {
                        let v = value(&mut it, a)?;
                        devices = v
                            .parse()
                            .ok()
                            .filter(|n| (1..=20).contains(n))
                            .ok_or_else(|| format!("--devices expects 1..=20, got {v:?}"))?;
                    }
                    "--for" => {
                        let v = value(&mut it, a)?;
                        seconds = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                            format!("--for expects a number of seconds, got {v:?}")
                        })?);
                    }
                    other => return Err(format!("unexpected argument {other:?} for `demo`")),
                }
            }
            Ok(Cli::Demo {
                port,
                devices,
                seconds,
            })
        }
        Some("sim") => {
            let rest: Vec<&str> = it.collect();
            if rest.first() == Some(&"ctl") {
                let state = rest.get(1).ok_or("`sim ctl` needs the state directory")?;
                if rest.len() < 3 {
                    return Err("`sim ctl DIR` needs a command (try `status`)".into());
                }
                return Ok(Cli::Ctl {
                    state: PathBuf::from(state),
                    command: rest[2..].join(" "),
                });
            }
            let mut air = None;
            let mut others = Vec::new();
            let mut words = rest.into_iter();
            while let Some(w) = words.next() {
                if w == "--air" {
                    let name = value(&mut words, w)?;
                    if name.is_empty() {
                        return Err("--air needs a name or a path".into());
                    }
                    air = Some(name.to_string());
                } else {
                    others.push(w);
                }
            }
            let (config, state) = config_and_state(others.into_iter(), "sim")?;
            Ok(Cli::Sim { config, state, air })
        }
        Some("sim-device") => {
            let (config, state) = config_and_state(it, "sim-device")?;
            Ok(Cli::Device { config, state })
        }
        Some("flash") => {
            let rest: Vec<&str> = it.collect();
            if rest.first() == Some(&"monitor") {
                let mut port = None;
                let mut baud = 115_200;
                let mut it = rest[1..].iter().copied();
                while let Some(a) = it.next() {
                    match a {
                        "--port" => port = Some(value(&mut it, a)?.to_string()),
                        "--baud" => {
                            let v = value(&mut it, a)?;
                            baud = v
                                .parse()
                                .ok()
                                .filter(|b| *b > 0)
                                .ok_or_else(|| format!("--baud expects a rate, got {v:?}"))?;
                        }
                        other => {
                            return Err(format!(
                                "unexpected argument {other:?} for `flash monitor`"
                            ))
                        }
                    }
                }
                let port = port.ok_or("`flash monitor` needs --port PORT")?;
                return Ok(Cli::Monitor { port, baud });
            }
            let (mut chip, mut config, mut elf, mut save_image, mut port) =
                (None, None, None, None, None);
            let mut it = rest.into_iter();
            while let Some(a) = it.next() {
                match a {
                    "--chip" => chip = Some(value(&mut it, a)?.to_string()),
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--elf" => elf = Some(PathBuf::from(value(&mut it, a)?)),
                    "--save-image" => save_image = Some(PathBuf::from(value(&mut it, a)?)),
                    "--port" => port = Some(value(&mut it, a)?.to_string()),
                    other => return Err(format!("unexpected argument {other:?} for `flash`")),
                }
            }
            let chip = chip.ok_or("`flash` needs --chip esp32c3|esp32c6")?;
            let config = config.ok_or(
                "`flash` needs --config FILE (it is validated before anything is written)",
            )?;
            if save_image.is_some() == port.is_some() {
                return Err("`flash` needs exactly one of --save-image OUT or --port PORT".into());
            }
            Ok(Cli::Flash {
                chip,
                config,
                elf,
                save_image,
                port,
            })
        }
        Some("config") => match (it.next(), it.next(), it.next()) {
            (Some("check"), Some(file), None) => Ok(Cli::ConfigCheck {
                file: PathBuf::from(file),
            }),
            _ => Err("usage: hearth config check FILE".into()),
        },
        Some("espnow") => crate::espnow_tool::parse(it).map(Cli::Espnow),
        Some(other) => Err(format!("unknown command {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cli, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(
            p("demo"),
            Ok(Cli::Demo {
                port: 1883,
                devices: 3,
                seconds: None
            })
        );
        assert_eq!(
            p("demo --port 0 --devices 5 --for 9"),
            Ok(Cli::Demo {
                port: 0,
                devices: 5,
                seconds: Some(9)
            })
        );
        assert_eq!(
            p("sim --config c.txt --state d"),
            Ok(Cli::Sim {
                config: "c.txt".into(),
                state: "d".into(),
                air: None,
            })
        );
        assert_eq!(
            p("sim --air kitchen --config c.txt --state d"),
            Ok(Cli::Sim {
                config: "c.txt".into(),
                state: "d".into(),
                air: Some("kitchen".into()),
            })
        );
        assert!(p("sim --config c.txt --state d --air").is_err());
        assert_eq!(
            p("sim ctl d wifi down"),
            Ok(Cli::Ctl {
                state: "d".into(),
                command: "wifi down".into()
            })
        );
        assert_eq!(
            p("config check x.txt"),
            Ok(Cli::ConfigCheck {
                file: "x.txt".into()
            })
        );
        assert_eq!(p(""), Ok(Cli::Help));
        assert_eq!(p("--version"), Ok(Cli::Version));
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(p("demo --port 70000").unwrap_err().contains("--port"));
        assert!(p("demo --devices 0").unwrap_err().contains("--devices"));
        assert!(p("demo --port").unwrap_err().contains("needs a value"));
        assert!(p("demo --for 0").unwrap_err().contains("--for"));
        assert!(p("sim --config c").unwrap_err().contains("--state"));
        assert!(p("sim ctl").unwrap_err().contains("state directory"));
        assert!(p("sim ctl d").unwrap_err().contains("command"));
        assert!(p("config check").is_err());
        assert!(p("flash --config c.txt --port p")
            .unwrap_err()
            .contains("--chip"));
        assert!(p("flash --chip c3 --port p")
            .unwrap_err()
            .contains("--config"));
        assert!(p("flash --chip c3 --config c")
            .unwrap_err()
            .contains("exactly one"));
        assert!(p("flash --chip c3 --config c --port p --save-image o")
            .unwrap_err()
            .contains("exactly one"));
        assert!(p("flash monitor").unwrap_err().contains("--port"));
        assert!(p("frobnicate").unwrap_err().contains("frobnicate"));
    }

    #[test]
    fn parses_espnow() {
        use crate::espnow_tool::{AirArgs, Command};
        assert_eq!(
            p("espnow air --air /tmp/a --loss 30"),
            Ok(Cli::Espnow(Command::Air(AirArgs {
                air: "/tmp/a".into(),
                loss: Some(30),
                rssi: None
            })))
        );
        assert!(matches!(
            p("espnow sniff --count 1"),
            Ok(Cli::Espnow(Command::Sniff(_)))
        ));
        assert!(matches!(
            p("espnow send --channel 1 --hex 0102"),
            Ok(Cli::Espnow(Command::Send(_)))
        ));
        assert!(p("espnow").unwrap_err().contains("sniff"));
        assert!(p("espnow send --channel 0 --hex 00")
            .unwrap_err()
            .contains("--channel"));
        assert!(p("espnow send --channel 1 --to nope --hex 00")
            .unwrap_err()
            .contains("--to"));
    }
}
