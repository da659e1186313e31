//! One MQTT 5 session over any `embedded-io-async` stream, using the `rust-mqtt` client: connect
//! with a retained last will, subscribe to the device's commands, publish, ping, and turn
//! incoming packets into the few events the runtime cares about.
//!
//! rust-mqtt was chosen over minimq and mountain-mqtt (see docs/ARCHITECTURE.md): it runs over
//! `embedded-io-async` 0.7 in both worlds (embassy-net's `TcpSocket` on the chip, a std socket
//! adapter on the host), supports wills, credentials and the retain flag on received messages,
//! and its `poll_header` is cancel-safe, so the runtime can race it against its timers.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::num::NonZero;

use rust_mqtt::buffer::AllocBuffer;
use rust_mqtt::client::event::Event;
use rust_mqtt::client::options::{
    ConnectOptions, PublicationOptions, SubscriptionOptions, TopicReference, WillOptions,
};
use rust_mqtt::client::Client;
use rust_mqtt::config::KeepAlive;
use rust_mqtt::types::{MqttBinary, MqttString, ReasonCode, TopicFilter, TopicName};
use rust_mqtt::Bytes;

use crate::settings::Settings;
use hearth_core::discovery;
use hearth_core::topics::{Topics, OFFLINE, ONLINE};

/// The rust-mqtt client as configured for a device: one subscription, one message in flight
/// each way, a few user properties, no topic aliases.
pub type MqttClient<'c, T> = Client<'c, 'c, T, AllocBuffer, 1, 1, 1, 1, 4, 0, 0>;

/// The largest MQTT packet the device accepts, announced to the broker as the Maximum Packet
/// Size of CONNECT. The largest legitimate message is a pushed config: a signed envelope with
/// a body of up to [`hearth_ota::signed::MAX_BODY_LEN`] bytes; an update chunk is 4 KiB. With
/// the property set, an MQTT 5 broker must not send anything larger (mosquitto drops such a
/// message for this client and counts it); a broker that sends one anyway is refused at the
/// fixed header, before anything is allocated, and the session ends with that reason, so one
/// oversized (even retained) message can never exhaust the heap.
pub const MAX_INCOMING_PACKET: u32 = hearth_ota::signed::MAX_BODY_LEN as u32 + 2048;

/// Why the session failed. Every error ends the session; the supervisor decides what next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError(pub String);

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(what: &str, e: impl core::fmt::Debug) -> SessionError {
    SessionError(format!("{what}: {e:?}"))
}

fn topic_name(topic: &str) -> Result<TopicName<'_>, SessionError> {
    let s = MqttString::from_str(topic).map_err(|e| err("topic", e))?;
    TopicName::new(s).ok_or_else(|| SessionError(format!("invalid topic name {topic:?}")))
}

/// What arrived from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A PINGRESP.
    Pong,
    /// A message on one of our command topics.
    Message {
        /// Topic name.
        topic: String,
        /// Payload bytes.
        payload: Vec<u8>,
        /// The retain flag: the broker replayed a stored message.
        retained: bool,
    },
    /// Anything else (acknowledgements); it still proves the broker is alive.
    Other,
}

/// Connect: CONNECT with clean start, keepalive, credentials and the retained last will
/// `tele/<name>/LWT = Offline`; wait for the CONNACK; subscribe to `homeassistant/status` and
/// `cmnd/<name>/#`, waiting for each SUBACK, then to the per-entity discovery configs of
/// earlier firmware without waiting; publish `Online` retained and the fence behind those
/// configs (`hearth_core::discovery`). The caller bounds the whole with a timeout.
pub async fn connect<T>(
    client: &mut MqttClient<'_, T>,
    transport: T,
    settings: &Settings,
    topics: &Topics,
    client_id: &str,
) -> Result<(), SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    let lwt = topics.lwt();
    let keepalive_s = (settings.mqtt.keepalive / 1000).clamp(1, u16::MAX as u64) as u16;
    let keepalive = NonZero::new(keepalive_s).map_or(KeepAlive::Infinite, KeepAlive::Seconds);
    let will = WillOptions::new(
        topic_name(&lwt)?,
        MqttBinary::from_slice(OFFLINE.as_bytes()).map_err(|e| err("will", e))?,
    )
    .retain();
    let mut options = ConnectOptions::new()
        .clean_start()
        .keep_alive(keepalive)
        .maximum_packet_size(const { NonZero::new(MAX_INCOMING_PACKET).unwrap() })
        .will(will);
    if let Some(user) = &settings.mqtt_user {
        options = options.user_name(MqttString::from_str(user).map_err(|e| err("user", e))?);
    }
    if let Some(password) = &settings.mqtt_password {
        options = options
            .password(MqttBinary::from_slice(password.as_bytes()).map_err(|e| err("password", e))?);
    }
    let id = MqttString::from_str(client_id).map_err(|e| err("client id", e))?;
    client
        .connect(transport, &options, Some(id))
        .await
        .map_err(|e| err("connect", e))?;

    // Home Assistant's birth and last will, then the device's commands. In this order, what
    // arrives while the second SUBACK is awaited (and is passed over) is at most a status,
    // never a command; a missed birth is harmless, the connect announces everything. A broker
    // whose ACL refuses the status subscription still gets a working device. Last, the
    // per-entity discovery configs that earlier firmware left retained, with the fence behind
    // them (published below). That SUBACK is not awaited: it, the configs and the fence arrive
    // in the session's stream, where nothing is passed over; a broker that refuses leaves the
    // machine to announce after its wait. (One call site each for subscribing and publishing
    // keeps the chip's code small: every await of a rust-mqtt future is a copy of it.)
    let commands = topics.cmnd("#");
    let filters = [
        (crate::machine::HA_STATUS, true, false),
        (commands.as_str(), true, true),
        (
            &discovery::entity_config_filter(topics.name()),
            false,
            false,
        ),
    ];
    for (filter, wait, needed) in filters {
        if let (Err(code), true) = (subscribe(client, filter, wait).await?, needed) {
            return Err(SessionError(format!(
                "subscription to {filter} refused: {code:?}"
            )));
        }
    }
    let fence = discovery::fence_topic(topics.name());
    for (topic, payload, retain) in [(lwt.as_str(), ONLINE, true), (&fence, "", false)] {
        publish(client, topic, payload, retain).await?;
    }
    Ok(())
}

/// Subscribe to `filter_text` at QoS 0 and, if `wait`, wait for the broker's SUBACK: its
/// refusal code, if it refused. (Without waiting, the SUBACK arrives with the session's other
/// packets; what arrives while a SUBACK is awaited is passed over.)
async fn subscribe<T>(
    client: &mut MqttClient<'_, T>,
    filter_text: &str,
    wait: bool,
) -> Result<Result<(), ReasonCode>, SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    let filter = TopicFilter::new(MqttString::from_str(filter_text).map_err(|e| err("filter", e))?)
        .ok_or_else(|| SessionError(format!("invalid topic filter {filter_text:?}")))?;
    client
        .subscribe(filter, &SubscriptionOptions::new())
        .await
        .map_err(|e| err("subscribe", e))?;
    if !wait {
        return Ok(Ok(()));
    }
    loop {
        match client
            .poll()
            .await
            .map_err(|e| err("waiting for SUBACK", e))?
        {
            Event::Suback(s) if s.reason_code.is_success() => return Ok(Ok(())),
            Event::Suback(s) => return Ok(Err(s.reason_code)),
            _ => continue,
        }
    }
}

/// Publish `payload` on `topic` at QoS 0.
pub async fn publish<T>(
    client: &mut MqttClient<'_, T>,
    topic: &str,
    payload: &str,
    retain: bool,
) -> Result<(), SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    let mut options = PublicationOptions::new(TopicReference::Name(topic_name(topic)?));
    if retain {
        options = options.retain();
    }
    client
        .publish(&options, Bytes::from(payload))
        .await
        .map(|_| ())
        .map_err(|e| err("publish", e))
}

/// Send a PINGREQ.
pub async fn ping<T>(client: &mut MqttClient<'_, T>) -> Result<(), SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    client.ping().await.map_err(|e| err("ping", e))
}

/// Wait for the next packet header. Cancel-safe: the runtime races it against its timers.
pub async fn wait_header<T>(
    client: &mut MqttClient<'_, T>,
) -> Result<rust_mqtt::header::FixedHeader, SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    client.poll_header().await.map_err(|e| err("receive", e))
}

/// Read the body of a packet whose header arrived. Not cancel-safe: a timeout here ends the
/// session.
pub async fn read_body<T>(
    client: &mut MqttClient<'_, T>,
    header: rust_mqtt::header::FixedHeader,
) -> Result<Incoming, SessionError>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    match client
        .poll_body(header)
        .await
        .map_err(|e| err("receive", e))?
    {
        Event::Pingresp => Ok(Incoming::Pong),
        Event::Publish(p) => {
            let topic = p
                .topic
                .name()
                .map(|n| AsRef::<MqttString<'_>>::as_ref(n).as_str().to_string())
                .unwrap_or_default();
            Ok(Incoming::Message {
                topic,
                payload: p.message.to_vec(),
                retained: p.retain,
            })
        }
        _ => Ok(Incoming::Other),
    }
}
