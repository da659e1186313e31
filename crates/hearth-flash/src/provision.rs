//! `hearth provision --port PORT`: the client side of Improv Serial. It gives a board (or a
//! simulated device's console) that waits for Wi-Fi its network, and reports what the device
//! answers: its identity, the outcome, and its address.
//!
//! The conversation, as the protocol describes it: ask for the current state (retried while
//! the board boots), ask for the device information, send the credentials, then wait for the
//! provisioned state and its result, or for an error state. The device's log lines between
//! the packets are handed to the caller, so a refusal's reason is shown where it happens.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use hearth_core::improv::{
    self, command, result_strings, ErrorCode, Packet, PacketType, Parser, State,
};

use crate::FlashError;

/// How long each question waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How many times the state is asked for before the port is given up on (a board may be
/// booting when the client starts).
const STATE_TRIES: u32 = 5;
/// How long joining may take: the device's own join timeout, with a margin.
const JOIN_WAIT: Duration = Duration::from_secs(60);

/// What the device said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// Firmware, version, chip, name (the device-information result).
    pub info: Vec<String>,
    /// Its state before the credentials were sent.
    pub was: State,
    /// Its address on the network, if it gave one.
    pub address: Option<String>,
}

/// Bytes from the device: Improv packets, and the log lines around them.
struct Link<'a, P> {
    port: P,
    parser: Parser,
    line: Vec<u8>,
    queue: VecDeque<Packet>,
    log: &'a mut dyn FnMut(&str),
}

fn board(e: impl std::fmt::Display) -> FlashError {
    FlashError::Board(e.to_string())
}

impl<P: Read + Write> Link<'_, P> {
    fn send(&mut self, bytes: &[u8]) -> Result<(), FlashError> {
        self.port.write_all(bytes).map_err(board)?;
        self.port.flush().map_err(board)
    }

    fn rpc(&mut self, cmd: u8, data: &[u8]) -> Result<(), FlashError> {
        let packet = improv::rpc(cmd, data).map_err(|e| FlashError::Usage(e.to_string()))?;
        self.send(&packet)
    }

    /// The next packet before `deadline`, or `None`.
    fn packet(&mut self, deadline: Instant) -> Result<Option<Packet>, FlashError> {
        let mut buf = [0u8; 256];
        while self.queue.is_empty() && Instant::now() < deadline {
            let n = match self.port.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(board(e)),
            };
            for &b in &buf[..n] {
                if let Some(Ok(packet)) = self.parser.push(b) {
                    // The packet's bytes are not a log line.
                    self.line.clear();
                    self.queue.push_back(packet);
                } else if b == b'\n' {
                    self.flush_line();
                } else {
                    self.line.push(b);
                }
            }
        }
        Ok(self.queue.pop_front())
    }

    fn flush_line(&mut self) {
        let text = strip_colours(&String::from_utf8_lossy(&self.line));
        let text = text.trim_end();
        self.line.clear();
        // A line with control bytes is the start of a packet that was cut by a line break.
        if !text.is_empty() && !text.chars().any(|c| c.is_control()) {
            (self.log)(text);
        }
    }

    /// Wait for the current state (error states before it are errors of the question).
    fn state(&mut self, deadline: Instant) -> Result<Option<Result<State, u8>>, FlashError> {
        while let Some(p) = self.packet(deadline)? {
            match (PacketType::from_byte(p.kind), p.data.first()) {
                (Some(PacketType::CurrentState), Some(&s)) => return Ok(Some(state(s))),
                (Some(PacketType::ErrorState), Some(&e)) if e != ErrorCode::None as u8 => {
                    return Ok(Some(Err(e)))
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Wait for the result of `cmd`.
    fn result(&mut self, cmd: u8, deadline: Instant) -> Result<Option<Vec<String>>, FlashError> {
        while let Some(p) = self.packet(deadline)? {
            if PacketType::from_byte(p.kind) == Some(PacketType::RpcResult) {
                if let Some((c, list)) = result_strings(&p.data) {
                    if c == cmd {
                        return Ok(Some(list));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// A log line without its terminal colour codes (`ESC [ … m`, as the chip's logger writes).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the sequence: `[`, parameters, one final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn state(b: u8) -> Result<State, u8> {
    match b {
        0x02 => Ok(State::Ready),
        0x03 => Ok(State::Provisioning),
        0x04 => Ok(State::Provisioned),
        other => Err(other),
    }
}

fn error_text(code: u8) -> &'static str {
    match code {
        0x01 => "the device could not read the request (invalid RPC)",
        0x02 => "the device does not know the request",
        0x03 => "the device could not join the network with these credentials (its log above says why)",
        _ => "the device refused (it is not waiting for Wi-Fi: its config has a network already; change it with `hearth config push`)",
    }
}

/// Give the device on `port` this network. `log` receives the device's log lines.
pub fn provision<P: Read + Write>(
    port: P,
    ssid: &str,
    password: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Provisioned, FlashError> {
    let credentials = improv::wifi_settings(ssid, password).map_err(|_| {
        FlashError::Usage("the network name and password are too long for Improv".into())
    })?;
    let mut link = Link {
        port,
        parser: Parser::new(),
        line: Vec::new(),
        queue: VecDeque::new(),
        log,
    };
    let mut was = None;
    for _ in 0..STATE_TRIES {
        link.rpc(command::CURRENT_STATE, &[])?;
        if let Some(s) = link.state(Instant::now() + ANSWER_WAIT)? {
            was = Some(s.map_err(|code| board(error_text(code)))?);
            break;
        }
    }
    let was = was.ok_or_else(|| {
        board("no Improv answer: is the board running Hearth, and is this its USB console?")
    })?;
    link.rpc(command::DEVICE_INFO, &[])?;
    let info = link
        .result(command::DEVICE_INFO, Instant::now() + ANSWER_WAIT)?
        .unwrap_or_default();
    if was != State::Ready {
        return Err(board(format!(
            "{} is not waiting for Wi-Fi (state {was:?}): its config has a network already; \
             change it with `hearth config push`",
            info.get(3).map(String::as_str).unwrap_or("the device")
        )));
    }
    link.send(&credentials)?;
    let deadline = Instant::now() + JOIN_WAIT;
    loop {
        match link.state(deadline)? {
            None => {
                return Err(board(
                    "no answer from the device while it joined the network",
                ))
            }
            Some(Err(code)) => return Err(board(error_text(code))),
            Some(Ok(State::Provisioned)) => break,
            Some(Ok(_)) => {}
        }
    }
    // The provisioning result follows the state; then the address.
    link.result(command::WIFI_SETTINGS, Instant::now() + ANSWER_WAIT)?;
    link.rpc(command::NETWORK_STATE, &[])?;
    let address = link
        .result(command::NETWORK_STATE, Instant::now() + ANSWER_WAIT)?
        .and_then(|list| list.get(1).cloned());
    Ok(Provisioned { info, was, address })
}

/// [`provision`] over the serial port `port`.
pub fn provision_port(
    port: &str,
    ssid: &str,
    password: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Provisioned, FlashError> {
    use serialport::SerialPort;
    let serial = serialport::new(port, 115_200)
        .timeout(Duration::from_millis(100))
        .open_native()
        .map_err(|e| FlashError::Board(format!("cannot open {port}: {e}")))?;
    // What the device wrote before anyone listened is old news.
    let _ = serial.clear(serialport::ClearBuffer::Input);
    provision(serial, ssid, password, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::improv::{Action, DeviceInfo, Service};
    use std::os::unix::net::UnixStream;

    /// A device on the other end of `port`: log lines around every answer, joins `Home` with
    /// `right-passphrase` only.
    fn device(mut port: UnixStream, provisioned: bool) {
        let info = DeviceInfo {
            firmware: "Hearth".into(),
            version: "0.1.0".into(),
            chip: "esp32c3".into(),
            name: "balcony".into(),
        };
        let mut service = Service::new(info, provisioned, true);
        let mut parser = Parser::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = port.read(&mut buf) {
            if n == 0 {
                return;
            }
            for &b in &buf[..n] {
                let Some(Ok(p)) = parser.push(b) else {
                    continue;
                };
                let step = service.handle(&p);
                let mut out = b"\x1b[32mI (1000) a log line in colour\x1b[0m\n".to_vec();
                step.send.iter().for_each(|s| out.extend(s));
                if let Some(Action::Join { ssid, password }) = step.action {
                    out.extend(b"[ 2.000] improv: joining\n");
                    let ok = ssid == "Home" && password == "right-passphrase";
                    let answer = if ok {
                        service.joined(Some("192.168.1.40"))
                    } else {
                        out.extend(b"[ 3.000] improv: cannot join Home: the network refused the password\n");
                        service.failed()
                    };
                    answer.iter().for_each(|s| out.extend(s));
                }
                if port.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }

    fn run(
        ssid: &str,
        password: &str,
        provisioned: bool,
    ) -> (Result<Provisioned, FlashError>, Vec<String>) {
        let (client, dev) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        std::thread::spawn(move || device(dev, provisioned));
        let mut lines = Vec::new();
        let got = provision(client, ssid, password, &mut |l| lines.push(l.to_string()));
        (got, lines)
    }

    #[test]
    fn provisions_and_reports_the_device_and_its_address() {
        let (got, lines) = run("Home", "right-passphrase", false);
        let got = got.unwrap();
        assert_eq!(got.info, ["Hearth", "0.1.0", "esp32c3", "balcony"]);
        assert_eq!(
            (got.was, got.address.as_deref()),
            (State::Ready, Some("192.168.1.40"))
        );
        assert!(
            lines.iter().any(|l| l.ends_with("improv: joining")),
            "{lines:?}"
        );
        assert!(lines.iter().all(|l| !l.contains("IMPROV")), "{lines:?}");
        assert!(
            lines.iter().any(|l| l == "I (1000) a log line in colour"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_refused_join_is_an_error_with_the_device_log() {
        let (got, lines) = run("Home", "wrong-passphrase", false);
        let e = got.unwrap_err().to_string();
        assert!(e.contains("could not join"), "{e}");
        assert!(
            lines.iter().any(|l| l.contains("refused the password")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_device_with_wifi_already_is_left_alone() {
        let (got, _) = run("Home", "right-passphrase", true);
        let e = got.unwrap_err().to_string();
        assert!(e.contains("balcony is not waiting for Wi-Fi"), "{e}");
    }

    #[test]
    fn a_silent_port_is_reported() {
        let (client, _dev) = UnixStream::pair().unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let e = provision(client, "Home", "x", &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("no Improv answer"), "{e}");
    }
}
