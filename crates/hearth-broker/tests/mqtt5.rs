//! End-to-end tests of the embedded broker with `rust-mqtt` 0.6 (MQTT 5) as the
//! client: routing, QoS, retain, last will, keep-alive, the in-process feed,
//! start-up errors and shutdown.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZero;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hearth_broker::{BrokerError, EmbeddedBroker, Message};
use rust_mqtt::client::event::Event;
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::QoS;
use support::{
    connect, disconnect, next_event, next_publish, publish, subscribe, try_connect, Received, Will,
    IO_TIMEOUT,
};

fn start() -> EmbeddedBroker {
    EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0))).expect("broker starts")
}

fn received(topic: &str, payload: &str, retain: bool, qos: QoS) -> Received {
    Received {
        topic: topic.into(),
        payload: payload.into(),
        retain,
        qos,
    }
}

fn message(topic: &str, payload: &str, retain: bool) -> Message {
    Message {
        topic: topic.into(),
        payload: payload.into(),
        retain,
    }
}

fn next_message(feed: &Receiver<Message>) -> Message {
    feed.recv_timeout(IO_TIMEOUT)
        .expect("subscribe_all feed delivers within the timeout")
}

#[test]
fn start_resolves_port_zero_to_a_listening_port() {
    let a = start();
    let b = start();
    assert_ne!(a.local_addr().port(), 0);
    assert_ne!(a.local_addr().port(), b.local_addr().port());
    TcpStream::connect(a.local_addr()).expect("listener accepts");
}

#[test]
fn publish_reaches_subscribers_at_qos_0_and_1() {
    let broker = start();
    let addr = broker.local_addr();
    let mut sub0 = connect(addr, "sub0", None);
    let mut sub1 = connect(addr, "sub1", None);
    subscribe(&mut sub0, "cmnd/+/POWER", QoS::AtMostOnce);
    subscribe(&mut sub1, "cmnd/+/POWER", QoS::AtLeastOnce);

    let mut publisher = connect(addr, "pub", None);
    publish(
        &mut publisher,
        "cmnd/lamp/POWER",
        b"ON",
        QoS::AtMostOnce,
        false,
    );
    publish(
        &mut publisher,
        "cmnd/lamp/POWER",
        b"OFF",
        QoS::AtLeastOnce,
        false,
    );

    let at_most_once = QoS::AtMostOnce;
    assert_eq!(
        next_publish(&mut sub0, "QoS 0 publish"),
        received("cmnd/lamp/POWER", "ON", false, at_most_once)
    );
    assert_eq!(
        next_publish(&mut sub0, "QoS 1 publish, downgraded"),
        received("cmnd/lamp/POWER", "OFF", false, at_most_once)
    );
    // rumqttd 0.20 forwards with the subscription's QoS, so the QoS 0 publish
    // reaches a QoS 1 subscriber as QoS 1 (MQTT 5 says min(0, 1) = 0).
    assert_eq!(
        next_publish(&mut sub1, "QoS 0 publish"),
        received("cmnd/lamp/POWER", "ON", false, QoS::AtLeastOnce)
    );
    assert_eq!(
        next_publish(&mut sub1, "QoS 1 publish"),
        received("cmnd/lamp/POWER", "OFF", false, QoS::AtLeastOnce)
    );
    disconnect(publisher);
}

#[test]
fn retained_message_reaches_late_subscribers() {
    let broker = start();
    let addr = broker.local_addr();

    // Nobody is subscribed yet: the broker must keep the publisher connected.
    let mut device = connect(addr, "plug", None);
    publish(
        &mut device,
        "stat/plug/POWER",
        b"ON",
        QoS::AtLeastOnce,
        true,
    );
    block_on_ping(&mut device);

    let mut late = connect(addr, "late", None);
    subscribe(&mut late, "stat/+/POWER", QoS::AtLeastOnce);
    assert_eq!(
        next_publish(&mut late, "retained replay"),
        received("stat/plug/POWER", "ON", true, QoS::AtLeastOnce)
    );

    // Live messages arrive without the retain flag, even when published retained.
    publish(
        &mut device,
        "stat/plug/POWER",
        b"OFF",
        QoS::AtMostOnce,
        true,
    );
    assert_eq!(
        next_publish(&mut late, "live publish"),
        received("stat/plug/POWER", "OFF", false, QoS::AtLeastOnce)
    );

    // The newest retained message replaced the old one.
    let mut later = connect(addr, "later", None);
    subscribe(&mut later, "stat/plug/POWER", QoS::AtMostOnce);
    assert_eq!(
        next_publish(&mut later, "replaced retained message"),
        received("stat/plug/POWER", "OFF", true, QoS::AtMostOnce)
    );

    // An empty retained payload clears it: the next subscriber gets only the
    // marker published after it subscribed.
    publish(&mut device, "stat/plug/POWER", b"", QoS::AtLeastOnce, true);
    let mut last = connect(addr, "last", None);
    subscribe(&mut last, "stat/plug/#", QoS::AtMostOnce);
    publish(
        &mut device,
        "stat/plug/marker",
        b"m",
        QoS::AtMostOnce,
        false,
    );
    assert_eq!(
        next_publish(&mut last, "marker after cleared retained message"),
        received("stat/plug/marker", "m", false, QoS::AtMostOnce)
    );
}

fn block_on_ping(client: &mut support::Mqtt) {
    embassy_futures::block_on(client.ping()).expect("PINGREQ sent");
    match next_event(client, "PINGRESP") {
        Event::Pingresp => {}
        other => panic!("expected PINGRESP, got {other:?}"),
    }
}

#[test]
fn pingreq_gets_pingresp() {
    let broker = start();
    let mut client = connect(broker.local_addr(), "pinger", None);
    block_on_ping(&mut client);
    block_on_ping(&mut client);
    disconnect(client);
}

#[test]
fn keep_alive_zero_is_refused_by_rumqttd() {
    let broker = start();
    let result = try_connect(broker.local_addr(), "forever", KeepAlive::Infinite, None);
    // rumqttd 0.20 closes the socket without a CONNACK.
    let error = result.expect_err("keep-alive 0 is refused");
    assert!(error.starts_with("MQTT connect: Network("), "{error}");
}

#[test]
fn will_is_published_when_keep_alive_expires() {
    let broker = start();
    let addr = broker.local_addr();
    let mut watcher = connect(addr, "watcher", None);
    subscribe(&mut watcher, "tele/+/LWT", QoS::AtMostOnce);

    // A device that goes silent (power cut) but whose socket stays open.
    let keep_alive = KeepAlive::Seconds(NonZero::new(1).expect("non-zero"));
    let will = Will {
        topic: "tele/dev5/LWT",
        payload: "Offline",
    };
    let silent = try_connect(addr, "dev5", keep_alive, Some(will)).expect("connects");
    let started = Instant::now();
    // rumqttd waits 1.5 x keep-alive for a packet, then drops the client.
    assert_eq!(
        next_publish(&mut watcher, "will after keep-alive timeout"),
        received("tele/dev5/LWT", "Offline", false, QoS::AtMostOnce)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "will after {waited:?}"
    );
    drop(silent);
}

#[test]
fn will_is_published_when_the_socket_drops_without_disconnect() {
    let broker = start();
    let addr = broker.local_addr();
    let mut watcher = connect(addr, "watcher", None);
    subscribe(&mut watcher, "tele/+/LWT", QoS::AtLeastOnce);

    let will = Will {
        topic: "tele/dev1/LWT",
        payload: "Offline",
    };
    let mut device = connect(addr, "dev1", Some(will));
    publish(
        &mut device,
        "tele/dev1/LWT",
        b"Online",
        QoS::AtLeastOnce,
        true,
    );
    assert_eq!(
        next_publish(&mut watcher, "Online"),
        received("tele/dev1/LWT", "Online", false, QoS::AtLeastOnce)
    );

    // Closing the TCP connection without DISCONNECT.
    drop(device);
    assert_eq!(
        next_publish(&mut watcher, "will"),
        received("tele/dev1/LWT", "Offline", false, QoS::AtLeastOnce)
    );

    // The will was retained (it replaced "Online").
    let mut late = connect(addr, "late", None);
    subscribe(&mut late, "tele/dev1/LWT", QoS::AtLeastOnce);
    assert_eq!(
        next_publish(&mut late, "retained will"),
        received("tele/dev1/LWT", "Offline", true, QoS::AtLeastOnce)
    );
}

#[test]
fn clean_disconnect_discards_the_will() {
    let broker = start();
    let addr = broker.local_addr();
    let mut watcher = connect(addr, "watcher", None);
    subscribe(&mut watcher, "tele/dev2/#", QoS::AtMostOnce);

    let will = Will {
        topic: "tele/dev2/LWT",
        payload: "Offline",
    };
    let device = connect(addr, "dev2", Some(will));
    disconnect(device);
    // Give a wrongly published will time to be routed before the marker.
    thread::sleep(Duration::from_millis(300));

    let mut other = connect(addr, "other", None);
    publish(&mut other, "tele/dev2/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut watcher, "marker, not the will"),
        received("tele/dev2/marker", "m", false, QoS::AtMostOnce)
    );
}

#[test]
fn subscribe_all_sees_retained_then_live_messages() {
    let broker = start();
    let addr = broker.local_addr();
    let mut device = connect(addr, "dev", None);
    publish(&mut device, "tele/dev/STATE", b"{}", QoS::AtLeastOnce, true);

    let feed = broker.subscribe_all().expect("feed opens");
    assert_eq!(next_message(&feed), message("tele/dev/STATE", "{}", true));

    publish(&mut device, "stat/dev/POWER", b"ON", QoS::AtMostOnce, false);
    publish(
        &mut device,
        "tele/dev/STATE",
        b"{\"a\":1}",
        QoS::AtLeastOnce,
        true,
    );
    assert_eq!(next_message(&feed), message("stat/dev/POWER", "ON", false));
    assert_eq!(
        next_message(&feed),
        message("tele/dev/STATE", "{\"a\":1}", false)
    );

    // A second feed is independent and replays the current retained state.
    let second = broker.subscribe_all().expect("second feed opens");
    assert_eq!(
        next_message(&second),
        message("tele/dev/STATE", "{\"a\":1}", true)
    );
    disconnect(device);
}

#[test]
fn subscribe_all_sees_a_will() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    let device = connect(
        addr,
        "dev4",
        Some(Will {
            topic: "tele/dev4/LWT",
            payload: "Offline",
        }),
    );
    drop(device);
    assert_eq!(
        next_message(&feed),
        message("tele/dev4/LWT", "Offline", false)
    );
}

#[test]
fn start_on_a_busy_port_is_a_clear_error() {
    let taken = TcpListener::bind(("127.0.0.1", 0)).expect("bind a port");
    let addr = taken.local_addr().expect("local addr");
    let error = EmbeddedBroker::start(addr).expect_err("the port is taken");
    assert!(
        matches!(error, BrokerError::AddrInUse { addr: a } if a == addr),
        "unexpected error: {error:?}"
    );
    assert!(error.to_string().contains("address already in use"));

    // The same holds against another embedded broker.
    let broker = start();
    let error = EmbeddedBroker::start(broker.local_addr()).expect_err("the port is taken");
    assert!(matches!(error, BrokerError::AddrInUse { .. }), "{error:?}");
}

#[test]
fn shutdown_closes_connections_feeds_and_the_port() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    let mut client = connect(addr, "client", None);

    broker.shutdown();

    assert!(
        matches!(
            feed.recv_timeout(IO_TIMEOUT),
            Err(RecvTimeoutError::Disconnected)
        ),
        "the feed ends when the broker stops"
    );
    let poll = embassy_futures::block_on(client.poll());
    assert!(poll.is_err(), "client connection closed: {poll:?}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens on {addr} any more"
    );

    // The port is free again for a new broker.
    let again = EmbeddedBroker::start(addr).expect("restart on the same port");
    let mut client = connect(again.local_addr(), "client", None);
    block_on_ping(&mut client);
}

/// Documents a rumqttd 0.20 defect: when a client id connects while its
/// previous connection is still open (a device reconnecting over a half-open
/// socket), the old connection's will is published, but it is taken from the
/// router's per-client-id slot that the *new* connection has just filled. The
/// new connection then has no will: when it drops, nothing is published.
#[test]
fn session_takeover_consumes_the_new_connections_will() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    let will = || {
        Some(Will {
            topic: "tele/dev3/LWT",
            payload: "Offline",
        })
    };

    let mut first = connect(addr, "dev3", will());
    publish(
        &mut first,
        "tele/dev3/LWT",
        b"Online",
        QoS::AtLeastOnce,
        true,
    );
    assert_eq!(
        next_message(&feed),
        message("tele/dev3/LWT", "Online", false)
    );

    // Same client id while `first` is still connected: rumqttd closes `first`
    // (without a DISCONNECT packet) and publishes the will.
    let mut second = connect(addr, "dev3", will());
    assert_eq!(
        next_message(&feed),
        message("tele/dev3/LWT", "Offline", false)
    );
    let closed = embassy_futures::block_on(first.poll());
    assert!(closed.is_err(), "first connection closed: {closed:?}");

    publish(
        &mut second,
        "tele/dev3/LWT",
        b"Online",
        QoS::AtLeastOnce,
        true,
    );
    assert_eq!(
        next_message(&feed),
        message("tele/dev3/LWT", "Online", false)
    );

    // The second connection drops without DISCONNECT, yet no will follows.
    drop(second);
    thread::sleep(Duration::from_millis(300));
    let mut other = connect(addr, "other", None);
    publish(&mut other, "tele/dev3/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(next_message(&feed), message("tele/dev3/marker", "m", false));

    // So the retained state still says the device is online.
    let late = broker.subscribe_all().expect("second feed opens");
    assert_eq!(
        next_message(&late),
        message("tele/dev3/LWT", "Online", true)
    );
}
