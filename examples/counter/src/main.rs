//! `hearth-counter --config FILE --state DIR`: the counter appliance on the simulated board,
//! with the same runtime, store and MQTT session as every Hearth appliance, against the
//! broker the config names. The device's flash, identity and firmware slots live in DIR, so a
//! second run continues where the first stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hearth_example_counter::{Counter, CounterSettings, CONFIG_KEYS, NAME};
use hearth_platform::SystemClock;
use hearth_sim::device::Custom;

/// The counter appliance on the simulated board.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The device's config.txt (`profile counter`).
    #[arg(long)]
    config: PathBuf,
    /// The device's state directory (created if missing).
    #[arg(long)]
    state: PathBuf,
}

/// The appliance as the simulator runs it: its name, its keys, and how it is made from a
/// parsed config.
static COUNTER: Custom = Custom {
    name: NAME,
    keys: CONFIG_KEYS,
    build: |config| {
        let settings = CounterSettings::from_config(config)?;
        Ok(Box::new(Counter::new(settings, SystemClock)))
    },
};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&args.state) {
        eprintln!("{}: {e}", args.state.display());
        return ExitCode::from(2);
    }
    hearth_sim::device::run_custom(&args.config, &args.state, &COUNTER)
}
