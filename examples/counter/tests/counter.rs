//! The example appliance as a user runs it: `hearth-counter` on the simulated board against a
//! real mosquitto, commanded and observed over MQTT (the harness of the `hearth` scenario
//! tests).

#[path = "../../../crates/hearth-cli/tests/support/mod.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{config_for, Broker, Observer, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_hearth-counter");

/// The device process, killed on drop.
struct Device(Child);

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &TempDir, config: &str) -> Device {
    let path = dir.0.join("config.txt");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.0.join("device.log")).unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("--state")
        .arg(dir.0.join("state"))
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start hearth-counter");
    Device(child)
}

fn log(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.0.join("device.log")).unwrap_or_default()
}

#[test]
fn the_counter_adds_what_it_is_sent_and_home_assistant_sees_it() {
    let broker = Broker::start();
    let seen = Observer::start(&broker);
    let dir = TempDir::new("counter");
    let _device = start(
        &dir,
        &config_for("counter", "Counter", broker.port, "counterstep 5\n"),
    );

    // Online: the runtime's availability message, then the device config with the
    // appliance's entity in it.
    let online = seen.wait_for("tele/Counter/LWT", Duration::from_secs(20), |m| {
        m.payload == "Online"
    });
    assert!(online.is_some(), "{}", log(&dir));
    let discovery = support::wait_until(Duration::from_secs(5), || {
        seen.entities().into_iter().any(|m| {
            m.topic.starts_with("homeassistant/sensor/") && m.payload.contains("stat/Counter/Count")
        })
    });
    assert!(discovery, "no discovery config for Count\n{}", log(&dir));

    // One step (counterstep 5), then a number; only the commands produce these values.
    broker.publish("cmnd/Counter/Add", "", false);
    let five = seen.wait_for("stat/Counter/Count", Duration::from_secs(10), |m| {
        m.payload == "5"
    });
    assert!(five.is_some(), "{}", log(&dir));
    broker.publish("cmnd/Counter/Add", "7", false);
    let twelve = seen.wait_for("stat/Counter/Count", Duration::from_secs(10), |m| {
        m.payload == "12"
    });
    assert!(twelve.is_some(), "{}", log(&dir));
    // Retained, so a dashboard that connects later sees it at once.
    let kept = broker.retained("stat/Counter/Count");
    assert_eq!(kept, [("stat/Counter/Count".to_string(), "12".to_string())]);

    // A bad payload is logged and changes nothing.
    broker.publish("cmnd/Counter/Add", "lots", false);
    let said = seen.wait_for("stat/Counter/Log", Duration::from_secs(10), |m| {
        m.payload.contains("Add \"lots\"")
    });
    assert!(said.is_some(), "{}", log(&dir));
    broker.publish("cmnd/Counter/Reset", "", false);
    let zero = seen.wait_for("stat/Counter/Count", Duration::from_secs(10), |m| {
        m.payload == "0" && m.at > twelve.as_ref().unwrap().at
    });
    assert!(zero.is_some(), "{}", log(&dir));
    assert!(
        !seen
            .all()
            .iter()
            .any(|m| m.topic == "stat/Counter/Count" && m.payload == "lots"),
        "{}",
        log(&dir)
    );
}

#[test]
fn a_config_the_counter_refuses_names_the_key_and_starts_nothing() {
    let dir = TempDir::new("counter-bad");
    let mut device = start(
        &dir,
        &config_for("counter", "Counter", 1, "counterstep 0\n"),
    );
    let status = device.0.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{}", log(&dir));
    let said = log(&dir);
    assert!(
        said.contains("counterstep") && said.contains("1..=1000"),
        "{said}"
    );
}
