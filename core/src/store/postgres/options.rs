//! What a user can set when opening a [`PostgresStore`](super::PostgresStore),
//! and the reading of the URL: libpq URL syntax, plus `sslmode` values and
//! settings the `postgres` crate does not take itself, which are consumed here.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::limits;
use crate::store::is_postgres_url;

/// Settings for [`PostgresStore::open`](super::PostgresStore::open): PostgreSQL's
/// own, none of them shared with the SQLite store (whose busy timeout,
/// durability and read connections mean nothing here; see
/// [`PostgresOptions::refuse_sqlite_settings`]). The URL's query may override
/// these: `pool_size=8`, `lock_timeout=10s`, `statement_timeout=30s` (a
/// number of milliseconds, or with `ms`, `s` or `min`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections kept in the pool ([`limits::DEFAULT_PG_POOL_SIZE`], at least 1).
    pub pool_size: u32,
    /// PostgreSQL's `lock_timeout`: how long a statement waits for a row lock
    /// held by another connection before failing with a Busy error naming
    /// `lock_timeout` ([`limits::DEFAULT_PG_LOCK_TIMEOUT`]); zero waits
    /// forever, as in PostgreSQL.
    pub lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout`: longest a statement may run before the
    /// server cancels it, a Storage error naming `statement_timeout`; zero (the
    /// default) means no limit.
    pub statement_timeout: Duration,
    /// How long connecting, or waiting for a free pooled connection, may take
    /// ([`limits::DEFAULT_PG_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: limits::DEFAULT_PG_POOL_SIZE,
            lock_timeout: limits::DEFAULT_PG_LOCK_TIMEOUT,
            statement_timeout: Duration::ZERO,
            connect_timeout: limits::DEFAULT_PG_CONNECT_TIMEOUT,
        }
    }
}

impl PostgresOptions {
    /// For a host that holds SQLite settings beside PostgreSQL's (one options
    /// object whatever the location names) and opens a PostgreSQL URL: Ok
    /// when every SQLite setting is left at its default, else InvalidInput
    /// naming the ones that are not. PostgreSQL has no busy timeout,
    /// durability or read connections; taking one as something else (the
    /// busy timeout as [`PostgresOptions::lock_timeout`]) would change what
    /// the user set without saying so. A setting given with exactly its
    /// default value cannot be told apart from one not given, and passes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actionq::{PostgresOptions, SqliteOptions};
    ///
    /// assert!(PostgresOptions::refuse_sqlite_settings(&SqliteOptions::default()).is_ok());
    /// let sqlite = SqliteOptions { busy_timeout: Duration::from_secs(2), ..SqliteOptions::default() };
    /// let e = PostgresOptions::refuse_sqlite_settings(&sqlite).unwrap_err();
    /// assert_eq!(e.kind(), actionq::ErrorKind::InvalidInput);
    /// assert!(e.to_string().contains("busy_timeout"));
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn refuse_sqlite_settings(sqlite: &crate::SqliteOptions) -> Result<()> {
        let defaults = crate::SqliteOptions::default();
        let given: Vec<&str> = [
            (sqlite.busy_timeout != defaults.busy_timeout, "busy_timeout"),
            (sqlite.durability != defaults.durability, "durability"),
            (
                sqlite.read_connections != defaults.read_connections,
                "read_connections",
            ),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        Err(invalid(format!(
            "SQLite-only setting(s) {} given for a PostgreSQL database; PostgreSQL's \
             are lock_timeout, statement_timeout, connect_timeout and pool_size \
             (options or the URL's query)",
            given.join(", ")
        )))
    }
}

/// How the connection is protected, from the URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SslMode {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` (the default) / `allow`: TLS if the server offers it, unverified.
    Prefer,
    /// `require`: TLS, the certificate not verified (as libpq without a root cert).
    Require,
    /// `verify-ca` / `verify-full`: TLS, the certificate chain and host name verified.
    Verify,
}

/// A URL taken apart: what goes to the `postgres` crate, and what is ours.
pub(super) struct Target {
    pub(super) config: postgres::Config,
    pub(super) tls: Option<MakeRustlsConnect>,
    pub(super) options: PostgresOptions,
}

fn invalid(message: String) -> Error {
    Error::InvalidInput(message)
}

/// `%XX` escapes of the URL query value of parameter `key` decoded; a `+`
/// stays a `+`, as libpq reads it (a password or path may hold one). Errors
/// here and below name the parameter, never its value: a URL carries the
/// password, and errors end up in logs.
fn percent_decode(key: &str, value: &str) -> Result<String> {
    // A `%` not followed by two hex digits is passed through by the crate;
    // libpq refuses it, and so do we.
    let bytes = value.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(invalid(format!(
            "bad %-escape in database URL parameter '{key}'"
        )));
    }
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| invalid(format!("database URL parameter '{key}' is not UTF-8")))
}

/// A duration setting: milliseconds, or a number with `ms`, `s` or `min`.
fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    let (digits, unit_ms) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix("min") {
        (n, 60_000)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000)
    } else {
        (value, 1)
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            invalid(format!(
                "database URL setting {name} must be a whole number of ms, s or min"
            ))
        })
}

/// Reads `url` (libpq URL syntax) over `defaults`.
pub(super) fn parse(url: &str, defaults: &PostgresOptions) -> Result<Target> {
    if !is_postgres_url(url) {
        return Err(invalid(
            "a PostgreSQL database is named by a postgresql:// or postgres:// URL".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut options = defaults.clone();
    let mut ssl = SslMode::Prefer;
    let mut root_cert = None;
    let mut passed = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(key, raw)?;
        match key {
            "sslmode" => {
                ssl = match value.as_str() {
                    "disable" => SslMode::Disable,
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" | "verify-full" => SslMode::Verify,
                    _ => {
                        return Err(invalid(
                            "database URL setting sslmode must be one of: disable, allow, prefer, require, verify-ca, verify-full".into()
                        ))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(value),
            "pool_size" => {
                options.pool_size = value.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    invalid("database URL setting pool_size must be a whole number >= 1".into())
                })?
            }
            "lock_timeout" => options.lock_timeout = parse_duration(key, &value)?,
            "statement_timeout" => options.statement_timeout = parse_duration(key, &value)?,
            _ => passed.push(pair),
        }
    }
    let rest = if passed.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", passed.join("&"))
    };
    let mut config: postgres::Config = rest
        .parse()
        .map_err(|e| invalid(format!("invalid PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    // Timeouts travel as server options, so every pooled connection has them
    // from its first statement on, without a SET per checkout.
    let server_options = format!(
        "{} -c lock_timeout={} -c statement_timeout={}",
        config.get_options().unwrap_or(""),
        options.lock_timeout.as_millis(),
        options.statement_timeout.as_millis()
    );
    config.options(server_options.trim_start());
    let tls = match ssl {
        SslMode::Disable => {
            config.ssl_mode(postgres::config::SslMode::Disable);
            None
        }
        SslMode::Prefer | SslMode::Require => {
            config.ssl_mode(if ssl == SslMode::Prefer {
                postgres::config::SslMode::Prefer
            } else {
                postgres::config::SslMode::Require
            });
            Some(unverified_tls())
        }
        SslMode::Verify => {
            config.ssl_mode(postgres::config::SslMode::Require);
            Some(verified_tls(root_cert.as_deref())?)
        }
    };
    Ok(Target {
        config,
        tls,
        options,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring, on purpose: no aws-lc or system OpenSSL to build. rustls 0.23.48
    // deprecates its provider for lacking post-quantum key exchange.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS that checks the chain against `root_cert` (a PEM file) or the system's
/// roots, and the host name.
fn verified_tls(root_cert: Option<&str>) -> Result<MakeRustlsConnect> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::Storage(format!("read sslrootcert '{path}': {e}")))?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(Error::Storage(
            "sslmode=verify-full: no root certificate to verify the server with (give sslrootcert=<PEM file>)".into(),
        ));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Storage(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// TLS that encrypts without checking who answers, as libpq's `require`.
fn unverified_tls() -> MakeRustlsConnect {
    let provider = provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Accepts any certificate (but still checks the handshake signatures).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error about the URL never shows a parameter's value —
    /// the password least of all.
    #[test]
    fn errors_never_echo_a_parameter_value() {
        for url in [
            "postgresql://aq@db/q?password=hunter2%zz",
            "postgresql://aq@db/q?password=hunter2%ff%fe",
            "postgresql://aq@db/q?sslmode=hunter2",
            "postgresql://aq@db/q?pool_size=hunter2",
            "postgresql://aq@db/q?lock_timeout=hunter2",
            "postgresql://aq@db/q?statement_timeout=5hunter2",
            "postgresql://aq@db/q?connect_timeout=hunter2",
        ] {
            let err = parse(url, &PostgresOptions::default())
                .err()
                .unwrap_or_else(|| panic!("{url} is refused"));
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{url}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn our_settings_are_taken_out_of_the_url() {
        let target = parse(
            "postgresql://u@h:5433/db?pool_size=3&lock_timeout=2s&sslmode=disable&application_name=x",
            &PostgresOptions::default(),
        )
        .unwrap();
        assert_eq!(target.options.pool_size, 3);
        assert_eq!(target.options.lock_timeout, Duration::from_secs(2));
        assert!(target.tls.is_none());
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(
            target.config.get_options(),
            Some("-c lock_timeout=2000 -c statement_timeout=0")
        );
    }

    #[test]
    fn bad_settings_are_invalid_input() {
        for url in [
            "mysql://h/db",
            "postgresql://h/db?sslmode=maybe",
            "postgresql://h/db?pool_size=0",
            "postgresql://h/db?lock_timeout=soon",
            "postgresql://h/db?nonsense_option=1",
        ] {
            let e = parse(url, &PostgresOptions::default()).err().unwrap();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{url}: {e}");
        }
    }

    #[test]
    fn a_plus_in_the_url_stays_a_plus() {
        let target = parse(
            "postgresql://u:a+b@h/db?sslmode=disable&application_name=x+y",
            &PostgresOptions::default(),
        )
        .unwrap();
        assert_eq!(target.config.get_password(), Some(&b"a+b"[..]));
        assert_eq!(target.config.get_application_name(), Some("x+y"));
        // Our own settings decode the same way: only `%XX` is an escape.
        assert_eq!(
            percent_decode("sslrootcert", "/etc/a+b%20c%2B.pem").unwrap(),
            "/etc/a+b c+.pem"
        );
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_settings_are_refused_for_postgres() {
        use crate::{Durability, SqliteOptions};

        assert!(PostgresOptions::refuse_sqlite_settings(&SqliteOptions::default()).is_ok());
        let defaults = SqliteOptions::default;
        for (sqlite, name) in [
            (
                SqliteOptions {
                    busy_timeout: Duration::from_millis(250),
                    ..defaults()
                },
                "busy_timeout",
            ),
            (
                SqliteOptions {
                    durability: Durability::Full,
                    ..defaults()
                },
                "durability",
            ),
            (
                SqliteOptions {
                    read_connections: 1,
                    ..defaults()
                },
                "read_connections",
            ),
        ] {
            let e = PostgresOptions::refuse_sqlite_settings(&sqlite).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{name}: {e}");
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }
}
