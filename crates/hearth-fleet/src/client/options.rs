//! The broker options of the fleet commands, as a command line gives them, and how they
//! combine with the environment into one [`BrokerArgs`].

use std::path::PathBuf;

use super::{parse_pin, BrokerArgs, TlsArgs, BROKER_ENV, DEFAULT_TLS_PORT, PIN_ENV};

/// The broker options of one command line, before the environment fills the gaps: `--broker
/// [mqtt://|mqtts://]HOST[:PORT]`, `--user U`, `--password P`, and for TLS `--tls`, `--ca
/// FILE`, `--pin HEX`, `--client-cert FILE`, `--client-key FILE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerOptions {
    /// `--broker`.
    pub broker: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--password`.
    pub password: Option<String>,
    /// `--tls`.
    pub tls: bool,
    /// `--ca`.
    pub ca: Option<PathBuf>,
    /// `--pin`, as written.
    pub pin: Option<String>,
    /// `--client-cert`.
    pub client_cert: Option<PathBuf>,
    /// `--client-key`.
    pub client_key: Option<PathBuf>,
}

impl BrokerOptions {
    /// The broker to use: the environment's defaults ([`BrokerArgs::from_vars`],
    /// [`TlsArgs::from_vars`], read through `env`) overridden by these options. A malformed
    /// `$HEARTH_BROKER` is an error only when `--broker` does not replace it, a malformed
    /// `$HEARTH_PIN` only when TLS is on and `--pin` does not replace it. TLS is on with
    /// `--tls` or an `mqtts://` broker; it then needs `--ca` or `--pin` (or `$HEARTH_CA` /
    /// `$HEARTH_PIN`), and TLS options without TLS are an error.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<BrokerArgs, String> {
        let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
        let (mut tls, mut tls_env_error) = match TlsArgs::from_vars(&nonempty) {
            Ok(t) => (t, None),
            Err(e) => (TlsArgs::default(), Some(e)),
        };
        let mut address = nonempty(BROKER_ENV).and_then(|b| BrokerArgs::parse_broker(&b).ok());
        let (mut args, env_error) = match BrokerArgs::from_vars(env) {
            Ok(args) => (args, None),
            Err(e) => (
                // The rest of the environment still counts (the login, for one).
                BrokerArgs::from_vars(&|k| {
                    if k == BROKER_ENV || k == PIN_ENV {
                        None
                    } else {
                        env(k)
                    }
                })
                .unwrap_or_default(),
                Some(e),
            ),
        };
        if let Some(b) = &self.broker {
            let a = BrokerArgs::parse_broker(b).map_err(|e| format!("--broker: {e}"))?;
            args.port = a.port_or_default(a.tls == Some(true));
            args.host = a.host.clone();
            address = Some(a);
        } else if let Some(e) = env_error {
            return Err(format!("{e} (or give --broker HOST:PORT)"));
        }
        if let Some(user) = &self.user {
            if user.is_empty() {
                return Err("--user needs a user name".into());
            }
            args.user = Some(user.clone());
        }
        if let Some(password) = &self.password {
            args.password = Some(password.clone());
        }
        let mut tls_option = None;
        if let Some(pin) = &self.pin {
            tls.pin = Some(parse_pin(pin).map_err(|e| format!("--pin: {e}"))?);
            // The option replaces a malformed $HEARTH_PIN.
            tls_env_error = None;
            tls_option = Some("--pin");
        }
        for (name, given, slot) in [
            ("--ca", &self.ca, &mut tls.ca),
            ("--client-cert", &self.client_cert, &mut tls.client_cert),
            ("--client-key", &self.client_key, &mut tls.client_key),
        ] {
            if let Some(path) = given {
                if path.as_os_str().is_empty() {
                    return Err(format!("{name} needs a file"));
                }
                *slot = Some(path.clone());
                tls_option.get_or_insert(name);
            }
        }
        if args.password.is_some() && args.user.is_none() {
            return Err(
                "a password needs a user name: give --user U (or set HEARTH_MQTT_USER)".into(),
            );
        }
        let scheme = address.as_ref().and_then(|a| a.tls);
        if self.tls && scheme == Some(false) {
            return Err("--tls contradicts the mqtt:// broker; write mqtts://HOST[:PORT]".into());
        }
        if !(self.tls || scheme == Some(true)) {
            if let Some(option) = tls_option {
                return Err(format!(
                    "{option} is for TLS: add --tls, or write the broker as mqtts://HOST[:PORT]"
                ));
            }
            args.tls = None;
            return Ok(args);
        }
        if let Some(e) = tls_env_error {
            return Err(format!("{e} (or give --pin HEX)"));
        }
        args.port = match &address {
            Some(a) => a.port_or_default(true),
            None => DEFAULT_TLS_PORT,
        };
        if tls.ca.is_none() && tls.pin.is_none() {
            return Err(
                "TLS needs a way to verify the broker: --ca FILE (the CA certificate, PEM) or --pin HEX (or $HEARTH_CA / $HEARTH_PIN)"
                    .into(),
            );
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err("--client-cert and --client-key go together".into());
        }
        args.tls = Some(tls);
        Ok(args)
    }
}
