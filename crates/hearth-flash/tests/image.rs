//! The board image built from the real firmware ELF: every part lands where the bootloader and
//! the firmware will look for it. Needs the release firmware, which `scripts/test.sh` builds
//! first (through `scripts/firmware.sh`).

use std::path::PathBuf;

use hearth_flash::{build_image, merge, save_image, FlashError, Target};

fn firmware(target: Target) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let elf = root.join(format!(
        "target/{}/release/hearth-firmware",
        target.triple()
    ));
    std::fs::read(&elf).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the firmware first with scripts/firmware.sh (scripts/test.sh does)",
            elf.display()
        )
    })
}

const CONFIG: &str = "profile weather\nssid Test Net\npassword test-passphrase\nmqttbroker 10.1.2.3\nmqttname imgtest\n";

fn check(target: Target) {
    let image = build_image(target, &firmware(target), CONFIG).expect("image builds");
    let flash = merge(&image);
    // Second-stage bootloader at 0x0: an ESP image header (magic 0xE9).
    assert_eq!(flash[0], 0xE9, "bootloader magic");
    // Partition table at 0x8000: entries start with 0xAA 0x50.
    assert_eq!(
        &flash[0x8000..0x8002],
        &[0xAA, 0x50],
        "partition table magic"
    );
    let table = &flash[0x8000..0x8000 + 0xC00];
    let names: Vec<String> = table
        .chunks(32)
        .take_while(|e| e[..2] == [0xAA, 0x50])
        .map(|e| {
            String::from_utf8_lossy(&e[12..28])
                .trim_end_matches('\0')
                .to_string()
        })
        .collect();
    for name in ["otadata", "ota_0", "ota_1", "hearth", "config"] {
        assert!(
            names.iter().any(|n| n == name),
            "partition {name} missing from {names:?}"
        );
    }
    // The app in ota_0 at 0x10000: image magic, and the ESP-IDF app descriptor right after the
    // image and first segment headers (24 + 8 bytes), magic word 0xABCD5432.
    assert_eq!(flash[0x10000], 0xE9, "app image magic");
    assert_eq!(
        &flash[0x10020..0x10024],
        &0xABCD_5432u32.to_le_bytes(),
        "app descriptor magic"
    );
    assert!(
        image.app_size > 100_000 && image.app_size < 0x1E0000,
        "app size {}",
        image.app_size
    );
    // The config partition holds the config, readable by the firmware's decoder.
    let config = &flash[0x3E0000..];
    assert_eq!(hearth_config::blob::decode(config), Ok(CONFIG));
}

#[test]
fn esp32c3_image_has_every_part_in_place() {
    check(Target::Esp32c3);
}

#[test]
fn esp32c6_image_has_every_part_in_place() {
    check(Target::Esp32c6);
}

#[test]
fn an_invalid_config_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("hearth-flash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.txt");
    std::fs::write(&cfg, "profile weather\nmqttbroker\n").unwrap();
    let out = dir.join("out.bin");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let elf = root.join("target/riscv32imc-unknown-none-elf/release/hearth-firmware");
    match save_image(Target::Esp32c3, &elf, &cfg, &out) {
        Err(FlashError::Config(msg)) => {
            assert!(msg.contains("config.txt:2:"), "{msg}");
            assert!(msg.contains("nothing was written"), "{msg}");
        }
        other => panic!(
            "expected a config error, got {:?}",
            other.map(|i| i.app_size)
        ),
    }
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_larger_than_its_partition_is_refused() {
    let mut big = String::from(CONFIG);
    while big.len() < 9000 {
        big.push_str("# padding comment line to make the config larger than its partition\n");
    }
    match build_image(Target::Esp32c3, &firmware(Target::Esp32c3), &big) {
        Err(FlashError::ConfigTooLarge { need, room }) => assert!(need > room && room == 0x2000),
        other => panic!(
            "expected ConfigTooLarge, got {:?}",
            other.map(|i| i.app_size)
        ),
    }
}

#[test]
fn unknown_chips_are_named() {
    let err = Target::parse("esp8266").unwrap_err().to_string();
    assert!(err.contains("esp32c3") && err.contains("esp8266"), "{err}");
    assert_eq!(Target::parse("C6").unwrap(), Target::Esp32c6);
}

#[test]
fn a_config_the_chip_would_refuse_at_boot_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("hearth-flash-pins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.txt");
    // GPIO12 is the C3's SPI flash: that relay would stop the board at boot with no network.
    std::fs::write(
        &cfg,
        format!("{CONFIG}profile relay\nrelay1max 60\nrelay1pin 12\n")
            .replace("profile weather\n", ""),
    )
    .unwrap();
    match hearth_flash::load_config(&cfg, Target::Esp32c3) {
        Err(FlashError::Config(msg)) => {
            assert!(
                msg.contains("relay1pin 12") && msg.contains("SPI flash"),
                "{msg}"
            );
            assert!(msg.contains("nothing was written"), "{msg}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    // GPIO12 is also reserved on the C6; GPIO10 is fine on both (GPIO21 is relay 4's default on the C6).
    assert!(hearth_flash::load_config(&cfg, Target::Esp32c6).is_err());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("relay1pin 12", "relay1pin 10");
    std::fs::write(&cfg, text).unwrap();
    assert!(hearth_flash::load_config(&cfg, Target::Esp32c3).is_ok());
    let c6 = hearth_flash::load_config(&cfg, Target::Esp32c6);
    assert!(c6.is_ok(), "{c6:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
