//! The simulated ESP-NOW "air": serverless, shared by every process of one machine that names
//! the same air directory.
//!
//! # Layout
//!
//! An air is a directory ([`air_dir`]): `$XDG_RUNTIME_DIR/hearth-air/<name>`, or
//! `/tmp/hearth-air-<uid>/<name>` when `XDG_RUNTIME_DIR` is unset; the name is `default` unless
//! given. A command-line value containing `/` is taken as the directory itself (tests use their
//! own temporary directories). Inside it:
//!
//! - `<12 hex digits of the MAC>.sock`: the Unix datagram socket of one [`SimRadio`];
//! - `sniff-<pid>-<n>.sock`: a [`Sniffer`], which receives a copy of every data frame sent on
//!   any channel;
//! - `air.conf`: the air-wide settings, lines `loss <percent 0..=100>` and
//!   `rssi <dBm -100..=0>` (`#` starts a comment). A missing file means no loss and −50 dBm.
//!   Radios re-read it when it changes (looked at no more than every 200 ms); write it with
//!   [`set_air_conf`].
//!
//! # Datagram format (format version 1)
//!
//! Every datagram between sockets of the air is a 22-byte header followed by the ESP-NOW frame
//! bytes. Integers are big-endian.
//!
//! | offset | length | field    | notes                                                   |
//! |-------:|-------:|----------|---------------------------------------------------------|
//! | 0      | 2      | magic    | `"HA"` (`0x48 0x41`, [`MAGIC`])                         |
//! | 2      | 1      | version  | `1` ([`FORMAT_VERSION`])                                |
//! | 3      | 1      | kind     | `1` data, `2` link ack ([`Kind`])                       |
//! | 4      | 1      | channel  | 1..=13, the sender's channel                            |
//! | 5      | 1      | flags    | bit 0: ack requested (data only); other bits must be 0  |
//! | 6      | 6      | from     | sender MAC                                              |
//! | 12     | 6      | to       | destination MAC or `ff:ff:ff:ff:ff:ff` (broadcast)      |
//! | 18     | 4      | sequence | chosen by the sender; an ack repeats the data's number  |
//! | 22     | n      | frame    | data: 0..=250 bytes of ESP-NOW frame; ack: empty        |
//!
//! Anything else (short, long, wrong magic, version, kind, flags or channel, an ack with a body)
//! is malformed: receivers drop it and count it ([`RadioStats::malformed`]), never panic.
//!
//! # Behaviour
//!
//! - A broadcast goes to every radio socket of the directory except the sender's own, a unicast
//!   to the destination's socket only; both go to every sniffer as well.
//! - Loss is decided by the sender, independently per receiving radio and frame (a seeded
//!   PRNG); sniffers see every frame as sent. Acks are subject to loss too.
//! - Sends never block: a receiver whose queue is full simply misses the frame, as on the air.
//!   A socket whose owner is gone is removed by the first sender that notices.
//! - A radio receives data frames addressed to it or broadcast on its current channel only,
//!   with the configured RSSI ± 3 dB of jitter. A background thread reads the socket into a
//!   bounded queue of [`RECEIVE_QUEUE`] frames (overflow drops and counts) and sends link acks
//!   for accepted unicasts that ask for one, whether or not the application is receiving.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use hearth_platform::{Radio, RadioError, RadioFrame, BROADCAST, RADIO_MAX_FRAME};

/// The air used when none is named.
pub const DEFAULT_AIR: &str = "default";
/// Name of the air-wide settings file in the air directory.
pub const CONF_NAME: &str = "air.conf";
/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"HA";
/// Datagram format version.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the datagram header.
pub const HEADER_LEN: usize = 22;
/// Longest valid datagram: header and a 250-byte frame.
pub const MAX_DATAGRAM: usize = HEADER_LEN + RADIO_MAX_FRAME;
/// How long a unicast send with `ack` waits for the link ack.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(30);
/// Frames a radio holds between its socket and `receive()`.
pub const RECEIVE_QUEUE: usize = 64;
/// RSSI when `air.conf` does not say, dBm.
pub const DEFAULT_RSSI: i8 = -50;
/// Largest RSSI deviation from the configured value, dB.
pub const RSSI_JITTER: i8 = 3;
/// `air.conf` is looked at no more often than this.
pub const CONF_CHECK_INTERVAL: Duration = Duration::from_millis(200);
/// Channels a radio may use.
pub const CHANNELS: std::ops::RangeInclusive<u8> = 1..=13;

const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
const FLAG_ACK_REQUESTED: u8 = 0x01;
/// How often the receive thread looks at its stop flag when nothing arrives.
const RECEIVE_POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// Directory and names

/// The directory of the air `name`: `None` is [`DEFAULT_AIR`]; a value containing `/` is the
/// directory itself; any other name lives under `$XDG_RUNTIME_DIR/hearth-air/`, or
/// `/tmp/hearth-air-<uid>/` when `XDG_RUNTIME_DIR` is unset or empty.
pub fn air_dir(name: Option<&str>) -> PathBuf {
    let name = name.unwrap_or(DEFAULT_AIR);
    if name.contains('/') {
        return PathBuf::from(name);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => PathBuf::from(run).join("hearth-air").join(name),
        None => {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            PathBuf::from(format!("/tmp/hearth-air-{uid}")).join(name)
        }
    }
}

/// Create the air directory (and its parents), private to this user.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create air {}: {e}", dir.display()),
            )
        })
}

/// `AA:BB:CC:DD:EE:FF`, or `broadcast` for [`BROADCAST`].
pub fn mac_text(mac: &[u8; 6]) -> String {
    if *mac == BROADCAST {
        return "broadcast".into();
    }
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// Parses `AA:BB:CC:DD:EE:FF` (`:` or `-` separated, any case) or 12 hex digits; `broadcast`
/// is [`BROADCAST`].
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    if text.eq_ignore_ascii_case("broadcast") {
        return Some(BROADCAST);
    }
    let digits: String = if text.contains([':', '-']) {
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        parts.concat()
    } else {
        text.to_string()
    };
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(digits.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(mac)
}

/// File name of the socket of the radio with `mac`.
pub fn socket_name(mac: &[u8; 6]) -> String {
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.sock")
}

/// What a socket file in the air directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Radio([u8; 6]),
    Sniffer,
}

fn classify(name: &OsStr) -> Option<Peer> {
    let name = name.to_str()?;
    let stem = name.strip_suffix(".sock")?;
    if stem.starts_with("sniff-") {
        return Some(Peer::Sniffer);
    }
    if stem.len() == 12 {
        return parse_mac(stem).map(Peer::Radio);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Datagrams

/// What a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ESP-NOW frame.
    Data,
    /// A link-level acknowledgement of the data datagram with the same sequence number.
    Ack,
}

/// One datagram of the air, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Data or ack.
    pub kind: Kind,
    /// The sender's channel, 1..=13.
    pub channel: u8,
    /// The sender's MAC.
    pub from: [u8; 6],
    /// The destination MAC or [`BROADCAST`].
    pub to: [u8; 6],
    /// Sequence number (an ack repeats the acknowledged data's).
    pub seq: u32,
    /// The sender waits for a link ack (unicast data only).
    pub ack_requested: bool,
    /// The ESP-NOW frame (empty for acks), at most [`RADIO_MAX_FRAME`] bytes.
    pub frame: Vec<u8>,
}

/// Why bytes are not a valid datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the header.
    TooShort,
    /// The frame is longer than [`RADIO_MAX_FRAME`].
    TooLong,
    /// The magic is not `"HA"`.
    BadMagic,
    /// Unknown format version.
    BadVersion(u8),
    /// Unknown kind.
    BadKind(u8),
    /// Unknown flag bits, or ack requested on an ack.
    BadFlags(u8),
    /// Channel outside 1..=13.
    BadChannel(u8),
    /// An ack with frame bytes.
    AckWithBody,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => write!(f, "datagram shorter than its {HEADER_LEN}-byte header"),
            Self::TooLong => write!(f, "frame longer than {RADIO_MAX_FRAME} bytes"),
            Self::BadMagic => f.write_str("bad magic"),
            Self::BadVersion(v) => write!(f, "unknown format version {v}"),
            Self::BadKind(k) => write!(f, "unknown kind {k}"),
            Self::BadFlags(b) => write!(f, "bad flags {b:#04x}"),
            Self::BadChannel(c) => write!(f, "channel {c} is not 1..=13"),
            Self::AckWithBody => f.write_str("ack with a body"),
        }
    }
}

impl Datagram {
    /// Writes the datagram into `out` and returns its length; `None` if the frame is longer
    /// than [`RADIO_MAX_FRAME`].
    pub fn encode(&self, out: &mut [u8; MAX_DATAGRAM]) -> Option<usize> {
        if self.frame.len() > RADIO_MAX_FRAME {
            return None;
        }
        out[..2].copy_from_slice(&MAGIC);
        out[2] = FORMAT_VERSION;
        out[3] = match self.kind {
            Kind::Data => KIND_DATA,
            Kind::Ack => KIND_ACK,
        };
        out[4] = self.channel;
        out[5] = if self.ack_requested {
            FLAG_ACK_REQUESTED
        } else {
            0
        };
        out[6..12].copy_from_slice(&self.from);
        out[12..18].copy_from_slice(&self.to);
        out[18..22].copy_from_slice(&self.seq.to_be_bytes());
        let end = HEADER_LEN + self.frame.len();
        out[HEADER_LEN..end].copy_from_slice(&self.frame);
        Some(end)
    }

    /// Parses received bytes strictly (see the module documentation). Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, Malformed> {
        let (header, frame) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Malformed::TooShort)?;
        if frame.len() > RADIO_MAX_FRAME {
            return Err(Malformed::TooLong);
        }
        if header[..2] != MAGIC {
            return Err(Malformed::BadMagic);
        }
        if header[2] != FORMAT_VERSION {
            return Err(Malformed::BadVersion(header[2]));
        }
        let kind = match header[3] {
            KIND_DATA => Kind::Data,
            KIND_ACK => Kind::Ack,
            other => return Err(Malformed::BadKind(other)),
        };
        let channel = header[4];
        if !CHANNELS.contains(&channel) {
            return Err(Malformed::BadChannel(channel));
        }
        let flags = header[5];
        if flags & !FLAG_ACK_REQUESTED != 0 || (kind == Kind::Ack && flags != 0) {
            return Err(Malformed::BadFlags(flags));
        }
        if kind == Kind::Ack && !frame.is_empty() {
            return Err(Malformed::AckWithBody);
        }
        let mut from = [0u8; 6];
        from.copy_from_slice(&header[6..12]);
        let mut to = [0u8; 6];
        to.copy_from_slice(&header[12..18]);
        let mut seq = [0u8; 4];
        seq.copy_from_slice(&header[18..22]);
        Ok(Datagram {
            kind,
            channel,
            from,
            to,
            seq: u32::from_be_bytes(seq),
            ack_requested: flags & FLAG_ACK_REQUESTED != 0,
            frame: frame.to_vec(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Settings

/// The air-wide settings of `air.conf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AirConf {
    /// Percentage of frames (and acks) each receiver misses, 0..=100.
    pub loss: u8,
    /// Received signal strength, dBm, −100..=0.
    pub rssi: i8,
}

impl Default for AirConf {
    fn default() -> Self {
        Self {
            loss: 0,
            rssi: DEFAULT_RSSI,
        }
    }
}

impl AirConf {
    /// Parses the text of `air.conf`; settings not named keep their defaults.
    pub fn parse(text: &str) -> Result<AirConf, String> {
        let mut conf = AirConf::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (key, value) = (words.next(), words.next());
            if words.next().is_some() {
                return Err(format!("line {}: expected `KEY VALUE`", n + 1));
            }
            match (key, value) {
                (Some("loss"), Some(v)) => {
                    conf.loss = parse_loss(v).ok_or_else(|| {
                        format!("line {}: loss expects 0..=100, got {v:?}", n + 1)
                    })?;
                }
                (Some("rssi"), Some(v)) => {
                    conf.rssi = parse_rssi(v).ok_or_else(|| {
                        format!("line {}: rssi expects -100..=0 dBm, got {v:?}", n + 1)
                    })?;
                }
                _ => return Err(format!("line {}: unknown setting {line:?}", n + 1)),
            }
        }
        Ok(conf)
    }
}

/// A loss percentage, 0..=100.
pub fn parse_loss(v: &str) -> Option<u8> {
    v.parse().ok().filter(|l| *l <= 100)
}

/// An RSSI, −100..=0 dBm.
pub fn parse_rssi(v: &str) -> Option<i8> {
    v.parse().ok().filter(|r| (-100..=0).contains(r))
}

/// The settings of the air in `dir`: defaults if it has no `air.conf`, an `InvalidData` error if
/// the file does not parse.
pub fn read_air_conf(dir: &Path) -> io::Result<AirConf> {
    match fs::read_to_string(dir.join(CONF_NAME)) {
        Ok(text) => AirConf::parse(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(CONF_NAME).display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(AirConf::default()),
        Err(e) => Err(e),
    }
}

/// Writes `air.conf` in `dir` (created if needed) atomically: `loss` 0..=100 %, `rssi`
/// −100..=0 dBm. Running radios pick it up within [`CONF_CHECK_INTERVAL`].
pub fn set_air_conf(dir: &Path, loss: u8, rssi: i8) -> io::Result<()> {
    if loss > 100 || !(-100..=0).contains(&rssi) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("loss must be 0..=100 and rssi -100..=0, got {loss} and {rssi}"),
        ));
    }
    ensure_dir(dir)?;
    let tmp = dir.join(format!(".{CONF_NAME}.{}.tmp", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    writeln!(file, "# hearth simulated air\nloss {loss}\nrssi {rssi}")?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(CONF_NAME)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// `air.conf`, re-read when its identity (mtime, inode, size) changes, checked at most every
/// [`CONF_CHECK_INTERVAL`]. A file that does not parse leaves the previous settings.
struct ConfCache {
    path: PathBuf,
    conf: AirConf,
    key: Option<(i64, i64, u64, u64)>,
    checked: Option<Instant>,
}

impl ConfCache {
    fn new(dir: &Path) -> Self {
        let mut c = Self {
            path: dir.join(CONF_NAME),
            conf: AirConf::default(),
            key: None,
            checked: None,
        };
        c.get();
        c
    }

    fn get(&mut self) -> AirConf {
        let now = Instant::now();
        if self
            .checked
            .is_some_and(|t| now.duration_since(t) < CONF_CHECK_INTERVAL)
        {
            return self.conf;
        }
        self.checked = Some(now);
        let key = fs::metadata(&self.path)
            .ok()
            .map(|m| (m.mtime(), m.mtime_nsec(), m.ino(), m.len()));
        if key != self.key {
            self.key = key;
            if key.is_none() {
                self.conf = AirConf::default();
            } else if let Ok(c) = fs::read_to_string(&self.path)
                .map_err(|_| String::new())
                .and_then(|t| AirConf::parse(&t))
            {
                self.conf = c;
            }
        }
        self.conf
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness (loss, jitter, sequence numbers): splitmix64, seeded from pid, time and a counter.

struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let mut r = Rng(nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ n.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn lost(&mut self, percent: u8) -> bool {
        percent > 0 && self.next() % 100 < u64::from(percent)
    }

    /// Uniform in −max..=max.
    fn jitter(&mut self, max: i8) -> i16 {
        let span = 2 * u64::from(max.unsigned_abs()) + 1;
        (self.next() % span) as i16 - i16::from(max.unsigned_abs())
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// Sends datagrams into an air directory: non-blocking, loss applied per receiving radio.
struct Transmitter {
    dir: PathBuf,
    sock: UnixDatagram,
    conf: ConfCache,
    rng: Rng,
    /// The sending radio, skipped when broadcasting.
    own: Option<[u8; 6]>,
}

impl Transmitter {
    fn new(dir: &Path, own: Option<[u8; 6]>) -> io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            sock,
            conf: ConfCache::new(dir),
            rng: Rng::seeded(),
            own,
        })
    }

    /// Sends data datagram `d` to its receivers and every sniffer; returns how many radios got
    /// it (passed the loss draw and were queued in their socket).
    fn transmit(&mut self, d: &Datagram) -> usize {
        let mut buf = [0u8; MAX_DATAGRAM];
        let Some(len) = d.encode(&mut buf) else {
            return 0;
        };
        let loss = self.conf.get().loss;
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut reached = 0;
        for entry in entries.flatten() {
            match classify(&entry.file_name()) {
                Some(Peer::Sniffer) => {
                    self.deliver(&entry.path(), &buf[..len]);
                }
                Some(Peer::Radio(mac)) => {
                    if Some(mac) == self.own || (d.to != BROADCAST && d.to != mac) {
                        continue;
                    }
                    if !self.rng.lost(loss) && self.deliver(&entry.path(), &buf[..len]) {
                        reached += 1;
                    }
                }
                None => {}
            }
        }
        reached
    }

    /// Sends an ack for `seq` to the radio `to`, subject to loss.
    fn ack(&mut self, from: [u8; 6], to: [u8; 6], channel: u8, seq: u32) -> bool {
        if self.rng.lost(self.conf.get().loss) {
            return false;
        }
        let d = Datagram {
            kind: Kind::Ack,
            channel,
            from,
            to,
            seq,
            ack_requested: false,
            frame: Vec::new(),
        };
        let mut buf = [0u8; MAX_DATAGRAM];
        match d.encode(&mut buf) {
            Some(len) => self.deliver(&self.dir.join(socket_name(&to)), &buf[..len]),
            None => false,
        }
    }

    /// One non-blocking send; a socket whose owner is gone is removed.
    fn deliver(&self, path: &Path, bytes: &[u8]) -> bool {
        match self.sock.send_to(bytes, path) {
            Ok(_) => true,
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)) {
                    let _ = fs::remove_file(path);
                }
                // EAGAIN: the receiver's queue is full; the frame is lost, like on the air.
                false
            }
        }
    }
}

/// Sends one data frame into the air in `dir` from a process that has no radio (the `hearth
/// espnow send` tool): `from` is only written into the header, so no ack can come back.
/// Returns how many radios received it. Loss applies as for radios.
pub fn inject(
    dir: &Path,
    channel: u8,
    from: [u8; 6],
    to: [u8; 6],
    frame: &[u8],
) -> io::Result<usize> {
    if !CHANNELS.contains(&channel) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            RadioError::BadChannel(channel).to_string(),
        ));
    }
    if frame.len() > RADIO_MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            RadioError::TooLong.to_string(),
        ));
    }
    let mut tx = Transmitter::new(dir, Some(from))?;
    let seq = tx.rng.next() as u32;
    Ok(tx.transmit(&Datagram {
        kind: Kind::Data,
        channel,
        from,
        to,
        seq,
        ack_requested: false,
        frame: frame.to_vec(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Receiving

/// Counters of one radio, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadioStats {
    /// Frames queued for `receive()`.
    pub received: u64,
    /// Datagrams that were not valid ([`Datagram::decode`] failed).
    pub malformed: u64,
    /// Data frames dropped because they were sent on another channel.
    pub wrong_channel: u64,
    /// Frames dropped because the receive queue was full.
    pub overflow: u64,
    /// Link acks sent (lost ones not counted).
    pub acks_sent: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    malformed: AtomicU64,
    wrong_channel: AtomicU64,
    overflow: AtomicU64,
    acks_sent: AtomicU64,
}

struct Shared {
    mac: [u8; 6],
    channel: AtomicU8,
    stop: AtomicBool,
    counters: Counters,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn receive_loop(
    sock: UnixDatagram,
    shared: Arc<Shared>,
    frames: async_channel::Sender<RadioFrame>,
    acks: async_channel::Sender<u32>,
    mut tx: Transmitter,
) {
    let mut buf = [0u8; MAX_DATAGRAM + 1];
    let c = &shared.counters;
    while !shared.stop.load(Ordering::SeqCst) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) {
                    // Unexpected; do not spin.
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let d = match Datagram::decode(&buf[..n]) {
            Ok(d) => d,
            Err(_) => {
                bump(&c.malformed);
                continue;
            }
        };
        match d.kind {
            Kind::Ack => {
                if d.to == shared.mac {
                    let _ = acks.try_send(d.seq);
                }
            }
            Kind::Data => {
                if d.to != shared.mac && d.to != BROADCAST {
                    continue;
                }
                if d.channel != shared.channel.load(Ordering::SeqCst) {
                    bump(&c.wrong_channel);
                    continue;
                }
                // The MAC acknowledges what it accepted, whatever the application does next.
                if d.ack_requested
                    && d.to == shared.mac
                    && tx.ack(shared.mac, d.from, d.channel, d.seq)
                {
                    bump(&c.acks_sent);
                }
                let rssi = i16::from(tx.conf.get().rssi) + tx.rng.jitter(RSSI_JITTER);
                let rssi = rssi.clamp(i16::from(i8::MIN), 0) as i8;
                let Some(frame) = RadioFrame::new(d.from, d.to, rssi, d.channel, &d.frame) else {
                    bump(&c.malformed);
                    continue;
                };
                match frames.try_send(frame) {
                    Ok(()) => bump(&c.received),
                    Err(async_channel::TrySendError::Full(_)) => bump(&c.overflow),
                    Err(async_channel::TrySendError::Closed(_)) => break,
                }
            }
        }
    }
}

/// Claims `path` for a new socket: a live owner is an error, a stale file is removed.
fn claim(path: &Path, what: impl FnOnce() -> String) -> io::Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let probe = UnixDatagram::unbound()?;
    if probe.connect(path).is_ok() {
        return Err(io::Error::new(io::ErrorKind::AddrInUse, what()));
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!("cannot remove stale socket {}: {e}", path.display()),
        )),
        _ => Ok(()),
    }
}

fn inode(path: &Path) -> Option<u64> {
    fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Removes `path` if it still is the socket we bound (inode `ino`).
fn remove_own(path: &Path, ino: Option<u64>) {
    if ino.is_some() && inode(path) == ino {
        let _ = fs::remove_file(path);
    }
}

/// A simulated ESP-NOW radio on an air directory; implements [`Radio`].
pub struct SimRadio {
    shared: Arc<Shared>,
    path: PathBuf,
    ino: Option<u64>,
    tx: Transmitter,
    frames: async_channel::Receiver<RadioFrame>,
    acks: async_channel::Receiver<u32>,
    seq: u32,
    waker: Option<UnixDatagram>,
    thread: Option<JoinHandle<()>>,
}

impl SimRadio {
    /// Joins the air in `dir` (created if needed) as the radio `mac`, tuned to `channel`.
    ///
    /// Fails if `mac` is a broadcast or group address, the channel is outside 1..=13, or
    /// another live radio already uses `mac` on this air. A stale socket file is replaced.
    pub fn open(dir: &Path, mac: [u8; 6], channel: u8) -> io::Result<SimRadio> {
        if !CHANNELS.contains(&channel) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                RadioError::BadChannel(channel).to_string(),
            ));
        }
        if mac[0] & 1 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a group address, not a radio's MAC", mac_text(&mac)),
            ));
        }
        ensure_dir(dir)?;
        let path = dir.join(socket_name(&mac));
        let in_use = || {
            format!(
                "MAC {} is already used on air {} by another live radio",
                mac_text(&mac),
                dir.display()
            )
        };
        claim(&path, in_use)?;
        let sock = UnixDatagram::bind(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(e.kind(), in_use())
            } else {
                io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
            }
        })?;
        let ino = inode(&path);
        let result = (|| {
            sock.set_read_timeout(Some(RECEIVE_POLL))?;
            let waker = sock.try_clone()?;
            let shared = Arc::new(Shared {
                mac,
                channel: AtomicU8::new(channel),
                stop: AtomicBool::new(false),
                counters: Counters::default(),
            });
            let (frame_tx, frames) = async_channel::bounded(RECEIVE_QUEUE);
            let (ack_tx, acks) = async_channel::bounded(16);
            let rx_tx = Transmitter::new(dir, Some(mac))?;
            let mut tx = Transmitter::new(dir, Some(mac))?;
            let seq = tx.rng.next() as u32;
            let thread_shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("air-rx-{}", socket_name(&mac)))
                .spawn(move || receive_loop(sock, thread_shared, frame_tx, ack_tx, rx_tx))?;
            Ok(SimRadio {
                shared,
                path: path.clone(),
                ino,
                tx,
                frames,
                acks,
                seq,
                waker: Some(waker),
                thread: Some(thread),
            })
        })();
        if result.is_err() {
            remove_own(&path, ino);
        }
        result
    }

    /// The socket file of this radio.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The current channel.
    pub fn channel(&self) -> u8 {
        self.shared.channel.load(Ordering::SeqCst)
    }

    /// Counters since the radio was opened.
    pub fn stats(&self) -> RadioStats {
        let c = &self.shared.counters;
        RadioStats {
            received: c.received.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            wrong_channel: c.wrong_channel.load(Ordering::Relaxed),
            overflow: c.overflow.load(Ordering::Relaxed),
            acks_sent: c.acks_sent.load(Ordering::Relaxed),
        }
    }
}

impl Radio for SimRadio {
    fn mac(&self) -> [u8; 6] {
        self.shared.mac
    }

    async fn set_channel(&mut self, channel: u8) -> Result<(), RadioError> {
        if !CHANNELS.contains(&channel) {
            return Err(RadioError::BadChannel(channel));
        }
        self.shared.channel.store(channel, Ordering::SeqCst);
        Ok(())
    }

    /// Unicasts with `ack` wait up to [`ACK_TIMEOUT`] for the ack, except when the frame reached
    /// no radio at all (destination absent or the frame lost): then `Ok(false)` comes at once.
    async fn send(&mut self, to: [u8; 6], frame: &[u8], ack: bool) -> Result<bool, RadioError> {
        if frame.len() > RADIO_MAX_FRAME {
            return Err(RadioError::TooLong);
        }
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let unicast_ack = ack && to != BROADCAST;
        // Acks of earlier sends that came too late must not count for this one.
        while self.acks.try_recv().is_ok() {}
        let reached = self.tx.transmit(&Datagram {
            kind: Kind::Data,
            channel: self.channel(),
            from: self.shared.mac,
            to,
            seq,
            ack_requested: unicast_ack,
            frame: frame.to_vec(),
        });
        if !unicast_ack {
            return Ok(true);
        }
        if reached == 0 {
            return Ok(false);
        }
        let acks = &self.acks;
        let wait = async {
            loop {
                match acks.recv().await {
                    Ok(s) if s == seq => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        };
        let timeout = async {
            async_io::Timer::after(ACK_TIMEOUT).await;
            false
        };
        Ok(future::or(wait, timeout).await)
    }

    async fn receive(&mut self) -> RadioFrame {
        match self.frames.recv().await {
            Ok(frame) => frame,
            // The receive thread is gone (cannot happen while the radio lives); stay silent.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for SimRadio {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.take() {
            let _ = w.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        remove_own(&self.path, self.ino);
    }
}

// ---------------------------------------------------------------------------------------------
// Sniffing

/// A listener that receives a copy of every data frame sent on the air, on every channel.
pub struct Sniffer {
    sock: UnixDatagram,
    path: PathBuf,
    ino: Option<u64>,
    malformed: u64,
}

impl Sniffer {
    /// Joins the air in `dir` (created if needed) as `sniff-<pid>-<n>.sock`.
    pub fn open(dir: &Path) -> io::Result<Sniffer> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        ensure_dir(dir)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("sniff-{}-{n}.sock", std::process::id()));
        // Same pid and number: left behind by a dead process whose pid was reused.
        let _ = fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
        })?;
        let ino = inode(&path);
        Ok(Sniffer {
            sock,
            path,
            ino,
            malformed: 0,
        })
    }

    /// The sniffer's socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Malformed datagrams skipped so far.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The next datagram, waiting at most `timeout` (`None`: forever); `Ok(None)` on timeout.
    /// Malformed datagrams are skipped and counted.
    pub fn recv(&mut self, timeout: Option<Duration>) -> io::Result<Option<Datagram>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut buf = [0u8; MAX_DATAGRAM + 1];
        loop {
            let wait = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(left)
                }
            };
            self.sock.set_read_timeout(wait)?;
            match self.sock.recv(&mut buf) {
                Ok(n) => match Datagram::decode(&buf[..n]) {
                    Ok(d) => return Ok(Some(d)),
                    Err(_) => self.malformed += 1,
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        remove_own(&self.path, self.ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip_and_reject_garbage() {
        let d = Datagram {
            kind: Kind::Data,
            channel: 6,
            from: [2, 0, 0, 0, 0, 1],
            to: BROADCAST,
            seq: 0xdead_beef,
            ack_requested: true,
            frame: vec![7; RADIO_MAX_FRAME],
        };
        let mut buf = [0u8; MAX_DATAGRAM];
        let n = d.encode(&mut buf).unwrap();
        assert_eq!(n, MAX_DATAGRAM);
        assert_eq!(Datagram::decode(&buf[..n]), Ok(d.clone()));
        let mut long = buf.to_vec();
        long.push(0);
        assert_eq!(Datagram::decode(&long), Err(Malformed::TooLong));
        assert_eq!(Datagram::decode(&buf[..5]), Err(Malformed::TooShort));
        let mut bad = buf;
        bad[4] = 14;
        assert_eq!(Datagram::decode(&bad), Err(Malformed::BadChannel(14)));
        let mut bad = buf;
        bad[5] = 2;
        assert_eq!(Datagram::decode(&bad), Err(Malformed::BadFlags(2)));
        let mut bad = buf;
        bad[3] = KIND_ACK;
        assert!(Datagram::decode(&bad).is_err());
        // Every prefix and single-byte corruption decodes or errs, never panics.
        for len in 0..=n {
            let _ = Datagram::decode(&buf[..len]);
        }
        for i in 0..HEADER_LEN {
            for v in [0u8, 1, 2, 0x48, 0xff] {
                let mut b = buf;
                b[i] = v;
                let _ = Datagram::decode(&b[..n]);
            }
        }
    }

    #[test]
    fn macs_and_names() {
        let mac = [0x02, 0x48, 0x45, 0x41, 0x52, 0x54];
        assert_eq!(mac_text(&mac), "02:48:45:41:52:54");
        assert_eq!(mac_text(&BROADCAST), "broadcast");
        assert_eq!(parse_mac("02:48:45:41:52:54"), Some(mac));
        assert_eq!(parse_mac("02-48-45-41-52-54"), Some(mac));
        assert_eq!(parse_mac("024845415254"), Some(mac));
        assert_eq!(parse_mac("Broadcast"), Some(BROADCAST));
        for bad in [
            "",
            "02:48:45:41:52",
            "02:48:45:41:52:5g",
            "2:48:45:41:52:54:",
            "0248454152",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert_eq!(socket_name(&mac), "024845415254.sock");
        assert_eq!(
            classify(OsStr::new("024845415254.sock")),
            Some(Peer::Radio(mac))
        );
        assert_eq!(classify(OsStr::new("sniff-1-0.sock")), Some(Peer::Sniffer));
        assert_eq!(classify(OsStr::new("air.conf")), None);
        assert_eq!(classify(OsStr::new("zz4845415254.sock")), None);
    }

    #[test]
    fn air_conf_parses() {
        assert_eq!(AirConf::parse(""), Ok(AirConf::default()));
        assert_eq!(
            AirConf::parse("# x\nloss 30\nrssi -70 # weak\n"),
            Ok(AirConf {
                loss: 30,
                rssi: -70
            })
        );
        assert!(AirConf::parse("loss 101").is_err());
        assert!(AirConf::parse("rssi 1").is_err());
        assert!(AirConf::parse("rssi -101").is_err());
        assert!(AirConf::parse("volume 11").is_err());
        assert!(AirConf::parse("loss 1 2").is_err());
    }

    #[test]
    fn air_dir_names_and_paths() {
        assert_eq!(air_dir(Some("/tmp/x")), PathBuf::from("/tmp/x"));
        assert_eq!(air_dir(Some("./here")), PathBuf::from("./here"));
        assert!(air_dir(None).ends_with("default"));
        assert!(air_dir(Some("lab")).ends_with("lab"));
    }

    #[test]
    fn rng_jitter_stays_in_range() {
        let mut r = Rng::seeded();
        for _ in 0..1000 {
            assert!((-3..=3).contains(&r.jitter(3)));
        }
        assert!(!r.lost(0));
        assert!(r.lost(100));
    }
}
