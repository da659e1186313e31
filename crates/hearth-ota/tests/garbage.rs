//! Whatever arrives over MQTT or sits in flash, the parsers answer with a value or a refusal,
//! never a panic; and a valid envelope with any byte changed never verifies.

use hearth_ota::manifest::{Manifest, Target, Version};
use hearth_ota::otadata;
use hearth_ota::signed::{self, Kind};
use proptest::prelude::*;

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let public = key().verifying_key().to_bytes();
        let _ = signed::parse(&bytes);
        let _ = signed::open(&bytes, &public);
        let _ = signed::accept(&bytes, Some(&public), Kind::Firmware, "dev", 0);
        if let Ok(m) = Manifest::parse(&bytes) {
            let _ = m.check(&Target { chip: "sim", appliance: "weather", running: Version(0, 1, 0), slot_size: 1 << 20 });
        }
        let mut entry = [0xFFu8; otadata::ENTRY_LEN];
        for (e, b) in entry.iter_mut().zip(&bytes) {
            *e = *b;
        }
        if let Some(e) = otadata::decode(&entry) {
            prop_assert!(e.seq >= 1 && e.slot() < 2);
        }
        let _ = signed::parse_hex_key(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn envelopes_survive_any_content_and_break_on_any_change(
        device in "[a-z0-9_-]{1,32}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
        issued in 1u64..u64::MAX,
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let public = key().verifying_key().to_bytes();
        let env = signed::seal(Kind::Config, issued, &device, &body, &key()).unwrap();
        let opened = signed::accept(&env, Some(&public), Kind::Config, &device, issued - 1).unwrap();
        prop_assert_eq!(opened.body, &body[..]);
        let mut bad = env.clone();
        bad[at.index(env.len())] ^= flip;
        prop_assert!(signed::open(&bad, &public).is_err());
    }
}
