"""What the container tests share: the images' users, free ports, files the
containers read with the owner and mode they check."""

from __future__ import annotations

import os
import socket
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
