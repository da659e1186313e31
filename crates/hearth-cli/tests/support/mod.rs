//! Scenario-test harness: a real mosquitto on a free port, real `hearth sim` processes, and a
//! real MQTT observer (mosquitto_sub). Everything is cleaned up on drop, also when a test fails.
#![allow(dead_code)]

pub mod schema;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The `hearth` binary (for the example appliances' tests, which include this harness from
/// another package, the one on `PATH`).
pub const HEARTH: &str = match option_env!("CARGO_BIN_EXE_hearth") {
    Some(path) => path,
    None => "hearth",
};

/// A private temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("hearth-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tool(name: &str) -> PathBuf {
    if name == "mosquitto" {
        if let Ok(p) = std::env::var("HEARTH_MOSQUITTO") {
            return PathBuf::from(p);
        }
    }
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/test.sh, which installs mosquitto and mosquitto-clients");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A loopback TCP port that is bound but never listens, for as long as the returned guard
/// lives: a connection to it is refused, and no other test can take it meanwhile (a port from
/// [`free_port`] can be taken by a parallel test's broker before it is used).
pub struct RefusingPort {
    fd: libc::c_int,
    /// The port.
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> Self {
        // SAFETY: plain socket calls on a descriptor this function owns; every pointer refers
        // to a local of the right size.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, (&raw const addr).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut got_len = len;
            let named = libc::getsockname(fd, (&raw mut got).cast(), &mut got_len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            RefusingPort {
                fd,
                port: u16::from_be(got.sin_port),
            }
        }
    }
}

impl RefusingPort {
    /// Start listening at last, and pass every connection through to `port` on loopback (a
    /// broker that becomes reachable). Runs for as long as the test process.
    pub fn open_to(self, port: u16) {
        use std::os::fd::FromRawFd;
        let fd = self.fd;
        std::mem::forget(self);
        // SAFETY: the descriptor is a bound socket that this guard owned; the listener takes
        // it over (the guard is forgotten, so it is closed once, by the listener).
        let listener = unsafe {
            assert_eq!(
                libc::listen(fd, 16),
                0,
                "listen: {}",
                std::io::Error::last_os_error()
            );
            TcpListener::from_raw_fd(fd)
        };
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
    }
}

impl Drop for RefusingPort {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Poll `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A mosquitto broker on a port of its own.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl Broker {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, None)
    }

    /// A broker that accepts only `user` with `password`.
    pub fn start_with_login(user: &str, password: &str) -> Self {
        Self::start_with(free_port(), Some((user, password)))
    }

    /// A second mosquitto bridged to `site` (every topic both ways, retained messages
    /// included), as a landlord's central broker is to each house's.
    pub fn bridged_to(site: &Broker) -> Self {
        let bridge = format!(
            "connection site\naddress 127.0.0.1:{}\ntopic # both 0\ncleansession true\n\
             restart_timeout 1\n",
            site.port
        );
        Self::start_conf(free_port(), None, &bridge)
    }

    /// mosquitto's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("mosquitto.log")).unwrap_or_default()
    }

    fn start_with(port: u16, login: Option<(&str, &str)>) -> Self {
        Self::start_conf(port, login, "")
    }

    fn start_conf(port: u16, login: Option<(&str, &str)>, extra: &str) -> Self {
        let dir = TempDir::new("broker");
        let conf = dir.0.join("mosquitto.conf");
        let auth = match login {
            None => "allow_anonymous true\n".to_string(),
            Some((user, password)) => {
                let file = dir.0.join("passwd");
                let status = Command::new(tool("mosquitto_passwd"))
                    .arg("-b")
                    .arg("-c")
                    .arg(&file)
                    .args([user, password])
                    .status()
                    .expect("run mosquitto_passwd");
                assert!(status.success(), "mosquitto_passwd failed");
                format!("allow_anonymous false\npassword_file {}\n", file.display())
            }
        };
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\n{auth}persistence false\nlog_dest stderr\n{extra}"),
        )
        .expect("write mosquitto.conf");
        let log = std::fs::File::create(dir.0.join("mosquitto.log")).expect("log");
        let child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        let mut b = Self {
            port,
            child: Some(child),
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mosquitto did not start listening on {port}"
        );
        b.child.as_mut().map(|c| c.id());
        b
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    /// Publish with mosquitto_pub.
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = Command::new(tool("mosquitto_pub"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-t",
            topic,
            "-m",
            payload,
        ]);
        if retain {
            cmd.arg("-r");
        }
        let status = cmd.status().expect("run mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// The retained messages a subscriber to `filter` arriving now is given, as
    /// `(topic, payload)`. A live subscription never shows the retain flag (the broker clears
    /// it on delivery to existing subscribers), so this is how a test sees what is retained.
    /// Takes about a second (the time allowed for the broker to hand them over).
    pub fn retained(&self, filter: &str) -> Vec<(String, String)> {
        let out = Command::new(tool("mosquitto_sub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-t",
                filter,
                "--retained-only",
                "-W",
                "1",
                "-F",
                "%t %p",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run mosquitto_sub");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let (t, p) = l.split_once(' ').unwrap_or((l, ""));
                (t.to_string(), p.to_string())
            })
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
    }
}

/// A message seen by the observer.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub retained: bool,
    pub topic: String,
    pub payload: String,
}

/// mosquitto_sub on `#`, collecting every message with the time it arrived.
pub struct Observer {
    child: Child,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Observer {
    pub fn start(broker: &Broker) -> Self {
        Self::start_on(broker, "#")
    }

    /// An observer of `filter` only: one that must keep reading while binary payloads (update
    /// chunks, which are not lines of text) go by elsewhere.
    pub fn start_on(broker: &Broker, filter: &str) -> Self {
        let mut child = Command::new(tool("mosquitto_sub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port.to_string(),
                "-t",
                filter,
                "-F",
                "%r %t %p",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut parts = line.splitn(3, ' ');
                let retained = parts.next() == Some("1");
                let topic = parts.next().unwrap_or_default().to_string();
                let payload = parts.next().unwrap_or_default().to_string();
                sink.lock().unwrap().push(Seen {
                    at: Instant::now(),
                    retained,
                    topic,
                    payload,
                });
            }
        });
        // Give the subscription a moment to be in place.
        thread::sleep(Duration::from_millis(300));
        Self { child, seen }
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The entities of every device-based discovery config seen so far, each as the
    /// per-entity config Home Assistant makes of it (`schema::entities`).
    pub fn entities(&self) -> Vec<Seen> {
        schema::entities(&self.all())
    }

    pub fn count(&self, topic: &str) -> usize {
        self.all().iter().filter(|m| m.topic == topic).count()
    }

    /// Wait for a message on `topic` satisfying `pred`, seen after index `from`.
    pub fn wait_for(
        &self,
        topic: &str,
        limit: Duration,
        pred: impl Fn(&Seen) -> bool,
    ) -> Option<Seen> {
        let mut found = None;
        wait_until(limit, || {
            found = self.all().into_iter().find(|m| m.topic == topic && pred(m));
            found.is_some()
        });
        found
    }

    pub fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console time of a device log line (`[    t.ttt] ...`: seconds since that run of the
/// device process started), `None` for a line without one (the board's own lines).
pub fn line_time(line: &str) -> Option<f64> {
    line.strip_prefix('[')?
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The console times of every line of `log` containing `needle`, in order (lines without a
/// time are skipped). Times restart at each run of the device process.
pub fn log_times(log: &str, needle: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(line_time)
        .collect()
}

/// A config for a test device: fast timings so failure policies trip in seconds.
pub fn config(name: &str, port: u16, extra: &str) -> String {
    config_for("weather", name, port, extra)
}

/// [`config`] for another appliance.
pub fn config_for(profile: &str, name: &str, port: u16, extra: &str) -> String {
    format!(
        "profile {profile}\nssid Test Network\npassword test-passphrase\nmqttbroker 127.0.0.1:{port}\n\
         mqttname {name}\nstartdelay 0\nwdgrace 0\nmqttkeepalive 5\nmqttbackoffms 200\nmqttbackoffmaxms 2000\n\
         netretry 1\nnetretryfudge 1\nnetconnecttimeout 5\n{extra}"
    )
}

/// One `hearth sim` (board + device processes) with its own state directory.
pub struct Sim {
    pub dir: TempDir,
    board: Option<Child>,
}

impl Sim {
    pub fn start(config_text: &str) -> Self {
        Self::start_on_air(config_text, None)
    }

    /// A simulator whose ESP-NOW radio is on the air in directory `air` (`--air`), so tests
    /// running in parallel do not hear each other.
    pub fn start_on_air(config_text: &str, air: Option<&std::path::Path>) -> Self {
        Self::start_with(config_text, air, &[])
    }

    /// [`Sim::start_on_air`] with more arguments for `hearth sim` (e.g. `--ap`).
    pub fn start_with(config_text: &str, air: Option<&std::path::Path>, args: &[&str]) -> Self {
        let dir = TempDir::new("sim");
        let config = dir.0.join("config.txt");
        std::fs::write(&config, config_text).expect("write config");
        let mut cmd = Command::new(HEARTH);
        cmd.args(["sim", "--config"])
            .arg(&config)
            .arg("--state")
            .arg(dir.0.join("state"));
        if let Some(air) = air {
            cmd.arg("--air").arg(air);
        }
        cmd.args(args);
        let board = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hearth sim");
        let sim = Self {
            dir,
            board: Some(board),
        };
        assert!(
            wait_until(Duration::from_secs(10), || sim
                .state()
                .join("control.sock")
                .exists()),
            "the simulator did not open its control socket"
        );
        sim
    }

    /// A battery scale (`scale_sensor` `s1`, no Wi-Fi) in ESP-NOW group `g` with `psk` on the
    /// air in `air`, loaded with `kg`: its central forwards the weight as `stat/<hub>/Weight`.
    pub fn scale_on_air(psk: &str, air: &Path, kg: &str) -> Self {
        let scale = Self::start_on_air(
            &format!(
                "profile scale_sensor\nssid (none)\nmqttname s1\nespnowgroup g\nespnowpsk {psk}\n\
                 calibration_a 20000\ncalibration_b -50000\nsleep 60\n"
            ),
            Some(air),
        );
        assert!(scale.ctl(&format!("load {kg}")).starts_with("ok"));
        scale
    }

    pub fn state(&self) -> PathBuf {
        self.dir.0.join("state")
    }

    pub fn ctl(&self, command: &str) -> String {
        let out = Command::new(HEARTH)
            .args(["sim", "ctl"])
            .arg(self.state())
            .args(command.split_whitespace())
            .output()
            .expect("run hearth sim ctl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state().join("device.log")).unwrap_or_default()
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log().contains(needle))
    }

    /// Wait until `needle` appears at least `n` times in the log.
    pub fn wait_log_count(&self, needle: &str, n: usize, limit: Duration) -> bool {
        wait_until(limit, || self.log_count(needle) >= n)
    }

    /// Is the board still running?
    pub fn running(&mut self) -> bool {
        matches!(self.board.as_mut().map(|b| b.try_wait()), Some(Ok(None)))
    }

    pub fn dump(&self) -> String {
        format!("--- device.log ---\n{}", self.log())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut b) = self.board.take() {
            let _ = Command::new(HEARTH)
                .args(["sim", "ctl"])
                .arg(self.state())
                .arg("quit")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !wait_until(Duration::from_secs(5), || {
                matches!(b.try_wait(), Ok(Some(_)))
            }) {
                let _ = b.kill();
            }
            let _ = b.wait();
        }
        let _ = std::io::stdout().flush();
    }
}

/// `hearth sim --fleet N`: N devices of one config in one process, members `<name>-0001`…
pub struct Fleet(pub Sim);

impl Fleet {
    pub fn start(config_text: &str, n: usize) -> Self {
        Self(Sim::start_with(
            config_text,
            None,
            &["--fleet", &n.to_string()],
        ))
    }

    pub fn ctl(&self, command: &str) -> String {
        self.0.ctl(command)
    }

    /// Every member's lines, each after its name.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.0.state().join("fleet.log")).unwrap_or_default()
    }

    /// How often `needle` appears in the lines of member `name`.
    pub fn count(&self, name: &str, needle: &str) -> usize {
        let prefix = format!("{name} ");
        self.log()
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.contains(needle))
            .count()
    }

    /// The names a `sim ctl` answer lists after `N of M:`.
    pub fn named(reply: &str) -> Vec<String> {
        reply
            .rsplit_once(": ")
            .map(|(_, names)| {
                names
                    .trim_end_matches(')')
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

// --- The owner's side of signed updates, shared by the update and config-push tests. ---

/// Run `hearth` with `args` to completion.
pub fn hearth(args: &[&str]) -> Output {
    Command::new(HEARTH)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hearth")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The owner's key pair, made by `hearth keygen`.
pub struct Owner {
    pub dir: TempDir,
    pub key: PathBuf,
    pub otakey: String,
}

pub fn new_owner() -> Owner {
    let dir = TempDir::new("owner");
    let key = dir.0.join("owner.key");
    let out = hearth(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    // keygen refuses to overwrite a key.
    let again = hearth(&["keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    Owner {
        dir,
        key,
        otakey: format!("otakey {}", public.trim()),
    }
}

impl Owner {
    pub fn image(&self, name: &str, args: &[&str]) -> PathBuf {
        let out_path = self.dir.0.join(name);
        let mut all = vec!["image", "--out", out_path.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = hearth(&all);
        assert!(out.status.success(), "{}", text(&out));
        out_path
    }

    pub fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }
}

/// The arguments of `hearth ota --all IMAGE` with the owner's key on `broker` (HOST:PORT),
/// and `extra` options.
pub fn ota_all_args(broker: &str, image: &Path, owner: &Owner, extra: &[&str]) -> Vec<String> {
    let args: Vec<String> = [
        "ota",
        "--all",
        image.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        broker,
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    args
}

/// `hearth ota --all` ([`ota_all_args`]) run to completion.
pub fn ota_all(broker: &str, image: &Path, owner: &Owner, extra: &[&str]) -> Output {
    let args = ota_all_args(broker, image, owner, extra);
    hearth(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `hearth ota --all` ([`ota_all_args`]) killed (SIGKILL, as a crash of the tool) at the first
/// line of its output for which `stop` is true; everything it printed until then.
pub fn ota_all_killed_at(
    broker: &str,
    image: &Path,
    owner: &Owner,
    extra: &[&str],
    mut stop: impl FnMut(&str) -> bool,
) -> String {
    use std::io::BufRead;
    let mut tool = Command::new(HEARTH)
        .args(ota_all_args(broker, image, owner, extra))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hearth ota");
    let mut seen = String::new();
    for line in std::io::BufReader::new(tool.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if stop(&line) {
            break;
        }
    }
    let _ = tool.kill();
    let _ = tool.wait();
    seen
}
