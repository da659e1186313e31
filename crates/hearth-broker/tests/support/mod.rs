//! Test-side MQTT 5 client: `rust-mqtt` 0.6 over a blocking std `TcpStream`
//! exposed through `embedded-io-async` traits and driven by
//! `embassy_futures::block_on`. Every socket read and write has a timeout, so no
//! test can hang. `raw` speaks bytes for what rust-mqtt cannot send (3.1.1,
//! oversized and malformed packets).
#![allow(dead_code)] // each test binary uses a part

pub mod raw;

use std::io::{self, BufWriter, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZero;
use std::time::{Duration, Instant};

use embassy_futures::block_on;
use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::event::{Event, Suback};
use rust_mqtt::client::options::{
    ConnectOptions, DisconnectOptions, PublicationOptions, SubscriptionOptions, TopicReference,
    UnsubscriptionOptions, WillOptions,
};
use rust_mqtt::client::Client;
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{MqttBinary, MqttString, QoS, ReasonCode, TopicFilter, TopicName};

/// Bound on every single socket read or write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The client type used by the tests. Const parameters, in order: concurrent
/// SUBSCRIBEs, receive maximum, send maximum, subscription identifiers per
/// PUBLISH, user properties per packet, incoming and outgoing topic aliases
/// (0: the broker then never aliases topics towards us).
pub type Mqtt = Client<'static, 'static, Net, AllocBuffer, 4, 16, 16, 1, 4, 0, 0>;

/// Blocking TCP transport: reads straight from the socket, buffers writes
/// until `flush` (rust-mqtt writes a packet in several small pieces).
pub struct Net {
    reader: TcpStream,
    writer: BufWriter<TcpStream>,
}

impl Net {
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: stream.try_clone()?,
            writer: BufWriter::new(stream),
        })
    }
}

/// An `std::io::Error` reduced to what `embedded-io` can express.
#[derive(Debug, thiserror::Error)]
#[error("socket error: {0:?}")]
pub struct NetError(pub io::ErrorKind);

impl embedded_io_async::Error for NetError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        use embedded_io_async::ErrorKind as E;
        match self.0 {
            io::ErrorKind::ConnectionRefused => E::ConnectionRefused,
            io::ErrorKind::ConnectionReset => E::ConnectionReset,
            io::ErrorKind::ConnectionAborted => E::ConnectionAborted,
            io::ErrorKind::NotConnected => E::NotConnected,
            io::ErrorKind::BrokenPipe => E::BrokenPipe,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => E::TimedOut,
            io::ErrorKind::InvalidData => E::InvalidData,
            io::ErrorKind::WriteZero => E::WriteZero,
            _ => E::Other,
        }
    }
}

impl embedded_io_async::ErrorType for Net {
    type Error = NetError;
}

impl embedded_io_async::Read for Net {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        loop {
            match self.reader.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other.map_err(|e| NetError(e.kind())),
            }
        }
    }
}

impl embedded_io_async::Write for Net {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.writer.write(buf).map_err(|e| NetError(e.kind()))
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.writer.flush().map_err(|e| NetError(e.kind()))
    }
}

/// What a received PUBLISH boils down to for the assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: QoS,
}

/// A last will as the device firmware sets it: retained, QoS 1.
pub struct Will<'a> {
    pub topic: &'a str,
    pub payload: &'a str,
}

fn topic_name(topic: &str) -> TopicName<'_> {
    TopicName::new(MqttString::try_from(topic).expect("topic is a valid MQTT string"))
        .expect("valid topic name")
}

/// Connects a fresh client (clean start, no credentials).
pub fn try_connect(
    addr: SocketAddr,
    client_id: &str,
    keep_alive: KeepAlive,
    will: Option<Will<'_>>,
) -> Result<Mqtt, String> {
    let net = Net::connect(addr).map_err(|e| format!("tcp connect: {e}"))?;
    // A zero-sized buffer provider; leaking it gives the client a 'static borrow.
    let buffer: &'static mut AllocBuffer = Box::leak(Box::new(AllocBuffer));
    let mut client: Mqtt = Client::new(buffer);

    let mut options = ConnectOptions::new().clean_start().keep_alive(keep_alive);
    if let Some(will) = &will {
        options = options.will(
            WillOptions::new(
                topic_name(will.topic),
                MqttBinary::try_from(will.payload.as_bytes()).expect("small will payload"),
            )
            .at_least_once()
            .retain(),
        );
    }
    let client_id = MqttString::try_from(client_id).expect("valid client id");
    block_on(client.connect(net, &options, Some(client_id)))
        .map_err(|e| format!("MQTT connect: {e:?}"))?;
    Ok(client)
}

/// Connects with a 30 s keep-alive, panicking on failure.
pub fn connect(addr: SocketAddr, client_id: &str, will: Option<Will<'_>>) -> Mqtt {
    let keep_alive = KeepAlive::Seconds(NonZero::new(30).expect("non-zero"));
    try_connect(addr, client_id, keep_alive, will)
        .unwrap_or_else(|e| panic!("{client_id} could not connect: {e}"))
}

/// Subscribes and waits for the SUBACK, asserting the granted QoS.
pub fn subscribe(client: &mut Mqtt, filter: &str, qos: QoS) {
    subscribe_with(client, filter, SubscriptionOptions::new().qos(qos));
}

/// Subscribes with options and waits for the SUBACK, asserting the granted QoS.
pub fn subscribe_with(client: &mut Mqtt, filter: &str, options: SubscriptionOptions<'_>) {
    let qos = options.qos;
    let filter_string = MqttString::try_from(filter).expect("valid filter string");
    let topic_filter = TopicFilter::new(filter_string).expect("valid topic filter");
    let pid = block_on(client.subscribe(topic_filter, &options))
        .unwrap_or_else(|e| panic!("SUBSCRIBE {filter}: {e:?}"));
    let granted = match qos {
        QoS::AtMostOnce => ReasonCode::Success,
        QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
        QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
    };
    match next_event(client, "SUBACK") {
        Event::Suback(Suback {
            packet_identifier,
            reason_code,
            ..
        }) => {
            assert_eq!(packet_identifier, pid, "SUBACK for another SUBSCRIBE");
            assert_eq!(reason_code, granted, "SUBACK reason for {filter}");
        }
        other => panic!("expected SUBACK for {filter}, got {other:?}"),
    }
}

/// Unsubscribes and waits for the UNSUBACK, returning its reason code.
pub fn unsubscribe(client: &mut Mqtt, filter: &str) -> ReasonCode {
    let filter_string = MqttString::try_from(filter).expect("valid filter string");
    let topic_filter = TopicFilter::new(filter_string).expect("valid topic filter");
    let pid = block_on(client.unsubscribe(topic_filter, &UnsubscriptionOptions::new()))
        .unwrap_or_else(|e| panic!("UNSUBSCRIBE {filter}: {e:?}"));
    match next_event(client, "UNSUBACK") {
        Event::Unsuback(Suback {
            packet_identifier,
            reason_code,
            ..
        }) => {
            assert_eq!(packet_identifier, pid, "UNSUBACK for another UNSUBSCRIBE");
            reason_code
        }
        other => panic!("expected UNSUBACK for {filter}, got {other:?}"),
    }
}

/// Publishes; for QoS 1 waits for the PUBACK, for QoS 2 for PUBREC and
/// PUBCOMP (rust-mqtt sends the PUBREL in between).
pub fn publish(client: &mut Mqtt, topic: &str, payload: &[u8], qos: QoS, retain: bool) {
    let mut options = PublicationOptions::new(TopicReference::Name(topic_name(topic))).qos(qos);
    if retain {
        options = options.retain();
    }
    let pid = block_on(client.publish(&options, payload.into()))
        .unwrap_or_else(|e| panic!("PUBLISH {topic}: {e:?}"));
    let Some(pid) = pid else { return };
    if qos == QoS::ExactlyOnce {
        match next_event(client, "PUBREC") {
            Event::PublishReceived(ack) => {
                assert_eq!(ack.packet_identifier, pid, "PUBREC for another PUBLISH")
            }
            other => panic!("expected PUBREC for {topic}, got {other:?}"),
        }
        match next_event(client, "PUBCOMP") {
            Event::PublishComplete(ack) => {
                assert_eq!(ack.packet_identifier, pid, "PUBCOMP for another PUBLISH")
            }
            other => panic!("expected PUBCOMP for {topic}, got {other:?}"),
        }
        return;
    }
    match next_event(client, "PUBACK") {
        Event::PublishAcknowledged(ack) => {
            assert_eq!(ack.packet_identifier, pid, "PUBACK for another PUBLISH")
        }
        other => panic!("expected PUBACK for {topic}, got {other:?}"),
    }
}

/// Polls one event. The socket read timeout bounds the wait.
pub fn next_event(client: &mut Mqtt, waiting_for: &str) -> Event<'static, 1, 4> {
    block_on(client.poll())
        .unwrap_or_else(|e| panic!("waiting for {waiting_for}: poll failed: {e:?}"))
}

/// Polls until a PUBLISH arrives (acks and other events are skipped).
pub fn next_publish(client: &mut Mqtt, waiting_for: &str) -> Received {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no PUBLISH ({waiting_for}) within {IO_TIMEOUT:?}"
        );
        if let Event::Publish(publish) = next_event(client, waiting_for) {
            let topic = publish
                .topic
                .name()
                .map(|name| name.as_ref().as_str().to_owned())
                .expect("topic aliases are disabled, so every PUBLISH names its topic");
            return Received {
                topic,
                payload: publish.message.as_bytes().to_vec(),
                retain: publish.retain,
                qos: publish.identified_qos.into(),
            };
        }
    }
}

/// Sends DISCONNECT (normal disconnection) and closes the socket.
pub fn disconnect(client: Mqtt) {
    disconnect_with(client, DisconnectOptions::new());
}

/// Sends DISCONNECT with options and closes the socket.
pub fn disconnect_with(mut client: Mqtt, options: DisconnectOptions<'_>) {
    let net = block_on(client.disconnect(&options)).unwrap_or_else(|e| panic!("DISCONNECT: {e:?}"));
    drop(net);
}
