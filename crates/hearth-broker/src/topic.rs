//! Topic names, topic filters and matching (MQTT 5.0 section 4.7).
//!
//! The codec has already checked that both are well-formed UTF-8 without
//! U+0000; these functions add the rules about `/`, `+`, `#` and `$`.

/// A topic name a PUBLISH (or a will) may use: not empty, no wildcard.
pub(crate) fn valid_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

/// A topic filter a SUBSCRIBE may use: not empty, `+` only as a whole level,
/// `#` only as the whole last level.
pub(crate) fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// A shared subscription (`$share/group/filter`), which this broker refuses.
pub(crate) fn is_shared(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// Whether the (valid) `filter` matches the (valid) topic name `topic`.
///
/// A wildcard in the first level does not match a topic that starts with `$`
/// (such as `$SYS/...`); `#` also matches the parent level (`a/#` matches `a`).
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        if level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if level == "+" || level == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("a"));
        assert!(valid_name("/"));
        assert!(valid_name("a//b"));
        assert!(valid_name("$SYS/x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/+"));
        assert!(!valid_name("a/#"));
        assert!(!valid_name("a+b"));
    }

    #[test]
    fn filters() {
        for good in [
            "#", "+", "a/#", "+/+", "a/+/b", "/", "a//b", "+/#", "$SYS/#", "/+",
        ] {
            assert!(valid_filter(good), "{good}");
        }
        for bad in ["", "a#", "a/#/b", "#/a", "a+", "a/b+/c", "++", "##", "a/+x"] {
            assert!(!valid_filter(bad), "{bad}");
        }
        assert!(is_shared("$share/g/a"));
        assert!(!is_shared("share/g/a"));
    }

    #[test]
    fn matching() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("+/b", "a/b"),
            ("#", "a/b/c"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("+/+", "/b"),
            ("+", ""),
            ("/+", "/x"),
            ("a//b", "a//b"),
            ("a/+/c", "a//c"),
            ("$SYS/#", "$SYS/x"),
            ("$SYS/+", "$SYS/x"),
            ("cmnd/+/POWER", "cmnd/lamp/POWER"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("#", "$SYS/x"),
            ("+/x", "$SYS/x"),
            ("+", "$x"),
            ("a", "A"),
            ("+/+", "a"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }
}
