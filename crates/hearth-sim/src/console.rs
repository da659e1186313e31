//! The simulated board's serial console, and Wi-Fi provisioning over it (Improv Serial).
//!
//! A device whose config awaits Wi-Fi ([`hearth_config::provision`]) does what the chip does
//! on its USB console: it opens a pseudo-terminal, links it as `console` in the state directory
//! (the simulator's `/dev/ttyACM0`), mirrors its log there and runs the Improv service
//! ([`hearth_core::improv::Service`]) on it. Credentials are written into the config text,
//! checked with every rule a pushed config must pass ([`hearth_device::CONFIG_RULES`]), then
//! tried against the simulated access points (`--ap`, the file [`ACCESS_POINTS`]). Only a
//! network joined with them is stored (in [`PROVISIONED_CONFIG`], the simulator's config
//! partition) and the device boots on; wrong credentials leave it waiting, as before.
//!
//! `hearth provision --port DIR/console` is the client; so would be a browser installer, on a
//! board.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use hearth_core::improv::{Action, DeviceInfo, Network, Parser, Service};

/// The console's link in the state directory: a symlink to the pseudo-terminal.
pub const CONSOLE_LINK: &str = "console";
/// The config with the Wi-Fi given over Improv: the simulator's config partition, used
/// instead of the `--config` file from then on (a config pushed over MQTT still comes first).
pub const PROVISIONED_CONFIG: &str = "provisioned-config.txt";
/// The simulated access points in range, one per line: the name, a tab, the password (empty:
/// open). Written by `hearth sim --ap`.
pub const ACCESS_POINTS: &str = "access-points";

/// The console's terminal, for the log mirror.
static TTY: OnceLock<Mutex<File>> = OnceLock::new();

/// Mirror a console line onto the serial console, when the device has one open. A console
/// nobody reads drops lines rather than stall the device.
pub fn mirror(line: &str) {
    if let Some(tty) = TTY.get() {
        if let Ok(mut tty) = tty.lock() {
            let _ = tty.write_all(format!("{line}\r\n").as_bytes());
        }
    }
}

/// A simulated access point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPoint {
    /// Its name.
    pub ssid: String,
    /// Its password; empty: open.
    pub password: String,
}

impl AccessPoint {
    /// `NAME` (open) or `NAME:PASSWORD` (split at the first colon).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ssid, password) = s.split_once(':').unwrap_or((s, ""));
        if ssid.is_empty() || ssid.len() > 32 || ssid.contains(['\t', '\n']) {
            return Err(format!(
                "{s:?}: expected NAME or NAME:PASSWORD, with a name of 1..=32 bytes"
            ));
        }
        if password.contains(['\t', '\n']) {
            return Err(format!("{s:?}: the password has a tab or a line break"));
        }
        Ok(AccessPoint {
            ssid: ssid.into(),
            password: password.into(),
        })
    }
}

/// Write the access points for the device in `state`.
pub fn write_access_points(state: &Path, aps: &[AccessPoint]) -> std::io::Result<()> {
    let text: String = aps
        .iter()
        .map(|a| format!("{}\t{}\n", a.ssid, a.password))
        .collect();
    std::fs::write(state.join(ACCESS_POINTS), text)
}

fn access_points(state: &Path) -> Vec<AccessPoint> {
    std::fs::read_to_string(state.join(ACCESS_POINTS))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (ssid, password) = l.split_once('\t')?;
            Some(AccessPoint {
                ssid: ssid.into(),
                password: password.into(),
            })
        })
        .collect()
}

/// The pseudo-terminal: the device's end (non-blocking), and the user's end kept open by the
/// device so the terminal survives clients coming and going.
struct Pty {
    master: File,
    _slave: File,
    path: PathBuf,
}

fn os_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn open_pty() -> std::io::Result<Pty> {
    // SAFETY: plain libc calls on a descriptor this function owns; every result is checked, and
    // ptsname_r writes at most `buf.len()` bytes.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if fd < 0 {
            return Err(os_error("posix_openpt"));
        }
        let master = File::from_raw_fd(fd);
        if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
            return Err(os_error("grantpt/unlockpt"));
        }
        let mut buf = [0 as libc::c_char; 128];
        if libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) != 0 {
            return Err(os_error("ptsname_r"));
        }
        let path = PathBuf::from(
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned(),
        );
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)?;
        // Raw, as a USB serial port: no echo, no line editing, no newline translation (Improv
        // packets are binary).
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave.as_raw_fd(), &mut t) != 0 {
            return Err(os_error("tcgetattr"));
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(os_error("tcsetattr"));
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            return Err(os_error("fcntl"));
        }
        Ok(Pty {
            master,
            _slave: slave,
            path,
        })
    }
}

/// Wait until the terminal has bytes (or a second passes).
fn wait_readable(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, 1000) };
}

fn send(out: &mut File, packets: &[Vec<u8>]) {
    for p in packets {
        // A console nobody reads drops the answer; the client asks again.
        let _ = out.write_all(p);
    }
}

/// Run the Improv service on a new console until the device has credentials that pass the
/// config rules (`check`, as [`hearth_device::CONFIG_RULES`]) and join a simulated network;
/// return the complete config text. The service keeps answering afterwards (the provisioned
/// state, the network state) for as long as the process runs.
pub fn provision(
    state: &Path,
    text: &str,
    info: DeviceInfo,
    check: &dyn Fn(&str) -> Result<hearth_config::Config, Vec<String>>,
    log: &dyn Fn(&str),
) -> std::io::Result<String> {
    let pty = open_pty()?;
    let link = state.join(CONSOLE_LINK);
    match std::fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(&pty.path, &link)?;
    let mirror_end = pty.master.try_clone()?;
    let _ = TTY.set(Mutex::new(mirror_end));
    let io = pty.master.try_clone()?;
    log(&format!(
        "improv: the config has no Wi-Fi; waiting for it on the serial console {} ({}): \
         `hearth provision --port {}`",
        link.display(),
        pty.path.display(),
        link.display()
    ));
    let mut session = Session {
        io,
        parser: Parser::new(),
        service: Service::new(info, false, true),
    };
    let stored = loop {
        let joined = session.serve(&mut |service, action| match action {
            Action::Scan => (service.scanned(&networks(state)), None),
            Action::Join { ssid, password } => match join(state, text, &ssid, &password, check) {
                Ok(full) => {
                    log(&format!("improv: joined {ssid}; the config is stored"));
                    let address = std::net::Ipv4Addr::LOCALHOST.to_string();
                    (service.joined(Some(&address)), Some(full))
                }
                Err(why) => {
                    for w in why {
                        log(&format!("improv: {w}"));
                    }
                    (service.failed(), None)
                }
            },
        })?;
        if let Some(full) = joined {
            break full;
        }
    };
    std::fs::write(state.join(PROVISIONED_CONFIG), &stored)?;
    // Keep answering: the client asks for the state and the address after the result. (The
    // service, provisioned, takes no more credentials.)
    let state = state.to_path_buf();
    std::thread::spawn(move || {
        let _pty = pty;
        let mut answer = |service: &mut Service, action| match action {
            Action::Scan => (service.scanned(&networks(&state)), None),
            Action::Join { .. } => (Vec::new(), None),
        };
        while session.serve(&mut answer).is_ok() {}
    });
    Ok(stored)
}

/// The Improv service on the console's terminal.
struct Session {
    io: File,
    parser: Parser,
    service: Service,
}

/// What the device does for an [`Action`]: the packets to answer with, and the complete config
/// once credentials have joined a network.
type Answer<'a> = dyn FnMut(&mut Service, Action) -> (Vec<Vec<u8>>, Option<String>) + 'a;

impl Session {
    /// Answer what the console has sent (waiting at most a second for it); the complete config
    /// if credentials joined.
    fn serve(&mut self, answer: &mut Answer<'_>) -> std::io::Result<Option<String>> {
        let mut buf = [0u8; 256];
        wait_readable(self.io.as_raw_fd());
        let n = match self.io.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut done = None;
        for &b in &buf[..n] {
            let Some(Ok(packet)) = self.parser.push(b) else {
                continue;
            };
            let step = self.service.handle(&packet);
            send(&mut self.io, &step.send);
            if let Some(action) = step.action {
                let (packets, full) = answer(&mut self.service, action);
                send(&mut self.io, &packets);
                done = done.or(full);
            }
        }
        Ok(done)
    }
}

/// The simulated access points, as a scan finds them.
fn networks(state: &Path) -> Vec<Network> {
    access_points(state)
        .into_iter()
        .map(|a| Network {
            secured: !a.password.is_empty(),
            ssid: a.ssid,
            rssi: -58,
        })
        .collect()
}

/// The config with these credentials, if it passes every rule and joins a simulated network;
/// else why not.
fn join(
    state: &Path,
    text: &str,
    ssid: &str,
    password: &str,
    check: &dyn Fn(&str) -> Result<hearth_config::Config, Vec<String>>,
) -> Result<String, Vec<String>> {
    let full =
        hearth_config::provision::complete(text, ssid, password, check).map_err(|lines| {
            lines
                .into_iter()
                .map(|l| format!("refused: {l}"))
                .collect::<Vec<_>>()
        })?;
    let aps = access_points(state);
    match aps.iter().find(|a| a.ssid == ssid) {
        None => Err(vec![format!(
            "cannot join {ssid}: no such network in range (the simulated ones: {})",
            if aps.is_empty() {
                "none; give them with `hearth sim --ap NAME:PASSWORD`".to_string()
            } else {
                aps.iter()
                    .map(|a| a.ssid.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )]),
        Some(a) if a.password != password => Err(vec![format!(
            "cannot join {ssid}: the network refused the password"
        )]),
        Some(_) => Ok(full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_points_parse_and_round_trip() {
        assert_eq!(
            AccessPoint::parse("Home:pass:word").unwrap(),
            AccessPoint {
                ssid: "Home".into(),
                password: "pass:word".into()
            }
        );
        assert_eq!(AccessPoint::parse("Cafe").unwrap().password, "");
        assert!(AccessPoint::parse(":x").is_err());
        assert!(AccessPoint::parse(&"n".repeat(33)).is_err());
        let dir = std::env::temp_dir().join(format!("hearth-aps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let aps = [
            AccessPoint::parse("Home:secret-passphrase").unwrap(),
            AccessPoint::parse("Cafe").unwrap(),
        ];
        write_access_points(&dir, &aps).unwrap();
        assert_eq!(access_points(&dir), aps);
        let text = "profile weather\nmqttbroker 127.0.0.1\nmqttname wx\n";
        let ok = |t: &str| hearth_config::parse(t, &["weather"]).map_err(|_| vec![]);
        assert!(join(&dir, text, "Home", "secret-passphrase", &ok).is_ok());
        assert!(
            join(&dir, text, "Home", "wrong-passphrase", &ok).unwrap_err()[0]
                .contains("refused the password")
        );
        assert!(join(&dir, text, "Elsewhere", "", &ok).unwrap_err()[0].contains("Home, Cafe"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
