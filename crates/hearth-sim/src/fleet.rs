//! `hearth sim --fleet N --config TEMPLATE --state DIR`: N simulated appliances in one process.
//!
//! Each member is a whole simulated device as `hearth sim` runs one: its own state directory
//! `DIR/<name>` (config, key-value flash, firmware slots), identity (from that directory),
//! entropy and so reconnect jitter, and the same simulated platform and appliance code
//! ([`crate::device::prepare`] and [`crate::device::device_main`]). What differs is the board
//! around it:
//!
//! - the members are tasks of one executor thread instead of processes;
//! - a reset, a deep sleep, a panic or the watchdog ends a member's run by unwinding its task
//!   ([`crate::device::Stop`]), and its board task starts it again with the reset cause the
//!   hardware would report, as the board process restarts a device process;
//! - one watchdog task checks every member's loop once a second;
//! - the console lines of every member go to `DIR/fleet.log`, each after the member's name;
//! - the control socket `DIR/control.sock` takes the commands of `hearth sim ctl`, aimed with
//!   `--device NAME` (repeatable), `--share PERCENT` (a random share) or, by default, at all.
//!
//! `block` and `slow` are refused: they stop the thread every member runs on.

use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use embassy_futures::select::{select, Either};
use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;

use crate::control::{self, ControlCmd};
use crate::device::{self, HardwareWatchdog, Live, Member, Prepared, Stop};
use crate::latch::Latch;
use crate::power::{BoardError, Environment, Request};

/// The log of every member, in the fleet's state directory.
pub const LOG_NAME: &str = "fleet.log";
/// Each member's config, in its own state directory.
pub const MEMBER_CONFIG: &str = "config.txt";
/// The most members one fleet runs.
pub const MAX_MEMBERS: usize = 100_000;

/// Several crashes of a member within this window slow its restarts down.
const CRASH_WINDOW_MS: Millis = 60_000;
const CRASHES_BEFORE_PAUSE: usize = 5;
const CRASH_PAUSE_MS: Millis = 30_000;
/// How often the fleet's watchdog looks at every member's loop.
const WATCHDOG_PERIOD_MS: u64 = 1_000;
/// Open files each member holds: its broker socket (its flash files are opened for each
/// operation), for the limit check; and what the process needs beside them.
const FILES_PER_MEMBER: u64 = 1;
const FILES_SPARE: u64 = 512;

/// Errors that stop a fleet before it runs.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The template cannot make the members' configs.
    #[error("{0}")]
    Template(String),
    /// The state directory cannot be used, or another simulator owns it (as for one device).
    #[error(transparent)]
    Board(#[from] crate::power::BoardError),
    /// The process may not open enough files.
    #[error("{0}")]
    Limit(String),
    /// The thread the members run on ended (a defect of the fleet itself, shown above).
    #[error("the fleet's executor thread ended (see above)")]
    Executor,
}

/// The members' names: `base-0001` to `base-N`, four digits or as many as N has.
pub fn names(base: &str, n: usize) -> Vec<String> {
    let width = n.to_string().len().max(4);
    (1..=n).map(|i| format!("{base}-{i:0width$}")).collect()
}

/// The template's text with its `mqttname` line naming `name`.
pub fn member_config(template: &str, name: &str) -> Result<String, String> {
    let mut found = false;
    let mut out = String::with_capacity(template.len() + 8);
    for line in template.lines() {
        if line.split_whitespace().next() == Some("mqttname") {
            found = true;
            out.push_str("mqttname ");
            out.push_str(name);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if found {
        Ok(out)
    } else {
        Err("the template has no `mqttname` line to number the members by".into())
    }
}

/// Where a control command goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Aim {
    /// Every member.
    All,
    /// These members.
    Devices(Vec<String>),
    /// This share of the members, in percent, picked at random.
    Share(f64),
}

/// A command on a fleet's control socket: the device command and whom it is aimed at.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetCmd {
    /// The command, as a single simulator takes it.
    pub cmd: ControlCmd,
    /// Its targets.
    pub aim: Aim,
}

impl FleetCmd {
    /// `wifi down --share 30`, `power-cut`, `status --device hall-0003`.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = Vec::new();
        let mut devices = Vec::new();
        let mut share = None;
        let mut all = false;
        let mut it = line.split_whitespace();
        while let Some(w) = it.next() {
            match w {
                "--device" => devices.push(
                    it.next()
                        .ok_or("--device needs a member's name")?
                        .to_string(),
                ),
                "--share" => {
                    let p = it.next().ok_or("--share needs a percentage")?;
                    match p.trim_end_matches('%').parse::<f64>() {
                        Ok(v) if v > 0.0 && v <= 100.0 => share = Some(v),
                        _ => {
                            return Err(format!(
                                "--share takes a percentage above 0 up to 100, not {p:?}"
                            ))
                        }
                    }
                }
                "--all" => all = true,
                w => words.push(w),
            }
        }
        let aims =
            usize::from(!devices.is_empty()) + usize::from(share.is_some()) + usize::from(all);
        if aims > 1 {
            return Err("aim a command with one of --device NAME, --share PERCENT or --all".into());
        }
        let cmd = ControlCmd::parse(&words.join(" "))?;
        let aim = match share {
            Some(p) => Aim::Share(p),
            None if !devices.is_empty() => Aim::Devices(devices),
            None => Aim::All,
        };
        Ok(Self { cmd, aim })
    }
}

/// What a member's board is doing.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Starting,
    Running,
    /// Asleep until this monotonic ms.
    Asleep(Millis),
    /// Paused after repeated crashes.
    Paused,
    /// Not restarted: why.
    Stopped(String),
}

/// What ends a member's run or wait from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    PowerCut,
    Watchdog,
    Wake,
    Quit,
}

/// One member's board: its device, environment and state.
struct Slot {
    member: Arc<Member>,
    config: PathBuf,
    env: Mutex<Environment>,
    live: Mutex<Option<Live>>,
    kill: Latch<Kill>,
    phase: Mutex<Phase>,
    dog: Mutex<Option<HardwareWatchdog>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> Millis {
    embassy_time::Instant::now().as_millis()
}

impl Slot {
    fn set(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    /// Wait for an outside event other than a wake (a wake of a running device is a no-op).
    async fn killed(&self) -> Kill {
        loop {
            match self.kill.wait().await {
                Kill::Wake => continue,
                k => return k,
            }
        }
    }

    /// Wait `ms` or until woken, cut or told to quit (`None`: the time passed).
    async fn pause(&self, ms: Millis) -> Option<Kill> {
        let timer = embassy_time::Timer::after(embassy_time::Duration::from_millis(ms));
        match select(timer, self.kill.wait()).await {
            Either::First(()) => None,
            Either::Second(k) => Some(k),
        }
    }
}

/// A member's run: polled as that member (its console, its resets), ending with why it
/// stopped.
struct Scoped {
    member: Arc<Member>,
    run: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Future for Scoped {
    type Output = Stop;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Stop> {
        let this = &mut *self;
        let _as = device::enter(&this.member);
        let Some(run) = this.run.as_mut() else {
            return Poll::Ready(Stop::Panic);
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| run.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            // The firmware never returns; if it did, the chip would reset.
            Ok(Poll::Ready(())) => Poll::Ready(Stop::Reset),
            Err(payload) => Poll::Ready(payload.downcast::<Stop>().map_or(Stop::Panic, |s| *s)),
        }
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        let _as = device::enter(&self.member);
        let run = self.run.take();
        // Whatever the run's parts do as they go, a panic among them ends nothing else.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(run)));
    }
}

/// A member's board: power it up, run it, restart it after each reset as the hardware would.
async fn board(slot: Arc<Slot>) {
    let mut cause = HardwareReset::PowerOn;
    let mut crashes: Vec<Millis> = Vec::new();
    loop {
        slot.member.booting();
        slot.set(Phase::Starting);
        let prepared = {
            let _as = device::enter(&slot.member);
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                device::prepare(&slot.config, &slot.member.state, None, cause)
            }))
            .unwrap_or(Err(Stop::Panic))
        };
        let ended = match prepared {
            Err(why) => why,
            Ok(Prepared {
                parts,
                live,
                watchdog,
            }) => {
                {
                    let _as = device::enter(&slot.member);
                    for msg in lock(&slot.env).messages() {
                        live.apply(msg);
                    }
                }
                *lock(&slot.live) = Some(live);
                *lock(&slot.dog) = watchdog;
                // A watchdog reset meant for the last run is void; a power cut stands.
                if let Some(k) = slot.kill.take() {
                    if k == Kill::PowerCut || k == Kill::Quit {
                        slot.kill.set(k);
                    }
                }
                slot.set(Phase::Running);
                let run = Scoped {
                    member: slot.member.clone(),
                    run: Some(Box::pin(device::device_main(parts))),
                };
                let outcome = select(run, slot.killed()).await;
                *lock(&slot.live) = None;
                *lock(&slot.dog) = None;
                match outcome {
                    Either::First(stop) => stop,
                    Either::Second(Kill::PowerCut) => Stop::PowerCut,
                    Either::Second(Kill::Watchdog) => Stop::Watchdog,
                    Either::Second(_) => {
                        slot.set(Phase::Stopped("quit".into()));
                        return;
                    }
                }
            }
        };
        let up = now_ms().saturating_sub(slot.member.boot_ms());
        slot.member.line(&format!(
            "board: device ended ({ended:?}) after {:.1} s",
            up as f64 / 1000.0
        ));
        cause = ended.cause();
        match ended {
            Stop::Config | Stop::NoImage => {
                let why = if ended == Stop::Config {
                    "its configuration is invalid"
                } else {
                    "no bootable image"
                };
                slot.member.line(&format!(
                    "board: device stopped: {why}; a power cut starts it again"
                ));
                slot.set(Phase::Stopped(why.into()));
                loop {
                    match slot.kill.wait().await {
                        Kill::Quit => return,
                        Kill::PowerCut => break,
                        _ => {}
                    }
                }
                cause = HardwareReset::PowerOn;
            }
            Stop::Panic => {
                let now = now_ms();
                crashes.retain(|t| now.saturating_sub(*t) < CRASH_WINDOW_MS);
                crashes.push(now);
                if crashes.len() >= CRASHES_BEFORE_PAUSE {
                    slot.member
                        .line("board: device keeps crashing; pausing 30 s before the next start");
                    slot.set(Phase::Paused);
                    match slot.pause(CRASH_PAUSE_MS).await {
                        Some(Kill::Quit) => return,
                        Some(Kill::PowerCut) => cause = HardwareReset::PowerOn,
                        _ => {}
                    }
                    crashes.clear();
                }
            }
            Stop::Sleep(ms) => {
                let ms = ms.min(24 * 3600 * 1000);
                slot.member.line(&format!(
                    "board: deep sleep for {:.1} s",
                    ms as f64 / 1000.0
                ));
                slot.set(Phase::Asleep(now_ms() + ms));
                match slot.pause(ms).await {
                    Some(Kill::Quit) => return,
                    Some(Kill::PowerCut) => cause = HardwareReset::PowerOn,
                    _ => {}
                }
            }
            Stop::PowerCut => slot.member.line("board: power cut"),
            _ => {}
        }
    }
}

/// The fleet's watchdog: every second, each running member's loop policy is asked, as the
/// single board's watchdog thread asks it ten times a second.
async fn watchdog(slots: Arc<Vec<Arc<Slot>>>) {
    loop {
        embassy_time::Timer::after(embassy_time::Duration::from_millis(WATCHDOG_PERIOD_MS)).await;
        let now = now_ms();
        for slot in slots.iter() {
            let mut dog = lock(&slot.dog);
            if dog.as_mut().is_some_and(|d| d.bites(now)) {
                *dog = None;
                slot.member
                    .line("watchdog: the loop stopped proving liveness; resetting");
                slot.kill.set(Kill::Watchdog);
            }
        }
    }
}

/// A task of its own for `future`, for as long as the process runs.
pub(crate) fn leak_task<F: Future<Output = ()> + 'static>(
    future: F,
) -> embassy_executor::SpawnToken<impl Sized> {
    let storage: &'static embassy_executor::raw::TaskStorage<F> =
        Box::leak(Box::new(embassy_executor::raw::TaskStorage::new()));
    match storage.spawn(|| future) {
        Ok(token) => token,
        Err(_) => unreachable!("a new task storage is free"),
    }
}

/// Let the process hold `needed` open files, raising the limit when it may.
fn ensure_files(needed: u64) -> Result<(), FleetError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to our own struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur >= needed {
            return Ok(());
        }
        let want = libc::rlimit {
            rlim_cur: needed.max(lim.rlim_cur),
            rlim_max: needed.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
            return Ok(());
        }
        if lim.rlim_max >= needed {
            let soft = libc::rlimit {
                rlim_cur: needed,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
                return Ok(());
            }
        }
    }
    Err(FleetError::Limit(format!(
        "this fleet needs about {needed} open files and the process may open {}; raise the \
         limit (`ulimit -n {needed}`) or run fewer devices",
        lim.rlim_max
    )))
}

/// The fleet's log: every member's console lines after its name, flushed a few times a second.
struct Log {
    out: Mutex<BufWriter<File>>,
}

impl Log {
    fn line(&self, line: &str) {
        let _ = writeln!(lock(&self.out), "{line}");
    }

    fn flush(&self) {
        let _ = lock(&self.out).flush();
    }
}

/// Pick `k` of `n` indices at random.
fn sample(n: usize, k: usize) -> Vec<usize> {
    use std::hash::BuildHasher;
    let mut seed = std::collections::hash_map::RandomState::new().hash_one(n) | 1;
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = i + (seed % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k.min(n));
    idx.sort_unstable();
    idx
}

/// The members a command is aimed at, or why none.
fn aimed(slots: &[Arc<Slot>], aim: &Aim) -> Result<Vec<usize>, String> {
    match aim {
        Aim::All => Ok((0..slots.len()).collect()),
        Aim::Share(p) => {
            let k = ((slots.len() as f64 * p / 100.0).round() as usize).max(1);
            Ok(sample(slots.len(), k))
        }
        Aim::Devices(names) => names
            .iter()
            .map(|n| {
                slots
                    .iter()
                    .position(|s| s.member.name == *n)
                    .ok_or_else(|| format!("error: no member named {n:?} in this fleet"))
            })
            .collect(),
    }
}

/// One member's answer to `cmd`.
fn command(slot: &Slot, cmd: &ControlCmd) -> String {
    match cmd {
        ControlCmd::Block(_) | ControlCmd::Slow(_) => {
            "error: block and slow would stop every member of the fleet (they share one \
             thread); use a single `hearth sim` for them"
                .into()
        }
        ControlCmd::PowerCut => {
            slot.kill.set(Kill::PowerCut);
            "ok power cut".into()
        }
        ControlCmd::Quit => "error: quit stops the whole fleet; send it without an aim".into(),
        ControlCmd::Wake => match &*lock(&slot.phase) {
            Phase::Asleep(_) | Phase::Paused => {
                slot.kill.set(Kill::Wake);
                "ok waking now".into()
            }
            _ => "error: the device is not asleep".into(),
        },
        ControlCmd::CrashConfig => crate::power::crash_config(&slot.member.state, &slot.config),
        ControlCmd::Status => {
            let env = lock(&slot.env);
            match &*lock(&slot.phase) {
                Phase::Running => format!("ok running, wifi {}", env.wifi_str()),
                Phase::Starting => "ok starting".into(),
                Phase::Asleep(_) => "ok asleep".into(),
                Phase::Paused => "ok paused after repeated crashes".into(),
                Phase::Stopped(why) => format!("ok stopped: {why}"),
            }
        }
        cmd => {
            let Some(live) = lock(&slot.live).clone() else {
                return lock(&slot.env)
                    .command_while_off(cmd, &slot.config)
                    .unwrap_or_else(|| format!("error: {cmd:?} is not for a fleet"));
            };
            let Some((msg, reply)) = lock(&slot.env).command(cmd, &slot.config) else {
                return format!("error: {cmd:?} is not for a fleet");
            };
            if let Some(msg) = msg {
                let _as = device::enter(&slot.member);
                live.apply(msg);
            }
            reply
        }
    }
}

/// The members' answers in one line: equal answers grouped with how many and (when `names`)
/// who gave them, errors first.
fn summary(total: usize, answers: Vec<(String, String)>, names: bool) -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (name, answer) in answers {
        match groups.iter_mut().find(|(a, _)| *a == answer) {
            Some((_, who)) => who.push(name),
            None => groups.push((answer, vec![name])),
        }
    }
    groups.sort_by_key(|(a, _)| !a.starts_with("error"));
    groups
        .into_iter()
        .map(|(answer, who)| {
            let n = who.len();
            if n == 1 && total > 1 {
                format!("{answer} ({}: 1 of {total})", who[0])
            } else if names {
                format!("{answer} ({n} of {total}: {})", who.join(" "))
            } else {
                format!("{answer} ({n} of {total})")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Run the fleet until `quit` on its control socket.
pub fn run(template: &Path, state: &Path, count: usize) -> Result<(), FleetError> {
    if count == 0 || count > MAX_MEMBERS {
        return Err(FleetError::Template(format!(
            "--fleet takes 1 to {MAX_MEMBERS} devices, not {count}"
        )));
    }
    let shown = template.display();
    let (config, _) = device::load(template).map_err(|_| {
        FleetError::Template(format!("{shown}: the template does not check (see above)"))
    })?;
    let text = std::fs::read_to_string(template).map_err(|source| BoardError::State {
        path: template.into(),
        source,
    })?;
    let names = names(&config.mqtt.name, count);
    // Every member's config must check as the template's does (a longer name may not fit).
    for name in [&names[0], &names[count - 1]] {
        let member = member_config(&text, name)
            .map_err(|e| FleetError::Template(format!("{shown}: {e}")))?;
        let checked = hearth_device::profiles::parse_config(&member)
            .map_err(|e| e.located_lines("member config").join("; "))
            .and_then(|c| hearth_device::profiles::plan(&c).map_err(|e| e.to_string()));
        if let Err(e) = checked {
            return Err(FleetError::Template(format!("{shown}: as {name}: {e}")));
        }
    }
    ensure_files(count as u64 * FILES_PER_MEMBER + FILES_SPARE)?;
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BoardError::State { path, source }
    };
    std::fs::create_dir_all(state).map_err(at(state))?;
    let sock = control::socket_path(state);
    if UnixStream::connect(&sock).is_ok() {
        return Err(BoardError::Busy(state.into()).into());
    }
    let _ = std::fs::remove_file(&sock);
    let log_path = state.join(LOG_NAME);
    let log = Arc::new(Log {
        out: Mutex::new(BufWriter::with_capacity(
            1 << 16,
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(at(&log_path))?,
        )),
    });
    let mut slots = Vec::with_capacity(count);
    for name in &names {
        let dir = state.join(name);
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
        let config = dir.join(MEMBER_CONFIG);
        let member_text = member_config(&text, name).map_err(FleetError::Template)?;
        if std::fs::read_to_string(&config).ok().as_deref() != Some(member_text.as_str()) {
            std::fs::write(&config, member_text).map_err(at(&config))?;
        }
        let sink_log = log.clone();
        let prefix = name.clone();
        let sink = Box::new(move |line: &str| sink_log.line(&format!("{prefix} {line}")));
        slots.push(Arc::new(Slot {
            member: Arc::new(Member::new(name.clone(), dir, sink)),
            config,
            env: Mutex::new(Environment::default()),
            live: Mutex::new(None),
            kill: Latch::new(),
            phase: Mutex::new(Phase::Starting),
            dog: Mutex::new(None),
        }));
    }
    let slots = Arc::new(slots);
    let listener = UnixListener::bind(&sock).map_err(at(&sock))?;
    let (tx, rx) = mpsc::channel::<Request<FleetCmd>>();
    std::thread::spawn(move || crate::power::serve_control(listener, tx, FleetCmd::parse));

    // A panic in a member's code is that member's: logged in its lines and kept in its state
    // directory, as the single device keeps it; it unwinds to its board.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match device::current_member() {
        Some(member) => {
            let text = info.to_string();
            member.line(&format!("panic: {text}"));
            let _ = std::fs::write(member.state.join(device::PANIC_FILE), &text);
        }
        None => default_hook(info),
    }));

    let members = slots.clone();
    let executor = std::thread::Builder::new()
        .name("fleet".into())
        .stack_size(16 << 20)
        .spawn(move || {
            let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
            executor.run(move |spawner| {
                spawner.spawn(leak_task(watchdog(members.clone())));
                for slot in members.iter() {
                    spawner.spawn(leak_task(board(slot.clone())));
                }
            })
        })
        .map_err(|source| BoardError::State {
            path: state.into(),
            source,
        })?;
    let flusher = log.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        flusher.flush();
    });
    println!(
        "fleet: {count} devices ({} to {}) of {shown}; their lines in {}; control: hearth sim ctl {} COMMAND [--device NAME | --share PERCENT]",
        names[0],
        names[count - 1],
        log_path.display(),
        state.display()
    );
    let result = control_loop(&slots, &rx, &executor);
    for slot in slots.iter() {
        slot.kill.set(Kill::Quit);
    }
    // The members' runs end at their next poll; give the executor a moment for it.
    std::thread::sleep(Duration::from_millis(300));
    log.line("fleet: stopped");
    log.flush();
    let _ = std::fs::remove_file(&sock);
    result
}

/// Serve the control socket until `quit`.
fn control_loop(
    slots: &[Arc<Slot>],
    rx: &mpsc::Receiver<Request<FleetCmd>>,
    executor: &std::thread::JoinHandle<()>,
) -> Result<(), FleetError> {
    loop {
        let req = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(req) => req,
            Err(RecvTimeoutError::Timeout) => {
                if executor.is_finished() {
                    return Err(FleetError::Executor);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if req.cmd.cmd == ControlCmd::Quit && req.cmd.aim == Aim::All {
            let _ = req
                .reply
                .send(format!("ok quitting ({} devices)", slots.len()));
            return Ok(());
        }
        let reply = match aimed(slots, &req.cmd.aim) {
            Err(e) => e,
            Ok(targets) => {
                let answers = targets
                    .iter()
                    .map(|&i| {
                        (
                            slots[i].member.name.clone(),
                            command(&slots[i], &req.cmd.cmd),
                        )
                    })
                    .collect::<Vec<_>>();
                // A status of thousands names only small groups.
                let names = req.cmd.cmd != ControlCmd::Status || targets.len() <= 50;
                if targets.len() == 1 {
                    let (name, answer) = &answers[0];
                    format!("{answer} ({name})")
                } else {
                    summary(slots.len(), answers, names)
                }
            }
        };
        if req.cmd.cmd != ControlCmd::Status {
            println!("fleet: sim ctl: {}", first_chars(&reply, 200));
        }
        let _ = req.reply.send(reply);
    }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
fn first_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_numbered_with_enough_digits() {
        assert_eq!(names("w", 3), ["w-0001", "w-0002", "w-0003"]);
        let many = names("w", 10_000);
        assert_eq!(many[0], "w-00001");
        assert_eq!(many[9_999], "w-10000");
    }

    #[test]
    fn the_template_s_name_line_is_replaced() {
        let t = "profile weather\n# mqttname in a comment\nmqttname  hall\nssid x\n";
        let c = member_config(t, "hall-0002").unwrap();
        assert_eq!(
            c,
            "profile weather\n# mqttname in a comment\nmqttname hall-0002\nssid x\n"
        );
        assert!(member_config("profile weather\n", "x").is_err());
    }

    #[test]
    fn commands_are_aimed() {
        let c = FleetCmd::parse("wifi down --share 30").unwrap();
        assert_eq!(c.cmd, ControlCmd::Wifi(crate::env::Wifi::Down));
        assert_eq!(c.aim, Aim::Share(30.0));
        let c = FleetCmd::parse("--device a-0001 power-cut --device a-0002").unwrap();
        assert_eq!(c.aim, Aim::Devices(vec!["a-0001".into(), "a-0002".into()]));
        assert_eq!(FleetCmd::parse("power-cut").unwrap().aim, Aim::All);
        for bad in [
            "wifi down --share 0",
            "wifi down --share 101",
            "wifi down --share x",
            "power-cut --device",
            "power-cut --all --share 5",
            "fly",
        ] {
            assert!(FleetCmd::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_picks_distinct_members() {
        for (n, k) in [(10, 3), (1000, 300), (5, 5), (1, 1)] {
            let s = sample(n, k);
            assert_eq!(s.len(), k);
            assert!(s.windows(2).all(|w| w[0] < w[1]));
            assert!(s.iter().all(|&i| i < n));
        }
        // Not always the first ones.
        assert!((0..20).any(|_| sample(1000, 10) != (0..10).collect::<Vec<_>>()));
    }

    #[test]
    fn answers_are_grouped_errors_first() {
        let s = summary(
            3,
            vec![
                ("a".into(), "ok x".into()),
                ("b".into(), "error: y".into()),
                ("c".into(), "ok x".into()),
            ],
            true,
        );
        assert_eq!(s, "error: y (b: 1 of 3); ok x (2 of 3: a c)");
    }
}
