"""Identity on real servers under uvicorn: two server processes on one SQLite
file see a revocation at once; a chunked body past 1 MiB is refused without
being read whole; malformed headers are 401 on the wire too."""

from __future__ import annotations

import select
import socket
from pathlib import Path

import httpx
from test_live_server import live_server

from actionq import limits


def test_a_revocation_is_refused_at_once_by_a_second_server_process(tmp_path: Path) -> None:
    db = tmp_path / "actionq.sqlite3"
    with live_server("--database", str(db)) as (first, _, _), live_server("--database", str(db)) as (second, _, _):
        assert first.post("/servers", json={"id": "web-1"}).status_code == 201
        issued = first.post("/credentials", json={"name": "web-1-agent", "role": "agent", "server_id": "web-1"})
        assert issued.status_code == 201
        secret, credential_id = issued.json()["secret"], issued.json()["id"]
        # the agent sends its token only (the live clients carry the bootstrap key)
        with httpx.Client(base_url=second.base_url, headers={"X-Agent-Token": secret}, timeout=10) as agent:
            # the second process knows the credential the first issued
            assert agent.get("/me").json()["name"] == "web-1-agent"
            assert agent.post("/servers/web-1/actions/claim").status_code == 204
            assert first.delete(f"/credentials/{credential_id}").status_code == 204
            # ...and refuses it on the very next request, with no cache to wait out
            refused = agent.post("/servers/web-1/actions/claim")
            assert refused.status_code == 401 and refused.json()["detail"]["code"] == "UNAUTHENTICATED"
            assert agent.get("/me").status_code == 401


def test_a_chunked_body_past_the_limit_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    with live_server() as (http, _, _):
        url = httpx.URL(str(http.base_url))
        assert url.port is not None
        key = http.headers["X-API-Key"]
        # An endless chunked body: a server that reads bodies whole never
        # answers; this one answers 413 once the limit is passed.
        chunk = b"a" * (64 << 10)
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        answer = b""
        with socket.create_connection((url.host, url.port), timeout=30) as conn:
            conn.sendall(
                (
                    f"POST {url.path.rstrip('/')}/servers HTTP/1.1\r\nHost: {url.host}\r\nX-API-Key: {key}\r\n"
                    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                ).encode()
            )
            cap = 64 * limits.MAX_REQUEST_BODY_BYTES
            while sent < cap:
                readable, writable, _ = select.select([conn], [conn], [], 30)
                if readable:
                    break
                assert writable, "the server neither reads nor answers"
                try:
                    conn.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
            assert sent < cap, "the server kept reading far past the limit"
            while b"\r\n\r\n" not in answer:
                part = conn.recv(65536)
                if not part:
                    break
                answer += part
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # whatever the socket buffers held, the server stopped long before the cap
        assert sent < cap


def test_malformed_headers_are_401_on_the_wire() -> None:
    with live_server() as (http, _, _):
        for value in ("", "x" * 8000, "aq_ag_" + "\u00ff" * 10, "a b c"):
            raw = value.encode("latin-1")
            response = http.get("/events", headers={b"X-API-Key": raw})
            assert response.status_code == 401, (value[:20], response.text)
        with httpx.Client(base_url=http.base_url, timeout=10) as bare:
            response = bare.post("/servers/web-1/actions/claim", headers={b"X-Agent-Token": raw})
            assert response.status_code == 401, (value[:20], response.text)
