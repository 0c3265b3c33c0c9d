"""Runs the Action Queue API on 127.0.0.1:8080 with its SQLite file under ./data/.

    python -m actionq_api [--port 8080] [--data-dir data]

Uses ``ACTIONQ_API_KEY`` if set; otherwise generates a key and prints it.
"""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

import uvicorn

from actionq_api.app import API_KEY_ENV, create_app

HOST = "127.0.0.1"


def api_key_from_env(environ: dict[str, str] | None = None) -> tuple[str, bool]:
    """The API key to use and whether it was generated (not taken from the env)."""
    env = os.environ if environ is None else environ
    key = env.get(API_KEY_ENV)
    if key:
        return key, False
    return secrets.token_urlsafe(32), True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m actionq_api", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (default 8080)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="directory of the SQLite file")
    args = parser.parse_args(argv)

    key, generated = api_key_from_env()
    if generated:
        print(f"{API_KEY_ENV} is not set; generated an API key for this run:", flush=True)
        print(f"  {API_KEY_ENV}={key}", flush=True)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    db = args.data_dir / "actionq.sqlite3"
    app = create_app(db, api_key=key)
    print(f"actionq API on http://{HOST}:{args.port}/api/v1 (Swagger UI: /docs), database {db}", flush=True)
    uvicorn.run(app, host=HOST, port=args.port)


if __name__ == "__main__":
    main()
