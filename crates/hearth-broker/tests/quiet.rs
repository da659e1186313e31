//! The broker keeps rumqttd quiet for an application that logs through `log`
//! (e.g. env_logger): no record from rumqttd reaches the logger, even on the
//! paths where rumqttd logs errors (refused CONNECT, dropped sockets, wills).
//! Its own binary because it installs a process-wide logger.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use hearth_broker::{EmbeddedBroker, LOG_TARGET};
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::QoS;
use support::{connect, disconnect, next_publish, publish, subscribe, try_connect, Will};

struct Recorder;

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static FROM_RUMQTTD: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        TOTAL.fetch_add(1, Ordering::SeqCst);
        if record.target().starts_with(LOG_TARGET) {
            FROM_RUMQTTD.lock().expect("recorder lock").push(format!(
                "{}: {}",
                record.target(),
                record.args()
            ));
        }
    }

    fn flush(&self) {}
}

/// Emits a `tracing` event on a fresh thread (no scoped dispatcher there).
fn tracing_event_on_plain_thread() {
    thread::spawn(|| tracing::error!(target: "probe", "probe"))
        .join()
        .expect("probe thread");
}

#[test]
fn rumqttd_logs_nothing_through_log() {
    static RECORDER: Recorder = Recorder;
    log::set_logger(&RECORDER).expect("first logger in this binary");
    log::set_max_level(log::LevelFilter::Trace);

    // Control: before the broker exists, tracing events are bridged to `log`.
    tracing_event_on_plain_thread();
    assert_eq!(
        TOTAL.load(Ordering::SeqCst),
        1,
        "tracing -> log bridge active"
    );

    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("starts");
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed");
    let mut watcher = connect(addr, "watcher", None);
    subscribe(&mut watcher, "#", QoS::AtLeastOnce);
    let device = connect(
        addr,
        "dev",
        Some(Will {
            topic: "tele/dev/LWT",
            payload: "Offline",
        }),
    );
    drop(device);
    assert_eq!(next_publish(&mut watcher, "will").payload, b"Offline");
    assert!(try_connect(addr, "zero", KeepAlive::Infinite, None).is_err());
    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "a/b", b"x", QoS::AtLeastOnce, true);
    disconnect(publisher);
    drop(feed);
    broker.shutdown();

    let from_rumqttd = FROM_RUMQTTD.lock().expect("recorder lock").clone();
    assert!(
        from_rumqttd.is_empty(),
        "rumqttd reached the logger: {from_rumqttd:#?}"
    );

    // Documented side effect: with a scoped dispatcher in the process,
    // `tracing` no longer bridges events from other threads to `log`.
    let before = TOTAL.load(Ordering::SeqCst);
    tracing_event_on_plain_thread();
    assert_eq!(TOTAL.load(Ordering::SeqCst), before);
}
