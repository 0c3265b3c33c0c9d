//! Whitelist config parser and command building: arbitrary config text and
//! parameter values never panic; a parsed whitelist round-trips through
//! `to_json`; a built command never turns a value into more than one argv word,
//! never lets it start an option, and never carries a shell metacharacter in it;
//! its argv and env are exactly those of its display command.
#![no_main]

use std::collections::BTreeMap;

use actionq::Whitelist;
use actionq_fuzz::check_safe_value;
use libfuzzer_sys::fuzz_target;

// Input: `config JSON \0 action_type \n name=value \n name=value ...`
fuzz_target!(|data: &[u8]| {
    let (config, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let config = String::from_utf8_lossy(config);
    let rest = String::from_utf8_lossy(rest);
    let mut lines = rest.split('\n');
    let action_type = lines.next().unwrap_or_default().to_owned();
    let params: Vec<(String, String)> = lines
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect();
    let Ok(whitelist) = Whitelist::from_json(&config) else {
        return;
    };
    let again = Whitelist::from_json(&whitelist.to_json()).expect("to_json output parses");
    assert_eq!(again, whitelist, "to_json round trip");
    let params: BTreeMap<String, String> = params.into_iter().collect();
    let mut types: Vec<String> = whitelist.entries().map(|e| e.name().to_owned()).collect();
    types.push(action_type);
    for kind in types {
        let _ = whitelist.check_shape(&kind, &params);
        let Ok(built) = whitelist.build(&kind, &params) else {
            continue;
        };
        let entry = whitelist.get(&kind).expect("built from an entry");
        for (name, spec) in entry.params() {
            let value = params.get(name).or(spec.default.as_ref()).expect("built");
            check_safe_value(value);
            assert!(
                built.command.contains(value.as_str()),
                "display command shows the value"
            );
        }
        assert!(!built.argv.is_empty());
        for word in built.argv.iter().chain(built.env.values()) {
            assert!(!word.contains('\0'));
        }
        // The argv and env expected of an accepted build: what the display
        // command, taken as a fixed command with no parameters, splits into.
        // A value that split a word, joined two or moved an assignment would
        // make them differ.
        let fixed = serde_json::json!({"actions": {"fixed": {"command": built.command}}});
        let expected = Whitelist::from_json(&fixed.to_string())
            .and_then(|w| w.build("fixed", &BTreeMap::new()))
            .unwrap_or_else(|e| panic!("display command {:?} is not a command: {e}", built.command));
        assert_eq!(built.argv, expected.argv, "argv of {:?}", built.command);
        assert_eq!(built.env, expected.env, "env of {:?}", built.command);
    }
});
