//! Wi-Fi given to a device after flashing (Improv over the serial console): whether a config
//! waits for it, and the config text with the credentials written in.
//!
//! A config *awaits Wi-Fi* when the one thing wrong with it is the missing `ssid`: the
//! appliance, the broker and every other key are in place, so the credentials alone make it
//! complete. (A board with no config at all has nothing to join a network *for*: it needs
//! `hearth flash`, which may leave Wi-Fi out for Improv to fill in.)
//!
//! [`with_wifi`] writes the credentials into the text. The caller then validates the result
//! exactly as any other config (keys, appliance, the chip's rules) and checks that it reads back
//! as the network it was given, so a name that the line syntax would change (a line break, a
//! leading space) is refused, never stored as something else.
//!
//! ```
//! use hearth_config::{parse, provision, Network};
//! let text = "profile weather\nmqttbroker 192.168.1.2\nmqttname balcony\n";
//! assert!(provision::awaits_wifi(&parse(text, &["weather"])));
//! let full = provision::with_wifi(text, "Home", "secret-passphrase").unwrap();
//! let config = parse(&full, &["weather"]).unwrap();
//! assert!(provision::is_network(&config, "Home", "secret-passphrase"));
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::error::ErrorKind;
use crate::model::{Config, Network};
use crate::ConfigErrors;

/// Does this parse result fail only for the missing `ssid`?
pub fn awaits_wifi(parsed: &Result<Config, ConfigErrors>) -> bool {
    match parsed {
        Ok(_) => false,
        Err(errors) => {
            errors.len() == 1
                && matches!(
                    errors.as_slice()[0].kind,
                    ErrorKind::MissingKey { key: "ssid", .. }
                )
        }
    }
}

/// The config `text` would become with a network, when it awaits only Wi-Fi (by `parse`) and a
/// network would complete it under `rules` (every rule the device applies); `None` for any
/// other text, which is refused as it is (a battery peripheral's, say, which must read
/// `ssid (none)`). The device announces this config's name while it waits.
pub fn awaiting(
    text: &str,
    parse: impl Fn(&str) -> Result<Config, ConfigErrors>,
    rules: impl Fn(&str) -> Result<Config, Vec<String>>,
) -> Option<Config> {
    if !awaits_wifi(&parse(text)) {
        return None;
    }
    completed(text, PROBE, "", rules)
        .ok()
        .map(|(_, config)| config)
}

/// The network [`awaiting`] completes a config with, to see what it would be.
const PROBE: &str = "probe";

/// Why credentials cannot be written into a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialError {
    /// The name is empty, longer than 32 bytes, or has a control character or a space at an
    /// end (which the line syntax would not keep).
    Ssid,
    /// The password has a control character or a space at an end.
    Password,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialError::Ssid => {
                "the network name must be 1..=32 bytes, without control characters or spaces at either end"
            }
            CredentialError::Password => {
                "the password must have no control characters or spaces at either end"
            }
        })
    }
}

fn writable(v: &str) -> bool {
    !v.chars().any(char::is_control) && v.trim() == v
}

/// `text` with every `ssid` and `password` line replaced by these credentials (an empty
/// password is an open network, `password None`). The result still has to be validated.
pub fn with_wifi(text: &str, ssid: &str, password: &str) -> Result<String, CredentialError> {
    if ssid.is_empty() || ssid.len() > 32 || !writable(ssid) {
        return Err(CredentialError::Ssid);
    }
    if !writable(password) {
        return Err(CredentialError::Password);
    }
    let mut out = String::with_capacity(text.len() + ssid.len() + password.len() + 24);
    for line in text.lines() {
        let key = line.trim().split([' ', '\t']).next().unwrap_or("");
        if key == "ssid" || key == "password" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("ssid ");
    out.push_str(ssid);
    out.push_str("\npassword ");
    out.push_str(if password.is_empty() {
        "None"
    } else {
        password
    });
    out.push('\n');
    Ok(out)
}

/// The config `text` completed with these credentials, once it passes `rules` (every rule the
/// device applies to a config, e.g. `hearth_device::CONFIG_RULES` for its chip) and reads back
/// as exactly this network; else every reason, one per line.
pub fn complete(
    text: &str,
    ssid: &str,
    password: &str,
    rules: impl Fn(&str) -> Result<Config, Vec<String>>,
) -> Result<String, Vec<String>> {
    completed(text, ssid, password, rules).map(|(full, _)| full)
}

/// [`complete`], with the config the text parses to.
fn completed(
    text: &str,
    ssid: &str,
    password: &str,
    rules: impl Fn(&str) -> Result<Config, Vec<String>>,
) -> Result<(String, Config), Vec<String>> {
    let full = with_wifi(text, ssid, password).map_err(|e| alloc::vec![alloc::format!("{e}")])?;
    let config = rules(&full)?;
    if !is_network(&config, ssid, password) {
        return Err(alloc::vec![String::from(
            "the config would not keep this network name and password as given"
        )]);
    }
    Ok((full, config))
}

/// Is the config's network exactly this Wi-Fi (an empty password: open)?
pub fn is_network(config: &Config, ssid: &str, password: &str) -> bool {
    match &config.network {
        Network::Wifi {
            ssid: s,
            password: p,
        } => s == ssid && p.as_deref().unwrap_or("") == password,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const BASE: &str = "profile weather\nmqttbroker 10.0.0.2\nmqttname wx\n";

    #[test]
    fn only_a_missing_ssid_awaits_wifi() {
        assert!(awaits_wifi(&parse(BASE, &["weather"])));
        // Something else missing too, or wrong: not for Improv to fix.
        assert!(!awaits_wifi(&parse(
            "profile weather\nmqttname wx\n",
            &["weather"]
        )));
        assert!(!awaits_wifi(&parse(
            "profile weather\nmqttbroker 10.0.0.2\nmqttname wx\nbogus 1\n",
            &["weather"]
        )));
        // Complete: nothing to wait for.
        let full = with_wifi(BASE, "Home", "secret-passphrase").unwrap();
        assert!(!awaits_wifi(&parse(&full, &["weather"])));
        assert!(!awaits_wifi(&parse("", &["weather"])));
    }

    #[test]
    fn awaiting_gives_the_config_a_network_would_complete() {
        let p = |t: &str| parse(t, &["weather"]);
        let rules = |t: &str| parse(t, &["weather"]).map_err(|_| alloc::vec![]);
        assert_eq!(awaiting(BASE, p, rules).unwrap().mqtt.name, "wx");
        // Complete already, or wrong in another way: nothing to wait for.
        let full = with_wifi(BASE, "Home", "secret-passphrase").unwrap();
        assert!(awaiting(&full, p, rules).is_none());
        assert!(awaiting("profile weather\nmqttname wx\n", p, rules).is_none());
        // The device's own rules refuse it even with a network (a chip without the appliance).
        let refuse = |_: &str| Err(alloc::vec![String::from("not in this image")]);
        assert!(awaiting(BASE, p, refuse).is_none());
    }

    #[test]
    fn credentials_replace_the_old_ones_and_read_back() {
        let old = "profile weather\nssid Old\npassword old-passphrase\nmqttbroker 10.0.0.2\nmqttname wx\n";
        let text = with_wifi(old, "My Home 5G", "pass phrase with spaces").unwrap();
        let config = parse(&text, &["weather"]).unwrap();
        assert!(is_network(&config, "My Home 5G", "pass phrase with spaces"));
        assert!(!text.contains("Old"));
        let open = parse(&with_wifi(BASE, "Cafe", "").unwrap(), &["weather"]).unwrap();
        assert!(is_network(&open, "Cafe", ""));
        assert!(!is_network(&open, "Cafe", "x"));
    }

    #[test]
    fn names_the_syntax_would_change_are_refused() {
        for ssid in ["", " lead", "trail ", "two\nlines", &"x".repeat(33)] {
            assert_eq!(
                with_wifi(BASE, ssid, "").unwrap_err(),
                CredentialError::Ssid
            );
        }
        for password in ["injected\nmqttbroker evil", " spaced", "tab\t"] {
            assert_eq!(
                with_wifi(BASE, "Home", password).unwrap_err(),
                CredentialError::Password
            );
        }
        // A short passphrase is written, and the config rules refuse it.
        let short = with_wifi(BASE, "Home", "short").unwrap();
        assert!(parse(&short, &["weather"]).is_err());
        let rules = |t: &str| {
            parse(t, &["weather"])
                .map_err(|e| alloc::vec![alloc::format!("{}", e.as_slice()[0].located("config"))])
        };
        let why = complete(BASE, "Home", "short", rules).unwrap_err();
        assert!(why[0].contains("WPA2 passphrase"), "{why:?}");
        assert!(complete(BASE, "Home", "long-enough", rules).is_ok());
        // Rules that turn the network into something else: refused, not stored.
        let other = |t: &str| {
            parse(&t.replace("ssid Home", "ssid Other"), &["weather"]).map_err(|_| alloc::vec![])
        };
        assert!(complete(BASE, "Home", "long-enough", other).is_err());
    }
}
