//! Command-line parsing for `hearth`: a small hand-written parser (no clap, to keep the build
//! lean) whose every error names the problem and shows the usage.

use std::path::PathBuf;

use crate::fleet::{BrokerAddress, BrokerArgs, TlsArgs};

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
      storage-stress on|off, crash-config, power-cut-at otadata N, status
  hearth flash --chip esp32c3|esp32c6 --config FILE [--elf FIRMWARE] (--save-image OUT | --port PORT)
      validate FILE, then build bootloader + partition table + firmware + config and either
      save one merged flash image (no board needed) or write it to the board on PORT
  hearth flash monitor --port PORT [--baud 115200]
      show a board's serial log
  hearth config check FILE [--chip esp32c3|esp32c6]
      validate a config.txt; prints every error with its line and exits non-zero; with
      --chip also every rule that chip applies at boot (pins, appliances in the image, ...)
  hearth keygen --out PATH
      make an ed25519 key pair for signed updates: PATH (secret), PATH.pub, and the
      `otakey` line for the devices' configs
  hearth image --version X.Y.Z [--appliance NAME] [--health ok|never|crash] [--size BYTES] --out FILE
      build a simulator firmware image (to try updates and rollback without a board)
  hearth ota (DEVICE[,DEVICE...] | --all) IMAGE --key KEY [--appliance NAME] [--window N] [--no-wait] [--allow-clock-jump] [BROKER]
      signed update over MQTT with a progress bar; resumes after a disconnect or a reboot;
      waits until each device confirms the new image (or rolls back)
  hearth cmd DEVICE COMMAND... [--key KEY [--allow-clock-jump]] [BROKER]
      reboot, reason, panic, stats, resetstats, getversion, partitions, mark, keepversion, normal;
      prints the answer (commands that change a device with an otakey must be signed: --key)
  hearth config push DEVICE FILE --key KEY [--chip CHIP] [--rotate-key] [--no-local-check] [--allow-clock-jump] [BROKER]
      send a signed config; the device validates it (with its chip's boot rules), keeps the
      previous config, stores the new one atomically and reboots into it on trial: not
      healthy within otatrial, the previous config comes back. --chip checks here with that
      chip's rules too; --rotate-key lets the config remove or change otakey
      (BROKER: --broker [mqtts://]HOST:PORT --user U --password P, and for TLS --tls (or mqtts://)
      with --ca FILE and/or --pin HEX, optionally --client-cert FILE --client-key FILE; defaults
      $HEARTH_BROKER or 127.0.0.1:1883, $HEARTH_MQTT_USER/PASSWORD, $HEARTH_CA, $HEARTH_PIN,
      $HEARTH_CLIENT_CERT, $HEARTH_CLIENT_KEY)
  hearth tls config-lines [--ca CA.pem] [--pin-from SERVER.pem] [--client-cert C.pem --client-key K.pem]
      print the config.txt lines (mqttca, mqttpin, mqttclientcert, mqttclientkey) for these
      PEM files: base64 DER on one line each
  hearth espnow sniff [--air NAME|PATH] [--psk PSK --group NAME] [--version 2|3] [--count N] [--for SECONDS]
      print every frame of the simulated ESP-NOW air (all channels), decoded with PSK and group
  hearth espnow send [--air NAME|PATH] --channel C [--from MAC] [--to MAC|broadcast]
                     (--hex BYTES | --psk PSK --group NAME [--version 2|3] [--sender MAC] [--epoch HEX] [--counter N] KIND)
      inject one frame, wire format v3 unless --version 2 (--sender, --epoch, --counter: v3 only); KIND:
      data --payload TEXT [--ts MS] [--tid HEX] | ping --ts MS [--tid HEX] | pairreq | wakeup [--tid HEX]
      | ts [--subtype default|confirm|backdata] [--confirm-tid HEX] [--payload TEXT] [--ts MS] [--tid HEX]
      (--payload accepts \\n \\t \\xHH escapes)
  hearth espnow air [--air NAME|PATH] [--loss PERCENT] [--rssi DBM]
      show or set the air's frame loss (0..=100 %) and signal strength (-100..=0 dBm)
      (every espnow command: the air is $HEARTH_AIR, else `default`, unless --air is given)
  hearth mon [BROKER] [--for SECONDS] [DEVICE]
      print every message on DEVICE's topics (stat/, tele/, cmnd/DEVICE/#), or on all topics,
      as `TOPIC PAYLOAD` until Ctrl-C (or for SECONDS); the broker is $HEARTH_BROKER
      ([mqtts://]HOST:PORT or HOST), else 127.0.0.1:1883, and the login $HEARTH_MQTT_USER /
      $HEARTH_MQTT_PASSWORD, unless the flags are given (BROKER: as for `ota`)
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
        /// Also the boot rules of this chip (`esp32c3`, `esp32c6`).
        chip: Option<String>,
    },
    /// `hearth espnow`: sniff, send on, or configure the simulated ESP-NOW air.
    Espnow(crate::espnow_tool::Command),
    /// `hearth mon`: print the messages of one device, or of every device, from the broker.
    Mon {
        /// The broker and its login.
        broker: BrokerArgs,
        /// Only this device's `stat/`, `tele/` and `cmnd/` topics; `None` = every topic.
        device: Option<String>,
        /// Stop after this many seconds; `None` = until Ctrl-C.
        seconds: Option<u64>,
    },
    /// `hearth keygen --out PATH`.
    Keygen {
        /// Secret key file (the public key goes to PATH.pub).
        out: PathBuf,
    },
    /// `hearth image`: build a simulator firmware image.
    Image {
        /// What the image says about itself.
        info: crate::firmware::ImageInfo,
        /// Its size in bytes.
        size: usize,
        /// Output file.
        out: PathBuf,
    },
    /// `hearth ota`: signed update of one device, a list, or every online device.
    Ota {
        /// The broker and its login.
        broker: BrokerArgs,
        /// The devices (empty with `all`).
        devices: Vec<String>,
        /// Every device announcing itself online.
        all: bool,
        /// The image file.
        image: PathBuf,
        /// The secret key.
        key: PathBuf,
        /// Override of the appliance the image is for.
        appliance: Option<String>,
        /// Chunks in flight.
        window: u32,
        /// Wait for the device to confirm the new image.
        wait: bool,
        /// `--allow-clock-jump`: sign although this clock is far ahead of the device's mark.
        allow_clock_jump: bool,
    },
    /// `hearth cmd DEVICE COMMAND...`.
    Cmd {
        /// The broker and its login.
        broker: BrokerArgs,
        /// The device.
        device: String,
        /// The command line.
        command: String,
        /// Sign it with this key.
        key: Option<PathBuf>,
        /// `--allow-clock-jump`: sign although this clock is far ahead of the device's mark.
        allow_clock_jump: bool,
    },
    /// `hearth config push DEVICE FILE --key K`.
    ConfigPush {
        /// The broker and its login.
        broker: BrokerArgs,
        /// The device.
        device: String,
        /// The config file.
        file: PathBuf,
        /// The secret key.
        key: PathBuf,
        /// Validate the file here before sending it.
        local_check: bool,
        /// `--allow-clock-jump`: sign although this clock is far ahead of the device's mark.
        allow_clock_jump: bool,
        /// The chip whose boot rules the local check applies (`None`: only what every
        /// device checks).
        chip: Option<String>,
        /// The config may remove or change `otakey` (a `ConfigRotateKey` envelope).
        rotate_key: bool,
    },
    /// `hearth tls config-lines`: the TLS lines of `config.txt` from PEM files.
    TlsLines {
        /// `--ca FILE`.
        ca: Option<PathBuf>,
        /// `--pin-from FILE`: a server certificate whose key to pin.
        pin_from: Option<PathBuf>,
        /// `--client-cert FILE`.
        client_cert: Option<PathBuf>,
        /// `--client-key FILE`.
        client_key: Option<PathBuf>,
    },
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

/// The broker flags shared by the commands that talk to the fleet through its broker:
/// `--broker [mqtt://|mqtts://]HOST[:PORT]`, `--user U`, `--password P`. Returns whether
/// `flag` is one of them (its value is then taken from `it` and stored in `broker`). A
/// `mqtts://` broker turns TLS on (with no verification options yet: see [`BrokerFlags`],
/// which adds the TLS flags and checks them).
pub fn broker_flag<'a>(
    flag: &str,
    it: &mut impl Iterator<Item = &'a str>,
    broker: &mut BrokerArgs,
) -> Result<bool, String> {
    match flag {
        "--broker" => {
            let v = value(it, flag)?;
            let a = BrokerArgs::parse_broker(v).map_err(|e| format!("--broker: {e}"))?;
            let tls = a.tls.unwrap_or(broker.tls.is_some());
            broker.port = a.port_or_default(tls);
            broker.host = a.host;
            match a.tls {
                Some(true) if broker.tls.is_none() => broker.tls = Some(TlsArgs::default()),
                Some(false) => broker.tls = None,
                _ => {}
            }
        }
        "--user" => {
            let v = value(it, flag)?;
            if v.is_empty() {
                return Err("--user needs a user name".into());
            }
            broker.user = Some(v.to_string());
        }
        "--password" => broker.password = Some(value(it, flag)?.to_string()),
        _ => return Ok(false),
    }
    Ok(true)
}

/// The broker of one command line: the defaults from the environment
/// ([`BrokerArgs::from_vars`], [`TlsArgs::from_vars`]) overridden by the flags
/// ([`broker_flag`], and `--tls`, `--ca FILE`, `--pin HEX`, `--client-cert FILE`,
/// `--client-key FILE`). A malformed `$HEARTH_BROKER` is an error only when `--broker` does
/// not replace it. TLS is on with `--tls` or an `mqtts://` broker; it then needs `--ca` or
/// `--pin` (or `$HEARTH_CA` / `$HEARTH_PIN`), and TLS flags without TLS are an error.
pub struct BrokerFlags {
    args: BrokerArgs,
    env_error: Option<String>,
    broker_given: bool,
    /// Where the host and port came from, to apply `--tls`'s default port.
    address: Option<BrokerAddress>,
    /// `--tls`.
    tls_flag: bool,
    /// The TLS options: the environment's, then the flags'.
    tls: TlsArgs,
    tls_env_error: Option<String>,
    /// The first TLS option flag given, for the "needs TLS" error.
    tls_option_given: Option<&'static str>,
}

impl BrokerFlags {
    /// Start from the environment, read through `env`.
    pub fn new(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
        let (tls, tls_env_error) = match TlsArgs::from_vars(&nonempty) {
            Ok(t) => (t, None),
            Err(e) => (TlsArgs::default(), Some(e)),
        };
        let address =
            nonempty(crate::fleet::BROKER_ENV).and_then(|b| BrokerArgs::parse_broker(&b).ok());
        let (args, env_error) = match BrokerArgs::from_vars(env) {
            Ok(args) => (args, None),
            Err(e) => (
                BrokerArgs::from_vars(&|k| {
                    if k == crate::fleet::BROKER_ENV || k == crate::fleet::PIN_ENV {
                        None
                    } else {
                        env(k)
                    }
                })
                .unwrap_or_default(),
                Some(e),
            ),
        };
        Self {
            args,
            env_error,
            broker_given: false,
            address,
            tls_flag: false,
            tls,
            tls_env_error,
            tls_option_given: None,
        }
    }

    /// Take `flag` (and its value from `it`) if it is a broker or TLS flag.
    pub fn flag<'a>(
        &mut self,
        flag: &str,
        it: &mut impl Iterator<Item = &'a str>,
    ) -> Result<bool, String> {
        let (name, path): (&'static str, Option<&mut Option<std::path::PathBuf>>) = match flag {
            "--tls" => {
                self.tls_flag = true;
                return Ok(true);
            }
            "--pin" => {
                let v = value(it, flag)?;
                self.tls.pin = Some(crate::fleet::parse_pin(v).map_err(|e| format!("--pin: {e}"))?);
                // The flag replaces a malformed $HEARTH_PIN.
                self.tls_env_error = None;
                self.tls_option_given.get_or_insert("--pin");
                return Ok(true);
            }
            "--ca" => ("--ca", Some(&mut self.tls.ca)),
            "--client-cert" => ("--client-cert", Some(&mut self.tls.client_cert)),
            "--client-key" => ("--client-key", Some(&mut self.tls.client_key)),
            _ => ("", None),
        };
        if let Some(slot) = path {
            let v = value(it, flag)?;
            if v.is_empty() {
                return Err(format!("{name} needs a file"));
            }
            *slot = Some(v.into());
            self.tls_option_given.get_or_insert(name);
            return Ok(true);
        }
        if flag == "--broker" {
            // Peek at the value for the scheme and whether a port was written.
            let v = value(it, flag)?;
            let a = BrokerArgs::parse_broker(v).map_err(|e| format!("--broker: {e}"))?;
            self.args.tls = None;
            broker_flag(flag, &mut std::iter::once(v), &mut self.args)?;
            self.address = Some(a);
            self.broker_given = true;
            return Ok(true);
        }
        broker_flag(flag, it, &mut self.args)
    }

    /// The broker to use, once every flag is read.
    pub fn finish(mut self) -> Result<BrokerArgs, String> {
        if let (Some(e), false) = (self.env_error, self.broker_given) {
            return Err(format!("{e} (or give --broker HOST:PORT)"));
        }
        if self.args.password.is_some() && self.args.user.is_none() {
            return Err(
                "a password needs a user name: give --user U (or set HEARTH_MQTT_USER)".into(),
            );
        }
        let scheme = self.address.as_ref().and_then(|a| a.tls);
        if self.tls_flag && scheme == Some(false) {
            return Err("--tls contradicts the mqtt:// broker; write mqtts://HOST[:PORT]".into());
        }
        let tls_on = self.tls_flag || scheme == Some(true);
        if !tls_on {
            if let Some(flag) = self.tls_option_given {
                return Err(format!(
                    "{flag} is for TLS: add --tls, or write the broker as mqtts://HOST[:PORT]"
                ));
            }
            self.args.tls = None;
            return Ok(self.args);
        }
        if let Some(e) = self.tls_env_error {
            return Err(format!("{e} (or give --pin HEX)"));
        }
        if let Some(a) = &self.address {
            self.args.port = a.port_or_default(true);
        } else {
            self.args.port = crate::fleet::DEFAULT_TLS_PORT;
        }
        if self.tls.ca.is_none() && self.tls.pin.is_none() {
            return Err(
                "TLS needs a way to verify the broker: --ca FILE (the CA certificate, PEM) or --pin HEX (or $HEARTH_CA / $HEARTH_PIN)"
                    .into(),
            );
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err("--client-cert and --client-key go together".into());
        }
        self.args.tls = Some(self.tls);
        Ok(self.args)
    }
}

fn parse_mon<'a>(
    mut it: impl Iterator<Item = &'a str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cli, String> {
    let mut broker = BrokerFlags::new(env);
    let mut device: Option<String> = None;
    let mut seconds = None;
    while let Some(a) = it.next() {
        if broker.flag(a, &mut it)? {
            continue;
        }
        match a {
            "--for" => {
                let v = value(&mut it, a)?;
                seconds = Some(
                    v.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--for expects a number of seconds, got {v:?}"))?,
                );
            }
            flag if flag.starts_with('-') => {
                return Err(format!("unknown flag {flag:?} for `mon`"));
            }
            name => {
                if let Some(first) = &device {
                    return Err(format!(
                        "`mon` watches one device, got {first:?} and {name:?}"
                    ));
                }
                if name.contains(['/', '+', '#']) {
                    return Err(format!(
                        "device name {name:?} must not contain '/', '+' or '#'"
                    ));
                }
                device = Some(name.to_string());
            }
        }
    }
    Ok(Cli::Mon {
        broker: broker.finish()?,
        device,
        seconds,
    })
}

/// The fleet commands that change devices.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fleet {
    Ota,
    Cmd,
    ConfigPush,
}

fn device_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains(['/', '+', '#']) || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "device name {name:?} must not be empty or contain '/', '+', '#' or spaces"
        ));
    }
    Ok(name.to_string())
}

fn parse_fleet<'a>(
    which: Fleet,
    mut it: impl Iterator<Item = &'a str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cli, String> {
    let (name, usage) = match which {
        Fleet::Ota => (
            "ota",
            "hearth ota (DEVICE[,DEVICE...] | --all) IMAGE --key KEY",
        ),
        Fleet::Cmd => ("cmd", "hearth cmd DEVICE COMMAND... [--key KEY]"),
        Fleet::ConfigPush => ("config push", "hearth config push DEVICE FILE --key KEY"),
    };
    let mut broker = BrokerFlags::new(env);
    let mut words: Vec<&str> = Vec::new();
    let mut key = None;
    let mut all = false;
    let mut appliance = None;
    let mut window = 4u32;
    let mut wait = true;
    let mut local_check = true;
    let mut allow_clock_jump = false;
    let mut chip = None;
    let mut rotate_key = false;
    while let Some(a) = it.next() {
        if broker.flag(a, &mut it)? {
            continue;
        }
        match (a, which) {
            ("--key", _) => key = Some(PathBuf::from(value(&mut it, a)?)),
            ("--allow-clock-jump", _) => allow_clock_jump = true,
            ("--all", Fleet::Ota) => all = true,
            ("--appliance", Fleet::Ota) => appliance = Some(value(&mut it, a)?.to_string()),
            ("--window", Fleet::Ota) => {
                let v = value(&mut it, a)?;
                window = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("--window expects 1..=64 chunks, got {v:?}"))?;
            }
            ("--no-wait", Fleet::Ota) => wait = false,
            ("--no-local-check", Fleet::ConfigPush) => local_check = false,
            ("--chip", Fleet::ConfigPush) => chip = Some(known_chip(value(&mut it, a)?)?),
            ("--rotate-key", Fleet::ConfigPush) => rotate_key = true,
            // Everything after the command's first word is the command line, flags or not.
            (w, Fleet::Cmd) if words.len() >= 2 || !w.starts_with('-') => words.push(w),
            (flag, _) if flag.starts_with('-') => {
                return Err(format!(
                    "unknown flag {flag:?} for `{name}`; usage: {usage}"
                ))
            }
            (w, _) => words.push(w),
        }
    }
    let broker = broker.finish()?;
    let missing = || format!("usage: {usage}");
    match which {
        Fleet::Ota => {
            let (devices, image) = match (all, words.as_slice()) {
                (true, [image]) => (Vec::new(), *image),
                (false, [devices, image]) => (
                    devices
                        .split(',')
                        .map(device_name)
                        .collect::<Result<Vec<_>, _>>()?,
                    *image,
                ),
                _ => return Err(missing()),
            };
            Ok(Cli::Ota {
                broker,
                devices,
                all,
                image: PathBuf::from(image),
                key: key.ok_or("`ota` needs --key KEY (the secret key from `hearth keygen`)")?,
                appliance,
                window,
                wait,
                allow_clock_jump,
            })
        }
        Fleet::Cmd => match words.split_first() {
            Some((device, command)) if !command.is_empty() => Ok(Cli::Cmd {
                broker,
                device: device_name(device)?,
                command: command.join(" "),
                key,
                allow_clock_jump,
            }),
            _ => Err(missing()),
        },
        Fleet::ConfigPush => match words.as_slice() {
            [device, file] => Ok(Cli::ConfigPush {
                broker,
                device: device_name(device)?,
                file: PathBuf::from(file),
                key: key.ok_or("`config push` needs --key KEY (configs are signed)")?,
                local_check,
                allow_clock_jump,
                chip,
                rotate_key,
            }),
            _ => Err(missing()),
        },
    }
}

/// A chip name `hearth_device::chips` knows, as it spells it.
fn known_chip(name: &str) -> Result<String, String> {
    let lower = name.to_ascii_lowercase().replace('-', "");
    let full = match lower.as_str() {
        "c3" => "esp32c3".to_string(),
        "c6" => "esp32c6".to_string(),
        other => other.to_string(),
    };
    match hearth_device::chips::chip(&full) {
        Some(c) => Ok(c.name.to_string()),
        None => Err(format!(
            "unknown chip {name:?}: the chip rules know {}",
            hearth_device::chips::CHIPS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn parse_image<'a>(mut it: impl Iterator<Item = &'a str>) -> Result<Cli, String> {
    use crate::firmware::{Health, ImageInfo};
    let mut version = None;
    let mut appliance = hearth_ota::manifest::ALL_APPLIANCES.to_string();
    let mut health = Health::Ok;
    let mut size = 64 * 1024;
    let mut out = None;
    while let Some(a) = it.next() {
        let v = value(&mut it, a)?;
        match a {
            "--version" => {
                hearth_ota::Version::parse(v)
                    .ok_or_else(|| format!("--version expects MAJOR.MINOR.PATCH, got {v:?}"))?;
                version = Some(v.to_string());
            }
            "--appliance" => appliance = v.to_string(),
            "--health" => {
                health = Health::parse(v)
                    .ok_or_else(|| format!("--health expects ok, never or crash, got {v:?}"))?
            }
            "--size" => {
                size = v
                    .parse()
                    .ok()
                    .ok_or_else(|| format!("--size expects a number of bytes, got {v:?}"))?
            }
            "--out" => out = Some(PathBuf::from(v)),
            other => return Err(format!("unknown flag {other:?} for `image`")),
        }
    }
    let usage = "usage: hearth image --version X.Y.Z [--appliance NAME] [--health ok|never|crash] [--size BYTES] --out FILE";
    Ok(Cli::Image {
        info: ImageInfo {
            version: version.ok_or(usage)?,
            appliance,
            health,
        },
        size,
        out: out.ok_or(usage)?,
    })
}

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    parse_with_env(args, &|k| std::env::var(k).ok())
}

/// [`parse`] with the environment variables (`$HEARTH_BROKER`, ...) looked up by `env`.
pub fn parse_with_env(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cli, String> {
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
        Some("config") => match it.next() {
            Some("check") => {
                let (mut file, mut chip) = (None, None);
                while let Some(a) = it.next() {
                    match a {
                        "--chip" => chip = Some(known_chip(value(&mut it, a)?)?),
                        f if !f.starts_with('-') && file.is_none() => file = Some(PathBuf::from(f)),
                        _ => {
                            return Err(
                                "usage: hearth config check FILE [--chip esp32c3|esp32c6]".into()
                            )
                        }
                    }
                }
                match file {
                    Some(file) => Ok(Cli::ConfigCheck { file, chip }),
                    None => Err("usage: hearth config check FILE [--chip esp32c3|esp32c6]".into()),
                }
            }
            Some("push") => parse_fleet(Fleet::ConfigPush, it, env),
            _ => Err(
                "usage: hearth config check FILE | hearth config push DEVICE FILE --key KEY".into(),
            ),
        },
        Some("ota") => parse_fleet(Fleet::Ota, it, env),
        Some("cmd") => parse_fleet(Fleet::Cmd, it, env),
        Some("keygen") => match (it.next(), it.next(), it.next()) {
            (Some("--out"), Some(out), None) => Ok(Cli::Keygen {
                out: PathBuf::from(out),
            }),
            _ => Err("usage: hearth keygen --out PATH".into()),
        },
        Some("image") => parse_image(it),
        Some("espnow") => crate::espnow_tool::parse(it).map(Cli::Espnow),
        Some("mon") => parse_mon(it, env),
        Some("tls") => {
            let usage = "usage: hearth tls config-lines [--ca CA.pem] [--pin-from SERVER.pem] [--client-cert C.pem --client-key K.pem]";
            if it.next() != Some("config-lines") {
                return Err(usage.into());
            }
            let (mut ca, mut pin_from, mut client_cert, mut client_key) = (None, None, None, None);
            while let Some(a) = it.next() {
                let slot = match a {
                    "--ca" => &mut ca,
                    "--pin-from" => &mut pin_from,
                    "--client-cert" => &mut client_cert,
                    "--client-key" => &mut client_key,
                    other => return Err(format!("unexpected argument {other:?}; {usage}")),
                };
                *slot = Some(PathBuf::from(value(&mut it, a)?));
            }
            if client_cert.is_some() != client_key.is_some() {
                return Err(format!(
                    "--client-cert and --client-key go together; {usage}"
                ));
            }
            if ca.is_none() && pin_from.is_none() && client_cert.is_none() {
                return Err(usage.into());
            }
            Ok(Cli::TlsLines {
                ca,
                pin_from,
                client_cert,
                client_key,
            })
        }
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
                file: "x.txt".into(),
                chip: None
            })
        );
        assert_eq!(
            p("config check x.txt --chip C3"),
            Ok(Cli::ConfigCheck {
                file: "x.txt".into(),
                chip: Some("esp32c3".into())
            })
        );
        assert!(p("config check x.txt --chip esp32")
            .unwrap_err()
            .contains("esp32c3, esp32c6"));
        assert!(p("config check x.txt y.txt").is_err());
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

    fn pe(s: &str, vars: &[(&str, &str)]) -> Result<Cli, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_with_env(
            &s.split_whitespace().map(String::from).collect::<Vec<_>>(),
            &|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        )
    }

    fn broker(host: &str, port: u16, user: Option<&str>, password: Option<&str>) -> BrokerArgs {
        BrokerArgs {
            host: host.into(),
            port,
            user: user.map(String::from),
            password: password.map(String::from),
            tls: None,
        }
    }

    #[test]
    fn parses_mon() {
        assert_eq!(
            pe("mon", &[]),
            Ok(Cli::Mon {
                broker: broker("127.0.0.1", 1883, None, None),
                device: None,
                seconds: None
            })
        );
        assert_eq!(
            pe(
                "mon --for 5 balcony --broker 10.0.0.2:1884 --user u --password p",
                &[]
            ),
            Ok(Cli::Mon {
                broker: broker("10.0.0.2", 1884, Some("u"), Some("p")),
                device: Some("balcony".into()),
                seconds: Some(5)
            })
        );
        let env = [
            ("HEARTH_BROKER", "mqtt.lan"),
            ("HEARTH_MQTT_USER", "eve"),
            ("HEARTH_MQTT_PASSWORD", "pw"),
        ];
        assert_eq!(
            pe("mon d1", &env),
            Ok(Cli::Mon {
                broker: broker("mqtt.lan", 1883, Some("eve"), Some("pw")),
                device: Some("d1".into()),
                seconds: None
            })
        );
        // Flags override the environment.
        assert_eq!(
            pe("mon --broker [::1]:2000 --user bob", &env),
            Ok(Cli::Mon {
                broker: broker("::1", 2000, Some("bob"), Some("pw")),
                device: None,
                seconds: None
            })
        );
        // A bad $HEARTH_BROKER is an error unless --broker replaces it.
        let bad = [("HEARTH_BROKER", "mqtt.lan:0")];
        assert!(pe("mon", &bad).unwrap_err().contains("HEARTH_BROKER"));
        assert!(pe("mon --broker h", &bad).is_ok());
    }

    #[test]
    fn mon_errors_name_the_problem() {
        let e = |s: &str| pe(s, &[]).unwrap_err();
        assert!(e("mon --verbose").contains("unknown flag \"--verbose\""));
        assert!(e("mon --broker").contains("--broker needs a value"));
        assert!(e("mon --user").contains("--user needs a value"));
        assert!(e("mon --password").contains("--password needs a value"));
        assert!(e("mon --for").contains("--for needs a value"));
        assert!(e("mon --for 0").contains("--for"));
        assert!(e("mon --for soon").contains("--for"));
        assert!(e("mon --broker h:70000").contains("--broker"));
        assert!(e("mon --broker h:0").contains("port 0"));
        assert!(e("mon --broker :1883").contains("host is empty"));
        assert!(e("mon --password p").contains("user name"));
        assert!(e("mon a b").contains("one device"));
        assert!(e("mon a/b").contains("'/'"));
        assert!(e("mon #").contains("'#'"));
    }

    #[test]
    fn tls_flags() {
        let pin = "ab".repeat(32);
        let tls = |ca: Option<&str>, pin: Option<[u8; 32]>| {
            Some(TlsArgs {
                ca: ca.map(PathBuf::from),
                pin,
                ..TlsArgs::default()
            })
        };
        let broker_of = |s: &str, env: &[(&str, &str)]| match pe(s, env) {
            Ok(Cli::Mon { broker, .. }) => broker,
            other => panic!("{s}: {other:?}"),
        };
        // mqtts:// and --tls both mean TLS, on port 8883 unless one is given.
        let b = broker_of("mon --broker mqtts://h --ca ca.pem", &[]);
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("h", 8883, tls(Some("ca.pem"), None))
        );
        let b = broker_of(&format!("mon --tls --broker h --pin {pin}"), &[]);
        assert_eq!((b.port, b.tls), (8883, tls(None, Some([0xab; 32]))));
        let b = broker_of("mon --broker h:9000 --tls --ca c", &[]);
        assert_eq!(b.port, 9000);
        // The environment: HEARTH_CA counts only with TLS.
        let env = [
            ("HEARTH_BROKER", "mqtts://m:8884"),
            ("HEARTH_CA", "/ca.pem"),
        ];
        let b = broker_of("mon", &env);
        assert_eq!((b.port, b.tls), (8884, tls(Some("/ca.pem"), None)));
        assert_eq!(broker_of("mon", &[("HEARTH_CA", "/ca.pem")]).tls, None);
        assert_eq!(broker_of("mon --broker mqtt://m", &env).tls, None);
        // Every fleet command takes them.
        match pe(
            "cmd d1 reboot --broker mqtts://h --ca c --client-cert a --client-key b",
            &[],
        ) {
            Ok(Cli::Cmd { broker, .. }) => {
                let t = broker.tls.expect("tls");
                assert_eq!(t.client_cert, Some("a".into()));
                assert_eq!(t.client_key, Some("b".into()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pe("ota d1 img --key k --tls --ca c", &[]),
            Ok(Cli::Ota {
                broker: BrokerArgs { tls: Some(_), .. },
                ..
            })
        ));
        assert!(matches!(
            pe("config push d1 f --key k --tls --pin 00000000000000000000000000000000000000000000000000000000000000ff", &[]),
            Ok(Cli::ConfigPush { broker: BrokerArgs { tls: Some(_), .. }, .. })
        ));
        let e = |s: &str| pe(s, &[]).unwrap_err();
        assert!(e("mon --broker mqtts://h").contains("--ca FILE"));
        assert!(e("mon --ca c.pem").contains("--ca is for TLS"));
        assert!(e("mon --tls --broker mqtt://h --ca c").contains("contradicts"));
        assert!(e("mon --tls --pin 12").contains("64 hex digits"));
        assert!(e("mon --tls --ca c --client-cert a").contains("go together"));
        assert!(e("mon --broker ftp://h").contains("unknown scheme"));
        assert!(pe("mon --tls --ca c", &[("HEARTH_PIN", "zz")])
            .unwrap_err()
            .contains("HEARTH_PIN"));
    }

    #[test]
    fn parses_tls_config_lines() {
        assert_eq!(
            p("tls config-lines --ca a.pem --client-cert c.pem --client-key k.pem"),
            Ok(Cli::TlsLines {
                ca: Some("a.pem".into()),
                pin_from: None,
                client_cert: Some("c.pem".into()),
                client_key: Some("k.pem".into())
            })
        );
        assert!(p("tls config-lines").unwrap_err().contains("usage"));
        assert!(p("tls config-lines --client-key k")
            .unwrap_err()
            .contains("together"));
        assert!(p("tls lines").unwrap_err().contains("usage"));
    }

    #[test]
    fn broker_flag_consumes_only_its_flags() {
        let mut b = BrokerArgs::default();
        let mut it = ["h2:99", "rest"].into_iter();
        assert_eq!(broker_flag("--broker", &mut it, &mut b), Ok(true));
        assert_eq!((b.host.as_str(), b.port), ("h2", 99));
        assert_eq!(broker_flag("--for", &mut it, &mut b), Ok(false));
        assert_eq!(it.next(), Some("rest"));
        assert!(broker_flag("--user", &mut it, &mut b).is_err());
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
