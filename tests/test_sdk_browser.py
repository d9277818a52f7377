"""The browser SDK in Debian's Chromium (driven by Playwright, as the dashboard
test does), on a page served from another origin than the API: the IIFE build
tracks 200 events across a reload, part of them while the API is unreachable
(the way to it cut), and the last ones leave by sendBeacon as the page closes.
Every event reaches ClickHouse exactly once, through the real worker and sink,
and the learners report counts them."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from api.security import issue_token
from core.settings import PROJECT_ROOT
from ops.kafka_launcher import free_port
from tests.test_dashboard import ARGS, CHROMIUM
from tests.test_stream import start_worker, stop

pytestmark = [pytest.mark.stack, pytest.mark.browser]

SDK = PROJECT_ROOT / "sdk" / "js"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>SDK test page</title>
<script src="/skillstream.iife.js"></script>
<script>
  const slow = new URLSearchParams(location.search).has("slow");
  window.sdk = skillstream.init({
    host: %(api)s, writeKey: %(key)s, persona: "student",
    flushAt: slow ? 1000 : 10, flushIntervalMs: slow ? 600000 : 200,
    backoffBaseMs: 200, backoffMaxMs: 800, requestTimeoutMs: 3000,
  });
  window.trackMany = (n, from) => {
    const ids = [];
    for (let i = 0; i < n; i++) {
      ids.push(skillstream.track("lesson_completed",
        {lesson_id: "les_" + (from + i), duration_minutes: 3}, {program_id: "prog_sdk"}));
    }
    return ids;
  };
</script></head><body>learning</body></html>
"""


STATE = """({...sdk.stats(), timer: sdk.timer, timerAt: sdk.timerAt, now: Date.now(),
  retryAt: sdk.retryAt, sending: !!sdk.sending, attempt: sdk.attempt})"""


class Outage:
    """A TCP hop between the page and the API that can be cut: while it is down,
    connections are refused and open ones are reset (a network outage, with
    no request interception in the browser)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.up = True
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open |= {conn, upstream}
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self.lock:
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.server.close()


def _serve(directory) -> tuple[str, http.server.ThreadingHTTPServer]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a: None
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # "localhost" against the API's "127.0.0.1": another host and port, so another origin
    return f"http://localhost:{port}", server


def _queued(page) -> int:
    return page.evaluate("skillstream.stats().queued")


def _wait(predicate, timeout: float, what: str, explain=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} {explain()}")


def test_browser_sdk_events_reach_clickhouse_exactly_once(
    live_api_with_sink,
    settings,
    kafka_bootstrap,
    unique,
    tmp_path,
):
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does it)")
    subprocess.run(["node", "build.mjs"], cwd=SDK, check=True, capture_output=True)
    api = live_api_with_sink
    worker = start_worker(settings, kafka_bootstrap)
    name = f"web-{unique}"
    tenant_id, key = api.new_tenant(name)
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(SDK / "dist" / "skillstream.iife.js", site / "skillstream.iife.js")
    outage = Outage(int(api.url.rsplit(":", 1)[1]))
    api_via = json.dumps(f"http://127.0.0.1:{outage.port}")
    (site / "index.html").write_text(PAGE % {"api": api_via, "key": json.dumps(key)})
    origin, server = _serve(site)
    api.ctx.origins.change(tenant_id, add=[origin], remove=[], actor_id="t", actor_role="test")
    ids: list[str] = []
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS
            )
            page = browser.new_page()
            logs: list[str] = []
            page.on("console", lambda m: logs.append(m.text))
            page.on(
                "requestfailed", lambda r: logs.append(f"failed {r.method} {r.url} {r.failure}")
            )
            page.goto(f"{origin}/index.html")
            page.evaluate("skillstream.identify('learner-1', {email: 'Maya@Example.com'})")
            ids += page.evaluate("trackMany(80, 0)")
            _wait(lambda: _queued(page) == 0, 30, "the first 80 events to be sent")

            # offline: the way to the API is cut for 100 events, across a reload
            outage.cut()
            ids += page.evaluate("trackMany(60, 80)")
            page.wait_for_timeout(700)
            assert _queued(page) == 60
            page.reload()
            page.wait_for_function("window.skillstream !== undefined")
            assert _queued(page) == 60, "the queue survived the reload"
            ids += page.evaluate("trackMany(40, 140)")
            page.wait_for_timeout(500)
            assert _queued(page) == 100
            outage.restore()
            _wait(
                lambda: _queued(page) == 0, 30, "the offline events to be sent",
                lambda: f"{page.evaluate(STATE)} {logs[-10:]}",
            )  # fmt: skip

            # the last 20 wait for a long interval: only the page-exit beacon sends them
            page.goto(f"{origin}/index.html?slow=1")
            ids += page.evaluate("trackMany(20, 180)")
            assert _queued(page) == 20
            # no page of this origin opens again: only the beacon can deliver these 20
            page.close(run_before_unload=True)
            time.sleep(1)
            browser.close()
        assert len(set(ids)) == 200

        def stored() -> dict:
            return api.ctx.store.query(
                "SELECT count() AS rows, uniqExact(event_id) AS ids,"
                " countIf(learner_id = 'learner-1') AS mine, countIf(pii_hash IS NOT NULL) AS h"
                " FROM events WHERE tenant_id = {t:String}",
                {"t": tenant_id},
            )[0]

        _wait(lambda: int(stored()["ids"]) >= 200, 90, "200 events in ClickHouse")
        got = stored()
        assert (int(got["rows"]), int(got["ids"]), int(got["mine"])) == (200, 200, 200)
        assert int(got["h"]) == 1  # the e-mail hash rode on one event
        rows = api.ctx.store.query(
            "SELECT event_id FROM events FINAL WHERE tenant_id = {t:String}", {"t": tenant_id}
        )
        assert {r["event_id"] for r in rows} == set(ids)

        token = issue_token(
            api.ctx.secrets.token_secret, tenant_id=tenant_id, tenant_name=name,
            role="company_admin", user_id="boss", ttl_s=600,
        )  # fmt: skip

        def report() -> dict:
            r = httpx.get(
                f"{api.url}/v1/reports/learners",
                params={"user_id": "learner-1"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            return items[0]["components"] if items else {}

        _wait(lambda: report().get("lessons_completed") == 200, 30, "the report to count 200")
        today = datetime.now(UTC).date().isoformat()
        daily = api.ctx.store.query(
            "SELECT lessons_completed FROM learner_daily FINAL WHERE tenant_id = {t:String}"
            " AND user_id = 'learner-1' AND day = {d:String}",
            {"t": tenant_id, "d": today},
        )
        assert [int(r["lessons_completed"]) for r in daily] == [200]
    finally:
        stop(worker)
        server.shutdown()
        outage.close()
