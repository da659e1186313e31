//! The device's async main: the boot report, then the I/O of the loop that
//! [`machine::Machine`] decides (heartbeat, network, profile work, updates, the MQTT session,
//! commands). The machine holds the rules and the state; this driver owns the network, the
//! client, the store, the updater and the clock, and performs each action the machine asks
//! for. Every await that can take longer than one loop period is bounded by a timeout and
//! announced to the watchdog as a permitted blocking window.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use core::future::Future;

use embassy_futures::select::{select, Either};
use embassy_time::{with_timeout, Duration, Instant, Timer};
use embedded_storage_async::nor_flash::NorFlash;
use hearth_core::discovery::{self, DeviceInfo, Entity};
use hearth_core::publish::Publications;
use hearth_core::reboot::{boot_reason, HardwareReset, RebootReason};
use hearth_core::sntp::{self, Sntp, Utc};
use hearth_core::topics::Topics;
use hearth_core::{Millis, SECOND};
use hearth_storage::keys;
use rust_mqtt::buffer::AllocBuffer;

use crate::bounded::{Bounded, Dropped};
use crate::diagnostics::Diagnostics;
use crate::machine::{Action, Command, Counter, Machine, Route};
use crate::session::{self, Incoming, MqttClient};
use crate::settings::Settings;
use crate::update::{BootMode, ConfigRules, Updater};
use hearth_platform::now_ms;
use hearth_platform::store::SharedStore;
use hearth_platform::{Board, Console, DeviceStatus, NetError, Network, Reset, Watchdog};
use hearth_profile::DynProfile;

/// Bound on one publish, ping or packet-body read.
const IO_TIMEOUT: Millis = 5 * SECOND;
/// Bound on one round of the profile's hardware work.
const WORK_TIMEOUT: Millis = 5 * SECOND;
/// Bound on the link check that confirms a stuck link before re-associating.
const PROBE_TIMEOUT: Millis = 3 * SECOND;
/// Why a session action found no client (the machine and the driver disagree on whether a
/// session is up): the session is ended, so the machine backs off and reconnects instead of
/// asking for the same action again at once.
const NO_CLIENT: &str = "no client for the session";

/// Run the device forever. Returns only by resetting the board.
///
/// The appliance is a `&mut dyn DynProfile` (any [`Profile`](hearth_profile::Profile)
/// coerces to it: pass `&mut profile`), so the runtime's code is compiled once per image (per
/// platform), not once per appliance. `rules` is what a pushed config must pass before it is
/// stored (`hearth_device::CONFIG_RULES`: every rule of the device's chip and appliances).
pub async fn run<N, B, F>(
    settings: Settings,
    net: &mut N,
    board: &mut B,
    store: &SharedStore<F>,
    profile: &mut dyn DynProfile,
    rules: ConfigRules,
) -> !
where
    N: Network,
    B: Board,
    F: NorFlash,
{
    let boot = now_ms();
    board.heartbeat(boot);
    board.status(DeviceStatus::Booting);
    let seed = board.seed();
    let topics = Topics::new(&settings.name);

    // Boot report: why we restarted, and how often.
    let reason = boot_report(board, store).await;
    let mut m = Machine::new(&settings, boot, &reason, seed);
    let safe_mode = matches!(settings.boot_mode, BootMode::Safe { .. });
    let mut updater = Updater::new(
        settings.update.clone(),
        rules,
        safe_mode,
        m.pubs_mut(),
        boot,
    );
    updater
        .start(board, store, m.pubs_mut(), &reason, boot)
        .await;
    profile.register(m.pubs_mut(), boot);
    let slot = board.slots().map(|s| s.running());
    let mut diag = Diagnostics::new(m.pubs_mut(), boot, board.version(), slot, safe_mode);
    let mut sntp = Sntp::new(settings.ntp_servers.clone(), boot);

    let client_id = {
        let id = board.unique_id();
        let mut s = settings.name.clone();
        for b in id {
            s.push_str(&format!("{b:02x}"));
        }
        s
    };
    let mut session: Option<MqttClient<'static, Bounded<N::Socket>>> = None;
    // What the session's stream threw away (packets over the bound).
    let dropped = Rc::new(Dropped::default());

    loop {
        let now = now_ms();
        if diag.due(now) {
            let mut sample = Diagnostics::sample(net, board);
            sample.connlost = counter(store, keys::CONNLOST).await;
            sample.mqttlost = counter(store, keys::MQTTLOST).await;
            diag.offer(m.pubs_mut(), now, &sample);
        }
        // Only once online: the first connection is never held up by a time server.
        if sntp.due(now) && m.online() && net.link_up() {
            sync_clock(&mut sntp, net, board, store, &mut updater).await;
        }
        match m.poll(now, profile, board) {
            Action::Heartbeat => board.heartbeat(now),
            Action::Sleep(until) => Timer::at(Instant::from_millis(until)).await,
            Action::Turn => {
                board.heartbeat(now);
                let up = net.link_up();
                m.link(now, up, board);
            }
            Action::NetUp => net.up().await,
            Action::NetDown => net.down().await,
            Action::Count(counter) => {
                let key = match counter {
                    Counter::MqttLost(_) => keys::MQTTLOST,
                    Counter::NetworkLost | Counter::LinkStuck => keys::CONNLOST,
                };
                let n = bump(store, key, board).await;
                m.counted(&counter, n);
            }
            Action::Reboot(reason) => reboot(board, store, reason).await,
            Action::Work => {
                let done = guarded(board, WORK_TIMEOUT, profile.work(now, m.pubs_mut())).await;
                m.work_done(done.is_none());
            }
            Action::UpdaterTick => {
                let online = m.online();
                updater
                    .tick(board, store, m.pubs_mut(), now - boot, online, now)
                    .await;
            }
            Action::Offline => {
                session = None;
                profile.online(false, None);
            }
            Action::Connect => {
                // AllocBuffer is a zero-sized handle to the heap: leaking a box of it
                // allocates nothing, and gives each client the 'static buffer borrow rust-mqtt
                // wants.
                let mut client = MqttClient::new(Box::leak(Box::new(AllocBuffer)));
                // Did anything answer this attempt? A TCP connection (or a refusal) proves
                // that the link carries packets; only attempts without any answer can mean a
                // stuck link.
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
                                // A TLS failure says what the certificate check found; it
                                // counts as a failed attempt like any other (back-off, reboot
                                // policy).
                                NetError::Tls(t) => {
                                    format!("tls: {}", t.explain(&settings.broker_host))
                                }
                                other => format!("tcp: {other}"),
                            })
                        })?;
                    answered.set(true);
                    let socket =
                        Bounded::new(socket, session::MAX_INCOMING_PACKET, dropped.clone());
                    session::connect(&mut client, socket, &settings, &topics, &client_id).await
                };
                match guarded(board, settings.mqtt.connack_timeout, attempt).await {
                    Some(Ok(())) => {
                        m.connected(now_ms(), board);
                        profile.online(true, net.address());
                        // The address and the signal are known now: show them at once.
                        diag.sample_soon();
                        session = Some(client);
                    }
                    outcome => {
                        let why = match outcome {
                            Some(Err(e)) => e.0,
                            _ => String::from("timed out"),
                        };
                        m.connect_failed(now_ms(), &why, answered.get(), board);
                    }
                }
            }
            Action::Probe => {
                let answers = guarded(board, PROBE_TIMEOUT, net.probe())
                    .await
                    .unwrap_or(false);
                m.probed(now_ms(), answers, board);
            }
            Action::Announce => {
                let Some(client) = session.as_mut() else {
                    m.session_lost(now, NO_CLIENT, board);
                    continue;
                };
                let wireless = net.is_wireless();
                let signing = updater.has_key();
                let stale = m.take_stale();
                match announce(client, board, profile, &topics, wireless, signing, &stale).await {
                    Ok(n) => m.announced(now_ms(), n, board),
                    Err(e) => m.session_lost(now_ms(), &format!("discovery: {}", e.0), board),
                }
            }
            Action::Available => {
                let Some(client) = session.as_mut() else {
                    m.session_lost(now, NO_CLIENT, board);
                    continue;
                };
                let lwt = topics.lwt();
                let sent = session::publish(client, &lwt, hearth_core::topics::ONLINE, true);
                match guarded(board, IO_TIMEOUT, sent).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => m.session_lost(now_ms(), &e.0, board),
                    None => m.session_lost(now_ms(), "availability timed out", board),
                }
            }
            Action::Ping => {
                let Some(client) = session.as_mut() else {
                    m.session_lost(now, NO_CLIENT, board);
                    continue;
                };
                match guarded(board, IO_TIMEOUT, session::ping(client)).await {
                    Some(Ok(())) => m.ping_sent(now_ms()),
                    Some(Err(e)) => m.session_lost(now_ms(), &e.0, board),
                    None => m.session_lost(now_ms(), "ping timed out", board),
                }
            }
            Action::Publish { topic, msg } => {
                let Some(client) = session.as_mut() else {
                    m.publish_failed(now, msg, NO_CLIENT, board);
                    continue;
                };
                let sent = guarded(
                    board,
                    IO_TIMEOUT,
                    session::publish(client, &topic, &msg.payload, msg.retain),
                )
                .await;
                match sent {
                    Some(Ok(())) => m.published(now_ms(), &topic, &msg, board),
                    Some(Err(e)) => m.publish_failed(now_ms(), msg, &e.0, board),
                    None => m.publish_failed(now_ms(), msg, "publish timed out", board),
                }
            }
            Action::Receive(until) => {
                let Some(client) = session.as_mut() else {
                    m.session_lost(now, NO_CLIENT, board);
                    continue;
                };
                let got = receive(client, board, until).await;
                m.dropped(dropped.count(), dropped.last_len(), board);
                match got {
                    Ok(Some(incoming)) => m.received(now_ms(), incoming, board),
                    Ok(None) => {}
                    Err(e) => m.session_lost(now_ms(), &e.0, board),
                }
            }
            Action::Command(cmd) => {
                handle_command(cmd, &mut m, board, store, profile, &topics, &mut updater).await
            }
        }
    }
}

/// Wait for one packet until `until` and read it; `None` when nothing came.
async fn receive<T, W>(
    client: &mut MqttClient<'_, T>,
    board: &mut W,
    until: Millis,
) -> Result<Option<Incoming>, session::SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
    W: Watchdog,
{
    let header = match select(
        session::wait_header(client),
        Timer::at(Instant::from_millis(until)),
    )
    .await
    {
        Either::First(header) => header?,
        Either::Second(()) => return Ok(None),
    };
    match guarded(board, IO_TIMEOUT, session::read_body(client, header)).await {
        Some(incoming) => incoming.map(Some),
        None => Err(session::SessionError(String::from("packet body timed out"))),
    }
}

/// A command: the updater sees it first (signed envelopes and image chunks are binary),
/// then the machine routes it.
async fn handle_command<B: Board, F: NorFlash>(
    cmd: Command,
    m: &mut Machine,
    board: &mut B,
    store: &SharedStore<F>,
    profile: &mut dyn DynProfile,
    topics: &Topics,
    updater: &mut Updater,
) {
    let now = now_ms();
    let handled = updater
        .command(
            &cmd.leaf,
            &cmd.payload,
            board,
            store,
            m.pubs_mut(),
            topics.name(),
            profile.name(),
            now,
        )
        .await;
    match m.route(cmd, handled, board) {
        Route::Done => {}
        Route::Ota { command, signed } => {
            let pubs = m.pubs_mut();
            ota_command(
                &command,
                signed,
                pubs,
                board,
                store,
                profile.name(),
                topics,
                updater,
            )
            .await
        }
        Route::Appliance { leaf, payload } => {
            if !profile.command(&leaf, &payload, m.pubs_mut()).await {
                m.pubs_mut().log(format!("unknown command {leaf}"));
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
        "identify" => {
            let text = if board.identify(IDENTIFY_MS) {
                format!(
                    "identifying: the status LED blinks for {} s",
                    IDENTIFY_MS / SECOND
                )
            } else {
                String::from("identify: this device has no status LED (config key led)")
            };
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

/// How long `identify` blinks the status LED.
const IDENTIFY_MS: Millis = 10 * SECOND;

/// Home Assistant's buttons: identify (it changes nothing, so anyone may press it), and restart
/// only on a device without `otakey` (with one, `reboot` must be signed, which a button
/// cannot do).
fn buttons(signing: bool) -> alloc::vec::Vec<Entity> {
    let mut out = alloc::vec![Entity::button(
        "Identify",
        "Identify",
        "OTA",
        "identify",
        Some("identify")
    )];
    if !signing {
        out.push(Entity::button(
            "Restart",
            "Restart",
            "OTA",
            "reboot",
            Some("restart"),
        ));
    }
    out
}

/// The entities every appliance has: uptime, the reason of the last boot, and the firmware
/// (Home Assistant's `update` entity, fed by the updater's `Firmware` item).
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
        Entity::update("Firmware", "Firmware"),
    ]
}

/// Move the per-entity configs on `stale` (Home Assistant's [`discovery::MIGRATE`], then the
/// topic cleared), then publish the Home Assistant device config (retained) with the core
/// items and the profile's entities, each message bounded by the I/O timeout. Returns how many
/// entities the device config has.
async fn announce<T, B>(
    client: &mut MqttClient<'_, T>,
    board: &mut B,
    profile: &dyn DynProfile,
    topics: &Topics,
    wireless: bool,
    signing: bool,
    stale: &[String],
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
    entities.extend(crate::diagnostics::entities(
        wireless,
        board.heap().is_some(),
    ));
    entities.extend(buttons(signing));
    entities.extend(profile.entities());
    let topic = discovery::device_topic(&device);
    let payload = discovery::device_payload(&device, &entities, topics);
    let moves = stale.iter().flat_map(|t| {
        [
            (t.as_str(), discovery::MIGRATE, false),
            (t.as_str(), "", true),
        ]
    });
    for (topic, payload, retain) in moves.chain([(topic.as_str(), payload.as_str(), true)]) {
        match guarded(
            board,
            IO_TIMEOUT,
            session::publish(client, topic, payload, retain),
        )
        .await
        {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(err),
            None => {
                return Err(session::SessionError(format!(
                    "discovery publish on {topic} timed out"
                )))
            }
        }
    }
    Ok(entities.len())
}

/// Ask the next time server (SNTP) and, with a usable answer, set the wall clock everywhere it
/// is used: the log, TLS, the signed messages' issue times.
async fn sync_clock<N: Network, B: Board, F: NorFlash>(
    sntp: &mut Sntp,
    net: &mut N,
    board: &mut B,
    store: &SharedStore<F>,
    updater: &mut Updater,
) {
    let sent = now_ms();
    let before = sntp.clock();
    let ask = sntp.begin(sent, board.seed());
    let server = String::from(sntp.server());
    let mut answer = [0u8; 64];
    let got = guarded(
        board,
        sntp::TIMEOUT,
        net.exchange_udp(&ask.host, ask.port, &ask.packet, &mut answer),
    )
    .await;
    let received = now_ms();
    let why = match got {
        Some(Ok(n)) => {
            // The newest time the device already trusts: the last owner-signed issue time.
            let floor_s = crate::update::anti_replay_mark(store).await.unwrap_or(0) / 1000;
            match sntp.answered(&answer[..n.min(answer.len())], sent, received, floor_s) {
                Ok(clock) => {
                    let unix_ms = clock.unix_ms(received);
                    match before {
                        None => board
                            .console(&format!("clock: {} (from {server})", Utc(unix_ms / 1000))),
                        Some(old) => {
                            let drift = old.unix_ms(received).abs_diff(unix_ms);
                            if drift > SECOND {
                                board.console(&format!(
                                    "clock: corrected by {drift} ms to {} (from {server})",
                                    Utc(unix_ms / 1000)
                                ));
                            }
                        }
                    }
                    board.wall_clock(unix_ms);
                    net.wall_clock(unix_ms);
                    updater.set_clock(clock);
                    return;
                }
                Err(e) => e.to_string(),
            }
        }
        Some(Err(e)) => {
            sntp.failed(received);
            e.to_string()
        }
        None => {
            sntp.failed(received);
            String::from("no answer")
        }
    };
    let next = sntp.next_due().unwrap_or(received).saturating_sub(received) / SECOND;
    board.console(&format!("clock: {server}: {why}; next try in {next} s"));
}

/// Run `fut` for at most `limit` ms inside a permitted blocking window of the watchdog.
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
