//! The serial console's log: every line with the time since boot, and once the wall clock is
//! set (SNTP, `Console::wall_clock`) the UTC time of day after it, as the simulator prints:
//! `[   12.345] 08:30:01.123Z INFO  mqtt connected`. The level is `ESP_LOG` at build time
//! (`firmware/.cargo/config.toml`: `info`); lines go out through esp-println's printer, whose
//! critical section keeps a line whole (and an Improv packet uncut, `crate::improv`).

use core::cell::Cell;
use core::fmt::Write;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Unix ms minus monotonic ms, once the wall clock is set.
static WALL_OFFSET: Mutex<CriticalSectionRawMutex, Cell<Option<u64>>> = Mutex::new(Cell::new(None));

struct Logger;

static LOGGER: Logger = Logger;

const LEVEL: LevelFilter = match option_env!("ESP_LOG") {
    Some(l) if l.eq_ignore_ascii_case("off") => LevelFilter::Off,
    Some(l) if l.eq_ignore_ascii_case("error") => LevelFilter::Error,
    Some(l) if l.eq_ignore_ascii_case("warn") => LevelFilter::Warn,
    Some(l) if l.eq_ignore_ascii_case("debug") => LevelFilter::Debug,
    Some(l) if l.eq_ignore_ascii_case("trace") => LevelFilter::Trace,
    _ => LevelFilter::Info,
};

/// Install the logger (once, first thing at boot).
pub fn init() {
    // SAFETY: the racy forms (the C3 has no atomic compare-and-swap) are sound when nothing
    // else logs or sets a logger meanwhile: this is the first thing `main` does, before any
    // task, interrupt handler or the radio runs.
    unsafe {
        let _ = log::set_logger_racy(&LOGGER);
        log::set_max_level_racy(LEVEL);
    }
}

/// The wall clock reads `unix_ms` now.
pub fn set_wall_clock(unix_ms: u64) {
    let now = embassy_time::Instant::now().as_millis();
    WALL_OFFSET.lock(|o| o.set(Some(unix_ms.saturating_sub(now))));
}

/// A line assembled on the stack, cut (not failed) at its capacity.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= LEVEL
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mono = embassy_time::Instant::now().as_millis();
        let mut line = Line {
            buf: [0; 256],
            len: 0,
        };
        let _ = write!(line, "[{:>5}.{:03}] ", mono / 1000, mono % 1000);
        if let Some(offset) = WALL_OFFSET.lock(Cell::get) {
            let _ = write!(line, "{} ", hearth_core::sntp::TimeOfDay(mono + offset));
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let _ = write!(line, "{level} {}", record.args());
        // The line break survives a cut.
        let end = line.len.min(line.buf.len() - 2);
        line.buf[end] = b'\r';
        line.buf[end + 1] = b'\n';
        esp_println::Printer::write_bytes(&line.buf[..end + 2]);
    }

    fn flush(&self) {}
}
