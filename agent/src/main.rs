//! `actionq-agent [--config FILE] [--check]`: see the crate docs and the README.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use actionq_agent::agent::{Agent, Exit};
use actionq_agent::client::Client;
use actionq_agent::config::{read_token, read_trust, Config, ConfigError, Trust};
use actionq_agent::log::log;
use serde_json::json;

/// Config file read when `--config` is not given.
const DEFAULT_CONFIG: &str = "/etc/actionq-agent/config.toml";
/// Exit status for a configuration the agent cannot work with (sysexits'
/// EX_CONFIG): the unit file does not restart on it.
const EXIT_CONFIG: u8 = 78;

const USAGE: &str = "usage: actionq-agent [--config FILE] [--check]\n\
  --config FILE  the agent's TOML config (default /etc/actionq-agent/config.toml)\n\
  --check        check the config and the token file, then exit";

fn main() -> ExitCode {
    let mut config_path = PathBuf::from(DEFAULT_CONFIG);
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => match args.next() {
                Some(path) => config_path = PathBuf::from(path),
                None => return usage_error("--config needs a file"),
            },
            "--check" => check_only = true,
            "--version" => {
                println!("actionq-agent {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let (config, trust, client) = match load(&config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            log("error", "config", json!({ "message": e.to_string() }));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if check_only {
        println!(
            "actionq-agent: {}, its token, whitelist, claim key and CA files are usable",
            config_path.display()
        );
        return ExitCode::SUCCESS;
    }
    // SIGTERM and SIGINT write a byte to this pipe; the agent polls its read
    // end, so a stop request wakes it at once from any wait.
    let stop = match stop_pipe() {
        Ok(s) => s,
        Err(e) => {
            log(
                "error",
                "start",
                json!({ "message": format!("cannot set up signal handling: {e}") }),
            );
            return ExitCode::FAILURE;
        }
    };
    match Agent::new(config, trust, client, stop).run() {
        Exit::Stopped => ExitCode::SUCCESS,
        Exit::Refused(_) => ExitCode::from(EXIT_CONFIG),
    }
}

/// Everything `--check` checks: the config, the token, what the agent
/// trusts, the CA file.
fn load(config_path: &std::path::Path) -> Result<(Config, Trust, Client), ConfigError> {
    let config = Config::load(config_path)?;
    let token = read_token(&config.token_file)?;
    let trust = read_trust(&config)?;
    let ca_pem = match &config.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| ConfigError(format!("cannot read ca_file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let client = Client::new(
        &config.server_urls,
        &config.server_id,
        token,
        &config.auth_header,
        config.http_timeout,
        ca_pem.as_deref(),
    )
    .map_err(|e| {
        let path = config
            .ca_file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        ConfigError(format!("ca_file {}: {e}", path.display()))
    })?;
    Ok((config, trust, client))
}

fn stop_pipe() -> std::io::Result<UnixStream> {
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    Ok(read)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("actionq-agent: {message}\n{USAGE}");
    ExitCode::from(2)
}
