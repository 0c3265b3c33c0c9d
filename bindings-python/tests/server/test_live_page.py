"""`actionq-server` (what `make run` starts) serves the approvers' page at /
and Prometheus metrics at /metrics, beside the API."""

from __future__ import annotations

from pathlib import Path

import httpx

from actionq.server.web import CONTENT_SECURITY_POLICY
from test_live_server import live_server


def test_the_run_command_serves_the_page_and_metrics(tmp_path: Path) -> None:
    with live_server("--database", str(tmp_path / "actionq.sqlite3")) as (http, _, _):
        root = str(http.base_url).removesuffix("/api/v1/").removesuffix("/api/v1")
        page = httpx.get(root + "/", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert '<script src="/static/app.js" defer></script>' in page.text
        assert httpx.get(root + "/static/app.js", timeout=10).status_code == 200
        assert http.post("/servers", json={"id": "web-1"}).status_code == 201
        assert http.post("/actions", json={"server_id": "web-1", "action_type": "clear_logs"}).status_code == 201
        metrics = httpx.get(root + "/metrics", timeout=10)
        assert metrics.status_code == 200
        assert 'actionq_actions{server_id="web-1",status="approved"} 1.0' in metrics.text
        assert "actionq_actions_created_total 1.0" in metrics.text
