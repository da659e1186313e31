//! The line syntax of `config.txt`, with no knowledge of keys: BOM, line endings, comments,
//! trimming, and the split of a line into key and value.

/// A byte-order mark some Windows editors put at the start of a UTF-8 file.
const BOM: char = '\u{feff}';

/// One meaningful (non-blank, non-comment) line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// 1-based.
    pub number: usize,
    pub key: &'a str,
    pub value: RawValue<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawValue<'a> {
    /// The key stands alone on its line.
    Missing,
    /// The literal value `None`, which means "no value", as in the reference.
    Null,
    /// Everything after the first run of spaces/tabs, trimmed; never empty.
    Text(&'a str),
}

/// The meaningful lines of `text`.
///
/// - A UTF-8 BOM at the very start is skipped.
/// - Lines end at `\n`; a `\r` before it is dropped (CRLF files).
/// - Each line is trimmed of leading and trailing whitespace; empty lines and lines whose
///   first character is `#` are skipped.
/// - The key is the text up to the first space or tab; the value is what follows the first
///   run of spaces and tabs, so it may itself contain spaces. This accepts every line the
///   reference accepted (it split on single spaces and kept only two-piece lines).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (key, value) = match line.split_once([' ', '\t']) {
            None => (line, RawValue::Missing),
            Some((key, rest)) => {
                let rest = rest.trim_start_matches([' ', '\t']);
                // `line` is trimmed, so `rest` is non-empty unless the separator was followed
                // only by non-space/tab whitespace that `trim` already removed.
                let value = match rest {
                    "" => RawValue::Missing,
                    "None" => RawValue::Null,
                    v => RawValue::Text(v),
                };
                (key, value)
            }
        };
        Some(Line {
            number: i + 1,
            key,
            value,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn all(text: &str) -> Vec<(usize, &str, RawValue<'_>)> {
        lines(text).map(|l| (l.number, l.key, l.value)).collect()
    }

    #[test]
    fn splitting() {
        let text = "\u{feff}ssid My Home  Net \r\n\r\n  # comment\r\n\tpassword\t\t secret pw\r\nwatchdog\r\nmqttname None\n#x y\nkey   \n";
        assert_eq!(
            all(text),
            [
                (1, "ssid", RawValue::Text("My Home  Net")),
                (4, "password", RawValue::Text("secret pw")),
                (5, "watchdog", RawValue::Missing),
                (6, "mqttname", RawValue::Null),
                (8, "key", RawValue::Missing),
            ]
        );
    }

    #[test]
    fn bom_only_at_start() {
        assert_eq!(all("\u{feff}a b"), [(1, "a", RawValue::Text("b"))]);
        assert_eq!(all("x y\n\u{feff}a b")[1].1, "\u{feff}a");
    }

    #[test]
    fn none_is_exact() {
        assert_eq!(all("a none")[0].2, RawValue::Text("none"));
        assert_eq!(all("a None x")[0].2, RawValue::Text("None x"));
    }
}
