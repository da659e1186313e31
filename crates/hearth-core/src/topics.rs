//! The MQTT topic scheme, kept compatible with the reference so its dashboards keep working:
//! `stat/<name>/<Item>` out, `cmnd/<name>/<Command>` in, plus `tele/<name>/LWT` for availability.

use alloc::format;
use alloc::string::String;

/// Topic builder for one device name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    name: String,
}

impl Topics {
    /// Topics of the device called `name` (already validated by the config parser).
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `stat/<name>/<item>`: a value the device publishes.
    pub fn stat(&self, item: &str) -> String {
        format!("stat/{}/{}", self.name, item)
    }

    /// `cmnd/<name>/<command>`: a command the device subscribes to.
    pub fn cmnd(&self, command: &str) -> String {
        format!("cmnd/{}/{}", self.name, command)
    }

    /// `tele/<name>/LWT`: retained `Online`, and the broker's last will `Offline`.
    pub fn lwt(&self) -> String {
        format!("tele/{}/LWT", self.name)
    }

    /// The command leaf of `topic` if it is one of this device's command topics: everything
    /// after `cmnd/<name>/`, one level (`Refresh`) or several (`0/TurnOnWithTimeout`, as the
    /// reference's relays and switches use), without empty levels.
    pub fn command_leaf<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix("cmnd/")?;
        let rest = rest.strip_prefix(self.name.as_str())?;
        let leaf = rest.strip_prefix('/')?;
        (!leaf.is_empty() && leaf.split('/').all(|level| !level.is_empty())).then_some(leaf)
    }
}

/// Payload of the availability topic while connected.
pub const ONLINE: &str = "Online";
/// Payload of the availability topic set as the last will.
pub const OFFLINE: &str = "Offline";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_reference_topics() {
        let t = Topics::new("TempSensor");
        assert_eq!(t.stat("Uptime"), "stat/TempSensor/Uptime");
        assert_eq!(t.cmnd("Refresh"), "cmnd/TempSensor/Refresh");
        assert_eq!(t.lwt(), "tele/TempSensor/LWT");
    }

    #[test]
    fn command_leaf_only_for_own_commands() {
        let t = Topics::new("dev");
        assert_eq!(t.command_leaf("cmnd/dev/Refresh"), Some("Refresh"));
        assert_eq!(t.command_leaf("cmnd/device/Refresh"), None);
        assert_eq!(t.command_leaf("cmnd/dev/"), None);
        assert_eq!(
            t.command_leaf("cmnd/dev/0/TurnOnWithTimeout"),
            Some("0/TurnOnWithTimeout")
        );
        assert_eq!(t.command_leaf("cmnd/dev/a//b"), None);
        assert_eq!(t.command_leaf("cmnd/dev/a/"), None);
        assert_eq!(t.command_leaf("stat/dev/Refresh"), None);
        assert_eq!(t.command_leaf("cmnd/dev"), None);
    }
}
