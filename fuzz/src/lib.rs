//! Helpers the fuzz targets share.

/// Characters a POSIX shell gives a meaning to (plus whitespace), which no
/// accepted parameter value may contain.
pub const SHELL_META: &str = "|&;<>()$`\\\"' \t\n\r*?[]#~{}!^";

/// The property every accepted parameter value must have: it cannot start an
/// option, and a shell would take it as one literal word.
pub fn check_safe_value(value: &str) {
    assert!(!value.is_empty(), "accepted an empty value");
    assert!(!value.starts_with('-'), "accepted {value:?}: leading '-'");
    assert!(
        value.chars().all(|c| c.is_ascii_graphic()),
        "accepted {value:?}: non-ASCII, control or space"
    );
    assert!(
        !value.chars().any(|c| SHELL_META.contains(c)),
        "accepted {value:?}: shell metacharacter"
    );
}
