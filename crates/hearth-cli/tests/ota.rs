//! Safe updates from anywhere, end to end: real mosquitto, real `hearth sim` devices with their
//! two firmware slots, and the real `hearth keygen`/`image`/`ota`/`cmd`/`config push` processes.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_fleet::client::{BrokerArgs, Client};
use hearth_fleet::commands::{load_key, UpdateStatus};
use hearth_ota::manifest::{Manifest, Version};
use hearth_ota::otadata::crc32;
use hearth_ota::signed::{self, Kind};
use sha2::{Digest, Sha256};
use support::{
    config, hearth, new_owner, ota_all, ota_all_killed_at, text, wait_until, Broker, Owner, Sim,
    TempDir, HEARTH,
};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A device with the owner's key and short trial times: healthy after 5 s online, rolled back
/// if not healthy after 15 s.
fn device(broker: &Broker, name: &str, owner: &Owner, extra: &str) -> Sim {
    let sim = Sim::start(&config(
        name,
        broker.port,
        &format!("otaconfirm 5\notatrial 15\n{}\n{extra}", owner.otakey),
    ));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    sim
}

fn broker_flag(broker: &Broker) -> String {
    format!("127.0.0.1:{}", broker.port)
}

/// Wait until `hearth ls` on `broker` (HOST:PORT) lists each device online with its
/// appliance: what `hearth ota --all` selects by (a device's discovery config follows its
/// connection by up to 2 s).
fn wait_listed(broker: &str, names: &[&str]) {
    let table =
        || String::from_utf8_lossy(&hearth(&["ls", "--broker", broker]).stdout).into_owned();
    let listed = wait_until(s(20), || {
        let t = table();
        names.iter().all(|n| {
            t.lines().any(|l| {
                let w: Vec<_> = l.split_whitespace().collect();
                w.first() == Some(n) && w.get(1) != Some(&"-") && w.get(4) == Some(&"online")
            })
        })
    });
    assert!(listed, "not all of {names:?} listed:\n{}", table());
}

/// Devices with the owner's key on `broker`, each started as [`device`] does.
fn fleet(broker: &Broker, owner: &Owner, names: &[&str]) -> Vec<Sim> {
    names.iter().map(|n| device(broker, n, owner, "")).collect()
}

/// Every device's log, for a failure message.
fn dump_all(devices: &[Sim]) -> String {
    devices.iter().map(Sim::dump).collect::<Vec<_>>().join("\n")
}

fn ota(broker: &Broker, device: &str, image: &Path, owner: &Owner, extra: &[&str]) -> Output {
    let b = broker_flag(broker);
    let mut args = vec![
        "ota",
        device,
        image.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &b,
    ];
    args.extend_from_slice(extra);
    hearth(&args)
}

fn cmd(broker: &Broker, device: &str, words: &[&str], key: Option<&Owner>) -> String {
    let b = broker_flag(broker);
    let mut args = vec!["cmd", device, "--broker", &b];
    if let Some(o) = key {
        args.extend_from_slice(&["--key", o.key()]);
    }
    args.extend_from_slice(words);
    let out = hearth(&args);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A client that crafts what the CLI would not send, and reads the device's status.
struct Probe {
    client: Client,
    device: String,
}

impl Probe {
    fn new(broker: &Broker, device: &str) -> Self {
        let args = BrokerArgs {
            host: "127.0.0.1".into(),
            port: broker.port,
            user: None,
            password: None,
            tls: None,
        };
        let mut client = Client::connect(&args, &format!("probe-{device}"), s(5)).unwrap();
        client.subscribe(&format!("stat/{device}/Update")).unwrap();
        client.subscribe(&format!("stat/{device}/OTA")).unwrap();
        Probe {
            client,
            device: device.into(),
        }
    }

    fn send(&mut self, leaf: &str, payload: &[u8], retain: bool) {
        let topic = format!("cmnd/{}/{leaf}", self.device);
        self.client.publish(&topic, payload, retain).unwrap();
    }

    /// The next status on `stat/<device>/Update`.
    fn status(&mut self) -> UpdateStatus {
        let deadline = Instant::now() + s(10);
        while Instant::now() < deadline {
            if let Ok(Some(m)) = self.client.recv(s(10)) {
                if m.topic.ends_with("/Update") {
                    return UpdateStatus::parse(&String::from_utf8_lossy(&m.payload)).unwrap();
                }
            }
        }
        panic!("no status from {}", self.device);
    }

    /// Forget what arrived so far.
    fn drain(&mut self) {
        while let Ok(Some(_)) = self.client.recv(Duration::from_millis(300)) {}
    }

    /// The next answer on `stat/<device>/OTA`.
    fn answer(&mut self) -> String {
        let deadline = Instant::now() + s(10);
        while Instant::now() < deadline {
            if let Ok(Some(m)) = self.client.recv(s(10)) {
                if m.topic.ends_with("/OTA") {
                    return String::from_utf8_lossy(&m.payload).into_owned();
                }
            }
        }
        panic!("no answer from {}", self.device);
    }
}

fn manifest_envelope(
    owner_key: &ed25519_dalek::SigningKey,
    device: &str,
    image: &[u8],
    version: Version,
    chip: &str,
    issued: u64,
) -> Vec<u8> {
    let m = Manifest {
        version,
        size: image.len() as u32,
        sha256: Sha256::digest(image).into(),
        chip,
        appliance: "all",
    };
    signed::seal(
        Kind::Firmware,
        issued,
        device,
        &m.encode().unwrap(),
        owner_key,
    )
    .unwrap()
}

fn chunk(offset: u32, data: &[u8], crc: Option<u32>) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    p.extend_from_slice(&crc.unwrap_or_else(|| crc32(0, data)).to_le_bytes());
    p.extend_from_slice(data);
    p
}

#[test]
fn a_signed_update_confirms_itself_and_old_manifests_cannot_be_replayed() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "upd", &owner, "");
    let image = owner.image("v020.img", &["--version", "0.2.0", "--size", "409600"]);
    let key = load_key(&owner.key).unwrap();
    // Signed now, kept for a replay after the update.
    let bytes = std::fs::read(&image).unwrap();
    let captured = manifest_envelope(&key, "upd", &bytes, Version(0, 2, 0), "sim", now_ms());

    // With an otakey, `reboot` must be signed: Home Assistant gets an identify button and no
    // restart button.
    assert!(dev.wait_log("entities announced", s(20)), "{}", dev.dump());
    let (topic, config) = broker
        .retained("homeassistant/device/upd/config")
        .pop()
        .expect("the device config");
    let buttons: Vec<String> = support::schema::device_entities(&topic, &config, "upd")
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with("homeassistant/button/"))
        .collect();
    assert_eq!(
        buttons,
        ["homeassistant/button/upd/Identify/config"],
        "{}",
        dev.dump()
    );
    let obs = support::Observer::start_on(&broker, "stat/upd/Firmware");
    let t = Instant::now();
    let out = ota(&broker, "upd", &image, &owner, &[]);
    let took = t.elapsed();
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    // The terminal's bar, redrawn in place, ends at 100 % once, on a line of its own.
    let err = String::from_utf8_lossy(&out.stderr);
    let last = &err[err.rfind('\r').expect("a progress bar")..];
    let (bar, after) = last.split_once('\n').expect("the bar's line ends");
    assert!(bar.contains("100%"), "{err:?}");
    assert_eq!(err.matches("100%").count(), 1, "{err:?}");
    assert!(after.starts_with("  upd: installed"), "{err:?}");
    // Home Assistant's update entity followed it: the bar moved up to 100 on the way, and
    // the new firmware reports itself installed with nothing in progress.
    let firmware: Vec<serde_json::Value> = obs
        .all()
        .iter()
        .filter(|m| m.topic == "stat/upd/Firmware")
        .map(|m| serde_json::from_str(&m.payload).expect("Firmware is JSON"))
        .collect();
    let bar: Vec<u64> = firmware
        .iter()
        .filter(|f| f["in_progress"] == true)
        .map(|f| f["update_percentage"].as_u64().expect("a percentage"))
        .collect();
    assert!(
        bar.windows(2).all(|w| w[0] <= w[1])
            && bar.iter().any(|p| (1..100).contains(p))
            && bar.last() == Some(&100),
        "{firmware:?}"
    );
    assert!(
        firmware
            .iter()
            .all(|f| f["in_progress"] == false || f["installed_version"] != "0.2.0"),
        "{firmware:?}"
    );
    assert_eq!(
        broker.retained("stat/upd/Firmware"),
        [(
            "stat/upd/Firmware".to_string(),
            r#"{"installed_version":"0.2.0","in_progress":false,"update_percentage":null}"#
                .to_string()
        )],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("firmware 0.2.0 confirmed healthy"),
        "{}",
        text(&out)
    );
    let transfer = dev.log();
    let received = transfer
        .find("update: receiving firmware 0.2.0 (409600 bytes)")
        .expect("transfer started");
    assert!(transfer[received..].contains("verified and selected"));
    // The device's own clock: from the accepted manifest to the selected slot.
    let at = |needle: &str| -> f64 {
        let line = transfer.lines().find(|l| l.contains(needle)).unwrap();
        line[1..line.find(']').unwrap()].trim().parse().unwrap()
    };
    let moved = at("verified and selected") - at("update: receiving firmware 0.2.0");
    println!(
        "400 KB update: {moved:.3} s of transfer and checks on the device, {took:?} from `hearth ota` to confirmed healthy"
    );
    assert!(moved >= 0.0);
    assert!(cmd(&broker, "upd", &["getversion"], None).contains("hearth 0.2.0 chip sim"));
    let parts = cmd(&broker, "upd", &["partitions"], None);
    assert!(
        parts.starts_with("running slot 1 (firmware 0.2.0)"),
        "{parts}"
    );
    assert!(parts.contains("slot 1 valid"), "{parts}");

    // The captured manifest: older than the one the CLI used, so it is stale.
    let mut probe = Probe::new(&broker, "upd");
    probe.send("Update/Begin", &captured, false);
    let st = probe.status();
    assert_eq!(st.state, "refused", "{st:?}");
    assert!(st.error.unwrap().contains("replayed or stale"));
    // A fresh signature on an older version, a downgrade: the tool does not send it (the
    // device would refuse), says so and fails...
    let old = owner.image("v019.img", &["--version", "0.1.9"]);
    let out = ota(&broker, "upd", &old, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "skipped: upd: runs 0.2.0, newer than the image (a device refuses an older one)"
        ),
        "{}",
        text(&out)
    );
    // ...and the device refuses it when another tool sends it anyway.
    let old_bytes = std::fs::read(&old).unwrap();
    let downgrade = manifest_envelope(&key, "upd", &old_bytes, Version(0, 1, 9), "sim", now_ms());
    probe.drain();
    probe.send("Update/Begin", &downgrade, false);
    let st = probe.status();
    assert_eq!(st.state, "refused", "{st:?}");
    assert!(
        st.error
            .as_deref()
            .is_some_and(|e| e.contains("image version 0.1.9 is not newer than the running 0.2.0")),
        "{st:?}"
    );
}

#[test]
fn an_interrupted_manifest_replayed_later_cannot_rewind_the_anti_replay_mark() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "mark", &owner, "");
    let key = load_key(&owner.key).unwrap();
    let image = owner.image("v021.img", &["--version", "0.2.1", "--size", "40960"]);
    let bytes = std::fs::read(&image).unwrap();
    // An update starts and is interrupted by a power cut: its manifest stays in flash.
    let manifest = manifest_envelope(&key, "mark", &bytes, Version(0, 2, 1), "sim", now_ms());
    let mut probe = Probe::new(&broker, "mark");
    probe.send("Update/Begin", &manifest, false);
    let st = probe.status();
    assert_eq!((st.state.as_str(), st.next), ("ready", Some(0)), "{st:?}");
    send_chunks(&mut probe, &bytes, 0, 2);
    let connected = dev.log_count("mqtt connected");
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        wait_until(s(30), || dev.log_count("mqtt connected") > connected),
        "{}",
        dev.dump()
    );
    // Later the owner sends a signed command, which an attacker captures.
    std::thread::sleep(Duration::from_millis(20));
    let command = signed::seal(Kind::Command, now_ms(), "mark", b"resetstats", &key).unwrap();
    let mut probe = Probe::new(&broker, "mark");
    probe.send("Signed", &command, false);
    assert_eq!(probe.answer(), "stats reset");
    // The attacker replays the stored manifest: refused, and the stale transfer is dropped...
    probe.send("Update/Begin", &manifest, false);
    let st = probe.status();
    assert_eq!(st.state, "refused", "{st:?}\n{}", dev.dump());
    assert!(
        st.error.as_deref().unwrap_or("").contains("stale"),
        "{st:?}"
    );
    // ...so the captured command stays refused as well.
    probe.send("Signed", &command, false);
    let answer = probe.answer();
    assert!(
        answer.starts_with("signed command refused") && answer.contains("stale"),
        "{answer}\n{}",
        dev.dump()
    );
    // And the dropped manifest never resumes, even after another reboot.
    let connected = dev.log_count("mqtt connected");
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        wait_until(s(30), || dev.log_count("mqtt connected") > connected),
        "{}",
        dev.dump()
    );
    let mut probe = Probe::new(&broker, "mark");
    probe.send("Update/Begin", &manifest, false);
    assert_eq!(probe.status().state, "refused", "{}", dev.dump());
    probe.send("Signed", &command, false);
    assert!(probe.answer().starts_with("signed command refused"));
}

#[test]
fn forged_statuses_neither_crash_hearth_ota_nor_make_it_report_success() {
    let broker = Broker::start();
    let owner = new_owner();
    let image = owner.image("v022.img", &["--version", "0.2.2", "--size", "40960"]);
    // No device at all: an impostor claims to be online and answers for it.
    broker.publish("tele/ghost/LWT", "Online", true);
    let args = BrokerArgs {
        host: "127.0.0.1".into(),
        port: broker.port,
        user: None,
        password: None,
        tls: None,
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    // The client stays on its thread (rust-mqtt's client is not Send); it says when it listens.
    let (listening, ready) = std::sync::mpsc::channel();
    let forger = std::thread::spawn(move || {
        let mut impostor = Client::connect(&args, "impostor", s(5)).unwrap();
        impostor.subscribe("cmnd/ghost/#").unwrap();
        listening.send(()).unwrap();
        let mut answered = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok(Some(m)) = impostor.recv(Duration::from_millis(200)) else {
                continue;
            };
            let say = |c: &mut Client, leaf: &str, text: &str| {
                c.publish(&format!("stat/ghost/{leaf}"), text.as_bytes(), false)
                    .unwrap();
            };
            if m.topic.ends_with("/Update/Begin") {
                // An offset far past the image, then "installed", then "confirmed".
                say(
                    &mut impostor,
                    "Update",
                    r#"{"state":"ready","next":4294967295,"size":40960}"#,
                );
                say(
                    &mut impostor,
                    "Update",
                    r#"{"state":"receiving","next":4294967295}"#,
                );
                say(
                    &mut impostor,
                    "Update",
                    r#"{"state":"rebooting","version":"0.2.2"}"#,
                );
                std::thread::sleep(Duration::from_millis(300));
                say(
                    &mut impostor,
                    "Update",
                    r#"{"state":"confirmed","version":"0.2.2"}"#,
                );
            } else if m.topic.ends_with("/OTA") {
                answered += 1;
                say(
                    &mut impostor,
                    "OTA",
                    "hearth 0.1.0 chip sim profile weather device ghost",
                );
            }
        }
        answered
    });
    ready.recv_timeout(s(10)).expect("the impostor listens");
    let out = ota(&broker, "ghost", &image, &owner, &[]);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let asked = forger.join().unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    assert!(!all.contains("confirmed healthy"), "{all}");
    assert!(all.contains("but it runs 0.1.0"), "{all}");
    assert!(asked >= 1, "the version was read back");
}

#[test]
fn the_tools_refuse_to_sign_with_a_clock_far_ahead_of_the_device_mark() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "clk", &owner, "");
    let key = load_key(&owner.key).unwrap();
    // The newest message this device accepted was signed two years ago.
    let two_years = 2 * 365 * 24 * 3600 * 1000;
    let old = signed::seal(Kind::Command, now_ms() - two_years, "clk", b"stats", &key).unwrap();
    let mut probe = Probe::new(&broker, "clk");
    probe.send("Signed", &old, false);
    assert!(
        probe.answer().starts_with("connlost events"),
        "{}",
        dev.dump()
    );
    let mark = cmd(&broker, "clk", &["mark"], None);
    assert!(mark.starts_with("anti-replay mark "), "{mark}");
    // This machine's clock is two years past that: suspicious, so nothing is signed...
    let b = broker_flag(&broker);
    let signed_cmd = |extra: &[&str]| {
        let mut args = vec!["cmd", "clk", "stats", "--key", owner.key(), "--broker", &b];
        args.extend_from_slice(extra);
        hearth(&args)
    };
    // The device's log reaches its file a moment later: count once the first one is there.
    assert!(dev.wait_log("command Signed", s(5)), "{}", dev.dump());
    let before = dev.log_count("command Signed");
    let out = signed_cmd(&[]);
    // Nothing was sent: exit code 2, as for `ota` and `config push`.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("days ahead"), "{}", text(&out));
    assert_eq!(dev.log_count("command Signed"), before, "{}", dev.dump());
    assert_eq!(
        mark,
        cmd(&broker, "clk", &["mark"], None),
        "the mark did not move"
    );
    // ...unless the owner says the clock is right.
    let out = signed_cmd(&["--allow-clock-jump"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("connlost events"));
}

#[test]
fn bad_signatures_wrong_targets_and_bad_chunks_are_refused() {
    let broker = Broker::start();
    let owner = new_owner();
    let stranger = new_owner();
    let dev = device(&broker, "ref", &owner, "");
    let image = owner.image("v030.img", &["--version", "0.3.0", "--size", "20000"]);

    // Signed by someone else.
    let out = ota(&broker, "ref", &image, &stranger, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bad signature"),
        "{}",
        text(&out)
    );
    // Built for another appliance.
    let relay = owner.image("relay.img", &["--version", "0.3.0", "--appliance", "relay"]);
    let out = ota(&broker, "ref", &relay, &owner, &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("image contains relay, this device runs weather"),
        "{}",
        text(&out)
    );

    let key = load_key(&owner.key).unwrap();
    let bytes = std::fs::read(&image).unwrap();
    let mut probe = Probe::new(&broker, "ref");
    // Built for another chip.
    let env = manifest_envelope(&key, "ref", &bytes, Version(0, 3, 0), "esp32c3", now_ms());
    probe.send("Update/Begin", &env, false);
    let st = probe.status();
    assert_eq!(st.state, "refused");
    assert_eq!(
        st.error.as_deref(),
        Some("image is for esp32c3, this device is sim")
    );
    // Unsigned garbage, and a manifest signed for another device.
    probe.send("Update/Begin", b"please install me", false);
    assert_eq!(
        probe.status().error.as_deref(),
        Some("not a signed Hearth envelope")
    );
    let env = manifest_envelope(&key, "other", &bytes, Version(0, 3, 0), "sim", now_ms());
    probe.send("Update/Begin", &env, false);
    assert_eq!(
        probe.status().error.as_deref(),
        Some("signed for another device")
    );
    // A chunk without a transfer.
    probe.send("Update/Chunk", &chunk(0, &bytes[..4096], None), false);
    assert_eq!(probe.status().state, "refused");

    // A corrupted chunk (its CRC fails) is asked for again, and the transfer goes on.
    let env = manifest_envelope(&key, "ref", &bytes, Version(0, 3, 0), "sim", now_ms());
    probe.send("Update/Begin", &env, false);
    let st = probe.status();
    assert_eq!((st.state.as_str(), st.next), ("ready", Some(0)), "{st:?}");
    let mut bad = bytes[..4096].to_vec();
    bad[17] ^= 0x40;
    probe.send(
        "Update/Chunk",
        &chunk(0, &bad, Some(crc32(0, &bytes[..4096]))),
        false,
    );
    let st = probe.status();
    assert_eq!(st.next, Some(0));
    assert!(st.error.unwrap().contains("failed its CRC"));
    probe.send("Update/Chunk", &chunk(0, &bytes[..4096], None), false);
    assert_eq!(probe.status().next, Some(4096));
    // Truncated: a last chunk shorter than the manifest says.
    let mut at = 4096usize;
    while at + 4096 < bytes.len() {
        probe.send(
            "Update/Chunk",
            &chunk(at as u32, &bytes[at..at + 4096], None),
            false,
        );
        at += 4096;
        assert_eq!(probe.status().next, Some(at as u32));
    }
    probe.send(
        "Update/Chunk",
        &chunk(at as u32, &bytes[at..bytes.len() - 5], None),
        false,
    );
    let st = probe.status();
    assert_eq!(st.next, Some(at as u32));
    assert_eq!(st.error.as_deref(), Some("chunk of the wrong length"));
    // Bytes that pass their CRC but are not the signed image: the hash check refuses them.
    let mut forged = bytes[at..].to_vec();
    forged[0] ^= 1;
    probe.send("Update/Chunk", &chunk(at as u32, &forged, None), false);
    let mut st = probe.status();
    while st.state == "verifying" {
        st = probe.status();
    }
    assert_eq!(st.state, "failed");
    assert_eq!(
        st.error.as_deref(),
        Some("image SHA-256 does not match the manifest")
    );
    // Nothing was selected: still the factory firmware.
    assert!(cmd(&broker, "ref", &["getversion"], None).contains("hearth 0.1.0"));

    // With a key provisioned, a plain reboot is refused; a signed one works, but not twice, and
    // a retained one is never obeyed.
    probe.drain();
    probe.send("OTA", b"reboot", false);
    assert!(probe
        .answer()
        .contains("reboot refused: it changes the device"));
    let reboot = signed::seal(Kind::Command, now_ms(), "ref", b"reboot", &key).unwrap();
    probe.send("Signed", &reboot, false);
    assert_eq!(probe.answer(), "rebooting");
    assert!(
        dev.wait_log("reason: command: reboot requested", s(20)),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log_count("mqtt connected", 2, s(20)),
        "{}",
        dev.dump()
    );
    probe.send("Signed", &reboot, false);
    assert!(probe.answer().contains("replayed or stale"));
    // Published retained: the broker hands it to the connected device live (that one reboot is
    // legitimate); the stored copy it replays at every later connection is never obeyed.
    let retained = signed::seal(Kind::Command, now_ms(), "ref", b"reboot", &key).unwrap();
    probe.send("Signed", &retained, true);
    assert!(
        dev.wait_log("ignored retained command on cmnd/ref/Signed", s(20)),
        "{}",
        dev.dump()
    );
    std::thread::sleep(s(3));
    assert_eq!(dev.log_count("reset cause software"), 2, "{}", dev.dump());
}

/// Send `count` chunks of `image` from `from`, each acknowledged before the next; returns the
/// offset reached.
fn send_chunks(probe: &mut Probe, image: &[u8], from: u32, count: u64) -> u32 {
    let mut at = from as usize;
    for _ in 0..count {
        let end = (at + 4096).min(image.len());
        probe.send(
            "Update/Chunk",
            &chunk(at as u32, &image[at..end], None),
            false,
        );
        let st = probe.status();
        assert_eq!(
            (st.state.as_str(), st.next),
            ("receiving", Some(end as u32)),
            "{st:?}"
        );
        at = end;
    }
    at as u32
}

#[test]
fn a_transfer_resumes_after_the_broker_drops_and_after_a_power_cut() {
    let port = support::free_port();
    let mut broker = Broker::start_on(port);
    let owner = new_owner();
    let dev = device(&broker, "res", &owner, "");
    let key = load_key(&owner.key).unwrap();
    // Where the transfers are interrupted: random chunk counts (the seed is printed to replay a
    // failure). The test sends those chunks itself, so the interruption lands exactly there.
    let seed = now_ms();
    println!("interruption points seeded with {seed}");
    let (k1, k2, k3) = (1 + seed % 30, 1 + (seed / 31) % 30, 1 + (seed / 961) % 30);

    // The broker goes away mid-transfer and comes back; `hearth ota` continues where it was.
    let image = owner.image("v040.img", &["--version", "0.4.0", "--size", "409600"]);
    let bytes = std::fs::read(&image).unwrap();
    let mut probe = Probe::new(&broker, "res");
    let env = manifest_envelope(&key, "res", &bytes, Version(0, 4, 0), "sim", now_ms());
    probe.send("Update/Begin", &env, false);
    let st = probe.status();
    assert_eq!((st.state.as_str(), st.next), ("ready", Some(0)), "{st:?}");
    let sent = send_chunks(&mut probe, &bytes, 0, k1);
    drop(probe);
    broker.kill();
    std::thread::sleep(s(2));
    let broker = Broker::start_on(port);
    assert!(
        wait_until(s(30), || dev.log_count("mqtt connected") >= 2),
        "{}",
        dev.dump()
    );
    let out = ota(&broker, "res", &image, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    let resumed = format!("update: receiving firmware 0.4.0 (409600 bytes) from offset {sent}\n");
    assert!(dev.log().contains(&resumed), "{resumed}{}", dev.dump());
    assert!(cmd(&broker, "res", &["getversion"], None).contains("hearth 0.4.0"));

    // Two power cuts mid-transfer: after each, the same manifest continues exactly where the
    // flash says; then `hearth ota`, with a manifest of its own for the same image, finishes.
    let image5 = owner.image("v050.img", &["--version", "0.5.0", "--size", "409600"]);
    let bytes5 = std::fs::read(&image5).unwrap();
    let env = manifest_envelope(&key, "res", &bytes5, Version(0, 5, 0), "sim", now_ms());
    let mut probe = Probe::new(&broker, "res");
    let mut at = 0;
    for k in [k2, k3] {
        probe.send("Update/Begin", &env, false);
        let st = probe.status();
        assert_eq!((st.state.as_str(), st.next), ("ready", Some(at)), "{st:?}");
        at = send_chunks(&mut probe, &bytes5, at, k);
        let connected = dev.log_count("mqtt connected");
        assert!(dev.ctl("power-cut").starts_with("ok"));
        assert!(
            wait_until(s(30), || dev.log_count("mqtt connected") > connected),
            "{}",
            dev.dump()
        );
    }
    drop(probe);
    let out = ota(&broker, "res", &image5, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    let resumed = format!("update: receiving firmware 0.5.0 (409600 bytes) from offset {at}\n");
    assert!(dev.log().contains(&resumed), "{resumed}{}", dev.dump());
    assert!(cmd(&broker, "res", &["getversion"], None).contains("hearth 0.5.0"));
}

#[test]
fn a_power_cut_at_the_slot_switch_never_leaves_a_device_that_cannot_boot() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "cut", &owner, "");
    let b = broker_flag(&broker);
    let update = |version: &str| -> Child {
        let image = owner.image(
            &format!("{version}.img"),
            &["--version", version, "--size", "65536"],
        );
        Command::new(HEARTH)
            .args([
                "ota",
                "cut",
                image.to_str().unwrap(),
                "--key",
                owner.key(),
                "--broker",
                &b,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Inside the otadata update: before the erase of the new entry's sector, before its body,
    // before its CRC. The old image boots; the same manifest then finishes the job without
    // sending the image again, and the new image boots and confirms itself.
    for (op, version) in [(1, "0.2.0"), (2, "0.3.0"), (3, "0.4.0")] {
        assert!(dev
            .ctl(&format!("power-cut-at otadata {op}"))
            .starts_with("ok"));
        let cuts = dev.log_count("power cut (injected)");
        let child = update(version);
        assert!(
            dev.wait_log_count("power cut (injected)", cuts + 1, s(60)),
            "op {op}\n{}",
            dev.dump()
        );
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "op {op}\n{}\n{}",
            text(&out),
            dev.dump()
        );
        assert!(
            cmd(&broker, "cut", &["getversion"], None).contains(&format!("hearth {version}")),
            "op {op}\n{}",
            dev.dump()
        );
    }
    // Just after the switch, at different moments of the new image's first boot: whichever
    // image then runs, the device boots and reaches the broker.
    for (i, delay_ms) in [0u64, 40, 400, 1500].into_iter().enumerate() {
        let version = format!("0.{}.0", 5 + i);
        let child = update(&version);
        let selected = format!("firmware {version} verified and selected");
        assert!(dev.wait_log(&selected, s(60)), "{}", dev.dump());
        std::thread::sleep(Duration::from_millis(delay_ms));
        let connected = dev.log_count("mqtt connected");
        assert!(dev.ctl("power-cut").starts_with("ok"));
        assert!(
            wait_until(s(30), || dev.log_count("mqtt connected") > connected),
            "delay {delay_ms} ms\n{}",
            dev.dump()
        );
        let _ = child.wait_with_output();
        assert!(wait_until(s(30), || cmd(
            &broker,
            "cut",
            &["getversion"],
            None
        )
        .starts_with("hearth 0.")));
        // Let whichever image runs confirm itself before the next round.
        std::thread::sleep(s(6));
    }
    assert!(
        !dev.log().contains("the device cannot start"),
        "{}",
        dev.dump()
    );
}

#[test]
fn no_update_starts_during_a_trial_and_a_damaged_rollback_target_is_never_selected() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "tri", &owner, "");
    // 0.2.0 is installed and confirmed in slot 1 (its size and hash are recorded)...
    let good = owner.image("t020.img", &["--version", "0.2.0", "--size", "65536"]);
    let out = ota(&broker, "tri", &good, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    // ...then 0.3.0, which never reaches the broker, goes on trial in slot 0.
    let never = owner.image("t030.img", &["--version", "0.3.0", "--health", "never"]);
    let out = ota(&broker, "tri", &never, &owner, &["--no-wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("firmware 0.3.0: on trial until healthy", s(20)),
        "{}",
        dev.dump()
    );
    // While 0.2.0 is the rollback target, its slot gets damaged (a flash fault).
    let path = dev.state().join(hearth_sim::firmware::FIRMWARE_NAME);
    let mut flash = std::fs::read(&path).unwrap();
    let at = hearth_sim::firmware::LAYOUT.slots[1] as usize + 40_000;
    flash[at..at + 16].fill(0);
    std::fs::write(&path, &flash).unwrap();
    assert!(
        dev.wait_log(
            "cannot roll back: the image in slot 1 no longer matches",
            s(30)
        ),
        "{}",
        dev.dump()
    );
    std::thread::sleep(s(2));
    assert_eq!(dev.log_count("rebooting: rollback"), 0, "{}", dev.dump());
    assert!(
        dev.log().contains("keeping firmware 0.3.0"),
        "{}",
        dev.dump()
    );
}

#[test]
fn an_update_is_refused_while_the_running_image_is_on_trial() {
    let broker = Broker::start();
    let owner = new_owner();
    // A long confirmation time keeps the new image on trial for the test.
    let dev = Sim::start(&config(
        "tr2",
        broker.port,
        &format!("otaconfirm 60\notatrial 120\n{}\n", owner.otakey),
    ));
    assert!(dev.wait_log("mqtt connected", s(20)), "{}", dev.dump());
    let v2 = owner.image("u020.img", &["--version", "0.2.0", "--size", "65536"]);
    let out = ota(&broker, "tr2", &v2, &owner, &["--no-wait"]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("firmware 0.2.0: on trial until healthy", s(20)),
        "{}",
        dev.dump()
    );
    assert!(
        wait_until(s(20), || dev.log_count("mqtt connected") >= 2),
        "{}",
        dev.dump()
    );
    let v3 = owner.image("u030.img", &["--version", "0.3.0", "--size", "65536"]);
    let out = ota(&broker, "tr2", &v3, &owner, &["--no-wait"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("firmware 0.2.0 is on trial"),
        "{}",
        text(&out)
    );
    assert!(
        cmd(&broker, "tr2", &["partitions"], None).starts_with("running slot 1 (firmware 0.2.0)")
    );
}

#[test]
fn an_image_that_never_gets_healthy_or_crashes_is_rolled_back() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "rb", &owner, "");
    // Never reaches the broker: rolled back when its trial time is up.
    let never = owner.image("never.img", &["--version", "0.2.0", "--health", "never"]);
    let out = ota(&broker, "rb", &never, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("rolled back: rb: firmware 0.2.0 failed its trial; back on 0.1.0"),
        "{}\n{}",
        text(&out),
        dev.dump()
    );
    assert!(
        dev.log().contains("not healthy after 15 s: rolling back"),
        "{}",
        dev.dump()
    );
    assert!(cmd(&broker, "rb", &["getversion"], None).contains("hearth 0.1.0"));
    assert!(
        cmd(&broker, "rb", &["reason"], None).contains("rollback: new firmware failed its trial")
    );
    // Crashes soon after boot: rolled back at the next boot.
    let crash = owner.image("crash.img", &["--version", "0.2.1", "--health", "crash"]);
    let out = ota(&broker, "rb", &crash, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rolled back"),
        "{}",
        text(&out)
    );
    assert!(
        dev.log()
            .contains("ended its trial boot before it was healthy"),
        "{}",
        dev.dump()
    );
    assert!(
        cmd(&broker, "rb", &["panic"], None).contains("firmware 0.2.1 crashed"),
        "{}",
        dev.dump()
    );
    assert!(cmd(&broker, "rb", &["getversion"], None).contains("hearth 0.1.0"));
}

#[test]
fn configs_are_validated_before_they_are_stored_and_safe_mode_is_left_by_a_good_one() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "cfg", &owner, "safemode 2\n");
    let b = broker_flag(&broker);
    let dir = TempDir::new("configs");
    let bad = dir.0.join("bad.txt");
    std::fs::write(
        &bad,
        config(
            "cfg",
            broker.port,
            &format!("{}\nmqttkeepalive 2\nuptimeeval x\n", owner.otakey),
        ),
    )
    .unwrap();
    // Checked here first...
    let out = hearth(&[
        "config",
        "push",
        "cfg",
        bad.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &b,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // ...and by the device, which refuses it with every error and keeps running.
    let out = hearth(&[
        "config",
        "push",
        "cfg",
        bad.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &b,
        "--no-local-check",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("duplicate") || said.contains("mqttkeepalive"),
        "{said}"
    );
    assert!(said.contains("uptimeeval"), "{said}");
    std::thread::sleep(s(2));
    assert_eq!(dev.log_count("reset cause software"), 0, "{}", dev.dump());

    // A config that makes the appliance crash: after two runs that ended in a panic, safe
    // mode. (The power cut that starts it is not a fault, so the count starts at zero.)
    assert!(
        wait_until(s(20), || cmd(&broker, "cfg", &["stats"], None)
            .contains("faults 0")),
        "{}",
        dev.dump()
    );
    assert!(dev.ctl("crash-config").starts_with("ok"));
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        dev.wait_log(
            "safe mode: the last 2 runs ended in a fault (panic panic)",
            s(60)
        ),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log("pub stat/cfg/Update {\"state\":\"safe-mode\"", s(10))
            && dev.log().contains("\"faults\":2,\"why\":\"panic panic\"}"),
        "{}",
        dev.dump()
    );
    std::thread::sleep(s(4));
    let crashes = dev.log_count("the appliance crashed");
    assert_eq!(
        crashes,
        2,
        "safe mode does not run the appliance\n{}",
        dev.dump()
    );
    // A good config, pushed from afar, brings it back.
    let good = dir.0.join("good.txt");
    std::fs::write(
        &good,
        config(
            "cfg",
            broker.port,
            &format!(
                "{}\notaconfirm 5\notatrial 15\nsafemode 2\n# fixed\n",
                owner.otakey
            ),
        ),
    )
    .unwrap();
    let out = hearth(&[
        "config",
        "push",
        "cfg",
        good.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &b,
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("config: using the config pushed over MQTT", s(20)),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log("reason: config: new config installed", s(20)),
        "{}",
        dev.dump()
    );
    std::thread::sleep(s(8));
    assert_eq!(dev.log_count("the appliance crashed"), 2, "{}", dev.dump());
    assert!(
        cmd(&broker, "cfg", &["stats"], None).contains("faults 0"),
        "{}",
        dev.dump()
    );
}

#[test]
fn a_fleet_update_reaches_every_online_device() {
    let broker = Broker::start();
    let owner = new_owner();
    let a = device(&broker, "fleet-a", &owner, "");
    let b = device(&broker, "fleet-b", &owner, "");
    let image = owner.image("v030.img", &["--version", "0.3.0", "--size", "100000"]);
    let bf = broker_flag(&broker);
    wait_listed(&bf, &["fleet-a", "fleet-b"]);
    let out = ota_all(&bf, &image, &owner, &[]);
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        text(&out),
        a.dump(),
        b.dump()
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("to 2 device(s)"), "{said}");
    for name in ["fleet-a", "fleet-b"] {
        assert!(
            said.contains(&format!("ok: {name}: firmware 0.3.0 confirmed healthy")),
            "{said}"
        );
        assert!(cmd(&broker, name, &["getversion"], None).contains("hearth 0.3.0"));
    }
    // A device the key does not belong to is refused, and the command says so and fails.
    let out = hearth(&[
        "ota",
        "nobody",
        image.to_str().unwrap(),
        "--key",
        owner.key(),
        "--broker",
        &bf,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Bad arguments are clear errors, never a panic.
    let out = hearth(&[
        "ota",
        "fleet-a",
        "/nonexistent.img",
        "--key",
        owner.key(),
        "--broker",
        &bf,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent.img"),
        "{}",
        text(&out)
    );
    let out = hearth(&["ota", "fleet-a", image.to_str().unwrap(), "--broker", &bf]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not provided:\n  --key <KEY>"),
        "{}",
        text(&out)
    );
    let out = hearth(&[
        "ota",
        "fleet-a",
        image.to_str().unwrap(),
        "--key",
        image.to_str().unwrap(),
        "--broker",
        &bf,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a secret key"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_canary_that_rolls_back_stops_the_rollout_and_offline_devices_are_listed() {
    let broker = Broker::start();
    let owner = new_owner();
    let devices = fleet(&broker, &owner, &["can-a", "can-b", "can-c"]);
    // One more that is offline when the rollout starts (its will is on the broker).
    drop(device(&broker, "can-off", &owner, ""));
    let never = owner.image("never.img", &["--version", "0.2.0", "--health", "never"]);
    let bf = broker_flag(&broker);
    let listed_offline = wait_until(s(10), || {
        String::from_utf8_lossy(&hearth(&["ls", "--broker", &bf]).stdout)
            .lines()
            .any(|l| l.starts_with("can-off ") && l.contains(" offline "))
    });
    assert!(listed_offline, "can-off's will never reached the broker");
    wait_listed(&bf, &["can-a", "can-b", "can-c"]);
    let out = ota_all(&bf, &never, &owner, &["--canary", "1"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let dumps = || dump_all(&devices);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dumps());
    for line in [
        "to 3 device(s)",
        "skipped: can-off: offline when the rollout started",
        "canary: can-a",
        "rolled back: can-a: firmware 0.2.0 failed its trial; back on 0.1.0",
        "stopped: the canary can-a rolled back: the rollout stops",
        "4 device(s): 1 rolled back, 2 not reached, 1 offline",
    ] {
        assert!(said.contains(line), "no {line:?} in:\n{said}");
    }
    let row = |name: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
    };
    assert_eq!(row("can-b").as_deref(), Some("not reached"), "{said}");
    assert_eq!(row("can-c").as_deref(), Some("not reached"), "{said}");
    // Not reached means not touched: both still run the factory image.
    for name in ["can-b", "can-c"] {
        assert!(
            cmd(&broker, name, &["getversion"], None).contains("hearth 0.1.0"),
            "{name}\n{}",
            dumps()
        );
    }
}

#[test]
fn an_interrupted_rollout_resumes_without_sending_again_to_confirmed_devices() {
    let broker = Broker::start();
    let owner = new_owner();
    let devices = fleet(&broker, &owner, &["res-a", "res-b", "res-c"]);
    let image = owner.image("v030.img", &["--version", "0.3.0", "--size", "60000"]);
    let bf = broker_flag(&broker);
    wait_listed(&bf, &["res-a", "res-b", "res-c"]);
    // The tool crashes (SIGKILL) right after the first device is confirmed.
    let seen = ota_all_killed_at(&bf, &image, &owner, &[], |l| l.starts_with("ok: res-a"));
    assert!(
        seen.contains("ok: res-a: firmware 0.3.0 confirmed healthy"),
        "{seen}"
    );
    // The same command again: res-a is not sent the image again, the others are updated.
    let out = ota_all(&bf, &image, &owner, &[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let dumps = || dump_all(&devices);
    assert!(out.status.success(), "{}\n{}", text(&out), dumps());
    assert!(said.contains("to 2 device(s)"), "{said}");
    assert!(
        said.contains("skipped: res-a: already runs 0.3.0: not sent again"),
        "{said}"
    );
    for name in ["res-b", "res-c"] {
        assert!(
            said.contains(&format!("ok: {name}: firmware 0.3.0 confirmed healthy")),
            "{said}"
        );
    }
    assert!(said.contains("3 device(s): 2 updated, 1 current"), "{said}");
    assert_eq!(
        devices[0].log_count("first boot of firmware 0.3.0"),
        1,
        "res-a got the image twice\n{}",
        devices[0].dump()
    );
}

#[test]
fn a_wave_updates_its_devices_at_once() {
    let broker = Broker::start();
    // Only the statuses: the image chunks are no lines of text.
    let obs = support::Observer::start_on(&broker, "stat/+/Update");
    let owner = new_owner();
    let devices = fleet(&broker, &owner, &["par-a", "par-b", "par-c"]);
    let image = owner.image("v030.img", &["--version", "0.3.0", "--size", "60000"]);
    let bf = broker_flag(&broker);
    wait_listed(&bf, &["par-a", "par-b", "par-c"]);
    let out = ota_all(&bf, &image, &owner, &["--parallel", "3"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let dumps = || dump_all(&devices);
    assert!(out.status.success(), "{}\n{}", text(&out), dumps());
    assert!(said.contains("3 device(s): 3 updated"), "{said}");
    // At once: every device had accepted its manifest before the first one confirmed.
    let first = |device: &str, state: &str| {
        obs.all()
            .into_iter()
            .find(|m| {
                m.topic == format!("stat/{device}/Update")
                    && m.payload.starts_with(&format!("{{\"state\":\"{state}\""))
            })
            .map(|m| m.at)
            .unwrap_or_else(|| panic!("{device} never said {state}\n{}", dumps()))
    };
    let names = ["par-a", "par-b", "par-c"];
    let last_start = names.iter().map(|d| first(d, "ready")).max().unwrap();
    let first_end = names.iter().map(|d| first(d, "confirmed")).min().unwrap();
    assert!(
        last_start < first_end,
        "the devices were updated one after the other\n{said}"
    );
}

#[test]
fn ls_and_ota_work_across_a_bridge_to_the_site_s_broker() {
    // Devices on the site's mosquitto; the tools on a central mosquitto bridged to it.
    let site = Broker::start();
    let central = Broker::bridged_to(&site);
    let owner = new_owner();
    let devices = fleet(&site, &owner, &["br-a", "br-b"]);
    let dumps = || dump_all(&devices);
    let cf = broker_flag(&central);
    let ls = || {
        let out = hearth(&["ls", "--broker", &cf]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let seen = wait_until(s(20), || ls().contains("2 devices, 2 online"));
    assert!(
        seen,
        "the central broker never listed both:\n{}\n{}",
        ls(),
        central.log()
    );
    wait_listed(&cf, &["br-a", "br-b"]);
    let image = owner.image("v030.img", &["--version", "0.3.0", "--size", "60000"]);
    let out = ota_all(&cf, &image, &owner, &[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{}", text(&out), dumps());
    assert!(said.contains("2 device(s): 2 updated"), "{said}");
    // The new versions reach the central broker's inventory through the bridge.
    let updated = wait_until(s(20), || {
        let table = ls();
        ["br-a", "br-b"].iter().all(|d| {
            table
                .lines()
                .any(|l| l.starts_with(&format!("{d} ")) && l.contains(" 0.3.0 "))
        })
    });
    assert!(updated, "{}", ls());
}
