//! The fleet commands that change devices: `hearth keygen`, `hearth image`, `hearth ota`,
//! `hearth cmd` and `hearth config push`. They speak to devices through the broker with the
//! blocking client of [`crate::client`]; everything that changes a device is signed with the
//! owner's ed25519 key (see `hearth_ota::signed` and `hearth_runtime::update`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use hearth_ota::manifest::{Manifest, Version};
use hearth_ota::otadata::crc32;
use hearth_ota::signed::{self, Kind};
use sha2::{Digest, Sha256};

use crate::client::{BrokerArgs, Client, FleetError, Received};
use crate::rollout::{self, Verdict};

/// Why a secret key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not a key `hearth keygen` wrote.
    #[error("{}: not a secret key (64 hex digits, as `hearth keygen` writes)", path.display())]
    NotAKey {
        /// The key file.
        path: PathBuf,
    },
}

/// Why a file is not an image the tools can send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// A simulator image cut short or padded.
    #[error("simulator image is {actual} bytes, its header says {header}")]
    SizeMismatch {
        /// The file's size.
        actual: usize,
        /// The size its header gives.
        header: usize,
    },
    /// The version is not `MAJOR.MINOR.PATCH` (`what`: `image` or `app`).
    #[error("{what} version {text:?} is not MAJOR.MINOR.PATCH")]
    Version {
        /// Which version field.
        what: &'static str,
        /// What it says.
        text: String,
    },
    /// Neither image format.
    #[error("neither a simulator image nor an ESP-IDF app image (.bin)")]
    NotAnImage,
    /// An ESP image for another chip.
    #[error("ESP image for chip id {0}, not an ESP32-C3/C6")]
    Chip(u16),
    /// An ESP image without `esp_app_desc_t`.
    #[error("ESP image without an app descriptor (esp_app_desc)")]
    NoAppDescriptor,
    /// The app descriptor's version is not UTF-8.
    #[error("app version is not text")]
    VersionNotText,
}

/// Why signing with this machine's clock would be refused by the device, or would lock out
/// every correct clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Not after the newest issue time the device accepted.
    #[error("this machine's clock ({at} ms) is not after the newest issue time the device accepted ({mark} ms): it would refuse the message as stale; check this machine's clock")]
    Stale {
        /// This machine's time, ms since the epoch.
        at: u64,
        /// The device's anti-replay mark.
        mark: u64,
    },
    /// More than [`MAX_CLOCK_LEAD_MS`] ahead of the mark.
    #[error("this machine's clock is {days} days ahead of the newest issue time the device accepted; a message signed with a wrong clock would lock out every correct one, so check the clock (or pass --allow-clock-jump if it is right)")]
    FarAhead {
        /// How far, in whole days.
        days: u64,
    },
}

/// How long to wait for a device's answer before asking again.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How many times a silent device is asked again before giving up.
const RETRIES: u32 = 6;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `hearth keygen --out PATH`: a new key pair; PATH gets the secret (mode 0600), PATH.pub the
/// public key. Existing files are never overwritten.
pub fn keygen(out: &Path) -> ExitCode {
    let public_path = out.with_extension("pub");
    for p in [out, public_path.as_path()] {
        if p.exists() {
            eprintln!("error: {} exists; keys are never overwritten", p.display());
            return ExitCode::from(2);
        }
    }
    let mut seed = [0u8; 32];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut seed)
    }) {
        eprintln!("error: no randomness: {e}");
        return ExitCode::from(2);
    }
    let key = SigningKey::from_bytes(&seed);
    let public = hex(&key.verifying_key().to_bytes());
    let write_secret = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)?;
        writeln!(f, "{}", hex(&seed))
    };
    if let Err(e) =
        write_secret().and_then(|()| std::fs::write(&public_path, format!("{public}\n")))
    {
        eprintln!("error: {}: {e}", out.display());
        return ExitCode::from(2);
    }
    println!(
        "secret key: {} (keep it safe; it signs updates)",
        out.display()
    );
    println!("public key: {}", public_path.display());
    println!("add this line to each device's config:\notakey {public}");
    ExitCode::SUCCESS
}

/// Read a secret key written by `keygen`.
pub fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.into(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let seed =
        signed::parse_hex_key(&text).ok_or_else(|| KeyError::NotAKey { path: path.into() })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// `hearth image`: build a simulator image.
pub fn image(info: &hearth_sim::firmware::ImageInfo, size: usize, out: &Path) -> ExitCode {
    match hearth_sim::firmware::build(info, size)
        .map_err(|e| e.to_string())
        .and_then(|img| std::fs::write(out, &img).map_err(|e| format!("{}: {e}", out.display())))
    {
        Ok(()) => {
            println!(
                "{}: simulator image, firmware {} for {}, health {:?}, {size} bytes",
                out.display(),
                info.version,
                info.appliance,
                info.health
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// What an image file is, for its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// Version.
    pub version: Version,
    /// Chip.
    pub chip: String,
    /// Appliance (`all`).
    pub appliance: String,
}

/// Read the facts of an image: a simulator image's header, or an ESP-IDF app image's chip id
/// and app descriptor. `appliance` overrides what the image says.
pub fn image_facts(bytes: &[u8], appliance: Option<&str>) -> Result<ImageFacts, ImageError> {
    if let Ok((info, size)) = hearth_sim::firmware::parse_header(bytes) {
        if size != bytes.len() {
            return Err(ImageError::SizeMismatch {
                actual: bytes.len(),
                header: size,
            });
        }
        let version = Version::parse(&info.version).ok_or_else(|| ImageError::Version {
            what: "image",
            text: info.version.clone(),
        })?;
        return Ok(ImageFacts {
            version,
            chip: hearth_sim::firmware::CHIP.into(),
            appliance: appliance.unwrap_or(&info.appliance).into(),
        });
    }
    // ESP-IDF app image: magic 0xE9, chip id at 12; the first segment (after the 24-byte
    // header and the 8-byte segment header) starts with esp_app_desc_t (magic 0xABCD5432,
    // version at +16, 32 bytes).
    if bytes.len() < 32 + 48 || bytes[0] != 0xE9 {
        return Err(ImageError::NotAnImage);
    }
    let chip = match u16::from_le_bytes([bytes[12], bytes[13]]) {
        5 => "esp32c3",
        13 => "esp32c6",
        other => return Err(ImageError::Chip(other)),
    };
    let desc = &bytes[32..];
    if desc[..4] != 0xABCD_5432u32.to_le_bytes() {
        return Err(ImageError::NoAppDescriptor);
    }
    let raw = &desc[16..48];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = std::str::from_utf8(&raw[..end]).map_err(|_| ImageError::VersionNotText)?;
    let version = Version::parse(text).ok_or_else(|| ImageError::Version {
        what: "app",
        text: text.into(),
    })?;
    Ok(ImageFacts {
        version,
        chip: chip.into(),
        appliance: appliance
            .unwrap_or(hearth_ota::manifest::ALL_APPLIANCES)
            .into(),
    })
}

/// How far an issue time may run ahead of the newest one a device accepted (its anti-replay
/// mark) before the tools suspect this machine's clock: a year and a day. One message signed
/// with a clock years ahead would raise the mark so far that every correct clock is refused
/// as stale, locking the owner out; a device left alone for longer needs `--allow-clock-jump`.
pub const MAX_CLOCK_LEAD_MS: u64 = 366 * 24 * 3600 * 1000;

/// How long the tools wait for a device's `mark` answer before signing without it.
const MARK_WAIT: Duration = Duration::from_secs(3);

/// Is it safe to sign at `at` for a device whose anti-replay mark is `mark`?
pub fn clock_verdict(at: u64, mark: u64, allow_jump: bool) -> Result<(), ClockError> {
    const DAY: u64 = 24 * 3600 * 1000;
    if mark == 0 {
        // The device never accepted a signed message: nothing to compare with.
        return Ok(());
    }
    if at <= mark {
        return Err(ClockError::Stale { at, mark });
    }
    if at - mark > MAX_CLOCK_LEAD_MS && !allow_jump {
        return Err(ClockError::FarAhead {
            days: (at - mark) / DAY,
        });
    }
    Ok(())
}

/// An issue time for a message to `device`, checked against the device's anti-replay mark
/// when the device answers (`mark`). A device that does not answer in time (offline, or an
/// older firmware) is signed for without the check.
fn checked_issued(broker: &BrokerArgs, device: &str, allow_jump: bool) -> Result<u64, ClockError> {
    let at = issued();
    let mark = ask_within(broker, device, "OTA", b"mark", MARK_WAIT)
        .ok()
        .and_then(|a| {
            a.strip_prefix("anti-replay mark ")?
                .trim()
                .parse::<u64>()
                .ok()
        });
    match mark {
        Some(mark) => clock_verdict(at, mark, allow_jump).map(|()| at),
        None => Ok(at),
    }
}

/// Issue times: milliseconds since the epoch, strictly increasing within this process.
fn issued() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    if prev >= now {
        LAST.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        now
    }
}

/// A device's `stat/<name>/Update` status: the one type and codec the devices write it with.
pub use hearth_core::update_status::{UpdateState, UpdateStatus};

/// Options of `hearth ota`.
#[derive(Debug, Clone)]
pub struct OtaOptions {
    /// Chunks in flight before waiting for acknowledgements.
    pub window: u32,
    /// Wait for the device to confirm the new image (or roll back).
    pub wait_confirm: bool,
    /// How long to wait for that.
    pub confirm_timeout: Duration,
    /// Show a progress bar.
    pub progress: bool,
    /// Sign even when this machine's clock is far ahead of the device's anti-replay mark.
    pub allow_clock_jump: bool,
    /// Who gets it and when the rollout stops.
    pub policy: rollout::Policy,
}

impl Default for OtaOptions {
    fn default() -> Self {
        Self {
            window: 4,
            wait_confirm: true,
            confirm_timeout: Duration::from_secs(900),
            progress: true,
            allow_clock_jump: false,
            policy: rollout::Policy::default(),
        }
    }
}

/// How one device's update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtaOutcome {
    /// Running the new image, confirmed healthy (or installed, when not waiting).
    Done(String),
    /// The device said no, or the transfer failed.
    Refused(String),
    /// The new image failed its trial and the device went back.
    RolledBack(String),
}

struct Link<'a> {
    broker: &'a BrokerArgs,
    device: &'a str,
    client: Option<Client>,
}

impl Link<'_> {
    /// A connected client subscribed to the device's status; reconnects as needed.
    fn client(&mut self) -> Result<&mut Client, FleetError> {
        if self.client.is_none() {
            let c = subscribed(self.broker, "ota", &format!("stat/{}/Update", self.device))?;
            self.client = Some(c);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn publish(&mut self, leaf: &str, payload: &[u8]) -> Result<(), FleetError> {
        let topic = format!("cmnd/{}/{leaf}", self.device);
        let r = self.client()?.publish(&topic, payload, false);
        r.inspect_err(|_| self.client = None)
    }

    /// The next status, or `None` after `wait`. A broken connection is dropped (the next call
    /// reconnects) and reads as silence.
    fn status(&mut self, wait: Duration) -> Option<UpdateStatus> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let client = match self.client() {
                Ok(c) => c,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(500).min(left));
                    continue;
                }
            };
            match client.recv(left) {
                Ok(Some(Received {
                    payload,
                    retained: false,
                    ..
                })) => {
                    if let Some(s) = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|t| UpdateStatus::parse(t).ok())
                    {
                        return Some(s);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) => self.client = None,
            }
        }
    }
}

/// The image is whole: the bar, if drawn, shows 100 % and its line ends (once).
fn end_bar(open: &mut bool, size: u32) {
    if std::mem::take(open) {
        progress_bar(size, size);
        eprintln!();
    }
}

fn progress_bar(done: u32, size: u32) {
    let width = 30;
    // `done` comes from the device's unauthenticated status: never past the end.
    let done = done.min(size);
    let filled = (done as u64 * width / size.max(1) as u64) as usize;
    eprint!(
        "\r  [{}{}] {:>3}% {:>7}/{} KiB",
        "#".repeat(filled),
        ".".repeat(width as usize - filled),
        done as u64 * 100 / size.max(1) as u64,
        done / 1024,
        size / 1024
    );
}

/// Update one device: sign the manifest, send the image with flow control, resume after a
/// silence or a reconnect, and wait for the verdict.
pub fn ota_device(
    broker: &BrokerArgs,
    device: &str,
    image: &[u8],
    facts: &ImageFacts,
    key: &SigningKey,
    opts: &OtaOptions,
) -> Result<OtaOutcome, OtaError> {
    let manifest = Manifest {
        version: facts.version,
        size: u32::try_from(image.len()).map_err(|_| OtaError::TooLarge)?,
        sha256: Sha256::digest(image).into(),
        chip: &facts.chip,
        appliance: &facts.appliance,
    };
    let body = manifest.encode().map_err(OtaError::Seal)?;
    if !is_online(broker, device)? {
        return Ok(OtaOutcome::Refused(format!(
            "{device}: not online (the broker has no retained tele/{device}/LWT = Online)"
        )));
    }
    let at = match checked_issued(broker, device, opts.allow_clock_jump) {
        Ok(at) => at,
        Err(e) => return Ok(OtaOutcome::Refused(format!("{device}: {e}"))),
    };
    let envelope = signed::seal(Kind::Firmware, at, device, &body, key).map_err(OtaError::Seal)?;
    let mut link = Link {
        broker,
        device,
        client: None,
    };
    link.client()?;
    let size = manifest.size;
    let window = opts.window.max(1);
    let mut sent_to: u32 = 0; // everything below has been sent at least once
                              // The bar is drawn in place; once the image is whole it ends at 100 % on its own line,
                              // once, whatever the device reports next.
    let mut bar_open = false;
    let mut silent = 0;
    link.publish("Update/Begin", &envelope)?;
    loop {
        let Some(status) = link.status(ANSWER_WAIT) else {
            silent += 1;
            if silent > RETRIES {
                return Err(OtaError::NoAnswer {
                    device: device.into(),
                });
            }
            // Lost messages, a reconnect, or a reboot: the same manifest resumes the transfer.
            let _ = link.publish("Update/Begin", &envelope);
            continue;
        };
        silent = 0;
        match status.state {
            UpdateState::Ready | UpdateState::Receiving => {
                // Anyone on the broker can publish a status: an offset past the image is
                // nonsense, not a reason to index out of it.
                let next = status.next.unwrap_or(0).min(size);
                if let Some(e) = &status.error {
                    if std::mem::take(&mut bar_open) {
                        eprintln!();
                    }
                    eprintln!("  {device}: {e}");
                }
                if status.state == UpdateState::Ready || status.error.is_some() || next > sent_to {
                    // The start or resume point, or a chunk to send again: from there.
                    sent_to = next;
                }
                let acked = next;
                if opts.progress {
                    progress_bar(acked, size);
                    bar_open = true;
                }
                let window_end = acked.saturating_add(window.saturating_mul(hearth_ota::CHUNK));
                while sent_to < size && sent_to < window_end {
                    let n = hearth_ota::CHUNK.min(size - sent_to) as usize;
                    let data = &image[sent_to as usize..sent_to as usize + n];
                    let mut payload = Vec::with_capacity(8 + n);
                    payload.extend_from_slice(&sent_to.to_le_bytes());
                    payload.extend_from_slice(&crc32(0, data).to_le_bytes());
                    payload.extend_from_slice(data);
                    if link.publish("Update/Chunk", &payload).is_err() {
                        break;
                    }
                    sent_to += n as u32;
                }
            }
            UpdateState::Verifying => end_bar(&mut bar_open, size),
            UpdateState::Rebooting => {
                end_bar(&mut bar_open, size);
                if !opts.wait_confirm {
                    return Ok(OtaOutcome::Done(format!(
                        "{device}: firmware {} installed; rebooting into it",
                        facts.version
                    )));
                }
                eprintln!("  {device}: installed, rebooting; waiting for it to confirm itself");
                return Ok(wait_verdict(&mut link, device, facts, opts.confirm_timeout));
            }
            UpdateState::Refused | UpdateState::Failed => {
                if std::mem::take(&mut bar_open) {
                    eprintln!();
                }
                return Ok(OtaOutcome::Refused(format!(
                    "{device}: {}",
                    status.error.unwrap_or_else(|| status.state.to_string())
                )));
            }
            _ => {}
        }
    }
}

fn wait_verdict(
    link: &mut Link<'_>,
    device: &str,
    facts: &ImageFacts,
    limit: Duration,
) -> OtaOutcome {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(status) = link.status(left.min(Duration::from_secs(30))) else {
            continue;
        };
        match status.state {
            UpdateState::Confirmed => {
                // A status is not proof (anyone on the broker can publish one): the version
                // the device reports when asked is.
                let want = facts.version.to_string();
                return match running_version(link.broker, device) {
                    Ok(v) if v == want => {
                        OtaOutcome::Done(format!("{device}: firmware {v} confirmed healthy"))
                    }
                    Ok(v) => OtaOutcome::Refused(format!(
                        "{device}: said it confirmed firmware {want}, but it runs {v}"
                    )),
                    Err(e) => OtaOutcome::Refused(format!(
                        "{device}: said it confirmed firmware {want}, but its version could not be read back: {e}"
                    )),
                };
            }
            UpdateState::RolledBack => {
                return OtaOutcome::RolledBack(format!(
                    "{device}: firmware {} failed its trial; back on {}",
                    facts.version,
                    status.version.unwrap_or_default()
                ))
            }
            _ => {}
        }
    }
    OtaOutcome::Refused(format!(
        "{device}: no verdict within {} s (the device may still be on trial)",
        limit.as_secs()
    ))
}

/// A client id unique to this process and call; `tag` says what it is for in the broker's log.
pub(crate) fn client_id(tag: &str) -> String {
    format!("hearth-{tag}-{}-{}", std::process::id(), issued() % 100_000)
}

/// A client connected to `broker` (within 10 s) and subscribed to `filter`, with a
/// [`client_id`].
fn subscribed(broker: &BrokerArgs, tag: &str, filter: &str) -> Result<Client, FleetError> {
    let mut c = Client::connect(broker, &client_id(tag), Duration::from_secs(10))?;
    c.subscribe(filter)?;
    Ok(c)
}

/// Does `device` announce itself online (retained `tele/<name>/LWT = Online`)?
pub fn is_online(broker: &BrokerArgs, device: &str) -> Result<bool, FleetError> {
    let mut c = subscribed(broker, "lwt", &format!("tele/{device}/LWT"))?;
    let online = matches!(
        c.recv(Duration::from_millis(1500)),
        Ok(Some(m)) if m.payload == b"Online"
    );
    c.disconnect();
    Ok(online)
}

/// What `hearth ota` is about to do: the image and the devices it goes to.
#[derive(Debug, Clone)]
pub struct OtaPlan {
    /// What the image is.
    pub facts: ImageFacts,
    /// Its size in bytes.
    pub size: usize,
    /// The devices, in the order they are updated.
    pub devices: Vec<String>,
    /// The devices left out, with why.
    pub skipped: Vec<(String, Verdict)>,
}

/// Why `hearth ota` could not start, or could not finish with one device.
#[derive(Debug, thiserror::Error)]
pub enum OtaError {
    /// The owner's key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The image file could not be read.
    #[error("{}: {source}", path.display())]
    ReadImage {
        /// The image file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The image file is not an image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// `--all`, and the broker knows no device of the image's appliance.
    #[error("the broker on {0} knows no device of appliance {1} (hearth ls shows what it knows)")]
    NoneOnline(String, String),
    /// The broker: connecting, subscribing, publishing.
    #[error(transparent)]
    Broker(#[from] FleetError),
    /// An image of 4 GiB or more.
    #[error("image too large")]
    TooLarge,
    /// The manifest or the envelope could not be signed (too long for the format).
    #[error("cannot sign: {0}")]
    Seal(hearth_ota::signed::Refusal),
    /// The device stopped answering during the transfer.
    #[error("{device}: no answer from the device")]
    NoAnswer {
        /// The device.
        device: String,
    },
}

/// How the update of one device ended.
#[derive(Debug)]
pub struct DeviceResult {
    /// The device.
    pub device: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
}

impl DeviceResult {
    /// Updated and confirmed (or installed, when not waiting).
    pub fn succeeded(&self) -> bool {
        matches!(self.verdict, Verdict::Updated(_))
    }
}

/// Roll the image at `image_path`, signed with the key at `key_path`, out to `devices` (or,
/// with `all`, every device of the image's appliance the broker knows) under `policy`
/// ([`crate::rollout`]): offline devices and those already on the image's version are
/// skipped, the canary stage goes first, and the rollout stops on a failed canary or too many
/// failures. `planned` hears the plan before the first byte goes out and `finished` each
/// device's result as it ends (the progress bar, when `opts.progress`, goes to standard
/// error). The report is returned: every device, skipped and not reached ones included, and
/// why it stopped. An error means nothing was sent: the key, the image or the broker.
#[allow(clippy::too_many_arguments)]
pub fn ota_run(
    broker: &BrokerArgs,
    devices: &[String],
    all: bool,
    image_path: &Path,
    key_path: &Path,
    appliance: Option<&str>,
    opts: &OtaOptions,
    planned: &mut dyn FnMut(&OtaPlan),
    finished: &mut dyn FnMut(&DeviceResult),
) -> Result<OtaReport, OtaError> {
    let key = load_key(key_path)?;
    let image = std::fs::read(image_path).map_err(|source| OtaError::ReadImage {
        path: image_path.into(),
        source,
    })?;
    let facts = image_facts(&image, appliance)?;
    let inventory = crate::inventory::collect(broker)?;
    let named = (!all).then_some(devices);
    let (send, skipped) = rollout::plan(
        &inventory,
        named,
        &facts.appliance,
        facts.version,
        &opts.policy,
    );
    if all && send.is_empty() && skipped.is_empty() {
        return Err(OtaError::NoneOnline(broker.address(), facts.appliance));
    }
    // A device already on the image's version may still be on trial (the command was run
    // again while it was): it is not current until it has confirmed.
    let skipped = skipped
        .into_iter()
        .map(|(device, verdict)| match verdict {
            Verdict::Current(v) if on_trial(broker, &device) => (device, Verdict::OnTrial(v)),
            other => (device, other),
        })
        .collect();
    let plan = OtaPlan {
        facts,
        size: image.len(),
        devices: send,
        skipped,
    };
    planned(&plan);
    let mut run = rollout::Rollout::new(opts.policy.clone());
    let mut results: Vec<DeviceResult> = Vec::with_capacity(plan.devices.len());
    let one = |device: &str, opts: &OtaOptions| {
        let started = Instant::now();
        let verdict = match ota_device(broker, device, &image, &plan.facts, &key, opts) {
            Ok(OtaOutcome::Done(m)) => Verdict::Updated(m),
            Ok(OtaOutcome::Refused(m)) => Verdict::Refused(m),
            Ok(OtaOutcome::RolledBack(m)) => Verdict::RolledBack(m),
            Err(e) => Verdict::Refused(e.to_string()),
        };
        DeviceResult {
            device: device.to_string(),
            verdict,
            elapsed: started.elapsed(),
        }
    };
    // Devices updated at once show no progress bar: their bars would mix.
    let quiet = OtaOptions {
        progress: false,
        ..opts.clone()
    };
    let mut next = 0;
    while next < plan.devices.len() {
        if run.stopped().is_some() {
            for device in &plan.devices[next..] {
                let result = DeviceResult {
                    device: device.clone(),
                    verdict: Verdict::NotReached,
                    elapsed: Duration::ZERO,
                };
                finished(&result);
                results.push(result);
            }
            break;
        }
        // The canary stage goes one by one; then waves of `parallel` devices at once.
        let size = if run.in_canary() {
            1
        } else {
            opts.policy.parallel.max(1)
        };
        let wave = &plan.devices[next..(next + size).min(plan.devices.len())];
        next += wave.len();
        let ended: Vec<DeviceResult> = if let [device] = wave {
            vec![one(device, opts)]
        } else {
            std::thread::scope(|scope| {
                let running: Vec<_> = wave
                    .iter()
                    .map(|device| (device, scope.spawn(|| one(device, &quiet))))
                    .collect();
                running
                    .into_iter()
                    .map(|(device, thread)| {
                        thread.join().unwrap_or_else(|_| DeviceResult {
                            device: device.clone(),
                            verdict: Verdict::Refused("the tool failed while updating it".into()),
                            elapsed: Duration::ZERO,
                        })
                    })
                    .collect()
            })
        };
        for result in ended {
            run.record(&result.device, &result.verdict);
            finished(&result);
            results.push(result);
        }
    }
    let skipped = plan
        .skipped
        .into_iter()
        .map(|(device, verdict)| DeviceResult {
            device,
            verdict,
            elapsed: Duration::ZERO,
        });
    Ok(OtaReport {
        devices: results.into_iter().chain(skipped).collect(),
        stopped: run.stopped().map(String::from),
    })
}

/// The end of a rollout: every device with its verdict, and why it stopped early, if it did.
#[derive(Debug)]
pub struct OtaReport {
    /// The devices sent to, in order, then the skipped ones.
    pub devices: Vec<DeviceResult>,
    /// Why the rollout stopped before its last device.
    pub stopped: Option<String>,
}

impl OtaReport {
    /// Every device ends on the image's version.
    pub fn all_on_image(&self) -> bool {
        self.devices.iter().all(|d| d.verdict.on_image())
    }

    /// The report as text: one line a device (`DEVICE  RESULT  DETAIL`) and the counts.
    pub fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .devices
            .iter()
            .map(|d| {
                vec![
                    d.device.clone(),
                    d.verdict.word().to_string(),
                    d.verdict.detail(),
                ]
            })
            .collect();
        let mut out = crate::table::columns(&["DEVICE", "RESULT", "DETAIL"], &rows);
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for d in &self.devices {
            match counts.iter_mut().find(|(w, _)| *w == d.verdict.word()) {
                Some((_, n)) => *n += 1,
                None => counts.push((d.verdict.word(), 1)),
            }
        }
        let counts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
        out.push_str(&format!(
            "{} device(s): {}\n",
            self.devices.len(),
            counts.join(", ")
        ));
        out
    }
}

/// `hearth ota`: roll the image out and print each device as it ends, then the report; exit
/// code 0 only when every device ends on the image's version.
pub fn ota(
    broker: &BrokerArgs,
    devices: &[String],
    all: bool,
    image_path: &Path,
    key_path: &Path,
    appliance: Option<&str>,
    opts: &OtaOptions,
) -> ExitCode {
    let report = ota_run(
        broker,
        devices,
        all,
        image_path,
        key_path,
        appliance,
        opts,
        &mut |plan| {
            println!(
                "firmware {} for {} ({}), {} bytes, to {} device(s)",
                plan.facts.version,
                plan.facts.chip,
                plan.facts.appliance,
                plan.size,
                plan.devices.len()
            );
            for (device, verdict) in &plan.skipped {
                println!("skipped: {device}: {}", verdict.detail());
            }
            if opts.policy.canary > 0 && !plan.devices.is_empty() {
                println!(
                    "canary: {}",
                    plan.devices
                        .iter()
                        .take(opts.policy.canary)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        },
        &mut |r| match &r.verdict {
            Verdict::Updated(m) => println!("ok: {m} ({:.1} s)", r.elapsed.as_secs_f64()),
            Verdict::Refused(m) => println!("refused: {m}"),
            Verdict::RolledBack(m) => println!("rolled back: {m}"),
            _ => {}
        },
    );
    match report {
        Ok(report) => {
            if let Some(why) = &report.stopped {
                println!("stopped: {why}");
            }
            if report.devices.len() > 1 || report.stopped.is_some() {
                print!("\n{}", report.text());
            }
            if report.all_on_image() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Does `device` run an image on trial? From its `partitions` answer: the otadata entry with
/// the highest sequence number is `pending-verify`. Not known (no answer): no.
fn on_trial(broker: &BrokerArgs, device: &str) -> bool {
    ask(broker, device, "OTA", b"partitions")
        .ok()
        .and_then(|a| newest_otadata_state(&a))
        .is_some_and(|state| state == "pending-verify")
}

/// The state of the newest otadata entry in a `partitions` answer (`… otadata: [0] seq 3
/// slot 0 valid [1] seq 4 slot 1 pending-verify`).
pub fn newest_otadata_state(answer: &str) -> Option<String> {
    let (_, entries) = answer.split_once("otadata:")?;
    entries
        .split('[')
        .filter_map(|e| {
            let words: Vec<&str> = e.split_whitespace().collect();
            match words.as_slice() {
                [_, "seq", seq, "slot", _, state, ..] => {
                    Some((seq.parse::<u64>().ok()?, state.to_string()))
                }
                _ => None,
            }
        })
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, state)| state)
}

/// The firmware version `device` runs, from its answer to `getversion`.
pub fn running_version(broker: &BrokerArgs, device: &str) -> Result<String, AskError> {
    let answer = ask(broker, device, "OTA", b"getversion")?;
    parse_version_answer(&answer).ok_or(AskError::Unexpected { answer })
}

/// The version in a `getversion` answer (`hearth 0.2.0 chip sim profile weather device x`).
pub fn parse_version_answer(answer: &str) -> Option<String> {
    let mut words = answer.strip_prefix("hearth ")?.split_whitespace();
    let version = words.next()?;
    (words.next() == Some("chip")).then(|| version.to_string())
}

/// Publish `payload` on `cmnd/<device>/<leaf>` and return the device's next answer on
/// `stat/<device>/OTA`.
fn ask(broker: &BrokerArgs, device: &str, leaf: &str, payload: &[u8]) -> Result<String, AskError> {
    ask_within(broker, device, leaf, payload, ANSWER_WAIT)
}

/// Why a question to a device (`hearth cmd`, `hearth config push`) got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The owner's key (exit code 2).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The config file could not be read (exit code 2).
    #[error("{}: {source}", file.display())]
    ReadConfig {
        /// The config file.
        file: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The config file fails the local check (exit code 2).
    #[error("{}: {reason}", file.display())]
    Config {
        /// The config file.
        file: PathBuf,
        /// The rules it breaks, as `validate_config` words them.
        reason: String,
    },
    /// This machine's clock is not fit to sign with (exit code 2).
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The message could not be signed (exit code 2).
    #[error("cannot sign: {0}")]
    Seal(hearth_ota::signed::Refusal),
    /// The question could not be sent: connecting, subscribing, publishing (exit code 2).
    #[error(transparent)]
    Broker(#[from] FleetError),
    /// The broker dropped the session while we waited (exit code 1).
    #[error("{0}")]
    Lost(FleetError),
    /// Asked, and the device did not answer in time (exit code 1).
    #[error("{device}: no answer within {secs} s")]
    NoAnswer {
        /// The device.
        device: String,
        /// How long we waited.
        secs: u64,
    },
    /// The device answered something else than the question asks for (exit code 1).
    #[error("unexpected answer {answer:?}")]
    Unexpected {
        /// The answer.
        answer: String,
    },
}

impl AskError {
    /// The exit code of a command that ends with this error: 2 when nothing was asked, 1 when
    /// the question went out.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Key(_)
            | Self::ReadConfig { .. }
            | Self::Config { .. }
            | Self::Clock(_)
            | Self::Seal(_)
            | Self::Broker(_) => 2,
            Self::Lost(_) | Self::NoAnswer { .. } | Self::Unexpected { .. } => 1,
        }
    }
}

/// [`ask`], waiting at most `wait` for the answer.
fn ask_within(
    broker: &BrokerArgs,
    device: &str,
    leaf: &str,
    payload: &[u8],
    wait: Duration,
) -> Result<String, AskError> {
    let mut c = subscribed(broker, "cmd", &format!("stat/{device}/OTA"))?;
    c.publish(&format!("cmnd/{device}/{leaf}"), payload, false)?;
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AskError::NoAnswer {
                device: device.to_string(),
                secs: wait.as_secs(),
            });
        }
        match c.recv(left).map_err(AskError::Lost)? {
            Some(m) if !m.retained => return Ok(String::from_utf8_lossy(&m.payload).into_owned()),
            _ => {}
        }
    }
}

/// What a device answered to `hearth cmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdAnswer {
    /// The answer on `stat/<device>/OTA`, as text.
    pub answer: String,
    /// The command went signed (`--key`).
    pub signed: bool,
    /// The device refused the command (its answer says so).
    pub refused: bool,
}

/// Send a command to `device` (signed with the key at `key_path`, as commands that change a
/// device must be when it has a key) and wait for its answer.
pub fn cmd_run(
    broker: &BrokerArgs,
    device: &str,
    command: &str,
    key_path: Option<&Path>,
    allow_clock_jump: bool,
) -> Result<CmdAnswer, AskError> {
    let (leaf, payload) = match key_path {
        Some(p) => {
            let key = load_key(p)?;
            let at = checked_issued(broker, device, allow_clock_jump)?;
            let sealed = signed::seal(Kind::Command, at, device, command.as_bytes(), &key)
                .map_err(AskError::Seal)?;
            ("Signed", sealed)
        }
        None => ("OTA", command.as_bytes().to_vec()),
    };
    let answer = ask(broker, device, leaf, &payload)?;
    Ok(CmdAnswer {
        refused: answer.contains("refused"),
        answer,
        signed: key_path.is_some(),
    })
}

/// `hearth cmd DEVICE COMMAND`: [`cmd_run`], then print the answer (as text, or with `json`
/// one JSON object: `device`, `command`, `signed`, `ok` and `answer`, or `error`). Exit code 1
/// when the device refused or did not answer, 2 when the command could not be sent.
pub fn cmd(
    broker: &BrokerArgs,
    device: &str,
    command: &str,
    key_path: Option<&Path>,
    allow_clock_jump: bool,
    json: bool,
) -> ExitCode {
    let result = cmd_run(broker, device, command, key_path, allow_clock_jump);
    if json {
        let mut line = serde_json::json!({
            "device": device,
            "command": command,
            "signed": key_path.is_some(),
        });
        match &result {
            Ok(a) => {
                line["ok"] = (!a.refused).into();
                line["answer"] = a.answer.as_str().into();
            }
            Err(e) => {
                line["ok"] = false.into();
                line["error"] = e.to_string().into();
            }
        }
        println!("{line}");
    }
    match result {
        Ok(a) => {
            if !json {
                println!("{}", a.answer);
            }
            if a.refused {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// How `hearth config push` checks and signs.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Validate the file here before sending it.
    pub local_check: bool,
    /// Also check the boot rules of this chip here (the device checks its own anyway).
    pub chip: Option<String>,
    /// Sign a `ConfigRotateKey` envelope: the config may remove or change `otakey`.
    pub rotate_key: bool,
    /// Sign even when this machine's clock is far ahead of the device's anti-replay mark.
    pub allow_clock_jump: bool,
}

/// What a device said to a pushed config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushVerdict {
    /// Stored; the device reboots into it, on trial.
    Installed(String),
    /// Refused, with the device's reasons.
    Refused(String),
}

/// Check the config at `file` here (unless told not to), sign it, send it to `device`, and wait
/// for its verdict.
pub fn config_push_run(
    broker: &BrokerArgs,
    device: &str,
    file: &Path,
    key_path: &Path,
    options: PushOptions,
) -> Result<PushVerdict, AskError> {
    let key = load_key(key_path)?;
    let text = std::fs::read_to_string(file).map_err(|source| AskError::ReadConfig {
        file: file.into(),
        source,
    })?;
    if options.local_check {
        let chip = options
            .chip
            .as_deref()
            .unwrap_or(hearth_sim::firmware::CHIP);
        hearth_device::chips::check_text(&text, chip, hearth_device::chips::FULL_IMAGE).map_err(
            |refusal| AskError::Config {
                file: file.into(),
                reason: refusal.to_string(),
            },
        )?;
    }
    let kind = if options.rotate_key {
        Kind::ConfigRotateKey
    } else {
        Kind::Config
    };
    let at = checked_issued(broker, device, options.allow_clock_jump)?;
    let env = signed::seal(kind, at, device, text.as_bytes(), &key).map_err(AskError::Seal)?;
    let mut link = Link {
        broker,
        device,
        client: None,
    };
    link.client()?;
    link.publish("Config", &env)?;
    let deadline = Instant::now() + ANSWER_WAIT;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match link.status(left) {
            Some(s) if s.state == UpdateState::ConfigInstalled => {
                return Ok(PushVerdict::Installed(format!(
                    "{device}: config installed; the device reboots into it, on trial (back to the previous config if not healthy within otatrial)"
                )))
            }
            Some(s) if s.state == UpdateState::Refused => {
                return Ok(PushVerdict::Refused(format!("{device}: {}", s.error.unwrap_or_default())))
            }
            _ => {}
        }
    }
    Err(AskError::NoAnswer {
        device: device.to_string(),
        secs: ANSWER_WAIT.as_secs(),
    })
}

/// `hearth config push DEVICE FILE --key K`: [`config_push_run`], then print the device's
/// verdict. Exit code 1 when it refused or did not answer, 2 when nothing was sent.
pub fn config_push(
    broker: &BrokerArgs,
    device: &str,
    file: &Path,
    key_path: &Path,
    options: PushOptions,
) -> ExitCode {
    match config_push_run(broker, device, file, key_path, options) {
        Ok(PushVerdict::Installed(m)) => {
            println!("{m}");
            ExitCode::SUCCESS
        }
        Ok(PushVerdict::Refused(m)) => {
            println!("refused: {m}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_offset_never_breaks_the_progress_bar() {
        // An offset past the image (from a forged status) is drawn as complete.
        progress_bar(u32::MAX, 409_600);
        progress_bar(409_600, 409_600);
        progress_bar(0, 0);
    }

    #[test]
    fn a_clock_far_ahead_of_the_mark_or_behind_it_is_refused() {
        let mark = 1_800_000_000_000; // 2027
        assert!(clock_verdict(mark + 1, mark, false).is_ok());
        assert!(clock_verdict(mark + MAX_CLOCK_LEAD_MS, mark, false).is_ok());
        let ahead = clock_verdict(mark + MAX_CLOCK_LEAD_MS + 1, mark, false).unwrap_err();
        assert_eq!(ahead, ClockError::FarAhead { days: 366 });
        assert!(ahead.to_string().contains("366 days ahead"), "{ahead}");
        assert!(clock_verdict(mark + 40 * MAX_CLOCK_LEAD_MS, mark, true).is_ok());
        let stale = clock_verdict(mark, mark, true).unwrap_err();
        assert_eq!(stale, ClockError::Stale { at: mark, mark });
        assert!(stale.to_string().contains("stale"));
        assert!(clock_verdict(5, 0, false).is_ok(), "no mark yet");
    }

    #[test]
    fn the_newest_otadata_entry_says_whether_a_device_is_on_trial() {
        let a = "running slot 1 (firmware 0.3.0); slot 0 at 0x10000, slot 1 at 0x110000, \
                 1048576 bytes each; otadata: [0] seq 3 slot 0 valid [1] seq 4 slot 1 pending-verify";
        assert_eq!(newest_otadata_state(a).as_deref(), Some("pending-verify"));
        let b = "running slot 0 (firmware 0.3.0); …; otadata: [0] seq 5 slot 0 valid [1] seq 4 slot 1 aborted";
        assert_eq!(newest_otadata_state(b).as_deref(), Some("valid"));
        assert_eq!(newest_otadata_state("otadata: [0] empty [1] empty"), None);
        assert_eq!(
            newest_otadata_state("firmware 0.1.0; this device has no update slots"),
            None
        );
        assert_eq!(
            newest_otadata_state("otadata: [0] seq x slot 0 valid"),
            None
        );
    }

    #[test]
    fn version_answers_parse() {
        assert_eq!(
            parse_version_answer("hearth 0.2.0 chip sim profile weather device a").as_deref(),
            Some("0.2.0")
        );
        assert_eq!(parse_version_answer("hearth 0.2.0"), None);
        assert_eq!(parse_version_answer("stats reset"), None);
    }

    #[test]
    fn image_facts_read_simulator_and_esp_images() {
        let info = hearth_sim::firmware::ImageInfo {
            version: "2.0.1".into(),
            appliance: "relay".into(),
            health: hearth_sim::firmware::Health::Ok,
        };
        let img = hearth_sim::firmware::build(&info, 4096).unwrap();
        let f = image_facts(&img, None).unwrap();
        assert_eq!(
            (f.version, f.chip.as_str(), f.appliance.as_str()),
            (Version(2, 0, 1), "sim", "relay")
        );
        assert_eq!(
            image_facts(&img[..4000], None),
            Err(ImageError::SizeMismatch {
                actual: 4000,
                header: 4096
            })
        );
        let mut esp = vec![0u8; 256];
        esp[0] = 0xE9;
        esp[12] = 5;
        esp[32..36].copy_from_slice(&0xABCD_5432u32.to_le_bytes());
        esp[48..53].copy_from_slice(b"0.3.0");
        let f = image_facts(&esp, Some("weather")).unwrap();
        assert_eq!(
            (f.version, f.chip.as_str(), f.appliance.as_str()),
            (Version(0, 3, 0), "esp32c3", "weather")
        );
        esp[12] = 9;
        let e = image_facts(&esp, None).unwrap_err();
        assert_eq!(e, ImageError::Chip(9));
        assert!(e.to_string().contains("chip id 9"), "{e}");
        assert_eq!(image_facts(b"hello", None), Err(ImageError::NotAnImage));
    }

    #[test]
    fn issue_times_only_move_forward() {
        let a = issued();
        let b = issued();
        let c = issued();
        assert!(a < b && b < c);
    }
}
