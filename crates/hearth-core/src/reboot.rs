//! Why the device restarted: the reasons a reset can have, the text stored in flash before a
//! software reset, and how the next boot combines it with what the hardware says.

/// What the chip's reset-cause register (or the simulator's "board") says about the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareReset {
    /// Power was applied (first boot, or a power cut).
    PowerOn,
    /// A hardware watchdog expired.
    Watchdog,
    /// The firmware asked for the reset; the reason is in storage.
    Software,
    /// A brown-out or anything the platform cannot classify.
    Other,
    /// The timer woke the chip from deep sleep (a battery device's normal cycle).
    DeepSleepWake,
    /// The firmware panicked and reset itself (the chip's panic mark in RTC memory; a crashed
    /// process in the simulator).
    Panic,
}

/// A reason the firmware itself decided to reset, stored before the reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootReason {
    /// No network connection for longer than the configured limit.
    Network,
    /// No MQTT traffic for longer than the configured limit.
    Mqtt,
    /// The `reboot` command.
    Command,
    /// The event loop hit an unrecoverable error.
    Fault,
    /// The appliance asked for it: its hardware stayed broken for too long (termo's 15
    /// minutes without a reading).
    Appliance,
    /// A new firmware image was installed and selected.
    Update,
    /// The running image failed its trial (not healthy in time, or reset before it was), and
    /// the previous one was selected again.
    Rollback,
    /// A new config was installed.
    Config,
    /// A pushed config failed its trial (not healthy in time, or too many boots before it
    /// was), and the previous config was put back.
    ConfigRollback,
    /// Leaving safe mode on command.
    SafeModeExit,
}

impl RebootReason {
    /// The text stored in flash and later published.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network: no connection for too long",
            Self::Mqtt => "mqtt: no broker for too long",
            Self::Command => "command: reboot requested",
            Self::Fault => "fault: unrecoverable runtime error",
            Self::Appliance => "appliance: unrecoverable malfunction",
            Self::Update => "update: new firmware installed",
            Self::Rollback => "rollback: new firmware failed its trial",
            Self::Config => "config: new config installed",
            Self::ConfigRollback => "config rollback: the pushed config failed its trial",
            Self::SafeModeExit => "safe mode: leaving on command",
        }
    }
}

/// The boot reason of a reset that neither the firmware nor a watchdog caused.
pub const OTHER_RESET: &str = "reset pin, brown-out, USB or debugger";

/// The reason reported after boot: the stored software reason when the hardware says the
/// firmware asked for the reset, else the hardware's own cause. A software reset with no stored
/// reason (storage lost it) says so instead of inventing one.
pub fn boot_reason(hardware: HardwareReset, stored: Option<&str>) -> &str {
    match hardware {
        HardwareReset::PowerOn => "power-on",
        HardwareReset::Watchdog => "watchdog",
        // On the chip: the reset pin, a brown-out, a reset over USB (flashing tools) or a
        // debugger; never a crash (a panic and the watchdogs have their own words).
        HardwareReset::Other => OTHER_RESET,
        HardwareReset::DeepSleepWake => "deep-sleep wake",
        HardwareReset::Panic => "panic",
        HardwareReset::Software => stored.unwrap_or("software: reason not recorded"),
    }
}

/// Did the previous run end in a fault of the running code? Only such runs count toward safe
/// mode: a panic, a watchdog reset, a runtime fault, an appliance that gave up on its hardware.
/// Never a reboot that the network or MQTT policy chose, a power cut or brown-out, a commanded
/// reboot, an update, a config push, a rollback or a deep-sleep wake: those say nothing about
/// the code, and counting them put devices into safe mode after an ordinary outage.
///
/// Returns the short name of the fault for the safe-mode report.
pub fn boot_fault(hardware: HardwareReset, stored: Option<&str>) -> Option<&'static str> {
    match hardware {
        HardwareReset::Watchdog => Some("watchdog"),
        HardwareReset::Panic => Some("panic"),
        HardwareReset::Software => match stored {
            Some(s) if s == RebootReason::Fault.as_str() => Some("fault"),
            Some(s) if s == RebootReason::Appliance.as_str() => Some("appliance"),
            _ => None,
        },
        HardwareReset::PowerOn | HardwareReset::Other | HardwareReset::DeepSleepWake => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_reset_reports_the_stored_reason() {
        let stored = RebootReason::Mqtt.as_str();
        assert_eq!(boot_reason(HardwareReset::Software, Some(stored)), stored);
        assert_eq!(
            boot_reason(HardwareReset::Software, None),
            "software: reason not recorded"
        );
    }

    #[test]
    fn hardware_causes_win_over_a_stale_stored_reason() {
        let stale = Some(RebootReason::Command.as_str());
        assert_eq!(boot_reason(HardwareReset::Watchdog, stale), "watchdog");
        assert_eq!(boot_reason(HardwareReset::PowerOn, stale), "power-on");
        assert_eq!(boot_reason(HardwareReset::Other, stale), OTHER_RESET);
        assert_eq!(
            boot_reason(HardwareReset::DeepSleepWake, stale),
            "deep-sleep wake"
        );
        assert_eq!(boot_reason(HardwareReset::Panic, stale), "panic");
    }

    #[test]
    fn only_faults_of_the_running_code_count_toward_safe_mode() {
        use RebootReason as R;
        let hw = |h, r: Option<RebootReason>| boot_fault(h, r.map(R::as_str));
        assert_eq!(hw(HardwareReset::Watchdog, None), Some("watchdog"));
        assert_eq!(hw(HardwareReset::Panic, None), Some("panic"));
        assert_eq!(hw(HardwareReset::Software, Some(R::Fault)), Some("fault"));
        assert_eq!(
            hw(HardwareReset::Software, Some(R::Appliance)),
            Some("appliance")
        );
        // The policies' own reboots, commands, updates and power events are not faults.
        for benign in [
            R::Network,
            R::Mqtt,
            R::Command,
            R::Update,
            R::Rollback,
            R::Config,
            R::ConfigRollback,
            R::SafeModeExit,
        ] {
            assert_eq!(
                hw(HardwareReset::Software, Some(benign)),
                None,
                "{benign:?}"
            );
        }
        assert_eq!(hw(HardwareReset::Software, None), None);
        assert_eq!(hw(HardwareReset::PowerOn, Some(R::Fault)), None);
        assert_eq!(hw(HardwareReset::Other, None), None);
        assert_eq!(hw(HardwareReset::DeepSleepWake, None), None);
    }
}
