//! Every example config in `docs/examples/`, and every complete config written out in README.md
//! and docs/*.md, is valid: `hearth config check` accepts it (the same check `hearth sim` and
//! `hearth flash` make before starting anything).

use std::path::PathBuf;
use std::process::Command;

/// `hearth config check PATH`.
fn config_check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["config", "check"])
        .arg(path)
        .output()
        .expect("run hearth config check")
}

#[test]
fn every_documented_example_config_passes_config_check() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/examples exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("txt") {
            continue;
        }
        let out = config_check(&path);
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

/// The complete configs written out in README.md and docs/*.md (a fenced block with a
/// `profile` line), each as a user would copy it into `config.txt`.
fn configs_in_docs() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("md") {
            files.push(path);
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable doc");
        let mut block: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            match (&mut block, line.trim_start().starts_with("```")) {
                (None, true) => block = Some((n + 1, String::new())),
                (Some((start, body)), true) => {
                    if body.lines().any(|l| l.starts_with("profile ")) {
                        out.push((format!("{}:{start}", file.display()), body.clone()));
                    }
                    block = None;
                }
                (Some((_, body)), false) => {
                    body.push_str(line);
                    body.push('\n');
                }
                (None, false) => {}
            }
        }
    }
    out
}

#[test]
fn every_complete_config_in_the_docs_passes_config_check() {
    let configs = configs_in_docs();
    assert!(
        configs.iter().any(|(at, _)| at.contains("README.md")),
        "README's first config: {configs:?}"
    );
    let dir = std::env::temp_dir().join(format!("hearth-doc-configs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (at, body)) in configs.iter().enumerate() {
        let path = dir.join(format!("config-{i}.txt"));
        std::fs::write(&path, body).unwrap();
        let out = config_check(&path);
        assert!(
            out.status.success(),
            "the config at {at} fails `hearth config check`:\n{body}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
