//! `hearth espnow`: look at and talk on the simulated ESP-NOW air ([`crate::air`]).
//!
//! - `sniff` prints every frame of the air (all channels), decoded when a PSK and group are
//!   given;
//! - `send` injects one frame, raw bytes or a v2 / v3 frame built and sealed here;
//! - `air` shows or changes the air-wide loss and RSSI.
//!
//! Argument errors are found before anything is sent: each value by its parser (`parse_*`,
//! the command line's value parsers), the combinations by [`SniffOptions::build`] and
//! [`SendOptions::build`]; `hearth` reports them with exit code 2.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_netnow::link::{Codec, Msg, Version};
use hearth_netnow::v3;
use hearth_netnow::{GroupId, Key, Tid, Timestamp, TsSubtype, MAX_FRAME_LEN, TID_LEN};
use hearth_platform::{BROADCAST, RADIO_MAX_FRAME};

use crate::air::{self, Datagram, Kind};

/// Default source MAC of injected frames: locally administered, "HEARTH"-ish.
pub const TOOL_MAC: [u8; 6] = [0x02, 0x48, 0x45, 0x41, 0x52, 0x54];

/// A parsed `hearth espnow` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `hearth espnow sniff`.
    Sniff(SniffArgs),
    /// `hearth espnow send`.
    Send(SendArgs),
    /// `hearth espnow air`.
    Air(AirArgs),
}

/// The PSK and group name that decode or seal frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// Pre-shared key, as given.
    pub psk: String,
    /// Group name, as given.
    pub group: String,
}

/// Arguments of `hearth espnow sniff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniffArgs {
    /// Air directory.
    pub air: PathBuf,
    /// Decode with these.
    pub secrets: Option<Secrets>,
    /// Decode as this wire format only (2 or 3); `None`: guess, then try the other.
    pub version: Option<u8>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

/// Arguments of `hearth espnow air`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AirArgs {
    /// Air directory.
    pub air: PathBuf,
    /// New loss percentage.
    pub loss: Option<u8>,
    /// New RSSI, dBm.
    pub rssi: Option<i8>,
}

/// Arguments of `hearth espnow send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendArgs {
    /// Air directory.
    pub air: PathBuf,
    /// Channel, 1..=13.
    pub channel: u8,
    /// Source MAC written into the datagram.
    pub from: [u8; 6],
    /// Destination MAC or broadcast.
    pub to: [u8; 6],
    /// What to send.
    pub what: Payload,
    /// Wait for the central's next time broadcast on `channel` and stamp the data or ping
    /// with its network time (`--ts-from-central`).
    pub ts_from_central: bool,
}

/// What `send` puts on the air.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// These bytes as they are (`--hex`).
    Raw(Vec<u8>),
    /// A frame sealed here.
    Frame {
        /// Key material.
        secrets: Secrets,
        /// Wire format, 2 or 3 (default 3, as `espnowversion` in config.txt).
        version: u8,
        /// v3 sender id.
        sender: [u8; 6],
        /// v3 counter epoch; `None`: a random one.
        epoch: Option<[u8; v3::EPOCH_LEN]>,
        /// v3 counter; `None`: the current Unix time in ms (increases from run to run).
        counter: Option<u64>,
        /// The frame.
        kind: FrameArgs,
    },
}

/// The frame kinds `send` builds. `None` tids are random, `None` timestamps are now (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameArgs {
    /// `data --payload TEXT [--ts MS] [--tid HEX]`.
    Data {
        /// Payload bytes.
        payload: Vec<u8>,
        /// Timestamp, ms.
        ts: Option<u128>,
        /// Transaction id.
        tid: Option<[u8; TID_LEN]>,
    },
    /// `ts [--subtype ...] [--confirm-tid HEX] [--payload TEXT] [--ts MS] [--tid HEX]`.
    Ts {
        /// Subtype.
        subtype: Subtype,
        /// Timestamp, ms.
        ts: Option<u128>,
        /// ttid (`--tid`).
        ttid: Option<[u8; TID_LEN]>,
    },
    /// `ping --ts MS [--tid HEX]`.
    Ping {
        /// Timestamp, ms.
        ts: u128,
        /// Transaction id.
        tid: Option<[u8; TID_LEN]>,
    },
    /// `pairreq` (v3: `[--tid HEX]` sets the challenge).
    PairReq {
        /// v3 challenge.
        challenge: Option<[u8; TID_LEN]>,
    },
    /// `wakeup [--tid HEX]`.
    Wakeup {
        /// Transaction id.
        tid: Option<[u8; TID_LEN]>,
    },
}

/// Timestamp frame subtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subtype {
    /// Just the time.
    Default,
    /// Confirms this tid.
    Confirm([u8; TID_LEN]),
    /// Back-data payload.
    Backdata(Vec<u8>),
}

// ---------------------------------------------------------------------------------------------
// Options: each value is checked by its own parser (the command line's value parsers), the
// combinations by `SniffOptions::build` and `SendOptions::build`. Messages name what was
// expected and what was given; the command line adds which option it was.

/// `--air NAME|PATH`: an air by name (under the machine's air directory) or by path.
pub fn parse_air(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() || (!v.contains('/') && matches!(v, "." | "..")) {
        return Err(format!(
            "expected a name or a path containing '/', got {v:?}"
        ));
    }
    Ok(air::air_dir(Some(v)))
}

/// The air when `--air` is not given: `$HEARTH_AIR` (as the simulated devices use), else
/// [`air::DEFAULT_AIR`].
pub fn default_air() -> PathBuf {
    air::air_dir(std::env::var(crate::device::AIR_ENV).ok().as_deref())
}

/// `--channel`: 1..=13.
pub fn parse_channel(v: &str) -> Result<u8, String> {
    v.parse()
        .ok()
        .filter(|c| air::CHANNELS.contains(c))
        .ok_or_else(|| format!("expected a channel 1..=13, got {v:?}"))
}

/// `--from`, `--sender`: a unicast MAC.
pub fn parse_unicast(v: &str) -> Result<[u8; 6], String> {
    match air::parse_mac(v) {
        Some(m) if m[0] & 1 == 0 => Ok(m),
        Some(_) => Err(format!(
            "expected a unicast MAC, got the group address {v:?}"
        )),
        None => Err(format!("expected a MAC like AA:BB:CC:DD:EE:FF, got {v:?}")),
    }
}

/// `--to`: a unicast MAC or `broadcast`.
pub fn parse_destination(v: &str) -> Result<[u8; 6], String> {
    match air::parse_mac(v) {
        Some(m) if m == BROADCAST || m[0] & 1 == 0 => Ok(m),
        _ => Err(format!(
            "expected a unicast MAC like AA:BB:CC:DD:EE:FF or `broadcast`, got {v:?}"
        )),
    }
}

/// Hex bytes, optionally `0x`-prefixed, with optional `:` or space separators.
fn parse_hex(v: &str) -> Option<Vec<u8>> {
    let v = v.strip_prefix("0x").unwrap_or(v);
    let digits: Vec<u8> = v.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.iter().all(u8::is_ascii_hexdigit)
    {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// `--hex`: the raw bytes of one frame, at most [`RADIO_MAX_FRAME`].
pub fn parse_frame_bytes(v: &str) -> Result<Vec<u8>, String> {
    let bytes = parse_hex(v).ok_or_else(|| format!("expected pairs of hex digits, got {v:?}"))?;
    if bytes.len() > RADIO_MAX_FRAME {
        return Err(format!(
            "{} bytes is longer than an ESP-NOW frame ({RADIO_MAX_FRAME})",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// `--tid`, `--confirm-tid`: [`TID_LEN`] bytes in hex.
pub fn parse_tid(v: &str) -> Result<[u8; TID_LEN], String> {
    parse_hex(v)
        .and_then(|b| <[u8; TID_LEN]>::try_from(b).ok())
        .ok_or_else(|| {
            format!(
                "expected {TID_LEN} bytes as {} hex digits, got {v:?}",
                2 * TID_LEN
            )
        })
}

/// `--epoch`: a v3 counter epoch in hex.
pub fn parse_epoch(v: &str) -> Result<[u8; v3::EPOCH_LEN], String> {
    parse_hex(v)
        .and_then(|b| <[u8; v3::EPOCH_LEN]>::try_from(b).ok())
        .ok_or_else(|| format!("expected {} hex digits, got {v:?}", 2 * v3::EPOCH_LEN))
}

/// `--counter`: a v3 counter.
pub fn parse_counter(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|c| *c <= v3::MAX_COUNTER)
        .ok_or_else(|| format!("expected 0..={}, got {v:?}", v3::MAX_COUNTER))
}

/// `--ts`: milliseconds, below 2^96.
pub fn parse_ts(v: &str) -> Result<u128, String> {
    v.parse::<u128>()
        .ok()
        .filter(|ms| Timestamp::new(*ms).is_some())
        .ok_or_else(|| format!("expected milliseconds 0..2^96, got {v:?}"))
}

/// `--version`: wire format 2 or 3.
pub fn parse_version(v: &str) -> Result<u8, String> {
    match v {
        "2" => Ok(2),
        "3" => Ok(3),
        _ => Err(format!("expected 2 or 3, got {v:?}")),
    }
}

/// `--subtype`: `default`, `confirm` or `backdata`.
pub fn parse_subtype(v: &str) -> Result<String, String> {
    match v {
        "default" | "confirm" | "backdata" => Ok(v.to_string()),
        _ => Err(format!("expected default, confirm or backdata, got {v:?}")),
    }
}

/// The frame kinds `send` builds.
pub const FRAME_KINDS: [&str; 5] = ["data", "ts", "ping", "pairreq", "wakeup"];

/// `send`'s KIND: one of [`FRAME_KINDS`].
pub fn parse_kind(v: &str) -> Result<String, String> {
    if FRAME_KINDS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(unknown_kind(v))
    }
}

fn unknown_kind(v: &str) -> String {
    format!("unknown frame kind {v:?} (expected data, ts, ping, pairreq or wakeup)")
}

/// `sniff --count`: a number of frames, at least 1.
pub fn parse_count(v: &str) -> Result<u64, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a number of frames, got {v:?}"))
}

/// `sniff --for`: seconds, fractions allowed.
pub fn parse_seconds(v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected a number of seconds, got {v:?}"))
}

/// `air --loss`: a percentage.
pub fn parse_loss(v: &str) -> Result<u8, String> {
    air::parse_loss(v).ok_or_else(|| format!("expected a percentage 0..=100, got {v:?}"))
}

/// `air --rssi`: dBm.
pub fn parse_rssi(v: &str) -> Result<i8, String> {
    air::parse_rssi(v).ok_or_else(|| format!("expected -100..=0 dBm, got {v:?}"))
}

/// `--payload` text with the escapes `\n`, `\r`, `\t`, `\0`, `\\` and `\xHH`.
pub fn unescape(v: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.next() {
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('t') => out.push(b'\t'),
            Some('0') => out.push(0),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("\\x needs two hex digits, got {hex:?}"))?;
                out.push(byte);
            }
            Some(other) => return Err(format!("unknown escape \\{other}")),
            None => return Err("the text ends with a lone backslash".into()),
        }
    }
    Ok(out)
}

/// Bytes as text: UTF-8 shown as is (with Rust escapes for quotes and control characters),
/// other bytes as `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        s.extend(chunk.valid().chars().flat_map(char::escape_debug));
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn secrets(psk: Option<String>, group: Option<String>) -> Result<Option<Secrets>, String> {
    match (psk, group) {
        (Some(psk), Some(group)) => Ok(Some(Secrets { psk, group })),
        (None, None) => Ok(None),
        (Some(_), None) => Err("--psk needs --group NAME as well".into()),
        (None, Some(_)) => Err("--group needs --psk PSK as well".into()),
    }
}

/// `hearth espnow sniff`'s options, each already checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SniffOptions {
    /// `--air`; `None`: [`default_air`].
    pub air: Option<PathBuf>,
    /// `--psk`.
    pub psk: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--version`.
    pub version: Option<u8>,
    /// `--count`.
    pub count: Option<u64>,
    /// `--for`.
    pub duration: Option<Duration>,
}

impl SniffOptions {
    /// The sniff, or what does not go together.
    pub fn build(self) -> Result<SniffArgs, String> {
        let secrets = secrets(self.psk, self.group)?;
        if self.version.is_some() && secrets.is_none() {
            return Err("--version needs --psk and --group (it selects the decoder)".into());
        }
        Ok(SniffArgs {
            air: self.air.unwrap_or_else(default_air),
            secrets,
            version: self.version,
            count: self.count,
            duration: self.duration,
        })
    }
}

/// `hearth espnow send`'s options, each already checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// `--air`; `None`: [`default_air`].
    pub air: Option<PathBuf>,
    /// `--channel` (required).
    pub channel: Option<u8>,
    /// `--from`; `None`: [`TOOL_MAC`].
    pub from: Option<[u8; 6]>,
    /// `--to`; `None`: broadcast.
    pub to: Option<[u8; 6]>,
    /// `--hex`.
    pub hex: Option<Vec<u8>>,
    /// `--psk`.
    pub psk: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--version`.
    pub version: Option<u8>,
    /// `--payload`, unescaped.
    pub payload: Option<Vec<u8>>,
    /// `--ts`.
    pub ts: Option<u128>,
    /// `--ts-from-central`.
    pub ts_from_central: bool,
    /// `--tid`.
    pub tid: Option<[u8; TID_LEN]>,
    /// `--confirm-tid`.
    pub confirm_tid: Option<[u8; TID_LEN]>,
    /// `--subtype`.
    pub subtype: Option<String>,
    /// `--sender`.
    pub sender: Option<[u8; 6]>,
    /// `--epoch`.
    pub epoch: Option<[u8; v3::EPOCH_LEN]>,
    /// `--counter`.
    pub counter: Option<u64>,
    /// KIND: one of [`FRAME_KINDS`].
    pub kind: Option<String>,
}

impl SendOptions {
    /// The frame to send, or what does not go together.
    pub fn build(self) -> Result<SendArgs, String> {
        let channel = self.channel.ok_or("`espnow send` needs --channel 1..=13")?;
        let from = self.from.unwrap_or(TOOL_MAC);
        let to = self.to.unwrap_or(BROADCAST);
        let air = self.air.unwrap_or_else(default_air);
        let what = match (self.hex, secrets(self.psk, self.group)?) {
            (Some(_), Some(_)) => return Err("give either --hex or --psk/--group, not both".into()),
            (None, None) => {
                return Err("`espnow send` needs --hex BYTES or --psk PSK --group NAME KIND".into())
            }
            (Some(bytes), None) => {
                let frame_option = [
                    (self.version.is_some(), "--version"),
                    (self.kind.is_some(), "a frame kind"),
                    (self.payload.is_some(), "--payload"),
                    (self.ts.is_some(), "--ts"),
                    (self.ts_from_central, "--ts-from-central"),
                    (self.tid.is_some(), "--tid"),
                    (self.subtype.is_some(), "--subtype"),
                    (self.confirm_tid.is_some(), "--confirm-tid"),
                    (self.sender.is_some(), "--sender"),
                    (self.epoch.is_some(), "--epoch"),
                    (self.counter.is_some(), "--counter"),
                ]
                .into_iter()
                .find(|(given, _)| *given);
                if let Some((_, name)) = frame_option {
                    return Err(format!(
                        "{name} cannot be used with --hex (raw bytes are sent as they are)"
                    ));
                }
                Payload::Raw(bytes)
            }
            (None, Some(secrets)) => {
                let version = self.version.unwrap_or(3);
                let kind = self.kind.ok_or(
                    "`espnow send --psk` needs a frame kind: data, ts, ping, pairreq or wakeup",
                )?;
                if version == 2
                    && (self.sender.is_some() || self.epoch.is_some() || self.counter.is_some())
                {
                    return Err(
                        "--sender, --epoch and --counter are v3 header fields; add --version 3"
                            .into(),
                    );
                }
                if self.ts_from_central {
                    if self.ts.is_some() {
                        return Err("give either --ts or --ts-from-central, not both".into());
                    }
                    if !matches!(kind.as_str(), "data" | "ping") {
                        return Err(format!(
                            "--ts-from-central stamps data and ping frames, not {kind}"
                        ));
                    }
                }
                // The central's time replaces this placeholder just before sending.
                let ts = self.ts.or(self.ts_from_central.then_some(0));
                let kind = frame(
                    &kind,
                    version,
                    self.subtype.as_deref(),
                    self.confirm_tid,
                    self.payload,
                    ts,
                    self.tid,
                )?;
                Payload::Frame {
                    secrets,
                    version,
                    sender: self.sender.unwrap_or(from),
                    epoch: self.epoch,
                    counter: self.counter,
                    kind,
                }
            }
        };
        Ok(SendArgs {
            air,
            channel,
            from,
            to,
            what,
            ts_from_central: self.ts_from_central,
        })
    }
}

/// The frame of kind `kind` for wire format `version`, from the frame options given.
fn frame(
    kind: &str,
    version: u8,
    subtype: Option<&str>,
    confirm: Option<[u8; TID_LEN]>,
    payload: Option<Vec<u8>>,
    ts: Option<u128>,
    tid: Option<[u8; TID_LEN]>,
) -> Result<FrameArgs, String> {
    let (data_max, back_max) = if version == 3 {
        (v3::MAX_DATA_PAYLOAD, v3::MAX_BACKDATA_PAYLOAD)
    } else {
        (
            hearth_netnow::MAX_DATA_PAYLOAD,
            hearth_netnow::MAX_BACKDATA_PAYLOAD,
        )
    };
    let too_long = |len: usize, max: usize| {
        format!("--payload of {len} bytes is too long: a v{version} {kind} frame holds {max}")
    };
    let not_for = |flag: &str| format!("{flag} does not apply to a {kind} frame");
    if kind != "ts" && (subtype.is_some() || confirm.is_some()) {
        return Err(not_for(if subtype.is_some() {
            "--subtype"
        } else {
            "--confirm-tid"
        }));
    }
    if !matches!(kind, "data" | "ts") && payload.is_some() {
        return Err(not_for("--payload"));
    }
    if matches!(kind, "pairreq" | "wakeup") && ts.is_some() {
        return Err(not_for("--ts"));
    }
    if kind == "pairreq" && version == 2 && tid.is_some() {
        return Err("--tid does not apply to a v2 pairreq frame (v3: the challenge)".into());
    }
    Ok(match kind {
        "data" => {
            let payload = payload.ok_or("a data frame needs --payload TEXT")?;
            if payload.len() > data_max {
                return Err(too_long(payload.len(), data_max));
            }
            FrameArgs::Data { payload, ts, tid }
        }
        "ts" => {
            let subtype = match (subtype.unwrap_or("default"), confirm, payload) {
                ("default", None, None) => Subtype::Default,
                ("confirm", Some(c), None) => Subtype::Confirm(c),
                ("confirm", None, _) => {
                    return Err("--subtype confirm needs --confirm-tid HEX".into())
                }
                ("backdata", None, p) => {
                    let p = p.unwrap_or_default();
                    if p.len() > back_max {
                        return Err(too_long(p.len(), back_max));
                    }
                    Subtype::Backdata(p)
                }
                (s, Some(_), _) => {
                    return Err(format!("--confirm-tid needs --subtype confirm, not {s}"))
                }
                (s, None, Some(_)) => {
                    return Err(format!("--payload needs --subtype backdata, not {s}"))
                }
                (s, None, None) => return Err(format!("unknown subtype {s}")),
            };
            FrameArgs::Ts {
                subtype,
                ts,
                ttid: tid,
            }
        }
        "ping" => FrameArgs::Ping {
            ts: ts.ok_or("a ping frame needs --ts MS")?,
            tid,
        },
        "pairreq" => FrameArgs::PairReq { challenge: tid },
        "wakeup" => FrameArgs::Wakeup { tid },
        other => return Err(unknown_kind(other)),
    })
}

// ---------------------------------------------------------------------------------------------
// Running

/// Runs a parsed `hearth espnow` command: 0 on success, 1 when the air cannot be used, 2 for a
/// frame that cannot be built.
pub fn run(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Sniff(a) => sniff(&a),
        Command::Send(a) => send(&a),
        Command::Air(a) => air_cmd(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn io_fail(e: io::Error) -> Failure {
    (1, e.to_string())
}

fn air_cmd(a: &AirArgs) -> Result<(), Failure> {
    let mut conf = match air::read_air_conf(&a.air) {
        Ok(c) => c,
        // A broken file is replaced when both settings are given.
        Err(e) if a.loss.is_some() && a.rssi.is_some() => {
            eprintln!("warning: replacing unreadable settings: {e}");
            air::AirConf::default()
        }
        Err(e) => return Err(io_fail(e)),
    };
    if a.loss.is_some() || a.rssi.is_some() {
        conf.loss = a.loss.unwrap_or(conf.loss);
        conf.rssi = a.rssi.unwrap_or(conf.rssi);
        air::set_air_conf(&a.air, conf.loss, conf.rssi).map_err(io_fail)?;
    }
    println!(
        "air {}: loss {} %, rssi {} dBm",
        a.air.display(),
        conf.loss,
        conf.rssi
    );
    Ok(())
}

fn random<const N: usize>() -> Result<[u8; N], Failure> {
    let mut out = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut out))
        .map_err(|e| (1, format!("cannot read /dev/urandom: {e}")))?;
    Ok(out)
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn tid_or_random(t: Option<[u8; TID_LEN]>) -> Result<Tid, Failure> {
    Ok(Tid(match t {
        Some(t) => t,
        None => random()?,
    }))
}

fn timestamp(ms: Option<u128>) -> Timestamp {
    Timestamp::new(ms.unwrap_or_else(unix_ms)).unwrap_or(Timestamp::MAX)
}

fn ts_subtype(s: &Subtype) -> TsSubtype<'_> {
    match s {
        Subtype::Default => TsSubtype::Default,
        Subtype::Confirm(t) => TsSubtype::Confirm(Tid(*t)),
        Subtype::Backdata(p) => TsSubtype::Backdata(p),
    }
}

/// Builds and seals the frame `send` describes.
fn build(what: &Payload) -> Result<Vec<u8>, Failure> {
    let (secrets, version, sender, epoch, counter, kind) = match what {
        Payload::Raw(bytes) => return Ok(bytes.clone()),
        Payload::Frame {
            secrets,
            version,
            sender,
            epoch,
            counter,
            kind,
        } => (secrets, version, sender, epoch, counter, kind),
    };
    let msg = match kind {
        FrameArgs::Data { payload, ts, tid } => Msg::Data {
            ts: timestamp(*ts),
            tid: tid_or_random(*tid)?,
            payload,
        },
        FrameArgs::Ts {
            subtype: s,
            ts,
            ttid,
        } => Msg::Timestamp {
            subtype: ts_subtype(s),
            ttid: tid_or_random(*ttid)?,
            ts: timestamp(*ts),
        },
        FrameArgs::Ping { ts, tid } => Msg::Ping {
            ts: timestamp(Some(*ts)),
            tid: tid_or_random(*tid)?,
        },
        // v2 sends zeros in place of the challenge.
        FrameArgs::PairReq { challenge } => Msg::PairRequest {
            challenge: tid_or_random(*challenge)?,
        },
        FrameArgs::Wakeup { tid } => Msg::Wakeup {
            tid: tid_or_random(*tid)?,
        },
    };
    let wire = if *version == 3 {
        Version::V3
    } else {
        Version::V2
    };
    let codec = Codec::new(wire, secrets.psk.as_bytes(), secrets.group.as_bytes());
    // v3 takes the epoch (random by default) and the counter (the wall clock by default, so it
    // rises between runs), v2 the IV.
    let epoch = v3::Epoch(match epoch {
        Some(e) => *e,
        None => random()?,
    });
    let counter = counter.unwrap_or_else(|| (unix_ms() as u64).min(v3::MAX_COUNTER));
    let iv = random()?;
    let mut out = [0u8; MAX_FRAME_LEN];
    let len = codec
        .seal(&msg, &v3::SenderId(*sender), &epoch, counter, &iv, &mut out)
        .map_err(|e| (2, e.to_string()))?;
    Ok(out[..len].to_vec())
}

/// How long `--ts-from-central` waits: a central broadcasts its time every 25 to 35 s.
const CENTRAL_TIME_WAIT: Duration = Duration::from_secs(40);

/// The network time of the central on `channel`, from its next time broadcast sealed with
/// `secrets` (either wire format), advanced by the time since it was heard.
fn central_time(air: &Path, channel: u8, secrets: &Secrets) -> Result<u128, Failure> {
    let mut sniffer = air::Sniffer::open(air).map_err(io_fail)?;
    eprintln!(
        "waiting for the central's time broadcast on channel {channel} (at most {} s)",
        CENTRAL_TIME_WAIT.as_secs()
    );
    let decoder = Decoder::new(secrets, None);
    let deadline = Instant::now() + CENTRAL_TIME_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err((
                1,
                format!(
                    "no time broadcast sealed with this --psk and --group on channel {channel} \
                     within {} s: is the central running on that channel?",
                    CENTRAL_TIME_WAIT.as_secs()
                ),
            ));
        }
        let Some(d) = sniffer.recv(Some(left)).map_err(io_fail)? else {
            continue;
        };
        if d.channel != channel || !matches!(d.kind, Kind::Data) {
            continue;
        }
        let heard = Instant::now();
        if let Some(ts) = decoder.time_broadcast(&d.frame) {
            return Ok(ts + heard.elapsed().as_millis());
        }
    }
}

fn send(a: &SendArgs) -> Result<(), Failure> {
    let mut what = a.what.clone();
    if a.ts_from_central {
        if let Payload::Frame { secrets, kind, .. } = &mut what {
            let now = central_time(&a.air, a.channel, secrets)?;
            match kind {
                FrameArgs::Data { ts, .. } => *ts = Some(now),
                FrameArgs::Ping { ts, .. } => *ts = now,
                _ => {}
            }
            eprintln!("the central's network time: {now} ms");
        }
    }
    let bytes = build(&what)?;
    let reached = air::inject(&a.air, a.channel, a.from, a.to, &bytes).map_err(io_fail)?;
    println!(
        "sent {} bytes on channel {} from {} to {} ({reached} radio(s) reached)",
        bytes.len(),
        a.channel,
        air::mac_text(&a.from),
        air::mac_text(&a.to),
    );
    Ok(())
}

/// The keys of both wire formats, prepared once.
struct Decoder {
    key: Key,
    group: GroupId,
    keys: v3::Keys,
    version: Option<u8>,
}

impl Decoder {
    fn new(s: &Secrets, version: Option<u8>) -> Self {
        Self {
            key: Key::from_psk(s.psk.as_bytes()),
            group: GroupId::from_name(s.group.as_bytes()),
            keys: v3::Keys::derive(s.psk.as_bytes(), s.group.as_bytes()),
            version,
        }
    }

    /// `v2 data ts=… tid=… payload="…"`, or why neither format decoded it.
    fn describe(&self, bytes: &[u8]) -> String {
        let order: &[u8] = match self.version {
            Some(2) => &[2],
            Some(_) => &[3],
            None if v3::version(bytes) == Some(3) => &[3, 2],
            None => &[2, 3],
        };
        let mut errors = Vec::new();
        for v in order {
            let result = if *v == 3 {
                self.v3(bytes)
            } else {
                self.v2(bytes)
            };
            match result {
                Ok(text) => return text,
                Err(e) => errors.push(format!("v{v}: {e}")),
            }
        }
        format!("not decoded ({})", errors.join("; "))
    }

    /// The time of a default time broadcast (a central's; not a confirm or back-data), in
    /// either wire format.
    fn time_broadcast(&self, bytes: &[u8]) -> Option<u128> {
        let mut scratch = [0u8; hearth_netnow::MAX_CIPHERTEXT_LEN];
        if let Ok(hearth_netnow::Frame::Timestamp {
            subtype: TsSubtype::Default,
            ts,
            ..
        }) = hearth_netnow::decode(bytes, &self.key, &self.group, &mut scratch)
        {
            return Some(ts.as_millis());
        }
        let mut scratch = [0u8; v3::MAX_BODY_LEN];
        match v3::decode(bytes, &self.keys, &self.keys.group_id(), &mut scratch) {
            Ok((
                _,
                v3::Frame::Timestamp {
                    subtype: TsSubtype::Default,
                    ts,
                    ..
                },
            )) => Some(ts.as_millis()),
            _ => None,
        }
    }

    fn v2(&self, bytes: &[u8]) -> Result<String, String> {
        let mut scratch = [0u8; hearth_netnow::MAX_CIPHERTEXT_LEN];
        let frame = hearth_netnow::decode(bytes, &self.key, &self.group, &mut scratch)
            .map_err(|e| e.to_string())?;
        use hearth_netnow::Frame as F;
        Ok(match frame {
            F::Data { ts, tid, payload } => format!("v2 {}", data_text(ts, tid, payload)),
            F::Timestamp { subtype, ttid, ts } => format!("v2 {}", ts_text(subtype, ttid, ts)),
            F::Ping { ts, tid } => format!("v2 {}", ping_text(ts, tid)),
            F::PairRequest => "v2 pairreq".into(),
            F::Wakeup { tid } => format!("v2 wakeup tid={}", hex(&tid.0)),
        })
    }

    fn v3(&self, bytes: &[u8]) -> Result<String, String> {
        let mut scratch = [0u8; v3::MAX_BODY_LEN];
        let (header, frame) = v3::decode(bytes, &self.keys, &self.keys.group_id(), &mut scratch)
            .map_err(|e| e.to_string())?;
        let (kind, rest) = match frame {
            v3::Frame::Data { ts, tid, payload } => ("data", data_fields(ts, tid, payload)),
            v3::Frame::Timestamp { subtype, ttid, ts } => ("ts", ts_fields(subtype, ttid, ts)),
            v3::Frame::Ping { ts, tid } => ("ping", ping_fields(ts, tid)),
            v3::Frame::PairRequest { challenge } => {
                ("pairreq", format!("challenge={}", hex(&challenge.0)))
            }
            v3::Frame::Wakeup { tid } => ("wakeup", format!("tid={}", hex(&tid.0))),
        };
        Ok(format!(
            "v3 {kind} sender={} epoch={} counter={} {rest}",
            air::mac_text(&header.sender.0),
            header.epoch,
            header.counter
        ))
    }
}

fn data_fields(ts: Timestamp, tid: Tid, payload: &[u8]) -> String {
    format!(
        "ts={} tid={} payload=\"{}\"",
        ts.as_millis(),
        hex(&tid.0),
        escape(payload)
    )
}

fn data_text(ts: Timestamp, tid: Tid, payload: &[u8]) -> String {
    format!("data {}", data_fields(ts, tid, payload))
}

fn ts_fields(subtype: TsSubtype<'_>, ttid: Tid, ts: Timestamp) -> String {
    let head = format!("ttid={} ts={}", hex(&ttid.0), ts.as_millis());
    match subtype {
        TsSubtype::Default => format!("subtype=default {head}"),
        TsSubtype::Confirm(t) => format!("subtype=confirm {head} confirm-tid={}", hex(&t.0)),
        TsSubtype::Backdata(p) => format!("subtype=backdata {head} payload=\"{}\"", escape(p)),
    }
}

fn ts_text(subtype: TsSubtype<'_>, ttid: Tid, ts: Timestamp) -> String {
    format!("ts {}", ts_fields(subtype, ttid, ts))
}

fn ping_fields(ts: Timestamp, tid: Tid) -> String {
    format!("ts={} tid={}", ts.as_millis(), hex(&tid.0))
}

fn ping_text(ts: Timestamp, tid: Tid) -> String {
    format!("ping {}", ping_fields(ts, tid))
}

/// One output line of `sniff` for datagram `d` seen `ms` after the start.
fn sniff_line(ms: u128, d: &Datagram, decoder: Option<&Decoder>) -> String {
    let kind = match d.kind {
        Kind::Data if d.ack_requested => " (ack requested)",
        Kind::Data => "",
        Kind::Ack => " link-ack",
    };
    let mut line = format!(
        "{ms:>8} ms  ch {:>2}  {} -> {}  {:>3} bytes{kind}",
        d.channel,
        air::mac_text(&d.from),
        air::mac_text(&d.to),
        d.frame.len(),
    );
    if let (Some(dec), Kind::Data) = (decoder, d.kind) {
        line.push_str("  ");
        line.push_str(&dec.describe(&d.frame));
    }
    line
}

fn sniff(a: &SniffArgs) -> Result<(), Failure> {
    let mut sniffer = air::Sniffer::open(&a.air).map_err(io_fail)?;
    eprintln!(
        "sniffing air {} on all channels{}",
        a.air.display(),
        if a.duration.is_none() && a.count.is_none() {
            " (Ctrl-C to stop)"
        } else {
            ""
        }
    );
    let decoder = a.secrets.as_ref().map(|s| Decoder::new(s, a.version));
    let start = Instant::now();
    let deadline = a.duration.map(|d| start + d);
    let mut seen = 0u64;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    loop {
        if a.count.is_some_and(|n| seen >= n) {
            return Ok(());
        }
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                Some(left)
            }
            None => None,
        };
        let Some(d) = sniffer.recv(wait).map_err(io_fail)? else {
            continue;
        };
        seen += 1;
        let line = sniff_line(start.elapsed().as_millis(), &d, decoder.as_ref());
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // The reader went away (a closed pipe): nothing more to do.
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of a sealed frame on channel 1 with PSK `k` and group `g`.
    fn sealed(version: u8, kind: &str) -> SendOptions {
        SendOptions {
            channel: Some(1),
            psk: Some("k".into()),
            group: Some("g".into()),
            version: Some(version),
            kind: Some(kind.into()),
            ..SendOptions::default()
        }
    }

    #[test]
    fn escapes_round_trip() {
        assert_eq!(unescape(r"a\nb\\c\x41\t").unwrap(), b"a\nb\\cA\t");
        assert!(unescape(r"a\q").is_err());
        assert!(unescape(r"a\x4").is_err());
        assert!(unescape("a\\").is_err());
        assert_eq!(escape(b"h\"i\n\xff"), r#"h\"i\n\xff"#);
        assert_eq!(escape("21.5 °C".as_bytes()), "21.5 °C");
    }

    #[test]
    fn hex_parses() {
        assert_eq!(parse_hex("0x0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(parse_hex("0a:ff"), Some(vec![0x0a, 0xff]));
        assert_eq!(parse_hex("0a f"), None);
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex("é1"), None);
    }

    #[test]
    fn send_builds_frames() {
        let s = SendOptions {
            air: Some("/x/y".into()),
            channel: Some(6),
            payload: Some(unescape(r"hi\n").unwrap()),
            ts: Some(5),
            tid: Some(parse_tid("000102030405060708090a0b").unwrap()),
            ..sealed(2, "data")
        }
        .build()
        .unwrap();
        assert_eq!(s.air, PathBuf::from("/x/y"));
        assert_eq!((s.channel, s.from, s.to), (6, TOOL_MAC, BROADCAST));
        let Payload::Frame {
            version,
            kind,
            sender,
            ..
        } = &s.what
        else {
            panic!("{s:?}")
        };
        assert_eq!((*version, *sender), (2, TOOL_MAC));
        assert_eq!(
            kind,
            &FrameArgs::Data {
                payload: b"hi\n".to_vec(),
                ts: Some(5),
                tid: Some([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            }
        );
        let bytes = build(&s.what).unwrap();
        let dec = Decoder::new(
            &Secrets {
                psk: "k".into(),
                group: "g".into(),
            },
            None,
        );
        assert_eq!(
            dec.describe(&bytes),
            r#"v2 data ts=5 tid=000102030405060708090a0b payload="hi\n""#
        );

        let s = SendOptions {
            sender: Some(parse_unicast("02:00:00:00:00:07").unwrap()),
            epoch: Some(parse_epoch("a0a1a2a3a4a5a6a7a8a9aaab").unwrap()),
            counter: Some(9),
            subtype: Some("confirm".into()),
            confirm_tid: Some(parse_tid("0b0a09080706050403020100").unwrap()),
            ts: Some(77),
            tid: Some(parse_tid("000000000000000000000001").unwrap()),
            ..sealed(3, "ts")
        }
        .build()
        .unwrap();
        let bytes = build(&s.what).unwrap();
        assert_eq!(
            dec.describe(&bytes),
            "v3 ts sender=02:00:00:00:00:07 epoch=a0a1a2a3a4a5a6a7a8a9aaab counter=9 subtype=confirm \
             ttid=000000000000000000000001 ts=77 confirm-tid=0b0a09080706050403020100"
        );
        for kind in ["pairreq", "wakeup"] {
            for v in [2, 3] {
                let s = sealed(v, kind).build().unwrap();
                let text = dec.describe(&build(&s.what).unwrap());
                assert!(text.starts_with(&format!("v{v} {kind}")), "{text}");
            }
        }
        let other = Decoder::new(
            &Secrets {
                psk: "other".into(),
                group: "g".into(),
            },
            None,
        );
        assert!(other.describe(&bytes).starts_with("not decoded (v3: "));
    }

    #[test]
    fn combinations_are_checked() {
        let e = |o: SendOptions| o.build().unwrap_err();
        let raw = SendOptions {
            channel: Some(1),
            hex: Some(vec![0]),
            ..SendOptions::default()
        };
        assert!(raw.clone().build().is_ok());
        assert!(e(SendOptions {
            channel: None,
            ..raw.clone()
        })
        .contains("--channel"));
        assert!(e(SendOptions {
            kind: Some("data".into()),
            ..raw.clone()
        })
        .contains("--hex"));
        assert!(e(SendOptions {
            epoch: Some([0; v3::EPOCH_LEN]),
            ..raw.clone()
        })
        .contains("--epoch"));
        assert!(e(SendOptions {
            psk: Some("k".into()),
            ..raw
        })
        .contains("--group"));
        assert!(e(SendOptions {
            kind: None,
            ..sealed(3, "data")
        })
        .contains("frame kind"));
        assert!(e(sealed(3, "data")).contains("--payload"));
        assert!(e(sealed(3, "ping")).contains("--ts"));
        let payload = |n: usize| Some(vec![b'x'; n]);
        assert!(e(SendOptions {
            payload: payload(174),
            ..sealed(2, "data")
        })
        .contains("173"));
        assert!(e(SendOptions {
            payload: payload(177),
            ..sealed(3, "data")
        })
        .contains("176"));
        assert!(SendOptions {
            payload: payload(173),
            ..sealed(2, "data")
        }
        .build()
        .is_ok());
        assert!(SendOptions {
            payload: payload(175),
            subtype: Some("backdata".into()),
            ..sealed(3, "ts")
        }
        .build()
        .is_ok());
        assert!(e(SendOptions {
            payload: Some(b"x".to_vec()),
            counter: Some(1),
            ..sealed(2, "data")
        })
        .contains("--version 3"));
        assert!(e(SendOptions {
            subtype: Some("confirm".into()),
            ..sealed(3, "ts")
        })
        .contains("--confirm-tid"));
        assert!(e(SendOptions {
            payload: Some(b"x".to_vec()),
            ..sealed(3, "ts")
        })
        .contains("backdata"));
        assert!(e(SendOptions {
            ts: Some(1),
            payload: Some(b"x".to_vec()),
            ..sealed(3, "ping")
        })
        .contains("--payload"));
        assert!(SniffOptions {
            version: Some(3),
            ..SniffOptions::default()
        }
        .build()
        .unwrap_err()
        .contains("--psk"));
    }

    #[test]
    fn values_are_checked() {
        assert!(parse_channel("0").is_err() && parse_channel("14").is_err());
        assert_eq!(parse_channel("13"), Ok(13));
        assert!(parse_unicast("ff:ff:ff:ff:ff:ff")
            .unwrap_err()
            .contains("unicast"));
        assert!(parse_unicast("zz").is_err());
        assert!(parse_destination("broadcast").is_ok());
        assert!(parse_destination("01:02").is_err());
        assert!(parse_frame_bytes("0g").is_err());
        assert!(parse_frame_bytes(&"00".repeat(RADIO_MAX_FRAME + 1))
            .unwrap_err()
            .contains("longer"));
        assert!(parse_epoch("00").unwrap_err().contains("24 hex digits"));
        assert!(parse_tid("00").is_err());
        assert!(parse_version("4").is_err());
        assert!(parse_subtype("weird").is_err());
        assert!(parse_kind("blah")
            .unwrap_err()
            .contains("unknown frame kind"));
        assert!(unescape(r"\q").unwrap_err().contains("escape"));
        assert!(parse_count("0").is_err());
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_air("..").is_err());
        assert!(parse_loss("101").is_err() && parse_rssi("5").is_err());
    }

    #[test]
    fn sniff_lines_show_addresses() {
        let d = Datagram {
            kind: Kind::Data,
            channel: 3,
            from: TOOL_MAC,
            to: BROADCAST,
            seq: 1,
            ack_requested: false,
            frame: vec![1, 2, 3],
        };
        let line = sniff_line(12, &d, None);
        assert_eq!(
            line,
            "      12 ms  ch  3  02:48:45:41:52:54 -> broadcast    3 bytes"
        );
        let dec = Decoder::new(
            &Secrets {
                psk: "k".into(),
                group: "g".into(),
            },
            Some(2),
        );
        assert!(sniff_line(0, &d, Some(&dec))
            .ends_with("not decoded (v2: frame shorter than 44 bytes)"));
    }
}
