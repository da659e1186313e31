//! Improv Wi-Fi over serial (<https://www.improv-wifi.com/serial/>), the protocol ESPHome and
//! ESP Web Tools use to hand Wi-Fi credentials to a freshly flashed board from a browser: the
//! framing, a streaming parser that picks packets out of a console that also carries log
//! lines, the RPC commands, and the device's side as a state machine ([`Service`]) that says
//! what to send and what to do, leaving the doing (validating and storing the credentials,
//! joining the network, scanning) to the caller.
//!
//! A packet is `IMPROV`, the version (1), a type, the data length (≤ 255), the data, and a
//! checksum: the low byte of the sum of every byte before it, the header included.
//!
//! ```
//! use hearth_core::improv::{encode, Parser, PacketType};
//! let bytes = encode(PacketType::CurrentState, &[0x02]).unwrap();
//! let mut p = Parser::new();
//! let got: Vec<_> = b"log line\n".iter().chain(&bytes).filter_map(|b| p.push(*b)).collect();
//! assert_eq!(got.len(), 1);
//! assert_eq!(got[0].as_ref().unwrap().data, [0x02]);
//! ```

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Every packet starts with this.
pub const HEADER: &[u8; 6] = b"IMPROV";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// The most data a packet carries (its length is one byte).
pub const MAX_DATA: usize = 255;

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Device to client: the provisioning state ([`State`]).
    CurrentState = 0x01,
    /// Device to client: the error state ([`ErrorCode`]).
    ErrorState = 0x02,
    /// Client to device: an RPC command.
    Rpc = 0x03,
    /// Device to client: the answer to an RPC command, a list of strings.
    RpcResult = 0x04,
}

impl PacketType {
    /// The type a packet's type byte names, if it is one of the four.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::CurrentState,
            0x02 => Self::ErrorState,
            0x03 => Self::Rpc,
            0x04 => Self::RpcResult,
            _ => return None,
        })
    }
}

/// The provisioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Ready to accept credentials.
    Ready = 0x02,
    /// Credentials received; joining the network.
    Provisioning = 0x03,
    /// On the network.
    Provisioned = 0x04,
}

/// The error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No error.
    None = 0x00,
    /// The RPC packet was malformed.
    InvalidRpc = 0x01,
    /// The command is unknown (or optional and not implemented).
    UnknownRpc = 0x02,
    /// The credentials were received, but joining the network failed.
    UnableToConnect = 0x03,
    /// Anything else.
    Unknown = 0xFF,
}

/// RPC command ids.
pub mod command {
    /// Send Wi-Fi settings: SSID and password.
    pub const WIFI_SETTINGS: u8 = 0x01;
    /// Request the current state.
    pub const CURRENT_STATE: u8 = 0x02;
    /// Request device information.
    pub const DEVICE_INFO: u8 = 0x03;
    /// Request the Wi-Fi networks the device sees.
    pub const SCAN: u8 = 0x04;
    /// Get (or set) the host name.
    pub const HOSTNAME: u8 = 0x05;
    /// Get (or set) the device name.
    pub const DEVICE_NAME: u8 = 0x06;
    /// Get the network state (flags and URLs). Hearth has no web page and lists its IP address
    /// there instead.
    pub const NETWORK_STATE: u8 = 0x07;
}

/// A packet as received: its type byte and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The type byte (a [`PacketType`] when it is one this side knows).
    pub kind: u8,
    /// The data.
    pub data: Vec<u8>,
}

/// Why bytes that started like a packet are not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A version this module does not speak.
    Version(u8),
    /// The checksum does not match.
    Checksum {
        /// What the bytes sum to.
        computed: u8,
        /// What the packet says.
        sent: u8,
    },
}

/// More data than a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl core::fmt::Display for TooLong {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} bytes do not fit an Improv packet (at most {MAX_DATA})",
            self.0
        )
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// The packet of `kind` carrying `data`.
pub fn encode(kind: PacketType, data: &[u8]) -> Result<Vec<u8>, TooLong> {
    let len = u8::try_from(data.len()).map_err(|_| TooLong(data.len()))?;
    let mut out = Vec::with_capacity(HEADER.len() + 4 + data.len());
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&[VERSION, kind as u8, len]);
    out.extend_from_slice(data);
    out.push(checksum(&out));
    Ok(out)
}

/// Strings as the RPC formats carry them: each one length-prefixed.
fn strings(list: &[&str]) -> Result<Vec<u8>, TooLong> {
    let mut out = Vec::new();
    for s in list {
        let len = u8::try_from(s.len()).map_err(|_| TooLong(s.len()))?;
        out.push(len);
        out.extend_from_slice(s.as_bytes());
    }
    Ok(out)
}

/// An RPC packet (client side): `command` with `data`.
pub fn rpc(command: u8, data: &[u8]) -> Result<Vec<u8>, TooLong> {
    let len = u8::try_from(data.len()).map_err(|_| TooLong(data.len()))?;
    let mut body = vec![command, len];
    body.extend_from_slice(data);
    encode(PacketType::Rpc, &body)
}

/// The "send Wi-Fi settings" RPC packet (client side).
pub fn wifi_settings(ssid: &str, password: &str) -> Result<Vec<u8>, TooLong> {
    rpc(command::WIFI_SETTINGS, &strings(&[ssid, password])?)
}

/// An RPC result packet answering `command` with `list`.
pub fn rpc_result(command: u8, list: &[&str]) -> Result<Vec<u8>, TooLong> {
    let data = strings(list)?;
    let len = u8::try_from(data.len()).map_err(|_| TooLong(data.len()))?;
    let mut body = vec![command, len];
    body.extend_from_slice(&data);
    encode(PacketType::RpcResult, &body)
}

/// The strings of an RPC result's data (client side): `None` when the lengths do not add up
/// or a string is not UTF-8.
pub fn result_strings(data: &[u8]) -> Option<(u8, Vec<String>)> {
    let (&cmd, rest) = data.split_first()?;
    let (&len, mut rest) = rest.split_first()?;
    if usize::from(len) != rest.len() {
        return None;
    }
    let mut out = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let s = tail.get(..usize::from(n))?;
        out.push(String::from(core::str::from_utf8(s).ok()?));
        rest = &tail[usize::from(n)..];
    }
    Some((cmd, out))
}

/// Picks packets out of a byte stream that also carries other text (a console's log lines):
/// anything that is not a packet is skipped. Memory is bounded by one packet.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    /// A parser waiting for a header.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one byte: a packet, or why the bytes since the last header were not one, once
    /// they are complete.
    pub fn push(&mut self, byte: u8) -> Option<Result<Packet, FrameError>> {
        let at = self.buf.len();
        if at < HEADER.len() {
            if byte == HEADER[at] {
                self.buf.push(byte);
            } else {
                // Not the header after all: this byte may start one.
                self.buf.clear();
                if byte == HEADER[0] {
                    self.buf.push(byte);
                }
            }
            return None;
        }
        self.buf.push(byte);
        if at == HEADER.len() && byte != VERSION {
            self.buf.clear();
            return Some(Err(FrameError::Version(byte)));
        }
        // header, version, type, length, data, checksum
        let &len = self.buf.get(HEADER.len() + 2)?;
        let total = HEADER.len() + 3 + usize::from(len) + 1;
        if self.buf.len() < total {
            return None;
        }
        let frame = core::mem::take(&mut self.buf);
        let computed = checksum(&frame[..total - 1]);
        let sent = frame[total - 1];
        if computed != sent {
            return Some(Err(FrameError::Checksum { computed, sent }));
        }
        Some(Ok(Packet {
            kind: frame[HEADER.len() + 1],
            data: frame[HEADER.len() + 3..total - 1].to_vec(),
        }))
    }
}

/// An RPC command, as the device reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rpc {
    /// Join this network.
    WifiSettings {
        /// The network's name (1..=32 bytes).
        ssid: String,
        /// Its password (empty for an open network).
        password: String,
    },
    /// Send the current state.
    CurrentState,
    /// Send the device information.
    DeviceInfo,
    /// Send the networks in range.
    Scan,
    /// Send the network state.
    NetworkState,
}

/// Read an RPC packet's data: the command, or the error state to answer with.
pub fn parse_rpc(data: &[u8]) -> Result<Rpc, ErrorCode> {
    let (&cmd, rest) = data.split_first().ok_or(ErrorCode::InvalidRpc)?;
    let (&len, body) = rest.split_first().ok_or(ErrorCode::InvalidRpc)?;
    if usize::from(len) != body.len() {
        return Err(ErrorCode::InvalidRpc);
    }
    match cmd {
        command::WIFI_SETTINGS => {
            let text = |b: &[u8]| {
                core::str::from_utf8(b)
                    .map(String::from)
                    .map_err(|_| ErrorCode::InvalidRpc)
            };
            let (&n, rest) = body.split_first().ok_or(ErrorCode::InvalidRpc)?;
            let ssid = rest.get(..usize::from(n)).ok_or(ErrorCode::InvalidRpc)?;
            let rest = &rest[usize::from(n)..];
            let (&m, rest) = rest.split_first().ok_or(ErrorCode::InvalidRpc)?;
            if usize::from(m) != rest.len() || ssid.is_empty() || ssid.len() > 32 {
                return Err(ErrorCode::InvalidRpc);
            }
            Ok(Rpc::WifiSettings {
                ssid: text(ssid)?,
                password: text(rest)?,
            })
        }
        command::CURRENT_STATE => Ok(Rpc::CurrentState),
        command::DEVICE_INFO => Ok(Rpc::DeviceInfo),
        command::SCAN => Ok(Rpc::Scan),
        command::NETWORK_STATE => Ok(Rpc::NetworkState),
        _ => Err(ErrorCode::UnknownRpc),
    }
}

/// What the device says about itself (the device-information result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Firmware name (`Hearth`).
    pub firmware: String,
    /// Its version.
    pub version: String,
    /// Chip or board (`esp32c3`).
    pub chip: String,
    /// The device's name (`mqttname`, or what it will be called).
    pub name: String,
}

/// What the caller must do after a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Check these credentials as a config would be, store them, and join the network; then
    /// call [`Service::joined`] or [`Service::failed`].
    Join {
        /// The network's name.
        ssid: String,
        /// Its password.
        password: String,
    },
    /// Scan for networks; then call [`Service::scanned`].
    Scan,
}

/// A network in range, for a scan's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Its name.
    pub ssid: String,
    /// Its signal, dBm.
    pub rssi: i8,
    /// Does it need a password?
    pub secured: bool,
}

/// What the device answers: packets to write, and what to do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Step {
    /// Packets to write, in order.
    pub send: Vec<Vec<u8>>,
    /// What to do, if anything.
    pub action: Option<Action>,
}

/// The device's side of Improv: the state, and the answers to each packet.
#[derive(Debug, Clone)]
pub struct Service {
    state: State,
    info: DeviceInfo,
    /// The device's IP address once provisioned, for the network state. (The provisioning
    /// result carries no URL: Hearth has no web page of its own, and the protocol allows an
    /// empty list.)
    address: Option<String>,
    online: bool,
    wireless: bool,
}

fn packet(kind: PacketType, byte: u8) -> Vec<u8> {
    // One byte always fits.
    encode(kind, &[byte]).unwrap_or_default()
}

impl Service {
    /// A device that is already on a network (`provisioned`) or waits for credentials.
    pub fn new(info: DeviceInfo, provisioned: bool, wireless: bool) -> Self {
        Service {
            state: if provisioned {
                State::Provisioned
            } else {
                State::Ready
            },
            info,
            address: None,
            online: provisioned,
            wireless,
        }
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.state
    }

    fn provisioned_result(&self) -> Vec<u8> {
        rpc_result(command::WIFI_SETTINGS, &[]).unwrap_or_default()
    }

    /// Answer one packet from the client. Packets a device never receives (states, results)
    /// are ignored.
    pub fn handle(&mut self, packet_in: &Packet) -> Step {
        if PacketType::from_byte(packet_in.kind) != Some(PacketType::Rpc) {
            return Step::default();
        }
        let rpc = match parse_rpc(&packet_in.data) {
            Ok(rpc) => rpc,
            Err(code) => {
                return Step {
                    send: vec![packet(PacketType::ErrorState, code as u8)],
                    action: None,
                }
            }
        };
        // Every command first clears the error state.
        let mut send = vec![packet(PacketType::ErrorState, ErrorCode::None as u8)];
        let mut action = None;
        match rpc {
            Rpc::WifiSettings { .. } if self.state != State::Ready => {
                // Joining already, or on the network with the config's own credentials: a
                // running device changes them through a signed config push, not the console.
                send = vec![packet(PacketType::ErrorState, ErrorCode::Unknown as u8)];
            }
            Rpc::WifiSettings { ssid, password } => {
                self.state = State::Provisioning;
                send.push(packet(PacketType::CurrentState, self.state as u8));
                action = Some(Action::Join { ssid, password });
            }
            Rpc::CurrentState => {
                send.push(packet(PacketType::CurrentState, self.state as u8));
                if self.state == State::Provisioned {
                    send.push(self.provisioned_result());
                }
            }
            Rpc::DeviceInfo => {
                let i = &self.info;
                let list = [
                    i.firmware.as_str(),
                    i.version.as_str(),
                    i.chip.as_str(),
                    i.name.as_str(),
                ];
                match rpc_result(command::DEVICE_INFO, &list) {
                    Ok(p) => send.push(p),
                    Err(_) => send = vec![packet(PacketType::ErrorState, ErrorCode::Unknown as u8)],
                }
            }
            Rpc::Scan => action = Some(Action::Scan),
            Rpc::NetworkState => {
                let flags = u8::from(self.online) | if self.wireless { 0x02 } else { 0x04 };
                let flags = alloc::format!("{flags}");
                let mut list = vec![flags.as_str()];
                if self.online {
                    list.extend(self.address.as_deref());
                }
                send.push(rpc_result(command::NETWORK_STATE, &list).unwrap_or_default());
            }
        }
        Step { send, action }
    }

    /// The network was joined with the credentials of [`Action::Join`] (and they are stored),
    /// and the device has `address`: the state and the provisioning result.
    pub fn joined(&mut self, address: Option<&str>) -> Vec<Vec<u8>> {
        self.state = State::Provisioned;
        self.online = true;
        self.address = address.map(String::from);
        vec![
            packet(PacketType::CurrentState, self.state as u8),
            self.provisioned_result(),
        ]
    }

    /// The credentials were refused (by the config rules) or the network could not be joined:
    /// the error, and ready for new credentials.
    pub fn failed(&mut self) -> Vec<Vec<u8>> {
        self.state = State::Ready;
        vec![
            packet(PacketType::ErrorState, ErrorCode::UnableToConnect as u8),
            packet(PacketType::CurrentState, self.state as u8),
        ]
    }

    /// A scan's results: one result per network (those whose strings do not fit a packet are
    /// left out), then an empty one that ends the list.
    pub fn scanned(&self, networks: &[Network]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for n in networks {
            let rssi = alloc::format!("{}", n.rssi);
            let auth = if n.secured { "YES" } else { "NO" };
            if let Ok(p) = rpc_result(command::SCAN, &[&n.ssid, &rssi, auth]) {
                out.push(p);
            }
        }
        out.extend(rpc_result(command::SCAN, &[]));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<Result<Packet, FrameError>> {
        let mut p = Parser::new();
        bytes.iter().filter_map(|b| p.push(*b)).collect()
    }

    fn info() -> DeviceInfo {
        DeviceInfo {
            firmware: "Hearth".into(),
            version: "0.1.0".into(),
            chip: "esp32c3".into(),
            name: "balcony".into(),
        }
    }

    #[test]
    fn the_published_example_is_framed_as_the_description_says() {
        // The description's example: SSID MyWirelessAP, password mysecurepassword.
        let p = wifi_settings("MyWirelessAP", "mysecurepassword").unwrap();
        let mut body = vec![0x01, 0x1E, 0x0C];
        body.extend_from_slice(b"MyWirelessAP");
        body.push(0x10);
        body.extend_from_slice(b"mysecurepassword");
        assert_eq!(&p[..6], b"IMPROV");
        assert_eq!(&p[6..9], &[1, 0x03, body.len() as u8]);
        assert_eq!(&p[9..p.len() - 1], &body[..]);
        let sum = p[..p.len() - 1].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        assert_eq!(p[p.len() - 1], sum);
        assert_eq!(
            parse_rpc(&parse_all(&p)[0].clone().unwrap().data),
            Ok(Rpc::WifiSettings {
                ssid: "MyWirelessAP".into(),
                password: "mysecurepassword".into()
            })
        );
    }

    #[test]
    fn packets_are_found_between_log_lines_and_bad_ones_are_reported() {
        let state = encode(PacketType::CurrentState, &[0x02]).unwrap();
        let mut corrupt = state.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x55;
        let mut stream = b"[ 1.2] boot: IMPRO? IMPIMPROV".to_vec();
        stream.truncate(stream.len() - 6); // a header cut short, then the real thing
        stream.extend_from_slice(&state);
        stream.extend_from_slice(b"\nwifi: scanning\n");
        stream.extend_from_slice(&corrupt);
        stream.extend_from_slice(b"IMPROV\x02");
        stream.extend_from_slice(&state);
        let got = parse_all(&stream);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[0],
            Ok(Packet {
                kind: 1,
                data: vec![2]
            })
        );
        assert!(matches!(got[1], Err(FrameError::Checksum { .. })));
        assert_eq!(got[2], Err(FrameError::Version(2)));
        assert!(got[3].is_ok());
    }

    #[test]
    fn any_bytes_never_panic_and_never_grow_the_parser_past_one_packet() {
        let mut p = Parser::new();
        let mut x: u32 = 0x1234_5678;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Mostly header bytes, so frames of every length start.
            let b = if i % 3 == 0 {
                b"IMPROV\x01"[(x % 7) as usize]
            } else {
                x as u8
            };
            let _ = p.push(b);
            assert!(p.buf.len() <= HEADER.len() + 4 + MAX_DATA);
        }
        for data in [&[][..], &[1], &[1, 5, 0], &[1, 3, 40, 1, 2], &[1, 2, 0, 0]] {
            assert_eq!(parse_rpc(data), Err(ErrorCode::InvalidRpc), "{data:?}");
        }
        assert_eq!(parse_rpc(&[9, 0]), Err(ErrorCode::UnknownRpc));
        let long = "x".repeat(33);
        let p = wifi_settings(&long, "").unwrap();
        assert_eq!(parse_rpc(&p[9..p.len() - 1]), Err(ErrorCode::InvalidRpc));
        assert_eq!(rpc(1, &[0; 256]), Err(TooLong(256)));
    }

    fn only(step: &[Vec<u8>]) -> Vec<Packet> {
        step.iter()
            .flat_map(|p| parse_all(p))
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_board_without_wifi_is_provisioned_step_by_step() {
        let mut s = Service::new(info(), false, true);
        let ask = |cmd| Packet {
            kind: 3,
            data: vec![cmd, 0],
        };
        // State: ready, after the error state is cleared.
        let step = s.handle(&ask(command::CURRENT_STATE));
        let got = only(&step.send);
        assert_eq!((got[0].kind, &got[0].data[..]), (2, &[0][..]));
        assert_eq!((got[1].kind, &got[1].data[..]), (1, &[2][..]));
        assert_eq!(got.len(), 2);
        // Device information: four strings.
        let got = only(&s.handle(&ask(command::DEVICE_INFO)).send);
        let (cmd, list) = result_strings(&got[1].data).unwrap();
        assert_eq!(
            (cmd, list),
            (
                3,
                vec![
                    "Hearth".into(),
                    "0.1.0".into(),
                    "esp32c3".into(),
                    "balcony".into()
                ]
            )
        );
        // Credentials: provisioning, and the caller is asked to join.
        let creds = wifi_settings("Home", "correct horse").unwrap();
        let packet = parse_all(&creds).remove(0).unwrap();
        let step = s.handle(&packet);
        assert_eq!(
            step.action,
            Some(Action::Join {
                ssid: "Home".into(),
                password: "correct horse".into()
            })
        );
        assert_eq!(only(&step.send)[1].data, [State::Provisioning as u8]);
        // The network refused: unable to connect, ready again.
        let got = only(&s.failed());
        assert_eq!(
            (got[0].kind, got[0].data[0]),
            (2, ErrorCode::UnableToConnect as u8)
        );
        assert_eq!(s.state(), State::Ready);
        // Again, and joined: provisioned with an empty result (no web page).
        s.handle(&packet);
        let got = only(&s.joined(Some("192.168.1.40")));
        assert_eq!(got[0].data, [State::Provisioned as u8]);
        assert_eq!(result_strings(&got[1].data), Some((1, vec![])));
        // Credentials again once provisioned: refused, the state is kept.
        let got = only(&s.handle(&packet).send);
        assert_eq!((got.len(), got[0].data[0]), (1, ErrorCode::Unknown as u8));
        assert_eq!(s.state(), State::Provisioned);
        // Asked again later: the state and the same result.
        let got = only(&s.handle(&ask(command::CURRENT_STATE)).send);
        assert_eq!(got.len(), 3);
        // Network state: online over Wi-Fi.
        let got = only(&s.handle(&ask(command::NETWORK_STATE)).send);
        assert_eq!(
            result_strings(&got[1].data),
            Some((7, vec!["3".into(), "192.168.1.40".into()]))
        );
        // Unknown and malformed commands are errors, nothing else.
        let got = only(&s.handle(&ask(command::HOSTNAME)).send);
        assert_eq!(
            (got.len(), got[0].data[0]),
            (1, ErrorCode::UnknownRpc as u8)
        );
        let got = only(
            &s.handle(&Packet {
                kind: 3,
                data: vec![1, 9],
            })
            .send,
        );
        assert_eq!(
            (got.len(), got[0].data[0]),
            (1, ErrorCode::InvalidRpc as u8)
        );
        // What a device sends is ignored when it comes back (an echoing console).
        assert_eq!(
            s.handle(&Packet {
                kind: 1,
                data: vec![2]
            }),
            Step::default()
        );
    }

    #[test]
    fn a_scan_lists_each_network_then_an_empty_result() {
        let mut s = Service::new(info(), false, true);
        let step = s.handle(&Packet {
            kind: 3,
            data: vec![command::SCAN, 0],
        });
        assert_eq!(step.action, Some(Action::Scan));
        let nets = [
            Network {
                ssid: "Home".into(),
                rssi: -48,
                secured: true,
            },
            Network {
                ssid: "Café".into(),
                rssi: -80,
                secured: false,
            },
        ];
        let got = only(&s.scanned(&nets));
        let lists: Vec<_> = got
            .iter()
            .map(|p| result_strings(&p.data).unwrap().1)
            .collect();
        assert_eq!(
            lists,
            [
                vec![String::from("Home"), "-48".into(), "YES".into()],
                vec![String::from("Café"), "-80".into(), "NO".into()],
                vec![],
            ]
        );
    }
}
