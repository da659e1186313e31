//! `hearth flash` and `hearth provision`: the real-board commands. They need the serial-port stack (libudev on Linux),
//! so they are compiled in with the `flash` feature; without it the simulator and the demo build
//! with nothing but cargo, and these commands say how to get them.

use std::path::Path;
use std::process::ExitCode;

#[cfg(feature = "flash")]
fn fail(e: hearth_flash::FlashError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Build the board image; save it or write it to a board. Without `config`, in a terminal, the
/// values of a first config are asked for.
#[cfg(feature = "flash")]
pub fn flash(
    chip: &str,
    config: Option<&Path>,
    elf: Option<&Path>,
    save_image: Option<&Path>,
    port: Option<&str>,
) -> ExitCode {
    use hearth_flash::Target;
    use std::io::IsTerminal;
    let target = match Target::parse(chip) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let default_elf = std::path::PathBuf::from(format!(
        "target/{}/release/hearth-firmware",
        target.triple()
    ));
    let elf = elf.unwrap_or(&default_elf);
    if !elf.exists() {
        eprintln!(
            "error: firmware {} not found; build it with `scripts/firmware.sh` (or pass --elf)",
            elf.display()
        );
        return ExitCode::from(2);
    }
    if save_image.is_none() && port.is_none() {
        eprintln!("error: `flash` needs --save-image OUT or --port PORT");
        return ExitCode::from(2);
    }
    let text = match config {
        Some(path) => hearth_flash::load_config(path, target),
        None if std::io::stdin().is_terminal() => hearth_flash::ask::ask_config(
            &mut std::io::stdin().lock(),
            &mut std::io::stdout(),
            target,
        ),
        None => Err(hearth_flash::FlashError::Usage(
            "`flash` needs --config FILE (or a terminal, to be asked for the values)".into(),
        )),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Some(out) = save_image {
        return match hearth_flash::save_image_text(target, elf, &text, out) {
            Ok(image) => {
                for s in &image.segments {
                    println!("  0x{:06x}  {:>8} bytes", s.addr, s.data.len());
                }
                println!(
                    "{}: merged {target} image written (app {} bytes)",
                    out.display(),
                    image.app_size
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }
    let Some(port) = port else {
        return ExitCode::from(2);
    };
    let result = std::fs::read(elf)
        .map_err(|source| hearth_flash::FlashError::Io {
            path: elf.display().to_string(),
            source,
        })
        .and_then(|bytes| hearth_flash::build_image(target, &bytes, &text))
        .and_then(|image| hearth_flash::flash(target, &image, port));
    match result {
        Ok(()) => {
            println!(
                "flashed {target} on {port}; watch it with `hearth flash monitor --port {port}`"
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Show the board's serial log.
#[cfg(feature = "flash")]
pub fn monitor(port: &str, baud: u32) -> ExitCode {
    match hearth_flash::monitor(port, baud) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Give the board on `port` a Wi-Fi network (Improv Serial); without `password`, read it
/// from standard input.
#[cfg(feature = "flash")]
pub fn provision(port: &str, ssid: &str, password: Option<String>) -> ExitCode {
    use std::io::{BufRead, IsTerminal, Write};
    let password = match password {
        Some(p) => p,
        None => {
            if std::io::stdin().is_terminal() {
                print!("password for {ssid} (empty for an open network): ");
                let _ = std::io::stdout().flush();
            }
            let mut line = String::new();
            if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
                eprintln!("error: cannot read the password: {e}");
                return ExitCode::from(2);
            }
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let mut log = |l: &str| println!("  device: {l}");
    match hearth_flash::provision::provision_port(port, ssid, &password, &mut log) {
        Ok(p) => {
            let name = p.info.get(3).map(String::as_str).unwrap_or("the device");
            let what = p.info.first().map(String::as_str).unwrap_or("?");
            let version = p.info.get(1).map(String::as_str).unwrap_or("?");
            let chip = p.info.get(2).map(String::as_str).unwrap_or("?");
            println!(
                "{name} ({what} {version} on {chip}) joined {ssid}; address {}; the config with \
                 this network is stored on it",
                p.address.as_deref().unwrap_or("not given")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {port}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "flash"))]
fn unavailable() -> ExitCode {
    eprintln!(
        "error: this `hearth` was built without board support; rebuild it with \
         `cargo run --features flash --bin hearth -- flash ...` (needs libudev-dev on Linux)"
    );
    ExitCode::from(2)
}

/// Build the board image; save it or write it to a board.
#[cfg(not(feature = "flash"))]
pub fn flash(
    _chip: &str,
    _config: Option<&Path>,
    _elf: Option<&Path>,
    _save_image: Option<&Path>,
    _port: Option<&str>,
) -> ExitCode {
    unavailable()
}

/// Give the board on `port` a Wi-Fi network.
#[cfg(not(feature = "flash"))]
pub fn provision(_port: &str, _ssid: &str, _password: Option<String>) -> ExitCode {
    unavailable()
}

/// Show the board's serial log.
#[cfg(not(feature = "flash"))]
pub fn monitor(_port: &str, _baud: u32) -> ExitCode {
    unavailable()
}
