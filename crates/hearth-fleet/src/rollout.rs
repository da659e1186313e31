//! How `hearth ota` rolls an image out to several devices: who gets it (from the broker's
//! inventory), in what order (a canary stage first), when to stop (a canary that fails, or
//! more failures than allowed), and what to report for each device. Pure: [`plan`] and
//! [`Rollout`] take the inventory and each device's outcome and say what comes next, so the
//! rules are unit-tested; `commands::ota_run` does the sending.
//!
//! Running the same command again resumes a rollout: a device that already runs the image's
//! version (confirmed, so it published it at boot) is not sent it again.

use crate::inventory::Device;

/// What the rollout was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Leave devices that run a newer version than the image alone (no downgrade).
    pub only_outdated: bool,
    /// Send even to devices that already run the image's version.
    pub reinstall: bool,
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
            Self::Current(_) => "current",
            Self::Newer(_) => "newer",
            Self::NotReached => "not reached",
        }
    }

    /// What the report says after the word.
    pub fn detail(&self) -> String {
        match self {
            Self::Updated(m) | Self::RolledBack(m) | Self::Refused(m) => m.clone(),
            Self::Offline => "skipped: offline when the rollout started".into(),
            Self::Current(v) => format!("already runs {v}: not sent again"),
            Self::Newer(v) => format!("runs {v}, newer than the image: left alone"),
            Self::NotReached => "the rollout stopped before it".into(),
        }
    }
}

/// Compare two dotted versions number by number (`0.10.0` > `0.9.1`); `None` when either is
/// not numbers and dots.
fn newer(a: &str, b: &str) -> Option<bool> {
    let nums = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse().ok()).collect() };
    Some(nums(a)? > nums(b)?)
}

/// The devices a rollout of `version` for `appliance` goes to, in order, and the ones it
/// skips with why. `named`: the devices given on the command line (`None`: every device of
/// the image's appliance the broker knows). A named device the broker knows nothing of is
/// tried (an older device that leaves no retained messages). An image for `all` appliances
/// goes to every device.
pub fn plan(
    inventory: &[Device],
    named: Option<&[String]>,
    appliance: &str,
    version: &str,
    policy: &Policy,
) -> (Vec<String>, Vec<(String, Verdict)>) {
    let chosen: Vec<(String, Option<&Device>)> = match named {
        Some(names) => names
            .iter()
            .map(|n| (n.clone(), inventory.iter().find(|d| &d.name == n)))
            .collect(),
        None => inventory
            .iter()
            .filter(|d| appliance == "all" || d.appliance.as_deref() == Some(appliance))
            .map(|d| (d.name.clone(), Some(d)))
            .collect(),
    };
    let mut send = Vec::new();
    let mut skipped = Vec::new();
    for (name, known) in chosen {
        let verdict = known.and_then(|d| {
            if d.online == Some(false) {
                return Some(Verdict::Offline);
            }
            let running = d.version.as_deref()?;
            if running == version && !policy.reinstall {
                Some(Verdict::Current(running.into()))
            } else if policy.only_outdated && newer(running, version) == Some(true) {
                Some(Verdict::Newer(running.into()))
            } else {
                None
            }
        });
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
            dev("r", "relay", "0.1.0", true),
        ]
    }

    #[test]
    fn all_means_the_image_s_appliance_and_skips_offline_and_current_devices() {
        let (send, skipped) = plan(&inventory(), None, "weather", "0.3.0", &Policy::default());
        assert_eq!(
            send,
            ["a", "c"],
            "c is newer, but only --only-outdated leaves it"
        );
        assert_eq!(
            skipped,
            [
                ("b".to_string(), Verdict::Current("0.3.0".into())),
                ("d".to_string(), Verdict::Offline)
            ]
        );
        let only = Policy {
            only_outdated: true,
            ..Policy::default()
        };
        let (send, skipped) = plan(&inventory(), None, "weather", "0.3.0", &only);
        assert_eq!(send, ["a"]);
        assert!(skipped.contains(&("c".into(), Verdict::Newer("0.4.0".into()))));
        let again = Policy {
            reinstall: true,
            ..Policy::default()
        };
        let (send, _) = plan(&inventory(), None, "weather", "0.3.0", &again);
        assert_eq!(send, ["a", "b", "c"]);
        let (send, _) = plan(&inventory(), None, "all", "0.3.0", &Policy::default());
        assert_eq!(send, ["a", "c", "r"]);
    }

    #[test]
    fn named_devices_keep_their_order_and_unknown_ones_are_tried() {
        let names = ["r".to_string(), "ghost".into(), "d".into(), "a".into()];
        let (send, skipped) = plan(
            &inventory(),
            Some(&names),
            "weather",
            "0.3.0",
            &Policy::default(),
        );
        assert_eq!(send, ["r", "ghost", "a"]);
        assert_eq!(skipped, [("d".to_string(), Verdict::Offline)]);
    }

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(newer("0.10.0", "0.9.1"), Some(true));
        assert_eq!(newer("0.3.0", "0.3.0"), Some(false));
        assert_eq!(newer("1.0", "0.99.99"), Some(true));
        assert_eq!(newer("0.3.0-rc1", "0.3.0"), None);
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
