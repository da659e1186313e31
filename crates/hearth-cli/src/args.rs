//! The command line of `hearth`, declared once with clap: every subcommand answers `--help`,
//! a usage error prints the one line that matters and a hint, and `hearth completions SHELL`
//! writes the shell's completion script from the same declaration.
//!
//! Each value is checked by its own parser while parsing (a bad port, MAC or chip name is a
//! usage error naming the option); what must go together is checked by [`Cli::check`], which
//! turns the parsed line into the [`Run`] that `main` executes.

use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use hearth_fleet::client::{BrokerArgs, BrokerOptions};
use hearth_sim::espnow_tool::{self, SendOptions, SniffOptions};

/// What the exit codes mean; shown at the end of `hearth --help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the work ran and failed: a device refused or did not answer, an update rolled back,
     the broker dropped the session, a simulator control command answered an error
  2  it could not start: a usage error, a config or file that does not check, a broker
     that cannot be reached or refuses the login or the TLS check

The fleet commands (mon, cmd, ota, release, config push) find the broker in $HEARTH_BROKER
([mqtts://]HOST[:PORT]) and the login in $HEARTH_MQTT_USER / $HEARTH_MQTT_PASSWORD, TLS
files in $HEARTH_CA, $HEARTH_PIN, $HEARTH_CLIENT_CERT, $HEARTH_CLIENT_KEY; options win.";

/// hearth — reliable home-automation appliances, simulated on your PC
#[derive(Debug, Parser)]
#[command(name = "hearth", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Start an embedded MQTT broker and a simulated house, and show its topics live
    Demo(Demo),
    /// Run one simulated appliance (or, with --fleet, many) against the broker its config names (or control them)
    Sim(Sim),
    /// The device process that `hearth sim` starts (internal)
    #[command(hide = true, name = "sim-device")]
    SimDevice(ConfigState),
    /// Build a board's flash image from a config and save it or write it to the board
    Flash(Flash),
    /// Give a board that waits for Wi-Fi its network over its USB console (Improv Serial)
    #[command(after_help = "\
The board must run Hearth with a config that has no Wi-Fi (`hearth flash` accepts one).
A simulated device with such a config waits on DIR/console: `hearth provision --port DIR/console`.
Without --password the password is read from standard input (empty: an open network).")]
    Provision {
        /// The board's serial port (e.g. /dev/ttyACM0)
        #[arg(long)]
        port: String,
        /// The Wi-Fi network's name
        #[arg(long, value_parser = nonempty)]
        ssid: String,
        /// Its password (visible to other users in the process list: prefer standard input)
        #[arg(long)]
        password: Option<String>,
    },
    /// Check a config.txt, or push a signed one to a device
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Make an ed25519 key pair for signed updates, commands and configs
    Keygen(Keygen),
    /// Build a simulator firmware image (to try updates and rollback without a board)
    Image(Image),
    /// Signed update over MQTT, with a progress bar, until each device confirms or rolls back
    Ota(Ota),
    /// Announce an image's version as the newest for its appliance: Home Assistant shows "update available"
    Release(Release),
    /// Send a command to a device and print its answer
    Cmd(Cmd),
    /// Print every message on one device's topics, or on all topics
    Mon(Mon),
    /// Publish one message (QoS 0), e.g. a command to a relay
    Pub(Pub),
    /// List every device the broker knows: appliance, version, slot, online, last reboot, safe mode, RSSI
    Ls(Ls),
    /// TLS helpers
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Look at and talk on the simulated ESP-NOW air
    #[command(subcommand)]
    Espnow(EspnowCmd),
    /// Print the completion script for a shell (e.g. `hearth completions bash > ~/.local/share/bash-completion/completions/hearth`)
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
struct Demo {
    /// Broker port on 127.0.0.1 (0: any free port)
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Weather stations in the house
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    devices: u32,
    /// Stop after this many seconds (default: at Ctrl-C)
    #[arg(long = "for", value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    seconds: Option<u64>,
    /// Print every message as it is routed, discovery JSON included, instead of the live view
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
struct ConfigState {
    /// The device's config.txt
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Directory for its flash, its log (device.log) and its control socket
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Sim {
    #[command(subcommand)]
    ctl: Option<SimCmd>,
    /// The device's config.txt
    #[arg(long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,
    /// Directory for its flash, its log (device.log) and its control socket
    #[arg(long, value_name = "DIR", required = true)]
    state: Option<PathBuf>,
    /// The simulated ESP-NOW air, by name or path (default: $HEARTH_AIR, else `default`)
    #[arg(long, value_name = "NAME|PATH", value_parser = nonempty)]
    air: Option<String>,
    /// A simulated Wi-Fi access point in range, for a config without Wi-Fi that the device
    /// then waits for on its console (`hearth provision`); repeatable
    #[arg(long = "ap", value_name = "NAME[:PASSWORD]", value_parser = hearth_sim::console::AccessPoint::parse)]
    aps: Vec<hearth_sim::console::AccessPoint>,
    /// Run N devices of the config (a template) in this process, named after its mqttname
    /// with -0001, -0002…, each with its own directory in DIR; their lines go to
    /// DIR/fleet.log. `sim ctl DIR COMMAND` aims at all of them, or add --device NAME or
    /// --share PERCENT
    #[arg(long, value_name = "N", conflicts_with = "aps", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    fleet: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum SimCmd {
    /// Send a fault or control command to the simulator running with state DIR
    #[command(after_help = "\
Commands: wifi up|down|stuck, block SECONDS, slow SECONDS, power-cut, quit, wake,
sensor CHIP FAULT, load KG, temperature C, tank MASK, flow RATE, input N on|off,
press ev1527|ht6p20 ADDRESS BUTTON, repair, storage-stress on|off, crash-config,
power-cut-at otadata N, status

For a fleet (`hearth sim --fleet N`), aim with --device NAME (repeatable) or --share PERCENT;
without either a command reaches every member (`power-cut` cuts the whole fleet).")]
    Ctl {
        /// The simulator's state directory
        state: PathBuf,
        /// The command and its words
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Flash {
    #[command(subcommand)]
    monitor: Option<FlashCmd>,
    /// The chip
    #[arg(long, value_parser = chip, required = true)]
    chip: Option<String>,
    /// The config written into the config partition (validated before anything is written);
    /// without it, in a terminal, the values are asked for
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Firmware ELF (default: the release build of the firmware for the chip)
    #[arg(long, value_name = "FIRMWARE")]
    elf: Option<PathBuf>,
    /// Save one merged flash image here (no board needed)
    #[arg(
        long,
        value_name = "OUT",
        required_unless_present = "port",
        conflicts_with = "port"
    )]
    save_image: Option<PathBuf>,
    /// Write it to the board on this serial port
    #[arg(long)]
    port: Option<String>,
}

#[derive(Debug, Subcommand)]
enum FlashCmd {
    /// Show a board's serial log
    Monitor {
        /// Serial port
        #[arg(long)]
        port: String,
        /// Baud rate
        #[arg(long, default_value_t = 115_200, value_parser = clap::value_parser!(u32).range(1..))]
        baud: u32,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Validate a config.txt: every error with its line; non-zero exit on any
    Check {
        /// The file
        file: PathBuf,
        /// Also every rule this chip applies at boot (pins, appliances in the image, ...)
        #[arg(long, value_parser = chip)]
        chip: Option<String>,
    },
    /// Send a signed config: the device validates it, keeps the previous one, and reboots
    /// into it on trial (not healthy within otatrial: the previous config comes back)
    Push(Box<ConfigPush>),
}

#[derive(Debug, Args)]
struct ConfigPush {
    /// The device
    #[arg(value_parser = device_name)]
    device: String,
    /// The config file
    file: PathBuf,
    /// The secret key (from `hearth keygen`)
    #[arg(long)]
    key: PathBuf,
    /// Also check it here with this chip's boot rules
    #[arg(long, value_parser = chip)]
    chip: Option<String>,
    /// The config may remove or change `otakey`
    #[arg(long)]
    rotate_key: bool,
    /// Send it without checking it here first
    #[arg(long)]
    no_local_check: bool,
    #[command(flatten)]
    sign: Sign,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
struct Keygen {
    /// The secret key's file; the public key goes to PATH.pub (neither is ever overwritten),
    /// and the `otakey` line for the devices' configs is printed
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct Image {
    /// Firmware version, MAJOR.MINOR.PATCH
    #[arg(long, value_name = "X.Y.Z", value_parser = version)]
    version: String,
    /// The appliance it is for
    #[arg(long, value_name = "NAME", default_value = hearth_ota::manifest::ALL_APPLIANCES)]
    appliance: String,
    /// How it behaves once booted
    #[arg(long, default_value = "ok", value_parser = ["ok", "never", "crash"])]
    health: String,
    /// Its size in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    size: usize,
    /// The image file to write
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Signing options shared by the commands that send signed envelopes.
#[derive(Debug, Args)]
struct Sign {
    /// Sign although this machine's clock is far ahead of the device's anti-replay mark
    #[arg(long)]
    allow_clock_jump: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Publishes {\"version\":...} retained on hearth/release/<appliance> for each appliance the
image runs; every device's Home Assistant update entity reads it. Installs nothing: run
`hearth ota` for that (Home Assistant has no key to sign with).")]
struct Release {
    /// The image (from scripts/firmware.sh or `hearth image`)
    image: PathBuf,
    /// The appliance the image is for (default: what the image says; `all`: every appliance)
    #[arg(long, value_name = "NAME")]
    appliance: Option<String>,
    /// What changed, in one paragraph (at most 255 characters)
    #[arg(long, value_name = "TEXT")]
    summary: Option<String>,
    /// Where the release notes are
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
#[command(after_help = "Resumes after a disconnect or a reboot of the device.")]
struct Ota {
    /// DEVICE[,DEVICE...] IMAGE, or only IMAGE with --all
    #[arg(value_name = "DEVICES IMAGE", num_args = 1..=2, required = true)]
    words: Vec<String>,
    /// Every device of the image's appliance the broker knows (offline ones are skipped and listed)
    #[arg(long)]
    all: bool,
    /// Send only to devices known to run an older version (skip those whose version the broker does not hold)
    #[arg(long)]
    only_outdated: bool,
    /// Update N devices first, one by one; if one fails or rolls back, stop
    #[arg(long, value_name = "N", default_value_t = 0)]
    canary: usize,
    /// Stop once more than N devices failed or rolled back (default: try every device)
    #[arg(long, value_name = "N")]
    max_failures: Option<usize>,
    /// After the canary, update up to K devices at once
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: u16,
    /// The secret key (from `hearth keygen`)
    #[arg(long)]
    key: PathBuf,
    /// The appliance the image is for (default: what the image says)
    #[arg(long, value_name = "NAME")]
    appliance: Option<String>,
    /// Chunks in flight
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    window: u32,
    /// Do not wait for the devices to confirm the new image
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for each device to confirm or roll back before it counts as failed
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    confirm_timeout: u64,
    #[command(flatten)]
    sign: Sign,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Commands: reboot, reason, panic, stats, resetstats, getversion, partitions, mark,
keepversion, normal. Commands that change a device with an otakey must be signed (--key).
Put `--` before command words that start with '-'.")]
struct Cmd {
    /// The device
    #[arg(value_parser = device_name)]
    device: String,
    /// The command and its words
    #[arg(required = true, num_args = 1..)]
    command: Vec<String>,
    /// Sign it with this secret key
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print the answer as one JSON object (device, command, signed, ok, answer or error)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sign: Sign,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
struct Ls {
    /// One JSON object a device (device, appliance, version, slot, online, reboot_reason, safe_mode, rssi_dbm)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
struct Pub {
    /// The topic (no wildcards), e.g. cmnd/relays/0/TurnOnWithTimeout
    #[arg(value_parser = topic_name)]
    topic: String,
    /// The payload, e.g. 30
    payload: String,
    /// Ask the broker to keep it for later subscribers
    #[arg(long)]
    retain: bool,
    #[command(flatten)]
    broker: Broker,
}

#[derive(Debug, Args)]
struct Mon {
    /// Only this device's stat/, tele/ and cmnd/ topics (default: every topic)
    #[arg(value_parser = device_name)]
    device: Option<String>,
    /// Stop after this many seconds (default: at Ctrl-C)
    #[arg(long = "for", value_name = "SECONDS", value_parser = seconds, allow_hyphen_values = true)]
    seconds: Option<u64>,
    /// One JSON object a message: topic, retained, bytes, time_ms, payload or payload_hex
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: Broker,
}

/// The broker options of the fleet commands.
#[derive(Debug, Args)]
#[command(next_help_heading = "Broker")]
struct Broker {
    /// The broker, [mqtt://|mqtts://]HOST[:PORT] (default: $HEARTH_BROKER, else 127.0.0.1:1883)
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Login user (default: $HEARTH_MQTT_USER)
    #[arg(long, value_name = "U")]
    user: Option<String>,
    /// Login password (default: $HEARTH_MQTT_PASSWORD)
    #[arg(long, value_name = "P")]
    password: Option<String>,
    /// TLS (also with an mqtts:// broker; port 8883 unless given); needs --ca or --pin
    #[arg(long)]
    tls: bool,
    /// The CA certificate (PEM) that signed the broker's (default: $HEARTH_CA)
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// SHA-256 of the broker's public key, 64 hex digits (default: $HEARTH_PIN)
    #[arg(long, value_name = "HEX")]
    pin: Option<String>,
    /// Client certificate, PEM (default: $HEARTH_CLIENT_CERT)
    #[arg(long, value_name = "FILE")]
    client_cert: Option<PathBuf>,
    /// Client certificate's key, PEM (default: $HEARTH_CLIENT_KEY)
    #[arg(long, value_name = "FILE")]
    client_key: Option<PathBuf>,
}

impl Broker {
    fn options(self) -> BrokerOptions {
        BrokerOptions {
            broker: self.broker,
            user: self.user,
            password: self.password,
            tls: self.tls,
            ca: self.ca,
            pin: self.pin,
            client_cert: self.client_cert,
            client_key: self.client_key,
        }
    }
}

#[derive(Debug, Subcommand)]
enum TlsCmd {
    /// Print the config.txt lines (mqttca, mqttpin, mqttclientcert, mqttclientkey) for these
    /// PEM files: base64 DER on one line each
    #[command(name = "config-lines")]
    ConfigLines {
        /// The CA certificate
        #[arg(long, value_name = "CA.pem", required_unless_present_any = ["pin_from", "client_cert"])]
        ca: Option<PathBuf>,
        /// Pin the key of this server certificate
        #[arg(long, value_name = "SERVER.pem")]
        pin_from: Option<PathBuf>,
        /// The client certificate
        #[arg(long, value_name = "C.pem", requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// The client certificate's key
        #[arg(long, value_name = "K.pem", requires = "client_cert")]
        client_key: Option<PathBuf>,
    },
}

/// Where the air is (every espnow command: $HEARTH_AIR, else `default`, unless --air).
#[derive(Debug, Args)]
struct AirChoice {
    /// The air, by name or by a path containing '/' (default: $HEARTH_AIR, else `default`)
    #[arg(long, value_name = "NAME|PATH", value_parser = espnow_tool::parse_air)]
    air: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum EspnowCmd {
    /// Print every frame of the simulated air (all channels), decoded with PSK and group
    Sniff {
        #[command(flatten)]
        air: AirChoice,
        /// Decode with this pre-shared key (needs --group)
        #[arg(long, requires = "group")]
        psk: Option<String>,
        /// Decode with this group name (needs --psk)
        #[arg(long, requires = "psk")]
        group: Option<String>,
        /// Decode as this wire format only (default: guess, then try the other)
        #[arg(long, value_name = "2|3", value_parser = espnow_tool::parse_version)]
        version: Option<u8>,
        /// Stop after this many frames
        #[arg(long, value_name = "N", value_parser = espnow_tool::parse_count)]
        count: Option<u64>,
        /// Stop after this many seconds (fractions allowed)
        #[arg(long = "for", value_name = "SECONDS", value_parser = espnow_tool::parse_seconds, allow_hyphen_values = true)]
        duration: Option<Duration>,
    },
    /// Inject one frame: raw bytes (--hex), or a frame sealed here (--psk, --group, KIND)
    #[command(after_help = "\
Kinds: data --payload TEXT [--ts MS] [--tid HEX] | ping --ts MS [--tid HEX] | pairreq
| wakeup [--tid HEX] | ts [--subtype default|confirm|backdata] [--confirm-tid HEX]
[--payload TEXT] [--ts MS] [--tid HEX]. Without --ts and --tid: now, and random.
--payload accepts \\n \\t \\xHH escapes.

A central accepts a data frame sealed with its --psk and --group, on its channel, whose time
is within 1 s of the central's network time. That time starts from a random base, not the
clock, so --ts-from-central waits for the central's next time broadcast and uses it. The
central forwards `stat/<anything>/Weight` and `Malfunction` lines, e.g.
  hearth espnow send --channel 6 --psk P --group G data --ts-from-central \\
    --payload 'stat/scale/Weight\\n80.00'")]
    Send(Box<Send>),
    /// Show or set the air's frame loss and signal strength
    Air {
        #[command(flatten)]
        air: AirChoice,
        /// Frame loss, percent
        #[arg(long, value_name = "PERCENT", value_parser = espnow_tool::parse_loss)]
        loss: Option<u8>,
        /// Signal strength, dBm
        #[arg(long, value_name = "DBM", value_parser = espnow_tool::parse_rssi, allow_hyphen_values = true)]
        rssi: Option<i8>,
    },
}

#[derive(Debug, Args)]
struct Send {
    #[command(flatten)]
    air: AirChoice,
    /// Radio channel
    #[arg(long, value_name = "1..=13", value_parser = espnow_tool::parse_channel)]
    channel: Option<u8>,
    /// Source MAC of the datagram
    #[arg(long, value_name = "MAC", value_parser = espnow_tool::parse_unicast)]
    from: Option<[u8; 6]>,
    /// Destination MAC, or `broadcast` (the default)
    #[arg(long, value_name = "MAC", value_parser = espnow_tool::parse_destination)]
    to: Option<[u8; 6]>,
    /// Send these bytes as they are
    #[arg(long, value_name = "BYTES", value_parser = espnow_tool::parse_frame_bytes)]
    hex: Option<::std::vec::Vec<u8>>,
    /// Seal with this pre-shared key
    #[arg(long)]
    psk: Option<String>,
    /// Seal for this group
    #[arg(long)]
    group: Option<String>,
    /// Wire format (default 3)
    #[arg(long, value_name = "2|3", value_parser = espnow_tool::parse_version)]
    version: Option<u8>,
    /// v3: the sender id in the header (default: --from)
    #[arg(long, value_name = "MAC", value_parser = espnow_tool::parse_unicast)]
    sender: Option<[u8; 6]>,
    /// v3: the counter epoch (default: random)
    #[arg(long, value_name = "HEX", value_parser = espnow_tool::parse_epoch)]
    epoch: Option<[u8; hearth_netnow::v3::EPOCH_LEN]>,
    /// v3: the counter (default: now in Unix ms)
    #[arg(long, value_name = "N", value_parser = espnow_tool::parse_counter)]
    counter: Option<u64>,
    /// The payload of a data or backdata frame (escapes: \n \t \xHH)
    #[arg(long, value_name = "TEXT", value_parser = espnow_tool::unescape)]
    payload: Option<::std::vec::Vec<u8>>,
    /// Timestamp, ms
    #[arg(long, value_name = "MS", value_parser = espnow_tool::parse_ts)]
    ts: Option<u128>,
    /// data and ping: wait for the central's next time broadcast (at most 40 s) and use its time
    #[arg(long)]
    ts_from_central: bool,
    /// Transaction id (v3 pairreq: the challenge)
    #[arg(long, value_name = "HEX", value_parser = espnow_tool::parse_tid)]
    tid: Option<[u8; hearth_netnow::TID_LEN]>,
    /// ts frames: default, confirm or backdata
    #[arg(long, value_parser = espnow_tool::parse_subtype)]
    subtype: Option<String>,
    /// ts confirm frames: the tid confirmed
    #[arg(long, value_name = "HEX", value_parser = espnow_tool::parse_tid)]
    confirm_tid: Option<[u8; hearth_netnow::TID_LEN]>,
    /// The frame kind: data, ts, ping, pairreq or wakeup
    #[arg(value_parser = espnow_tool::parse_kind)]
    kind: Option<String>,
}

/// What `main` runs: the parsed line, every combination checked.
#[derive(Debug)]
pub enum Run {
    /// `hearth demo`.
    Demo {
        /// Broker port.
        port: u16,
        /// Weather stations.
        devices: u32,
        /// Stop after this long.
        limit: Option<Duration>,
        /// The topic stream instead of the live view.
        raw: bool,
    },
    /// `hearth sim`.
    Sim {
        /// Config file.
        config: PathBuf,
        /// State directory.
        state: PathBuf,
        /// The air.
        air: Option<String>,
        /// Simulated access points.
        aps: Vec<hearth_sim::console::AccessPoint>,
        /// `--fleet N`.
        fleet: Option<u32>,
    },
    /// `hearth sim ctl`.
    Ctl {
        /// State directory.
        state: PathBuf,
        /// The command words joined by spaces.
        command: String,
    },
    /// `hearth sim-device`.
    Device {
        /// Config file.
        config: PathBuf,
        /// State directory.
        state: PathBuf,
    },
    /// `hearth flash`.
    Flash {
        /// Chip.
        chip: String,
        /// Config file; none: ask in the terminal.
        config: Option<PathBuf>,
        /// Firmware ELF.
        elf: Option<PathBuf>,
        /// Save here.
        save_image: Option<PathBuf>,
        /// Or write to this port.
        port: Option<String>,
    },
    /// `hearth provision`.
    Provision {
        /// Serial port.
        port: String,
        /// Network name.
        ssid: String,
        /// Password, or read it from standard input.
        password: Option<String>,
    },
    /// `hearth flash monitor`.
    Monitor {
        /// Serial port.
        port: String,
        /// Baud rate.
        baud: u32,
    },
    /// `hearth config check`.
    ConfigCheck {
        /// The file.
        file: PathBuf,
        /// The chip's rules too.
        chip: Option<String>,
    },
    /// `hearth config push`.
    ConfigPush {
        /// Broker.
        broker: BrokerArgs,
        /// Device.
        device: String,
        /// Config file.
        file: PathBuf,
        /// Secret key.
        key: PathBuf,
        /// How to check and sign.
        options: hearth_fleet::commands::PushOptions,
    },
    /// `hearth keygen`.
    Keygen {
        /// Secret key file.
        out: PathBuf,
    },
    /// `hearth image`.
    Image {
        /// What the image says about itself.
        info: hearth_sim::firmware::ImageInfo,
        /// Size in bytes.
        size: usize,
        /// Output file.
        out: PathBuf,
    },
    /// `hearth ota`.
    Ota {
        /// Broker.
        broker: BrokerArgs,
        /// Devices (empty with `all`).
        devices: Vec<String>,
        /// Every online device.
        all: bool,
        /// Image file.
        image: PathBuf,
        /// Secret key.
        key: PathBuf,
        /// The appliance override.
        appliance: Option<String>,
        /// How to send.
        options: hearth_fleet::commands::OtaOptions,
    },
    /// `hearth release`.
    Release {
        /// Broker.
        broker: BrokerArgs,
        /// Image file.
        image: PathBuf,
        /// The appliance override.
        appliance: Option<String>,
        /// Summary and URL.
        notes: hearth_fleet::release::Notes,
    },
    /// `hearth cmd`.
    Cmd {
        /// Broker.
        broker: BrokerArgs,
        /// Device.
        device: String,
        /// The command line.
        command: String,
        /// Signing key.
        key: Option<PathBuf>,
        /// `--allow-clock-jump`.
        allow_clock_jump: bool,
        /// `--json`.
        json: bool,
    },
    /// `hearth mon`.
    Mon {
        /// Broker.
        broker: BrokerArgs,
        /// One device, or all.
        device: Option<String>,
        /// Stop after this long.
        limit: Option<Duration>,
        /// Output format.
        format: hearth_fleet::client::MonFormat,
    },
    /// `hearth ls`.
    Ls {
        /// Broker.
        broker: BrokerArgs,
        /// JSON lines.
        json: bool,
    },
    /// `hearth pub`.
    Pub {
        /// Broker.
        broker: BrokerArgs,
        /// Topic.
        topic: String,
        /// Payload.
        payload: String,
        /// Retain flag.
        retain: bool,
    },
    /// `hearth tls config-lines`.
    TlsLines {
        /// CA file.
        ca: Option<PathBuf>,
        /// Pin this server certificate's key.
        pin_from: Option<PathBuf>,
        /// Client certificate.
        client_cert: Option<PathBuf>,
        /// Client key.
        client_key: Option<PathBuf>,
    },
    /// `hearth espnow ...`.
    Espnow(espnow_tool::Command),
    /// `hearth completions SHELL`.
    Completions(clap_complete::Shell),
}

impl Cli {
    /// Parse the process's arguments; usage errors, `--help` and `--version` print and exit
    /// here (exit code 2 for errors, 0 otherwise).
    pub fn from_args() -> Run {
        match Self::parse().check(&|k| std::env::var(k).ok()) {
            Ok(run) => run,
            Err(e) => e.exit(),
        }
    }

    /// The clap command, for help and completions.
    pub fn command_tree() -> clap::Command {
        <Self as CommandFactory>::command()
    }

    /// Check what must go together, with the environment read through `env`.
    pub fn check(self, env: &dyn Fn(&str) -> Option<String>) -> Result<Run, clap::Error> {
        let usage = |msg: String| Self::command_tree().error(ErrorKind::ArgumentConflict, msg);
        let broker = |b: Broker| b.options().resolve(env).map_err(usage);
        Ok(match self.command {
            Top::Demo(d) => Run::Demo {
                port: d.port,
                devices: d.devices,
                limit: d.seconds.map(Duration::from_secs),
                raw: d.raw,
            },
            Top::Sim(Sim {
                ctl: Some(SimCmd::Ctl { state, command }),
                ..
            }) => Run::Ctl {
                state,
                command: command.join(" "),
            },
            Top::Sim(Sim {
                config,
                state,
                air,
                aps,
                fleet,
                ..
            }) => Run::Sim {
                config: config.expect("clap requires --config"),
                state: state.expect("clap requires --state"),
                air,
                aps,
                fleet,
            },
            Top::SimDevice(ConfigState { config, state }) => Run::Device { config, state },
            Top::Flash(Flash {
                monitor: Some(FlashCmd::Monitor { port, baud }),
                ..
            }) => Run::Monitor { port, baud },
            Top::Provision {
                port,
                ssid,
                password,
            } => Run::Provision {
                port,
                ssid,
                password,
            },
            Top::Flash(f) => Run::Flash {
                chip: f.chip.expect("clap requires --chip"),
                config: f.config,
                elf: f.elf,
                save_image: f.save_image,
                port: f.port,
            },
            Top::Config(ConfigCmd::Check { file, chip }) => Run::ConfigCheck { file, chip },
            Top::Config(ConfigCmd::Push(c)) => {
                let c = *c;
                Run::ConfigPush {
                    broker: broker(c.broker)?,
                    device: c.device,
                    file: c.file,
                    key: c.key,
                    options: hearth_fleet::commands::PushOptions {
                        local_check: !c.no_local_check,
                        chip: c.chip,
                        rotate_key: c.rotate_key,
                        allow_clock_jump: c.sign.allow_clock_jump,
                    },
                }
            }
            Top::Keygen(Keygen { out }) => Run::Keygen { out },
            Top::Image(i) => Run::Image {
                info: hearth_sim::firmware::ImageInfo {
                    version: i.version,
                    appliance: i.appliance,
                    health: hearth_sim::firmware::Health::parse(&i.health)
                        .expect("clap checks --health"),
                },
                size: i.size,
                out: i.out,
            },
            Top::Ota(o) => {
                let (devices, image) = match (o.all, o.words.as_slice()) {
                    (true, [image]) => (Vec::new(), image.clone()),
                    (false, [devices, image]) => (
                        devices
                            .split(',')
                            .map(device_name)
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(usage)?,
                        image.clone(),
                    ),
                    (true, _) => {
                        return Err(usage(
                            "with --all, give only the IMAGE (not a device list)".into(),
                        ))
                    }
                    (false, _) => {
                        return Err(usage(
                            "give DEVICE[,DEVICE...] and IMAGE, or --all and IMAGE".into(),
                        ))
                    }
                };
                Run::Ota {
                    broker: broker(o.broker)?,
                    devices,
                    all: o.all,
                    image: image.into(),
                    key: o.key,
                    appliance: o.appliance,
                    options: hearth_fleet::commands::OtaOptions {
                        window: o.window,
                        wait_confirm: !o.no_wait,
                        confirm_timeout: std::time::Duration::from_secs(o.confirm_timeout),
                        allow_clock_jump: o.sign.allow_clock_jump,
                        policy: hearth_fleet::rollout::Policy {
                            only_outdated: o.only_outdated,
                            canary: o.canary,
                            max_failures: o.max_failures,
                            parallel: usize::from(o.parallel),
                        },
                        ..Default::default()
                    },
                }
            }
            Top::Release(r) => Run::Release {
                broker: broker(r.broker)?,
                image: r.image,
                appliance: r.appliance,
                notes: hearth_fleet::release::Notes {
                    summary: r.summary,
                    url: r.url,
                },
            },
            Top::Cmd(c) => Run::Cmd {
                broker: broker(c.broker)?,
                device: c.device,
                command: c.command.join(" "),
                key: c.key,
                allow_clock_jump: c.sign.allow_clock_jump,
                json: c.json,
            },
            Top::Mon(m) => Run::Mon {
                broker: broker(m.broker)?,
                device: m.device,
                limit: m.seconds.map(Duration::from_secs),
                format: if m.json {
                    hearth_fleet::client::MonFormat::Json
                } else {
                    hearth_fleet::client::MonFormat::Text
                },
            },
            Top::Ls(l) => Run::Ls {
                broker: broker(l.broker)?,
                json: l.json,
            },
            Top::Pub(p) => Run::Pub {
                broker: broker(p.broker)?,
                topic: p.topic,
                payload: p.payload,
                retain: p.retain,
            },
            Top::Tls(TlsCmd::ConfigLines {
                ca,
                pin_from,
                client_cert,
                client_key,
            }) => Run::TlsLines {
                ca,
                pin_from,
                client_cert,
                client_key,
            },
            Top::Espnow(EspnowCmd::Sniff {
                air,
                psk,
                group,
                version,
                count,
                duration,
            }) => Run::Espnow(espnow_tool::Command::Sniff(
                SniffOptions {
                    air: air.air,
                    psk,
                    group,
                    version,
                    count,
                    duration,
                }
                .build()
                .map_err(usage)?,
            )),
            Top::Espnow(EspnowCmd::Send(s)) => {
                let s = *s;
                Run::Espnow(espnow_tool::Command::Send(
                    SendOptions {
                        air: s.air.air,
                        channel: s.channel,
                        from: s.from,
                        to: s.to,
                        hex: s.hex,
                        psk: s.psk,
                        group: s.group,
                        version: s.version,
                        payload: s.payload,
                        ts: s.ts,
                        ts_from_central: s.ts_from_central,
                        tid: s.tid,
                        confirm_tid: s.confirm_tid,
                        subtype: s.subtype,
                        sender: s.sender,
                        epoch: s.epoch,
                        counter: s.counter,
                        kind: s.kind,
                    }
                    .build()
                    .map_err(usage)?,
                ))
            }
            Top::Espnow(EspnowCmd::Air { air, loss, rssi }) => {
                Run::Espnow(espnow_tool::Command::Air(espnow_tool::AirArgs {
                    air: air.air.unwrap_or_else(espnow_tool::default_air),
                    loss,
                    rssi,
                }))
            }
            Top::Completions { shell } => Run::Completions(shell),
        })
    }
}

/// `--for SECONDS`: a whole number of seconds, at least 1.
fn seconds(v: &str) -> Result<u64, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a number of seconds (at least 1), got {v:?}"))
}

/// A value that must not be empty.
fn nonempty(v: &str) -> Result<String, String> {
    if v.is_empty() {
        Err("expected a name or a path, got nothing".into())
    } else {
        Ok(v.to_string())
    }
}

/// A device name: not empty, no MQTT wildcards or level separators, no spaces.
/// A topic to publish on: 1 to 65535 bytes, no wildcard, no NUL.
fn topic_name(topic: &str) -> Result<String, String> {
    if topic.is_empty() || topic.len() > 65535 {
        Err("a topic has 1 to 65535 bytes".into())
    } else if topic.contains(['+', '#']) {
        Err("wildcards (+, #) are for subscribing; name one topic".into())
    } else if topic.contains('\0') {
        Err("a topic cannot contain NUL".into())
    } else {
        Ok(topic.to_string())
    }
}

fn device_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains(['/', '+', '#']) || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "device name {name:?} must not be empty or contain '/', '+', '#' or spaces"
        ));
    }
    Ok(name.to_string())
}

/// `--version X.Y.Z` of an image.
fn version(v: &str) -> Result<String, String> {
    hearth_ota::Version::parse(v)
        .map(|_| v.to_string())
        .ok_or_else(|| format!("expected MAJOR.MINOR.PATCH, got {v:?}"))
}

/// A chip name `hearth_device::chips` knows (`esp32c3`, `C3`, `esp32-c6`, ...), as it spells
/// it.
fn chip(name: &str) -> Result<String, String> {
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

#[cfg(test)]
mod tests;
