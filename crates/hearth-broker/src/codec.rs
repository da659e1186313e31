//! MQTT 5.0 and 3.1.1 wire format: decoding what clients send, encoding what
//! the broker sends. Pure functions over byte slices; no I/O.
//!
//! Decoding never panics and never allocates more than the packet it is given:
//! every length is checked against the bytes that are actually there.

use std::fmt;

/// The largest packet the broker accepts, fixed header included. Announced in
/// CONNACK (v5) as Maximum Packet Size; a bigger one is refused with
/// DISCONNECT 0x95 before its body is read.
pub(crate) const MAX_PACKET: usize = 1024 * 1024;

/// The largest value of the variable-length Remaining Length (MQTT: 4 bytes).
const MAX_VARINT: u32 = 268_435_455;

/// MQTT 5 reason codes the broker uses.
pub(crate) mod reason {
    pub const SUCCESS: u8 = 0x00;
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    pub const UNSPECIFIED: u8 = 0x80;
    pub const MALFORMED: u8 = 0x81;
    pub const PROTOCOL_ERROR: u8 = 0x82;
    pub const UNSUPPORTED_VERSION: u8 = 0x84;
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    pub const BAD_AUTH_METHOD: u8 = 0x8C;
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    pub const SHARED_NOT_SUPPORTED: u8 = 0x9E;
}

/// Protocol level of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// Why a packet was refused: the MQTT 5 reason code to close with, and what
/// was wrong (for tests and debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub reason: u8,
    pub what: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (reason 0x{:02X})", self.what, self.reason)
    }
}

fn malformed(what: &'static str) -> Violation {
    Violation {
        reason: reason::MALFORMED,
        what,
    }
}

fn protocol(what: &'static str) -> Violation {
    Violation {
        reason: reason::PROTOCOL_ERROR,
        what,
    }
}

/// Decodes a Variable Byte Integer at the start of `bytes`: `Ok(None)` if more
/// bytes are needed, else the value and how many bytes it took.
pub(crate) fn varint(bytes: &[u8]) -> Result<Option<(u32, usize)>, Violation> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if i == 4 {
            return Err(malformed("variable byte integer longer than 4 bytes"));
        }
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(malformed("variable byte integer longer than 4 bytes"));
    }
    Ok(None)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u32) {
    debug_assert!(n <= MAX_VARINT);
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn varint_len(n: u32) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bin(out, s.as_bytes());
}

fn put_bin(out: &mut Vec<u8>, b: &[u8]) {
    // Every string the broker sends came from a decoded packet or is short.
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&b[..usize::from(len)]);
}

/// A reader over one packet's bytes; every read checks the bounds.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Violation> {
        if self.remaining() < n {
            return Err(malformed(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, Violation> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Violation> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Violation> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self, what: &'static str) -> Result<u32, Violation> {
        match varint(&self.buf[self.pos..])? {
            Some((value, used)) => {
                self.pos += used;
                Ok(value)
            }
            None => Err(malformed(what)),
        }
    }

    fn binary(&mut self, what: &'static str) -> Result<&'a [u8], Violation> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A UTF-8 Encoded String: valid UTF-8 without U+0000.
    fn string(&mut self, what: &'static str) -> Result<&'a str, Violation> {
        let bytes = self.binary(what)?;
        let s = std::str::from_utf8(bytes).map_err(|_| malformed("string is not UTF-8"))?;
        if s.contains('\0') {
            return Err(malformed("string contains U+0000"));
        }
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

/// A decoded property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Byte(u8),
    U16(u16),
    U32(u32),
    Var(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

/// One property: its identifier, value and raw encoding (to forward it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Property<'a> {
    pub id: u8,
    pub value: Value<'a>,
    pub raw: &'a [u8],
}

pub(crate) mod prop {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const AUTH_METHOD: u8 = 0x15;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDS_AVAILABLE: u8 = 0x29;
    pub const SHARED_AVAILABLE: u8 = 0x2A;
}

/// The data type of every property MQTT 5.0 defines (section 2.2.2.2).
#[derive(Clone, Copy)]
enum Kind {
    Byte,
    U16,
    U32,
    Var,
    Str,
    Bin,
    Pair,
}

fn kind(id: u8) -> Option<Kind> {
    Some(match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => Kind::Byte,
        0x13 | 0x21 | 0x22 | 0x23 => Kind::U16,
        0x02 | 0x11 | 0x18 | 0x27 => Kind::U32,
        0x0B => Kind::Var,
        0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Kind::Str,
        0x09 | 0x16 => Kind::Bin,
        0x26 => Kind::Pair,
        _ => return None,
    })
}

/// Reads a property block (length, then properties). Identifiers MQTT 5
/// defines but the packet does not use are returned too, for the caller to
/// skip; an identifier MQTT 5 does not define cannot be skipped (its length is
/// unknown), so it makes the packet malformed. A property other than User
/// Property and Subscription Identifier given twice is a protocol error.
fn properties<'a>(c: &mut Cursor<'a>) -> Result<Vec<Property<'a>>, Violation> {
    let len = c.varint("truncated property length")? as usize;
    let block = c.take(len, "property length beyond the packet")?;
    let mut p = Cursor::new(block);
    let mut seen: u64 = 0;
    let mut out = Vec::new();
    while p.remaining() > 0 {
        let start = p.pos;
        let id = p.varint("truncated property identifier")?;
        let id = u8::try_from(id).map_err(|_| malformed("unknown property"))?;
        let kind = kind(id).ok_or(malformed("unknown property"))?;
        let value = match kind {
            Kind::Byte => Value::Byte(p.u8("truncated property")?),
            Kind::U16 => Value::U16(p.u16("truncated property")?),
            Kind::U32 => Value::U32(p.u32("truncated property")?),
            Kind::Var => Value::Var(p.varint("truncated property")?),
            Kind::Str => Value::Str(p.string("truncated property")?),
            Kind::Bin => Value::Bin(p.binary("truncated property")?),
            Kind::Pair => {
                let k = p.string("truncated property")?;
                Value::Pair(k, p.string("truncated property")?)
            }
        };
        if id != prop::USER_PROPERTY && id != prop::SUBSCRIPTION_ID {
            let bit = 1u64 << id; // every defined id is below 64
            if seen & bit != 0 {
                return Err(protocol("property given twice"));
            }
            seen |= bit;
        }
        out.push(Property {
            id,
            value,
            raw: &block[start..p.pos],
        });
    }
    Ok(out)
}

fn byte_flag(v: Value<'_>, what: &'static str) -> Result<u8, Violation> {
    match v {
        Value::Byte(b @ (0 | 1)) => Ok(b),
        _ => Err(protocol(what)),
    }
}

/// The properties of an application message that travel with it, and its
/// expiry (which the broker counts down).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessageProps {
    /// Raw Payload Format Indicator, Content Type, Response Topic,
    /// Correlation Data and User Properties, forwarded unaltered.
    pub forward: Vec<u8>,
    /// Message Expiry Interval in seconds, if given.
    pub expiry: Option<u32>,
}

impl MessageProps {
    /// Picks the forwarded properties out of a PUBLISH's or a will's block.
    fn collect(props: &[Property<'_>]) -> Result<Self, Violation> {
        let mut out = MessageProps::default();
        for p in props {
            match (p.id, p.value) {
                (prop::PAYLOAD_FORMAT, v) => {
                    byte_flag(v, "bad payload format indicator")?;
                    out.forward.extend_from_slice(p.raw);
                }
                (prop::CONTENT_TYPE | prop::RESPONSE_TOPIC, Value::Str(s)) => {
                    if p.id == prop::RESPONSE_TOPIC && !crate::topic::valid_name(s) {
                        return Err(protocol("response topic with a wildcard"));
                    }
                    out.forward.extend_from_slice(p.raw);
                }
                (prop::CORRELATION_DATA | prop::USER_PROPERTY, _) => {
                    out.forward.extend_from_slice(p.raw);
                }
                (prop::MESSAGE_EXPIRY, Value::U32(s)) => out.expiry = Some(s),
                // Properties of other packets: skipped.
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A last will from CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: MessageProps,
}

/// A decoded CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connect {
    pub version: Version,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    /// Session Expiry Interval the client asked for (v5).
    pub session_expiry: u32,
    /// How many QoS 1/2 messages the client accepts unacknowledged.
    pub receive_maximum: u16,
    /// The largest packet the client accepts.
    pub maximum_packet_size: u32,
    /// Authentication Method (v5): enhanced authentication, not supported.
    pub auth_method: Option<String>,
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// Too short to say which protocol it is: closed without an answer.
    Garbled,
    /// Not "MQTT" level 4 or 5. Answered in the 3.1.1 format (return code 1)
    /// when the level is below 5, else in the v5 format (0x84).
    UnsupportedProtocol { level: u8 },
    /// A CONNECT that breaks the rules; for v5 answered with CONNACK `reason`.
    Invalid {
        version: Version,
        violation: Violation,
    },
}

/// Decodes a CONNECT body (after the fixed header, whose flags must be 0).
pub(crate) fn decode_connect(body: &[u8]) -> Result<Connect, ConnectError> {
    let mut c = Cursor::new(body);
    let name = c.binary("truncated protocol name");
    let level = c.u8("truncated protocol level");
    let (name, level) = match (name, level) {
        (Ok(name), Ok(level)) => (name, level),
        _ => return Err(ConnectError::Garbled),
    };
    let version = match (name, level) {
        (b"MQTT", 4) => Version::V4,
        (b"MQTT", 5) => Version::V5,
        _ => return Err(ConnectError::UnsupportedProtocol { level }),
    };
    let invalid = |violation| ConnectError::Invalid { version, violation };
    decode_connect_rest(&mut c, version).map_err(invalid)
}

fn decode_connect_rest(c: &mut Cursor<'_>, version: Version) -> Result<Connect, Violation> {
    let flags = c.u8("truncated connect flags")?;
    if flags & 0x01 != 0 {
        return Err(malformed("reserved connect flag set"));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if will_qos == 3 {
        return Err(malformed("will QoS 3"));
    }
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(malformed("will QoS or retain without a will"));
    }
    if version == Version::V4 && has_password && !has_username {
        return Err(malformed("password without user name"));
    }
    let keep_alive = c.u16("truncated keep alive")?;

    let mut connect = Connect {
        version,
        client_id: String::new(),
        clean_start,
        keep_alive,
        will: None,
        session_expiry: 0,
        receive_maximum: u16::MAX,
        maximum_packet_size: u32::MAX,
        auth_method: None,
    };
    if version == Version::V5 {
        for p in properties(c)? {
            match (p.id, p.value) {
                (prop::SESSION_EXPIRY, Value::U32(v)) => connect.session_expiry = v,
                (prop::RECEIVE_MAXIMUM, Value::U16(0)) => {
                    return Err(protocol("receive maximum 0"))
                }
                (prop::RECEIVE_MAXIMUM, Value::U16(v)) => connect.receive_maximum = v,
                (prop::MAXIMUM_PACKET_SIZE, Value::U32(0)) => {
                    return Err(protocol("maximum packet size 0"))
                }
                (prop::MAXIMUM_PACKET_SIZE, Value::U32(v)) => connect.maximum_packet_size = v,
                (0x17 | 0x19, v) => {
                    byte_flag(v, "bad request problem/response information")?;
                }
                (prop::AUTH_METHOD, Value::Str(s)) => connect.auth_method = Some(s.to_owned()),
                // Topic Alias Maximum (we never send aliases), Authentication
                // Data, User Properties and other packets' properties: skipped.
                _ => {}
            }
        }
    }
    connect.client_id = c.string("truncated client identifier")?.to_owned();
    if will_flag {
        let props = if version == Version::V5 {
            MessageProps::collect(&properties(c)?)?
        } else {
            MessageProps::default()
        };
        let topic = c.string("truncated will topic")?;
        if !crate::topic::valid_name(topic) {
            return Err(Violation {
                reason: reason::TOPIC_NAME_INVALID,
                what: "will topic is not a valid topic name",
            });
        }
        let payload = c.binary("truncated will payload")?;
        connect.will = Some(Will {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos: will_qos,
            retain: will_retain,
            props,
        });
    }
    // Accepted and ignored: the demo broker has no login.
    if has_username {
        c.string("truncated user name")?;
    }
    if has_password {
        c.binary("truncated password")?;
    }
    if c.remaining() != 0 {
        return Err(malformed("bytes after the CONNECT payload"));
    }
    Ok(connect)
}

/// A decoded PUBLISH from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publish {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    /// 0 for QoS 0.
    pub packet_id: u16,
    pub props: MessageProps,
    pub payload: Vec<u8>,
}

/// Subscription options from SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained messages on subscribe; 1: only if the subscription is
    /// new; 2: never.
    pub retain_handling: u8,
}

/// A packet a client may send after CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    Publish(Publish),
    Puback {
        id: u16,
    },
    Pubrec {
        id: u16,
        reason: u8,
    },
    Pubrel {
        id: u16,
    },
    Pubcomp {
        id: u16,
    },
    Subscribe {
        id: u16,
        subscription_id: Option<u32>,
        filters: Vec<(String, SubOptions)>,
    },
    Unsubscribe {
        id: u16,
        filters: Vec<String>,
    },
    Pingreq,
    Disconnect {
        reason: u8,
    },
}

/// Packet types (upper nibble of the first byte).
pub(crate) mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const PINGREQ: u8 = 12;
    pub const PINGRESP: u8 = 13;
    pub const DISCONNECT: u8 = 14;
}

fn nonzero_id(c: &mut Cursor<'_>) -> Result<u16, Violation> {
    match c.u16("truncated packet identifier")? {
        0 => Err(protocol("packet identifier 0")),
        id => Ok(id),
    }
}

/// An acknowledgement: packet id, then (v5, optional) reason code and
/// properties.
fn decode_ack(c: &mut Cursor<'_>, version: Version) -> Result<(u16, u8), Violation> {
    let id = nonzero_id(c)?;
    let mut code = reason::SUCCESS;
    if version == Version::V5 && c.remaining() > 0 {
        code = c.u8("truncated reason code")?;
        if c.remaining() > 0 {
            properties(c)?;
        }
    }
    Ok((id, code))
}

/// Decodes a packet that follows CONNECT. `first` is the first byte of the
/// fixed header, `body` everything after the Remaining Length.
pub(crate) fn decode(first: u8, body: &[u8], version: Version) -> Result<Packet, Violation> {
    let packet_type = first >> 4;
    let flags = first & 0x0F;
    let expected_flags = match packet_type {
        kind::PUBLISH => flags,
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(malformed("bad fixed header flags"));
    }
    let v5 = version == Version::V5;
    let mut c = Cursor::new(body);
    let packet = match packet_type {
        kind::PUBLISH => decode_publish(&mut c, flags, version)?,
        kind::PUBACK => Packet::Puback {
            id: decode_ack(&mut c, version)?.0,
        },
        kind::PUBREC => {
            let (id, reason) = decode_ack(&mut c, version)?;
            Packet::Pubrec { id, reason }
        }
        kind::PUBREL => Packet::Pubrel {
            id: decode_ack(&mut c, version)?.0,
        },
        kind::PUBCOMP => Packet::Pubcomp {
            id: decode_ack(&mut c, version)?.0,
        },
        kind::SUBSCRIBE => {
            let id = nonzero_id(&mut c)?;
            let mut subscription_id = None;
            if v5 {
                for p in properties(&mut c)? {
                    if let (prop::SUBSCRIPTION_ID, Value::Var(v)) = (p.id, p.value) {
                        if v == 0 {
                            return Err(protocol("subscription identifier 0"));
                        }
                        if subscription_id.replace(v).is_some() {
                            return Err(protocol("two subscription identifiers"));
                        }
                    }
                }
            }
            let mut filters = Vec::new();
            while c.remaining() > 0 {
                let filter = c.string("truncated topic filter")?.to_owned();
                let o = c.u8("truncated subscription options")?;
                let reserved = if v5 { o & 0xC0 } else { o & 0xFC };
                if reserved != 0 || o & 0x03 == 3 || (o >> 4) & 0x03 == 3 {
                    return Err(malformed("bad subscription options"));
                }
                filters.push((
                    filter,
                    SubOptions {
                        qos: o & 0x03,
                        no_local: v5 && o & 0x04 != 0,
                        retain_as_published: v5 && o & 0x08 != 0,
                        retain_handling: if v5 { (o >> 4) & 0x03 } else { 0 },
                    },
                ));
            }
            if filters.is_empty() {
                return Err(protocol("SUBSCRIBE without a topic filter"));
            }
            Packet::Subscribe {
                id,
                subscription_id,
                filters,
            }
        }
        kind::UNSUBSCRIBE => {
            let id = nonzero_id(&mut c)?;
            if v5 {
                properties(&mut c)?;
            }
            let mut filters = Vec::new();
            while c.remaining() > 0 {
                filters.push(c.string("truncated topic filter")?.to_owned());
            }
            if filters.is_empty() {
                return Err(protocol("UNSUBSCRIBE without a topic filter"));
            }
            Packet::Unsubscribe { id, filters }
        }
        kind::PINGREQ => Packet::Pingreq,
        kind::DISCONNECT => {
            let mut code = reason::SUCCESS;
            if v5 && c.remaining() > 0 {
                code = c.u8("truncated reason code")?;
                if c.remaining() > 0 {
                    properties(&mut c)?;
                }
            }
            Packet::Disconnect { reason: code }
        }
        kind::CONNECT => return Err(protocol("second CONNECT")),
        // AUTH (15, v5): the broker announced no authentication method.
        15 if v5 => return Err(protocol("AUTH without an authentication method")),
        kind::CONNACK | kind::SUBACK | kind::UNSUBACK | kind::PINGRESP => {
            return Err(protocol("server packet sent by a client"))
        }
        _ => return Err(malformed("reserved packet type")),
    };
    if c.remaining() != 0 {
        return Err(malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn decode_publish(c: &mut Cursor<'_>, flags: u8, version: Version) -> Result<Packet, Violation> {
    let dup = flags & 0x08 != 0;
    let qos = (flags >> 1) & 0x03;
    let retain = flags & 0x01 != 0;
    if qos == 3 {
        return Err(malformed("PUBLISH with QoS 3"));
    }
    if qos == 0 && dup {
        return Err(malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = c.string("truncated topic name")?;
    let packet_id = if qos > 0 { nonzero_id(c)? } else { 0 };
    let mut props = MessageProps::default();
    if version == Version::V5 {
        let list = properties(c)?;
        for p in &list {
            match p.id {
                prop::TOPIC_ALIAS => {
                    return Err(Violation {
                        reason: reason::TOPIC_ALIAS_INVALID,
                        what: "topic alias (Topic Alias Maximum is 0)",
                    })
                }
                prop::SUBSCRIPTION_ID => {
                    return Err(protocol("subscription identifier in a client PUBLISH"))
                }
                _ => {}
            }
        }
        props = MessageProps::collect(&list)?;
    }
    if !crate::topic::valid_name(topic) {
        return Err(Violation {
            reason: reason::TOPIC_NAME_INVALID,
            what: "topic name empty or with a wildcard",
        });
    }
    Ok(Packet::Publish(Publish {
        topic: topic.to_owned(),
        qos,
        retain,
        dup,
        packet_id,
        props,
        payload: c.rest().to_vec(),
    }))
}

// ---------------------------------------------------------------- encoding

/// Frames a packet: first byte, Remaining Length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    put_varint(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// Appends a property block (length, then `props`).
fn put_props(out: &mut Vec<u8>, props: &[u8]) {
    put_varint(out, props.len() as u32);
    out.extend_from_slice(props);
}

/// What CONNACK (v5) tells the client about this broker.
pub(crate) struct ConnackProps<'a> {
    pub assigned_client_id: Option<&'a str>,
    /// Sent as 0 when the client asked for a session that outlives the
    /// connection (the broker keeps none).
    pub session_expiry_zero: bool,
}

/// CONNACK accepting the connection (session present 0).
pub(crate) fn connack_ok(version: Version, props: &ConnackProps<'_>) -> Vec<u8> {
    match version {
        Version::V4 => vec![0x20, 2, 0, 0],
        Version::V5 => {
            let mut p = Vec::new();
            p.push(prop::MAXIMUM_PACKET_SIZE);
            p.extend_from_slice(&(MAX_PACKET as u32).to_be_bytes());
            p.push(prop::TOPIC_ALIAS_MAXIMUM);
            p.extend_from_slice(&0u16.to_be_bytes());
            p.extend_from_slice(&[prop::RETAIN_AVAILABLE, 1]);
            p.extend_from_slice(&[prop::WILDCARD_AVAILABLE, 1]);
            p.extend_from_slice(&[prop::SUBSCRIPTION_IDS_AVAILABLE, 1]);
            p.extend_from_slice(&[prop::SHARED_AVAILABLE, 0]);
            if props.session_expiry_zero {
                p.push(prop::SESSION_EXPIRY);
                p.extend_from_slice(&0u32.to_be_bytes());
            }
            if let Some(id) = props.assigned_client_id {
                p.push(prop::ASSIGNED_CLIENT_ID);
                put_str(&mut p, id);
            }
            let mut body = vec![0, reason::SUCCESS];
            put_props(&mut body, &p);
            frame(0x20, &body)
        }
    }
}

/// CONNACK refusing the connection: a v5 reason code, or a 3.1.1 return code.
pub(crate) fn connack_refused(version: Version, code: u8) -> Vec<u8> {
    match version {
        Version::V4 => vec![0x20, 2, 0, code],
        Version::V5 => vec![0x20, 3, 0, code, 0],
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
pub(crate) fn ack(packet_type: u8, version: Version, id: u16, code: u8) -> Vec<u8> {
    let first = (packet_type << 4) | if packet_type == kind::PUBREL { 2 } else { 0 };
    let [hi, lo] = id.to_be_bytes();
    if version == Version::V4 || code == reason::SUCCESS {
        vec![first, 2, hi, lo]
    } else {
        vec![first, 3, hi, lo, code]
    }
}

/// SUBACK or UNSUBACK (3.1.1's UNSUBACK carries no codes).
pub(crate) fn sub_ack(packet_type: u8, version: Version, id: u16, codes: &[u8]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.push(0);
    }
    if version == Version::V5 || packet_type == kind::SUBACK {
        body.extend_from_slice(codes);
    }
    frame(packet_type << 4, &body)
}

pub(crate) fn pingresp() -> Vec<u8> {
    vec![kind::PINGRESP << 4, 0]
}

/// DISCONNECT from the broker (v5 only; 3.1.1 has none).
pub(crate) fn disconnect(code: u8) -> Vec<u8> {
    vec![kind::DISCONNECT << 4, 2, code, 0]
}

/// What an outgoing PUBLISH carries.
pub(crate) struct OutPublish<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    pub packet_id: u16,
    /// Forwarded properties (raw) for v5.
    pub forward: &'a [u8],
    /// Remaining Message Expiry Interval for v5.
    pub expiry: Option<u32>,
    pub subscription_ids: &'a [u32],
}

impl OutPublish<'_> {
    fn props_len(&self) -> usize {
        self.forward.len()
            + self.expiry.map_or(0, |_| 5)
            + self
                .subscription_ids
                .iter()
                .map(|&id| 1 + varint_len(id))
                .sum::<usize>()
    }

    fn body_len(&self, version: Version) -> usize {
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos > 0 {
            len += 2;
        }
        if version == Version::V5 {
            let props = self.props_len();
            len += varint_len(props as u32) + props;
        }
        len
    }

    /// Size of the whole packet, fixed header included.
    pub(crate) fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        1 + varint_len(body as u32) + body
    }

    pub(crate) fn encode(&self, version: Version) -> Vec<u8> {
        let body_len = self.body_len(version);
        let mut out = Vec::with_capacity(body_len + 5);
        out.push((kind::PUBLISH << 4) | (self.qos << 1) | u8::from(self.retain));
        put_varint(&mut out, body_len as u32);
        put_str(&mut out, self.topic);
        if self.qos > 0 {
            out.extend_from_slice(&self.packet_id.to_be_bytes());
        }
        if version == Version::V5 {
            put_varint(&mut out, self.props_len() as u32);
            out.extend_from_slice(self.forward);
            if let Some(expiry) = self.expiry {
                out.push(prop::MESSAGE_EXPIRY);
                out.extend_from_slice(&expiry.to_be_bytes());
            }
            for &id in self.subscription_ids {
                out.push(prop::SUBSCRIPTION_ID);
                put_varint(&mut out, id);
            }
        }
        out.extend_from_slice(self.payload);
        out
    }
}

#[cfg(test)]
mod tests;
