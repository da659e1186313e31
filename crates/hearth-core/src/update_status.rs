//! The update status a device publishes on `stat/<name>/Update`, as one type with one codec:
//! the device writes it with [`UpdateStatus::to_json`], the fleet tools read it with
//! [`UpdateStatus::parse`], so the two ends cannot drift apart.
//!
//! The wire form is a flat JSON object, its keys in a fixed order: `{"state":"receiving","version":"0.2.0","next":4096,
//! "size":409600,"chunk":4096}`. `state` is always there; the other keys only when they say
//! something. The parser is strict about what it knows (a `next` must be a `u32`, `state` one of
//! [`UpdateState`]) and skips keys it does not know, so a newer device can add keys without
//! breaking older tools. Anyone on the broker can publish a status, so parsing never panics,
//! never recurses, and refuses input longer than [`MAX_STATUS_LEN`].
//!
//! ```
//! use hearth_core::update_status::{UpdateState, UpdateStatus};
//! let mut s = UpdateStatus::new(UpdateState::Receiving);
//! s.next = Some(4096);
//! assert_eq!(s.to_json(), r#"{"state":"receiving","next":4096}"#);
//! assert_eq!(UpdateStatus::parse(&s.to_json()), Ok(s));
//! ```

use alloc::format;
use alloc::string::String;
use core::fmt;

/// The longest status text [`UpdateStatus::parse`] reads.
pub const MAX_STATUS_LEN: usize = 4096;

/// The longest state name, in bytes (`config-rolled-back`).
const NAME_WIDTH: usize = 18;

/// `name` as a zero-padded row of [`NAME_WIDTH`] bytes (a compile error when it is longer).
const fn row(name: &str) -> [u8; NAME_WIDTH] {
    let bytes = name.as_bytes();
    assert!(bytes.len() <= NAME_WIDTH);
    let mut out = [0u8; NAME_WIDTH];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

macro_rules! states {
    ($($(#[$doc:meta])* $name:ident = $text:literal,)*) => {
        /// Where an update (or a pushed config) stands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum UpdateState {
            $($(#[$doc])* $name,)*
        }

        impl UpdateState {
            /// Every state.
            pub const ALL: &'static [UpdateState] = &[$(UpdateState::$name,)*];

            /// Its name on the wire.
            pub fn as_str(self) -> &'static str {
                // The names as rows of bytes, not a table of `&str`: a table of pointers
                // needs relocations, and the chip's linker puts relocated tables in RAM.
                const ROWS: [[u8; NAME_WIDTH]; UpdateState::ALL.len()] = [$(row($text),)*];
                let row = &ROWS[self as usize];
                let len = row.iter().position(|&b| b == 0).unwrap_or(NAME_WIDTH);
                core::str::from_utf8(&row[..len]).unwrap_or("?")
            }

            /// The state named `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(UpdateState::$name),)*
                    _ => None,
                }
            }
        }
    };
}

states! {
    /// A manifest was accepted; `next` is where the transfer starts (or resumes).
    Ready = "ready",
    /// Chunks are arriving; `next` is the next offset wanted (with `error` when one was bad).
    Receiving = "receiving",
    /// The whole image is in; its hash is being checked.
    Verifying = "verifying",
    /// Verified and selected; the device reboots into it.
    Rebooting = "rebooting",
    /// The new image runs on trial.
    Trial = "trial",
    /// The new image confirmed itself healthy.
    Confirmed = "confirmed",
    /// The new image failed its trial; the previous one runs again.
    RolledBack = "rolled-back",
    /// A command or manifest was refused (`error` says why).
    Refused = "refused",
    /// An update failed on the device (`error` says why).
    Failed = "failed",
    /// The appliance is not started: faults in a row (`faults`, `why`).
    SafeMode = "safe-mode",
    /// A pushed config is stored; the device reboots into it, on trial.
    ConfigInstalled = "config-installed",
    /// A pushed config confirmed itself healthy.
    ConfigConfirmed = "config-confirmed",
    /// A pushed config failed its trial; the previous config is back.
    ConfigRolledBack = "config-rolled-back",
}

/// `state == "refused"`: a state compares equal to its wire name.
impl PartialEq<&str> for UpdateState {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl fmt::Display for UpdateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStatus {
    /// Where it stands.
    pub state: UpdateState,
    /// The firmware version it is about (the image's, or the running one's).
    pub version: Option<String>,
    /// The next offset wanted.
    pub next: Option<u32>,
    /// The image's size.
    pub size: Option<u32>,
    /// The chunk size the device expects.
    pub chunk: Option<u32>,
    /// Why not.
    pub error: Option<String>,
    /// Safe mode: how many runs in a row ended in a fault.
    pub faults: Option<u32>,
    /// Safe mode: the names of those faults.
    pub why: Option<String>,
}

/// Why a status text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    /// Longer than [`MAX_STATUS_LEN`].
    TooLong(usize),
    /// Not a flat JSON object of strings and numbers; the byte offset where it went wrong.
    Syntax(usize),
    /// No `state`.
    NoState,
    /// A `state` that is not an [`UpdateState`].
    UnknownState(String),
    /// A known key with a value of the wrong kind (`next` as text, a number past `u32`, ...).
    BadValue(&'static str),
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "a status of {n} bytes (at most {MAX_STATUS_LEN})"),
            Self::Syntax(at) => write!(f, "not a flat JSON object (at byte {at})"),
            Self::NoState => f.write_str("no \"state\""),
            Self::UnknownState(s) => write!(f, "unknown state {s:?}"),
            Self::BadValue(key) => write!(f, "\"{key}\" has a value of the wrong kind"),
        }
    }
}

/// A JSON value of a flat object.
enum Value {
    Text(String),
    Number(u64),
    Other,
}

impl UpdateStatus {
    /// How far a firmware transfer is, in percent of the image: while the manifest is
    /// accepted and chunks arrive, from `next` of `size`; 100 while the image is checked and
    /// the device reboots into it. `None` when no firmware is on its way (a pushed config, a
    /// refusal, a failure, an outcome after the reboot).
    pub fn progress(&self) -> Option<u8> {
        match self.state {
            UpdateState::Ready | UpdateState::Receiving => {
                let size = u64::from(self.size?.max(1));
                let next = u64::from(self.next.unwrap_or(0));
                Some((next.min(size) * 100 / size) as u8)
            }
            UpdateState::Verifying | UpdateState::Rebooting => Some(100),
            _ => None,
        }
    }

    /// A status with only its state.
    pub fn new(state: UpdateState) -> Self {
        Self {
            state,
            version: None,
            next: None,
            size: None,
            chunk: None,
            error: None,
            faults: None,
            why: None,
        }
    }

    /// The wire form: `state` first, then the keys that are set, in a fixed order.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\"state\":");
        quote(&mut s, self.state.as_str());
        let text = |s: &mut String, key: &str, value: &Option<String>| {
            if let Some(v) = value {
                s.push_str(&format!(",\"{key}\":"));
                quote(s, v);
            }
        };
        text(&mut s, "version", &self.version);
        let number = |s: &mut String, key: &str, value: Option<u32>| {
            if let Some(n) = value {
                s.push_str(&format!(",\"{key}\":{n}"));
            }
        };
        number(&mut s, "next", self.next);
        number(&mut s, "size", self.size);
        number(&mut s, "chunk", self.chunk);
        text(&mut s, "error", &self.error);
        number(&mut s, "faults", self.faults);
        text(&mut s, "why", &self.why);
        s.push('}');
        s
    }

    /// Read a status (see the module's description of what is accepted).
    pub fn parse(text: &str) -> Result<Self, StatusError> {
        if text.len() > MAX_STATUS_LEN {
            return Err(StatusError::TooLong(text.len()));
        }
        let mut p = Parser { text, at: 0 };
        p.space();
        p.expect(b'{')?;
        let mut state = None;
        let mut status = Self::new(UpdateState::Refused);
        p.space();
        if !p.eat(b'}') {
            loop {
                p.space();
                let key = p.string()?;
                p.space();
                p.expect(b':')?;
                p.space();
                let value = p.value()?;
                let number = |key: &'static str, v: &Value| match v {
                    Value::Number(n) => u32::try_from(*n).map_err(|_| StatusError::BadValue(key)),
                    _ => Err(StatusError::BadValue(key)),
                };
                let text = |key: &'static str, v: Value| match v {
                    Value::Text(t) => Ok(t),
                    _ => Err(StatusError::BadValue(key)),
                };
                match key.as_str() {
                    "state" => {
                        let name = text("state", value)?;
                        state =
                            Some(UpdateState::parse(&name).ok_or(StatusError::UnknownState(name))?);
                    }
                    "version" => status.version = Some(text("version", value)?),
                    "error" => status.error = Some(text("error", value)?),
                    "why" => status.why = Some(text("why", value)?),
                    "next" => status.next = Some(number("next", &value)?),
                    "size" => status.size = Some(number("size", &value)?),
                    "chunk" => status.chunk = Some(number("chunk", &value)?),
                    "faults" => status.faults = Some(number("faults", &value)?),
                    _ => {}
                }
                p.space();
                if p.eat(b'}') {
                    break;
                }
                p.expect(b',')?;
            }
        }
        p.space();
        if p.at != text.len() {
            return Err(StatusError::Syntax(p.at));
        }
        status.state = state.ok_or(StatusError::NoState)?;
        Ok(status)
    }
}

/// Append `text` as a JSON string.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), StatusError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(StatusError::Syntax(self.at))
        }
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self) -> Result<Value, StatusError> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Text),
            Some(b'0'..=b'9') => {
                let start = self.at;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.at += 1;
                }
                // A fraction or an exponent is not a number this status uses.
                if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                    return Err(StatusError::Syntax(self.at));
                }
                self.text[start..self.at]
                    .parse()
                    .map(Value::Number)
                    .or(Ok(Value::Other))
            }
            _ => {
                for word in ["true", "false", "null"] {
                    if self.text[self.at..].starts_with(word) {
                        self.at += word.len();
                        return Ok(Value::Other);
                    }
                }
                Err(StatusError::Syntax(self.at))
            }
        }
    }

    fn string(&mut self) -> Result<String, StatusError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let mut chars = rest.chars();
            let c = chars.next().ok_or(StatusError::Syntax(self.at))?;
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let e = self.peek().ok_or(StatusError::Syntax(self.at))?;
                    self.at += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = self
                                .text
                                .get(self.at..self.at + 4)
                                .ok_or(StatusError::Syntax(self.at))?;
                            let code = u32::from_str_radix(hex, 16)
                                .map_err(|_| StatusError::Syntax(self.at))?;
                            self.at += 4;
                            // A lone surrogate half is not a character: shown as U+FFFD.
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(StatusError::Syntax(self.at - 1)),
                    }
                }
                c if (c as u32) < 0x20 => return Err(StatusError::Syntax(self.at - 1)),
                c => out.push(c),
            }
        }
    }
}

/// The state of a device's Home Assistant `update` entity (`stat/<name>/Firmware`, retained):
/// the firmware it runs and, while an image is on its way, how far the transfer is. A flat
/// JSON object with the keys of Home Assistant's MQTT update schema:
/// `{"installed_version":"0.1.0","in_progress":true,"update_percentage":42}`, or with
/// `"in_progress":false,"update_percentage":null` when nothing is on its way (the `null`
/// clears the bar of an earlier transfer).
///
/// ```
/// use hearth_core::update_status::{firmware_state, UpdateState, UpdateStatus};
/// let mut s = UpdateStatus::new(UpdateState::Receiving);
/// (s.next, s.size) = (Some(1024), Some(4096));
/// assert_eq!(
///     firmware_state("0.1.0", s.progress()),
///     r#"{"installed_version":"0.1.0","in_progress":true,"update_percentage":25}"#
/// );
/// ```
pub fn firmware_state(installed: &str, progress: Option<u8>) -> String {
    let version = crate::discovery::json_string(installed);
    match progress {
        Some(p) => format!(
            r#"{{"installed_version":{version},"in_progress":true,"update_percentage":{}}}"#,
            p.min(100)
        ),
        None => format!(
            r#"{{"installed_version":{version},"in_progress":false,"update_percentage":null}}"#
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn progress_follows_the_transfer_and_never_passes_100() {
        let at = |state, next, size| UpdateStatus {
            next,
            size,
            ..UpdateStatus::new(state)
        };
        assert_eq!(
            at(UpdateState::Ready, Some(0), Some(409_600)).progress(),
            Some(0)
        );
        let half = at(UpdateState::Receiving, Some(204_800), Some(409_600));
        assert_eq!(half.progress(), Some(50));
        // A status anyone can forge: an offset past the image, a size of 0, the largest size.
        let past = at(UpdateState::Receiving, Some(u32::MAX), Some(10));
        assert_eq!(past.progress(), Some(100));
        assert_eq!(
            at(UpdateState::Receiving, Some(5), Some(0)).progress(),
            Some(100)
        );
        let big = at(UpdateState::Receiving, Some(u32::MAX - 1), Some(u32::MAX));
        assert_eq!(big.progress(), Some(99));
        assert_eq!(at(UpdateState::Receiving, None, None).progress(), None);
        assert_eq!(
            UpdateStatus::new(UpdateState::Verifying).progress(),
            Some(100)
        );
        assert_eq!(
            UpdateStatus::new(UpdateState::Rebooting).progress(),
            Some(100)
        );
        for state in [
            UpdateState::Refused,
            UpdateState::Failed,
            UpdateState::Trial,
            UpdateState::Confirmed,
            UpdateState::RolledBack,
            UpdateState::SafeMode,
            UpdateState::ConfigInstalled,
        ] {
            assert_eq!(at(state, Some(1), Some(2)).progress(), None, "{state}");
        }
    }

    #[test]
    fn the_firmware_state_is_home_assistant_s_update_json() {
        assert_eq!(
            firmware_state("0.1.0", None),
            r#"{"installed_version":"0.1.0","in_progress":false,"update_percentage":null}"#
        );
        assert_eq!(
            firmware_state("1.2.3", Some(100)),
            r#"{"installed_version":"1.2.3","in_progress":true,"update_percentage":100}"#
        );
        assert_eq!(
            firmware_state("\"x", Some(250)),
            r#"{"installed_version":"\"x","in_progress":true,"update_percentage":100}"#
        );
    }

    fn full() -> UpdateStatus {
        UpdateStatus {
            state: UpdateState::SafeMode,
            version: Some("0.2.0".into()),
            next: Some(4096),
            size: Some(409_600),
            chunk: Some(4096),
            error: Some("say \"no\"\\\n\u{1}é".into()),
            faults: Some(2),
            why: Some("panic watchdog".into()),
        }
    }

    #[test]
    fn every_status_round_trips() {
        for &state in UpdateState::ALL {
            assert_eq!(UpdateState::parse(state.as_str()), Some(state));
            let s = UpdateStatus::new(state);
            assert_eq!(UpdateStatus::parse(&s.to_json()), Ok(s));
        }
        let s = full();
        assert_eq!(UpdateStatus::parse(&s.to_json()), Ok(s));
    }

    #[test]
    fn the_wire_form_is_stable() {
        assert_eq!(
            full().to_json(),
            r#"{"state":"safe-mode","version":"0.2.0","next":4096,"size":409600,"chunk":4096,"error":"say \"no\"\\\n\u0001é","faults":2,"why":"panic watchdog"}"#
        );
    }

    #[test]
    fn what_other_writers_send_is_read() {
        // Spaces, keys in any order, keys this version does not know, escapes.
        let s = UpdateStatus::parse(
            " { \"next\" : 10 , \"new\": [1] , \"state\":\"rece\\u0069ving\", \"x\": true }",
        );
        assert_eq!(s, Err(StatusError::Syntax(24)), "arrays are not flat");
        let s = UpdateStatus::parse(
            " { \"next\" : 10 , \"new\": null , \"state\":\"rece\\u0069ving\", \"x\": true } ",
        )
        .unwrap();
        assert_eq!((s.state, s.next), (UpdateState::Receiving, Some(10)));
    }

    #[test]
    fn bad_statuses_are_errors_never_panics() {
        let e = |t: &str| UpdateStatus::parse(t).unwrap_err();
        assert_eq!(e("{}"), StatusError::NoState);
        assert_eq!(
            e(r#"{"state":"dancing"}"#),
            StatusError::UnknownState("dancing".into())
        );
        assert_eq!(
            e(r#"{"state":"ready","next":"4096"}"#),
            StatusError::BadValue("next")
        );
        assert_eq!(
            e(r#"{"state":"ready","next":4294967296}"#),
            StatusError::BadValue("next")
        );
        assert_eq!(e(r#"{"state":7}"#), StatusError::BadValue("state"));
        assert!(matches!(
            e(r#"{"state":"ready","next":-1}"#),
            StatusError::Syntax(_)
        ));
        assert!(matches!(
            e(r#"{"state":"ready","next":1.5}"#),
            StatusError::Syntax(_)
        ));
        assert!(matches!(
            e(r#"{"state":"ready"} x"#),
            StatusError::Syntax(_)
        ));
        assert!(matches!(e(r#"{"state":"ready""#), StatusError::Syntax(_)));
        assert!(matches!(e(r#"{"state":"rea"#), StatusError::Syntax(_)));
        assert!(matches!(e(r#"{"state":"a\u12"}"#), StatusError::Syntax(_)));
        assert!(matches!(
            e("{\"state\":\"a\u{1}\"}"),
            StatusError::Syntax(_)
        ));
        let long = format!(
            r#"{{"state":"ready","error":"{}"}}"#,
            "x".repeat(MAX_STATUS_LEN)
        );
        assert_eq!(e(&long), StatusError::TooLong(long.len()));
        // A huge number of another key is skipped, not an error.
        assert!(UpdateStatus::parse(r#"{"state":"ready","big":99999999999999999999999}"#).is_ok());
    }

    #[test]
    fn every_prefix_and_every_byte_flip_of_a_status_is_handled() {
        let text = full().to_json();
        for end in 0..text.len() {
            if let Some(prefix) = text.get(..end) {
                assert!(UpdateStatus::parse(prefix).is_err(), "{prefix}");
            }
        }
        let bytes = text.as_bytes();
        let mut flipped = 0;
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b: Vec<u8> = bytes.to_vec();
                b[i] ^= 1 << bit;
                if let Ok(t) = core::str::from_utf8(&b) {
                    let _ = UpdateStatus::parse(t);
                    flipped += 1;
                }
            }
        }
        assert!(flipped > 8 * bytes.len() / 2);
    }
}
