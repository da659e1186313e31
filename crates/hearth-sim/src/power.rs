//! The board process of `hearth sim`: power supply, reset line and environment of one simulated
//! device. It starts the device process, restarts it after every reset with the reset cause the
//! hardware would report, keeps the environment (Wi-Fi, sensor faults) across resets, serves the
//! control socket, and writes everything the device prints to `device.log` in the state directory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use crate::control::{self, ControlCmd};
use crate::device::{
    EXIT_CONFIG, EXIT_RESET, EXIT_SLEEP, EXIT_WATCHDOG, RESET_CAUSE_ENV, SLEEP_FILE,
};
use crate::env::{EnvMsg, Wifi};

/// Name of the device log inside the state directory.
pub const LOG_NAME: &str = "device.log";

/// Several crashes within this window slow the restarts down, so a broken build cannot spin.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
const CRASHES_BEFORE_PAUSE: usize = 5;
const CRASH_PAUSE: Duration = Duration::from_secs(30);

/// Errors that stop the board.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// The state directory cannot be used.
    #[error("state directory {path}: {source}")]
    State {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another simulator owns this state directory.
    #[error(
        "a simulator is already running with state directory {0} (its control socket answers)"
    )]
    Busy(PathBuf),
    /// The device process could not be started.
    #[error("cannot start the device process: {0}")]
    Spawn(std::io::Error),
    /// The device refused its configuration; restarting would not help.
    #[error("the device stopped: its configuration is invalid (see above)")]
    Config,
}

/// A command from the control socket and where its answer goes.
pub(crate) struct Request<C> {
    pub(crate) cmd: C,
    pub(crate) reply: Sender<String>,
}

/// The environment that outlives device resets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    wifi: Wifi,
    stress: bool,
    sensors: Vec<(String, String)>,
    load_g: i64,
    /// A re-pair asked for while the device was not running, delivered at its next start.
    repair: bool,
    /// The tank's wet switches and the flow rate (h2o), and the held switch inputs.
    tank: u16,
    flow: u32,
    inputs: u32,
    /// What the DS18x20s measure, millidegrees (`None`: the model's own).
    temperature: Option<i32>,
    /// The Wi-Fi signal, dBm (`None`: the simulated link's default).
    rssi: Option<i8>,
}

impl Environment {
    /// The Wi-Fi as the environment has it.
    pub(crate) fn wifi_str(&self) -> &'static str {
        self.wifi.as_str()
    }

    /// A command that changes the environment of a running device: kept here for the next
    /// start, and the message to send now with the answer. `None`: not such a command.
    /// `config` is the board's wiring.
    pub(crate) fn command(
        &mut self,
        cmd: &ControlCmd,
        config: &Path,
    ) -> Option<(Option<EnvMsg>, String)> {
        Some(match cmd.clone() {
            ControlCmd::Wifi(w) => {
                self.wifi = w;
                (Some(EnvMsg::Wifi(w)), format!("ok wifi {}", w.as_str()))
            }
            ControlCmd::Block(ms) => (
                Some(EnvMsg::Block(ms)),
                format!("ok blocking the loop for {ms} ms"),
            ),
            ControlCmd::Slow(ms) => (
                Some(EnvMsg::Slow(ms)),
                format!("ok slow operation of {ms} ms"),
            ),
            ControlCmd::Sensor(chip, fault) => {
                self.sensors.retain(|(c, _)| *c != chip);
                self.sensors.push((chip.clone(), fault.clone()));
                let reply = format!("ok sensor {chip} {fault}");
                (Some(EnvMsg::Sensor(chip, fault)), reply)
            }
            ControlCmd::StorageStress(on) => {
                self.stress = on;
                (
                    Some(EnvMsg::StorageStress(on)),
                    format!("ok storage-stress {}", if on { "on" } else { "off" }),
                )
            }
            ControlCmd::Load(g) => {
                self.load_g = g;
                (
                    Some(EnvMsg::Load(g)),
                    format!("ok load {:.3} kg", g as f64 / 1000.0),
                )
            }
            ControlCmd::PowerCutAtOtadata(n) => (
                Some(EnvMsg::CutOtadata(n)),
                format!("ok the power fails before otadata operation {n} from now"),
            ),
            ControlCmd::Repair => (Some(EnvMsg::Repair), "ok repair".into()),
            ControlCmd::Rssi(r) => {
                self.rssi = Some(r);
                (Some(EnvMsg::Rssi(r)), format!("ok rssi {r} dBm"))
            }
            ControlCmd::Temperature(t) => {
                self.temperature = Some(t);
                (
                    Some(EnvMsg::Temperature(t)),
                    format!("ok temperature {:.1} °C", f64::from(t) / 1000.0),
                )
            }
            ControlCmd::Tank(m) => {
                self.tank = m;
                (Some(EnvMsg::Tank(m)), format!("ok tank {m:#06x}"))
            }
            ControlCmd::Flow(r) => {
                self.flow = r;
                (Some(EnvMsg::Flow(r)), format!("ok flow {r} pulses/s"))
            }
            ControlCmd::Input(k, on) => match crate::device::switch_inputs(config) {
                Some(0) => (None, "error: this board has no switch inputs".into()),
                Some(n) if usize::from(k) >= n => (
                    None,
                    format!("error: input {k}: this board's inputs are 0 to {}", n - 1),
                ),
                _ => {
                    if on {
                        self.inputs |= 1 << k;
                    } else {
                        self.inputs &= !(1 << k);
                    }
                    (
                        Some(EnvMsg::Input(k, on)),
                        format!("ok input {k} {}", if on { "on" } else { "off" }),
                    )
                }
            },
            ControlCmd::Press(e, a, b) => {
                let reply = format!("ok press {e} {a} {b}");
                (Some(EnvMsg::Press(e, a, b)), reply)
            }
            _ => return None,
        })
    }

    /// [`Environment::command`] for a device that is not running (asleep, paused, stopped):
    /// kept for its next start and answered so; a re-pair is delivered at that start. What is
    /// not kept (a keyfob press, a loop fault, an otadata cut) is an error.
    pub(crate) fn command_while_off(&mut self, cmd: &ControlCmd, config: &Path) -> Option<String> {
        let (msg, reply) = self.command(cmd, config)?;
        Some(match msg {
            Some(EnvMsg::Repair) => {
                self.repair = true;
                format!("{reply} (at the next start)")
            }
            Some(
                EnvMsg::Press(..) | EnvMsg::Block(_) | EnvMsg::Slow(_) | EnvMsg::CutOtadata(_),
            ) => "error: the device is not running".into(),
            Some(_) => format!("{reply} (from the next start)"),
            None => reply,
        })
    }

    /// Everything a device is powered up in; `repair` is delivered once.
    pub(crate) fn messages(&mut self) -> Vec<EnvMsg> {
        let repair = std::mem::take(&mut self.repair);
        let mut v = vec![
            EnvMsg::Wifi(self.wifi),
            EnvMsg::StorageStress(self.stress),
            EnvMsg::Load(self.load_g),
        ];
        if repair {
            v.push(EnvMsg::Repair);
        }
        v.extend(self.temperature.map(EnvMsg::Temperature));
        v.extend(self.rssi.map(EnvMsg::Rssi));
        v.push(EnvMsg::Tank(self.tank));
        v.push(EnvMsg::Flow(self.flow));
        v.extend(
            (0..32u8)
                .filter(|k| self.inputs & (1 << k) != 0)
                .map(|k| EnvMsg::Input(k, true)),
        );
        v.extend(
            self.sensors
                .iter()
                .map(|(c, f)| EnvMsg::Sensor(c.clone(), f.clone())),
        );
        v
    }
}

/// Why the device process ended, as its hardware would report it at the next boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Deep sleep for this long, then wake.
    Sleep(Duration),
    Software,
    Watchdog,
    PowerCut,
    Config,
    Crash,
}

impl Ended {
    fn cause(self) -> &'static str {
        match self {
            Self::Sleep(_) => "deep-sleep",
            Self::Software => "software",
            Self::Watchdog => "watchdog",
            Self::PowerCut => "power-on",
            // A crashed device process is what a panic is on the chip: the firmware reset
            // itself and left its mark.
            Self::Crash => "panic",
            Self::Config => "other",
        }
    }
}

/// Run the board until `quit` (or until the device rejects its configuration).
pub fn run(config: &Path, state: &Path) -> Result<(), BoardError> {
    std::fs::create_dir_all(state).map_err(|source| BoardError::State {
        path: state.into(),
        source,
    })?;
    let sock = control::socket_path(state);
    if UnixStream::connect(&sock).is_ok() {
        return Err(BoardError::Busy(state.into()));
    }
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|source| BoardError::State {
        path: sock.clone(),
        source,
    })?;
    let log_path = state.join(LOG_NAME);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| BoardError::State {
            path: log_path.clone(),
            source,
        })?;

    let (tx, rx) = mpsc::channel::<Request<ControlCmd>>();
    thread::spawn(move || serve_control(listener, tx, ControlCmd::parse));

    let mut board = Board {
        config: config.to_path_buf(),
        state: state.to_path_buf(),
        env: Environment::default(),
        log,
        crashes: Vec::new(),
    };
    let result = board.main_loop(&rx);
    let _ = std::fs::remove_file(&sock);
    result
}

struct Board {
    config: PathBuf,
    state: PathBuf,
    env: Environment,
    log: File,
    crashes: Vec<Instant>,
}

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    started: Instant,
    /// The threads copying the process's output into the log; they end at its EOF.
    readers: Vec<thread::JoinHandle<()>>,
}

impl Board {
    fn spawn(&mut self, cause: &str) -> Result<Running, BoardError> {
        let exe = std::env::current_exe().map_err(BoardError::Spawn)?;
        let mut child = Command::new(exe)
            .arg("sim-device")
            .arg("--config")
            .arg(&self.config)
            .arg("--state")
            .arg(&self.state)
            .env(RESET_CAUSE_ENV, cause)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(BoardError::Spawn)?;
        let mut stdin = child.stdin.take();
        if let Some(input) = stdin.as_mut() {
            for msg in self.env.messages() {
                let _ = writeln!(input, "{msg}");
            }
            // The device waits for this before it boots, so its first run already sees the
            // environment (a storage stress, a sensor fault) it was powered up in.
            let _ = writeln!(input, "{}", EnvMsg::Ready);
        }
        let mut readers = Vec::new();
        for stream in take_output(&mut child) {
            let mut log = self.log.try_clone().map_err(BoardError::Spawn)?;
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = writeln!(log, "{line}");
                    println!("{line}");
                }
            }));
        }
        self.note(&format!(
            "board: device started (pid {}, reset cause {cause})",
            child.id()
        ));
        Ok(Running {
            child,
            stdin,
            started: Instant::now(),
            readers,
        })
    }

    /// The sleep the device asked for (written next to its flash before it exited); a missing
    /// or unreadable request wakes it at once.
    fn sleep_time(&self) -> Duration {
        let path = self.state.join(SLEEP_FILE);
        let ms = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let _ = std::fs::remove_file(path);
        Duration::from_millis(ms.min(24 * 3600 * 1000))
    }

    fn note(&mut self, line: &str) {
        let _ = writeln!(self.log, "{line}");
        println!("{line}");
    }

    fn send(&mut self, run: &mut Running, msg: EnvMsg) {
        if let Some(input) = run.stdin.as_mut() {
            let _ = writeln!(input, "{msg}");
        }
    }

    fn main_loop(&mut self, rx: &Receiver<Request<ControlCmd>>) -> Result<(), BoardError> {
        let mut cause = "power-on";
        loop {
            let mut run = self.spawn(cause)?;
            let ended = self.supervise(&mut run, rx)?;
            // Everything the process printed is in the log before anything of the next run
            // (its pipes reach EOF now that it has ended).
            for r in run.readers.drain(..) {
                let _ = r.join();
            }
            let Some(ended) = ended else {
                return Ok(());
            };
            self.note(&format!(
                "board: device ended ({ended:?}) after {:.1} s",
                run.started.elapsed().as_secs_f64()
            ));
            match ended {
                Ended::Config => return Err(BoardError::Config),
                Ended::Crash => {
                    let now = Instant::now();
                    self.crashes
                        .retain(|t| now.duration_since(*t) < CRASH_WINDOW);
                    self.crashes.push(now);
                    if self.crashes.len() >= CRASHES_BEFORE_PAUSE {
                        self.note(
                            "board: device keeps crashing; pausing 30 s before the next start",
                        );
                        if self.wait_commands(rx, CRASH_PAUSE) {
                            return Ok(());
                        }
                        self.crashes.clear();
                    }
                }
                Ended::Sleep(d) => {
                    self.note(&format!("board: deep sleep for {:.1} s", d.as_secs_f64()));
                    if self.wait_commands(rx, d) {
                        return Ok(());
                    }
                }
                _ => {}
            }
            cause = ended.cause();
        }
    }

    /// Serve commands for `limit` while no device runs (paused or asleep); true if told to
    /// quit. Changes to the environment are kept for the next start.
    fn wait_commands(&mut self, rx: &Receiver<Request<ControlCmd>>, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(req) = rx.recv_timeout(Duration::from_millis(100)) {
                let reply = match req.cmd.clone() {
                    ControlCmd::Quit => {
                        let _ = req.reply.send("ok quitting".into());
                        return true;
                    }
                    ControlCmd::Wake => {
                        let _ = req.reply.send("ok waking now".into());
                        self.note("board: woken by `sim ctl wake`");
                        return false;
                    }
                    cmd @ (ControlCmd::Load(_)
                    | ControlCmd::Sensor(..)
                    | ControlCmd::Wifi(_)
                    | ControlCmd::Repair) => self
                        .env
                        .command_while_off(&cmd, &self.config)
                        .unwrap_or_default(),
                    ControlCmd::CrashConfig => crash_config(&self.state, &self.config),
                    ControlCmd::Status => {
                        format!(
                            "ok not running (wakes in {:.1} s)",
                            until
                                .saturating_duration_since(Instant::now())
                                .as_secs_f64()
                        )
                    }
                    _ => "error: the device is not running".into(),
                };
                announce(&req.cmd, &reply);
                let _ = req.reply.send(reply);
            }
        }
        false
    }

    /// Watch one device run; `None` means quit.
    fn supervise(
        &mut self,
        run: &mut Running,
        rx: &Receiver<Request<ControlCmd>>,
    ) -> Result<Option<Ended>, BoardError> {
        loop {
            if let Ok(Some(status)) = run.child.try_wait() {
                let ended = match (status.code(), status.signal()) {
                    (Some(EXIT_RESET), _) => Ended::Software,
                    (Some(EXIT_SLEEP), _) => Ended::Sleep(self.sleep_time()),
                    (Some(EXIT_WATCHDOG), _) => Ended::Watchdog,
                    (Some(EXIT_CONFIG), _) => Ended::Config,
                    (_, Some(libc::SIGKILL)) => Ended::PowerCut,
                    _ => Ended::Crash,
                };
                return Ok(Some(ended));
            }
            let req = match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(req) => req,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            };
            if let Some((msg, reply)) = self.env.command(&req.cmd, &self.config) {
                if let Some(msg) = msg {
                    self.send(run, msg);
                }
                announce(&req.cmd, &reply);
                let _ = req.reply.send(reply);
                continue;
            }
            let reply = match req.cmd.clone() {
                ControlCmd::CrashConfig => crash_config(&self.state, &self.config),
                ControlCmd::Wake => "error: the device is awake (it is running)".into(),
                ControlCmd::Status => format!(
                    "ok running pid {} for {:.1} s, wifi {}, storage-stress {}",
                    run.child.id(),
                    run.started.elapsed().as_secs_f64(),
                    self.env.wifi.as_str(),
                    if self.env.stress { "on" } else { "off" }
                ),
                ControlCmd::PowerCut => {
                    let _ = run.child.kill();
                    let _ = run.child.wait();
                    self.note("board: power cut");
                    let _ = req.reply.send("ok power cut".into());
                    return Ok(Some(Ended::PowerCut));
                }
                ControlCmd::Quit => {
                    let _ = run.child.kill();
                    let _ = run.child.wait();
                    self.note("board: quit");
                    let _ = req.reply.send("ok quitting".into());
                    return Ok(None);
                }
                // Answered by the environment above.
                other => format!("error: {other:?} is not for a running device"),
            };
            announce(&req.cmd, &reply);
            let _ = req.reply.send(reply);
        }
    }
}

/// The piped standard output and error of `child`, taken from it to be read line by line.
pub(crate) fn take_output(child: &mut Child) -> Vec<Box<dyn std::io::Read + Send>> {
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    out.into_iter().chain(err).collect()
}

/// Show a control command's answer on the board's output (`hearth demo` reads it for its
/// view), not in `device.log`, which keeps what the device and the board did.
fn announce(cmd: &ControlCmd, reply: &str) {
    if !matches!(cmd, ControlCmd::Status) {
        println!("board: sim ctl: {reply}");
    }
}

/// `crash-config`: remember the fingerprint of the config the device in `state` runs now
/// (`config` unless one was pushed); the device crashes after boot while it runs that config.
pub(crate) fn crash_config(state: &Path, config: &Path) -> String {
    let pushed = state.join(crate::device::PUSHED_CONFIG);
    let path = if pushed.exists() {
        pushed
    } else {
        config.to_path_buf()
    };
    let marked = std::fs::read(&path).and_then(|bytes| {
        std::fs::write(
            state.join(crate::device::CRASH_CONFIG_FILE),
            crate::device::config_fingerprint(&bytes),
        )
    });
    match marked {
        Ok(()) => format!(
            "ok the appliance crashes after boot while the config is {}",
            path.display()
        ),
        Err(e) => format!("error: {}: {e}", path.display()),
    }
}

/// Take one command line per connection on `listener`, parse it with `parse`, hand it to the
/// board over `tx` and write its answer back.
pub(crate) fn serve_control<C: Send + 'static>(
    listener: UnixListener,
    tx: Sender<Request<C>>,
    parse: fn(&str) -> Result<C, String>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let tx = tx.clone();
        thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut line = String::new();
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            if BufReader::new(stream).read_line(&mut line).is_err() {
                return;
            }
            let answer = match parse(line.trim()) {
                Err(e) => format!("error: {e}"),
                Ok(cmd) => {
                    let (reply_tx, reply_rx) = mpsc::channel();
                    if tx
                        .send(Request {
                            cmd,
                            reply: reply_tx,
                        })
                        .is_err()
                    {
                        "error: the simulator is stopping".into()
                    } else {
                        reply_rx
                            .recv_timeout(Duration::from_secs(20))
                            .unwrap_or_else(|_| "error: no answer from the board".into())
                    }
                }
            };
            let _ = writeln!(writer, "{answer}");
        });
    }
}
