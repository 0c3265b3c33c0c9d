//! The canonical form of a whitelist (keys sorted, no whitespace, defaults
//! left out) and the version digest taken of it.

use std::collections::BTreeMap;

use sha2::Digest as _;

use super::{EntryConfig, WhitelistEntry};

/// The config as a JSON value.
pub(super) fn config_value(entries: &BTreeMap<String, WhitelistEntry>) -> serde_json::Value {
    let actions: BTreeMap<&String, &EntryConfig> =
        entries.iter().map(|(k, v)| (k, &v.config)).collect();
    serde_json::json!({ "actions": actions })
}

fn canonical_config(entries: &BTreeMap<String, WhitelistEntry>) -> String {
    let mut out = String::new();
    write_canonical(&config_value(entries), &mut out);
    out
}

/// Compact JSON with every object's keys sorted here, not by the map type
/// (serde_json's `preserve_order` feature, if any crate turns it on, would
/// keep struct field order instead).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The version of a whitelist of `entries`: the hex SHA-256 of its canonical config.
pub(super) fn version(entries: &BTreeMap<String, WhitelistEntry>) -> String {
    let canonical = canonical_config(entries);
    crate::digest::lower_hex(&sha2::Sha256::digest(canonical.as_bytes()))
}
