//! Every example config in `docs/examples/` is valid: `hearth config check` accepts it (the
//! same check `hearth sim` and `hearth flash` make before starting anything).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn every_documented_example_config_passes_config_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["config", "check"])
            .arg(&path)
            .output()
            .expect("run hearth config check");
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    // One per appliance at least (weather is in the README), plus the v2 central.
    assert!(checked >= 11, "only {checked} examples");
}
