//! Codec unit tests: known packets both ways, each rule that refuses a packet,
//! and fuzz-like runs (random bytes, mutated valid packets) that must never
//! panic.

use super::*;

fn body_of(packet: &[u8]) -> (u8, &[u8]) {
    let (len, used) = varint(&packet[1..]).unwrap().unwrap();
    let body = &packet[1 + used..];
    assert_eq!(body.len(), len as usize, "remaining length");
    (packet[0], body)
}

fn str_bytes(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A v5 CONNECT body with the given flags, properties and payload parts.
fn connect_v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut b = str_bytes("MQTT");
    b.push(5);
    b.push(flags);
    b.extend_from_slice(&30u16.to_be_bytes());
    put_varint(&mut b, props.len() as u32);
    b.extend_from_slice(props);
    b.extend_from_slice(payload);
    b
}

#[test]
fn varints() {
    for n in [
        0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VARINT,
    ] {
        let mut out = Vec::new();
        put_varint(&mut out, n);
        assert_eq!(out.len(), varint_len(n));
        assert_eq!(varint(&out), Ok(Some((n, out.len()))));
        assert_eq!(varint(&out[..out.len() - 1]), Ok(None));
    }
    assert!(varint(&[0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
    assert!(varint(&[0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    assert_eq!(varint(&[]), Ok(None));
}

#[test]
fn connect_v5_with_will_properties_and_login() {
    // Properties: session expiry, receive maximum, max packet size, a user
    // property, and Topic Alias Maximum (skipped by its type).
    let mut props = vec![0x11, 0, 0, 0, 60, 0x21, 0, 10, 0x27, 0, 0, 0x80, 0];
    props.push(0x26);
    props.extend(str_bytes("k"));
    props.extend(str_bytes("v"));
    props.extend([0x22, 0, 5]);
    let mut payload = str_bytes("dev1");
    // Will properties: delay (ignored), content type, message expiry.
    let mut will_props = vec![0x18, 0, 0, 0, 9, 0x03];
    will_props.extend(str_bytes("text/plain"));
    will_props.extend([0x02, 0, 0, 0, 100]);
    put_varint(&mut payload, will_props.len() as u32);
    payload.extend(&will_props);
    payload.extend(str_bytes("tele/dev1/LWT"));
    payload.extend(str_bytes("Offline"));
    payload.extend(str_bytes("user"));
    payload.extend(str_bytes("secret"));
    // user, password, will retain, will QoS 1, will, clean start
    let flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02;
    let c = decode_connect(&connect_v5(flags, &props, &payload)).unwrap();
    assert_eq!(c.version, Version::V5);
    assert_eq!(c.client_id, "dev1");
    assert!(c.clean_start);
    assert_eq!(c.keep_alive, 30);
    assert_eq!(c.session_expiry, 60);
    assert_eq!(c.receive_maximum, 10);
    assert_eq!(c.maximum_packet_size, 0x8000);
    let will = c.will.unwrap();
    assert_eq!(will.topic, "tele/dev1/LWT");
    assert_eq!(will.payload, b"Offline");
    assert_eq!((will.qos, will.retain), (1, true));
    assert_eq!(will.props.expiry, Some(100));
    let mut content_type = vec![0x03];
    content_type.extend(str_bytes("text/plain"));
    assert_eq!(
        will.props.forward, content_type,
        "delay and expiry not forwarded raw"
    );
}

#[test]
fn connect_v4() {
    let mut b = str_bytes("MQTT");
    b.extend([4, 0x02, 0, 0]);
    b.extend(str_bytes(""));
    let c = decode_connect(&b).unwrap();
    assert_eq!(c.version, Version::V4);
    assert_eq!(c.client_id, "");
    assert_eq!(c.keep_alive, 0);
    assert_eq!(c.receive_maximum, u16::MAX);
}

#[test]
fn connect_refusals() {
    let mut v3 = str_bytes("MQIsdp");
    v3.extend([3, 2, 0, 0]);
    assert_eq!(
        decode_connect(&v3),
        Err(ConnectError::UnsupportedProtocol { level: 3 })
    );
    let mut v6 = str_bytes("MQTT");
    v6.extend([6, 2, 0, 0]);
    assert_eq!(
        decode_connect(&v6),
        Err(ConnectError::UnsupportedProtocol { level: 6 })
    );
    let mut bad_name = str_bytes("MQTX");
    bad_name.extend([5, 2, 0, 0, 0, 0, 0]);
    assert_eq!(
        decode_connect(&bad_name),
        Err(ConnectError::UnsupportedProtocol { level: 5 })
    );
    assert_eq!(decode_connect(&[0, 4, b'M']), Err(ConnectError::Garbled));

    let reason_of = |body: &[u8]| match decode_connect(body) {
        Err(ConnectError::Invalid { violation, .. }) => violation.reason,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let id = str_bytes("x");
    // Reserved flag, will QoS 3, will retain without will.
    assert_eq!(reason_of(&connect_v5(0x03, &[], &id)), reason::MALFORMED);
    assert_eq!(reason_of(&connect_v5(0x1C, &[], &id)), reason::MALFORMED);
    assert_eq!(reason_of(&connect_v5(0x22, &[], &id)), reason::MALFORMED);
    // Receive maximum 0, max packet size 0, a property twice.
    assert_eq!(
        reason_of(&connect_v5(2, &[0x21, 0, 0], &id)),
        reason::PROTOCOL_ERROR
    );
    assert_eq!(
        reason_of(&connect_v5(2, &[0x27, 0, 0, 0, 0], &id)),
        reason::PROTOCOL_ERROR
    );
    assert_eq!(
        reason_of(&connect_v5(2, &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1], &id)),
        reason::PROTOCOL_ERROR
    );
    // Unknown property id, truncated property, property length past the end.
    assert_eq!(
        reason_of(&connect_v5(2, &[0x7F, 0], &id)),
        reason::MALFORMED
    );
    assert_eq!(
        reason_of(&connect_v5(2, &[0x11, 0, 0], &id)),
        reason::MALFORMED
    );
    let mut long = connect_v5(2, &[], &id);
    long[10] = 50;
    assert_eq!(reason_of(&long), reason::MALFORMED);
    // Truncated client id, trailing bytes, a will topic with a wildcard.
    assert_eq!(
        reason_of(&connect_v5(2, &[], &[0, 5, b'a'])),
        reason::MALFORMED
    );
    let mut trailing = id.clone();
    trailing.push(0);
    assert_eq!(reason_of(&connect_v5(2, &[], &trailing)), reason::MALFORMED);
    let mut wild = id.clone();
    wild.push(0);
    wild.extend(str_bytes("a/#"));
    wild.extend(str_bytes("x"));
    assert_eq!(
        reason_of(&connect_v5(0x06, &[], &wild)),
        reason::TOPIC_NAME_INVALID
    );
    // Bad UTF-8 and U+0000 in the client id.
    assert_eq!(
        reason_of(&connect_v5(2, &[], &[0, 2, 0xC3, 0x28])),
        reason::MALFORMED
    );
    assert_eq!(
        reason_of(&connect_v5(2, &[], &[0, 1, 0])),
        reason::MALFORMED
    );
}

fn publish_packet(
    flags: u8,
    topic: &str,
    id: Option<u16>,
    props: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut b = str_bytes(topic);
    if let Some(id) = id {
        b.extend(id.to_be_bytes());
    }
    put_varint(&mut b, props.len() as u32);
    b.extend_from_slice(props);
    b.extend_from_slice(payload);
    frame(0x30 | flags, &b)
}

fn decode_packet(packet: &[u8], version: Version) -> Result<Packet, Violation> {
    let (first, body) = body_of(packet);
    decode(first, body, version)
}

#[test]
fn publish_in() {
    let mut props = vec![0x01, 1, 0x02, 0, 0, 0, 7];
    props.push(0x26);
    props.extend(str_bytes("a"));
    props.extend(str_bytes("b"));
    let packet = publish_packet(0x0B, "a/b", Some(9), &props, b"hello");
    let Packet::Publish(p) = decode_packet(&packet, Version::V5).unwrap() else {
        panic!("not a publish");
    };
    assert_eq!(p.topic, "a/b");
    assert_eq!((p.qos, p.retain, p.dup, p.packet_id), (1, true, true, 9));
    assert_eq!(p.payload, b"hello");
    assert_eq!(p.props.expiry, Some(7));
    let mut forwarded = vec![0x01, 1, 0x26];
    forwarded.extend(str_bytes("a"));
    forwarded.extend(str_bytes("b"));
    assert_eq!(p.props.forward, forwarded);

    // 3.1.1 has no properties: the byte after the id is payload.
    let mut b = str_bytes("t");
    b.extend(b"\x00xyz");
    let Packet::Publish(p) = decode(0x30, &b, Version::V4).unwrap() else {
        panic!("not a publish");
    };
    assert_eq!(p.payload, b"\x00xyz");
    // An empty payload is fine.
    let Packet::Publish(p) =
        decode_packet(&publish_packet(0, "t", None, &[], b""), Version::V5).unwrap()
    else {
        panic!("not a publish");
    };
    assert!(p.payload.is_empty());
}

#[test]
fn publish_refusals() {
    let reason_of = |packet: Vec<u8>| decode_packet(&packet, Version::V5).unwrap_err().reason;
    assert_eq!(
        reason_of(publish_packet(0, "a/+", None, &[], b"")),
        reason::TOPIC_NAME_INVALID
    );
    assert_eq!(
        reason_of(publish_packet(0, "a/#", None, &[], b"")),
        reason::TOPIC_NAME_INVALID
    );
    assert_eq!(
        reason_of(publish_packet(0, "", None, &[], b"")),
        reason::TOPIC_NAME_INVALID
    );
    assert_eq!(
        reason_of(publish_packet(0, "a", None, &[0x23, 0, 1], b"")),
        reason::TOPIC_ALIAS_INVALID
    );
    assert_eq!(
        reason_of(publish_packet(0, "a", None, &[0x0B, 1], b"")),
        reason::PROTOCOL_ERROR
    );
    assert_eq!(
        reason_of(publish_packet(0x06, "a", Some(1), &[], b"")),
        reason::MALFORMED,
        "QoS 3"
    );
    assert_eq!(
        reason_of(publish_packet(0x08, "a", None, &[], b"")),
        reason::MALFORMED,
        "DUP on QoS 0"
    );
    assert_eq!(
        reason_of(publish_packet(0x02, "a", Some(0), &[], b"")),
        reason::PROTOCOL_ERROR,
        "packet id 0"
    );
    // Bad UTF-8 topic; truncated properties.
    let mut bad = vec![0, 2, 0xFF, 0xFE, 0];
    bad.extend(b"x");
    assert_eq!(reason_of(frame(0x30, &bad)), reason::MALFORMED);
    let mut truncated = str_bytes("a");
    truncated.extend([5, 0x02, 0, 0]);
    assert_eq!(reason_of(frame(0x30, &truncated)), reason::MALFORMED);
}

#[test]
fn acks_subscribe_unsubscribe_disconnect() {
    use Version::{V4, V5};
    assert_eq!(decode(0x40, &[0, 7], V5), Ok(Packet::Puback { id: 7 }));
    assert_eq!(
        decode(0x50, &[0, 7, 0x80, 0], V5),
        Ok(Packet::Pubrec {
            id: 7,
            reason: 0x80
        })
    );
    assert_eq!(decode(0x62, &[0, 7], V4), Ok(Packet::Pubrel { id: 7 }));
    assert_eq!(decode(0x70, &[0, 7, 0], V5), Ok(Packet::Pubcomp { id: 7 }));
    assert!(decode(0x60, &[0, 7], V5).is_err(), "PUBREL flags must be 2");
    assert!(decode(0x40, &[0], V5).is_err(), "truncated id");
    assert!(
        decode(0x40, &[0, 7, 0, 5, 1], V5).is_err(),
        "truncated properties"
    );

    let mut sub = vec![0, 3, 2, 0x0B, 42];
    sub.extend(str_bytes("a/+"));
    sub.push(0x2D); // retain handling 2, retain as published, no local, QoS 1
    sub.extend(str_bytes("#"));
    sub.push(0x02);
    assert_eq!(
        decode(0x82, &sub, V5),
        Ok(Packet::Subscribe {
            id: 3,
            subscription_id: Some(42),
            filters: vec![
                (
                    "a/+".into(),
                    SubOptions {
                        qos: 1,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: 2
                    }
                ),
                (
                    "#".into(),
                    SubOptions {
                        qos: 2,
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: 0
                    }
                ),
            ],
        })
    );
    let mut reserved = vec![0, 3, 0];
    reserved.extend(str_bytes("a"));
    reserved.push(0xC0);
    assert!(decode(0x82, &reserved, V5).is_err());
    let mut v4_bits = vec![0, 3];
    v4_bits.extend(str_bytes("a"));
    v4_bits.push(0x04);
    assert!(decode(0x82, &v4_bits, V4).is_err(), "3.1.1 reserved bits");
    assert!(decode(0x82, &[0, 3, 0], V5).is_err(), "no filter");
    assert!(decode(0x80, &sub, V5).is_err(), "SUBSCRIBE flags must be 2");
    assert!(
        decode(0x82, &[0, 3, 2, 0x0B, 0, 0, 1, b'a', 0], V5).is_err(),
        "subscription id 0"
    );

    let mut unsub = vec![0, 4, 0];
    unsub.extend(str_bytes("a/+"));
    assert_eq!(
        decode(0xA2, &unsub, V5),
        Ok(Packet::Unsubscribe {
            id: 4,
            filters: vec!["a/+".into()]
        })
    );
    assert_eq!(decode(0xC0, &[], V5), Ok(Packet::Pingreq));
    assert!(decode(0xC0, &[0], V5).is_err(), "PINGREQ with a body");
    assert_eq!(decode(0xE0, &[], V5), Ok(Packet::Disconnect { reason: 0 }));
    assert_eq!(
        decode(0xE0, &[4, 0], V5),
        Ok(Packet::Disconnect { reason: 4 })
    );
    assert_eq!(decode(0xE0, &[], V4), Ok(Packet::Disconnect { reason: 0 }));
    assert!(decode(0x10, &[], V5).is_err(), "second CONNECT");
    assert!(decode(0x20, &[0, 0], V5).is_err(), "CONNACK from a client");
    assert!(decode(0xF0, &[0], V5).is_err(), "AUTH");
    assert!(decode(0x00, &[], V5).is_err(), "reserved type 0");
}

#[test]
fn encodings() {
    use Version::{V4, V5};
    assert_eq!(
        connack_ok(
            V4,
            &ConnackProps {
                assigned_client_id: None,
                session_expiry_zero: false
            }
        ),
        [0x20, 2, 0, 0]
    );
    let ack = connack_ok(
        V5,
        &ConnackProps {
            assigned_client_id: Some("id-1"),
            session_expiry_zero: true,
        },
    );
    let (first, body) = body_of(&ack);
    assert_eq!((first, body[0], body[1]), (0x20, 0, 0));
    let mut c = Cursor::new(&body[2..]);
    let props = properties(&mut c).unwrap();
    assert_eq!(c.remaining(), 0);
    let get = |id| props.iter().find(|p| p.id == id).map(|p| p.value);
    assert_eq!(
        get(prop::MAXIMUM_PACKET_SIZE),
        Some(Value::U32(MAX_PACKET as u32))
    );
    assert_eq!(get(prop::TOPIC_ALIAS_MAXIMUM), Some(Value::U16(0)));
    assert_eq!(get(prop::RETAIN_AVAILABLE), Some(Value::Byte(1)));
    assert_eq!(get(prop::SHARED_AVAILABLE), Some(Value::Byte(0)));
    assert_eq!(get(prop::SESSION_EXPIRY), Some(Value::U32(0)));
    assert_eq!(get(prop::ASSIGNED_CLIENT_ID), Some(Value::Str("id-1")));

    assert_eq!(connack_refused(V4, 1), [0x20, 2, 0, 1]);
    assert_eq!(connack_refused(V5, 0x84), [0x20, 3, 0, 0x84, 0]);
    assert_eq!(codec_ack(kind::PUBACK, V5, 0x0102, 0), [0x40, 2, 1, 2]);
    assert_eq!(codec_ack(kind::PUBREL, V5, 5, 0x92), [0x62, 3, 0, 5, 0x92]);
    assert_eq!(codec_ack(kind::PUBCOMP, V4, 5, 0x92), [0x70, 2, 0, 5]);
    assert_eq!(
        sub_ack(kind::SUBACK, V5, 3, &[1, 0x8F]),
        [0x90, 5, 0, 3, 0, 1, 0x8F]
    );
    assert_eq!(sub_ack(kind::SUBACK, V4, 3, &[0x80]), [0x90, 3, 0, 3, 0x80]);
    assert_eq!(sub_ack(kind::UNSUBACK, V4, 3, &[0]), [0xB0, 2, 0, 3]);
    assert_eq!(
        sub_ack(kind::UNSUBACK, V5, 3, &[0x11]),
        [0xB0, 4, 0, 3, 0, 0x11]
    );
    assert_eq!(disconnect(0x95), [0xE0, 2, 0x95, 0]);
    assert_eq!(pingresp(), [0xD0, 0]);
}

fn codec_ack(t: u8, v: Version, id: u16, code: u8) -> Vec<u8> {
    ack(t, v, id, code)
}

#[test]
fn outgoing_publish_round_trips() {
    let payload = vec![7u8; 20_000];
    for version in [Version::V4, Version::V5] {
        for qos in 0..=2 {
            let out = OutPublish {
                topic: "a/b",
                payload: &payload,
                qos,
                retain: true,
                packet_id: if qos > 0 { 77 } else { 0 },
                forward: &[0x01, 1],
                expiry: Some(30),
                subscription_ids: &[5, 300],
            };
            let bytes = out.encode(version);
            assert_eq!(bytes.len(), out.encoded_len(version));
            if version == Version::V5 {
                // 0x0B 5, 0x0B 300 (two-byte varint) right before the payload.
                let tail = &bytes[bytes.len() - payload.len() - 5..bytes.len() - payload.len()];
                assert_eq!(tail, [0x0B, 5, 0x0B, 0xAC, 0x02]);
            }
            // A client PUBLISH must not carry subscription ids: decode one
            // without them with the client-side rules.
            let plain = OutPublish {
                subscription_ids: &[],
                ..out
            };
            let Packet::Publish(p) = decode_packet(&plain.encode(version), version).unwrap() else {
                panic!("not a publish");
            };
            assert_eq!(p.topic, "a/b");
            assert_eq!((p.qos, p.retain), (qos, true));
            assert_eq!(p.payload, payload);
            if version == Version::V5 {
                assert_eq!(p.props.expiry, Some(30));
                assert_eq!(p.props.forward, [0x01, 1]);
            }
        }
    }
}

/// xorshift64*: deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn samples() -> Vec<Vec<u8>> {
    let mut sub = vec![0x82, 0, 0, 3, 2, 0x0B, 1];
    sub.extend(str_bytes("a/#"));
    sub.push(0x15);
    let len = sub.len() - 2;
    sub[1] = len as u8;
    let sub = {
        let (f, b) = (sub[0], sub[2..].to_vec());
        frame(f, &b)
    };
    let mut props = vec![0x26];
    props.extend(str_bytes("k"));
    props.extend(str_bytes("v"));
    props.extend([0x03, 0, 1, b'x', 0x09, 0, 2, 1, 2]);
    vec![
        publish_packet(0x03, "tele/x/STATE", Some(1), &props, b"{\"a\":1}"),
        publish_packet(0x00, "$SYS/x", None, &[], b""),
        sub,
        frame(0xA2, &[0, 9, 0, 0, 1, b'a']),
        frame(0x50, &[0, 9, 0x10, 3, 0x1F, 0, 0]),
        frame(0xE0, &[4, 5, 0x11, 0, 0, 0, 1]),
    ]
}

#[test]
fn fuzz_decode_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let samples = samples();
    for round in 0..60_000 {
        let bytes: Vec<u8> = if round % 3 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = samples[rng.below(samples.len())].clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] = rng.next() as u8;
                    }
                    1 if !b.is_empty() => b.truncate(rng.below(b.len())),
                    _ => {
                        let i = rng.below(b.len() + 1);
                        b.insert(i, rng.next() as u8);
                    }
                }
            }
            b
        };
        let Some(&first) = bytes.first() else {
            continue;
        };
        let body = &bytes[1.min(bytes.len())..];
        for version in [Version::V4, Version::V5] {
            let _ = decode(first, body, version);
            if let Ok(Some((_, used))) = varint(body) {
                let _ = decode(first, &body[used..], version);
            }
        }
        let _ = decode_connect(body);
    }
}

#[test]
fn fuzz_connect_never_panics() {
    let mut rng = Rng(42);
    let mut will = str_bytes("id");
    will.extend([5, 0x18, 0, 0, 0, 0]);
    will.extend(str_bytes("t"));
    will.extend(str_bytes("p"));
    will.extend(str_bytes("u"));
    will.extend(str_bytes("pw"));
    let base = connect_v5(0xEE, &[0x11, 0, 0, 0, 5, 0x21, 0, 4], &will);
    decode_connect(&base).expect("the seed itself is valid");
    for _ in 0..30_000 {
        let mut b = base.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len());
            if rng.below(4) == 0 {
                b.truncate(i);
            } else {
                b[i] = rng.next() as u8;
            }
            if b.is_empty() {
                break;
            }
        }
        let _ = decode_connect(&b);
    }
}
