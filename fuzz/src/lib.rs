//! The C ABI of actionq (bindings-c/src), compiled into this fuzzing crate
//! together with a few helpers the fuzz targets share.
#![allow(missing_docs, dead_code, unused_imports, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/actionq_c/root.rs"));

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
