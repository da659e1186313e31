//! Behaviour tests of `KvStore`: round trips, typing, limits, garbage collection, persistence,
//! and the corruption policy (scrub, format at open, wipe during an operation).

use std::collections::HashMap;

use super::*;
use crate::keys::{BOOT_COUNT, CONNLOST, MQTTLOST, REBOOT_REASON, STRESS};
use crate::test_support::{block_on, Rng, SharedFlash, TempDir};
use crate::{FileFlash, MemFlash};

const T0: Key = Key::new(0xFF00);
const T1: Key = Key::new(0xFF01);
const T2: Key = Key::new(0xFF02);

fn open_mem(flash: &mut MemFlash) -> KvStore<&mut MemFlash> {
    let range = 0..flash.image().len() as u32;
    block_on(KvStore::open(flash, range)).unwrap()
}

#[test]
fn fresh_flash_opens_clean_and_every_key_is_missing() {
    let mut flash = MemFlash::new(4);
    let mut store = open_mem(&mut flash);
    assert_eq!(store.report(), OpenReport::default());
    assert_eq!(store.report().to_string(), "storage opened cleanly");
    block_on(async {
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
        assert_eq!(store.get_bytes(STRESS, &mut [0; 64]).await, Ok(None));
        assert_eq!(store.get_str::<64>(REBOOT_REASON).await, Ok(None));
        assert_eq!(store.get_bytes(T0, &mut []).await, Ok(None));
    });
    assert!(
        flash.image().iter().all(|b| *b == 0xFF),
        "reads wrote nothing"
    );
}

#[test]
fn every_type_round_trips() {
    let mut flash = MemFlash::new(4);
    let mut store = open_mem(&mut flash);
    block_on(async {
        store.set_u32(MQTTLOST, 0xDEAD_BEEF).await.unwrap();
        assert_eq!(store.get_u32(MQTTLOST).await, Ok(Some(0xDEAD_BEEF)));
        assert_eq!(store.incr_u32(BOOT_COUNT).await, Ok(1));
        assert_eq!(store.incr_u32(BOOT_COUNT).await, Ok(2));
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(Some(2)));
        store.set_u32(CONNLOST, u32::MAX).await.unwrap();
        assert_eq!(store.incr_u32(CONNLOST).await, Ok(u32::MAX), "saturates");

        store
            .set_str(REBOOT_REASON, "mqtt: broker gone")
            .await
            .unwrap();
        let text = store.get_str::<64>(REBOOT_REASON).await.unwrap().unwrap();
        assert_eq!(text.as_str(), "mqtt: broker gone");
        let mut buf = [0u8; 64];
        let n = store.get_bytes(REBOOT_REASON, &mut buf).await.unwrap();
        assert_eq!(
            &buf[..n.unwrap()],
            b"mqtt: broker gone",
            "text reads as bytes"
        );
        store.set_str(REBOOT_REASON, "").await.unwrap();
        let text = store.get_str::<64>(REBOOT_REASON).await.unwrap().unwrap();
        assert_eq!(text.as_str(), "");

        let blob: Vec<u8> = (0..64).collect();
        store.set_bytes(STRESS, &blob).await.unwrap();
        assert_eq!(store.get_bytes(STRESS, &mut buf).await, Ok(Some(64)));
        assert_eq!(&buf[..], &blob[..]);

        store.set_bytes(T0, &[]).await.unwrap();
        assert_eq!(store.get_bytes(T0, &mut []).await, Ok(Some(0)));
        let max = vec![0xA5; MAX_VALUE_LEN];
        store.set_bytes(T1, &max).await.unwrap();
        let mut big = [0u8; MAX_VALUE_LEN];
        assert_eq!(store.get_bytes(T1, &mut big).await, Ok(Some(MAX_VALUE_LEN)));
        assert_eq!(&big[..], &max[..]);
        store.set_str(T2, "ünïcödé").await.unwrap();
        let text = store.get_str::<16>(T2).await.unwrap().unwrap();
        assert_eq!(text.as_str(), "ünïcödé");
    });
}

#[test]
fn remove_hides_a_key_until_written_again() {
    let mut flash = MemFlash::new(4);
    {
        let mut store = open_mem(&mut flash);
        block_on(async {
            store.set_str(REBOOT_REASON, "command").await.unwrap();
            store.remove(REBOOT_REASON).await.unwrap();
            assert_eq!(store.get_str::<64>(REBOOT_REASON).await, Ok(None));
            assert_eq!(store.get_bytes(REBOOT_REASON, &mut [0; 64]).await, Ok(None));
            store.set_u32(T0, 5).await.unwrap();
            store.remove(T0).await.unwrap();
            assert_eq!(store.incr_u32(T0).await, Ok(1), "removed counts as 0");
        });
    }
    let before = flash.image().to_vec();
    {
        let mut store = open_mem(&mut flash);
        block_on(async {
            assert_eq!(store.get_str::<64>(REBOOT_REASON).await, Ok(None));
            store.remove(REBOOT_REASON).await.unwrap();
            store.remove(STRESS).await.unwrap();
        });
    }
    assert_eq!(
        flash.image(),
        &before[..],
        "removing a missing key writes nothing"
    );
}

#[test]
fn wrong_types_are_clear_errors() {
    let mut flash = MemFlash::new(4);
    let mut store = open_mem(&mut flash);
    block_on(async {
        store.set_u32(T0, 7).await.unwrap();
        store.set_bytes(T1, b"abc").await.unwrap();
        store.set_str(T2, "text").await.unwrap();
        let mut buf = [0u8; 16];

        assert_eq!(
            store.get_bytes(T0, &mut buf).await,
            Err(StoreError::WrongType {
                key: T0,
                requested: ValueKind::Bytes,
                actual: ValueKind::U32
            })
        );
        assert_eq!(
            store.get_str::<16>(T0).await,
            Err(StoreError::WrongType {
                key: T0,
                requested: ValueKind::Str,
                actual: ValueKind::U32
            })
        );
        assert_eq!(
            store.get_u32(T1).await,
            Err(StoreError::WrongType {
                key: T1,
                requested: ValueKind::U32,
                actual: ValueKind::Bytes
            })
        );
        assert_eq!(
            store.incr_u32(T2).await,
            Err(StoreError::WrongType {
                key: T2,
                requested: ValueKind::U32,
                actual: ValueKind::Str
            })
        );
        assert_eq!(
            store.get_str::<16>(T1).await,
            Err(StoreError::WrongType {
                key: T1,
                requested: ValueKind::Str,
                actual: ValueKind::Bytes
            })
        );
        // An undeclared key may change type on overwrite.
        store.set_bytes(T0, b"now bytes").await.unwrap();
        assert_eq!(store.get_bytes(T0, &mut buf).await, Ok(Some(9)));

        // Declared types of well-known keys are enforced on writes.
        let err = store.set_u32(REBOOT_REASON, 1).await.unwrap_err();
        assert_eq!(
            err,
            StoreError::WrongType {
                key: REBOOT_REASON,
                requested: ValueKind::U32,
                actual: ValueKind::Str
            }
        );
        assert_eq!(
            err.to_string(),
            "REBOOT_REASON (0x0001) holds text, not u32"
        );
        assert!(matches!(
            store.set_str(BOOT_COUNT, "1").await,
            Err(StoreError::WrongType { .. })
        ));
        assert!(matches!(
            store.set_bytes(BOOT_COUNT, &[1, 0, 0, 0]).await,
            Err(StoreError::WrongType { .. })
        ));
        assert!(matches!(
            store.set_u32(STRESS, 1).await,
            Err(StoreError::WrongType { .. })
        ));
        // Bytes to a text key are accepted as text only when they are UTF-8.
        assert!(matches!(
            store.set_bytes(REBOOT_REASON, &[0xC3]).await,
            Err(StoreError::WrongType { .. })
        ));
        store.set_bytes(REBOOT_REASON, b"watchdog").await.unwrap();
        let text = store.get_str::<64>(REBOOT_REASON).await.unwrap().unwrap();
        assert_eq!(text.as_str(), "watchdog");
        // Refused writes changed nothing.
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
    });
}

#[test]
fn lengths_are_checked_before_writing() {
    let mut flash = MemFlash::new(4);
    let mut store = open_mem(&mut flash);
    block_on(async {
        assert_eq!(
            store.set_bytes(STRESS, &[0; 7]).await,
            Err(StoreError::ValueTooShort {
                key: STRESS,
                len: 7,
                min: 8
            })
        );
        assert_eq!(
            store.set_bytes(STRESS, &[0; 65]).await,
            Err(StoreError::ValueTooLarge {
                key: STRESS,
                len: 65,
                max: 64
            })
        );
        let long = "x".repeat(65);
        assert!(matches!(
            store.set_str(REBOOT_REASON, &long).await,
            Err(StoreError::ValueTooLarge { max: 64, .. })
        ));
        assert_eq!(
            store.set_bytes(T0, &[0; MAX_VALUE_LEN + 1]).await,
            Err(StoreError::ValueTooLarge {
                key: T0,
                len: MAX_VALUE_LEN + 1,
                max: MAX_VALUE_LEN
            })
        );
        assert_eq!(store.get_bytes(STRESS, &mut [0; 64]).await, Ok(None));

        store.set_bytes(T1, &[1; 40]).await.unwrap();
        assert_eq!(
            store.get_bytes(T1, &mut [0; 39]).await,
            Err(StoreError::BufferTooSmall {
                key: T1,
                needed: 40
            })
        );
        store.set_str(T2, "twelve bytes").await.unwrap();
        assert_eq!(
            store.get_str::<11>(T2).await,
            Err(StoreError::BufferTooSmall {
                key: T2,
                needed: 12
            })
        );
        assert_eq!(store.max_value_len(), MAX_VALUE_LEN);
    });
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    U32(u32),
    Bytes(Vec<u8>),
}

#[test]
fn many_overwrites_force_garbage_collection_and_keep_every_value() {
    let mut flash = MemFlash::new(4);
    let mut rng = Rng::new(7);
    let keys = [BOOT_COUNT, CONNLOST, MQTTLOST, STRESS, T0, T1, T2];
    let mut model: HashMap<Key, Val> = HashMap::new();
    let mut written = 0usize;
    {
        let mut store = open_mem(&mut flash);
        block_on(async {
            for round in 0..3000 {
                let key = keys[rng.below(keys.len())];
                let val = match key {
                    BOOT_COUNT | CONNLOST => Val::U32(store.incr_u32(key).await.unwrap()),
                    MQTTLOST => {
                        let v = rng.next_u32();
                        store.set_u32(key, v).await.unwrap();
                        Val::U32(v)
                    }
                    _ => {
                        let (lo, hi) = if key == STRESS { (8, 64) } else { (0, 120) };
                        let mut v = vec![0; rng.between(lo, hi)];
                        rng.fill(&mut v);
                        store.set_bytes(key, &v).await.unwrap();
                        Val::Bytes(v)
                    }
                };
                written += 11
                    + 4
                    + match &val {
                        Val::U32(_) => 4,
                        Val::Bytes(b) => b.len(),
                    };
                model.insert(key, val);
                if round % 97 == 0 {
                    check_all(&mut store, &model).await;
                }
            }
            check_all(&mut store, &model).await;
        });
    }
    assert!(
        written > 5 * flash.image().len(),
        "the workload cycled through the sectors many times ({written} bytes)"
    );
    let mut store = open_mem(&mut flash);
    assert_eq!(store.report(), OpenReport::default());
    block_on(check_all(&mut store, &model));
}

async fn check_all<F: NorFlash>(store: &mut KvStore<F>, model: &HashMap<Key, Val>) {
    for (key, val) in model {
        match val {
            Val::U32(v) => assert_eq!(store.get_u32(*key).await, Ok(Some(*v)), "{key}"),
            Val::Bytes(v) => {
                let mut buf = [0u8; MAX_VALUE_LEN];
                let n = store.get_bytes(*key, &mut buf).await.unwrap();
                assert_eq!(n.map(|n| &buf[..n]), Some(&v[..]), "{key}");
            }
        }
    }
}

#[test]
fn too_much_live_data_is_full_not_a_crash() {
    let mut flash = MemFlash::new(2);
    let mut store = open_mem(&mut flash);
    block_on(async {
        let mut stored = Vec::new();
        let result = loop {
            let key = Key::new(0xFF00 + stored.len() as u16);
            match store.set_bytes(key, &[stored.len() as u8; 200]).await {
                Ok(()) => stored.push(key),
                Err(e) => break e,
            }
            assert!(stored.len() < 100, "never reported full");
        };
        assert_eq!(result, StoreError::Full);
        assert!(stored.len() >= 15, "one sector of live data fits");
        for (i, key) in stored.iter().enumerate() {
            let mut buf = [0u8; 200];
            assert_eq!(store.get_bytes(*key, &mut buf).await, Ok(Some(200)));
            assert_eq!(buf, [i as u8; 200]);
        }
        // A full store stays readable; a new value cannot be written before the old one is
        // dropped, so only a factory reset makes room.
        assert_eq!(
            store.set_bytes(stored[0], &[0xEE; 200]).await,
            Err(StoreError::Full)
        );
        store.erase_all().await.unwrap();
        store.set_bytes(stored[0], &[0xEE; 200]).await.unwrap();
    });
}

#[test]
fn bad_ranges_are_refused() {
    let mut flash = MemFlash::new(40);
    for range in [
        0..4096,
        100..8192,
        0..8000,
        4096..4096,
        Range {
            start: 8192,
            end: 4096,
        },
        0..33 * 4096,
        36 * 4096..42 * 4096,
    ] {
        let result = block_on(KvStore::open(&mut flash, range.clone()));
        assert_eq!(
            result.err(),
            Some(StoreError::BadRange {
                start: range.start,
                end: range.end
            }),
            "{range:?}"
        );
    }
    let store = block_on(KvStore::open(&mut flash, 4096..(4096 + 32 * 4096))).unwrap();
    assert_eq!(store.range(), 4096..(4096 + 32 * 4096));
    assert!(flash.image().iter().all(|b| *b == 0xFF), "nothing written");
}

#[test]
fn store_in_the_middle_of_a_flash_leaves_the_rest_alone() {
    let mut flash = MemFlash::new(8);
    flash.image_mut()[..4096].fill(0x11);
    flash.image_mut()[6 * 4096..].fill(0x22);
    {
        let mut store = block_on(KvStore::open(&mut flash, 4096..6 * 4096)).unwrap();
        block_on(async {
            for i in 0..2000u32 {
                store.set_u32(T0, i).await.unwrap();
            }
            store.erase_all().await.unwrap();
            store.set_u32(T1, 1).await.unwrap();
        });
    }
    assert!(flash.image()[..4096].iter().all(|b| *b == 0x11));
    assert!(flash.image()[6 * 4096..].iter().all(|b| *b == 0x22));
}

#[test]
fn values_persist_in_a_file_flash_across_reopen() {
    let dir = TempDir::new("store-persist");
    let path = dir.join("flash.bin");
    for boot in 1..=3u32 {
        let flash = FileFlash::open_or_create(&path, 16 * 4096).unwrap();
        let mut store = block_on(KvStore::open(flash, 8 * 4096..12 * 4096)).unwrap();
        assert_eq!(store.report(), OpenReport::default());
        block_on(async {
            assert_eq!(store.incr_u32(BOOT_COUNT).await, Ok(boot));
            if boot > 1 {
                let reason = store.get_str::<64>(REBOOT_REASON).await.unwrap().unwrap();
                assert_eq!(reason.as_str(), format!("boot {}", boot - 1));
            }
            store
                .set_str(REBOOT_REASON, &format!("boot {boot}"))
                .await
                .unwrap();
        });
    }
}

#[test]
fn erase_all_is_a_factory_reset() {
    let mut flash = MemFlash::new(3);
    let mut store = open_mem(&mut flash);
    block_on(async {
        store.set_u32(BOOT_COUNT, 9).await.unwrap();
        store.erase_all().await.unwrap();
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
        store.set_u32(BOOT_COUNT, 10).await.unwrap();
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(Some(10)));
    });
    let mut store = open_mem(&mut flash);
    assert_eq!(block_on(store.get_u32(BOOT_COUNT)), Ok(Some(10)));
}

/// Write an item in the map's own format but with a value encoding this firmware does not
/// know, as a newer firmware might have.
#[test]
fn values_in_an_unknown_encoding_are_reported_and_can_be_replaced() {
    let mut flash = MemFlash::new(4);
    block_on(async {
        let mut map = MapStorage::<Key, _, _>::new(
            &mut flash,
            MapConfig::new(0..4 * 4096),
            Cache::new_uncached(),
        );
        let mut buf = [0u8; 64];
        map.store_item(&mut buf, &T0, &&[0x7Eu8, 1, 2][..])
            .await
            .unwrap();
        map.store_item(&mut buf, &T1, &&[0x01u8, 1, 2][..])
            .await
            .unwrap();
    });
    let mut store = open_mem(&mut flash);
    assert_eq!(
        store.report(),
        OpenReport::default(),
        "not a reason to format"
    );
    block_on(async {
        assert_eq!(
            store.get_u32(T0).await,
            Err(StoreError::Undecodable { key: T0 })
        );
        assert_eq!(
            store.get_bytes(T1, &mut [0; 8]).await,
            Err(StoreError::Undecodable { key: T1 })
        );
        store.remove(T0).await.unwrap();
        assert_eq!(store.get_u32(T0).await, Ok(None));
        store.set_u32(T1, 3).await.unwrap();
        assert_eq!(store.get_u32(T1).await, Ok(Some(3)));
    });
}

fn fill_store(flash: &mut MemFlash) -> HashMap<Key, Val> {
    let mut store = open_mem(flash);
    let mut model = HashMap::new();
    block_on(async {
        for i in 0..150u32 {
            store.set_u32(BOOT_COUNT, i).await.unwrap();
            let blob = vec![i as u8; 60];
            store.set_bytes(T0, &blob).await.unwrap();
            model.insert(BOOT_COUNT, Val::U32(i));
            model.insert(T0, Val::Bytes(blob));
        }
    });
    model
}

#[test]
fn dirty_unused_sectors_are_scrubbed_without_losing_data() {
    let mut flash = MemFlash::new(4);
    let model = fill_store(&mut flash);
    // One sector is unused (blank). Put stale bits in its middle, as an interrupted erase or
    // foreign data would.
    let blank = flash
        .image()
        .chunks(4096)
        .position(|sector| sector.iter().all(|b| *b == 0xFF))
        .expect("a blank sector");
    flash.image_mut()[blank * 4096 + 1000..][..100].fill(0x00);

    let mut store = open_mem(&mut flash);
    let report = store.report();
    assert_eq!(report.formatted, None);
    assert_eq!(report.scrubbed_pages, 1);
    assert!(report.to_string().contains("1 sector(s)"), "{report}");
    block_on(async {
        check_all(&mut store, &model).await;
        // Fill through the scrubbed sector; everything reads back.
        for i in 0..400u32 {
            store.set_bytes(T1, &[i as u8; 48]).await.unwrap();
            let mut buf = [0u8; 48];
            assert_eq!(store.get_bytes(T1, &mut buf).await, Ok(Some(48)));
            assert_eq!(buf, [i as u8; 48]);
        }
        check_all(&mut store, &model).await;
    });
}

#[test]
fn foreign_data_is_formatted_and_reported() {
    // ESP-IDF NVS-like sectors: state word "active" (one zero bit), entries after it.
    let mut flash = MemFlash::new(4);
    let mut rng = Rng::new(99);
    for sector in flash.image_mut().chunks_mut(4096) {
        rng.fill(sector);
        sector[..4].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        sector[4092..].copy_from_slice(&[0xFF; 4]);
    }
    let mut store = open_mem(&mut flash);
    let report = store.report();
    assert!(
        report.is_formatted() || report.scrubbed_pages == 4,
        "{report:?}"
    );
    block_on(async {
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
        store.set_u32(BOOT_COUNT, 1).await.unwrap();
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(Some(1)));
    });
}

#[test]
fn random_garbage_is_formatted_and_the_store_works_afterwards() {
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let mut flash = MemFlash::new(2 + rng.below(5));
        rng.fill(flash.image_mut());
        let mut store = open_mem(&mut flash);
        let report = store.report();
        assert_eq!(
            report.formatted,
            Some(FormatReason::Corrupted),
            "seed {seed}: {report:?}"
        );
        assert!(report.to_string().contains("all stored values were lost"));
        block_on(async {
            assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
            assert_eq!(store.incr_u32(BOOT_COUNT).await, Ok(1));
            store.set_bytes(STRESS, &[seed as u8; 32]).await.unwrap();
        });
        let mut store = open_mem(&mut flash);
        assert_eq!(store.report(), OpenReport::default(), "seed {seed}");
        assert_eq!(block_on(store.get_u32(BOOT_COUNT)), Ok(Some(1)));
    }
}

/// Random damage to a store in use: `open` must succeed, and afterwards every key reads
/// without an error, and writes work (at worst after one `Wiped`).
#[test]
fn scribbles_over_a_store_never_break_open() {
    for seed in 0..60 {
        let mut rng = Rng::new(1000 + seed);
        let mut flash = MemFlash::new(4);
        fill_store(&mut flash);
        for _ in 0..rng.between(1, 6) {
            let len = rng.between(1, 600);
            let at = rng.below(flash.image().len() - len);
            rng.fill(&mut flash.image_mut()[at..at + len]);
        }
        let mut store = open_mem(&mut flash);
        block_on(async {
            for key in [BOOT_COUNT, T0] {
                let mut buf = [0u8; MAX_VALUE_LEN];
                let read = if key == BOOT_COUNT {
                    store.get_u32(key).await.map(|_| ())
                } else {
                    store.get_bytes(key, &mut buf).await.map(|_| ())
                };
                assert!(
                    matches!(read, Ok(()) | Err(StoreError::Wiped(_))),
                    "seed {seed}: {read:?}"
                );
            }
            for i in 0..200u32 {
                let mut result = store.set_u32(T1, i).await;
                if let Err(StoreError::Wiped(_)) = result {
                    result = store.set_u32(T1, i).await;
                }
                assert_eq!(result, Ok(()), "seed {seed}");
                assert_eq!(store.get_u32(T1).await, Ok(Some(i)), "seed {seed}");
            }
        });
    }
}

#[test]
fn corruption_met_during_an_operation_wipes_and_says_so() {
    let shared = SharedFlash::new(MemFlash::new(4), false);
    let mut store = block_on(KvStore::open(shared.clone(), 0..4 * 4096)).unwrap();
    block_on(async {
        store.set_u32(BOOT_COUNT, 5).await.unwrap();
        store.set_bytes(STRESS, &[1; 16]).await.unwrap();
        // Behind the store's back: every sector now looks closed and holds no valid item.
        shared.0.borrow_mut().flash.image_mut().fill(0x00);
        let err = store.get_u32(BOOT_COUNT).await.unwrap_err();
        assert_eq!(err, StoreError::Wiped(FormatReason::Corrupted));
        assert!(
            err.to_string().contains("all stored values were lost"),
            "{err}"
        );
        // The store works again at once.
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(None));
        store.set_u32(BOOT_COUNT, 6).await.unwrap();
        assert_eq!(store.get_u32(BOOT_COUNT).await, Ok(Some(6)));
    });
    let mut store = block_on(KvStore::open(shared.clone(), 0..4 * 4096)).unwrap();
    assert_eq!(store.report(), OpenReport::default());
    assert_eq!(block_on(store.get_u32(BOOT_COUNT)), Ok(Some(6)));
}

#[test]
fn flash_errors_are_passed_on_not_treated_as_corruption() {
    let mut flash = MemFlash::new(4);
    let model = fill_store(&mut flash);
    let shared = SharedFlash::new(flash, false);
    let before = shared.image();

    shared.0.borrow_mut().fail = true;
    let result = block_on(KvStore::open(shared.clone(), 0..4 * 4096));
    assert_eq!(
        result.err(),
        Some(StoreError::Flash(NorFlashErrorKind::Other))
    );
    assert_eq!(shared.image(), before, "an I/O error never formats");

    shared.0.borrow_mut().fail = false;
    let mut store = block_on(KvStore::open(shared.clone(), 0..4 * 4096)).unwrap();
    block_on(async {
        shared.0.borrow_mut().fail = true;
        assert_eq!(
            store.get_u32(BOOT_COUNT).await,
            Err(StoreError::Flash(NorFlashErrorKind::Other))
        );
        assert_eq!(
            store.set_u32(BOOT_COUNT, 1).await,
            Err(StoreError::Flash(NorFlashErrorKind::Other))
        );
        shared.0.borrow_mut().fail = false;
        check_all(&mut store, &model).await;
    });
    assert_eq!(
        StoreError::Flash(NorFlashErrorKind::Other).to_string(),
        "flash error: An implementation specific error occurred"
    );
}

#[test]
fn ram_footprint() {
    let store = std::mem::size_of::<KvStore<MemFlash>>();
    let mut flash = MemFlash::new(4);
    let open = std::mem::size_of_val(&KvStore::open(&mut flash, 0..4 * 4096));
    println!("KvStore: {store} bytes, open future: {open} bytes");
    assert!(store < 5 * 1024, "{store}");
}
