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
//!
//! By concern: this file holds the [`Whitelist`] (loading, the default
//! config, building commands) and its entries; `validators` the parameter
//! checks ([`ParamKind`]), `template` the command template's words and the
//! [`BuiltCommand`], `policy` the conflict and approval policies, `canonical`
//! the canonical form and version digest.

mod canonical;
mod policy;
mod template;
mod validators;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use policy::{ApprovalPolicy, AutoApproveBudget, ConflictPolicy};
pub use template::BuiltCommand;
use template::{split_template, Piece, Word};
pub use validators::{ParamKind, MAX_PARAM_LEN};

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

/// The set of action types a queue accepts. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    entries: BTreeMap<String, WhitelistEntry>,
    version: String,
}

/// The default whitelist as config text: the four built-in action types.
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
        let version = canonical::version(&entries);
        Ok(Whitelist { entries, version })
    }

    /// The config text this whitelist was (or could have been) loaded from.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&canonical::config_value(&self.entries))
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
    /// undeclared one is given. Unknown types pass here; they are refused by
    /// [`Whitelist::build`], after the queue's server check.
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
