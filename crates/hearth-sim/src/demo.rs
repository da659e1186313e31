//! `hearth demo`: an embedded MQTT broker and a few simulated weather stations in one command,
//! with their topics shown live. Nothing to install beyond cargo.

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

fn write_device(base: &Path, name: &str, port: u16) -> Result<(PathBuf, PathBuf), DemoError> {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
    let config = dir.join("config.txt");
    std::fs::write(&config, demo_config(name, port))
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
    println!("hearth demo: broker on 127.0.0.1:{port}; {devices} simulated weather stations");
    println!("hearth demo: device state and logs in {}", base.display());
    println!(
        "hearth demo: inject a fault with `{} sim ctl {}/weather-1/state wifi down`",
        exe.display(),
        base.display()
    );
    println!("hearth demo: Ctrl-C stops everything\n");
    let mut children: Vec<Child> = Vec::new();
    let mut result = Ok(());
    for i in 1..=devices {
        let name = format!("weather-{i}");
        let spawned = write_device(&base, &name, port).and_then(|(config, state)| {
            Command::new(&exe)
                .arg("sim")
                .arg("--config")
                .arg(&config)
                .arg("--state")
                .arg(&state)
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
