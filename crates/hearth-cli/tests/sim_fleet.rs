//! `hearth sim --fleet N`: many simulated devices in one process, on a real mosquitto, with
//! faults aimed at one, a share or all of them, and rollouts (`hearth ota --all`) across a
//! few hundred of them.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::{
    config, hearth, new_owner, ota_all, ota_all_killed_at, text, wait_until, Broker, Fleet,
};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn broker_flag(broker: &Broker) -> String {
    format!("127.0.0.1:{}", broker.port)
}

/// `hearth ls --json` on `broker`: each device's name, appliance, version and whether online.
fn listed(bf: &str) -> HashMap<String, (String, String, bool)> {
    let out = hearth(&["ls", "--json", "--broker", bf]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let field = |k: &str| v[k].as_str().unwrap_or("-").to_string();
            (
                field("device"),
                (field("appliance"), field("version"), v["online"] == true),
            )
        })
        .collect()
}

/// Wait until every one of `names` is listed with its appliance and `online` as given.
fn wait_all(bf: &str, names: &[String], online: bool, limit: Duration) -> bool {
    wait_until(limit, || {
        let l = listed(bf);
        names
            .iter()
            .all(|n| l.get(n).is_some_and(|(a, _, o)| a != "-" && *o == online))
    })
}

#[test]
fn a_fleet_runs_its_members_and_takes_faults_aimed_at_one_a_share_or_all() {
    let broker = Broker::start();
    let bf = broker_flag(&broker);
    let fleet = Fleet::start(&config("fl", broker.port, ""), 20);
    let names: Vec<String> = (1..=20).map(|i| format!("fl-{i:04}")).collect();
    assert!(
        wait_all(&bf, &names, true, s(30)),
        "not all 20 online: {:?}\n{}",
        listed(&bf),
        fleet.log()
    );
    // Each member is its own device: its own identity.
    let macs: std::collections::HashSet<_> = fleet
        .log()
        .lines()
        .filter_map(|l| l.split_once("board: MAC ").map(|(_, m)| m.to_string()))
        .collect();
    assert_eq!(macs.len(), 20, "{}", fleet.log());

    // A share: Wi-Fi down on 25 %, the others stay.
    let reply = fleet.ctl("wifi down --share 25");
    let hit = Fleet::named(&reply);
    assert!(reply.starts_with("ok wifi down (5 of 20: "), "{reply}");
    assert_eq!(hit.len(), 5, "{reply}");
    let spared: Vec<String> = names.iter().filter(|n| !hit.contains(n)).cloned().collect();
    assert!(
        wait_all(&bf, &hit, false, s(20)),
        "the share did not go offline: {:?}",
        listed(&bf)
    );
    assert!(wait_all(&bf, &spared, true, s(1)), "{:?}", listed(&bf));
    assert!(fleet.ctl("wifi up").starts_with("ok wifi up (20 of 20: "));
    assert!(wait_all(&bf, &names, true, s(30)), "{:?}", listed(&bf));

    // One device: a power cut reboots it and only it.
    let one = &names[6];
    assert_eq!(
        fleet.ctl(&format!("power-cut --device {one}")),
        format!("ok power cut ({one})")
    );
    assert!(
        wait_until(s(10), || fleet.count(one, "boot #2, reason: power-on") == 1),
        "{}",
        fleet.log()
    );
    // A software reset from the runtime (`OTA reboot`) comes back as one.
    let restart = hearth(&["cmd", &names[2], "--broker", &bf, "reboot"]);
    assert!(restart.status.success(), "{}", text(&restart));
    assert!(
        wait_until(s(15), || fleet
            .count(&names[2], "boot #2, reason: command: reboot requested")
            == 1),
        "{}",
        fleet.log()
    );
    for n in names.iter().filter(|n| *n != one && **n != names[2]) {
        assert_eq!(fleet.count(n, "boot #2"), 0, "{n} rebooted");
    }

    // Refused, with the reason: a loop fault would stop every member's thread.
    assert!(fleet.ctl("block 1").starts_with("error: block and slow"));
    assert!(fleet
        .ctl("status --device nobody")
        .starts_with("error: no member named"));

    // The broker restarts: every device comes back, none reboots.
    let boots = fleet.log().matches("] boot #").count();
    let port = broker.port;
    drop(broker);
    let broker = Broker::start_on(port);
    assert!(
        wait_all(&bf, &names, true, s(45)),
        "not all back after the broker restart: {:?}",
        listed(&bf)
    );
    assert_eq!(
        fleet.log().matches("] boot #").count(),
        boots,
        "a broker restart rebooted devices"
    );

    // The whole fleet loses power: every member boots again, from power-on.
    assert!(fleet
        .ctl("power-cut")
        .starts_with("ok power cut (20 of 20: "));
    assert!(
        wait_until(s(15), || names
            .iter()
            .all(|n| fleet.count(n, "reason: power-on") >= 2)),
        "{}",
        fleet.log()
    );
    assert!(wait_all(&bf, &names, true, s(30)), "{:?}", listed(&bf));
    drop(broker);
}

#[test]
fn rollouts_across_two_hundred_devices_stop_at_a_bad_canary_skip_the_offline_and_resume() {
    const N: usize = 200;
    let broker = Broker::start();
    let bf = broker_flag(&broker);
    let owner = new_owner();
    let fleet = Fleet::start(
        &config(
            "ro",
            broker.port,
            &format!("otaconfirm 5\notatrial 15\n{}\n", owner.otakey),
        ),
        N,
    );
    let names: Vec<String> = (1..=N).map(|i| format!("ro-{i:04}")).collect();
    assert!(
        wait_all(&bf, &names, true, s(60)),
        "not all {N} online: {} listed",
        listed(&bf).len()
    );
    // Ten go offline before any rollout.
    let reply = fleet.ctl("wifi down --share 5");
    let offline = Fleet::named(&reply);
    assert_eq!(offline.len(), 10, "{reply}");
    assert!(wait_all(&bf, &offline, false, s(20)), "{:?}", listed(&bf));
    let online: Vec<String> = names
        .iter()
        .filter(|n| !offline.contains(n))
        .cloned()
        .collect();

    // A canary that rolls back stops the rollout: nobody else is touched.
    let never = owner.image("never.img", &["--version", "0.2.0", "--health", "never"]);
    let out = ota_all(
        &bf,
        &never,
        &owner,
        &[
            "--canary",
            "1",
            "--parallel",
            "50",
            "--confirm-timeout",
            "90",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let canary = &online[0];
    for line in [
        format!("to {} device(s)", online.len()),
        format!("rolled back: {canary}: firmware 0.2.0 failed its trial; back on 0.1.0"),
        format!("stopped: the canary {canary} rolled back: the rollout stops"),
        format!(
            "{N} device(s): 1 rolled back, {} not reached, 10 offline",
            online.len() - 1
        ),
    ] {
        assert!(said.contains(&line), "no {line:?} in:\n{said}");
    }
    for n in &offline {
        assert!(
            said.contains(&format!("skipped: {n}: offline when the rollout started")),
            "{n} not listed as skipped:\n{said}"
        );
    }
    let l = listed(&bf);
    assert!(
        online.iter().all(|n| l[n].1 == "0.1.0"),
        "a device left 0.1.0: {l:?}"
    );
    assert_eq!(
        fleet.count(canary, "first boot of firmware 0.2.0"),
        1,
        "{}",
        fleet.log()
    );

    // A good image; the tool is killed after its canary and first wave.
    let good = owner.image("v030.img", &["--version", "0.3.0", "--size", "20000"]);
    let extra = [
        "--canary",
        "1",
        "--parallel",
        "40",
        "--confirm-timeout",
        "90",
    ];
    let mut confirmed = Vec::new();
    let seen = ota_all_killed_at(&bf, &good, &owner, &extra, |line| {
        if let Some(rest) = line.strip_prefix("ok: ") {
            confirmed.push(rest.split(':').next().unwrap_or("").to_string());
        }
        confirmed.len() == 41
    });
    assert_eq!(confirmed.len(), 41, "{seen}");

    // Run again: the confirmed ones are current and get nothing; the rest are updated.
    let out = ota_all(&bf, &good, &owner, &extra);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the offline devices are not on 0.3.0:\n{said}"
    );
    for n in &confirmed {
        assert!(
            said.contains(&format!("skipped: {n}: already runs 0.3.0: not sent again")),
            "{n} not skipped as current:\n{said}"
        );
    }
    let l = listed(&bf);
    let on = online.iter().filter(|n| l[*n].1 == "0.3.0").count();
    assert_eq!(on, online.len(), "{said}");
    for n in &online {
        assert_eq!(
            fleet.count(n, "first boot of firmware 0.3.0"),
            1,
            "{n} booted 0.3.0 other than once"
        );
    }
    for n in &offline {
        assert_eq!(l[n].1, "0.1.0", "{n}");
    }
}
