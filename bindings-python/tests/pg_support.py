"""The PostgreSQL test server (``ACTIONQ_TEST_PG_URL``, set by ``make test``):
a fresh schema per test, so tests share one server without seeing each other.

Without the variable a test skips with a message, except under ``CI=true``,
where it fails: CI must never silently skip PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

PG_URL_ENV = "ACTIONQ_TEST_PG_URL"


def admin_url() -> str:
    """The server's superuser URL; skips (or fails under CI) without one."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        return url
    if os.environ.get("CI") == "true":
        pytest.fail(f"{PG_URL_ENV} is not set under CI=true: the PostgreSQL tests must run (make test sets it)")
    pytest.skip(f"{PG_URL_ENV} is not set (run under `make pg-shell` or `make test`)")


def psql(sql: str) -> str:
    """Runs `sql` as the superuser with psql; its output."""
    psql_bin = shutil.which("psql")
    assert psql_bin, "psql (Debian's postgresql-client) is installed with the server"
    done = subprocess.run(
        [psql_bin, admin_url(), "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def schema_url(schema: str) -> str:
    """The superuser URL with `schema` first on its search path."""
    url = admin_url()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def fresh_url() -> str:
    """The URL of a new, empty schema."""
    schema = f"t_{uuid.uuid4().hex}"
    psql(f"CREATE SCHEMA {schema}")
    return schema_url(schema)
