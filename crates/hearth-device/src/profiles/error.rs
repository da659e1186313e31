//! Why a config cannot run: the plan refused it ([`PlanError`]), for one of its own rules or
//! because the appliance's settings broke one of the appliance's
//! (`hearth_appliances::ApplianceError`). Values, so callers match
//! on them; each displays as the one line a user reads.

use alloc::string::String;
use core::fmt;

use hearth_appliances::ApplianceError;

/// Why [`plan`](super::plan) refused a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The profile is not an appliance of this build.
    NotInBuild {
        /// The config's `profile`.
        profile: String,
    },
    /// A battery ESP-NOW peripheral was given a network.
    NeedsNoNetwork {
        /// The config's `profile`.
        profile: String,
    },
    /// The appliance refused its settings.
    Appliance(ApplianceError),
    /// The runtime's settings (broker, TLS, updates) are refused.
    Runtime(hearth_runtime::settings::SettingsError),
    /// The ESP-NOW link's settings are refused.
    Link(hearth_runtime::link::LinkConfigError),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInBuild { profile } => {
                write!(f, "profile {profile} is not an appliance of this build")
            }
            Self::NeedsNoNetwork { profile } => write!(
                f,
                "profile {profile} is a battery ESP-NOW device without Wi-Fi: write \"ssid (none)\""
            ),
            Self::Appliance(e) => e.fmt(f),
            Self::Runtime(e) => e.fmt(f),
            Self::Link(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for PlanError {}

impl From<ApplianceError> for PlanError {
    fn from(e: ApplianceError) -> Self {
        Self::Appliance(e)
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;
    use crate::profiles::{parse_config, plan};
    use hearth_profile::SettingError;

    const PSK: &str = "espnowgroup g\nespnowpsk 0123456789abcdef\n";

    fn planned(text: &str) -> Result<super::super::Plan, PlanError> {
        plan(&parse_config(text).expect("valid keys"))
    }

    #[test]
    fn plan_errors_say_which_rule_and_which_key() {
        let wifi = format!(
            "profile tnowp\nssid Home\npassword secretpass\nmqttbroker b\nmqttname s\n{PSK}"
        );
        assert_eq!(
            planned(&wifi).unwrap_err(),
            PlanError::NeedsNoNetwork {
                profile: "tnowp".into()
            }
        );
        let zero = format!(
            "profile scale_sensor\nssid (none)\nmqttname s\n{PSK}calibration_a 0\ncalibration_b 1\n"
        );
        let e = planned(&zero).unwrap_err();
        assert_eq!(
            e,
            PlanError::Appliance(ApplianceError {
                profile: "scale_sensor".into(),
                error: SettingError::invalid(
                    "calibration_a",
                    "0",
                    "a number other than 0 (counts per kg)"
                ),
            })
        );
        assert_eq!(
            format!("{e}"),
            "profile scale_sensor: \"calibration_a\" must be a number other than 0 (counts per \
             kg), not \"0\""
        );
        let missing =
            format!("profile scale_sensor\nssid (none)\nmqttname s\n{PSK}calibration_a 2\n");
        assert!(matches!(
            planned(&missing).unwrap_err(),
            PlanError::Appliance(ApplianceError {
                error: SettingError::Missing {
                    key: "calibration_b",
                    ..
                },
                ..
            })
        ));
        let no_group = "profile tnowp\nssid (none)\nmqttname s\nespnowpsk 0123456789abcdef\n";
        assert!(matches!(planned(no_group).unwrap_err(), PlanError::Link(_)));
    }

    #[test]
    fn an_appliance_error_keeps_its_setting_error_as_the_source() {
        let e = ApplianceError {
            profile: "energy".into(),
            error: SettingError::Needs {
                key: "pzemrx",
                needs: "pzemtx",
            },
        };
        let source = core::error::Error::source(&e).expect("a source");
        assert_eq!(
            format!("{source}"),
            "\"pzemrx\" is given: \"pzemtx\" is needed too"
        );
        assert_eq!(
            format!("{e}"),
            "profile energy: \"pzemrx\" is given: \"pzemtx\" is needed too"
        );
    }
}
