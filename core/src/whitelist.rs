//! The command whitelist: which action types exist, how their commands are built,
//! which parameter values are allowed, and which actions collide.
//!
//! Callers never pass a command. They name an action type and give parameter
//! values; each value must pass a fixed, safe validator and is then placed inside
//! exactly one argv word. A refused value is an error, never silently cleaned.
//!
//! Custom whitelists are JSON (see the README for the full format):
//!
//! ```
//! let wl = actionq::Whitelist::from_json(r#"{
//!   "actions": {
//!     "restart_service": {
//!       "command": "systemctl restart {service_name}",
//!       "params": { "service_name": { "kind": "systemd_unit" } },
//!       "conflict": "pending_duplicate"
//!     },
//!     "install_package": {
//!       "command": "DEBIAN_FRONTEND=noninteractive apt-get install -y {package}",
//!       "params": { "package": { "kind": "debian_package" } },
//!       "conflict": { "exclusive_group": "apt" }
//!     }
//!   }
//! }"#).unwrap();
//! let params = [("package".to_string(), "htop".to_string())].into();
//! let built = wl.build("install_package", &params).unwrap();
//! assert_eq!(built.argv, ["apt-get", "install", "-y", "htop"]);
//! assert_eq!(built.env["DEBIAN_FRONTEND"], "noninteractive");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits;
use sha2::Digest as _;

/// Longest value any validator accepts (systemd's unit name limit).
pub const MAX_PARAM_LEN: usize = 255;

/// The fixed set of safe parameter validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParamKind {
    /// A systemd service: `[A-Za-z0-9:_.@-]`, starting alphanumeric, at most
    /// 255 chars with its suffix. A bare name means `<name>.service` and is
    /// normalised to it; any other unit type (`.target`, `.socket`, ...) and
    /// `systemd-*` units are refused, and so are template instances
    /// (`name@instance.service`) unless `allow_templates` is set.
    SystemdUnit {
        /// Accept one `@` with a non-empty instance (`getty@tty1.service`).
        #[serde(default, skip_serializing_if = "is_false")]
        allow_templates: bool,
    },
    /// A Debian package name: `[a-z0-9][a-z0-9+.-]+`, at most 128 chars,
    /// without apt's removal and pattern syntax (a trailing `-` or `+`,
    /// `.+`, `.*`).
    DebianPackage,
    /// A non-negative decimal integer within `min..=max`.
    Integer {
        /// Smallest accepted value (≥ 0).
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// One of a fixed list of literals (each a safe token itself).
    OneOf {
        /// The accepted literals.
        values: Vec<String>,
    },
}

impl ParamKind {
    /// Checks `value` and returns it normalised (a bare systemd unit name
    /// gains `.service`; every other accepted value is returned as given):
    /// what the command, digest, duplicate guard and budget see. `Err`
    /// carries why it was refused (for the NotWhitelisted message).
    ///
    /// ```
    /// use actionq::ParamKind;
    /// let unit = ParamKind::SystemdUnit { allow_templates: false };
    /// assert_eq!(unit.validate("nginx").unwrap(), "nginx.service");
    /// assert!(unit.validate("reboot.target").is_err());
    /// assert!(ParamKind::DebianPackage.validate("openssh-server-").is_err());
    /// ```
    pub fn validate(&self, value: &str) -> std::result::Result<String, String> {
        match self {
            ParamKind::SystemdUnit { allow_templates } => {
                check_systemd_unit(value, *allow_templates)
            }
            ParamKind::DebianPackage => check_debian_package(value).map(|()| value.to_owned()),
            ParamKind::Integer { min, max } => {
                let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let canonical = value == "0" || !value.starts_with('0');
                match value.parse::<u64>() {
                    Ok(n) if digits_only && canonical && (*min..=*max).contains(&n) => {
                        Ok(value.to_owned())
                    }
                    _ => Err(format!("must be an integer from {min} to {max}")),
                }
            }
            ParamKind::OneOf { values } => {
                if values.iter().any(|v| v == value) {
                    Ok(value.to_owned())
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
        }
    }

    fn check_config(&self, name: &str) -> Result<()> {
        match self {
            ParamKind::Integer { min, max } if min > max => Err(Error::InvalidInput(format!(
                "parameter '{name}': min {min} is greater than max {max}"
            ))),
            ParamKind::OneOf { values } if values.is_empty() => Err(Error::InvalidInput(format!(
                "parameter '{name}': one_of needs at least one value"
            ))),
            ParamKind::OneOf { values } => values.iter().try_for_each(|v| {
                check_safe_token(v).map_err(|why| {
                    Error::InvalidInput(format!(
                        "parameter '{name}': literal {:?} is not a safe token ({why})",
                        v
                    ))
                })
            }),
            _ => Ok(()),
        }
    }
}

fn check_common(value: &str, max_len: usize) -> std::result::Result<(), String> {
    if value.chars().count() > max_len {
        return Err(format!("longer than {max_len} characters"));
    }
    if value.starts_with('-') {
        return Err("starts with '-'".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control())
    {
        return Err(format!("contains the character {:?}", c));
    }
    if let Some(c) = value.chars().find(|c| c.is_ascii_whitespace()) {
        return Err(format!("contains whitespace {:?}", c));
    }
    Ok(())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// systemd's unit types other than `service`: a value with one of these
/// suffixes names something `restart` must not touch (`reboot.target`,
/// `-.mount`, ...), so it is refused rather than read as a service name.
const OTHER_UNIT_TYPES: [&str; 10] = [
    "target",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "path",
    "timer",
    "slice",
    "scope",
];

/// A service unit, normalised: `name` → `name.service`, as `systemctl` reads
/// a name without a unit suffix.
fn check_systemd_unit(value: &str, allow_templates: bool) -> std::result::Result<String, String> {
    check_common(value, MAX_PARAM_LEN)?;
    let first_ok = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '@' | '-'));
    if !first_ok || !chars_ok || value.ends_with('.') {
        return Err("not a systemd unit name".into());
    }
    let name = match value.rsplit_once('.') {
        Some((name, "service")) => name,
        Some((_, suffix)) if OTHER_UNIT_TYPES.contains(&suffix) => {
            return Err(format!("only .service units may be given, not .{suffix}"));
        }
        _ => value,
    };
    let unit = format!("{name}.service");
    if unit.len() > MAX_PARAM_LEN {
        return Err(format!("longer than {MAX_PARAM_LEN} characters"));
    }
    if name.to_ascii_lowercase().starts_with("systemd-") {
        return Err("systemd's own units (systemd-*) are refused".into());
    }
    match name.split_once('@') {
        None => Ok(unit),
        Some(_) if !allow_templates => {
            Err("template units (name@instance) are refused by this entry".into())
        }
        Some((prefix, instance))
            if !prefix.is_empty() && !instance.is_empty() && !instance.contains('@') =>
        {
            Ok(unit)
        }
        Some(_) => Err("a template unit needs one '@' between a name and an instance".into()),
    }
}

fn check_debian_package(value: &str) -> std::result::Result<(), String> {
    check_common(value, 128)?;
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c));
    if !first_ok || !rest_ok || value.len() < 2 {
        return Err("not a Debian package name".into());
    }
    // apt-get reads `pkg-` as "remove pkg", `pkg+` as "install pkg", and a
    // name with `.+`/`.*` as a regular expression over every package.
    if value.ends_with('-') || value.ends_with('+') {
        return Err("a trailing '-' or '+' is apt's remove/install syntax".into());
    }
    if value.contains(".+") || value.contains(".*") {
        return Err("apt would read it as a pattern".into());
    }
    Ok(())
}

/// Characters a value may hold without any shell quoting.
fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._:=@%+,/-".contains(c)
}

fn check_safe_token(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err("empty".into());
    }
    check_common(value, MAX_PARAM_LEN)?;
    match value.chars().find(|c| !is_safe_char(*c)) {
        Some(c) => Err(format!("contains {:?}", c)),
        None => Ok(()),
    }
}

/// One typed parameter of a whitelist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// The validator its values must pass.
    #[serde(flatten)]
    pub kind: ParamKind,
    /// Value used when the caller gives none; a parameter without default is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// Which earlier actions a new one collides with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ConflictPolicy {
    /// Never collides.
    #[default]
    None,
    /// Collides with a `pending` action of the same server, type and parameters.
    PendingDuplicate,
    /// Collides with any pending, approved or executing action of the same
    /// server whose type is in the same named group.
    ExclusiveGroup(String),
}

/// How many actions of one type, with the same parameters, a normal server
/// auto-approves within a sliding window before holding the next for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApproveBudget {
    /// Auto-approvals allowed per window (at least 1).
    pub max: u32,
    /// The window's length in seconds (at least 1).
    pub window_seconds: u64,
}

/// Who must approve an entry's actions, and for how long an approval may wait.
/// The default is the seed's behaviour: one approval, by anyone, no expiry,
/// no budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Distinct principals that must approve a held action (1..=[`limits::MAX_REQUIRED_APPROVALS`]).
    pub required: u32,
    /// The requester may not approve its own action.
    pub four_eyes: bool,
    /// A pending action older than this is rejected by `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Auto-approvals allowed per window on a normal server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_approve_budget: Option<AutoApproveBudget>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy {
            required: 1,
            four_eyes: false,
            ttl_seconds: None,
            auto_approve_budget: None,
        }
    }
}

impl ApprovalPolicy {
    /// Why an action under this policy must wait for people whatever the
    /// server's state: more than one approval, or four eyes (an automatic
    /// approval would skip both). `None` when auto-approval may decide.
    pub fn needs_people(&self) -> Option<String> {
        match (self.required > 1, self.four_eyes) {
            (true, _) => Some(format!(
                "held for approval: {} approvals required",
                self.required
            )),
            (false, true) => Some("held for approval: four-eyes policy".to_owned()),
            (false, false) => None,
        }
    }

    fn is_default(&self) -> bool {
        *self == ApprovalPolicy::default()
    }

    fn check_config(&self) -> std::result::Result<(), String> {
        let max = limits::MAX_REQUIRED_APPROVALS;
        if !(1..=max).contains(&self.required) {
            return Err(format!("approval.required must be from 1 to {max}"));
        }
        if let Some(ttl) = self.ttl_seconds {
            if !(1..=limits::MAX_POLICY_SECONDS).contains(&ttl) {
                return Err(format!(
                    "approval.ttl_seconds must be from 1 to {}",
                    limits::MAX_POLICY_SECONDS
                ));
            }
        }
        if let Some(budget) = self.auto_approve_budget {
            if budget.max < 1 {
                return Err("approval.auto_approve_budget.max must be at least 1".into());
            }
            if !(1..=limits::MAX_POLICY_SECONDS).contains(&budget.window_seconds) {
                return Err(format!(
                    "approval.auto_approve_budget.window_seconds must be from 1 to {}",
                    limits::MAX_POLICY_SECONDS
                ));
            }
        }
        Ok(())
    }
}

/// One part of an argv word: literal text or a parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

type Word = Vec<Piece>;

/// A whitelist entry as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryConfig {
    command: String,
    #[serde(default)]
    params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    conflict: ConflictPolicy,
    #[serde(default, skip_serializing_if = "ApprovalPolicy::is_default")]
    approval: ApprovalPolicy,
}

/// A parsed whitelist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhitelistEntry {
    name: String,
    config: EntryConfig,
    env: Vec<(String, Word)>,
    argv: Vec<Word>,
}

impl WhitelistEntry {
    /// The action type this entry defines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The display command template, e.g. `systemctl restart {service_name}`.
    pub fn command_template(&self) -> &str {
        &self.config.command
    }

    /// The entry's typed parameters.
    pub fn params(&self) -> &BTreeMap<String, ParamSpec> {
        &self.config.params
    }

    /// The entry's conflict policy.
    pub fn conflict(&self) -> &ConflictPolicy {
        &self.config.conflict
    }

    /// The entry's approval policy.
    pub fn approval(&self) -> &ApprovalPolicy {
        &self.config.approval
    }

    fn parse(name: &str, config: EntryConfig) -> Result<Self> {
        let bad = |why: String| Error::InvalidInput(format!("whitelist entry '{name}': {why}"));
        check_type_name(name).map_err(bad)?;
        for (param, spec) in &config.params {
            check_param_name(param).map_err(bad)?;
            spec.kind.check_config(param)?;
            if let Some(default) = &spec.default {
                spec.kind.validate(default).map_err(|why| {
                    bad(format!("default of parameter '{param}' is refused: {why}"))
                })?;
            }
        }
        let words = split_template(&config.command).map_err(bad)?;
        let mut env = Vec::new();
        let mut argv = Vec::new();
        for (word, assignment) in words {
            match assignment {
                Some(var) if argv.is_empty() => env.push((var, word)),
                // After the program, `NAME=value` is an argument like any other.
                Some(var) => argv.push(
                    std::iter::once(Piece::Text(format!("{var}=")))
                        .chain(word)
                        .collect(),
                ),
                None => argv.push(word),
            }
        }
        if argv.is_empty() {
            return Err(bad("command has no program".into()));
        }
        // A value in the program position could change what runs, and one shaped
        // like `NAME=value` would make a shell read the display string differently.
        if argv[0].iter().any(|p| matches!(p, Piece::Param(_))) {
            return Err(bad("the program must be literal, not a parameter".into()));
        }
        let used: Vec<&String> = env
            .iter()
            .map(|(_, w)| w)
            .chain(argv.iter())
            .flatten()
            .filter_map(|p| match p {
                Piece::Param(n) => Some(n),
                Piece::Text(_) => None,
            })
            .collect();
        if let Some(unknown) = used.iter().find(|n| !config.params.contains_key(**n)) {
            return Err(bad(format!(
                "command uses undeclared parameter '{unknown}'"
            )));
        }
        if let Some(unused) = config.params.keys().find(|n| !used.contains(n)) {
            return Err(bad(format!(
                "parameter '{unused}' is not used in the command"
            )));
        }
        if let ConflictPolicy::ExclusiveGroup(group) = &config.conflict {
            check_param_name(group).map_err(|why| bad(format!("group: {why}")))?;
        }
        config.approval.check_config().map_err(bad)?;
        Ok(WhitelistEntry {
            name: name.to_owned(),
            config,
            env,
            argv,
        })
    }
}

fn check_type_name(name: &str) -> std::result::Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err("action type names are 1-64 characters of [a-z0-9_], starting with a letter".into())
    }
}

fn check_param_name(name: &str) -> std::result::Result<(), String> {
    check_type_name(name).map_err(|_| {
        format!("name '{name}' must be 1-64 characters of [a-z0-9_], starting with a letter")
    })
}

/// Splits a command template into words the way a POSIX shell would, for the
/// subset of shell syntax a whitelist may use: plain words, single and double
/// quotes, `{param}` placeholders, and leading `NAME=value` assignments. Anything
/// else a shell would interpret (`;`, `|`, `$`, globs, redirections...) is refused.
/// Returns each word with the variable name when it is an assignment.
fn split_template(template: &str) -> std::result::Result<Vec<(Word, Option<String>)>, String> {
    let mut words = Vec::new();
    let mut chars = template.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        words.push(read_word(&mut chars)?);
    }
}

type TemplateChars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// One word being read: finished pieces plus literal text not yet pushed.
#[derive(Default)]
struct WordReader {
    pieces: Word,
    text: String,
    /// Set once a quote or placeholder is seen: the word can no longer be an
    /// assignment (a shell only treats a plain `NAME=` prefix as one).
    quoted_or_param: bool,
    assignment: Option<String>,
}

impl WordReader {
    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
    }

    fn param(&mut self, chars: &mut TemplateChars<'_>) -> std::result::Result<(), String> {
        self.flush();
        self.pieces.push(Piece::Param(read_param(chars)?));
        Ok(())
    }

    /// An unquoted `=`: ends the variable name of an assignment, or is literal.
    fn equals(&mut self) {
        let is_name = self
            .text
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && self
                .text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if self.assignment.is_none() && !self.quoted_or_param && is_name {
            self.assignment = Some(std::mem::take(&mut self.text));
        } else {
            self.text.push('=');
        }
    }

    fn finish(mut self) -> (Word, Option<String>) {
        self.flush();
        if self.pieces.is_empty() {
            self.pieces.push(Piece::Text(String::new()));
        }
        (self.pieces, self.assignment)
    }
}

/// Reads one word, up to the next unquoted space or the end.
fn read_word(chars: &mut TemplateChars<'_>) -> std::result::Result<(Word, Option<String>), String> {
    let mut word = WordReader::default();
    while let Some(c) = chars.next_if(|c| *c != ' ') {
        match c {
            '\'' => {
                word.quoted_or_param = true;
                read_single_quoted(chars, &mut word)?;
            }
            '"' => {
                word.quoted_or_param = true;
                read_double_quoted(chars, &mut word)?;
            }
            '{' => {
                word.quoted_or_param = true;
                word.param(chars)?;
            }
            '=' => word.equals(),
            c if is_safe_char(c) => word.text.push(c),
            c => return Err(format!("character {c:?} is not allowed in a command")),
        }
    }
    Ok(word.finish())
}

/// Reads up to the closing `'`: everything literal, placeholders not allowed.
fn read_single_quoted(
    chars: &mut TemplateChars<'_>,
    word: &mut WordReader,
) -> std::result::Result<(), String> {
    loop {
        match chars.next() {
            Some('\'') => return Ok(()),
            Some(c) if c == '{' || c == '}' || c.is_control() => {
                return Err(format!("{c:?} inside single quotes"))
            }
            Some(c) => word.text.push(c),
            None => return Err("unterminated single quote".into()),
        }
    }
}

/// Reads up to the closing `"`: literal text and placeholders; nothing a shell
/// would expand inside double quotes is allowed.
fn read_double_quoted(
    chars: &mut TemplateChars<'_>,
    word: &mut WordReader,
) -> std::result::Result<(), String> {
    loop {
        match chars.next() {
            Some('"') => return Ok(()),
            Some('{') => word.param(chars)?,
            Some(c) if "$`\\!}".contains(c) || c.is_control() => {
                return Err(format!("{c:?} inside double quotes"))
            }
            Some(c) => word.text.push(c),
            None => return Err("unterminated double quote".into()),
        }
    }
}

fn read_param(chars: &mut TemplateChars<'_>) -> std::result::Result<String, String> {
    let mut name = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c) => name.push(c),
            None => return Err("unterminated '{' placeholder".into()),
        }
    }
    check_param_name(&name)?;
    Ok(name)
}

/// A command built from a whitelist entry and validated parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltCommand {
    /// Display string (the template with values filled in).
    pub command: String,
    /// What the executor runs.
    pub argv: Vec<String>,
    /// Environment for the executor.
    pub env: BTreeMap<String, String>,
    /// The `service_name` parameter's value, if the entry has one.
    pub service_name: Option<String>,
    /// Every parameter's value the command was built from: defaults
    /// applied, values normalised (what the action records as `params`).
    pub params: BTreeMap<String, String>,
}

/// The set of action types a queue accepts. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    entries: BTreeMap<String, WhitelistEntry>,
    version: String,
}

/// The default whitelist as config text: SPEC's four action types.
pub const DEFAULT_WHITELIST_JSON: &str = r#"{
  "actions": {
    "restart_service": {
      "command": "systemctl restart {service_name}",
      "params": { "service_name": { "kind": "systemd_unit" } },
      "conflict": "pending_duplicate"
    },
    "clear_logs": {
      "command": "journalctl --vacuum-time=7d"
    },
    "apt_update": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get update -q -o APT::Sandbox::User=root",
      "conflict": { "exclusive_group": "apt" }
    },
    "apt_upgrade_all": {
      "command": "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y -o Dpkg::Options::=\"--force-confdef\" -o Dpkg::Options::=\"--force-confold\" -o APT::Sandbox::User=root",
      "conflict": { "exclusive_group": "apt" }
    }
  }
}"#;

/// The config as a JSON value.
fn config_value(entries: &BTreeMap<String, WhitelistEntry>) -> serde_json::Value {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhitelistConfig {
    actions: BTreeMap<String, EntryConfig>,
}

impl Default for Whitelist {
    fn default() -> Self {
        Whitelist::from_json(DEFAULT_WHITELIST_JSON).expect("the default whitelist is valid")
    }
}

impl Whitelist {
    /// Parses a whitelist from its JSON config text (format in the README).
    /// A malformed config is [`Error::InvalidInput`] naming the problem.
    pub fn from_json(text: &str) -> Result<Self> {
        let config: WhitelistConfig = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("invalid whitelist config: {e}")))?;
        if config.actions.is_empty() {
            return Err(Error::InvalidInput(
                "invalid whitelist config: no actions defined".into(),
            ));
        }
        let entries = config
            .actions
            .into_iter()
            .map(|(name, entry)| Ok((name.clone(), WhitelistEntry::parse(&name, entry)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let canonical = canonical_config(&entries);
        let version = crate::digest::lower_hex(&sha2::Sha256::digest(canonical.as_bytes()));
        Ok(Whitelist { entries, version })
    }

    /// The config text this whitelist was (or could have been) loaded from.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&config_value(&self.entries))
            .expect("whitelist config serializes")
    }

    /// The whitelist's version: the hex SHA-256 of its canonical config (keys
    /// sorted, no whitespace, defaults left out), so the same config always has
    /// the same version however it was written, and any change gives a new one.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The entry for `action_type`, if whitelisted.
    pub fn get(&self, action_type: &str) -> Option<&WhitelistEntry> {
        self.entries.get(action_type)
    }

    /// All entries, by name.
    pub fn entries(&self) -> impl Iterator<Item = &WhitelistEntry> {
        self.entries.values()
    }

    /// Action types sharing `group`'s exclusive conflict group.
    pub fn group_members(&self, group: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(
                |e| matches!(&e.config.conflict, ConflictPolicy::ExclusiveGroup(g) if g == group),
            )
            .map(|e| e.name.clone())
            .collect()
    }

    /// Checks that every required parameter is present and non-empty and that no
    /// undeclared one is given (SPEC create rule 1). Unknown types pass here; they
    /// are refused by [`Whitelist::build`] after the server check (rule 3).
    pub fn check_shape(&self, action_type: &str, params: &BTreeMap<String, String>) -> Result<()> {
        let Some(entry) = self.get(action_type) else {
            return Ok(());
        };
        for (name, spec) in &entry.config.params {
            let given = params.get(name).map(String::as_str);
            if spec.default.is_none() && given.is_none() {
                return Err(Error::InvalidInput(format!(
                    "{name} is required for action type '{action_type}'"
                )));
            }
            if given == Some("") {
                return Err(Error::InvalidInput(format!("{name} must not be empty")));
            }
        }
        if let Some(extra) = params
            .keys()
            .find(|k| !entry.config.params.contains_key(*k))
        {
            return Err(Error::InvalidInput(format!(
                "{extra} is not a parameter of action type '{action_type}'"
            )));
        }
        Ok(())
    }

    /// Builds the command for `action_type` from `params`: NotWhitelisted when the type
    /// is unknown or a value fails its validator.
    pub fn build(
        &self,
        action_type: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<BuiltCommand> {
        let entry = self.get(action_type).ok_or_else(|| {
            Error::NotWhitelisted(format!(
                "Action type '{}' not in whitelist",
                action_type.escape_debug()
            ))
        })?;
        self.check_shape(action_type, params)?;
        let mut values = BTreeMap::new();
        for (name, spec) in &entry.config.params {
            let value = params
                .get(name)
                .or(spec.default.as_ref())
                .expect("shape checked");
            let value = spec.kind.validate(value).map_err(|why| {
                Error::NotWhitelisted(format!(
                    "Parameter '{name}' value {:?} not in whitelist for action type '{action_type}': {why}",
                    value.chars().take(80).collect::<String>()
                ))
            })?;
            values.insert(name.as_str(), value);
        }
        let render = |word: &Word| -> String {
            word.iter()
                .map(|p| match p {
                    Piece::Text(t) => t.as_str(),
                    Piece::Param(n) => values[n.as_str()].as_str(),
                })
                .collect()
        };
        let mut command = entry.config.command.clone();
        for (name, value) in &values {
            command = command.replace(&format!("{{{name}}}"), value);
        }
        Ok(BuiltCommand {
            command,
            argv: entry.argv.iter().map(render).collect(),
            env: entry
                .env
                .iter()
                .map(|(k, w)| (k.clone(), render(w)))
                .collect(),
            service_name: values.get("service_name").cloned(),
            params: values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }
}
