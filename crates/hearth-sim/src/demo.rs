//! `hearth demo`: an embedded MQTT broker and a simulated house in one command — weather
//! stations, an energy meter, a water tank, a light-switch board, thermometers, timed relays, a
//! keyfob receiver, and a battery scale reporting over ESP-NOW to its forwarder — with every
//! topic shown live. Nothing to install beyond cargo.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    format!(
        "# written by `hearth demo`\nprofile weather\nssid Demo Network\npassword demo-passphrase\n\
         mqttbroker 127.0.0.1:{port}\nmqttname {name}\nstartdelay 2\nmqttkeepalive 15\n"
    )
}

/// The ESP-NOW network of the demo's scale pair (a fixed demo PSK: the air is private).
const DEMO_ESPNOW: &str = "espnowgroup demo-house\nespnowpsk demo-psk-not-a-secret\n";

/// Control commands sent to a device's simulator this many seconds after the start.
type Timeline = Vec<(u64, &'static str)>;

/// The house beyond the weather stations: (name, config text, its commands).
fn house(port: u16) -> Vec<(String, String, Timeline)> {
    let mqtt = |profile: &str, name: &str| {
        format!(
            "# written by `hearth demo`\nprofile {profile}\nssid Demo Network\n\
             password demo-passphrase\nmqttbroker 127.0.0.1:{port}\nmqttname {name}\n\
             startdelay 2\nmqttkeepalive 15\n"
        )
    };
    vec![
        ("meter".into(), mqtt("energy", "meter"), vec![]),
        (
            "tank".into(),
            format!(
                "{}unit L\ncapacity 2000\nlevelsensors 20,40,60,80\nflowpulserate 7.5\nmaxflow 30\n",
                mqtt("h2o", "tank")
            ),
            vec![(0, "tank 3"), (0, "flow 12")],
        ),
        (
            "lights".into(),
            format!("{}switchboard Direct4\n", mqtt("switch", "lights")),
            vec![(12, "input 1 on"), (13, "input 1 off")],
        ),
        ("boiler".into(), mqtt("termo", "boiler"), vec![]),
        (
            "relays".into(),
            format!("{}relays 4\n", mqtt("relay", "relays")),
            vec![],
        ),
        (
            "keyfobs".into(),
            mqtt("rx433", "keyfobs"),
            vec![(8, "press ev1527 74565 1")],
        ),
        (
            "scales".into(),
            format!(
                "{}{DEMO_ESPNOW}espnowchannel 6\n",
                mqtt("scale_manager", "scales")
            ),
            vec![],
        ),
        (
            "bathroom-scale".into(),
            format!(
                "# written by `hearth demo`\nprofile scale_sensor\nssid (none)\n\
                 mqttname bathroom-scale\n{DEMO_ESPNOW}calibration_a 20000\n\
                 calibration_b -50000\nsleep 20\n"
            ),
            vec![(0, "load 72.4")],
        ),
    ]
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

/// Run the demo until Ctrl-C, or for `limit` when given.
pub fn run(port: u16, devices: u32, limit: Option<Duration>) -> Result<(), DemoError> {
    let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    let broker = EmbeddedBroker::start(addr).map_err(|e| DemoError::Broker(e.to_string()))?;
    let port = broker.local_addr().port();
    let feed = broker
        .subscribe_all()
        .map_err(|e| DemoError::Broker(e.to_string()))?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let base = std::env::temp_dir().join(format!("hearth-demo-{}", std::process::id()));
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let air = base.join("air");
    println!(
        "hearth demo: broker on 127.0.0.1:{port}; {devices} simulated weather stations, an energy \
         meter, a water tank, a switch board, thermometers, relays, a keyfob receiver and an \
         ESP-NOW scale with its forwarder"
    );
    println!("hearth demo: device state and logs in {}", base.display());
    println!(
        "hearth demo: inject a fault with `{} sim ctl {}/weather-1/state wifi down`",
        exe.display(),
        base.display()
    );
    println!(
        "hearth demo: press a keyfob with `{} sim ctl {}/keyfobs/state press ev1527 74565 2`, \
         switch a relay with `cmnd/relays/0/TurnOnWithTimeout 30`",
        exe.display(),
        base.display()
    );
    println!(
        "hearth demo: watch the scale's radio with `{} espnow sniff --air {} --psk demo-psk-not-a-secret --group demo-house`",
        exe.display(),
        air.display()
    );
    println!("hearth demo: Ctrl-C stops everything\n");
    let mut children: Vec<Child> = Vec::new();
    let mut pending: Vec<(PathBuf, Timeline)> = Vec::new();
    let mut result = Ok(());
    let weather = (1..=devices).map(|i| {
        let name = format!("weather-{i}");
        let text = demo_config(&name, port);
        (name, text, Vec::new())
    });
    for (name, text, commands) in weather.chain(house(port)) {
        let spawned = write_device(&base, &name, &text).and_then(|(config, state)| {
            if !commands.is_empty() {
                pending.push((state.clone(), commands));
            }
            Command::new(&exe)
                .arg("sim")
                .arg("--config")
                .arg(&config)
                .arg("--state")
                .arg(&state)
                .env(crate::device::AIR_ENV, &air)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| DemoError::Setup(format!("cannot start {name}: {e}")))
        });
        match spawned {
            Ok(child) => children.push(child),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
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
    while result.is_ok()
        && !STOP.load(Ordering::SeqCst)
        && limit.is_none_or(|l| started.elapsed() < l)
    {
        match feed.recv_timeout(Duration::from_millis(200)) {
            Ok(msg) => {
                let secs = started.elapsed().as_secs_f64();
                let flag = if msg.retain { " (retained)" } else { "" };
                println!(
                    "{secs:>8.1}s  {:<34} {}{flag}",
                    msg.topic,
                    String::from_utf8_lossy(&msg.payload)
                );
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                result = Err(DemoError::Broker("the broker stopped".into()));
            }
        }
    }
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
    let _ = std::fs::remove_dir_all(&base);
    result
}
