//! The ESP-NOW link on the device: its settings from `config.txt`, the persistence of pairing
//! and counters, the **central** as a task running beside the MQTT runtime, and the
//! **peripheral runtime** for battery devices that have no Wi-Fi at all.
//!
//! Both drive the sans-IO state machines of `hearth-netnow` over the [`Radio`] trait: they carry
//! out the machines' outputs in order (persist before sending), feed them frames and time, and
//! never hold a frame longer than that.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use embassy_futures::select::{select, select3, Either, Either3};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use hearth_config::Config;
use hearth_core::reboot::boot_reason;
use hearth_core::rng::{Rng, SplitMix64};
use hearth_core::Millis;
use hearth_netnow::central::{Central, CentralEvent};
use hearth_netnow::link::{Codec, CounterGuard, Entropy, Output, Pairing, Persist, Version};
use hearth_netnow::peripheral::{Peripheral, PeripheralEvent};
use hearth_netnow::v3::{Epoch, SenderId, EPOCH_LEN};
use hearth_storage::keys;
use hearth_storage::StoreError;

use hearth_platform::store::SharedStore;
use hearth_platform::{now_ms, Radio, Reset, Watchdog};
use hearth_profile::link::{AppAction, CentralPort, LinkCtl, PeripheralApp, Received};

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

/// Length of the stored counter record: `epoch(12) ‖ reservation(8, little-endian)`.
const COUNTER_RECORD_LEN: usize = EPOCH_LEN + 8;
/// Length of the counter record of builds before epochs (a reservation alone, 8 bytes).
const COUNTER_RECORD_V0_LEN: usize = 8;

/// This device's stored v3 counter record, its epoch and reservation: `Ok(None)` if absent (a
/// fresh or a wiped store), an error if it cannot be read or has a length no build wrote.
/// Never a made-up value: a device that restarted at a guessed counter in its old epoch could
/// reuse the nonces of its earlier frames.
///
/// A record of the 8 bytes that builds before epochs wrote counts as absent: those builds
/// sealed with ChaCha20-Poly1305 under 12-byte nonces, and no XChaCha20-Poly1305 nonce of a new
/// epoch gives the same keystream.
pub async fn load_counter<F: NorFlash>(
    store: &SharedStore<F>,
) -> Result<Option<(Epoch, u64)>, CounterRecordError> {
    let mut buf = [0u8; COUNTER_RECORD_LEN];
    match store
        .lock()
        .await
        .get_bytes(keys::NETNOW_COUNTER, &mut buf)
        .await
    {
        Ok(Some(COUNTER_RECORD_LEN)) => Ok(Some(split_counter_record(&buf))),
        Ok(Some(COUNTER_RECORD_V0_LEN)) | Ok(None) => Ok(None),
        Ok(Some(n)) => Err(CounterRecordError::Length(n)),
        Err(e) => Err(CounterRecordError::Store(e)),
    }
}

/// Why this device's counter record cannot be used: the device then sends nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterRecordError {
    /// The record has a length no build writes.
    Length(usize),
    /// The store could not read it.
    Store(StoreError),
}

impl core::fmt::Display for CounterRecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Length(n) => write!(
                f,
                "the stored counter record has {n} bytes, not {COUNTER_RECORD_LEN}"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

fn split_counter_record(buf: &[u8; COUNTER_RECORD_LEN]) -> (Epoch, u64) {
    let mut epoch = [0u8; EPOCH_LEN];
    epoch.copy_from_slice(&buf[..EPOCH_LEN]);
    let mut c = [0u8; 8];
    c.copy_from_slice(&buf[EPOCH_LEN..]);
    (Epoch(epoch), u64::from_le_bytes(c))
}

/// The epoch and counter this device's v3 frames start from: its stored record, or, when none
/// is stored, a new epoch drawn from `random` (two draws of the board's hardware RNG) counting
/// from 0. A store without a record may have been wiped while the PSK survived, so its earlier
/// counters are unknown; a new epoch makes every nonce of this life new whatever they were.
/// An unreadable record is an error: the caller must not send at all. The flag says whether
/// the epoch is new.
pub async fn counter_start<F: NorFlash>(
    store: &SharedStore<F>,
    random: [u64; 2],
) -> Result<((Epoch, u64), bool), CounterRecordError> {
    Ok(match load_counter(store).await? {
        Some(c) => (c, false),
        None => ((Epoch::new(random), 0), true),
    })
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

/// The central's peer records: which store slot holds which sender. Each peer keeps its slot
/// for good, so a gap (an unreadable or missing record) never shifts the others onto another
/// peer's key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerSlots {
    slots: Vec<(u16, SenderId)>,
}

impl PeerSlots {
    /// The slot of `sender`, giving it the lowest free one if it has none.
    fn slot_of(&mut self, sender: SenderId) -> Option<u16> {
        if let Some((i, _)) = self.slots.iter().find(|(_, s)| *s == sender) {
            return Some(*i);
        }
        let free = (0..keys::NETNOW_PEER_SLOTS).find(|i| self.slots.iter().all(|(j, _)| j != i))?;
        self.slots.push((free, sender));
        Some(free)
    }
}

/// Length of a stored peer record: `sender(6) ‖ epoch(12) ‖ counter(8, little-endian)`.
const PEER_RECORD_LEN: usize = 6 + EPOCH_LEN + 8;

/// The central's persisted peers: the slots in use, the `(sender, epoch, counter)` entries to
/// restore, and how many records could not be read (their peers have no fast path until their
/// next timed exchange; their slots are reused). Records of builds before epochs (14 bytes)
/// count as unreadable.
pub async fn load_peers<F: NorFlash>(
    store: &SharedStore<F>,
) -> (PeerSlots, Vec<(SenderId, Epoch, u64)>, u16) {
    let mut slots = PeerSlots::default();
    let mut peers = Vec::new();
    let mut unreadable = 0;
    let mut s = store.lock().await;
    for i in 0..keys::NETNOW_PEER_SLOTS {
        let Some(key) = keys::netnow_peer(i) else {
            break;
        };
        let mut buf = [0u8; PEER_RECORD_LEN];
        match s.get_bytes(key, &mut buf).await {
            Ok(Some(PEER_RECORD_LEN)) => {
                let mut id = [0; 6];
                id.copy_from_slice(&buf[..6]);
                let mut record = [0u8; COUNTER_RECORD_LEN];
                record.copy_from_slice(&buf[6..]);
                let (epoch, counter) = split_counter_record(&record);
                slots.slots.push((i, SenderId(id)));
                peers.push((SenderId(id), epoch, counter));
            }
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => unreadable += 1,
        }
    }
    (slots, peers, unreadable)
}

fn counter_record(epoch: Epoch, counter: u64) -> [u8; COUNTER_RECORD_LEN] {
    let mut b = [0u8; COUNTER_RECORD_LEN];
    b[..EPOCH_LEN].copy_from_slice(&epoch.0);
    b[EPOCH_LEN..].copy_from_slice(&counter.to_le_bytes());
    b
}

/// Carries out one `Persist`. `peers` maps sender ids to their peer slots (central only).
async fn persist<F: NorFlash>(
    store: &SharedStore<F>,
    p: Persist,
    peers: &mut PeerSlots,
) -> Result<(), PersistError> {
    let mut s = store.lock().await;
    let r: Result<(), StoreError> = match p {
        Persist::CounterReserve(epoch, until) => {
            s.set_bytes(keys::NETNOW_COUNTER, &counter_record(epoch, until))
                .await
        }
        Persist::Pairing(pairing) => {
            let mut b = [0u8; 7];
            b[..6].copy_from_slice(&pairing.central);
            b[6] = pairing.channel;
            s.set_bytes(keys::NETNOW_PAIRING, &b).await
        }
        Persist::Unpaired => s.remove(keys::NETNOW_PAIRING).await,
        Persist::PeerCounter(sender, epoch, counter) => {
            let Some(key) = peers.slot_of(sender).and_then(keys::netnow_peer) else {
                return Err(PersistError::NoPeerSlot);
            };
            let mut b = [0u8; PEER_RECORD_LEN];
            b[..6].copy_from_slice(&sender.0);
            b[6..].copy_from_slice(&counter_record(epoch, counter));
            s.set_bytes(key, &b).await
        }
    };
    r.map_err(PersistError::Store)
}

/// Why a `Persist` of a link state machine was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistError {
    /// The central has more peers than the store has peer slots.
    NoPeerSlot,
    /// The store refused the write.
    Store(StoreError),
}

impl core::fmt::Display for PersistError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoPeerSlot => f.write_str("more peers than flash slots"),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

/// What to do with one output of a state machine, as [`Carrier::step`] decides.
// Carried by value like the `Output` it wraps (a frame is the point of it).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step<E> {
    /// Carry it out (a frame to send, a channel change, an event).
    Do(Output<E>),
    /// It was a `Persist`, stored.
    Stored,
    /// It was a `Persist` whose write failed: tell the machine (`persist_failed`) and log it.
    Failed(Persist, PersistError),
    /// A frame that must not go on the air, and why.
    Refused(&'static str),
}

/// Carries out the persist steps of a state machine and decides which of its frames may go on
/// the air: fail closed. A v3 frame goes out only if its counter is below the reservation that
/// is durably stored ([`CounterGuard`]), so a failed write, a full queue or a lost reservation
/// never leads to a counter a reset would hand out again. After a failed peer-counter write
/// (central) the rest of the batch is held: the frame it belongs to gets no confirm and its
/// data is not forwarded, so nothing is acted on that a reboot would accept again.
#[derive(Debug)]
pub struct Carrier {
    guard: CounterGuard,
    peers: PeerSlots,
    hold: bool,
}

impl Carrier {
    /// For a machine started with counter reservation `durable` and (central) peer slots.
    pub fn new(durable: u64, peers: PeerSlots) -> Self {
        Carrier {
            guard: CounterGuard::new(durable),
            peers,
            hold: false,
        }
    }

    /// Handle one output: store a `Persist`, judge a frame, pass the rest on.
    pub async fn step<F: NorFlash, E>(&mut self, store: &SharedStore<F>, o: Output<E>) -> Step<E> {
        match o {
            Output::Persist(p) => {
                let r = persist(store, p, &mut self.peers).await;
                self.guard.persisted(&p, r.is_ok());
                match r {
                    Ok(()) => Step::Stored,
                    Err(e) => {
                        if let Persist::PeerCounter(..) = p {
                            self.hold = true;
                        }
                        Step::Failed(p, e)
                    }
                }
            }
            Output::Send { .. } if self.hold => {
                Step::Refused("the peer counter it answers could not be stored")
            }
            Output::Send { ref frame, .. } if !self.guard.may_send(frame) => {
                Step::Refused("its counter is not reserved in flash")
            }
            other => Step::Do(other),
        }
    }

    /// Whether a peer-counter write failed in this batch (then its data is not forwarded).
    pub fn holding(&self) -> bool {
        self.hold
    }

    /// The machine's output queue is empty: the next batch starts clean.
    pub fn end_batch(&mut self) {
        self.hold = false;
    }
}

/// Log at most one dropped frame of each kind per this many ms (the rest are counted).
const DROP_LOG_EVERY: Millis = 10_000;

/// Rate limit of the central's "dropped a frame" line: the first drop of each kind (its reason
/// as printed) is logged at once, later ones of that kind at most once per [`DROP_LOG_EVERY`].
/// A flood of one kind (a neighbour's network on the same channel) so cannot hide a new kind
/// (a peer with the wrong key). The kinds remembered are bounded; the oldest is forgotten.
#[derive(Default)]
struct DropLog {
    /// (kind, when it was last logged); kind 0 is a free slot. Four kinds at 16 B each: this
    /// lives in the main task's future, which is static RAM on the chip.
    kinds: [(u32, Millis); 4],
}

impl DropLog {
    /// Whether a drop of this reason is logged now (and if so, remember when).
    fn should_log(&mut self, reason: &impl core::fmt::Display, now: Millis) -> bool {
        let kind = kind_of(reason);
        let slot = match self.kinds.iter().position(|&(k, _)| k == kind) {
            Some(i) => i,
            // A new kind takes a free slot, or the one logged longest ago.
            None => (0..self.kinds.len())
                .min_by_key(|&i| match self.kinds[i] {
                    (0, _) => 0,
                    (_, t) => t.saturating_add(1),
                })
                .unwrap_or(0),
        };
        match self.kinds[slot] {
            (k, t) if k == kind && now.saturating_sub(t) < DROP_LOG_EVERY => false,
            _ => {
                self.kinds[slot] = (kind, now);
                true
            }
        }
    }
}

/// FNV-1a (32 bits) of a value as printed, without allocating; never 0.
fn kind_of(reason: &impl core::fmt::Display) -> u32 {
    struct Fnv(u32);
    impl core::fmt::Write for Fnv {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for b in s.bytes() {
                self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
            }
            Ok(())
        }
    }
    let mut h = Fnv(0x811c_9dc5);
    let _ = core::fmt::write(&mut h, format_args!("{reason}"));
    h.0 | 1
}

/// The log line of a device that found no counter record and starts a new epoch.
fn new_epoch_line(epoch: Epoch) -> String {
    format!(
        "espnow: no counter record stored (new or wiped store): new epoch {epoch}, counting \
         from 0"
    )
}

/// How long the central waits before trying an unreadable counter reservation again.
const COUNTER_RETRY_MS: u64 = 10_000;

/// Run the central forever, beside the MQTT runtime (join the two futures).
///
/// If its counter record cannot be read the central does not start (it would have to guess a
/// counter, and a wrong guess reuses nonces): it logs and tries again every 10 s. `seed` seeds
/// its tids and time base; `epoch_random` (two more draws of the hardware RNG) is its new epoch
/// if no counter record is stored.
pub async fn run_central<R: Radio, F: NorFlash>(
    settings: &LinkSettings,
    radio: &mut R,
    store: &SharedStore<F>,
    seed: u64,
    epoch_random: [u64; 2],
    port: &CentralPort,
) -> ! {
    let (counter, fresh) = loop {
        match counter_start(store, epoch_random).await {
            Ok(c) => break c,
            Err(e) => {
                port.push_log(format!(
                    "espnow: cannot read the counter record ({e}): not sending; \
                     retrying in {} s",
                    COUNTER_RETRY_MS / 1000
                ));
                Timer::after(Duration::from_millis(COUNTER_RETRY_MS)).await;
            }
        }
    };
    let (slots, peers, unreadable) = load_peers(store).await;
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
    if fresh && settings.version == Version::V3 {
        port.push_log(new_epoch_line(counter.0));
    }
    if unreadable > 0 {
        port.push_log(format!(
            "espnow: {unreadable} peer records unreadable: those peers need a timed exchange \
             before their fast path is taken again"
        ));
    }
    let mut carrier = Carrier::new(counter.1, slots);
    let mut drop_log = DropLog::default();
    loop {
        drain_central(
            &mut central,
            &mut carrier,
            store,
            radio,
            port,
            &mut drop_log,
            now_ms(),
        )
        .await;
        let backdata = port.next_backdata();
        if let Some(b) = backdata {
            if let Err(e) = central.send_backdata(&b, now_ms()) {
                port.push_log(format!("espnow: back-data not sent: {e:?}"));
            }
            continue;
        }
        let deadline = Instant::from_millis(central.next_deadline());
        match select3(radio.receive(), Timer::at(deadline), port.woken()).await {
            Either3::First(f) => central.receive(f.from, f.rssi, f.bytes(), now_ms()),
            Either3::Second(()) => central.tick(now_ms()),
            Either3::Third(()) => {}
        }
    }
}

/// Carry out the central's outputs until its queue is empty (`now`: for rate-limiting logs).
async fn drain_central<R: Radio, F: NorFlash, E: Entropy>(
    central: &mut Central<E>,
    carrier: &mut Carrier,
    store: &SharedStore<F>,
    radio: &mut R,
    port: &CentralPort,
    drop_log: &mut DropLog,
    now: Millis,
) {
    while let Some(o) = central.poll() {
        let o = match carrier.step(store, o).await {
            Step::Do(o) => o,
            Step::Stored => continue,
            Step::Failed(p, e) => {
                central.persist_failed(&p);
                port.count(|s| s.persist_failures += 1);
                port.push_log(format!(
                    "espnow: store: {e}: not sending what depends on it"
                ));
                continue;
            }
            Step::Refused(why) => {
                port.count(|s| s.refused += 1);
                port.push_log(format!("espnow: frame not sent: {why}"));
                continue;
            }
        };
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
            Output::Persist(_) => {}
            Output::Event(CentralEvent::Data { from, .. }) if carrier.holding() => {
                port.count(|s| s.dropped += 1);
                port.push_log(format!(
                    "espnow: data from {} not forwarded: its counter could not be stored",
                    mac_text(&from)
                ));
            }
            Output::Event(CentralEvent::Data {
                from,
                rssi,
                payload,
            }) => {
                port.count(|s| s.accepted += 1);
                port.deliver(Received {
                    from,
                    rssi,
                    payload: payload.as_slice().to_vec(),
                });
            }
            Output::Event(CentralEvent::Dropped { from, reason }) => {
                port.count(|s| s.dropped += 1);
                if drop_log.should_log(&reason, now) {
                    port.push_log(format!(
                        "espnow: dropped a frame from {}: {reason} ({} dropped so far)",
                        mac_text(&from),
                        port.stats().dropped
                    ));
                }
            }
        }
    }
    carrier.end_batch();
}

/// Bound on one round of the appliance's work.
const APP_WORK_TIMEOUT: Millis = 10_000;
/// The loop comes around at least this often.
const PERIPHERAL_LOOP: Millis = 1_000;

/// Run a battery appliance forever: it ends in the board's deep sleep or reset.
pub async fn run_peripheral<B, R: Radio, F: NorFlash, A: PeripheralApp>(
    settings: &LinkSettings,
    board: &mut B,
    radio: &mut R,
    store: &SharedStore<F>,
    app: &mut A,
) -> !
where
    B: Reset + Watchdog + hearth_platform::Entropy,
{
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
    let (counter, fresh) = match counter_start(store, [board.seed(), board.seed()]).await {
        Ok(c) => c,
        Err(e) => {
            // Guessing a counter could reuse nonces: send nothing, try again after a sleep.
            board.console(&format!(
                "espnow: cannot read the counter record ({e}): not sending; \
                 retrying in {} s",
                COUNTER_RETRY_MS / 1000
            ));
            board.deep_sleep(COUNTER_RETRY_MS)
        }
    };
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
    if fresh && settings.version == Version::V3 {
        board.console(&new_epoch_line(counter.0));
    }
    let mut peripheral = Peripheral::new(
        settings.codec(),
        radio.mac(),
        SeededEntropy::new(board.seed()),
        pairing,
        counter,
        boot,
    );
    let mut carrier = Carrier::new(counter.1, PeerSlots::default());
    loop {
        let now = now_ms();
        board.heartbeat(now);
        if board.take_repair_request() {
            board.console("espnow: re-pair requested: forgetting the pairing");
            peripheral.repair(now);
        }
        peripheral.tick(now);
        while let Some(o) = peripheral.poll() {
            let o = match carrier.step(store, o).await {
                Step::Do(o) => o,
                Step::Stored => continue,
                Step::Failed(p, e) => {
                    peripheral.persist_failed(&p);
                    board.console(&format!(
                        "espnow: store: {e}: not sending what depends on it"
                    ));
                    continue;
                }
                Step::Refused(why) => {
                    board.console(&format!("espnow: frame not sent: {why}"));
                    continue;
                }
            };
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
                Output::Persist(_) => AppAction::Continue,
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
                    let mut ctl = LinkCtl::new(&mut peripheral, now);
                    app.event(&e, now, &mut ctl)
                }
            };
            if let AppAction::Sleep(ms) = action {
                board.deep_sleep(ms);
            }
        }
        carrier.end_batch();
        let now = now_ms();
        if now >= app.next_work() {
            let mut ctl = LinkCtl::new(&mut peripheral, now);
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_kind_of_drop_is_logged_at_once_and_each_kind_is_rate_limited() {
        let mut log = super::DropLog::default();
        let every = super::DROP_LOG_EVERY;
        assert!(log.should_log(&"wrong group", 0));
        assert!(!log.should_log(&"wrong group", 1));
        // Another kind in the same second is not hidden by the first.
        assert!(log.should_log(&"wire format v2 frame on this network", 2));
        assert!(!log.should_log(&"wire format v2 frame on this network", 3));
        assert!(!log.should_log(&"wrong group", every - 1));
        assert!(log.should_log(&"wrong group", every));
        // More kinds than slots: the oldest is forgotten, nothing grows.
        for i in 0..20u64 {
            assert!(log.should_log(&i, 2 * every + i));
        }
        assert!(log.should_log(&"wrong group", 2 * every + 30));
        assert!(!log.should_log(&19u64, 2 * every + 31));
    }

    use super::*;
    use alloc::vec;
    use embassy_futures::block_on;
    use hearth_netnow::link::{Msg, COUNTER_BLOCK};
    use hearth_netnow::{Tid, MAX_FRAME_LEN};
    use hearth_storage::KvStore;

    use hearth_platform::{RadioError, RadioFrame};

    use hearth_storage::test_flash::{TestFlash, SECTOR};

    fn store(flash: &TestFlash) -> SharedStore<TestFlash> {
        let range = 0..(SECTOR * 4) as u32;
        hearth_platform::store::shared(block_on(KvStore::open(flash.clone(), range)).unwrap())
    }

    const ME: [u8; 6] = [0x02, 0, 0, 0, 0, 0x51];
    const CENTRAL: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc0];

    fn codec() -> Codec {
        Codec::new(Version::V3, b"0123456789abcdef-test-psk", b"scales")
    }

    const E: Epoch = Epoch([0xe5; EPOCH_LEN]);

    fn peripheral(counter: (Epoch, u64), now: Millis) -> Peripheral<SeededEntropy> {
        let pairing = Pairing {
            central: CENTRAL,
            channel: 3,
        };
        Peripheral::new(
            codec(),
            ME,
            SeededEntropy::new(now ^ 77),
            Some(pairing),
            counter,
            now,
        )
    }

    /// Carry out the peripheral's outputs as `run_peripheral` does; the counters of the frames
    /// that went on the air.
    fn carry(
        p: &mut Peripheral<SeededEntropy>,
        carrier: &mut Carrier,
        store: &SharedStore<TestFlash>,
    ) -> (Vec<u64>, u32) {
        let (mut sent, mut failed) = (Vec::new(), 0);
        while let Some(o) = p.poll() {
            match block_on(carrier.step(store, o)) {
                Step::Do(Output::Send { frame, .. }) => sent.push(frame.counter().unwrap()),
                Step::Failed(persist, _) => {
                    p.persist_failed(&persist);
                    failed += 1;
                }
                _ => {}
            }
        }
        carrier.end_batch();
        (sent, failed)
    }

    /// One life of a peripheral on `store`: start from what is stored, send `frames` wakeups
    /// (one per 5 s: it never hears a central); the nonces (epoch, counter) it put on the air.
    fn life(store: &SharedStore<TestFlash>, seed: u64, frames: usize) -> Vec<(Epoch, u64)> {
        let (start, _) = block_on(counter_start(store, [seed, !seed])).unwrap();
        let mut p = peripheral(start, 0);
        let mut carrier = Carrier::new(start.1, PeerSlots::default());
        let mut used = carry(&mut p, &mut carrier, store).0;
        let mut now = 0;
        while used.len() < frames {
            assert!(now < 1 << 40, "the peripheral stopped sending");
            now += hearth_netnow::peripheral::WAKEUP_EVERY_MS;
            p.tick(now);
            used.extend(carry(&mut p, &mut carrier, store).0);
        }
        used.into_iter().map(|c| (start.0, c)).collect()
    }

    #[test]
    fn a_failed_reservation_write_sends_nothing_until_a_write_succeeds() {
        let flash = TestFlash::new();
        let store = store(&flash);
        let (start, fresh) = block_on(counter_start(&store, [1, 2])).unwrap();
        assert!(fresh);
        assert_eq!(start, (Epoch::new([1, 2]), 0));
        flash.fail_writes.set(true);
        let mut p = peripheral(start, 0);
        let mut carrier = Carrier::new(start.1, PeerSlots::default());
        let (sent, failed) = carry(&mut p, &mut carrier, &store);
        assert!(failed > 0, "the reservation write was tried");
        assert_eq!(sent, Vec::<u64>::new(), "a frame went out unreserved");
        // Still failing: the machine asks again, and still nothing goes out.
        p.tick(5_000);
        let (sent, failed) = carry(&mut p, &mut carrier, &store);
        assert!(failed > 0 && sent.is_empty());
        // The flash works again: the next try is reserved first, then sent.
        flash.fail_writes.set(false);
        p.tick(10_000);
        let (sent, failed) = carry(&mut p, &mut carrier, &store);
        assert_eq!(failed, 0);
        assert_eq!(sent.len(), 1);
        let stored = block_on(load_counter(&store)).unwrap().unwrap();
        assert_eq!(stored.0, start.0, "the record keeps the epoch");
        assert!(
            sent[0] >= start.1 && sent[0] < stored.1,
            "{sent:?} vs {stored:?}"
        );
    }

    #[test]
    fn an_unreadable_counter_is_an_error_never_a_guess() {
        let flash = TestFlash::new();
        let store = store(&flash);
        let put = |bytes: &[u8]| {
            block_on(async {
                store
                    .lock()
                    .await
                    .set_bytes(keys::NETNOW_COUNTER, bytes)
                    .await
            })
            .unwrap()
        };
        assert_eq!(block_on(load_counter(&store)), Ok(None));
        put(&counter_record(E, 4096));
        assert_eq!(
            block_on(counter_start(&store, [1, 2])),
            Ok(((E, 4096), false))
        );
        // A record no build wrote: refused, not read as absent.
        put(&[7; 13]);
        assert!(block_on(counter_start(&store, [1, 2])).is_err());
        // The 8-byte reservation of builds before epochs: a new epoch (other nonce space).
        put(&4096u64.to_le_bytes());
        assert_eq!(
            block_on(counter_start(&store, [1, 2])),
            Ok(((Epoch::new([1, 2]), 0), true))
        );
        put(&counter_record(E, 4096));
        flash.fail_reads.set(true);
        assert!(block_on(load_counter(&store)).is_err());
        assert!(
            block_on(counter_start(&store, [1, 2])).is_err(),
            "an unreadable record must stop the link, not restart it"
        );
    }

    #[test]
    fn a_wiped_store_starts_a_new_epoch_so_no_nonce_repeats() {
        let flash = TestFlash::new();
        let store = store(&flash);
        let first = life(&store, 11, 3 * COUNTER_BLOCK as usize);
        // A reset: the next life continues the stored epoch above everything used.
        let second = life(&store, 12, 10);
        assert_eq!(second[0].0, first[0].0);
        assert!(second[0].1 > first.iter().map(|n| n.1).max().unwrap());
        // The store is wiped (corruption, `espflash erase-flash`) while the PSK survives.
        block_on(async { store.lock().await.erase_all().await }).unwrap();
        let third = life(&store, 13, 3 * COUNTER_BLOCK as usize);
        // It counts from 0 again, over the very counter values of the first life ...
        assert_eq!(third[0].1, 0);
        assert!(third.iter().any(|n| first.iter().any(|m| m.1 == n.1)));
        // ... in an epoch of its own, so not one nonce repeats.
        assert_ne!(third[0].0, first[0].0);
        for nonce in &third {
            assert!(
                !first.contains(nonce) && !second.contains(nonce),
                "nonce {nonce:?} used again after the wipe"
            );
        }
        // The new epoch is stored with the reservation: the next reset continues it.
        let fourth = life(&store, 14, 1);
        assert_eq!(fourth[0].0, third[0].0);
        assert!(fourth[0].1 > third.iter().map(|n| n.1).max().unwrap());
        // All nonces of one life are distinct and increasing.
        assert!(third.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn peer_slots_keep_their_index_across_a_gap() {
        let flash = TestFlash::new();
        let store = store(&flash);
        let peer = |b: u8| SenderId([2, 0, 0, 0, 0, b]);
        let mut carrier = Carrier::new(0, PeerSlots::default());
        for (i, b) in [1u8, 2, 3].into_iter().enumerate() {
            let o: Output<()> = Output::Persist(Persist::PeerCounter(peer(b), E, 100 + i as u64));
            assert!(matches!(block_on(carrier.step(&store, o)), Step::Stored));
        }
        // Slot 1 is lost (missing or unreadable): the others keep their keys after a reboot.
        block_on(async {
            store
                .lock()
                .await
                .remove(keys::netnow_peer(1).unwrap())
                .await
        })
        .unwrap();
        let (slots, peers, _) = block_on(load_peers(&store));
        assert_eq!(peers, vec![(peer(1), E, 100), (peer(3), E, 102)]);
        let mut carrier = Carrier::new(0, slots);
        let o: Output<()> = Output::Persist(Persist::PeerCounter(peer(3), E, 500));
        assert!(matches!(block_on(carrier.step(&store, o)), Step::Stored));
        let (_, peers, _) = block_on(load_peers(&store));
        assert_eq!(
            peers,
            vec![(peer(1), E, 100), (peer(3), E, 500)],
            "peer 3 must stay in its own slot"
        );
        // A new peer takes the free slot.
        let o: Output<()> = Output::Persist(Persist::PeerCounter(peer(4), E, 7));
        assert!(matches!(block_on(carrier.step(&store, o)), Step::Stored));
        let (_, peers, _) = block_on(load_peers(&store));
        assert_eq!(
            peers,
            vec![(peer(1), E, 100), (peer(4), E, 7), (peer(3), E, 500)]
        );
    }

    /// A radio that records what is sent.
    #[derive(Default)]
    struct FakeRadio {
        sent: Vec<Vec<u8>>,
    }

    impl Radio for FakeRadio {
        fn mac(&self) -> [u8; 6] {
            CENTRAL
        }
        async fn set_channel(&mut self, _channel: u8) -> Result<(), RadioError> {
            Ok(())
        }
        async fn send(
            &mut self,
            _to: [u8; 6],
            frame: &[u8],
            _ack: bool,
        ) -> Result<bool, RadioError> {
            self.sent.push(frame.to_vec());
            Ok(true)
        }
        async fn receive(&mut self) -> RadioFrame {
            core::future::pending().await
        }
    }

    #[test]
    fn a_failed_peer_counter_write_forwards_nothing_and_confirms_nothing() {
        let flash = TestFlash::new();
        let store = store(&flash);
        let port = CentralPort::new();
        let mut radio = FakeRadio::default();
        let mut central = Central::new(codec(), CENTRAL, 3, SeededEntropy::new(5), &[], (E, 0), 0);
        let mut carrier = Carrier::new(0, PeerSlots::default());
        let mut log = super::DropLog::default();
        let mut drain = |central: &mut Central<SeededEntropy>, radio: &mut FakeRadio| {
            block_on(drain_central(
                central,
                &mut carrier,
                &store,
                radio,
                &port,
                &mut log,
                0,
            ))
        };
        drain(&mut central, &mut radio);
        assert_eq!(radio.sent.len(), 1, "the start-up broadcast");
        // Timed data from a scale, sealed as the scale would.
        let data = |tid: u8, counter: u64, central: &Central<SeededEntropy>| {
            let msg = Msg::Data {
                ts: central.time(1_000),
                tid: Tid([tid; 12]),
                payload: b"stat/LPScale/Weight\n1.5",
            };
            let mut out = [0; MAX_FRAME_LEN];
            let n = codec()
                .seal(&msg, &SenderId(ME), &E, counter, &[0; 16], &mut out)
                .unwrap();
            out[..n].to_vec()
        };
        flash.fail_writes.set(true);
        let frame = data(1, 10, &central);
        central.receive(ME, -50, &frame, 1_000);
        drain(&mut central, &mut radio);
        assert_eq!(
            radio.sent.len(),
            1,
            "a confirm went out for an unstored counter"
        );
        assert_eq!(port.take(), None, "data forwarded with an unstored counter");
        assert!(port.stats().persist_failures > 0);
        // Stored again: the scale's retry (new tid, new counter) is confirmed and forwarded.
        flash.fail_writes.set(false);
        let frame = data(2, 11, &central);
        central.receive(ME, -50, &frame, 1_000);
        drain(&mut central, &mut radio);
        assert_eq!(radio.sent.len(), 2);
        assert!(port.take().is_some());
        let (_, peers, _) = block_on(load_peers(&store));
        assert_eq!(peers, vec![(SenderId(ME), E, 11)]);
    }
}
