//! The `hearth` command: demo, simulator, control client, config checker, ESP-NOW air tool,
//! broker monitor.

use std::process::ExitCode;

use hearth_sim::cli::{self, Cli};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Cli::Version => {
            println!("hearth {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Cli::ConfigCheck { file, chip } => hearth_sim::device::config_check(&file, chip.as_deref()),
        Cli::Device { config, state } => hearth_sim::device::run(&config, &state),
        Cli::Sim { config, state, air } => {
            // Check the config before powering anything up: a bad file is reported once, no
            // restart loop.
            if let Err(code) = hearth_sim::device::load(&config) {
                return code;
            }
            if let Some(air) = air {
                // Single-threaded here, before any thread exists: the board's children inherit
                // it.
                std::env::set_var(hearth_sim::device::AIR_ENV, air);
            }
            match hearth_sim::power::run(&config, &state) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cli::Ctl { state, command } => match hearth_sim::control::send(&state, &command) {
            Ok(reply) => {
                println!("{reply}");
                if reply.starts_with("error") {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cli::Flash {
            chip,
            config,
            elf,
            save_image,
            port,
        } => hearth_sim::board::flash(
            &chip,
            &config,
            elf.as_deref(),
            save_image.as_deref(),
            port.as_deref(),
        ),
        Cli::Monitor { port, baud } => hearth_sim::board::monitor(&port, baud),
        Cli::Espnow(command) => hearth_sim::espnow_tool::run(command),
        Cli::Mon {
            broker,
            device,
            seconds,
        } => hearth_sim::fleet::mon(
            &broker,
            device.as_deref(),
            seconds.map(std::time::Duration::from_secs),
        ),
        Cli::TlsLines {
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
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Cli::Keygen { out } => hearth_sim::ota_tool::keygen(&out),
        Cli::Image { info, size, out } => hearth_sim::ota_tool::image(&info, size, &out),
        Cli::Ota {
            broker,
            devices,
            all,
            image,
            key,
            appliance,
            window,
            wait,
            allow_clock_jump,
        } => {
            let opts = hearth_sim::ota_tool::OtaOptions {
                window,
                wait_confirm: wait,
                allow_clock_jump,
                ..Default::default()
            };
            hearth_sim::ota_tool::ota(
                &broker,
                &devices,
                all,
                &image,
                &key,
                appliance.as_deref(),
                &opts,
            )
        }
        Cli::Cmd {
            broker,
            device,
            command,
            key,
            allow_clock_jump,
        } => {
            hearth_sim::ota_tool::cmd(&broker, &device, &command, key.as_deref(), allow_clock_jump)
        }
        Cli::ConfigPush {
            broker,
            device,
            file,
            key,
            local_check,
            allow_clock_jump,
            chip,
            rotate_key,
        } => hearth_sim::ota_tool::config_push(
            &broker,
            &device,
            &file,
            &key,
            hearth_sim::ota_tool::PushOptions {
                local_check,
                chip,
                rotate_key,
                allow_clock_jump,
            },
        ),
        Cli::Demo {
            port,
            devices,
            seconds,
        } => {
            match hearth_sim::demo::run(port, devices, seconds.map(std::time::Duration::from_secs))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
