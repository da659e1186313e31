//! The device's async main: boot report, random start-up delay, then one event loop that
//! proves its liveness to the watchdog, steps the network and MQTT supervisors, runs the
//! profile's hardware work, evaluates and publishes items, and serves commands. Every await
//! that can take longer than one loop period is bounded by a timeout and announced to the
//! watchdog as a permitted blocking window.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::Future;

use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use hearth_core::discovery::{self, DeviceInfo, Entity};
use hearth_core::publish::{PubId, PubSpec, Publications};
use hearth_core::reboot::{boot_reason, HardwareReset, RebootReason};
use hearth_core::rng::SplitMix64;
use hearth_core::supervisor::{
    start_delay, Keepalive, MqttSupervisor, NetAction, NetEvent, NetState, NetSupervisor,
    RetryDecision,
};
use hearth_core::topics::Topics;
use hearth_core::{Millis, SECOND};
use hearth_storage::keys;
use rust_mqtt::buffer::AllocBuffer;

use crate::bounded::{Bounded, Dropped};
pub use crate::platform::now_ms;
use crate::platform::{Board, Console, DeviceStatus, NetError, Network, Reset, Watchdog};
use crate::profiles::DynProfile;
use crate::session::{self, Incoming, MqttClient};
use crate::settings::Settings;
pub use crate::store::SharedStore;
use crate::update::{BootMode, Handled, Updater};

/// The loop comes around at least this often, even with nothing to do.
pub const LOOP_PERIOD: Millis = SECOND;
/// How often the link is polled while associating.
const LINK_POLL: Millis = 100;
/// Bound on one publish, ping or packet-body read.
const IO_TIMEOUT: Millis = 5 * SECOND;
/// Bound on one round of the profile's hardware work.
const WORK_TIMEOUT: Millis = 5 * SECOND;
/// Bound on the link check that confirms a stuck link before re-associating.
const PROBE_TIMEOUT: Millis = 3 * SECOND;
/// Unsent log lines kept while offline.
const LOG_CAPACITY: usize = 32;

struct CoreItems {
    uptime: PubId,
    reboot_reason: PubId,
}

/// Run the device forever. Returns only by resetting the board.
///
/// The appliance is a `&mut dyn DynProfile` (any [`Profile`](crate::profiles::Profile)
/// coerces to it: pass `&mut profile`), so the runtime's code is compiled once per image (per
/// platform), not once per appliance.
pub async fn run<N, B, F>(
    settings: Settings,
    net: &mut N,
    board: &mut B,
    store: &SharedStore<F>,
    profile: &mut dyn DynProfile,
) -> !
where
    N: Network,
    B: Board,
    F: NorFlash,
{
    let boot = now_ms();
    board.heartbeat(boot);
    board.status(DeviceStatus::Booting);
    let mut rng = SplitMix64::new(board.seed());
    let topics = Topics::new(&settings.name);
    let mut pubs = Publications::new(LOG_CAPACITY);

    // Boot report: why we restarted, and how often.
    let reason = boot_report(board, store).await;
    let items = CoreItems {
        uptime: pubs.register(
            PubSpec::periodic("Uptime", settings.uptime_eval, settings.uptime_force),
            boot,
        ),
        reboot_reason: pubs.register(PubSpec::on_demand("RebootReason"), boot),
    };
    pubs.offer(items.reboot_reason, boot, Some(reason.clone()), true);
    pubs.log(format!("boot: reason {reason}"));
    let safe_mode = matches!(settings.boot_mode, BootMode::Safe { .. });
    let mut updater = Updater::new(settings.update.clone(), safe_mode, &mut pubs, boot);
    updater.start(board, store, &mut pubs, &reason, boot).await;
    profile.register(&mut pubs, boot);
    // Random start-up delay, with the loop still proving it is alive.
    let delay = start_delay(settings.start_delay_max, &mut rng);
    board.console(&format!("start-up delay {delay} ms"));
    let start = boot + delay;
    while now_ms() < start {
        board.heartbeat(now_ms());
        Timer::at(Instant::from_millis(start.min(now_ms() + LOOP_PERIOD))).await;
    }

    let client_id = {
        let id = board.unique_id();
        let mut s = settings.name.clone();
        for b in id {
            s.push_str(&format!("{b:02x}"));
        }
        s
    };
    let now = now_ms();
    let (mut netsup, action) = NetSupervisor::start(settings.net, now);
    board.status(DeviceStatus::NoNetwork);
    if action == NetAction::Connect {
        net.up().await;
    }
    let mut mqttsup = MqttSupervisor::new(settings.mqtt, now);
    let mut retry_at: Millis = now;
    let mut session: Option<MqttClient<'static, Bounded<N::Socket>>> = None;
    // What the session's stream threw away (packets over the bound), and how much was reported.
    let dropped = Rc::new(Dropped::default());
    let mut dropped_seen = 0;
    // The profile's entities version announced on this session (`None`: not yet). A profile
    // may add entities, e.g. a forwarder hearing a new sender; they are announced when the
    // version changes.
    let mut announced: Option<usize> = None;

    loop {
        let now = now_ms();
        board.heartbeat(now);

        // Network health.
        let step = netsup.tick(now, net.link_up(), &mut rng);
        if let Some(event) = step.event {
            match event {
                NetEvent::Up => {
                    board.console("network up");
                    board.status(DeviceStatus::NoBroker);
                }
                NetEvent::AttemptFailed => board.console("network attempt timed out"),
                NetEvent::Lost => {
                    board.console("network lost");
                    board.status(DeviceStatus::NoNetwork);
                    let n = bump(store, keys::CONNLOST, board).await;
                    pubs.log(format!("network lost (connlost {n})"));
                }
            }
        }
        match step.action {
            Some(NetAction::Connect) => net.up().await,
            Some(NetAction::Disconnect) => {
                if session.take().is_some() {
                    profile.online(false, None);
                    end_session(
                        &mut mqttsup,
                        &mut retry_at,
                        store,
                        board,
                        &mut rng,
                        &mut pubs,
                        "network down",
                    )
                    .await;
                }
                net.down().await;
                board.status(DeviceStatus::NoNetwork);
            }
            Some(NetAction::Reboot) => reboot(board, store, RebootReason::Network).await,
            None => {}
        }

        // The profile's hardware work and the evaluation of due items.
        if now >= profile.next_work()
            && guarded(board, WORK_TIMEOUT, profile.work(now, &mut pubs))
                .await
                .is_none()
        {
            pubs.log("profile work timed out");
        }
        if let Some(why) = profile.wants_reboot() {
            board.console(&format!("{}: {why}", profile.name()));
            reboot(board, store, RebootReason::Appliance).await;
        }
        updater
            .tick(
                board,
                store,
                &mut pubs,
                now_ms() - boot,
                session.is_some(),
                now_ms(),
            )
            .await;
        let now = now_ms();
        while let Some((id, force)) = pubs.due(now) {
            let value = if id == items.uptime {
                Some(format!("{}", (now - boot) / 60_000))
            } else if id == items.reboot_reason {
                pubs.last(id).map(String::from)
            } else {
                profile.evaluate(id, now)
            };
            pubs.offer(id, now, value, force);
        }

        // MQTT. Discovery first: after every CONNACK, and whenever the profile's entities change.
        if let Some(client) = session.as_mut() {
            let version = profile.entities_version();
            if announced != Some(version) {
                match announce(client, board, profile, &topics).await {
                    Ok(n) => {
                        announced = Some(version);
                        mqttsup.sent(now_ms());
                        board.console(&format!("discovery: {n} entities announced"));
                    }
                    Err(e) => {
                        session = None;
                        profile.online(false, None);
                        end_session(
                            &mut mqttsup,
                            &mut retry_at,
                            store,
                            board,
                            &mut rng,
                            &mut pubs,
                            &format!("discovery: {}", e.0),
                        )
                        .await;
                        continue;
                    }
                }
            }
        }
        let link = netsup.state() == NetState::Connected;
        if session.is_none() && link && now_ms() >= retry_at {
            // AllocBuffer is a zero-sized handle to the heap: leaking a box of it allocates
            // nothing, and gives each client the 'static buffer borrow rust-mqtt wants.
            let mut client = MqttClient::new(Box::leak(Box::new(AllocBuffer)));
            // Did anything answer this attempt? A TCP connection (or a refusal) proves that the
            // link carries packets; only attempts without any answer can mean a stuck link.
            let answered = core::cell::Cell::new(false);
            let attempt = async {
                let socket = net
                    .connect(
                        &settings.broker_host,
                        settings.broker_port,
                        settings.tls.as_ref(),
                    )
                    .await
                    .map_err(|e| {
                        // Refused, reset, or a TLS handshake that failed: the far end spoke.
                        answered.set(matches!(e, NetError::Connect | NetError::Tls(_)));
                        session::SessionError(match e {
                            // A TLS failure says what the certificate check found; it counts
                            // as a failed attempt like any other (back-off, reboot policy).
                            NetError::Tls(t) => {
                                format!("tls: {}", t.explain(&settings.broker_host))
                            }
                            other => format!("tcp: {other}"),
                        })
                    })?;
                answered.set(true);
                let socket = Bounded::new(socket, session::MAX_INCOMING_PACKET, dropped.clone());
                session::connect(&mut client, socket, &settings, &topics, &client_id).await
            };
            match guarded(board, settings.mqtt.connack_timeout, attempt).await {
                Some(Ok(())) => {
                    let now = now_ms();
                    mqttsup.connected(now);
                    board.console("mqtt connected");
                    board.status(DeviceStatus::Online);
                    profile.online(true, net.address());
                    // Discovery goes out first thing on the next turn.
                    announced = None;
                    session = Some(client);
                }
                outcome => {
                    let why = match outcome {
                        Some(Err(e)) => e.0,
                        _ => String::from("timed out"),
                    };
                    board.console(&format!("mqtt connect failed: {why}"));
                    let now = now_ms();
                    match mqttsup.failed(now, &mut rng) {
                        RetryDecision::RetryAt(t) => retry_at = t,
                        RetryDecision::Reboot => reboot(board, store, RebootReason::Mqtt).await,
                    }
                    let suspect = if answered.get() {
                        mqttsup.answered();
                        false
                    } else {
                        mqttsup.unanswered()
                    };
                    // Confirm with a cheap check before dropping a link that may be fine.
                    if suspect
                        && !guarded(board, PROBE_TIMEOUT, net.probe())
                            .await
                            .unwrap_or(false)
                    {
                        board.console("link up but nothing answers: re-associating");
                        pubs.log("link stuck: re-associating");
                        let step = netsup.link_stuck(now_ms(), &mut rng);
                        if step.action == Some(NetAction::Disconnect) {
                            let _ = bump(store, keys::CONNLOST, board).await;
                            net.down().await;
                            board.status(DeviceStatus::NoNetwork);
                        }
                    } else if suspect {
                        board.console(
                            "broker unreachable but the local network answers: keeping the link",
                        );
                    }
                }
            }
            continue;
        }

        let deadline = {
            let mut d = now_ms() + LOOP_PERIOD;
            if let Some(t) = pubs.next_deadline() {
                d = d.min(t);
            }
            if let Some(t) = netsup.next_deadline() {
                d = d.min(t);
            }
            if matches!(netsup.state(), NetState::Connecting { .. }) {
                // Notice the link coming up promptly.
                d = d.min(now_ms() + LINK_POLL);
            }
            d = d.min(profile.next_work());
            if session.is_none() && link {
                d = d.min(retry_at);
            }
            d.max(now_ms())
        };

        let Some(client) = session.as_mut() else {
            Timer::at(Instant::from_millis(deadline)).await;
            continue;
        };
        let failure = serve(client, &mut mqttsup, &mut pubs, board, &topics, deadline).await;
        if dropped.count() != dropped_seen {
            dropped_seen = dropped.count();
            let line = format!(
                "dropped an MQTT packet of {} bytes from the broker: over the {} bytes this device accepts ({dropped_seen} so far)",
                dropped.last_len(),
                session::MAX_INCOMING_PACKET
            );
            board.console(&line);
            pubs.log(line);
        }
        let failure = match failure {
            Ok(Some(cmd)) => {
                handle_command(cmd, &mut pubs, board, store, profile, &topics, &mut updater).await;
                None
            }
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if let Some(e) = failure {
            session = None;
            profile.online(false, None);
            end_session(
                &mut mqttsup,
                &mut retry_at,
                store,
                board,
                &mut rng,
                &mut pubs,
                &e.0,
            )
            .await;
        }
    }
}

/// A command that arrived and passed the retained-flag check.
struct Command {
    leaf: String,
    payload: Vec<u8>,
}

/// One turn of an established session: keepalive, drain the queue, then wait for a packet
/// until `deadline`. Returns a command to handle, or the error that ended the session.
async fn serve<T, B>(
    client: &mut MqttClient<'_, T>,
    mqttsup: &mut MqttSupervisor,
    pubs: &mut Publications,
    board: &mut B,
    topics: &Topics,
    deadline: Millis,
) -> Result<Option<Command>, session::SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
    B: Board,
{
    let timeout = |what: &str| session::SessionError(format!("{what} timed out"));
    match mqttsup.keepalive(now_ms()) {
        Keepalive::Dead => return Err(session::SessionError("no PINGRESP: broker silent".into())),
        Keepalive::SendPing => {
            guarded(board, IO_TIMEOUT, session::ping(client))
                .await
                .ok_or_else(|| timeout("ping"))??;
            mqttsup.ping_sent(now_ms());
        }
        Keepalive::Idle => {}
    }
    while let Some(msg) = pubs.pop() {
        let topic = topics.stat(&msg.item);
        let sent = guarded(
            board,
            IO_TIMEOUT,
            session::publish(client, &topic, &msg.payload, msg.retain),
        )
        .await;
        match sent {
            Some(Ok(())) => {
                mqttsup.sent(now_ms());
                board.console(&format!("pub {topic} {}", msg.payload));
            }
            other => {
                pubs.unpop(msg);
                return Err(match other {
                    Some(Err(e)) => e,
                    _ => timeout("publish"),
                });
            }
        }
    }
    let deadline = deadline
        .min(mqttsup.next_keepalive_deadline())
        .max(now_ms());
    let header = match select(
        session::wait_header(client),
        Timer::at(Instant::from_millis(deadline)),
    )
    .await
    {
        Either::First(header) => header?,
        Either::Second(()) => return Ok(None),
    };
    let incoming = guarded(board, IO_TIMEOUT, session::read_body(client, header))
        .await
        .ok_or_else(|| timeout("packet body"))??;
    let now = now_ms();
    match incoming {
        Incoming::Pong => {
            mqttsup.pong(now);
            Ok(None)
        }
        Incoming::Other => {
            mqttsup.received(now);
            Ok(None)
        }
        Incoming::Message {
            topic,
            payload,
            retained,
        } => {
            mqttsup.received(now);
            let Some(leaf) = topics.command_leaf(&topic) else {
                board.console(&format!("message on unexpected topic {topic}"));
                return Ok(None);
            };
            if retained {
                // A retained command would run again at every connection: never obey it.
                let line = format!("ignored retained command on {topic}");
                board.console(&line);
                pubs.log(line);
                return Ok(None);
            }
            Ok(Some(Command {
                leaf: leaf.into(),
                payload,
            }))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle_command<B: Board, F: NorFlash>(
    cmd: Command,
    pubs: &mut Publications,
    board: &mut B,
    store: &SharedStore<F>,
    profile: &mut dyn DynProfile,
    topics: &Topics,
    updater: &mut Updater,
) {
    let now = now_ms();
    let leaf = cmd.leaf.as_str();
    // Signed envelopes and image chunks are binary.
    let handled = updater
        .command(
            leaf,
            &cmd.payload,
            board,
            store,
            pubs,
            topics.name(),
            profile.name(),
            now,
        )
        .await;
    let (payload, signed) = match handled {
        Handled::Yes => return,
        Handled::Signed(text) => (text, true),
        Handled::No => match String::from_utf8(cmd.payload) {
            Ok(p) => (p, false),
            Err(_) => {
                pubs.log(format!("ignored {leaf}: payload is not UTF-8"));
                return;
            }
        },
    };
    board.console(&format!("command {leaf} {payload:?}"));
    let payload = payload.trim();
    if signed {
        return ota_command(
            payload,
            true,
            pubs,
            board,
            store,
            profile.name(),
            topics,
            updater,
        )
        .await;
    }
    match leaf {
        "Refresh" => {
            if !payload.is_empty() {
                pubs.refresh();
            }
        }
        "OTA" => {
            ota_command(
                payload,
                false,
                pubs,
                board,
                store,
                profile.name(),
                topics,
                updater,
            )
            .await
        }
        leaf => {
            if !profile.command(leaf, payload, pubs).await {
                pubs.log(format!("unknown command {leaf}"));
            }
        }
    }
}

/// The reference's `cmnd/<name>/OTA` commands, plain or signed (`cmnd/<name>/Signed`). With
/// an `otakey`, the ones that change the device must be signed; the others answer anyone.
/// Answers go to `stat/<name>/OTA` (and the log).
#[allow(clippy::too_many_arguments)]
async fn ota_command<B: Board, F: NorFlash>(
    command: &str,
    signed: bool,
    pubs: &mut Publications,
    board: &mut B,
    store: &SharedStore<F>,
    appliance: &str,
    topics: &Topics,
    updater: &mut Updater,
) {
    let now = now_ms();
    let changes = matches!(command, "reboot" | "resetstats" | "normal");
    if changes && !signed && updater.has_key() {
        updater.answer(
            pubs,
            now,
            format!(
                "{command} refused: it changes the device, so it must be signed (hearth cmd --key)"
            ),
        );
        return;
    }
    match command {
        "reboot" => {
            updater.answer(pubs, now, String::from("rebooting"));
            updater.reboot_soon(RebootReason::Command, now);
        }
        "normal" => {
            let _ = crate::update::clear_faults(store).await;
            updater.answer(pubs, now, String::from("leaving safe mode: rebooting"));
            updater.reboot_soon(RebootReason::SafeModeExit, now);
        }
        "stats" => {
            let net = counter(store, keys::CONNLOST).await;
            let mqtt = counter(store, keys::MQTTLOST).await;
            let boots = counter(store, keys::BOOT_COUNT).await;
            let faults = counter(store, keys::FAULTY_BOOTS).await;
            updater.answer(
                pubs,
                now,
                format!("connlost events net {net} mqtt {mqtt} boots {boots} faults {faults}"),
            );
        }
        "resetstats" => {
            let a = store.lock().await.set_u32(keys::CONNLOST, 0).await;
            let b = store.lock().await.set_u32(keys::MQTTLOST, 0).await;
            let text = match (a, b) {
                (Ok(()), Ok(())) => String::from("stats reset"),
                (Err(e), _) | (_, Err(e)) => format!("stats reset failed: {e}"),
            };
            updater.answer(pubs, now, text);
        }
        "getversion" => updater.answer(
            pubs,
            now,
            format!(
                "hearth {} chip {} profile {} device {}",
                board.version(),
                board.chip(),
                appliance,
                topics.name()
            ),
        ),
        "mark" => {
            let text = match crate::update::anti_replay_mark(store).await {
                Ok(ms) => format!("anti-replay mark {ms}"),
                Err(e) => format!("anti-replay mark unreadable: {e}"),
            };
            updater.answer(pubs, now, text);
        }
        "reason" => {
            let text = format!("last reboot: {}", updater.boot_reason());
            updater.answer(pubs, now, text);
        }
        "panic" => {
            let text = match board.last_panic() {
                Some(p) => format!("last panic: {p}"),
                None => String::from("no panic recorded"),
            };
            updater.answer(pubs, now, text);
        }
        "partitions" => {
            let text = updater.partitions(board).await;
            updater.answer(pubs, now, text);
        }
        "keepversion" => updater.answer(
            pubs,
            now,
            String::from("keepversion: not needed, a new firmware confirms itself once healthy"),
        ),
        other => updater.answer(pubs, now, format!("unsupported OTA command {other:?}")),
    }
}

async fn end_session<B: Board, F: NorFlash>(
    mqttsup: &mut MqttSupervisor,
    retry_at: &mut Millis,
    store: &SharedStore<F>,
    board: &mut B,
    rng: &mut SplitMix64,
    pubs: &mut Publications,
    why: &str,
) {
    board.console(&format!("mqtt lost: {why}"));
    board.status(DeviceStatus::NoBroker);
    let n = bump(store, keys::MQTTLOST, board).await;
    pubs.log(format!("mqtt lost: {why} (mqttlost {n})"));
    match mqttsup.failed(now_ms(), rng) {
        RetryDecision::RetryAt(t) => *retry_at = t,
        RetryDecision::Reboot => reboot(board, store, RebootReason::Mqtt).await,
    }
}

/// Run `fut` for at most `limit` ms inside a permitted blocking window of the watchdog.
/// The entities every appliance has: uptime and the reason of the last boot.
fn core_entities() -> alloc::vec::Vec<Entity> {
    alloc::vec![
        Entity::sensor(
            "Uptime",
            "Uptime",
            Some("duration"),
            Some("min"),
            Some("measurement")
        ),
        Entity::diagnostic("RebootReason", "Last reboot reason"),
    ]
}

/// Publish the Home Assistant discovery configs (retained) of the core items and the profile's
/// entities, each bounded by the I/O timeout. Returns how many were published.
async fn announce<T, B>(
    client: &mut MqttClient<'_, T>,
    board: &mut B,
    profile: &dyn DynProfile,
    topics: &Topics,
) -> Result<usize, session::SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
    B: Board,
{
    let id: String = board
        .unique_id()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let device = DeviceInfo {
        name: String::from(topics.name()),
        id,
        model: String::from(profile.name()),
        version: String::from(board.version()),
    };
    let mut entities = core_entities();
    entities.extend(profile.entities());
    for e in &entities {
        let topic = discovery::config_topic(&device, e);
        let payload = discovery::config_payload(&device, e, topics);
        match guarded(
            board,
            IO_TIMEOUT,
            session::publish(client, &topic, &payload, true),
        )
        .await
        {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(err),
            None => {
                return Err(session::SessionError(String::from(
                    "discovery publish timed out",
                )))
            }
        }
    }
    Ok(entities.len())
}

async fn guarded<W: Watchdog, T>(
    board: &mut W,
    limit: Millis,
    fut: impl Future<Output = T>,
) -> Option<T> {
    board.may_block(now_ms());
    let out = with_timeout(Duration::from_millis(limit), fut).await.ok();
    board.may_block_exit(now_ms());
    out
}

async fn bump<C: Console, F: NorFlash>(
    store: &SharedStore<F>,
    key: keys::Key,
    board: &mut C,
) -> u32 {
    match store.lock().await.incr_u32(key).await {
        Ok(n) => n,
        Err(e) => {
            board.console(&format!("storage: counter update failed: {e}"));
            0
        }
    }
}

/// A counter's value; missing or unreadable counts as 0 (the read error is not worth a
/// diagnostic of its own: the counter is informational).
pub(crate) async fn counter<F: NorFlash>(store: &SharedStore<F>, key: keys::Key) -> u32 {
    store
        .lock()
        .await
        .get_u32(key)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Store the reason, then reset. A failed store is reported but does not stop the reset.
pub(crate) async fn reboot<R: Reset, F: NorFlash>(
    board: &mut R,
    store: &SharedStore<F>,
    reason: RebootReason,
) -> ! {
    board.console(&format!("rebooting: {}", reason.as_str()));
    if let Err(e) = store
        .lock()
        .await
        .set_bytes(keys::REBOOT_REASON, reason.as_str().as_bytes())
        .await
    {
        board.console(&format!("storage: could not record the reboot reason: {e}"));
    }
    board.reset()
}

async fn boot_report<R: Reset, F: NorFlash>(board: &mut R, store: &SharedStore<F>) -> String {
    let hardware = board.hardware_reset();
    let mut buf = [0u8; 64];
    let stored = match store
        .lock()
        .await
        .get_bytes(keys::REBOOT_REASON, &mut buf)
        .await
    {
        Ok(Some(n)) => core::str::from_utf8(&buf[..n]).ok().map(String::from),
        _ => None,
    };
    let reason = String::from(boot_reason(hardware, stored.as_deref()));
    if stored.is_some() {
        if let Err(e) = store.lock().await.remove(keys::REBOOT_REASON).await {
            board.console(&format!("storage: could not clear the reboot reason: {e}"));
        }
    }
    let count = bump(store, keys::BOOT_COUNT, board).await;
    board.console(&format!("boot #{count}, reason: {reason}"));
    if hardware == HardwareReset::Watchdog {
        board.console("the previous run was reset by the watchdog");
    }
    reason
}
