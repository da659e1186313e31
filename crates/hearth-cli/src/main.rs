//! `hearth`: the command line of Hearth. It parses ([`args`]), then hands the work to the
//! simulator and tool library (`hearth-sim`): the demo, the simulator and its control socket,
//! the fleet tools (`mon`, `cmd`, `ota`, `config push`), the config checker, `flash`, and the
//! ESP-NOW air tool. Exit codes: [`args::EXIT_CODES`].
//!
//! ```text
//! hearth demo                                   # a simulated house on an embedded broker
//! hearth mon --broker 127.0.0.1:PORT            # watch it (the port the demo printed)
//! hearth cmd weather-1 getversion --broker 127.0.0.1:PORT
//! hearth config check config.txt --chip esp32c3
//! ```

mod args;

use std::process::ExitCode;

use args::{Cli, Run};

fn main() -> ExitCode {
    match Cli::from_args() {
        Run::ConfigCheck { file, chip } => hearth_sim::device::config_check(&file, chip.as_deref()),
        Run::Device { config, state } => hearth_sim::device::run(&config, &state),
        Run::Sim {
            config,
            state,
            air,
            aps,
            fleet,
        } => {
            // Check the config before powering anything up: a bad file is reported once, no
            // restart loop. (One that lacks only Wi-Fi passes: the device asks for it.)
            if let Err(code) = hearth_sim::device::check_before_power(&config) {
                return code;
            }
            if let Err(e) = std::fs::create_dir_all(&state)
                .and_then(|()| hearth_sim::console::write_access_points(&state, &aps))
            {
                eprintln!("{}: {e}", state.display());
                return ExitCode::from(2);
            }
            if let Some(air) = air {
                // Single-threaded here, before any thread exists: the board's children inherit
                // it.
                std::env::set_var(hearth_sim::device::AIR_ENV, air);
            }
            match fleet {
                Some(n) => match hearth_sim::fleet::run(&config, &state, n as usize) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                },
                None => done(hearth_sim::power::run(&config, &state)),
            }
        }
        Run::Ctl { state, command } => match hearth_sim::control::send(&state, &command) {
            Ok(reply) => {
                println!("{reply}");
                if reply.starts_with("error") {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => fail(e),
        },
        Run::Flash {
            chip,
            config,
            elf,
            save_image,
            port,
        } => hearth_sim::board::flash(
            &chip,
            config.as_deref(),
            elf.as_deref(),
            save_image.as_deref(),
            port.as_deref(),
        ),
        Run::Monitor { port, baud } => hearth_sim::board::monitor(&port, baud),
        Run::Provision {
            port,
            ssid,
            password,
        } => hearth_sim::board::provision(&port, &ssid, password),
        Run::Espnow(command) => hearth_sim::espnow_tool::run(command),
        Run::Mon {
            broker,
            device,
            limit,
            format,
        } => hearth_fleet::client::mon(&broker, device.as_deref(), limit, format),
        Run::Ls { broker, json } => hearth_fleet::inventory::ls(&broker, json),
        Run::Pub {
            broker,
            topic,
            payload,
            retain,
        } => hearth_fleet::client::publish(&broker, &topic, payload.as_bytes(), retain),
        Run::TlsLines {
            ca,
            pin_from,
            client_cert,
            client_key,
        } => match hearth_sim::tls::config_lines(
            ca.as_deref(),
            client_cert.as_deref(),
            client_key.as_deref(),
            pin_from.as_deref(),
        ) {
            Ok(lines) => {
                print!("{lines}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        Run::Keygen { out } => hearth_fleet::commands::keygen(&out),
        Run::Image { info, size, out } => hearth_fleet::commands::image(&info, size, &out),
        Run::Ota {
            broker,
            devices,
            all,
            image,
            key,
            appliance,
            options,
        } => hearth_fleet::commands::ota(
            &broker,
            &devices,
            all,
            &image,
            &key,
            appliance.as_deref(),
            &options,
        ),
        Run::Release {
            broker,
            image,
            appliance,
            notes,
        } => hearth_fleet::release::release(&broker, &image, appliance.as_deref(), &notes),
        Run::Cmd {
            broker,
            device,
            command,
            key,
            allow_clock_jump,
            json,
        } => hearth_fleet::commands::cmd(
            &broker,
            &device,
            &command,
            key.as_deref(),
            allow_clock_jump,
            json,
        ),
        Run::ConfigPush {
            broker,
            device,
            file,
            key,
            options,
        } => hearth_fleet::commands::config_push(&broker, &device, &file, &key, options),
        Run::Demo {
            port,
            devices,
            limit,
            raw,
        } => done(hearth_sim::demo::run(port, devices, limit, raw)),
        Run::Completions(shell) => {
            clap_complete::generate(
                shell,
                &mut Cli::command_tree(),
                "hearth",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// Exit code 2 with the error on standard error: the work could not start.
fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn done<E: std::fmt::Display>(r: Result<(), E>) -> ExitCode {
    r.map_or_else(fail, |()| ExitCode::SUCCESS)
}
