//! Parameter validators: whatever the value, a validator never panics, and a
//! value it accepts is one safe shell word (no leading '-', no whitespace,
//! control, non-ASCII or metacharacter). Integers must be canonical and in
//! range; one_of literals go through the config checks like a host's would.
#![no_main]

use std::collections::BTreeMap;

use actionq::{ParamKind, Whitelist};
use actionq_fuzz::check_safe_value;
use libfuzzer_sys::fuzz_target;

// Input: `selector, min (8 bytes LE), max (8 bytes LE), literal \n literal ... \0 value`
// (for kinds other than one_of everything after the numbers is the value).
fuzz_target!(|data: &[u8]| {
    if data.len() < 17 {
        return;
    }
    let selector = data[0];
    let a = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let b = u64::from_le_bytes(data[9..17].try_into().unwrap());
    let rest = &data[17..];
    let (literals, value) = match rest.iter().position(|&b| b == 0) {
        Some(i) if selector % 4 == 3 => (&rest[..i], &rest[i + 1..]),
        _ => (&b""[..], rest),
    };
    let literals: Vec<String> = String::from_utf8_lossy(literals)
        .split('\n')
        .map(str::to_owned)
        .collect();
    let value = String::from_utf8_lossy(value).into_owned();
    let kind = match selector % 4 {
        0 => ParamKind::SystemdUnit {
            allow_templates: a % 2 == 0,
        },
        1 => ParamKind::DebianPackage,
        2 => ParamKind::Integer {
            min: a.min(b),
            max: a.max(b),
        },
        _ => {
            // A one_of parameter as a host would declare it: through the config.
            let config = serde_json::json!({
                "actions": { "pick": {
                    "command": "tool --mode {choice}",
                    "params": { "choice": { "kind": "one_of", "values": literals } }
                } }
            });
            let Ok(whitelist) = Whitelist::from_json(&config.to_string()) else {
                return;
            };
            let params: BTreeMap<String, String> = [("choice".into(), value.clone())].into();
            if let Ok(built) = whitelist.build("pick", &params) {
                check_safe_value(&value);
                assert_eq!(built.argv, ["tool", "--mode", value.as_str()]);
            }
            return;
        }
    };
    if let Ok(normalised) = kind.validate(&value) {
        check_safe_value(&value);
        check_safe_value(&normalised);
        if let ParamKind::Integer { min, max } = kind {
            let n: u64 = value.parse().expect("accepted integer parses");
            assert!((min..=max).contains(&n));
            assert_eq!(n.to_string(), value, "accepted integer is canonical");
        }
    }
});
