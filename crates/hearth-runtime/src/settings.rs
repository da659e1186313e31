//! Runtime settings: what the runtime needs from `config.txt`, in the units the policies use.

use alloc::string::String;

use hearth_core::supervisor::{MqttPolicy, NetPolicy};
use hearth_core::{Millis, MINUTE, SECOND};
pub use hearth_platform::TlsSettings;

/// Everything the runtime needs to know, already validated. Its `Debug` output never shows the
/// MQTT password.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// `mqttname`: the device name in topics.
    pub name: String,
    /// Broker host name or address.
    pub broker_host: String,
    /// Broker TCP port.
    pub broker_port: u16,
    /// Broker user name, if any.
    pub mqtt_user: Option<String>,
    /// Broker password, if any.
    pub mqtt_password: Option<String>,
    /// MQTT over TLS (`mqttbroker mqtts://...`), and how to verify the server.
    pub tls: Option<TlsSettings>,
    /// Network policy.
    pub net: NetPolicy,
    /// MQTT policy.
    pub mqtt: MqttPolicy,
    /// Upper bound of the random start-up delay; 0 = none.
    pub start_delay_max: Millis,
    /// `Uptime` evaluation period.
    pub uptime_eval: Millis,
    /// `Uptime` forced publication period.
    pub uptime_force: Millis,
    /// Updates, trial, safe mode (`otakey`, `otaconfirm`, `otatrial`, `safemode`).
    pub update: crate::update::UpdateSettings,
    /// How this boot runs; the platform sets it from [`crate::update::boot`].
    pub boot_mode: crate::update::BootMode,
    /// The SNTP servers of the wall clock (`ntpserver`); none: no wall clock.
    pub ntp_servers: alloc::vec::Vec<String>,
}

impl core::fmt::Debug for Settings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("broker_host", &self.broker_host)
            .field("broker_port", &self.broker_port)
            .field("mqtt_user", &self.mqtt_user)
            .field(
                "mqtt_password",
                &self.mqtt_password.as_ref().map(|_| "<redacted>"),
            )
            .field("tls", &self.tls)
            .field("net", &self.net)
            .field("mqtt", &self.mqtt)
            .field("start_delay_max", &self.start_delay_max)
            .field("uptime_eval", &self.uptime_eval)
            .field("uptime_force", &self.uptime_force)
            .field("update", &self.update)
            .field("boot_mode", &self.boot_mode)
            .field("ntp_servers", &self.ntp_servers)
            .finish()
    }
}

impl Settings {
    /// Reference defaults for a device called `name` using `broker_host:broker_port`.
    pub fn with_defaults(name: &str, broker_host: &str, broker_port: u16) -> Self {
        Self {
            name: name.into(),
            broker_host: broker_host.into(),
            broker_port,
            mqtt_user: None,
            mqtt_password: None,
            tls: None,
            net: NetPolicy::default(),
            mqtt: MqttPolicy::default(),
            start_delay_max: 10 * SECOND,
            uptime_eval: MINUTE,
            uptime_force: 30 * MINUTE,
            update: crate::update::UpdateSettings::default(),
            boot_mode: crate::update::BootMode::Normal,
            ntp_servers: alloc::vec::Vec::new(),
        }
    }
}

/// Why a valid config still cannot run the MQTT runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// `ssid (none)`: there is no network, so there is no broker to talk to.
    NoNetwork,
    /// The update keys contradict each other.
    Update(crate::update::TrialTooShort),
}

impl core::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoNetwork => f.write_str(
                "`ssid (none)` disables the network, but this profile needs MQTT; set ssid and mqttbroker",
            ),
            Self::Update(e) => write!(f, "{e}"),
        }
    }
}

impl Settings {
    /// The runtime settings of a validated config.
    pub fn from_config(config: &hearth_config::Config) -> Result<Self, SettingsError> {
        use hearth_config::Host;
        let broker = config
            .mqtt
            .broker
            .as_ref()
            .ok_or(SettingsError::NoNetwork)?;
        let host = match &broker.host {
            Host::Name(n) => n.clone(),
            Host::Ipv4(a) => alloc::format!("{a}"),
            Host::Ipv6(a) => alloc::format!("[{a}]"),
        };
        let server_name = match &broker.host {
            Host::Ipv6(a) => alloc::format!("{a}"),
            _ => host.clone(),
        };
        let t = &config.timings;
        let s = |secs: u32| secs as Millis * SECOND;
        let mut settings = Self::with_defaults(&config.mqtt.name, &host, broker.port);
        settings.ntp_servers = config.ntp_servers.clone();
        if let Some(c) = &config.mqtt.credentials {
            settings.mqtt_user = Some(c.user.clone());
            settings.mqtt_password = c.password.clone();
        }
        settings.tls = config.mqtt.tls.as_ref().map(|t| TlsSettings {
            server_name,
            ca: t.ca.clone(),
            pin: t.pin,
            client_cert: t.client.as_ref().map(|c| c.cert.clone()),
            client_key: t.client.as_ref().map(|c| c.key.clone()),
        });
        settings.net = NetPolicy {
            connect_timeout: s(t.net_connect_timeout_s),
            retry: s(t.net_retry_s),
            retry_fudge: s(t.net_retry_fudge_s),
            reboot_after: t.net_reboot_s.map_or(0, s),
        };
        settings.mqtt = MqttPolicy {
            backoff_initial: t.mqtt_backoff_ms as Millis,
            backoff_max: t.mqtt_backoff_max_ms as Millis,
            reboot_after: t.mqtt_reboot_s.map_or(0, s),
            keepalive: s(config.mqtt.keepalive_s as u32),
            connack_timeout: MqttPolicy::default().connack_timeout,
        };
        settings.start_delay_max = s(t.start_delay_s);
        settings.uptime_eval = s(t.uptime_eval_s);
        settings.uptime_force = s(t.uptime_force_s);
        settings.update =
            crate::update::UpdateSettings::from_config(config).map_err(SettingsError::Update)?;
        Ok(settings)
    }
}

#[cfg(test)]
mod redaction {
    #[test]
    fn debug_output_never_shows_the_password() {
        let mut s = super::Settings::with_defaults("d", "h", 1883);
        s.mqtt_user = Some("me".into());
        s.mqtt_password = Some("hunter2-secret".into());
        let shown = alloc::format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_to_policies() {
        let text =
            "profile weather\nssid Home Net\npassword secretpass\nmqttbroker 10.0.0.2:1884\n\
                    mqttname dev1\nmqttuser u\nmqttpassword p\nnetreboot 0\nmqttbackoffms 250\n\
                    mqttkeepalive 10\nstartdelay 0\n";
        let config = hearth_config::parse(text, &["weather"]).expect("valid");
        let s = Settings::from_config(&config).expect("has a broker");
        assert_eq!((s.broker_host.as_str(), s.broker_port), ("10.0.0.2", 1884));
        assert_eq!(s.mqtt_user.as_deref(), Some("u"));
        assert_eq!(s.mqtt_password.as_deref(), Some("p"));
        assert_eq!(s.net.reboot_after, 0, "netreboot 0 = never");
        assert_eq!(s.mqtt.backoff_initial, 250);
        assert_eq!(s.mqtt.keepalive, 10_000);
        assert_eq!(s.mqtt.reboot_after, 600_000);
        assert_eq!(s.start_delay_max, 0);
        assert_eq!(s.name, "dev1");
    }

    #[test]
    fn tls_settings_come_from_the_config() {
        let ca = hearth_config::base64::encode(&[0x30, 2, 5, 0]);
        let key = hearth_config::base64::encode(&[0x30, 3, 2, 1, 7]);
        let text = alloc::format!(
            "profile weather\nssid Home Net\npassword secretpass\nmqttbroker mqtts://[fd00::2]\n\
             mqttname dev1\nmqttca {ca}\nmqttclientcert {ca}\nmqttclientkey {key}\n"
        );
        let config = hearth_config::parse(&text, &["weather"]).expect("valid");
        let s = Settings::from_config(&config).expect("has a broker");
        assert_eq!((s.broker_host.as_str(), s.broker_port), ("[fd00::2]", 8883));
        let tls = s.tls.clone().expect("tls");
        assert_eq!(tls.server_name, "fd00::2");
        assert_eq!(tls.ca.as_deref(), Some(&[0x30, 2, 5, 0][..]));
        assert_eq!(tls.pin, None);
        assert_eq!(tls.client_key.as_deref(), Some(&[0x30, 3, 2, 1, 7][..]));
        let shown = alloc::format!("{tls:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("[48, 3"),
            "{shown}"
        );
        let plain = hearth_config::parse(
            "profile weather\nssid H\nmqttbroker h\nmqttname d\n",
            &["weather"],
        )
        .expect("valid");
        assert_eq!(Settings::from_config(&plain).expect("broker").tls, None);
    }

    #[test]
    fn no_network_is_a_clear_error() {
        let text = "profile weather\nssid (none)\nmqttname dev1\n";
        let config = hearth_config::parse(text, &["weather"]).expect("valid");
        assert_eq!(
            Settings::from_config(&config),
            Err(SettingsError::NoNetwork)
        );
    }
}
