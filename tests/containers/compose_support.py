"""What the container tests share: the images' users, free ports, files the
containers read with the owner and mode they check."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_UID = 10001  # the server image's `actionq` user
POSTGRES_UID = 999  # tests/containers/postgres/Dockerfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write(path: Path, text: str, mode: int, uid: int = 0) -> None:
    path.write_text(text, encoding="utf-8")
    os.chown(path, uid, uid)
    path.chmod(mode)


def compose(
    project: str, folder: Path, publish_port: int, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``docker-compose`` on the repository's compose.yaml and the test's
    ``override.yaml`` in ``folder``; the first server published on
    ``publish_port``. Fails the test on a non-zero exit unless ``check`` is off."""
    done = subprocess.run(
        ["docker-compose", "-p", project, "-f", str(ROOT / "compose.yaml"), "-f", str(folder / "override.yaml"), *args],
        cwd=ROOT,
        env={**os.environ, "ACTIONQ_PUBLISH_PORT": str(publish_port)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"docker-compose {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


SECRETS = ("api_key", "db_password", "database_url", "claim_signing_key")
"""The secrets compose.yaml names, each a file of ``secrets/``."""


def write_secrets(folder: Path, api_key: str, db_password: str, signing_pem: str) -> dict[str, dict[str, str]]:
    """Writes compose.yaml's secrets into ``folder/secrets`` with the owner and
    mode each reader checks; gives the override's ``secrets`` section."""
    secrets = folder / "secrets"
    secrets.mkdir(mode=0o755)
    write(secrets / "api_key", api_key + "\n", 0o400, SERVER_UID)
    write(secrets / "db_password", db_password + "\n", 0o400, POSTGRES_UID)
    write(secrets / "database_url", f"postgresql://actionq:{db_password}@postgres:5432/actionq\n", 0o400, SERVER_UID)
    write(secrets / "claim_signing_key", signing_pem, 0o600, SERVER_UID)
    return {name: {"file": str(secrets / name)} for name in SECRETS}
