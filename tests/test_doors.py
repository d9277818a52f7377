"""Issue 18's open doors: demo mode only when asked for and only for loopback
clients."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest
from starlette.requests import Request

from api.deps import require_loopback_client
from ops.settings import PROJECT_ROOT, Settings


def _settings(tmp_path_factory, kafka_bootstrap: str, **extra) -> Settings:
    return Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("doors") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"o{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        **extra,
    )


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    live = LiveApi(_settings(tmp_path_factory, kafka_bootstrap, SKILLSTREAM_DEMO=1), store,
                   kafka_bootstrap)  # fmt: skip
    live.ctx.tenants.create(f"demo-{uuid.uuid4().hex[:6]}")
    yield live
    live.close()


@pytest.fixture(scope="module")
def plain_api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    live = LiveApi(_settings(tmp_path_factory, kafka_bootstrap), store, kafka_bootstrap)
    yield live
    live.close()


def test_without_demo_mode_the_demo_endpoints_do_not_exist(plain_api):
    for path in ("/v1/demo/tokens", "/v1/demo/history"):
        assert httpx.get(f"{plain_api.url}{path}", timeout=10).status_code == 404
    paths = httpx.get(f"{plain_api.url}/openapi.json", timeout=10).json()["paths"]
    assert not [p for p in paths if p.startswith("/v1/demo")]
    assert httpx.get(f"{plain_api.url}/v1/dashboard/config").json()["demo"] is False


def test_demo_tokens_go_to_loopback_clients_only(demo_api):
    url = f"{demo_api.url}/v1/demo/tokens"
    ok = httpx.get(url, timeout=30)
    assert ok.status_code == 200 and ok.json()["users"][0]["role"] == "platform_admin"
    localhost = httpx.get(url.replace("127.0.0.1", "localhost"), timeout=30)
    assert localhost.status_code == 200
    # a reverse proxy on this host makes a remote caller look local: refused
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        r = httpx.get(url, headers={header: "203.0.113.7"}, timeout=10)
        assert r.status_code == 403, header
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1
    r = httpx.get(url, headers={"Host": "evil.example:80"}, timeout=10)
    assert r.status_code == 403
    r = httpx.get(f"{demo_api.url}/v1/demo/history", headers={"Host": "evil.example"})
    assert r.status_code == 403


def _request(peer: str | None, host: str, **headers: str) -> Request:
    raw = [(b"host", host.encode())] + [
        (k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()
    ]
    return Request(
        {"type": "http", "headers": raw, "client": (peer, 5555) if peer else None, "path": "/"}
    )


@pytest.mark.parametrize(
    ("peer", "host", "headers", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8000", {}, True),
        ("::1", "[::1]:8000", {}, True),
        ("127.0.0.1", "localhost", {}, True),
        ("203.0.113.9", "127.0.0.1:8000", {}, False),  # a remote peer
        ("10.0.0.5", "localhost", {}, False),  # the LAN is not this machine
        (None, "localhost", {}, False),  # no peer address at all
        ("testclient", "localhost", {}, False),  # not an IP
        ("127.0.0.1", "demo.example.com", {}, False),  # DNS rebinding
        ("127.0.0.1", "localhost", {"x_forwarded_for": "127.0.0.1"}, False),  # proxied
    ],
)
def test_loopback_rule(peer, host, headers, allowed):
    from fastapi import HTTPException

    req = _request(peer, host, **headers)
    if allowed:
        require_loopback_client(req)
    else:
        with pytest.raises(HTTPException) as exc:
            require_loopback_client(req)
        assert exc.value.status_code == 403


def test_up_turns_demo_on_only_with_the_flag(monkeypatch, tmp_path):
    from ops.stack import _child_env

    s = Settings(SKILLSTREAM_RUN_DIR=tmp_path, WORKER_METRICS_PORT=9)
    monkeypatch.setenv("skillstream_demo", "1")  # left over in a shell: ignored
    assert "SKILLSTREAM_DEMO" not in {k.upper() for k in _child_env(s, "b:1", 1, demo=False)}
    assert _child_env(s, "b:1", 1, demo=True)["SKILLSTREAM_DEMO"] == "1"
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "--help"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "--demo" in out.stdout and "--no-demo" not in out.stdout
