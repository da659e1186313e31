//! Config errors: one typed error per problem found, the list of all of them, and the
//! `file:line: message` rendering used by the CLI and the device log.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// How many characters of a user-supplied key are echoed back in a message.
const ECHO_MAX_CHARS: usize = 40;

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number the problem is on; `None` when the problem is something missing
    /// from the whole file (a required key).
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What is wrong; `Display` gives the human message (without file name or line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A known key alone on its line, e.g. `ssid`. Write `ssid None` for "no value".
    NoValue { key: &'static str },
    /// A key that is neither a Hearth key nor one of the profile's keys. `key` is the text
    /// as written (shortened and escaped for display); `suggestion` is the closest known key
    /// when it is only a typo away.
    UnknownKey {
        key: String,
        suggestion: Option<&'static str>,
    },
    /// A key given twice; the error's line is the second occurrence.
    DuplicateKey {
        key: &'static str,
        first_line: usize,
    },
    /// A value that does not parse or is out of range; `expected` says what would be valid.
    /// `value` is the value as read (shortened and escaped for display; `None` for a secret,
    /// which is never shown, and for `None` itself).
    BadValue {
        key: &'static str,
        value: Option<String>,
        expected: Cow<'static, str>,
    },
    /// A required key that is absent from the file.
    MissingKey {
        key: &'static str,
        hint: Option<Cow<'static, str>>,
    },
    /// Values that are valid one by one but not together (e.g. a back-off cap below the
    /// initial back-off, or both `profile` and `flavor`).
    Conflict { message: String },
}

impl ConfigError {
    pub(crate) fn at(line: usize, kind: ErrorKind) -> Self {
        ConfigError {
            line: Some(line),
            kind,
        }
    }

    /// Renders as `file:line: message` (or `file: message` when there is no line), which is
    /// what compilers print and what editors can jump to.
    pub fn located<'a>(&'a self, file: &'a str) -> Located<'a> {
        Located { error: self, file }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NoValue { key } => {
                write!(
                    f,
                    "key \"{key}\" has no value (write \"{key} None\" for none)"
                )
            }
            ErrorKind::UnknownKey { key, suggestion } => {
                write!(f, "unknown key \"{key}\"")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean \"{s}\"?)")?;
                }
                Ok(())
            }
            ErrorKind::DuplicateKey { key, first_line } => {
                write!(
                    f,
                    "duplicate key \"{key}\" (first given on line {first_line})"
                )
            }
            ErrorKind::BadValue {
                key,
                value,
                expected,
            } => match value {
                Some(v) => write!(f, "bad value \"{v}\" for \"{key}\": {expected}"),
                None => write!(f, "bad value for \"{key}\": {expected}"),
            },
            ErrorKind::MissingKey { key, hint } => {
                write!(f, "missing required key \"{key}\"")?;
                if let Some(h) = hint {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            ErrorKind::Conflict { message } => f.write_str(message),
        }
    }
}

/// Without a file name: `line 12: message`, or just `message` for a missing key.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl core::error::Error for ConfigError {}

/// A [`ConfigError`] with the file name the caller supplied; see [`ConfigError::located`].
#[derive(Clone, Copy, Debug)]
pub struct Located<'a> {
    error: &'a ConfigError,
    file: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.error.kind),
            None => write!(f, "{}: {}", self.file, self.error.kind),
        }
    }
}

/// Every problem found in one file, ordered by line (missing keys last). Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Sorts by line, keeping discovery order within a line; `None` if there are no errors.
    pub(crate) fn from_vec(mut errors: Vec<ConfigError>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Some(ConfigErrors { errors })
    }

    /// The errors, ordered by line.
    pub fn as_slice(&self) -> &[ConfigError] {
        &self.errors
    }

    /// The errors, ordered by line.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }

    /// How many problems were found (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false; present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// One `file:line: message` per line, no trailing newline.
    pub fn located<'a>(&'a self, file: &'a str) -> LocatedAll<'a> {
        LocatedAll { errors: self, file }
    }

    /// Each error as its own `file:line: message` line.
    pub fn located_lines(&self, file: &str) -> Vec<String> {
        use alloc::string::ToString;
        self.errors
            .iter()
            .map(|e| e.located(file).to_string())
            .collect()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = core::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Without a file name: one error per line, as [`ConfigError`] displays them.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl core::error::Error for ConfigErrors {}

/// All errors with the file name; see [`ConfigErrors::located`].
#[derive(Clone, Copy, Debug)]
pub struct LocatedAll<'a> {
    errors: &'a ConfigErrors,
    file: &'a str,
}

impl fmt::Display for LocatedAll<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", e.located(self.file))?;
        }
        Ok(())
    }
}

/// Keys whose values are secrets: never echoed in an error.
pub(crate) fn is_secret(key: &str) -> bool {
    key.contains("password") || key.contains("psk") || key.ends_with("key")
}

/// A user-written token made safe to print: at most [`ECHO_MAX_CHARS`] characters, with
/// quotes and control characters escaped so a config file cannot inject terminal sequences.
pub(crate) fn echo(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == ECHO_MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn located_rendering() {
        let e = ConfigError::at(
            12,
            ErrorKind::UnknownKey {
                key: "mqtbroker".into(),
                suggestion: Some("mqttbroker"),
            },
        );
        assert_eq!(
            e.located("config.txt").to_string(),
            "config.txt:12: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)"
        );
        assert_eq!(
            e.to_string(),
            "line 12: unknown key \"mqtbroker\" (did you mean \"mqttbroker\"?)"
        );
        let m = ConfigError {
            line: None,
            kind: ErrorKind::MissingKey {
                key: "mqttname",
                hint: None,
            },
        };
        assert_eq!(
            format!("{}", m.located("a.txt")),
            "a.txt: missing required key \"mqttname\""
        );
    }

    #[test]
    fn sorted_missing_last() {
        let missing = ConfigError {
            line: None,
            kind: ErrorKind::MissingKey {
                key: "ssid",
                hint: None,
            },
        };
        let l3 = ConfigError::at(3, ErrorKind::NoValue { key: "ssid" });
        let l1 = ConfigError::at(1, ErrorKind::NoValue { key: "password" });
        let all = ConfigErrors::from_vec(alloc::vec![missing.clone(), l3.clone(), l1.clone()])
            .expect("non-empty");
        assert_eq!(all.as_slice(), &[l1, l3, missing]);
        assert!(ConfigErrors::from_vec(Vec::new()).is_none());
        assert_eq!(
            all.located_lines("a.txt"),
            [
                "a.txt:1: key \"password\" has no value (write \"password None\" for none)",
                "a.txt:3: key \"ssid\" has no value (write \"ssid None\" for none)",
                "a.txt: missing required key \"ssid\"",
            ]
        );
    }

    #[test]
    fn echo_escapes_and_shortens() {
        assert_eq!(echo("a\"b\u{1b}"), "a\\\"b\\u{1b}");
        let long = "x".repeat(100);
        let e = echo(&long);
        assert_eq!(e.chars().count(), ECHO_MAX_CHARS + 1);
        assert!(e.ends_with('…'));
    }
}
