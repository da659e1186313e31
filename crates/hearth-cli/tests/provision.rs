//! Wi-Fi over the serial console (Improv Serial): a simulated device whose config has no
//! Wi-Fi waits on its console (a pseudo-terminal, `DIR/console`), and `hearth provision` gives
//! it a network, as it would a board on /dev/ttyACM0. Real processes, a real terminal, a real
//! broker.

mod support;

use std::time::Duration;

use support::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn without_wifi(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("ssid") && !l.starts_with("password"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn provision(sim: &Sim, ssid: &str, password: &str) -> std::process::Output {
    let port = sim.state().join("console");
    hearth(&[
        "provision",
        "--port",
        port.to_str().unwrap(),
        "--ssid",
        ssid,
        "--password",
        password,
    ])
}

#[test]
fn a_device_without_wifi_waits_on_its_console_and_joins_what_it_is_given() {
    let broker = Broker::start();
    let obs = Observer::start(&broker);
    let text = without_wifi(&config("wx", broker.port, ""));
    let sim = Sim::start_with(
        &text,
        None,
        &["--ap", "Test Home:right-passphrase", "--ap", "Cafe"],
    );
    assert!(
        sim.wait_log("improv: the config has no Wi-Fi", S(10)),
        "{}",
        sim.dump()
    );
    assert!(sim.state().join("console").exists());

    // A password the network refuses: an error, with the device's reason, and no network.
    let out = provision(&sim, "Test Home", "wrong-passphrase");
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let shown = text_of(&out);
    assert!(shown.contains("could not join"), "{shown}");
    assert!(
        shown.contains("device: ") && shown.contains("the network refused the password"),
        "{shown}"
    );
    // One the config rules refuse (a WPA2 passphrase has at least 8 characters): refused
    // before any join.
    let out = provision(&sim, "Test Home", "short");
    let shown = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("refused: config:"), "{shown}");
    // A network not in range.
    let shown = text_of(&provision(&sim, "Elsewhere", "right-passphrase"));
    assert!(shown.contains("no such network in range"), "{shown}");
    // Nothing joined, nothing stored, nothing on the broker.
    assert!(!sim.state().join("provisioned-config.txt").exists());
    assert_eq!(obs.count("tele/wx/LWT"), 0);

    // The right one: joined, stored, the address reported, and the device comes online.
    let out = provision(&sim, "Test Home", "right-passphrase");
    let shown = text_of(&out);
    assert!(out.status.success(), "{shown}\n{}", sim.dump());
    assert!(
        shown.contains("wx (Hearth 0.1.0 on sim) joined Test Home; address 127.0.0.1"),
        "{shown}"
    );
    let stored = std::fs::read_to_string(sim.state().join("provisioned-config.txt")).unwrap();
    assert!(
        stored.contains("ssid Test Home\npassword right-passphrase\n"),
        "{stored}"
    );
    assert!(
        obs.wait_for("tele/wx/LWT", S(20), |m| m.payload == "Online")
            .is_some(),
        "{}",
        sim.dump()
    );
    // Once on the network, the console refuses new credentials.
    let shown = text_of(&provision(&sim, "Cafe", ""));
    assert!(shown.contains("not waiting for Wi-Fi"), "{shown}");

    // After a power cut it boots on the stored config, with no console to wait on.
    obs.clear();
    assert!(sim.ctl("power-cut").starts_with("ok"));
    assert!(
        sim.wait_log(
            "config: using the config with the Wi-Fi given over the console",
            S(10)
        ),
        "{}",
        sim.dump()
    );
    assert!(obs
        .wait_for("stat/wx/RebootReason", S(20), |m| m.payload == "power-on")
        .is_some());
    assert!(!sim.state().join("console").exists());
}

fn text_of(o: &std::process::Output) -> String {
    text(o)
}

/// `hearth flash` without `--config`, in a terminal (a pseudo-terminal here): it asks, checks
/// each answer, and writes the config it was told into the image.
#[test]
fn flash_in_a_terminal_asks_for_the_config_and_writes_it() {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::process::Stdio;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let elf = root.join("target/riscv32imc-unknown-none-elf/release/hearth-firmware");
    assert!(
        elf.exists(),
        "{}: build the firmware first (scripts/test.sh does)",
        elf.display()
    );
    let dir = TempDir::new("flash-ask");
    let out_path = dir.0.join("image.bin");
    let (mut master, slave) = unsafe {
        let (mut m, mut s) = (0, 0);
        assert_eq!(
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null()
            ),
            0
        );
        (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s))
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["flash", "--chip", "esp32c3", "--elf"])
        .arg(&elf)
        .arg("--save-image")
        .arg(&out_path)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A name with a slash first: asked again. No Wi-Fi: left for the console.
    master
        .write_all(b"relay\nr/1\nr1\n\n192.168.1.2:1883\n\n\n")
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // The terminal's output: read what is there without blocking on an empty pty.
    let mut shown = Vec::new();
    unsafe {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&master);
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        );
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        shown.extend_from_slice(&buf[..n]);
    }
    let shown = String::from_utf8_lossy(&shown);
    assert!(status.success(), "{shown}\n{err}");
    assert!(shown.contains("for \"mqttname\": expected"), "{shown}");
    assert!(
        err.contains("no Wi-Fi: the board will wait for it"),
        "{err}"
    );
    let image = std::fs::read(&out_path).unwrap();
    let want = b"profile relay\nmqttname r1\nmqttbroker 192.168.1.2:1883\n";
    assert!(
        image.windows(want.len()).any(|w| w == want),
        "the config is not in the image"
    );
}

#[test]
fn flash_without_a_config_or_a_terminal_says_what_it_needs() {
    let out = hearth(&[
        "flash",
        "--chip",
        "esp32c3",
        "--elf",
        "/proc/self/exe",
        "--save-image",
        "/tmp/never",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("needs --config FILE (or a terminal"),
        "{}",
        text(&out)
    );
}
