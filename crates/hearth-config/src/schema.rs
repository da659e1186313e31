//! The closed set of keys Hearth itself understands, the `KeySpec` extension point through
//! which a profile declares its own keys, and "did you mean" suggestions for typos.

/// A key that a profile adds to `config.txt` (e.g. a tank's `capacity`), passed to
/// [`parse_with`](crate::parse_with).
///
/// The value handed to `validator` is the trimmed text after the key, never `None` (which
/// means "absent" for every key). On rejection the validator returns what it expected, e.g.
/// `Err("expected a number of litres 1..=100000")`; that text ends up in the error message.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// The key as written in the file. Case-sensitive. A name that is also a Hearth key is
    /// shadowed by the Hearth key and never reaches the profile.
    pub name: &'static str,
    /// Whether a file without this key (or with `name None`) is rejected.
    pub required: bool,
    /// Checks one value; see above.
    pub validator: fn(&str) -> Result<(), &'static str>,
}

/// Every key the framework owns. Order is the canonical order of [`Config::to_text`](crate::Config::to_text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Profile,
    Flavor,
    Ssid,
    Password,
    WifiTxPower,
    NtpServer,
    MqttBroker,
    MqttName,
    MqttUser,
    MqttPassword,
    MqttKeepalive,
    MqttCa,
    MqttPin,
    MqttClientCert,
    MqttClientSecret,
    Watchdog,
    EspNowGroup,
    EspNowPsk,
    EspNowChannel,
    EspNowVersion,
    StartDelay,
    WdGrace,
    MayBlock,
    NetConnectTimeout,
    NetRetry,
    NetRetryFudge,
    NetReboot,
    MqttBackoffMs,
    MqttBackoffMaxMs,
    MqttReboot,
    UptimeEval,
    UptimeForce,
}

impl Key {
    pub(crate) const COUNT: usize = 32;

    pub(crate) const ALL: [Key; Key::COUNT] = [
        Key::Profile,
        Key::Flavor,
        Key::Ssid,
        Key::Password,
        Key::WifiTxPower,
        Key::NtpServer,
        Key::MqttBroker,
        Key::MqttName,
        Key::MqttUser,
        Key::MqttPassword,
        Key::MqttKeepalive,
        Key::MqttCa,
        Key::MqttPin,
        Key::MqttClientCert,
        Key::MqttClientSecret,
        Key::Watchdog,
        Key::EspNowGroup,
        Key::EspNowPsk,
        Key::EspNowChannel,
        Key::EspNowVersion,
        Key::StartDelay,
        Key::WdGrace,
        Key::MayBlock,
        Key::NetConnectTimeout,
        Key::NetRetry,
        Key::NetRetryFudge,
        Key::NetReboot,
        Key::MqttBackoffMs,
        Key::MqttBackoffMaxMs,
        Key::MqttReboot,
        Key::UptimeEval,
        Key::UptimeForce,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Key::Profile => "profile",
            Key::Flavor => "flavor",
            Key::Ssid => "ssid",
            Key::Password => "password",
            Key::WifiTxPower => "wifitxpower",
            Key::NtpServer => "ntpserver",
            Key::MqttBroker => "mqttbroker",
            Key::MqttName => "mqttname",
            Key::MqttUser => "mqttuser",
            Key::MqttPassword => "mqttpassword",
            Key::MqttKeepalive => "mqttkeepalive",
            Key::MqttCa => "mqttca",
            Key::MqttPin => "mqttpin",
            Key::MqttClientCert => "mqttclientcert",
            Key::MqttClientSecret => "mqttclientkey",
            Key::Watchdog => "watchdog",
            Key::EspNowGroup => "espnowgroup",
            Key::EspNowPsk => "espnowpsk",
            Key::EspNowChannel => "espnowchannel",
            Key::EspNowVersion => "espnowversion",
            Key::StartDelay => "startdelay",
            Key::WdGrace => "wdgrace",
            Key::MayBlock => "mayblock",
            Key::NetConnectTimeout => "netconnecttimeout",
            Key::NetRetry => "netretry",
            Key::NetRetryFudge => "netretryfudge",
            Key::NetReboot => "netreboot",
            Key::MqttBackoffMs => "mqttbackoffms",
            Key::MqttBackoffMaxMs => "mqttbackoffmaxms",
            Key::MqttReboot => "mqttreboot",
            Key::UptimeEval => "uptimeeval",
            Key::UptimeForce => "uptimeforce",
        }
    }

    /// Position in [`Key::ALL`], used to index per-key tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn from_name(name: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// Longest key (in bytes) worth comparing; longer unknown keys get no suggestion.
const SUGGEST_MAX_LEN: usize = 64;

/// The known key closest to `unknown`, if it is a plausible typo: edit distance (with
/// adjacent transpositions, ignoring ASCII case) at most 1 for keys up to 4 characters and
/// at most 2 beyond. Ties go to the earlier candidate.
pub(crate) fn suggest<'k>(
    unknown: &str,
    candidates: impl Iterator<Item = &'k str>,
) -> Option<&'k str> {
    if unknown.len() > SUGGEST_MAX_LEN {
        return None;
    }
    let len = unknown.chars().count();
    let limit = if len <= 4 { 1 } else { 2 };
    let mut best: Option<(usize, &'k str)> = None;
    for cand in candidates {
        if cand.len() > SUGGEST_MAX_LEN || cand.chars().count().abs_diff(len) > limit {
            continue;
        }
        let d = distance(unknown, cand);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance between two short strings, comparing chars with ASCII
/// case folded. Uses three rows of `b.len() + 1` cells.
fn distance(a: &str, b: &str) -> usize {
    use alloc::vec;
    let a: alloc::vec::Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: alloc::vec::Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut before = vec![0usize; b.len() + 1];
    let mut prev: alloc::vec::Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(before[j - 2] + 1);
            }
            cur[j] = v;
        }
        core::mem::swap(&mut before, &mut prev);
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, k) in Key::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(Key::from_name(k.name()), Some(*k));
        }
        assert_eq!(Key::from_name("SSID"), None);
    }

    #[test]
    fn distances() {
        assert_eq!(distance("mqtbroker", "mqttbroker"), 1);
        assert_eq!(distance("ssdi", "ssid"), 1);
        assert_eq!(distance("SSID", "ssid"), 0);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let names = || Key::ALL.iter().map(|k| k.name());
        assert_eq!(suggest("mqtbroker", names()), Some("mqttbroker"));
        assert_eq!(suggest("mqtt_name", names()), Some("mqttname"));
        assert_eq!(suggest("pasword", names()), Some("password"));
        assert_eq!(suggest("SSID", names()), Some("ssid"));
        assert_eq!(suggest("broker", names()), None);
        assert_eq!(suggest("zz", names()), None);
        let huge = "m".repeat(10_000);
        assert_eq!(suggest(&huge, names()), None);
    }
}
