"""``actionq-server``: runs the Action Queue API under uvicorn.

    actionq-server [--host 127.0.0.1] [--port 8080] [--database FILE|URL] [--whitelist FILE]
                   [--signing-key FILE] [--allowed-hosts HOST ...]

Uses ``ACTIONQ_API_KEY`` if set; otherwise generates a key, writes it to a
file only its owner can read (mode 0600) and prints that file's path, never
the key. ``--database`` (a SQLite file, or a ``postgresql://`` URL) defaults to
``ACTIONQ_DATABASE``; with neither the queue lives in memory (lost on exit).
``--signing-key`` (default ``ACTIONQ_SIGNING_KEY_FILE``; else generated beside
a SQLite file) signs every claim; ``--allowed-hosts`` (default: the bind
address and localhost) are the ``Host`` header values served.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from actionq.server.routes import ServerState
from actionq.server.app import API_KEY_ENV, POSTGRES_SCHEMES, SIGNING_KEY_ENV, create_app, resolve_signing_key

DATABASE_ENV = "ACTIONQ_DATABASE"
"""Environment variable naming the SQLite file or PostgreSQL URL when ``--database`` is not given."""

API_KEY_FILE_NAME = "api-key"
"""The file a generated API key is written to, beside a SQLite database."""


def api_key_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The API key to use and whether it was generated (not taken from the env)."""
    env = os.environ if environ is None else environ
    key = env.get(API_KEY_ENV)
    if key:
        return key, False
    return secrets.token_urlsafe(32), True


def parser() -> argparse.ArgumentParser:
    """The command line of ``actionq-server``."""
    p = argparse.ArgumentParser(prog="actionq-server", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument(
        "--database",
        # A str, not a Path: a Path would fold the URL's "//".
        type=str,
        default=os.environ.get(DATABASE_ENV) or None,
        help=(
            "SQLite file, created with its directory if missing, or a postgresql:// URL "
            f"(default ${DATABASE_ENV}; else in memory)"
        ),
    )
    p.add_argument("--whitelist", type=Path, default=None, help="whitelist config, a JSON file (default: built in)")
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
        default=None,
        metavar="HOST",
        help="Host header values served, others get 400 (default: the bind address and localhost)",
    )
    return p


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

    args = parser().parse_args(argv)
    database: str | None = args.database
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
    key, generated = api_key_from_env()
    if generated:
        # The key goes to a file only its owner reads, never to the terminal
        # or the log that captures it.
        key_file = write_api_key(key, data_folder)
        print(f"{API_KEY_ENV} is not set; generated an API key for this run into {key_file} (mode 0600):", flush=True)
        print(f"  export {API_KEY_ENV}=\"$(cat {key_file})\"", flush=True)
    signing_key, signing_where = resolve_signing_key(args.signing_key, database)
    print(f"claims are signed with {signing_where}", flush=True)
    allowed_hosts = args.allowed_hosts or sorted({args.host, "localhost"})
    app = create_app(
        database, api_key=key, whitelist=args.whitelist, signing_key=signing_key, allowed_hosts=allowed_hosts
    )
    print(f"Host headers served: {', '.join(allowed_hosts)} (--allowed-hosts)", flush=True)
    print(f"actionq API on http://{args.host}:{args.port}/api/v1 (Swagger UI: /docs), {where}", flush=True)
    print(f"approvers' page: http://{args.host}:{args.port}/ (sign in with the API key); metrics: /metrics", flush=True)
    state: ServerState = app.state.actionq

    class Server(uvicorn.Server):
        """uvicorn's server, ending open waits and streams at the shutdown
        signal: its graceful shutdown waits for open requests, and a claim
        may wait up to a minute."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            state.closing.close()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=args.host, port=args.port))
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn raises the signal again once it has stopped
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
