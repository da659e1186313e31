//! Crate root of `hearth-broker`: a small MQTT 5 broker that runs inside the
//! host process, so `hearth demo` needs nothing but cargo (no mosquitto).
//!
//! The broker is our own code on the standard library only: blocking
//! `std::net` TCP, one reader thread and one writer thread per connection,
//! and one mutex around the shared state (sessions, subscriptions, retained
//! messages). [`EmbeddedBroker::start`] binds one plain-TCP listener and
//! returns once it accepts connections; [`EmbeddedBroker::subscribe_all`]
//! taps every message for a live view.
//!
//! ```no_run
//! use hearth_broker::EmbeddedBroker;
//!
//! let broker = EmbeddedBroker::start(([127, 0, 0, 1], 0).into())?;
//! println!("MQTT 5 broker on {}", broker.local_addr());
//! let live = broker.subscribe_all()?;
//! while let Ok(msg) = live.recv() {
//!     println!("{} = {}", msg.topic, String::from_utf8_lossy(&msg.payload));
//! }
//! # Ok::<(), hearth_broker::BrokerError>(())
//! ```
//!
//! # What the broker does
//!
//! * MQTT 5.0 and MQTT 3.1.1 (protocol level 4, `mosquitto_sub`'s default)
//!   on the same listener. Any other protocol name or level is refused with
//!   CONNACK 0x84 (v5) or return code 1 (3.1.1).
//! * CONNECT: user name and password are accepted and ignored (the demo has
//!   no login); an empty client id gets one assigned (v5: Assigned Client
//!   Identifier). Enhanced authentication (Authentication Method) is refused
//!   with CONNACK 0x8C.
//! * CONNACK (v5) says what the broker does: Maximum Packet Size 1 MiB, Topic
//!   Alias Maximum 0, Retain Available, Wildcard Subscriptions and
//!   Subscription Identifiers available, Shared Subscriptions not.
//! * Keep-alive: a client that sends no packet for 1.5 x its keep-alive is
//!   closed (v5: DISCONNECT 0x8D) and its will published. Keep-alive 0 means
//!   no limit.
//! * PUBLISH in at QoS 0, 1 (PUBACK) and 2 (PUBREC, PUBREL, PUBCOMP; the
//!   message is delivered once, when the PUBLISH arrives; a resent PUBLISH
//!   with the same packet id before PUBREL is not delivered again).
//!   Properties are forwarded (payload format, content type, response topic,
//!   correlation data, user properties; the message expiry counts down and an
//!   expired message is not sent). A Topic Alias is a protocol error
//!   (DISCONNECT 0x94).
//! * Delivery at min(publish QoS, subscription QoS), with packet ids for QoS
//!   1 and 2 and the client's Receive Maximum respected. A client whose
//!   subscriptions overlap gets **one** copy per message, at the highest QoS
//!   of the matching subscriptions, carrying all their subscription
//!   identifiers (MQTT 5.0 section 3.3.4 allows this). Subscription options
//!   No Local, Retain As Published and Retain Handling (0, 1, 2) are honoured.
//!   A message bigger than the client's own Maximum Packet Size is not sent
//!   to it.
//! * Topic filters with `+` and `#`; a wildcard in the first level does not
//!   match `$`-topics (`#` does not match `$SYS/x`). An invalid filter gets
//!   SUBACK 0x8F (v5) / 0x80 (3.1.1); a shared subscription 0x9E / 0x80.
//! * Retained messages, one per topic, replaced by the next retained publish
//!   and cleared by an empty retained payload; sent on subscribe with the
//!   retain flag set. Live deliveries carry retain 0 unless the subscription
//!   asked for Retain As Published.
//! * Last will: published (retained if the will asked for it) when the
//!   connection ends without DISCONNECT, on keep-alive expiry, on a protocol
//!   error, after DISCONNECT with any reason but 0 (e.g. 0x04), and on
//!   session takeover; not after DISCONNECT with reason 0.
//! * Session takeover: a CONNECT with the client id of a live connection
//!   closes the old connection (v5: DISCONNECT 0x8E) and publishes the old
//!   connection's will before the new connection's CONNACK is sent, so it
//!   always lands before anything the new connection publishes. The new
//!   connection keeps its own will.
//! * Limits: a packet bigger than 1 MiB is refused (v5: DISCONNECT 0x95)
//!   before its body is read; a malformed packet closes the connection (v5:
//!   DISCONNECT 0x81, 0x82 or a more precise code first). A client has 10 s
//!   to send CONNECT. There is no limit on the number of connections (each
//!   costs two threads with 256 KiB stacks), which suits a demo on loopback.
//!
//! # What it does not do
//!
//! * No persistent sessions: session present is always 0, a session ends with
//!   its connection (CONNACK says Session Expiry Interval 0 to a client that
//!   asked for more), and unacknowledged QoS 1/2 messages towards a client
//!   are dropped when it disconnects (no redelivery).
//! * Will Delay Interval is ignored: the will is published at once.
//! * No topic aliases, no shared subscriptions, no enhanced authentication,
//!   no TLS, no websockets, no login.
//!
//! # Slow clients
//!
//! Routing never waits for a client: each connection has its own outgoing
//! queue of at most 4096 messages and 16 MiB of payload. When a client's
//! queue is full, QoS 0 messages for it are dropped (counted per connection);
//! a QoS 1 or 2 message that does not fit closes that client (it is stuck;
//! its will is published). A client that accepts no bytes for 30 s is closed
//! too. Other clients are not affected either way.
//!
//! # Logging
//!
//! None: the broker writes nothing to stdout or stderr and logs nothing.
//!
//! # Stopping
//!
//! Dropping the [`EmbeddedBroker`] (or [`EmbeddedBroker::shutdown`]) closes
//! the listener (the port is free afterwards), sends DISCONNECT 0x8B to every
//! MQTT 5 client, closes every connection, ends the [`subscribe_all`] feeds
//! and joins every thread the broker started. Wills are not published during
//! shutdown.
//!
//! [`subscribe_all`]: EmbeddedBroker::subscribe_all

mod broker;
mod codec;
mod conn;
mod error;
mod link;
mod monitor;
mod router;
mod topic;

pub use broker::EmbeddedBroker;
pub use error::BrokerError;
pub use monitor::Message;
