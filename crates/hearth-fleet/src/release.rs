//! `hearth release`: tell Home Assistant that a firmware is out. The image's version is
//! published, retained, on the release topic of each appliance the image runs
//! (`hearth/release/<appliance>`, [`hearth_core::discovery::release_topic`]); every device of
//! that appliance has an `update` entity that reads it, so Home Assistant shows "update
//! available" on each device that runs an older version. Nothing is installed: that stays
//! `hearth ota`, which signs with the owner's key.
//!
//! Each message is read back from the broker after it is published, so a broker that drops it
//! (an ACL without `topic write hearth/release/#` for this user) is an error, not a silent
//! success.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hearth_appliances::{Runs, APPLIANCES};
use hearth_core::discovery::{release_payload, release_topic};
use hearth_ota::manifest::ALL_APPLIANCES;

use crate::client::{BrokerArgs, Client, FleetError};
use crate::commands::{image_facts, ImageError};

/// What to announce beside the version.
#[derive(Debug, Clone, Default)]
pub struct Notes {
    /// One paragraph on what changed.
    pub summary: Option<String>,
    /// Where the full release notes are.
    pub url: Option<String>,
}

/// The longest summary: Home Assistant's limit for an update entity's release summary.
pub const MAX_SUMMARY: usize = 255;

/// Why a release could not be announced.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The image file could not be read.
    #[error("{}: {source}", path.display())]
    ReadImage {
        /// The image file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The image file is not an image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// `--appliance` (or the image) names no appliance that has an `update` entity.
    #[error("unknown appliance {0:?} (one of: {list})", list = announced().join(", "))]
    Appliance(String),
    /// The summary is longer than Home Assistant shows.
    #[error("the summary has {0} characters; at most {MAX_SUMMARY}")]
    Summary(usize),
    /// The broker: connecting, subscribing, publishing.
    #[error(transparent)]
    Broker(#[from] FleetError),
    /// The broker did not keep the message (an ACL that refuses this user the topic).
    #[error("the broker did not keep the release on {0} (does its ACL let this user write it?)")]
    NotKept(String),
}

/// The appliances with an MQTT connection, hence an `update` entity.
fn announced() -> Vec<&'static str> {
    APPLIANCES
        .iter()
        .filter(|a| !matches!(a.runs, Runs::Peripheral))
        .map(|a| a.name)
        .collect()
}

/// The release topics and their message for `image` (the appliance it says, or
/// `appliance`: `all` is every appliance with an `update` entity).
pub fn plan(
    image: &[u8],
    appliance: Option<&str>,
    notes: &Notes,
) -> Result<Vec<(String, String)>, ReleaseError> {
    let facts = image_facts(image, appliance)?;
    if let Some(s) = &notes.summary {
        let n = s.chars().count();
        if n > MAX_SUMMARY {
            return Err(ReleaseError::Summary(n));
        }
    }
    let names = if facts.appliance == ALL_APPLIANCES {
        announced()
    } else {
        let name = announced()
            .into_iter()
            .find(|n| *n == facts.appliance)
            .ok_or_else(|| ReleaseError::Appliance(facts.appliance.clone()))?;
        vec![name]
    };
    let payload = release_payload(
        &facts.version.to_string(),
        notes.summary.as_deref(),
        notes.url.as_deref(),
    );
    Ok(names
        .into_iter()
        .map(|n| (release_topic(n), payload.clone()))
        .collect())
}

/// Publish the release of `image_path` and read each message back; the topics.
pub fn release_run(
    broker: &BrokerArgs,
    image_path: &Path,
    appliance: Option<&str>,
    notes: &Notes,
) -> Result<Vec<String>, ReleaseError> {
    let image = std::fs::read(image_path).map_err(|source| ReleaseError::ReadImage {
        path: image_path.into(),
        source,
    })?;
    let messages = plan(&image, appliance, notes)?;
    let id = format!("hearth-release-{}", std::process::id());
    let mut c = Client::connect(broker, &id, Duration::from_secs(10))?;
    for (topic, payload) in &messages {
        c.publish(topic, payload.as_bytes(), true)?;
    }
    // Read back: a retained message arrives at once on subscription.
    c.subscribe("hearth/release/#")?;
    let mut kept = Vec::new();
    while let Ok(Some(m)) = c.recv(Duration::from_millis(1500)) {
        if messages
            .iter()
            .any(|(t, p)| *t == m.topic && p.as_bytes() == m.payload)
        {
            kept.push(m.topic);
        }
        if kept.len() == messages.len() {
            break;
        }
    }
    c.disconnect();
    if let Some((missing, _)) = messages.iter().find(|(t, _)| !kept.contains(t)) {
        return Err(ReleaseError::NotKept(missing.clone()));
    }
    Ok(messages.into_iter().map(|(t, _)| t).collect())
}

/// `hearth release`: exit 0 when every release message is on the broker, 1 when the broker
/// did not keep one, 2 for bad input.
pub fn release(
    broker: &BrokerArgs,
    image: &Path,
    appliance: Option<&str>,
    notes: &Notes,
) -> ExitCode {
    match release_run(broker, image, appliance, notes) {
        Ok(topics) => {
            for t in &topics {
                println!("{t}: released");
            }
            ExitCode::SUCCESS
        }
        Err(e @ (ReleaseError::Broker(_) | ReleaseError::NotKept(_))) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sim::firmware::{build, Health, ImageInfo};

    fn image(version: &str, appliance: &str) -> Vec<u8> {
        let info = ImageInfo {
            version: version.into(),
            appliance: appliance.into(),
            health: Health::Ok,
        };
        build(&info, 4096).expect("an image")
    }

    #[test]
    fn an_image_for_every_appliance_is_released_to_each_one_with_an_update_entity() {
        let notes = Notes {
            summary: Some("Faster \"boot\"".into()),
            url: None,
        };
        let all = plan(&image("0.3.1", "all"), None, &notes).unwrap();
        let topics: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
        assert!(topics.contains(&"hearth/release/weather"), "{topics:?}");
        assert!(
            topics.contains(&"hearth/release/scale_manager"),
            "{topics:?}"
        );
        assert!(
            !topics.iter().any(|t| t.ends_with("/scale_sensor")),
            "{topics:?}"
        );
        assert!(all
            .iter()
            .all(|(_, p)| p == r#"{"version":"0.3.1","summary":"Faster \"boot\""}"#));
        let one = plan(&image("0.3.1", "all"), Some("relay"), &Notes::default()).unwrap();
        assert_eq!(
            one,
            [(
                "hearth/release/relay".to_string(),
                r#"{"version":"0.3.1"}"#.to_string()
            )]
        );
    }

    #[test]
    fn unknown_appliances_long_summaries_and_non_images_are_refused() {
        let img = image("0.3.1", "all");
        let e = plan(&img, Some("toaster"), &Notes::default()).unwrap_err();
        assert!(e.to_string().contains("weather"), "{e}");
        let e = plan(&img, Some("scale_sensor"), &Notes::default()).unwrap_err();
        assert!(matches!(e, ReleaseError::Appliance(_)), "{e}");
        let long = Notes {
            summary: Some("é".repeat(MAX_SUMMARY + 1)),
            url: None,
        };
        assert!(matches!(
            plan(&img, None, &long),
            Err(ReleaseError::Summary(256))
        ));
        assert!(matches!(
            plan(b"not an image", None, &Notes::default()),
            Err(ReleaseError::Image(_))
        ));
    }
}
