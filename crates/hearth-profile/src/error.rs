//! Why an appliance refuses its settings: a value the caller matches on, displayed as the one
//! line a user reads (`hearth config check`, `hearth flash`, a config push, the boot log).

use alloc::string::String;
use core::fmt;

/// An appliance's own rule refused a setting (the parser checked each key's syntax already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingError {
    /// A key the appliance needs is absent; `takes`, when known, says what it takes.
    Missing {
        /// The key.
        key: &'static str,
        /// What it takes.
        takes: Option<&'static str>,
    },
    /// A key's value is refused; `takes` says what the appliance accepts.
    Invalid {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What it accepts.
        takes: String,
    },
    /// Two keys name the same GPIO.
    SharedPin {
        /// The first key.
        first: String,
        /// The second key.
        second: String,
        /// The GPIO.
        pin: u8,
    },
    /// `key` is given without `needs`, which must come with it.
    Needs {
        /// The key given.
        key: &'static str,
        /// The key that must come with it.
        needs: &'static str,
    },
    /// `key` does not fit the rest of the config; `why` says what does.
    Refused {
        /// The key.
        key: String,
        /// Why, and what to write instead.
        why: String,
    },
}

impl SettingError {
    /// [`SettingError::Invalid`] from borrowed parts.
    pub fn invalid(key: &str, value: &str, takes: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            value: value.into(),
            takes: takes.into(),
        }
    }

    /// [`SettingError::Refused`] from borrowed parts.
    pub fn refused(key: &str, why: impl Into<String>) -> Self {
        Self::Refused {
            key: key.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { key, takes: None } => write!(f, "\"{key}\" is required"),
            Self::Missing {
                key,
                takes: Some(takes),
            } => write!(f, "\"{key}\" is required: {takes}"),
            Self::Invalid { key, value, takes } => {
                write!(f, "\"{key}\" must be {takes}, not {value:?}")
            }
            Self::SharedPin { first, second, pin } => {
                write!(f, "\"{first}\" and \"{second}\" are both GPIO {pin}")
            }
            Self::Needs { key, needs } => {
                write!(f, "\"{key}\" is given: \"{needs}\" is needed too")
            }
            Self::Refused { key, why } => write!(f, "\"{key}\": {why}"),
        }
    }
}

impl core::error::Error for SettingError {}
