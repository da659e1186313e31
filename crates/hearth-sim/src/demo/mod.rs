//! `hearth demo`: an embedded MQTT broker and a simulated house in one command — weather
//! stations, an energy meter, a water tank, a light-switch board, thermometers, timed relays, a
//! keyfob receiver, and a battery scale reporting over ESP-NOW to its forwarder. In a terminal
//! it shows the house: one row per device ([`house`], drawn by [`screen`]); otherwise, or with
//! `--raw`, every topic as it is routed. Nothing to install beyond cargo.

pub mod house;
pub mod screen;

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use house::{House, Spec, Try};

use hearth_broker::EmbeddedBroker;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The broker did not start.
    #[error("the embedded broker could not start: {0} (is the port taken? try --port 0)")]
    Broker(String),
    /// Files or processes could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// A valid config for demo device `name` talking to `port`.
pub fn demo_config(name: &str, port: u16) -> String {
    mqtt_config("weather", name, port)
}

/// The config every MQTT device of the demo starts from: appliance `profile`, named `name`,
/// on the demo's broker at `port`.
fn mqtt_config(profile: &str, name: &str, port: u16) -> String {
    format!(
        "# written by `hearth demo`\nprofile {profile}\nssid Demo Network\n\
         password demo-passphrase\nmqttbroker 127.0.0.1:{port}\nmqttname {name}\n\
         startdelay 2\nmqttkeepalive 15\n"
    )
}

/// The ESP-NOW network of the demo's scale pair (a fixed demo PSK: the air is private).
const DEMO_ESPNOW: &str = "espnowgroup demo-house\nespnowpsk demo-psk-not-a-secret\n";

/// Control commands sent to a device's simulator this many seconds after the start.
type Timeline = Vec<(u64, &'static str)>;

/// A device of the demo: its name, profile, config text, timeline and what to try on it.
struct Planned {
    name: String,
    profile: &'static str,
    text: String,
    timeline: Timeline,
    try_it: Try,
}

/// What to try on the `i`th weather station (from 1): each of the first three shows another
/// failure within a second.
fn weather_try(i: u32) -> Try {
    match i {
        1 => Try::Ctl("power-cut"),
        2 => Try::Ctl("sensor bme280 absent"),
        _ => Try::Ctl("wifi down"),
    }
}

/// Every device of the demo: `devices` weather stations, then the rest of the house.
fn plan(port: u16, devices: u32) -> Vec<Planned> {
    let mqtt = |profile: &str, name: &str| mqtt_config(profile, name, port);
    let device = |name: &str, profile, text, timeline, try_it| Planned {
        name: name.into(),
        profile,
        text,
        timeline,
        try_it,
    };
    let mut all: Vec<Planned> = (1..=devices)
        .map(|i| {
            let name = format!("weather-{i}");
            let text = demo_config(&name, port);
            device(&name, "weather", text, Vec::new(), weather_try(i))
        })
        .collect();
    all.extend([
        device(
            "meter",
            "energy",
            mqtt("energy", "meter"),
            vec![],
            Try::Ctl("sensor pzem absent"),
        ),
        device(
            "tank",
            "h2o",
            format!(
                "{}unit L\ncapacity 2000\nlevelsensors 20,40,60,80\nflowpulserate 7.5\nmaxflow 30\n",
                mqtt("h2o", "tank")
            ),
            vec![(0, "tank 3"), (0, "flow 12")],
            Try::Ctl("tank 15"),
        ),
        device(
            "lights",
            "switch",
            format!("{}switchboard Direct4\n", mqtt("switch", "lights")),
            vec![(12, "input 1 on"), (13, "input 1 off")],
            Try::Ctl("input 0 on"),
        ),
        device(
            "boiler",
            "termo",
            mqtt("termo", "boiler"),
            vec![],
            Try::Ctl("temperature 65"),
        ),
        device(
            "relays",
            "relay",
            format!("{}relays 4\n", mqtt("relay", "relays")),
            vec![],
            Try::Pub("cmnd/relays/0/TurnOnWithTimeout".into(), "30"),
        ),
        device(
            "keyfobs",
            "rx433",
            mqtt("rx433", "keyfobs"),
            vec![(8, "press ev1527 74565 1")],
            Try::Ctl("press ev1527 74565 2"),
        ),
        device(
            "scales",
            "scale_manager",
            format!(
                "{}{DEMO_ESPNOW}espnowchannel 6\n",
                mqtt("scale_manager", "scales")
            ),
            vec![],
            Try::Ctl("power-cut"),
        ),
        device(
            "bathroom-scale",
            "scale_sensor",
            format!(
                "# written by `hearth demo`\nprofile scale_sensor\nssid (none)\n\
                 mqttname bathroom-scale\n{DEMO_ESPNOW}calibration_a 20000\n\
                 calibration_b -50000\nsleep 20\n"
            ),
            vec![(0, "load 72.4")],
            Try::Ctl("load 80"),
        ),
    ]);
    all
}

fn write_device(base: &Path, name: &str, text: &str) -> Result<(PathBuf, PathBuf), DemoError> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
    let config = dir.join("config.txt");
    std::fs::write(&config, text)
        .map_err(|e| DemoError::Setup(format!("{}: {e}", config.display())))?;
    Ok((config, dir.join("state")))
}

/// What the demo's main loop hears: a routed message, or a line a board printed.
enum Heard {
    Mqtt(hearth_broker::Message),
    Board(usize, String),
    BrokerGone,
}

/// Run the demo until Ctrl-C, or for `limit` when given. In a terminal, and without `raw`,
/// it shows the live view; otherwise the topic stream, with discovery configs summarised
/// unless `raw`.
pub fn run(port: u16, devices: u32, limit: Option<Duration>, raw: bool) -> Result<(), DemoError> {
    let view = !raw && std::io::stdout().is_terminal();
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let broker = EmbeddedBroker::start(addr).map_err(|e| DemoError::Broker(e.to_string()))?;
    let port = broker.local_addr().port();
    let feed = broker
        .subscribe_all()
        .map_err(|e| DemoError::Broker(e.to_string()))?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        // A closed terminal (SIGHUP) and Ctrl-\ (SIGQUIT) stop it as cleanly, so the screen
        // is given back and the boards are stopped.
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let base = std::env::temp_dir().join(format!("hearth-demo-{}", std::process::id()));
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let air = base.join("air");
    let planned = plan(port, devices);
    let help = help_lines(&exe, &base, &air, port);
    println!(
        "hearth demo: broker on 127.0.0.1:{port}; {devices} simulated weather stations, an energy \
         meter, a water tank, a switch board, thermometers, relays, a keyfob receiver and an \
         ESP-NOW scale with its forwarder"
    );
    println!("hearth demo: device state and logs in {}", base.display());
    if !view {
        for line in &help {
            println!("hearth demo: {line}");
        }
        println!("hearth demo: Ctrl-C stops everything\n");
    }

    let (tx, heard) = mpsc::channel::<Heard>();
    let mut children: Vec<Child> = Vec::new();
    let mut pending: Vec<(PathBuf, Timeline)> = Vec::new();
    let mut result = Ok(());
    for (i, p) in planned.iter().enumerate() {
        let spawned = write_device(&base, &p.name, &p.text).and_then(|(config, state)| {
            if !p.timeline.is_empty() {
                pending.push((state.clone(), p.timeline.clone()));
            }
            let mut command = Command::new(&exe);
            command
                .arg("sim")
                .arg("--config")
                .arg(&config)
                .arg("--state")
                .arg(&state)
                .env(crate::device::AIR_ENV, &air)
                .stdin(Stdio::null());
            // The view reads each board's output (its log and the control commands it is
            // given); the stream leaves it to the state directory's device.log.
            if view {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            } else {
                command.stdout(Stdio::null()).stderr(Stdio::inherit());
            }
            command
                .spawn()
                .map_err(|e| DemoError::Setup(format!("cannot start {}: {e}", p.name)))
        });
        match spawned {
            Ok(mut child) => {
                for out in crate::power::take_output(&mut child) {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for line in BufReader::new(out).lines().map_while(Result::ok) {
                            if tx.send(Heard::Board(i, line)).is_err() {
                                break;
                            }
                        }
                    });
                }
                children.push(child);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            while let Ok(msg) = feed.recv() {
                if tx.send(Heard::Mqtt(msg)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Heard::BrokerGone);
        });
    }
    drop(tx);
    let started = Instant::now();
    // Put the weight on the scale at once, press a keyfob a little later.
    let mut timeline: Vec<(u64, PathBuf, &'static str)> = pending
        .into_iter()
        .flat_map(|(state, cmds)| cmds.into_iter().map(move |(t, c)| (t, state.clone(), c)))
        .collect();
    timeline.sort_by_key(|(t, _, _)| *t);
    std::thread::spawn(move || {
        for (at, state, command) in timeline {
            let when = started + Duration::from_secs(at);
            std::thread::sleep(when.saturating_duration_since(Instant::now()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !crate::control::socket_path(&state).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = crate::control::send(&state, command);
        }
    });

    let names: Vec<String> = planned.iter().map(|p| p.name.clone()).collect();
    let mut house = House::new(
        planned
            .into_iter()
            .map(|p| Spec {
                name: p.name,
                appliance: p.profile.into(),
                try_it: p.try_it,
                mqtt: p.profile != "scale_sensor",
            })
            .collect(),
    );
    let mut terminal = view.then(screen::Terminal::enter);
    let mut drawn = Instant::now() - Duration::from_secs(1);
    let mut dirty = true;
    while result.is_ok()
        && !STOP.load(Ordering::SeqCst)
        && limit.is_none_or(|l| started.elapsed() < l)
    {
        let got = heard.recv_timeout(Duration::from_millis(100));
        let secs = started.elapsed().as_secs_f64();
        match got {
            Ok(Heard::Mqtt(msg)) => {
                if view {
                    house.message(&msg.topic, &msg.payload, secs);
                    dirty = true;
                } else {
                    let flag = if msg.retain { " (retained)" } else { "" };
                    let summary = (!raw)
                        .then(|| house::discovery_summary(&msg.topic, &msg.payload))
                        .flatten();
                    let payload =
                        summary.unwrap_or_else(|| String::from_utf8_lossy(&msg.payload).into());
                    println!("{secs:>8.1}s  {:<34} {payload}{flag}", msg.topic);
                }
            }
            Ok(Heard::Board(i, line)) => {
                house.log(&names[i], &line, secs);
                dirty = true;
            }
            Ok(Heard::BrokerGone) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                result = Err(DemoError::Broker("the broker stopped".into()));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        // At most ten frames a second, and one a second for the clock.
        if let Some(t) = terminal.as_mut() {
            let since = drawn.elapsed();
            if (dirty && since >= Duration::from_millis(100)) || since >= Duration::from_secs(1) {
                let (up, all) = house.online();
                let title = format!(
                    "hearth demo · broker 127.0.0.1:{port} · {up} of {all} devices online · {:.0} s · Ctrl-C stops",
                    secs
                );
                t.draw(
                    &house.rows(secs),
                    &screen::Frame {
                        title,
                        footer: &help,
                    },
                );
                drawn = Instant::now();
                dirty = false;
            }
        }
    }
    drop(terminal);
    println!("\nhearth demo: stopping");
    for child in &mut children {
        // SIGTERM ends the board, whose device sees its power line (stdin) close.
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    for child in &mut children {
        let _ = child.wait();
    }
    // A board's device process ends at its power line's end, which may be a moment after the
    // board: try again while it still writes there.
    for _ in 0..20 {
        if std::fs::remove_dir_all(&base).is_ok() || !base.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    result
}

/// How to try things from another terminal: the view's footer, the stream's first lines.
fn help_lines(exe: &Path, base: &Path, air: &Path, port: u16) -> Vec<String> {
    let exe = exe.display();
    vec![
        "Try things from another terminal; the TRY column's `ctl X` and `pub T P` mean:".into(),
        format!("  ctl X    {exe} sim ctl {}/<DEVICE>/state X", base.display()),
        format!("  pub T P  {exe} pub --broker 127.0.0.1:{port} T P"),
        format!(
            "Watch the topics: {exe} mon --broker 127.0.0.1:{port}   the scale's radio: {exe} espnow sniff --air {} --psk demo-psk-not-a-secret --group demo-house",
            air.display()
        ),
    ]
}
