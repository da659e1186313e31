//! A real Home Assistant for the tests: installed from PyPI by `scripts/ha-env.sh` into a
//! cached virtual environment, started on a port of its own with a fresh configuration
//! directory, onboarded and connected to the test's mosquitto through its own APIs
//! (`ha_setup.py`), then asked through its REST API with a long-lived token. The process is
//! stopped and its directory removed on drop, also when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{free_port, wait_until, Broker, TempDir};

/// The tests' client of Home Assistant's WebSocket API.
const WS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ha_watch.py");

/// The `hass` of the environment `scripts/ha-env.sh` made: `$HEARTH_HA`, else the script is
/// run to find (or make) it.
fn hass() -> PathBuf {
    if let Ok(p) = std::env::var("HEARTH_HA") {
        return PathBuf::from(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ha-env.sh");
    let out = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed: Home Assistant is not installed (run scripts/test.sh)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// One running Home Assistant.
/// The states of one entity, as Home Assistant gave them ([`HomeAssistant::watch`]).
pub struct Watch {
    child: Child,
    states: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Watch {
    /// The states so far.
    pub fn states(&self) -> Vec<Value> {
        self.states.lock().unwrap().clone()
    }

    /// Stop watching.
    pub fn stop(mut self) -> Vec<Value> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.states()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct HomeAssistant {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its version, as its WebSocket API reported it.
    pub version: String,
    token: String,
    agent: ureq::Agent,
    child: Option<Child>,
    dir: TempDir,
}

impl HomeAssistant {
    /// Starts Home Assistant, onboards it and adds the MQTT integration for `broker`.
    pub fn start(broker: &Broker) -> Self {
        let hass = hass();
        let dir = TempDir::new("ha");
        let port = free_port();
        std::fs::write(
            dir.0.join("configuration.yaml"),
            format!(
                "homeassistant:\n  name: Hearth test\n  latitude: 0\n  longitude: 0\n  \
                 elevation: 0\n  unit_system: metric\n  time_zone: UTC\n  country: CH\n\
                 http:\n  server_host: 127.0.0.1\n  server_port: {port}\napi:\n\
                 logger:\n  default: warning\n  logs:\n    homeassistant.components.mqtt: info\n"
            ),
        )
        .expect("write configuration.yaml");
        let log = std::fs::File::create(dir.0.join("hass.out")).expect("hass.out");
        // --skip-pip: everything the integrations in use need came with the environment; a
        // test never downloads.
        let child = Command::new(&hass)
            .arg("-c")
            .arg(&dir.0)
            .arg("--skip-pip")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", hass.display()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut ha = HomeAssistant {
            port,
            version: String::new(),
            token: String::new(),
            agent,
            child: Some(child),
            dir,
        };
        // The first start creates the configuration's databases: allow for a loaded machine.
        let url = ha.url("/api/onboarding");
        let up = wait_until(Duration::from_secs(180), || {
            ha.agent
                .get(&url)
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
        });
        assert!(up, "Home Assistant did not start\n{}", ha.log());
        let python = hass.with_file_name("python");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ha_setup.py");
        let out = Command::new(&python)
            .arg(script)
            .arg(ha.url(""))
            .arg(broker.port.to_string())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{script}: {err}\n{}", ha.log());
        ha.token = String::from_utf8_lossy(&out.stdout).trim().to_string();
        ha.version = err
            .lines()
            .find_map(|l| l.strip_prefix("home assistant "))
            .unwrap_or("unknown")
            .to_string();
        ha
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path` with the token: the status and the body as JSON (`Null` if it is not).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .agent
            .get(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        Self::answer(r)
    }

    /// `POST path` with a JSON body and the token.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .agent
            .post(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token))
            .content_type("application/json")
            .send(body.to_string().as_str());
        Self::answer(r)
    }

    fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
        match r {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Every entity's state object (`entity_id`, `state`, `attributes`).
    pub fn states(&self) -> Vec<Value> {
        match self.get("/api/states") {
            (200, Value::Array(states)) => states,
            _ => Vec::new(),
        }
    }

    /// One entity's state, if Home Assistant has the entity.
    pub fn state(&self, entity_id: &str) -> Option<Value> {
        match self.get(&format!("/api/states/{entity_id}")) {
            (200, v) => Some(v),
            _ => None,
        }
    }

    /// Calls a service (`switch.turn_on`) with this data; panics unless Home Assistant took it.
    pub fn call(&self, domain: &str, service: &str, data: &Value) {
        let (status, body) = self.post(&format!("/api/services/{domain}/{service}"), data);
        assert_eq!(status, 200, "{domain}.{service}: {body}\n{}", self.log());
    }

    /// `ha_watch.py` for this Home Assistant, run by the Python of its environment; the
    /// caller adds what to do.
    fn ws_script(&self) -> Command {
        let mut cmd = Command::new(hass().with_file_name("python"));
        cmd.arg(WS_SCRIPT).arg(self.url("")).arg(&self.token);
        cmd
    }

    /// Send one command over Home Assistant's WebSocket API (`ha_watch.py --call`); its
    /// answer, which must be a success.
    pub fn ws(&self, command: &Value) -> Value {
        let out = self
            .ws_script()
            .arg("--call")
            .arg(command.to_string())
            .output()
            .unwrap_or_else(|e| panic!("{WS_SCRIPT}: {e}"));
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{command}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(answer["success"], true, "{command}: {answer}");
        answer["result"].clone()
    }

    /// Every state Home Assistant gives `entity_id` from now on, as it gives it (its
    /// WebSocket API's state_changed events, `ha_watch.py`), until [`Watch::stop`].
    pub fn watch(&self, entity_id: &str) -> Watch {
        use std::io::BufRead;
        let mut child = self
            .ws_script()
            .arg(entity_id)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{WS_SCRIPT}: {e}"));
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(
            lines.next().and_then(Result::ok).as_deref(),
            Some("ready"),
            "{WS_SCRIPT} did not subscribe"
        );
        let states = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = states.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    seen.lock().unwrap().push(v);
                }
            }
        });
        Watch { child, states }
    }

    /// Everything Home Assistant wrote.
    pub fn log_all(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("hass.out")).unwrap_or_default()
    }

    /// The end of Home Assistant's log, for a failing assertion.
    pub fn log(&self) -> String {
        let text = self.log_all();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: Home Assistant stops in order; then make sure.
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let stopped = wait_until(Duration::from_secs(20), || {
                c.try_wait().ok().flatten().is_some()
            });
            if !stopped {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
