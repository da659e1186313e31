//! How `hearth ota` rolls an image out to several devices: who gets it (from the broker's
//! inventory), in what order (a canary stage first), when to stop (a canary that fails, or
//! more failures than allowed), and what to report for each device. Pure: [`plan`] and
//! [`Rollout`] take the inventory and each device's outcome and say what comes next, so the
//! rules are unit-tested; `commands::ota_run` does the sending.
//!
//! A device refuses an image that is not newer than the one it runs, so none is sent one: a
//! device on the image's version is `current` (one still on trial is told apart by the tool,
//! see `commands::ota_run`) and one on a newer version is `newer`. Running the same command
//! again therefore resumes a rollout without sending anything twice.

use hearth_ota::manifest::Version;

use crate::inventory::Device;

/// What the rollout was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Send only to devices known to run an older version: also skip those whose version the
    /// broker does not hold.
    pub only_outdated: bool,
    /// Update this many devices first, one by one; any failure among them stops the rollout.
    pub canary: usize,
    /// Stop once more devices than this failed or rolled back (`None`: never stop).
    pub max_failures: Option<usize>,
    /// After the canary stage, update this many devices at once (a wave); the failure limit
    /// is checked after each wave. 0 and 1: one by one.
    pub parallel: usize,
}

/// How one device ended, as the end report says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Running the new image, confirmed healthy and its version read back (or installed, when
    /// not waiting for the confirmation).
    Updated(String),
    /// The new image failed its trial; the device went back.
    RolledBack(String),
    /// The device said no (its reason), or the transfer failed.
    Refused(String),
    /// Offline when the rollout started: skipped.
    Offline,
    /// The broker holds no availability for it (not a Hearth device, or never connected):
    /// skipped.
    Unknown,
    /// Its version is not on the broker (`--only-outdated`): skipped.
    NoVersion,
    /// `--all`, and the broker holds no appliance for it (no discovery config): skipped.
    NoAppliance,
    /// Runs the image's version, still on trial: skipped; its verdict is still to come.
    OnTrial(String),
    /// Already runs the image's version: skipped.
    Current(String),
    /// Runs a newer version than the image (`--only-outdated`): skipped.
    Newer(String),
    /// The rollout stopped before this device.
    NotReached,
}

impl Verdict {
    /// A failure that counts towards `--max-failures`.
    pub fn failed(&self) -> bool {
        matches!(self, Self::RolledBack(_) | Self::Refused(_))
    }

    /// The device ends on the image's version.
    pub fn on_image(&self) -> bool {
        matches!(self, Self::Updated(_) | Self::Current(_))
    }

    /// The report's word for it.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Updated(_) => "updated",
            Self::RolledBack(_) => "rolled back",
            Self::Refused(_) => "refused",
            Self::Offline => "offline",
            Self::Unknown => "unknown",
            Self::NoVersion => "no version",
            Self::NoAppliance => "no appliance",
            Self::OnTrial(_) => "on trial",
            Self::Current(_) => "current",
            Self::Newer(_) => "newer",
            Self::NotReached => "not reached",
        }
    }

    /// What the report says after the word.
    pub fn detail(&self) -> String {
        match self {
            Self::Updated(m) | Self::RolledBack(m) | Self::Refused(m) => m.clone(),
            Self::Offline => "offline when the rollout started".into(),
            Self::Unknown => "the broker holds no availability for it".into(),
            Self::NoAppliance => "the broker holds no appliance for it (not a Hearth device, or \
                                  its discovery config is not out yet)"
                .into(),
            Self::NoVersion => "the broker holds no version for it (--only-outdated sends only to \
                                devices known to run an older one)"
                .into(),
            Self::OnTrial(v) => format!(
                "runs {v} on trial: run the command again once it has confirmed or rolled back"
            ),
            Self::Current(v) => format!("already runs {v}: not sent again"),
            Self::Newer(v) => {
                format!(
                    "runs {v}, newer than the image (a device refuses an older one): left alone"
                )
            }
            Self::NotReached => "the rollout stopped before it".into(),
        }
    }
}

/// The devices a rollout of `version` for `appliance` goes to, in order, and the ones it
/// skips with why. `named`: the devices given on the command line (`None`: every device of
/// the image's appliance the broker knows; for an image of `all` appliances, every device the
/// broker knows an appliance of). A device is sent the image only when the broker holds it
/// online and holds no version as new as the image's.
pub fn plan(
    inventory: &[Device],
    named: Option<&[String]>,
    appliance: &str,
    version: Version,
    policy: &Policy,
) -> (Vec<String>, Vec<(String, Verdict)>) {
    let chosen: Vec<(String, Option<&Device>)> = match named {
        Some(names) => names
            .iter()
            .map(|n| (n.clone(), inventory.iter().find(|d| &d.name == n)))
            .collect(),
        None => inventory
            .iter()
            .filter(|d| match d.appliance.as_deref() {
                Some(a) => appliance == "all" || a == appliance,
                None => true,
            })
            .map(|d| (d.name.clone(), Some(d)))
            .collect(),
    };
    let mut send = Vec::new();
    let mut skipped = Vec::new();
    for (name, known) in chosen {
        let verdict = match known {
            None => Some(Verdict::Unknown),
            Some(d) if named.is_none() && d.appliance.is_none() && d.online != Some(false) => {
                Some(Verdict::NoAppliance)
            }
            Some(d) => match (d.online, d.version.as_deref()) {
                (None, _) => Some(Verdict::Unknown),
                (Some(false), _) => Some(Verdict::Offline),
                (Some(true), None) if policy.only_outdated => Some(Verdict::NoVersion),
                (Some(true), None) => None,
                // The device's own rule (`hearth_ota::manifest`): only a newer image is taken.
                (Some(true), Some(running)) => match Version::parse(running) {
                    Some(v) if v == version => Some(Verdict::Current(running.into())),
                    Some(v) if v > version => Some(Verdict::Newer(running.into())),
                    _ => None,
                },
            },
        };
        match verdict {
            Some(v) => skipped.push((name, v)),
            None => send.push(name),
        }
    }
    (send, skipped)
}

/// A rollout under way: feed it each device's verdict; it says whether to go on.
#[derive(Debug)]
pub struct Rollout {
    policy: Policy,
    done: usize,
    failures: usize,
    stopped: Option<String>,
}

impl Rollout {
    /// A rollout under `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            done: 0,
            failures: 0,
            stopped: None,
        }
    }

    /// Why it stopped, once it has.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// The next device is still in the canary stage.
    pub fn in_canary(&self) -> bool {
        self.done < self.policy.canary
    }

    /// Record the verdict of the next device.
    pub fn record(&mut self, device: &str, verdict: &Verdict) {
        let canary = self.in_canary();
        self.done += 1;
        if !verdict.failed() {
            return;
        }
        self.failures += 1;
        if canary {
            self.stopped = Some(format!(
                "the canary {device} {}: the rollout stops",
                verdict.word()
            ));
        } else if self.policy.max_failures.is_some_and(|m| self.failures > m) {
            self.stopped = Some(format!(
                "{} device(s) failed, more than --max-failures {}: the rollout stops",
                self.failures,
                self.policy.max_failures.unwrap_or_default()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V030: Version = Version(0, 3, 0);

    fn dev(name: &str, appliance: &str, version: &str, online: bool) -> Device {
        Device {
            name: name.into(),
            appliance: Some(appliance.into()),
            version: Some(version.into()),
            online: Some(online),
            ..Device::default()
        }
    }

    fn inventory() -> Vec<Device> {
        vec![
            dev("a", "weather", "0.1.0", true),
            dev("b", "weather", "0.3.0", true),
            dev("c", "weather", "0.4.0", true),
            dev("d", "weather", "0.1.0", false),
            Device {
                version: None,
                ..dev("n", "weather", "", true)
            },
            Device {
                online: None,
                ..dev("q", "weather", "0.1.0", true)
            },
            dev("r", "relay", "0.1.0", true),
            Device {
                appliance: None,
                ..dev("t", "", "9.1", true)
            },
        ]
    }

    #[test]
    fn all_means_the_image_s_appliance_and_skips_what_a_device_would_refuse() {
        let (send, skipped) = plan(&inventory(), None, "weather", V030, &Policy::default());
        assert_eq!(send, ["a", "n"], "n's version is unknown: tried");
        assert_eq!(
            skipped,
            [
                ("b".to_string(), Verdict::Current("0.3.0".into())),
                ("c".to_string(), Verdict::Newer("0.4.0".into())),
                ("d".to_string(), Verdict::Offline),
                ("q".to_string(), Verdict::Unknown),
                ("t".to_string(), Verdict::NoAppliance),
            ]
        );
        let only = Policy {
            only_outdated: true,
            ..Policy::default()
        };
        let (send, skipped) = plan(&inventory(), None, "weather", V030, &only);
        assert_eq!(send, ["a"]);
        assert!(skipped.contains(&("n".into(), Verdict::NoVersion)));
        // An image for every appliance: every device whose appliance the broker knows.
        let (send, _) = plan(&inventory(), None, "all", V030, &Policy::default());
        assert_eq!(send, ["a", "n", "r"]);
    }

    #[test]
    fn named_devices_keep_their_order_and_unknown_ones_are_skipped() {
        let names = ["r".to_string(), "ghost".into(), "d".into(), "a".into()];
        let (send, skipped) = plan(
            &inventory(),
            Some(&names),
            "weather",
            V030,
            &Policy::default(),
        );
        assert_eq!(
            send,
            ["r", "a"],
            "a named device of another appliance may refuse"
        );
        assert_eq!(
            skipped,
            [
                ("ghost".to_string(), Verdict::Unknown),
                ("d".to_string(), Verdict::Offline)
            ]
        );
    }

    #[test]
    fn versions_compare_by_number_as_the_device_does() {
        let on = |v: &str| {
            let (send, skipped) = plan(
                &[dev("x", "weather", v, true)],
                None,
                "weather",
                Version(0, 9, 1),
                &Policy::default(),
            );
            skipped.into_iter().next().map(|(_, v)| v).ok_or(send)
        };
        assert_eq!(on("0.10.0"), Ok(Verdict::Newer("0.10.0".into())));
        assert_eq!(on("0.9.1"), Ok(Verdict::Current("0.9.1".into())));
        assert_eq!(on("0.9.0"), Err(vec!["x".to_string()]));
        // Not a version the device would have published: tried, and the device decides.
        assert_eq!(on("0.9.1-rc1"), Err(vec!["x".to_string()]));
    }

    #[test]
    fn a_failed_canary_stops_the_rollout_and_later_failures_count_against_the_limit() {
        let policy = Policy {
            canary: 2,
            max_failures: Some(1),
            ..Policy::default()
        };
        let mut r = Rollout::new(policy.clone());
        assert!(r.in_canary());
        r.record("a", &Verdict::Updated("ok".into()));
        assert!(r.in_canary() && r.stopped().is_none());
        r.record("b", &Verdict::RolledBack("trial".into()));
        assert_eq!(
            r.stopped(),
            Some("the canary b rolled back: the rollout stops")
        );

        let mut r = Rollout::new(policy);
        r.record("a", &Verdict::Updated("ok".into()));
        r.record("b", &Verdict::Updated("ok".into()));
        assert!(!r.in_canary());
        r.record("c", &Verdict::Refused("no".into()));
        assert_eq!(r.stopped(), None, "one failure is allowed");
        r.record("d", &Verdict::RolledBack("trial".into()));
        assert_eq!(
            r.stopped(),
            Some("2 device(s) failed, more than --max-failures 1: the rollout stops")
        );

        let mut r = Rollout::new(Policy::default());
        for d in ["a", "b", "c"] {
            r.record(d, &Verdict::Refused("no".into()));
        }
        assert_eq!(r.stopped(), None, "no limit: every device is tried");
    }
}
