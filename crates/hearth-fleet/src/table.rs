//! Plain-text tables for the tools' reports (`hearth ls`, the end of `hearth ota`): each
//! column as wide as its widest cell, two spaces apart, the last one unpadded, no trailing
//! spaces.

/// `head` and `rows`, one line each (ending in a line break).
pub(crate) fn columns(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut text = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    let mut out = String::new();
    line(&mut head.iter().copied(), &mut out);
    for r in rows {
        line(&mut r.iter().map(String::as_str), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["weather-1".to_string(), "°C".into(), "last".into()],
            vec!["r".to_string(), "".into(), "".into()],
        ];
        assert_eq!(
            super::columns(&["DEVICE", "UNIT", "NOTE"], &rows),
            "DEVICE     UNIT  NOTE\nweather-1  °C    last\nr\n"
        );
    }
}
