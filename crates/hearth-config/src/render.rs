//! From `Config` back to text: the canonical `config.txt` of a config, and a minimal valid
//! example file for documentation and tests.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt::Write;

use crate::base64;
use crate::model::{Config, Network, Timings, DEFAULT_MQTT_KEEPALIVE_S};
use crate::schema::Key;
use crate::values;

impl Config {
    /// The canonical `config.txt` for this config: keys in a fixed order, one per line,
    /// single-space separated, `\n` line endings, no comments, and only the optional keys
    /// that differ from their defaults (so a file does not pin defaults that a later
    /// firmware may improve). `parse(config.to_text(), …)` gives back an equal `Config` for
    /// every `Config` that `parse` produced.
    ///
    /// A `Config` built by hand with values `parse` would reject (an SSID with a newline,
    /// a Wi-Fi network literally named `None` or `(wired)`) does not round-trip.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut put = |key: Key, value: &str| {
            out.push_str(key.name());
            out.push(' ');
            out.push_str(value);
            out.push('\n');
        };
        put(Key::Profile, &self.profile);
        match &self.network {
            Network::Wifi { ssid, password } => {
                put(Key::Ssid, ssid);
                if let Some(p) = password {
                    put(Key::Password, p);
                }
            }
            Network::Wired => put(Key::Ssid, "(wired)"),
            Network::Wired2 => put(Key::Ssid, "(wired2)"),
            Network::None => put(Key::Ssid, "(none)"),
        }
        if let Some(power) = self.wifi_tx_power {
            put(Key::WifiTxPower, &power.to_string());
        }
        match &self.ntp_servers[..] {
            [one] if one == crate::model::DEFAULT_NTP_SERVER => {}
            [] => put(Key::NtpServer, "None"),
            servers => put(Key::NtpServer, &servers.join(" ")),
        }
        if let Some(b) = &self.mqtt.broker {
            put(Key::MqttBroker, &b.to_string());
        }
        put(Key::MqttName, &self.mqtt.name);
        if let Some(c) = &self.mqtt.credentials {
            put(Key::MqttUser, &c.user);
            if let Some(p) = &c.password {
                put(Key::MqttPassword, p);
            }
        }
        if self.mqtt.keepalive_s != DEFAULT_MQTT_KEEPALIVE_S {
            put(Key::MqttKeepalive, &self.mqtt.keepalive_s.to_string());
        }
        if let Some(tls) = &self.mqtt.tls {
            if let Some(ca) = &tls.ca {
                put(Key::MqttCa, &base64::encode(ca));
            }
            if let Some(pin) = &tls.pin {
                let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
                put(Key::MqttPin, &hex);
            }
            if let Some(client) = &tls.client {
                put(Key::MqttClientCert, &base64::encode(&client.cert));
                put(Key::MqttClientSecret, &base64::encode(&client.key));
            }
        }
        let t = &self.timings;
        let d = Timings::default();
        if t.watchdog_s != d.watchdog_s {
            put(Key::Watchdog, &t.watchdog_s.unwrap_or(0).to_string());
        }
        if let Some(g) = &self.espnow.group {
            put(Key::EspNowGroup, g);
        }
        if let Some(p) = &self.espnow.psk {
            put(Key::EspNowPsk, p);
        }
        if let Some(c) = self.espnow.channel {
            put(Key::EspNowChannel, &c.to_string());
        }
        if self.espnow.version != crate::model::DEFAULT_ESPNOW_VERSION {
            put(Key::EspNowVersion, &self.espnow.version.to_string());
        }
        let numbers = [
            (Key::StartDelay, t.start_delay_s, d.start_delay_s),
            (Key::WdGrace, t.watchdog_grace_s, d.watchdog_grace_s),
            (Key::MayBlock, t.may_block_s, d.may_block_s),
            (
                Key::NetConnectTimeout,
                t.net_connect_timeout_s,
                d.net_connect_timeout_s,
            ),
            (Key::NetRetry, t.net_retry_s, d.net_retry_s),
            (Key::NetRetryFudge, t.net_retry_fudge_s, d.net_retry_fudge_s),
            (
                Key::NetReboot,
                t.net_reboot_s.unwrap_or(0),
                d.net_reboot_s.unwrap_or(0),
            ),
            (Key::MqttBackoffMs, t.mqtt_backoff_ms, d.mqtt_backoff_ms),
            (
                Key::MqttBackoffMaxMs,
                t.mqtt_backoff_max_ms,
                d.mqtt_backoff_max_ms,
            ),
            (
                Key::MqttReboot,
                t.mqtt_reboot_s.unwrap_or(0),
                d.mqtt_reboot_s.unwrap_or(0),
            ),
            (Key::UptimeEval, t.uptime_eval_s, d.uptime_eval_s),
            (Key::UptimeForce, t.uptime_force_s, d.uptime_force_s),
        ];
        for (key, value, default) in numbers {
            if value != default {
                put(key, &value.to_string());
            }
        }
        for (key, value) in &self.profile_settings {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{key} {value}");
        }
        out
    }

    /// A minimal valid `config.txt` for `profile` (Wi-Fi with placeholder credentials, a
    /// broker on the LAN, everything else at its default), with comments explaining the
    /// format. The device name is the profile name when that is a valid `mqttname`.
    pub fn example(profile: &str) -> String {
        let name = if values::mqtt_name(profile).is_ok() {
            profile
        } else {
            "hearth"
        };
        format!(
            "# Hearth config.txt: one \"key value\" per line; lines starting with # are comments.\n\
             # Values may contain spaces. \"None\" means no value.\n\
             profile {profile}\n\
             ssid My Home Network\n\
             password change this passphrase\n\
             mqttbroker mqtt.lan\n\
             mqttname {name}\n"
        )
    }
}
