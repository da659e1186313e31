//! End-to-end tests of the embedded broker with `rust-mqtt` 0.6 (MQTT 5) as the
//! client, and raw bytes where rust-mqtt cannot go (MQTT 3.1.1, bad packets):
//! routing, QoS, subscription options, retain, last will, keep-alive, session
//! takeover, limits, the in-process feed, start-up errors and shutdown.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::NonZero;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use hearth_broker::{BrokerError, EmbeddedBroker, Message};
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{DisconnectOptions, RetainHandling, SubscriptionOptions};
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{QoS, ReasonCode};
use support::raw::{self, Raw};
use support::{
    connect, disconnect, disconnect_with, next_event, next_publish, publish, subscribe,
    subscribe_with, try_connect, unsubscribe, Received, Will, IO_TIMEOUT,
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
    // Forwarded at min(publish QoS, subscription QoS): QoS 0 stays QoS 0.
    assert_eq!(
        next_publish(&mut sub1, "QoS 0 publish"),
        received("cmnd/lamp/POWER", "ON", false, at_most_once)
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
        received("stat/plug/POWER", "OFF", false, QoS::AtMostOnce)
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
fn keep_alive_zero_is_accepted_and_never_times_out() {
    let broker = start();
    let addr = broker.local_addr();
    let mut forever = try_connect(addr, "forever", KeepAlive::Infinite, None)
        .expect("keep-alive 0 (no limit) is accepted");
    subscribe(&mut forever, "a/#", QoS::AtMostOnce);
    // Silent for longer than any keep-alive the tests use elsewhere.
    thread::sleep(Duration::from_millis(1600));
    let mut other = connect(addr, "other", None);
    publish(&mut other, "a/b", b"still here", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut forever, "publish after a long silence"),
        received("a/b", "still here", false, QoS::AtMostOnce)
    );
    block_on_ping(&mut forever);
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
    // The broker waits 1.5 x keep-alive for a packet, then drops the client.
    assert_eq!(
        next_publish(&mut watcher, "will after keep-alive timeout"),
        received("tele/dev5/LWT", "Offline", false, QoS::AtMostOnce)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_millis(3000),
        "will after {waited:?}"
    );
    let mut silent = silent;
    let closed = embassy_futures::block_on(silent.poll());
    assert!(closed.is_err(), "silent connection closed: {closed:?}");
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

    // The port is free again: plain bind, then a new broker.
    drop(TcpListener::bind(addr).expect("the port is free after shutdown"));
    let again = EmbeddedBroker::start(addr).expect("restart on the same port");
    let mut client = connect(again.local_addr(), "client", None);
    block_on_ping(&mut client);
}

/// When a client id connects while its previous connection is still open (a
/// device reconnecting over a half-open socket), the old connection is closed
/// and **its** will is published once, before the new connection's CONNACK;
/// the new connection keeps its own will, published when it drops.
#[test]
fn session_takeover_publishes_the_old_will_first_and_keeps_the_new_one() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    let will = |payload| {
        Some(Will {
            topic: "tele/dev3/LWT",
            payload,
        })
    };

    let mut first = connect(addr, "dev3", will("Offline-1"));
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

    // Same client id while `first` is still connected. By the time the new
    // CONNACK has arrived, the old will has been routed already.
    let mut second = connect(addr, "dev3", will("Offline-2"));
    assert_eq!(
        feed.try_recv()
            .expect("old will routed before the new CONNACK"),
        message("tele/dev3/LWT", "Offline-1", false)
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

    // The second connection drops without DISCONNECT: its own will follows,
    // and the old will is not published again.
    drop(second);
    assert_eq!(
        next_message(&feed),
        message("tele/dev3/LWT", "Offline-2", false)
    );
    let mut other = connect(addr, "other", None);
    publish(&mut other, "tele/dev3/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(next_message(&feed), message("tele/dev3/marker", "m", false));

    let late = broker.subscribe_all().expect("second feed opens");
    assert_eq!(
        next_message(&late),
        message("tele/dev3/LWT", "Offline-2", true)
    );
}

#[test]
fn disconnect_with_will_message_publishes_the_will() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    let device = connect(
        addr,
        "dev6",
        Some(Will {
            topic: "tele/dev6/LWT",
            payload: "Offline",
        }),
    );
    disconnect_with(device, DisconnectOptions::new().publish_will());
    assert_eq!(
        next_message(&feed),
        message("tele/dev6/LWT", "Offline", false)
    );
}

#[test]
fn qos_2_in_and_out_is_delivered_exactly_once_at_min_qos() {
    let broker = start();
    let addr = broker.local_addr();
    let mut sub2 = connect(addr, "sub2", None);
    let mut sub1 = connect(addr, "sub1", None);
    let mut sub0 = connect(addr, "sub0", None);
    subscribe(&mut sub2, "q/#", QoS::ExactlyOnce);
    subscribe(&mut sub1, "q/#", QoS::AtLeastOnce);
    subscribe(&mut sub0, "q/#", QoS::AtMostOnce);

    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "q/2", b"two", QoS::ExactlyOnce, false);
    publish(&mut publisher, "q/1", b"one", QoS::AtLeastOnce, false);
    publish(&mut publisher, "q/marker", b"m", QoS::AtMostOnce, false);

    // sub2 gets QoS 2 and completes the exchange: rust-mqtt answers with
    // PUBREC, the broker's PUBREL shows up as an event (whenever it arrives).
    let mut publishes = Vec::new();
    let mut released = 0;
    while publishes.len() < 3 || released < 1 {
        match next_event(&mut sub2, "sub2 events") {
            Event::Publish(p) => publishes.push((
                p.topic.name().expect("named").as_ref().as_str().to_owned(),
                QoS::from(p.identified_qos),
            )),
            Event::PublishReleased(_) => released += 1,
            other => panic!("unexpected event on sub2: {other:?}"),
        }
    }
    assert_eq!(
        publishes,
        [
            ("q/2".to_owned(), QoS::ExactlyOnce),
            ("q/1".to_owned(), QoS::AtLeastOnce),
            ("q/marker".to_owned(), QoS::AtMostOnce)
        ],
        "each once, at min(publish, subscription) QoS"
    );
    block_on_ping(&mut sub2);

    let expect = [
        (&mut sub1, [QoS::AtLeastOnce, QoS::AtLeastOnce]),
        (&mut sub0, [QoS::AtMostOnce, QoS::AtMostOnce]),
    ];
    for (client, [for_two, for_one]) in expect {
        assert_eq!(
            next_publish(client, "QoS 2 publish"),
            received("q/2", "two", false, for_two)
        );
        assert_eq!(
            next_publish(client, "QoS 1 publish"),
            received("q/1", "one", false, for_one)
        );
        // Exactly once: the next message is the marker, not a second copy.
        assert_eq!(
            next_publish(client, "marker"),
            received("q/marker", "m", false, QoS::AtMostOnce)
        );
    }
    disconnect(publisher);
}

#[test]
fn overlapping_subscriptions_get_one_copy_at_the_highest_qos() {
    let broker = start();
    let addr = broker.local_addr();
    let mut sub = connect(addr, "sub", None);
    subscribe(&mut sub, "a/+", QoS::AtMostOnce);
    subscribe(&mut sub, "a/#", QoS::AtLeastOnce);
    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "a/b", b"x", QoS::ExactlyOnce, false);
    publish(&mut publisher, "a/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut sub, "one copy"),
        received("a/b", "x", false, QoS::AtLeastOnce)
    );
    assert_eq!(
        next_publish(&mut sub, "marker, no second copy"),
        received("a/marker", "m", false, QoS::AtMostOnce)
    );
}

#[test]
fn no_local_keeps_a_clients_own_messages_from_it() {
    let broker = start();
    let addr = broker.local_addr();
    let mut quiet = connect(addr, "quiet", None);
    let mut echo = connect(addr, "echo", None);
    subscribe_with(&mut quiet, "n/#", SubscriptionOptions::new().no_local());
    subscribe(&mut echo, "n/#", QoS::AtMostOnce);

    publish(&mut quiet, "n/own", b"own", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut echo, "quiet's message"),
        received("n/own", "own", false, QoS::AtMostOnce)
    );
    publish(&mut echo, "n/other", b"other", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut quiet, "the other client's message only"),
        received("n/other", "other", false, QoS::AtMostOnce)
    );
    // Without No Local a client gets its own messages.
    assert_eq!(
        next_publish(&mut echo, "its own message"),
        received("n/other", "other", false, QoS::AtMostOnce)
    );
}

#[test]
fn retain_handling_and_retain_as_published() {
    let broker = start();
    let addr = broker.local_addr();
    let mut device = connect(addr, "dev", None);
    publish(&mut device, "r/state", b"kept", QoS::AtLeastOnce, true);

    // 2: never send retained messages on subscribe.
    let mut never = connect(addr, "never", None);
    subscribe_with(
        &mut never,
        "r/#",
        SubscriptionOptions::new().retain_handling(RetainHandling::NeverSend),
    );
    // 1: only when the subscription is new.
    let mut once = connect(addr, "once", None);
    let if_new =
        SubscriptionOptions::new().retain_handling(RetainHandling::SendIfNotSubscribedBefore);
    subscribe_with(&mut once, "r/#", if_new);
    assert_eq!(
        next_publish(&mut once, "retained on the first subscribe"),
        received("r/state", "kept", true, QoS::AtMostOnce)
    );
    subscribe_with(&mut once, "r/#", if_new);
    // Retain As Published: live retained messages keep the flag.
    let mut rap = connect(addr, "rap", None);
    subscribe_with(
        &mut rap,
        "r/#",
        SubscriptionOptions::new()
            .retain_handling(RetainHandling::NeverSend)
            .retain_as_published(),
    );

    publish(&mut device, "r/live", b"retained", QoS::AtMostOnce, true);
    publish(&mut device, "r/marker", b"m", QoS::AtMostOnce, false);
    for (client, name) in [(&mut never, "never"), (&mut once, "once")] {
        assert_eq!(
            next_publish(client, name),
            received("r/live", "retained", false, QoS::AtMostOnce),
            "{name}: no retained replay, live message without retain"
        );
        assert_eq!(
            next_publish(client, name),
            received("r/marker", "m", false, QoS::AtMostOnce)
        );
    }
    assert_eq!(
        next_publish(&mut rap, "retain as published"),
        received("r/live", "retained", true, QoS::AtMostOnce)
    );
    assert_eq!(
        next_publish(&mut rap, "marker"),
        received("r/marker", "m", false, QoS::AtMostOnce)
    );
}

#[test]
fn an_empty_retained_payload_clears_the_retained_message() {
    let broker = start();
    let addr = broker.local_addr();
    let mut device = connect(addr, "dev", None);
    publish(&mut device, "c/a", b"1", QoS::AtLeastOnce, true);
    publish(&mut device, "c/b", b"2", QoS::AtLeastOnce, true);
    publish(&mut device, "c/a", b"", QoS::AtLeastOnce, true);

    let feed = broker.subscribe_all().expect("feed opens");
    assert_eq!(next_message(&feed), message("c/b", "2", true));
    let mut late = connect(addr, "late", None);
    subscribe(&mut late, "c/#", QoS::AtMostOnce);
    assert_eq!(
        next_publish(&mut late, "only c/b is retained"),
        received("c/b", "2", true, QoS::AtMostOnce)
    );
    publish(&mut device, "c/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut late, "marker"),
        received("c/marker", "m", false, QoS::AtMostOnce)
    );
    assert_eq!(next_message(&feed), message("c/marker", "m", false));
}

#[test]
fn unsubscribe_stops_delivery() {
    let broker = start();
    let addr = broker.local_addr();
    let mut sub = connect(addr, "sub", None);
    subscribe(&mut sub, "u/a", QoS::AtMostOnce);
    subscribe(&mut sub, "u/marker", QoS::AtMostOnce);
    assert_eq!(unsubscribe(&mut sub, "u/a"), ReasonCode::Success);
    assert_eq!(
        unsubscribe(&mut sub, "u/never"),
        ReasonCode::NoSubscriptionExisted
    );
    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "u/a", b"x", QoS::AtMostOnce, false);
    publish(&mut publisher, "u/marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut sub, "marker only"),
        received("u/marker", "m", false, QoS::AtMostOnce)
    );
}

#[test]
fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
    let broker = start();
    let addr = broker.local_addr();
    let mut all = connect(addr, "all", None);
    let mut sys = connect(addr, "sys", None);
    subscribe(&mut all, "#", QoS::AtMostOnce);
    subscribe(&mut sys, "$SYS/#", QoS::AtMostOnce);
    let mut publisher = connect(addr, "pub", None);
    publish(&mut publisher, "$SYS/x", b"s", QoS::AtMostOnce, false);
    publish(&mut publisher, "marker", b"m", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut all, "marker, not $SYS/x"),
        received("marker", "m", false, QoS::AtMostOnce)
    );
    assert_eq!(
        next_publish(&mut sys, "$SYS/x"),
        received("$SYS/x", "s", false, QoS::AtMostOnce)
    );
}

#[test]
fn large_payloads_pass_through() {
    let broker = start();
    let addr = broker.local_addr();
    let mut sub = connect(addr, "sub", None);
    subscribe(&mut sub, "ota/#", QoS::AtLeastOnce);
    let mut publisher = connect(addr, "pub", None);
    let chunk: Vec<u8> = (0..900 * 1024).map(|i| (i % 251) as u8).collect();
    publish(&mut publisher, "ota/chunk", &chunk, QoS::AtLeastOnce, false);
    let got = next_publish(&mut sub, "900 KiB chunk");
    assert_eq!(got.topic, "ota/chunk");
    assert!(
        got.payload == chunk,
        "payload intact ({} bytes)",
        got.payload.len()
    );
}

#[test]
fn a_mqtt_3_1_1_client_subscribes_and_receives() {
    let broker = start();
    let addr = broker.local_addr();
    let mut old = Raw::connect(addr);
    old.send(&raw::connect_packet(4, "mosquitto_sub", 60));
    assert_eq!(old.read().expect("CONNACK").body, [0, 0], "3.1.1 CONNACK");
    old.send(&raw::subscribe_packet(4, 7, "tele/+/STATE", 1));
    let suback = old.read().expect("SUBACK");
    assert_eq!((suback.first, suback.body), (0x90, vec![0, 7, 1]));
    // An invalid filter gets 0x80 in 3.1.1.
    old.send(&raw::subscribe_packet(4, 8, "a/#/b", 0));
    let suback = old.read().expect("SUBACK");
    assert_eq!(suback.body, [0, 8, 0x80]);

    let mut device = connect(addr, "dev", None);
    publish(&mut device, "tele/dev/STATE", b"{}", QoS::AtMostOnce, false);
    let publish = old.read().expect("PUBLISH");
    // QoS 0, no retain; topic, then the payload (no properties in 3.1.1).
    assert_eq!(publish.first, 0x30);
    let mut expected = raw::string("tele/dev/STATE");
    expected.extend(b"{}");
    assert_eq!(publish.body, expected);

    // And the other way: a 3.1.1 PUBLISH reaches an MQTT 5 client.
    let mut sub = connect(addr, "sub", None);
    subscribe(&mut sub, "cmnd/#", QoS::AtMostOnce);
    old.send(&raw::publish_packet(4, "cmnd/dev/POWER", b"ON"));
    assert_eq!(
        next_publish(&mut sub, "from 3.1.1"),
        received("cmnd/dev/POWER", "ON", false, QoS::AtMostOnce)
    );
    old.send(&[0xE0, 0]); // DISCONNECT
    assert!(old.expect_closed().is_empty());
}

#[test]
fn unsupported_protocol_levels_are_refused() {
    let broker = start();
    let addr = broker.local_addr();
    let mut v3 = Raw::connect(addr);
    let mut body = raw::string("MQIsdp");
    body.extend([3, 2, 0, 60]);
    body.extend(raw::string("old"));
    v3.send(&raw::frame(0x10, &body));
    let answer = v3.expect_closed();
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!((answer[0].first, &answer[0].body[..]), (0x20, &[0, 1][..]));

    let mut v6 = Raw::connect(addr);
    v6.send(&raw::connect_packet(6, "future", 60));
    let answer = v6.expect_closed();
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0].body[..2], [0, 0x84]);
}

/// A client that sends something bad is closed (v5: DISCONNECT with a reason
/// code first); the broker goes on serving everyone else.
fn assert_closed_with(addr: SocketAddr, bytes: &[u8], reason: u8) {
    let mut bad = Raw::session(addr, 5, "bad");
    bad.send(bytes);
    let before = bad.expect_closed();
    assert_eq!(
        before.last().map(|p| (p.first, p.body.first().copied())),
        Some((0xE0, Some(reason))),
        "DISCONNECT 0x{reason:02X} before the close: {before:?}"
    );
}

fn assert_still_serving(addr: SocketAddr) {
    let mut sub = connect(addr, "good-sub", None);
    subscribe(&mut sub, "ok", QoS::AtMostOnce);
    let mut publisher = connect(addr, "good-pub", None);
    publish(&mut publisher, "ok", b"fine", QoS::AtMostOnce, false);
    assert_eq!(
        next_publish(&mut sub, "the broker still serves"),
        received("ok", "fine", false, QoS::AtMostOnce)
    );
}

#[test]
fn an_oversized_packet_closes_only_that_client() {
    let broker = start();
    let addr = broker.local_addr();
    // Announces 2 MiB and sends only the start: refused before the body.
    let mut header = vec![0x30];
    header.extend(raw::varint(2 * 1024 * 1024));
    header.extend(raw::string("big"));
    assert_closed_with(addr, &header, 0x95);
    assert_still_serving(addr);
}

#[test]
fn malformed_packets_close_only_that_client() {
    let broker = start();
    let addr = broker.local_addr();
    let feed = broker.subscribe_all().expect("feed opens");
    // Topic that is not UTF-8.
    assert_closed_with(addr, &raw::frame(0x30, &[0, 2, 0xC3, 0x28, 0]), 0x81);
    // A wildcard in a PUBLISH topic.
    assert_closed_with(addr, &raw::publish_packet(5, "a/+", b"x"), 0x90);
    // Remaining Length longer than 4 bytes.
    assert_closed_with(addr, &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], 0x81);
    // Properties that claim more bytes than the packet has.
    let mut truncated = raw::string("a");
    truncated.extend([9, 0x02, 0]);
    assert_closed_with(addr, &raw::frame(0x30, &truncated), 0x81);
    // A topic alias (the broker announced Topic Alias Maximum 0).
    let mut alias = raw::string("a");
    alias.extend([3, 0x23, 0, 1]);
    assert_closed_with(addr, &raw::frame(0x30, &alias), 0x94);
    // A second CONNECT.
    assert_closed_with(addr, &raw::connect_packet(5, "again", 0), 0x82);
    // None of it was routed.
    assert!(feed.try_recv().is_err());
    assert_still_serving(addr);
}

#[test]
fn invalid_and_shared_filters_are_refused_in_suback() {
    let broker = start();
    let addr = broker.local_addr();
    let mut client = Raw::session(addr, 5, "filters");
    for (id, filter, code) in [
        (1u16, "a/#/b", 0x8F),
        (2, "a+", 0x8F),
        (3, "$share/g/a", 0x9E),
    ] {
        client.send(&raw::subscribe_packet(5, id, filter, 0));
        let suback = client.read().expect("SUBACK");
        assert_eq!(suback.first, 0x90);
        assert_eq!(suback.body, [0, id as u8, 0, code], "{filter}");
    }
}

#[test]
fn a_subscriber_that_never_reads_does_not_stall_the_others() {
    let broker = start();
    let addr = broker.local_addr();
    // Subscribes to everything, then never reads a byte.
    let mut stuck = Raw::session(addr, 5, "stuck");
    stuck.send(&raw::subscribe_packet(5, 1, "#", 0));
    let mut fast = connect(addr, "fast", None);
    subscribe(&mut fast, "flood/#", QoS::AtMostOnce);

    // 40 MiB in 64 KiB messages: far more than the socket buffers and the
    // stuck client's queue hold.
    let mut publisher = connect(addr, "pub", None);
    let payload = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    for i in 0..640u32 {
        let topic = format!("flood/{i}");
        publish(&mut publisher, &topic, &payload, QoS::AtMostOnce, false);
        let got = next_publish(&mut fast, "flood message");
        assert_eq!(got.topic, topic);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    drop(stuck);
}
