"""Claims signed by the server (README "What the agent trusts"), the
signing key's files, Swagger UI from the wheel's own files, and the Host
header check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import actionq
from actionq.server import create_app
from actionq.server.app import CLAIM_PUBLIC_KEY_NAME, CLAIM_SIGNING_KEY_NAME, SIGNING_KEY_ENV

API_KEY = "claim-signing-test-key"
AUTH = {"X-API-Key": API_KEY}


def claim_response(client: TestClient) -> str:
    assert client.post("/api/v1/servers", json={"id": "web-1", "hostname": None}).status_code == 201
    created = client.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "clear_logs"})
    assert created.status_code == 201, created.text
    r = client.post("/api/v1/servers/web-1/actions/claim", json={"lease_seconds": 60})
    assert r.status_code == 200, r.text
    return r.text


def test_every_claim_carries_a_signature_of_the_servers_key() -> None:
    key = actionq.ClaimSigningKey.generate()
    with TestClient(create_app(api_key=API_KEY, signing_key=key), headers=AUTH) as c:
        text = claim_response(c)
        schema = c.get("/openapi.json").json()
    claim = key.public_key().verify_json(text)
    assert claim.status == "executing" and claim.action_type == "clear_logs"
    # Another key, or an edited claim, does not verify.
    with pytest.raises(actionq.UnauthenticatedError):
        actionq.ClaimSigningKey.generate().public_key().verify_json(text)
    edited = text.replace('"journalctl"', '"sh"')
    assert edited != text
    with pytest.raises(actionq.UnauthenticatedError):
        key.public_key().verify_json(edited)
    claim_out = schema["components"]["schemas"]["ClaimOut"]
    assert "signature" in claim_out["required"]


def test_a_key_is_generated_beside_the_database_once_and_reused(tmp_path: Path) -> None:
    db = tmp_path / "actionq.sqlite3"
    with TestClient(create_app(db, api_key=API_KEY), headers=AUTH) as c:
        text = claim_response(c)
    key_file, public_file = tmp_path / CLAIM_SIGNING_KEY_NAME, tmp_path / CLAIM_PUBLIC_KEY_NAME
    assert key_file.stat().st_mode & 0o777 == 0o600
    public = actionq.ClaimVerifyingKey.load(public_file)
    public.verify_json(text)
    before = key_file.read_bytes()
    with TestClient(create_app(db, api_key=API_KEY), headers=AUTH) as c:
        r = c.post("/api/v1/actions", json={"server_id": "web-1", "action_type": "apt_update"})
        assert r.status_code == 201
        second = c.post("/api/v1/servers/web-1/actions/claim", json={}).text
    assert key_file.read_bytes() == before
    public.verify_json(second)


def test_a_key_file_from_the_environment_or_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = actionq.ClaimSigningKey.generate()
    path = tmp_path / "signing.pem"
    path.write_text(key.to_pem())
    path.chmod(0o600)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(path))
    with TestClient(create_app(api_key=API_KEY), headers=AUTH) as c:
        key.public_key().verify_json(claim_response(c))
    monkeypatch.delenv(SIGNING_KEY_ENV)
    with TestClient(create_app(api_key=API_KEY, signing_key=path), headers=AUTH) as c:
        key.public_key().verify_json(claim_response(c))
    # A key others can read is refused, and the message does not show it.
    path.chmod(0o644)
    with pytest.raises(actionq.InvalidInputError, match="chmod 600") as e:
        create_app(api_key=API_KEY, signing_key=path)
    assert key.to_pem().splitlines()[1] not in str(e.value)


def test_docs_load_only_this_origins_files_under_a_csp() -> None:
    with TestClient(create_app(api_key=API_KEY)) as c:
        r = c.get("/docs")
        assert r.status_code == 200
        html = r.text
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # No other origin anywhere in the page, and no inline script.
        assert not re.search(r"(https?:)?//", html), html
        scripts = re.findall(r"<script[^>]*>", html)
        assert len(re.findall(r"<script[^>]*>\s*</script>", html)) == len(scripts) == 2, scripts
        assert all(' src="/docs/' in tag for tag in scripts), scripts
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith("/docs/") for s in sources), sources
        for source in sources:
            asset = c.get(source)
            assert asset.status_code == 200, source
            assert asset.headers["content-security-policy"] == csp
        assert "SwaggerUIBundle" in c.get("/docs/swagger-ui-bundle.js").text
        assert c.get("/docs/../app.py").status_code == 404
        assert c.get("/docs/index.j2").status_code == 404
        assert c.get("/openapi.json").status_code == 200


def test_a_foreign_host_header_is_refused() -> None:
    app = create_app(api_key=API_KEY, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://127.0.0.1:8080", headers=AUTH) as c:
        assert c.get("/api/v1/events").status_code == 200
        assert c.get("/api/v1/events", headers={"Host": "localhost:8080"}).status_code == 200
        r = c.get("/api/v1/events", headers={"Host": "evil.example"})
        assert r.status_code == 400, r.text
        assert c.get("/", headers={"Host": "evil.example:8080"}).status_code == 400
