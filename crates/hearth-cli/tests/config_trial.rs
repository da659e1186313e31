//! A pushed config cannot cut a device off, end to end: real mosquitto, real `hearth sim`
//! devices and the real `hearth keygen`/`config check`/`config push` processes.
//!
//! - a pushed config is on trial: not healthy within `otatrial`, the device goes back to the
//!   config it had (the one pushed before it, or the file it was started with) and says
//!   `config-rolled-back`; a power cut during the trial of a good config does not lose it;
//! - every rule a chip applies at boot is checked by `config check --chip`, by the push's
//!   local check and by the device before it accepts a push;
//! - a push that removes or changes `otakey` needs `--rotate-key`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::{config, hearth, new_owner, text, Broker, Owner, Sim, TempDir};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The short trial times of these tests: healthy after 5 s online, back after 15 s.
const TRIAL: &str = "otaconfirm 5\notatrial 15\n";

fn device(broker: &Broker, name: &str, owner: &Owner, extra: &str) -> Sim {
    let sim = Sim::start(&config(
        name,
        broker.port,
        &format!("{TRIAL}{}\n{extra}", owner.otakey),
    ));
    assert!(sim.wait_log("mqtt connected", s(20)), "{}", sim.dump());
    sim
}

fn write(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

fn push(broker: &Broker, device: &str, file: &Path, owner: &Owner, extra: &[&str]) -> Output {
    let b = format!("127.0.0.1:{}", broker.port);
    let mut args = vec![
        "config",
        "push",
        device,
        file.to_str().unwrap(),
        "--key",
        owner.key.to_str().unwrap(),
        "--broker",
        &b,
    ];
    args.extend_from_slice(extra);
    hearth(&args)
}

fn pushed(sim: &Sim) -> Option<String> {
    std::fs::read_to_string(sim.state().join("pushed-config.txt")).ok()
}

#[test]
fn a_pushed_config_that_cannot_reach_the_broker_goes_back_to_the_previous_one() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "ctrial", &owner, "");
    let dir = TempDir::new("configs");

    // A good config first: on trial, confirmed once online for otaconfirm.
    let good = write(
        &dir,
        "good.txt",
        &config(
            "ctrial",
            broker.port,
            &format!("{TRIAL}{}\n# good\n", owner.otakey),
        ),
    );
    let out = push(&broker, "ctrial", &good, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("update: pushed config on trial, boot 1 of 3", s(20)),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log(
            "pub stat/ctrial/Update {\"state\":\"config-confirmed\"",
            s(30)
        ),
        "{}",
        dev.dump()
    );

    // Then one whose broker port has nothing behind it: the device cannot be reached again
    // by anyone, so it must come back by itself.
    let closed = support::RefusingPort::new();
    let dead = closed.port;
    let bad = write(
        &dir,
        "bad.txt",
        &config("ctrial", dead, &format!("{TRIAL}{}\n# bad\n", owner.otakey)),
    );
    let pushed_at = std::time::Instant::now();
    let out = push(&broker, "ctrial", &bad, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log(
            "reason: config rollback: the pushed config failed its trial",
            s(90)
        ),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log(
            "pub stat/ctrial/Update {\"state\":\"config-rolled-back\"",
            s(30)
        ),
        "{}",
        dev.dump()
    );
    eprintln!(
        "measured: push of an unreachable config to config-rolled-back in {:.1} s (otatrial 15 s)",
        pushed_at.elapsed().as_secs_f64()
    );
    // Back on the good pushed config (not the file it was started with), and online.
    assert!(
        pushed(&dev).is_some_and(|t| t.contains("# good")),
        "{:?}",
        pushed(&dev)
    );
    assert!(dev.log().contains("using the config pushed over MQTT"));
}

#[test]
fn a_power_cut_during_the_trial_of_a_good_config_does_not_lose_it() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "ccut", &owner, "");
    let dir = TempDir::new("configs");
    let good = write(
        &dir,
        "good.txt",
        &config(
            "ccut",
            broker.port,
            &format!("{TRIAL}{}\n# kept\n", owner.otakey),
        ),
    );
    let out = push(&broker, "ccut", &good, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("update: pushed config on trial, boot 1 of 3", s(20)),
        "{}",
        dev.dump()
    );
    // Cut before otaconfirm: the next boot is the trial's second.
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        dev.wait_log("update: pushed config on trial, boot 2 of 3", s(20)),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log(
            "pub stat/ccut/Update {\"state\":\"config-confirmed\"",
            s(30)
        ),
        "{}",
        dev.dump()
    );
    assert!(pushed(&dev).is_some_and(|t| t.contains("# kept")));
    assert_eq!(dev.log_count("config rollback"), 0, "{}", dev.dump());
}

#[test]
fn an_appliance_rule_is_refused_by_config_check_push_and_device_on_any_chip() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "crule", &owner, "");
    let dir = TempDir::new("configs");
    // Each key is valid on its own; the relay appliance refuses the pair.
    let body = config("crule", broker.port, &format!("{TRIAL}{}\n", owner.otakey))
        .replace("profile weather", "profile relay\nrelays 2\nrelay3max 60");
    let relay = write(&dir, "relay.txt", &body);
    let why = "profile relay: \"relay3max\": given but \"relays\" is 2";

    // The simulator's own check, with no chip named, as `hearth sim` makes it.
    let out = hearth(&["config", "check", relay.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(why),
        "{}",
        text(&out)
    );

    // The simulated device (no chip rules) checks the appliance's rules before it accepts.
    let out = push(&broker, "crule", &relay, &owner, &["--no-local-check"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("relay3max"), "{said}");
    std::thread::sleep(s(2));
    assert!(pushed(&dev).is_none());
    assert_eq!(dev.log_count("reset cause"), 1, "{}", dev.dump());

    // With the pair made consistent, all of them accept it.
    let fine = write(&dir, "fine.txt", &body.replace("relays 2", "relays 3"));
    let out = hearth(&["config", "check", fine.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_reserved_relay_pin_is_refused_by_config_check_push_and_device() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "cpin", &owner, "");
    let dir = TempDir::new("configs");
    let body = config("cpin", broker.port, &format!("{TRIAL}{}\n", owner.otakey)).replace(
        "profile weather",
        "profile relay\nrelay1max 60\nrelay1pin 12",
    );
    let relay = write(&dir, "relay.txt", &body);

    // The simulator runs it; the ESP32-C3 would idle at boot with GPIO12 (SPI flash).
    let out = hearth(&["config", "check", relay.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = hearth(&[
        "config",
        "check",
        relay.to_str().unwrap(),
        "--chip",
        "esp32c3",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("relay1pin 12: GPIO12 belongs to the SPI flash"),
        "{}",
        text(&out)
    );
    let fine = write(
        &dir,
        "fine.txt",
        &body.replace("relay1pin 12", "relay1pin 21"),
    );
    let out = hearth(&[
        "config",
        "check",
        fine.to_str().unwrap(),
        "--chip",
        "esp32c3",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // The push's local check with the chip named.
    let out = push(&broker, "cpin", &relay, &owner, &["--chip", "esp32c3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // The device, standing in for an ESP32-C3, checks its chip's rules before it accepts.
    std::fs::write(dev.state().join("rules-chip"), "esp32c3\n").unwrap();
    let out = push(&broker, "cpin", &relay, &owner, &["--no-local-check"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("relay1pin 12") && said.contains("SPI flash"),
        "{said}"
    );
    std::thread::sleep(s(2));
    assert!(pushed(&dev).is_none());
    assert_eq!(dev.log_count("reset cause"), 1, "{}", dev.dump());
    // The same config with a pin the chip has is accepted.
    let out = push(&broker, "cpin", &fine, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
}

#[test]
fn a_push_that_removes_or_changes_otakey_needs_rotate_key() {
    let broker = Broker::start();
    let owner = new_owner();
    let next = new_owner();
    let dev = device(&broker, "ckey", &owner, "");
    let dir = TempDir::new("configs");
    let keyless = write(&dir, "keyless.txt", &config("ckey", broker.port, TRIAL));
    let out = push(&broker, "ckey", &keyless, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removes otakey"),
        "{}",
        text(&out)
    );
    let rotated = write(
        &dir,
        "rotated.txt",
        &config("ckey", broker.port, &format!("{TRIAL}{}\n", next.otakey)),
    );
    let out = push(&broker, "ckey", &rotated, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("changes otakey"),
        "{}",
        text(&out)
    );
    assert!(pushed(&dev).is_none());
    // Signed with the current key and explicitly rotating: accepted.
    let out = push(&broker, "ckey", &rotated, &owner, &["--rotate-key"]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log(
            "pub stat/ckey/Update {\"state\":\"config-confirmed\"",
            s(40)
        ),
        "{}",
        dev.dump()
    );
    // From now on only the new key is the owner's.
    let again = write(
        &dir,
        "again.txt",
        &config(
            "ckey",
            broker.port,
            &format!("{TRIAL}{}\n# again\n", next.otakey),
        ),
    );
    let out = push(&broker, "ckey", &again, &owner, &[]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), dev.dump());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature"),
        "{}",
        text(&out)
    );
    let out = push(&broker, "ckey", &again, &next, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
}

#[test]
fn a_pushed_config_that_cannot_run_at_boot_is_undone_at_boot() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "cboot", &owner, "");
    let dir = TempDir::new("configs");
    let good = write(
        &dir,
        "good.txt",
        &config(
            "cboot",
            broker.port,
            &format!("{TRIAL}{}\n# pushed\n", owner.otakey),
        ),
    );
    let out = push(&broker, "cboot", &good, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log(
            "pub stat/cboot/Update {\"state\":\"config-confirmed\"",
            s(30)
        ),
        "{}",
        dev.dump()
    );
    // A firmware whose rules changed since the push would refuse it at boot: here the file
    // itself goes bad, which the boot refuses the same way.
    std::fs::write(
        dev.state().join("pushed-config.txt"),
        "profile weather\nmqttname cboot\n",
    )
    .unwrap();
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        dev.wait_log("cannot run here: the previous config is back", s(20)),
        "{}",
        dev.dump()
    );
    // Back on the file it was started with, and online again.
    let connected = dev.log_count("mqtt connected");
    assert!(
        dev.wait_log_count("mqtt connected", connected + 1, s(30)),
        "{}",
        dev.dump()
    );
    assert!(pushed(&dev).is_none());
}

#[test]
fn a_pushed_config_that_crashes_every_boot_goes_back_after_three_trial_boots() {
    let broker = Broker::start();
    let owner = new_owner();
    let dev = device(&broker, "ccrash", &owner, "");
    let dir = TempDir::new("configs");
    let crashing = write(
        &dir,
        "crashing.txt",
        &config(
            "ccrash",
            broker.port,
            &format!("{TRIAL}{}\n# crashes\n", owner.otakey),
        ),
    );
    let out = push(&broker, "ccrash", &crashing, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("update: pushed config on trial, boot 1 of 3", s(20)),
        "{}",
        dev.dump()
    );
    // The appliance crashes about 2 s after every boot with this config, long before
    // otaconfirm: no boot of it is ever healthy, and no single boot reaches otatrial.
    assert!(dev.ctl("crash-config").starts_with("ok"));
    assert!(dev.ctl("power-cut").starts_with("ok"));
    assert!(
        dev.wait_log(
            "the pushed config ended 3 trial boots before it was healthy",
            s(60)
        ),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log(
            "pub stat/ccrash/Update {\"state\":\"config-rolled-back\"",
            s(30)
        ),
        "{}",
        dev.dump()
    );
    assert!(
        pushed(&dev).is_none(),
        "back on the file it was started with"
    );
    let crashes = dev.log_count("the appliance crashed");
    assert_eq!(crashes, 2, "{}", dev.dump());
    std::thread::sleep(s(4));
    assert_eq!(
        dev.log_count("the appliance crashed"),
        crashes,
        "{}",
        dev.dump()
    );
}

#[test]
fn safe_mode_never_confirms_a_pushed_config_and_the_previous_one_leaves_it() {
    let broker = Broker::start();
    let owner = new_owner();
    // One fault starts safe mode here.
    let dev = device(&broker, "csafe", &owner, "safemode 1\n");
    let dir = TempDir::new("configs");
    let crashing = write(
        &dir,
        "crashing.txt",
        &config(
            "csafe",
            broker.port,
            &format!("{TRIAL}{}\nsafemode 1\n# crashes\n", owner.otakey),
        ),
    );
    let out = push(&broker, "csafe", &crashing, &owner, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out), dev.dump());
    assert!(
        dev.wait_log("update: pushed config on trial, boot 1 of 3", s(20)),
        "{}",
        dev.dump()
    );
    assert!(dev.ctl("crash-config").starts_with("ok"));
    assert!(dev.ctl("power-cut").starts_with("ok"));
    // Boot 2 crashes; boot 3 is in safe mode, online, without the appliance: that proves
    // nothing about the config, which goes back when otatrial runs out.
    assert!(
        dev.wait_log("pub stat/csafe/Update {\"state\":\"safe-mode\"", s(30)),
        "{}",
        dev.dump()
    );
    assert!(
        dev.wait_log(
            "pub stat/csafe/Update {\"state\":\"config-rolled-back\"",
            s(40)
        ),
        "{}",
        dev.dump()
    );
    assert_eq!(dev.log_count("config-confirmed"), 0, "{}", dev.dump());
    // The previous config runs its appliance again: out of safe mode.
    let after = dev
        .log()
        .rsplit("config-rolled-back")
        .next()
        .unwrap_or("")
        .to_string();
    assert!(!after.contains("safe mode"), "{}", dev.dump());
    assert!(pushed(&dev).is_none());
}
