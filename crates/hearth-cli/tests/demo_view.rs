//! `hearth demo` in a terminal: the live view, read off a real terminal (a tmux pane, which
//! interprets the escape codes as any terminal would), with faults injected from "another
//! terminal" (this test) showing up within a second, and a clean exit at `--for`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::HEARTH;

/// A tmux server of our own (its own socket), killed when dropped.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(command: &str, width: u16, height: u16) -> Self {
        let pane = Self {
            socket: format!("hearth-demo-view-{}", std::process::id()),
        };
        let ok = pane
            .tmux(&[
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                command,
            ])
            .status
            .success();
        assert!(ok, "tmux starts");
        pane
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs (scripts/test.sh installs it)")
    }

    /// What the pane shows now, one string a line.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// The row of `device` on the screen, if it shows one.
    fn row(&self, device: &str) -> Option<String> {
        self.screen()
            .lines()
            .find(|l| l.starts_with(&format!("{device} ")))
            .map(String::from)
    }

    /// Wait until `ok` holds for the screen; how long it took.
    fn wait(&self, limit: Duration, ok: impl Fn(&str) -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok(&self.screen()) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        None
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn ctl(dir: &str, device: &str, command: &str) -> String {
    let out = Command::new(HEARTH)
        .args(["sim", "ctl", &format!("{dir}/{device}/state")])
        .args(command.split(' '))
        .output()
        .expect("hearth sim ctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_demo_shows_the_house_in_a_terminal_and_faults_show_within_a_second() {
    // The pane keeps its last screen after the demo ends, so the exit can be read too.
    let pane = Pane::start(
        // The shell outlives the demo's Ctrl-C (a no-op trap, which the demo does not inherit).
        &format!(
            "trap : INT; {HEARTH} demo --port 0 --devices 2 --for 300; echo \"demo exit $?\"; sleep 60"
        ),
        180,
        30,
    );
    let s = Duration::from_secs;
    let online = |row: &Option<String>| row.as_deref().is_some_and(|r| r.contains(" online "));
    let started = pane.wait(s(40), |_| {
        online(&pane.row("weather-1")) && online(&pane.row("relays"))
    });
    let screen = pane.screen();
    assert!(
        started.is_some(),
        "the devices never came online:\n{screen}"
    );
    // The header and the table: one row per device with its appliance and what to try.
    assert!(
        screen.starts_with("hearth demo · broker 127.0.0.1:"),
        "{screen}"
    );
    assert!(screen.contains("DEVICE"), "{screen}");
    for (device, appliance) in [
        ("weather-1", "weather"),
        ("weather-2", "weather"),
        ("meter", "energy"),
        ("tank", "h2o"),
        ("lights", "switch"),
        ("boiler", "termo"),
        ("relays", "relay"),
        ("keyfobs", "rx433"),
        ("scales", "scale_manager"),
        ("bathroom-scale", "scale_sensor"),
    ] {
        let row = pane
            .row(device)
            .unwrap_or_else(|| panic!("no row for {device}:\n{screen}"));
        assert!(row.contains(appliance), "{row}");
    }
    assert!(
        !screen.contains("\"components\""),
        "discovery JSON on the screen:\n{screen}"
    );
    let dir = screen
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/<DEVICE>/state"))
        .map(String::from)
        .unwrap_or_else(|| panic!("the footer names the state directory:\n{screen}"));
    let broker = screen
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .map(String::from)
        .unwrap();
    // Readings with their units, once the weather stations have measured.
    let measured = pane.wait(s(40), |_| {
        pane.row("weather-2")
            .is_some_and(|r| r.contains("°C") && r.contains("hPa"))
    });
    assert!(measured.is_some(), "no readings:\n{}", pane.screen());

    // A power cut: the broker publishes the will at once, and the row turns offline.
    assert_eq!(ctl(&dir, "weather-1", "power-cut"), "ok power cut");
    let offline = pane.wait(s(5), |_| {
        pane.row("weather-1")
            .is_some_and(|r| r.contains(" offline "))
    });
    println!("power cut to offline on the screen: {offline:?}");
    assert!(
        offline.is_some_and(|t| t < s(1)),
        "weather-1 did not turn offline within a second ({offline:?}):\n{}",
        pane.screen()
    );
    // A relay switched from another terminal.
    let out = Command::new(HEARTH)
        .args([
            "pub",
            "--broker",
            &broker,
            "cmnd/relays/0/TurnOnWithTimeout",
            "30",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let switched = pane.wait(s(5), |_| {
        pane.row("relays").is_some_and(|r| r.contains("Relay 1 on"))
    });
    println!("relay command to the screen: {switched:?}");
    assert!(
        switched.is_some_and(|t| t < s(1)),
        "relay 1 did not switch on within a second ({switched:?}):\n{}",
        pane.screen()
    );
    // A sensor fault: the injection shows at once, the malfunction once the station measures.
    assert_eq!(
        ctl(&dir, "weather-2", "sensor bme280 absent"),
        "ok sensor bme280 absent"
    );
    let noted = pane.wait(s(5), |_| {
        pane.row("weather-2")
            .is_some_and(|r| r.contains("sensor bme280 absent"))
    });
    assert!(
        noted.is_some_and(|t| t < s(1)),
        "the injection did not show within a second ({noted:?}):\n{}",
        pane.screen()
    );
    let malfunction = pane.wait(s(30), |_| {
        pane.row("weather-2")
            .is_some_and(|r| r.contains("online, malfunction "))
    });
    assert!(malfunction.is_some(), "no malfunction:\n{}", pane.screen());

    // Ctrl-C ends it (`--for`'s end takes the same path; tests/scenarios.rs runs that one): the
    // main screen comes back with the demo's last words, exit 0, and its state directory is
    // gone.
    pane.tmux(&["send-keys", "C-c"]);
    let ended = pane.wait(s(30), |screen| screen.contains("demo exit "));
    let screen = pane.screen();
    assert!(ended.is_some(), "the demo did not end:\n{screen}");
    assert!(screen.contains("hearth demo: stopping"), "{screen}");
    assert!(screen.contains("demo exit 0"), "{screen}");
    assert!(
        !screen.contains("DEVICE  "),
        "the view stayed on the screen:\n{screen}"
    );
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
}
