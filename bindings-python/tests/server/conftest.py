"""Fixtures for the tests of the FastAPI backend, `actionq.server`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from actionq.server import create_app

API_KEY = "test-key-0123456789"
AUTH = {"X-API-Key": API_KEY}


@pytest.fixture
def client() -> Iterator[TestClient]:
    """An in-memory app with server `web-1` registered, authenticated by default."""
    with TestClient(create_app(api_key=API_KEY), headers=AUTH) as c:
        assert c.post("/api/v1/servers", json={"id": "web-1", "hostname": "web-1.lan"}).status_code == 201
        yield c
