//! Structured logs: one JSON object per line on stderr (journald keeps them
//! as they are). Nothing here ever sees the agent token.

use std::io::Write;

use serde_json::{Map, Value};

/// Writes `{"ts", "level", "event", ...fields}` as one line, in one write.
pub fn log(level: &str, event: &str, fields: Value) {
    let mut line = Map::new();
    line.insert(
        "ts".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    );
    line.insert("level".into(), Value::String(level.into()));
    line.insert("event".into(), Value::String(event.into()));
    if let Value::Object(fields) = fields {
        line.extend(fields);
    }
    let mut text = Value::Object(line).to_string();
    text.push('\n');
    // A log line that cannot be written (stderr closed) is not worth dying for.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
