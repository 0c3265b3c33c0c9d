"""``actionq-server``: runs the Action Queue API under uvicorn.

    actionq-server [--host 127.0.0.1] [--port 8080] [--database FILE|URL] [--whitelist FILE]

Uses ``ACTIONQ_API_KEY`` if set; otherwise generates a key and prints it.
``--database`` (a SQLite file, or a ``postgresql://`` URL) defaults to
``ACTIONQ_DATABASE``; with neither the queue lives in memory (lost on exit).
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from actionq.server.app import API_KEY_ENV, create_app

DATABASE_ENV = "ACTIONQ_DATABASE"
"""Environment variable naming the SQLite file or PostgreSQL URL when ``--database`` is not given."""

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""URL prefixes that name a PostgreSQL database rather than a SQLite file."""


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
    return p


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``actionq-server`` console script."""
    import uvicorn  # the server extra; imported here so `--help` works without it

    args = parser().parse_args(argv)
    key, generated = api_key_from_env()
    if generated:
        print(f"{API_KEY_ENV} is not set; generated an API key for this run:", flush=True)
        print(f"  {API_KEY_ENV}={key}", flush=True)
    database: str | None = args.database
    if database is None:
        where = "in memory (lost on exit)"
    elif database.startswith(POSTGRES_SCHEMES):
        # Not the URL itself: it may hold a password.
        where = "PostgreSQL database"
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        where = f"database {database}"
    app = create_app(database, api_key=key, whitelist=args.whitelist)
    print(f"actionq API on http://{args.host}:{args.port}/api/v1 (Swagger UI: /docs), {where}", flush=True)
    print(f"approvers' page: http://{args.host}:{args.port}/ (sign in with the API key); metrics: /metrics", flush=True)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
