//! The ESP-NOW link on the device: its settings from `config.txt`, the persistence of pairing
//! and counters, the **central** as a task running beside the MQTT runtime, and the
//! **peripheral runtime** for battery devices that have no Wi-Fi at all.
//!
//! Both drive the sans-IO state machines of `hearth-netnow` over the [`Radio`] trait: they carry
//! out the machines' outputs in order (persist before sending), feed them frames and time, and
//! never hold a frame longer than that.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embassy_futures::select::{select, select3, Either, Either3};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use hearth_config::Config;
use hearth_core::reboot::boot_reason;
use hearth_core::rng::{Rng, SplitMix64};
use hearth_core::Millis;
use hearth_netnow::central::{Central, CentralEvent};
use hearth_netnow::link::{Codec, Entropy, Output, Pairing, Persist, Version};
use hearth_netnow::peripheral::{Peripheral, PeripheralEvent};
use hearth_netnow::v3::SenderId;
use hearth_storage::keys;

use crate::platform::{Board, Radio};
use crate::runtime::now_ms;
use crate::store::SharedStore;

/// The link settings of a validated config.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Wire format.
    pub version: Version,
    /// `espnowpsk`.
    pub psk: String,
    /// `espnowgroup`.
    pub group: String,
    /// `espnowchannel` (a central's channel; a peripheral learns it by pairing).
    pub channel: Option<u8>,
}

impl core::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkSettings")
            .field("version", &self.version)
            .field("group", &self.group)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Why a config cannot run the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkConfigError {
    /// A required key is missing.
    Missing(&'static str),
}

impl core::fmt::Display for LinkConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Missing(k) => write!(f, "this profile uses ESP-NOW and needs \"{k}\""),
        }
    }
}

impl LinkSettings {
    /// The link settings of `config`; a central also needs `espnowchannel`.
    pub fn from_config(config: &Config, central: bool) -> Result<Self, LinkConfigError> {
        let e = &config.espnow;
        let psk = e.psk.clone().ok_or(LinkConfigError::Missing("espnowpsk"))?;
        let group = e
            .group
            .clone()
            .ok_or(LinkConfigError::Missing("espnowgroup"))?;
        if central && e.channel.is_none() {
            return Err(LinkConfigError::Missing("espnowchannel"));
        }
        Ok(LinkSettings {
            version: if e.version == 2 {
                Version::V2
            } else {
                Version::V3
            },
            psk,
            group,
            channel: e.channel,
        })
    }

    /// The codec of this network.
    pub fn codec(&self) -> Codec {
        Codec::new(self.version, self.psk.as_bytes(), self.group.as_bytes())
    }
}

/// Entropy for the link from the board's seed. SplitMix64 is not a cryptographic generator:
/// tids, challenges and IVs must be unique and unguessable enough to match answers, and every
/// frame is authenticated with the network key, which is what security rests on.
pub struct SeededEntropy(SplitMix64);

impl SeededEntropy {
    /// From a seed (the board's hardware RNG on the chip).
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let r = self.0.next_u32().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// The text form of a MAC address, `AA:BB:CC:DD:EE:FF`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    format!(
        "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

async fn load_counter<F: NorFlash>(store: &SharedStore<F>) -> u64 {
    let mut buf = [0u8; 8];
    match store
        .lock()
        .await
        .get_bytes(keys::NETNOW_COUNTER, &mut buf)
        .await
    {
        Ok(Some(8)) => u64::from_le_bytes(buf),
        _ => 0,
    }
}

/// The stored pairing, if any (and well-formed).
pub async fn load_pairing<F: NorFlash>(store: &SharedStore<F>) -> Option<Pairing> {
    let mut buf = [0u8; 7];
    match store
        .lock()
        .await
        .get_bytes(keys::NETNOW_PAIRING, &mut buf)
        .await
    {
        Ok(Some(7)) if (1..=13).contains(&buf[6]) => {
            let mut central = [0; 6];
            central.copy_from_slice(&buf[..6]);
            Some(Pairing {
                central,
                channel: buf[6],
            })
        }
        _ => None,
    }
}

async fn load_peers<F: NorFlash>(store: &SharedStore<F>) -> Vec<(SenderId, u64)> {
    let mut peers = Vec::new();
    let mut s = store.lock().await;
    for i in 0..keys::NETNOW_PEER_SLOTS {
        let Some(key) = keys::netnow_peer(i) else {
            break;
        };
        let mut buf = [0u8; 14];
        if let Ok(Some(14)) = s.get_bytes(key, &mut buf).await {
            let mut id = [0; 6];
            id.copy_from_slice(&buf[..6]);
            let mut c = [0; 8];
            c.copy_from_slice(&buf[6..]);
            peers.push((SenderId(id), u64::from_le_bytes(c)));
        }
    }
    peers
}

/// Carries out one `Persist`. `peers` maps sender ids to their peer slots (central only).
async fn persist<F: NorFlash>(
    store: &SharedStore<F>,
    p: Persist,
    peers: &mut Vec<SenderId>,
) -> Result<(), String> {
    let mut s = store.lock().await;
    let r = match p {
        Persist::CounterReserve(c) => s.set_bytes(keys::NETNOW_COUNTER, &c.to_le_bytes()).await,
        Persist::Pairing(pairing) => {
            let mut b = [0u8; 7];
            b[..6].copy_from_slice(&pairing.central);
            b[6] = pairing.channel;
            s.set_bytes(keys::NETNOW_PAIRING, &b).await
        }
        Persist::Unpaired => s.remove(keys::NETNOW_PAIRING).await,
        Persist::PeerCounter(sender, counter) => {
            let slot = match peers.iter().position(|p| *p == sender) {
                Some(i) => i,
                None => {
                    peers.push(sender);
                    peers.len() - 1
                }
            };
            let Some(key) = u16::try_from(slot).ok().and_then(keys::netnow_peer) else {
                return Err(String::from("more peers than flash slots"));
            };
            let mut b = [0u8; 14];
            b[..6].copy_from_slice(&sender.0);
            b[6..].copy_from_slice(&counter.to_le_bytes());
            s.set_bytes(key, &b).await
        }
    };
    r.map_err(|e| format!("{e}"))
}

/// Most frames a central keeps for its profile before dropping new ones.
pub const INBOX_CAPACITY: usize = 32;
/// Most back-data payloads queued for sending.
pub const BACKDATA_CAPACITY: usize = 4;

/// Data a central accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender (v3: its authenticated id; v2: the radio source address).
    pub from: [u8; 6],
    /// Signal strength, dBm.
    pub rssi: i8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Counters of what the link did, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames accepted (data at a central).
    pub accepted: u32,
    /// Frames dropped (any reason).
    pub dropped: u32,
    /// Frames sent.
    pub sent: u32,
    /// Store writes that failed.
    pub persist_failures: u32,
}

/// What the central task and its profile share: received data in, back-data out, log lines.
pub struct CentralPort {
    inbox: RefCell<VecDeque<Received>>,
    backdata: RefCell<VecDeque<Vec<u8>>>,
    log: RefCell<VecDeque<String>>,
    wake: Signal<NoopRawMutex, ()>,
    stats: Cell<LinkStats>,
}

impl Default for CentralPort {
    fn default() -> Self {
        Self::new()
    }
}

impl CentralPort {
    /// An empty port.
    pub fn new() -> Self {
        CentralPort {
            inbox: RefCell::new(VecDeque::new()),
            backdata: RefCell::new(VecDeque::new()),
            log: RefCell::new(VecDeque::new()),
            wake: Signal::new(),
            stats: Cell::new(LinkStats::default()),
        }
    }

    /// The next accepted data, oldest first.
    pub fn take(&self) -> Option<Received> {
        self.inbox.borrow_mut().pop_front()
    }

    /// Queue back-data for all peripherals; false if the queue is full.
    pub fn send_backdata(&self, payload: Vec<u8>) -> bool {
        let mut q = self.backdata.borrow_mut();
        if q.len() >= BACKDATA_CAPACITY {
            return false;
        }
        q.push_back(payload);
        drop(q);
        self.wake.signal(());
        true
    }

    /// The next log line of the link.
    pub fn take_log(&self) -> Option<String> {
        self.log.borrow_mut().pop_front()
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats.get()
    }

    fn push_log(&self, line: String) {
        let mut l = self.log.borrow_mut();
        if l.len() < 16 {
            l.push_back(line);
        }
    }

    fn count(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// Log at most one dropped frame per this many ms (the rest are counted).
const DROP_LOG_EVERY: Millis = 10_000;

/// Run the central forever, beside the MQTT runtime (join the two futures).
pub async fn run_central<R: Radio, F: NorFlash>(
    settings: &LinkSettings,
    radio: &mut R,
    store: &SharedStore<F>,
    seed: u64,
    port: &CentralPort,
) -> ! {
    let peers = load_peers(store).await;
    let mut slots: Vec<SenderId> = peers.iter().map(|(s, _)| *s).collect();
    let counter = load_counter(store).await;
    let channel = settings.channel.unwrap_or(1);
    let mut central = Central::new(
        settings.codec(),
        radio.mac(),
        channel,
        SeededEntropy::new(seed),
        &peers,
        counter,
        now_ms(),
    );
    port.push_log(format!(
        "espnow central {} on channel {channel}, wire format v{}, {} peers restored",
        mac_text(&radio.mac()),
        if settings.version == Version::V2 {
            2
        } else {
            3
        },
        peers.len()
    ));
    let mut last_drop_log: Option<Millis> = None;
    loop {
        while let Some(o) = central.poll() {
            match o {
                Output::Send { to, frame, ack } => {
                    if radio.send(to, frame.as_slice(), ack).await.is_ok() {
                        port.count(|s| s.sent += 1);
                    }
                }
                Output::SetChannel(c) => {
                    if let Err(e) = radio.set_channel(c).await {
                        port.push_log(format!("espnow: cannot tune to channel {c}: {e}"));
                    }
                }
                Output::Persist(p) => {
                    if let Err(e) = persist(store, p, &mut slots).await {
                        port.count(|s| s.persist_failures += 1);
                        port.push_log(format!("espnow: store: {e}"));
                    }
                }
                Output::Event(CentralEvent::Data {
                    from,
                    rssi,
                    payload,
                }) => {
                    port.count(|s| s.accepted += 1);
                    let mut inbox = port.inbox.borrow_mut();
                    if inbox.len() < INBOX_CAPACITY {
                        inbox.push_back(Received {
                            from,
                            rssi,
                            payload: payload.as_slice().to_vec(),
                        });
                    }
                }
                Output::Event(CentralEvent::Dropped { from, reason }) => {
                    port.count(|s| s.dropped += 1);
                    let now = now_ms();
                    if last_drop_log.is_none_or(|t| now.saturating_sub(t) >= DROP_LOG_EVERY) {
                        last_drop_log = Some(now);
                        port.push_log(format!(
                            "espnow: dropped a frame from {}: {reason} ({} dropped so far)",
                            mac_text(&from),
                            port.stats().dropped
                        ));
                    }
                }
            }
        }
        let backdata = port.backdata.borrow_mut().pop_front();
        if let Some(b) = backdata {
            if let Err(e) = central.send_backdata(&b, now_ms()) {
                port.push_log(format!("espnow: back-data not sent: {e:?}"));
            }
            continue;
        }
        let deadline = Instant::from_millis(central.next_deadline());
        match select3(radio.receive(), Timer::at(deadline), port.wake.wait()).await {
            Either3::First(f) => central.receive(f.from, f.rssi, f.bytes(), now_ms()),
            Either3::Second(()) => central.tick(now_ms()),
            Either3::Third(()) => {}
        }
    }
}

/// What a battery appliance wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAction {
    /// Keep running.
    Continue,
    /// Deep-sleep this many ms (the device restarts afterwards).
    Sleep(Millis),
}

/// The link as a peripheral appliance sees it.
pub struct LinkCtl<'a, R: Entropy> {
    peripheral: &'a mut Peripheral<R>,
    now: Millis,
}

impl<R: Entropy> LinkCtl<'_, R> {
    /// Queue a report; retried until confirmed ([`PeripheralEvent::Confirmed`]).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), hearth_netnow::peripheral::SendError> {
        self.peripheral.send(payload, self.now)
    }

    /// Paired and the time is known.
    pub fn is_ready(&self) -> bool {
        self.peripheral.is_ready()
    }

    /// A report is waiting for its confirm.
    pub fn report_pending(&self) -> bool {
        self.peripheral.report_pending()
    }

    /// Forget the pairing and scan again.
    pub fn repair(&mut self) {
        self.peripheral.repair(self.now)
    }
}

/// A battery appliance on the ESP-NOW link (no Wi-Fi, no MQTT).
#[allow(async_fn_in_trait)]
pub trait PeripheralApp {
    /// When [`work`](Self::work) is next due.
    fn next_work(&self) -> Millis;
    /// Do the due work (sensor reads, queue a report).
    async fn work<R: Entropy>(&mut self, now: Millis, link: &mut LinkCtl<'_, R>) -> AppAction;
    /// Something happened on the link.
    fn event<R: Entropy>(
        &mut self,
        event: &PeripheralEvent,
        now: Millis,
        link: &mut LinkCtl<'_, R>,
    ) -> AppAction;
}

/// Bound on one round of the appliance's work.
const APP_WORK_TIMEOUT: Millis = 10_000;
/// The loop comes around at least this often.
const PERIPHERAL_LOOP: Millis = 1_000;

/// Run a battery appliance forever: it ends in the board's deep sleep or reset.
pub async fn run_peripheral<B: Board, R: Radio, F: NorFlash, A: PeripheralApp>(
    settings: &LinkSettings,
    board: &mut B,
    radio: &mut R,
    store: &SharedStore<F>,
    app: &mut A,
) -> ! {
    let boot = now_ms();
    board.heartbeat(boot);
    let hardware = board.hardware_reset();
    let mut buf = [0u8; 64];
    let stored = {
        let mut s = store.lock().await;
        let r = match s.get_bytes(keys::REBOOT_REASON, &mut buf).await {
            Ok(Some(n)) => core::str::from_utf8(&buf[..n]).ok().map(String::from),
            _ => None,
        };
        if r.is_some() {
            let _ = s.remove(keys::REBOOT_REASON).await;
        }
        r
    };
    board.console(&format!(
        "boot: reason {}",
        boot_reason(hardware, stored.as_deref())
    ));
    let pairing = load_pairing(store).await;
    let counter = load_counter(store).await;
    board.console(&format!(
        "espnow peripheral {}, wire format v{}, {}",
        mac_text(&radio.mac()),
        if settings.version == Version::V2 {
            2
        } else {
            3
        },
        match pairing {
            Some(p) => format!(
                "paired with {} on channel {}",
                mac_text(&p.central),
                p.channel
            ),
            None => String::from("unpaired: scanning"),
        }
    ));
    let mut peripheral = Peripheral::new(
        settings.codec(),
        radio.mac(),
        SeededEntropy::new(board.seed()),
        pairing,
        counter,
        boot,
    );
    let mut slots = Vec::new();
    loop {
        let now = now_ms();
        board.heartbeat(now);
        board.housekeeping(now).await;
        if board.take_repair_request() {
            board.console("espnow: re-pair requested: forgetting the pairing");
            peripheral.repair(now);
        }
        peripheral.tick(now);
        while let Some(o) = peripheral.poll() {
            let action = match o {
                Output::Send { to, frame, ack } => {
                    let _ = radio.send(to, frame.as_slice(), ack).await;
                    AppAction::Continue
                }
                Output::SetChannel(c) => {
                    if let Err(e) = radio.set_channel(c).await {
                        board.console(&format!("espnow: cannot tune to channel {c}: {e}"));
                    }
                    AppAction::Continue
                }
                Output::Persist(p) => {
                    if let Err(e) = persist(store, p, &mut slots).await {
                        board.console(&format!("espnow: store: {e}"));
                    }
                    AppAction::Continue
                }
                Output::Event(e) => {
                    match &e {
                        PeripheralEvent::Dropped { .. } => {}
                        PeripheralEvent::Paired(p) => board.console(&format!(
                            "espnow: paired with {} on channel {}",
                            mac_text(&p.central),
                            p.channel
                        )),
                        other => board.console(&format!("espnow: {other:?}")),
                    }
                    let now = now_ms();
                    let mut ctl = LinkCtl {
                        peripheral: &mut peripheral,
                        now,
                    };
                    app.event(&e, now, &mut ctl)
                }
            };
            if let AppAction::Sleep(ms) = action {
                board.deep_sleep(ms);
            }
        }
        let now = now_ms();
        if now >= app.next_work() {
            let mut ctl = LinkCtl {
                peripheral: &mut peripheral,
                now,
            };
            board.may_block(now);
            let r = with_timeout(
                Duration::from_millis(APP_WORK_TIMEOUT),
                app.work(now, &mut ctl),
            )
            .await;
            board.may_block_exit(now_ms());
            match r {
                Ok(AppAction::Sleep(ms)) => board.deep_sleep(ms),
                Ok(AppAction::Continue) => {}
                Err(_) => board.console("appliance work timed out"),
            }
            continue;
        }
        let deadline = peripheral
            .next_deadline()
            .min(app.next_work())
            .min(now.saturating_add(PERIPHERAL_LOOP))
            .max(now);
        match select(radio.receive(), Timer::at(Instant::from_millis(deadline))).await {
            Either::First(f) => peripheral.receive(f.from, f.rssi, f.bytes(), now_ms()),
            Either::Second(()) => {}
        }
    }
}
