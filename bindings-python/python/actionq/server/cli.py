"""``actionq-server``: runs the Action Queue API under uvicorn.

    actionq-server [--host 127.0.0.1] [--port 8080] [--database FILE|URL] [--whitelist FILE]
                   [--signing-key FILE] [--allowed-hosts HOST ...]
                   [--tls-cert FILE --tls-key FILE]

Uses ``ACTIONQ_API_KEY`` if set; otherwise generates a key, writes it to a
file only its owner can read (mode 0600) and prints that file's path, never
the key. ``--database`` (a SQLite file, or a ``postgresql://`` URL) defaults to
``ACTIONQ_DATABASE``; with neither the queue lives in memory (lost on exit).
``--signing-key`` (default ``ACTIONQ_SIGNING_KEY_FILE``; else generated beside
a SQLite file) signs every claim; ``--allowed-hosts`` (default: the bind
address and localhost) are the ``Host`` header values served.

For containers (docs/contract/deployment.md): every option also comes from
the environment (``ACTIONQ_HOST``, ``ACTIONQ_PORT``, ``ACTIONQ_WHITELIST``,
``ACTIONQ_ALLOWED_HOSTS`` space-separated, ``ACTIONQ_LOG_FORMAT``,
``ACTIONQ_RETENTION_DAYS``), and the two
secrets from files: ``ACTIONQ_API_KEY_FILE`` and ``ACTIONQ_DATABASE_FILE``
(one trailing newline ignored; a variable and its ``_FILE`` both set is an
error). ``--log-format json`` writes one JSON line per request and per
background job (actionq.server.logs). SIGTERM stops the server within
:data:`SHUTDOWN_GRACE_SECONDS`, long-polls included. ``--tls-cert`` and
``--tls-key`` (``ACTIONQ_TLS_CERT``, ``ACTIONQ_TLS_KEY``: PEM files) serve
https instead of http, for agents on other hosts; both or neither.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from actionq.server import retention
from actionq.server.routes import ServerState
from actionq.server.notify import NOTIFY_ENV, NotifyConfigError, load_config
from actionq.server.app import API_KEY_ENV, POSTGRES_SCHEMES, SIGNING_KEY_ENV, create_app, resolve_signing_key
from actionq.server.logs import LOG_FORMATS, RequestLog, log_config

DATABASE_ENV = "ACTIONQ_DATABASE"
"""Environment variable naming the SQLite file or PostgreSQL URL when ``--database`` is not given."""

API_KEY_FILE_NAME = "api-key"
"""The file a generated API key is written to, beside a SQLite database."""


TLS_CERT_ENV = "ACTIONQ_TLS_CERT"
"""Environment variable giving ``--tls-cert``."""

TLS_KEY_ENV = "ACTIONQ_TLS_KEY"
"""Environment variable giving ``--tls-key``."""

LOG_FORMAT_ENV = "ACTIONQ_LOG_FORMAT"
RETENTION_ENV = "ACTIONQ_RETENTION_DAYS"


def retention_days(text: str) -> int:
    """``--retention-days``: a whole number of days, at least 1."""
    days = int(text)
    if days < 1:
        raise ValueError(text)
    return days
"""Environment variable giving ``--log-format``."""

SHUTDOWN_GRACE_SECONDS = 5
"""After SIGTERM, how long open requests (long-polls included) may run before
they are cut: well within the 10 s an orchestrator gives before SIGKILL."""


class ConfigError(Exception):
    """A start-up setting that cannot be used; the message says which and why."""


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of ``name``, or of the file ``name_FILE`` names with one
    trailing newline removed (Docker and Kubernetes secrets); None when
    neither is set. Both set, an unreadable or empty file: ConfigError."""
    env = os.environ if environ is None else environ
    value, path = env.get(name) or None, env.get(f"{name}_FILE") or None
    if value is not None and path is not None:
        raise ConfigError(f"both {name} and {name}_FILE are set: set only one")
    if path is None:
        return value
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        # The path only, never the contents.
        raise ConfigError(f"{name}_FILE: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if not text:
        raise ConfigError(f"{name}_FILE: {path} is empty")
    return text


def api_key_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The API key to use (``ACTIONQ_API_KEY`` or ``ACTIONQ_API_KEY_FILE``) and
    whether it was generated (neither set)."""
    key = secret_from_env(API_KEY_ENV, environ)
    if key:
        return key, False
    return secrets.token_urlsafe(32), True


def parser() -> argparse.ArgumentParser:
    """The command line of ``actionq-server``."""
    p = argparse.ArgumentParser(prog="actionq-server", description=(__doc__ or "").splitlines()[0])
    env = os.environ
    p.add_argument(
        "--retention-days",
        # argparse converts a str default with `type`: a bad value is a usage error.
        type=retention_days,
        default=env.get(RETENTION_ENV) or None,
        help=f"prune finished actions whose last change is older than N days, hourly (default ${RETENTION_ENV}, "
        "else keep everything; docs/contract/retention.md)",
    )
    p.add_argument(
        "--host", default=env.get("ACTIONQ_HOST") or "127.0.0.1", help="address to listen on (default $ACTIONQ_HOST, else 127.0.0.1)"
    )
    p.add_argument(
        # argparse converts a str default with `type`: a bad $ACTIONQ_PORT is a usage error.
        "--port", type=int, default=env.get("ACTIONQ_PORT") or 8080, help="TCP port (default $ACTIONQ_PORT, else 8080)"
    )
    p.add_argument(
        "--database",
        # A str, not a Path: a Path would fold the URL's "//".
        type=str,
        default=None,
        help=(
            "SQLite file, created with its directory if missing, or a postgresql:// URL "
            f"(default ${DATABASE_ENV} or the file ${DATABASE_ENV}_FILE names; else in memory)"
        ),
    )
    p.add_argument(
        "--whitelist",
        type=Path,
        default=env.get("ACTIONQ_WHITELIST") or None,
        help="whitelist config, a JSON file (default $ACTIONQ_WHITELIST, else built in)",
    )
    p.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=env.get(LOG_FORMAT_ENV) or "text",
        help=f"text, or json: one JSON line per request and background job (default ${LOG_FORMAT_ENV}, else text)",
    )
    p.add_argument(
        "--signing-key",
        type=Path,
        default=os.environ.get(SIGNING_KEY_ENV) or None,
        help=(
            f"claim-signing key, a PEM PKCS#8 Ed25519 file, mode 0600 (default ${SIGNING_KEY_ENV}; "
            "else generated beside a SQLite database, with its public key for agents)"
        ),
    )
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        default=(env.get("ACTIONQ_ALLOWED_HOSTS") or "").split() or None,
        metavar="HOST",
        help=(
            "Host header values served, others get 400 "
            "(default $ACTIONQ_ALLOWED_HOSTS, space-separated, else the bind address and localhost)"
        ),
    )
    p.add_argument(
        "--notify",
        type=Path,
        default=env.get(NOTIFY_ENV) or None,
        metavar="FILE",
        help=f"notification sinks, a TOML file (default ${NOTIFY_ENV}; else none): docs/contract/notifications.md",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=env.get(TLS_CERT_ENV) or None,
        metavar="FILE",
        help=f"serve https: the certificate chain, PEM (default ${TLS_CERT_ENV}); needs --tls-key",
    )
    p.add_argument(
        "--tls-key",
        type=Path,
        default=env.get(TLS_KEY_ENV) or None,
        metavar="FILE",
        help=f"the certificate's private key, PEM (default ${TLS_KEY_ENV}); needs --tls-cert",
    )
    return p


def tls_files(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """The certificate and key to serve https with, None for plain http.
    One without the other, or a file that cannot be read: ConfigError (the
    path only, never the key's contents)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            with path.open("rb"):
                pass
        except OSError as e:
            raise ConfigError(f"{option}: cannot read {path}: {e.strerror or e}") from None
    return cert, key


def write_api_key(key: str, folder: Path | None) -> Path:
    """Writes a generated API key to a new mode-0600 file: ``api-key`` in
    ``folder`` (replaced), or a fresh temporary file when there is none."""
    if folder is None:
        fd, name = tempfile.mkstemp(prefix="actionq-api-key-")
        path = Path(name)
    else:
        path = folder / API_KEY_FILE_NAME
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``actionq-server`` console script."""
    import uvicorn  # the server extra; imported here so `--help` works without it
    from uvicorn.config import STARTUP_FAILURE

    cli = parser()
    args = cli.parse_args(argv)
    if args.log_format not in LOG_FORMATS:
        cli.error(f"{LOG_FORMAT_ENV}: {args.log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    logging.config.dictConfig(log_config(args.log_format))
    try:
        database: str | None = args.database or secret_from_env(DATABASE_ENV)
        key, generated = api_key_from_env()
        tls = tls_files(args.tls_cert, args.tls_key)
    except ConfigError as e:
        cli.error(str(e))
    data_folder: Path | None = None
    if database is None:
        where = "in memory (lost on exit)"
    elif database.startswith(POSTGRES_SCHEMES):
        # Not the URL itself: it may hold a password.
        where = "PostgreSQL database"
    else:
        data_folder = Path(database).parent
        data_folder.mkdir(parents=True, exist_ok=True)
        where = f"database {database}"
    if generated:
        # The key goes to a file only its owner reads, never to the terminal
        # or the log that captures it.
        key_file = write_api_key(key, data_folder)
        say(f"{API_KEY_ENV} is not set; generated an API key for this run into {key_file} (mode 0600):")
        say(f"  export {API_KEY_ENV}=\"$(cat {key_file})\"")
    signing_key, signing_where = resolve_signing_key(args.signing_key, database)
    say(f"claims are signed with {signing_where}")
    allowed_hosts = args.allowed_hosts or sorted({args.host, "localhost"})
    notify_config = None
    if args.notify is not None:
        try:
            notify_config = load_config(args.notify, page_url=f"http://{args.host}:{args.port}/")
        except NotifyConfigError as e:
            cli.error(str(e))
        say(f"notifications: {len(notify_config.sinks)} sink(s) from {args.notify}, linking to {notify_config.page_url}")
    app = create_app(
        database,
        api_key=key,
        whitelist=args.whitelist,
        signing_key=signing_key,
        allowed_hosts=allowed_hosts,
        notify_config=notify_config,
    )
    if args.retention_days is not None:
        retention.install(app, args.retention_days)
        say(f"finished actions older than {args.retention_days} days are pruned hourly (--retention-days)")
    if args.log_format == "json":
        # Outermost, so a request refused by any other layer is logged too.
        app.add_middleware(RequestLog)
    say(f"Host headers served: {', '.join(allowed_hosts)} (--allowed-hosts)")
    scheme = "http" if tls is None else "https"
    say(f"actionq API on {scheme}://{args.host}:{args.port}/api/v1 (Swagger UI: /docs), {where}")
    say(f"approvers' page: {scheme}://{args.host}:{args.port}/ (sign in with the API key); metrics: /metrics")
    state: ServerState = app.state.actionq

    class Server(uvicorn.Server):
        """uvicorn's server, ending open waits and streams at the shutdown
        signal: its graceful shutdown waits for open requests, and a claim
        may wait up to a minute."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            state.closing.close()
            super().handle_exit(sig, frame)

    server = Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=log_config(args.log_format),
            # JSON mode logs each request itself, with the route and the caller.
            access_log=args.log_format == "text",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            ssl_certfile=None if tls is None else tls[0],
            ssl_keyfile=None if tls is None else tls[1],
        )
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn raises the signal again once it has stopped
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def say(message: str) -> None:
    """A start-up line on stdout, in the log's format."""
    logging.getLogger("actionq.server").info(message)


if __name__ == "__main__":
    main()
