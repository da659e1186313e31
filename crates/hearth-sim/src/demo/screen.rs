//! Drawing the demo's view in a terminal: the rows of [`House`](super::house::House) as a
//! table, redrawn in place on the alternate screen. Plain ANSI: the cursor goes home, each
//! line is written and the rest of it cleared, so nothing flickers and a resized window is
//! filled on the next frame. The terminal is given back (main screen, cursor shown) when the
//! [`Terminal`] is dropped, also on a panic.

use std::io::Write;

use super::house::Row;

const HOME: &str = "\x1b[H";
const CLEAR_LINE: &str = "\x1b[K";
const CLEAR_BELOW: &str = "\x1b[J";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// What the view says above and below the table.
pub struct Frame<'a> {
    /// The first line: broker, counts, time.
    pub title: String,
    /// The lines below the table: how to try things.
    pub footer: &'a [String],
}

/// `text` cut to `width` characters (an ellipsis marks the cut), padded to it when `pad`.
/// Control characters (a payload's line break, an escape) become `?`: what a device sends
/// must not move the cursor.
fn fit(text: &str, width: usize, pad: bool) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let text = clean.as_str();
    let n = text.chars().count();
    if n > width {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        if width > 0 {
            s.push('…');
        }
        s
    } else if pad {
        format!("{text}{}", " ".repeat(width - n))
    } else {
        text.to_string()
    }
}

/// The column widths for `rows` in a window `width` wide: device, appliance, status,
/// readings, event, try (0: not shown).
fn columns(rows: &[Row], width: usize) -> [usize; 6] {
    let widest = |f: fn(&Row) -> usize, min: usize, max: usize| {
        rows.iter().map(f).max().unwrap_or(0).clamp(min, max)
    };
    let name = widest(|r| r.name.chars().count(), 6, 20);
    let appliance = widest(|r| r.appliance.chars().count(), 9, 14);
    let status = widest(|r| r.status.chars().count(), 8, 24);
    let event = widest(|r| r.event.chars().count(), 10, 30);
    let try_it = widest(|r| r.try_it.chars().count(), 3, 40);
    // Two spaces between columns; the readings take what is left, at least 24.
    let fixed = name + appliance + status + event + 2 * 5;
    if width >= fixed + try_it + 2 + 40 {
        [
            name,
            appliance,
            status,
            width - fixed - try_it - 2,
            event,
            try_it,
        ]
    } else {
        [
            name,
            appliance,
            status,
            width.saturating_sub(fixed).max(24),
            event,
            0,
        ]
    }
}

/// The frame as text without escape codes, one string a line, each at most `width`
/// characters, with its colour: what the screen shows.
pub fn lines(rows: &[Row], frame: &Frame, width: usize) -> Vec<(String, &'static str)> {
    let [w_name, w_app, w_status, w_read, w_event, w_try] = columns(rows, width);
    let cell = |text: &str, w: usize| fit(text, w, true);
    let mut out = vec![(fit(&frame.title, width, false), BOLD), (String::new(), "")];
    let mut head = format!(
        "{}  {}  {}  {}  {}",
        cell("DEVICE", w_name),
        cell("APPLIANCE", w_app),
        cell("STATUS", w_status),
        cell("READINGS", w_read),
        cell("LAST EVENT", w_event)
    );
    if w_try > 0 {
        head.push_str(&format!("  {}", cell("TRY", w_try)));
    }
    out.push((fit(head.trim_end(), width, false), DIM));
    for r in rows {
        let mut line = format!(
            "{}  {}  {}  {}  {}",
            cell(&r.name, w_name),
            cell(&r.appliance, w_app),
            cell(&r.status, w_status),
            cell(&r.readings, w_read),
            cell(&r.event, w_event)
        );
        if w_try > 0 {
            line.push_str(&format!("  {}", cell(&r.try_it, w_try)));
        }
        let colour = if r.alert {
            RED
        } else if r.fresh {
            YELLOW
        } else if r.status.starts_with("online") {
            GREEN
        } else {
            ""
        };
        out.push((fit(line.trim_end(), width, false), colour));
    }
    out.push((String::new(), ""));
    for f in frame.footer {
        out.push((fit(f, width, false), DIM));
    }
    out
}

/// The terminal the view draws on: the alternate screen while it lives.
pub struct Terminal {
    out: std::io::Stdout,
}

impl Terminal {
    /// Switch to the alternate screen and hide the cursor.
    pub fn enter() -> Self {
        let mut out = std::io::stdout();
        let _ = write!(out, "\x1b[?1049h\x1b[?25l");
        let _ = out.flush();
        Self { out }
    }

    /// The window's (columns, lines); 80 × 24 when the terminal does not say.
    pub fn size() -> (usize, usize) {
        // SAFETY: TIOCGWINSZ fills the winsize we pass; nothing else is touched.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 && ws.ws_row > 0 {
            (usize::from(ws.ws_col), usize::from(ws.ws_row))
        } else {
            (80, 24)
        }
    }

    /// Draw one frame over the last.
    pub fn draw(&mut self, rows: &[Row], frame: &Frame) {
        let (width, height) = Self::size();
        let mut text = String::from(HOME);
        for (i, (line, colour)) in lines(rows, frame, width).into_iter().enumerate() {
            if i >= height {
                break;
            }
            if i > 0 {
                text.push_str("\r\n");
            }
            if colour.is_empty() {
                text.push_str(&line);
            } else {
                text.push_str(&format!("{colour}{line}{RESET}"));
            }
            text.push_str(CLEAR_LINE);
        }
        text.push_str(CLEAR_BELOW);
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = write!(self.out, "{RESET}\x1b[?25h\x1b[?1049l");
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: &str, readings: &str) -> Row {
        Row {
            name: name.into(),
            appliance: "weather".into(),
            status: status.into(),
            alert: status == "offline",
            readings: readings.into(),
            event: "[2s] online".into(),
            fresh: false,
            try_it: "ctl power-cut".into(),
        }
    }

    #[test]
    fn every_line_fits_the_window_and_the_readings_take_the_room() {
        let rows = vec![
            row(
                "weather-1",
                "online",
                "Temperature 21.4 °C · Humidity 45 % · Pressure 1013.2 hPa",
            ),
            row("weather-2", "offline", ""),
        ];
        let footer = vec!["Try: hearth sim ctl /tmp/x/<device>/state <ctl>".to_string()];
        let frame = Frame {
            title: "hearth demo — broker 127.0.0.1:1883".into(),
            footer: &footer,
        };
        for width in [40, 80, 120, 200] {
            let lines = lines(&rows, &frame, width);
            for (l, _) in &lines {
                assert!(l.chars().count() <= width, "{width}: {l:?}");
                assert!(!l.contains('\x1b'), "{l:?}");
            }
            assert!(lines[2].0.starts_with("DEVICE"), "{lines:?}");
            assert!(lines[3].0.starts_with("weather-1"), "{lines:?}");
        }
        let wide = lines(&rows, &frame, 200);
        assert!(wide[3].0.contains("Pressure 1013.2 hPa"), "{wide:?}");
        assert!(wide[3].0.contains("ctl power-cut"), "{wide:?}");
        assert_eq!(wide[3].1, GREEN);
        assert_eq!(wide[4].1, RED);
        let narrow = lines(&rows, &frame, 80);
        assert!(
            !narrow[2].0.contains("TRY"),
            "no room for TRY at 80: {narrow:?}"
        );
        assert!(
            narrow[3].0.contains('…'),
            "cut readings are marked: {narrow:?}"
        );
    }

    #[test]
    fn fit_cuts_and_pads_by_characters() {
        assert_eq!(fit("21.4 °C", 10, true), "21.4 °C   ");
        assert_eq!(fit("abcdef", 4, true), "abc…");
        assert_eq!(fit("abc", 0, false), "");
        assert_eq!(fit("1\x1b[2J\n2", 10, false), "1?[2J?2");
    }
}
