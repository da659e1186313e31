//! The firmware manifest: what a signed [`Kind::Firmware`](crate::signed::Kind) envelope
//! carries.
//!
//! ```text
//! version: len u8 + "MAJOR.MINOR.PATCH" | size u32 LE | sha256 (32)
//! | chip: len u8 + name | appliance: len u8 + name ("all" = every appliance)
//! ```

use crate::signed::{Reader, Refusal};

/// Longest version, chip or appliance text.
pub const MAX_FIELD_LEN: usize = 24;
/// The appliance name of an image that contains every appliance.
pub const ALL_APPLIANCES: &str = "all";

/// A firmware version `MAJOR.MINOR.PATCH`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parse `MAJOR.MINOR.PATCH` (three decimal numbers, nothing else).
    pub fn parse(text: &str) -> Option<Self> {
        let mut it = text.split('.');
        let mut n = || -> Option<u32> {
            let part = it.next()?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let v = Version(n()?, n()?, n()?);
        it.next().is_none().then_some(v)
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest<'a> {
    /// The image's version.
    pub version: Version,
    /// The image's length in bytes.
    pub size: u32,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
    /// The chip it is built for (`esp32c3`, `esp32c6`, `sim`).
    pub chip: &'a str,
    /// The appliance it contains, or [`ALL_APPLIANCES`].
    pub appliance: &'a str,
}

/// What the device running the check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// Its chip.
    pub chip: &'a str,
    /// Its configured appliance.
    pub appliance: &'a str,
    /// The running firmware's version.
    pub running: Version,
    /// The size of the update slot.
    pub slot_size: u32,
}

impl<'a> Manifest<'a> {
    /// Parse a manifest body.
    pub fn parse(body: &'a [u8]) -> Result<Self, Refusal> {
        let mut r = Reader::new(body);
        let bad = |e: Refusal| match e {
            Refusal::Truncated => Refusal::BadManifest("truncated"),
            Refusal::TooLong => Refusal::BadManifest("field too long"),
            Refusal::NotUtf8 => Refusal::BadManifest("text is not UTF-8"),
            other => other,
        };
        let version = r.short_str(MAX_FIELD_LEN).map_err(bad)?;
        let version = Version::parse(version).ok_or(Refusal::BadManifest("bad version"))?;
        let size = r.u32().map_err(bad)?;
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(r.take(32).map_err(bad)?);
        let chip = r.short_str(MAX_FIELD_LEN).map_err(bad)?;
        let appliance = r.short_str(MAX_FIELD_LEN).map_err(bad)?;
        if !r.done() {
            return Err(Refusal::BadManifest("bytes after the last field"));
        }
        if size == 0 {
            return Err(Refusal::BadManifest("empty image"));
        }
        Ok(Manifest {
            version,
            size,
            sha256,
            chip,
            appliance,
        })
    }

    /// Is this image for `target`: its chip, its appliance (or all), newer than what runs,
    /// and small enough for the slot?
    pub fn check(&self, target: &Target<'_>) -> Result<(), Refusal> {
        if self.chip != target.chip {
            return Err(Refusal::WrongChip);
        }
        if self.appliance != ALL_APPLIANCES && self.appliance != target.appliance {
            return Err(Refusal::WrongAppliance);
        }
        if self.version <= target.running {
            return Err(Refusal::Downgrade);
        }
        if self.size > target.slot_size {
            return Err(Refusal::TooBig);
        }
        Ok(())
    }

    /// Encode a manifest body (the CLI's side).
    #[cfg(feature = "alloc")]
    pub fn encode(&self) -> Result<alloc::vec::Vec<u8>, Refusal> {
        use alloc::string::ToString;
        let version = self.version.to_string();
        let mut out = alloc::vec::Vec::new();
        for (i, field) in [version.as_str(), self.chip, self.appliance]
            .into_iter()
            .enumerate()
        {
            if field.len() > MAX_FIELD_LEN {
                return Err(Refusal::TooLong);
            }
            out.push(field.len() as u8);
            out.extend_from_slice(field.as_bytes());
            if i == 0 {
                out.extend_from_slice(&self.size.to_le_bytes());
                out.extend_from_slice(&self.sha256);
            }
        }
        Ok(out)
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    fn manifest() -> Manifest<'static> {
        Manifest {
            version: Version(1, 2, 3),
            size: 400_000,
            sha256: [7; 32],
            chip: "sim",
            appliance: "weather",
        }
    }

    fn target() -> Target<'static> {
        Target {
            chip: "sim",
            appliance: "weather",
            running: Version(1, 2, 2),
            slot_size: 1 << 20,
        }
    }

    #[test]
    fn versions_parse_strictly_and_compare_numerically() {
        assert_eq!(Version::parse("0.10.2"), Some(Version(0, 10, 2)));
        assert!(Version(0, 10, 0) > Version(0, 9, 9));
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1..2",
            "-1.2.3",
            "1.2.3-rc1",
            " 1.2.3",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Version::parse("99999999999.0.0"), None);
    }

    #[test]
    fn round_trip_and_checks() {
        let body = manifest().encode().unwrap();
        let m = Manifest::parse(&body).unwrap();
        assert_eq!(m, manifest());
        assert_eq!(m.check(&target()), Ok(()));
        let t = target();
        assert_eq!(
            m.check(&Target {
                chip: "esp32c3",
                ..t
            }),
            Err(Refusal::WrongChip)
        );
        assert_eq!(
            m.check(&Target {
                appliance: "relay",
                ..t
            }),
            Err(Refusal::WrongAppliance)
        );
        let all = Manifest {
            appliance: ALL_APPLIANCES,
            ..m
        };
        assert_eq!(
            all.check(&Target {
                appliance: "relay",
                ..t
            }),
            Ok(())
        );
        for running in [Version(1, 2, 3), Version(2, 0, 0)] {
            assert_eq!(m.check(&Target { running, ..t }), Err(Refusal::Downgrade));
        }
        assert_eq!(
            m.check(&Target {
                slot_size: 399_999,
                ..t
            }),
            Err(Refusal::TooBig)
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let body = manifest().encode().unwrap();
        for n in 0..body.len() {
            assert!(Manifest::parse(&body[..n]).is_err(), "length {n}");
        }
        let mut extra = body.clone();
        extra.push(0);
        assert!(Manifest::parse(&extra).is_err());
        let mut bad_version = body.clone();
        bad_version[1] = b'x';
        assert_eq!(
            Manifest::parse(&bad_version),
            Err(Refusal::BadManifest("bad version"))
        );
        let zero = Manifest {
            size: 0,
            ..manifest()
        }
        .encode()
        .unwrap();
        assert_eq!(
            Manifest::parse(&zero),
            Err(Refusal::BadManifest("empty image"))
        );
    }
}
