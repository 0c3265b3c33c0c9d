//! The fixed set of safe parameter validators ([`ParamKind`]): what a value
//! must look like before it may stand in an argv word.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

    pub(super) fn check_config(&self, name: &str) -> Result<()> {
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
pub(super) fn is_safe_char(c: char) -> bool {
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
