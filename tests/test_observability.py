"""Lag measured end to end, from Kafka, while the real stack runs: a stopped
worker (SIGSTOP) under steady load shows in `/health` and `/metrics` within
seconds, and the lag drains once it resumes; the freshness watermark never
claims an event that is not queryable yet."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import datetime

import httpx
import pytest

from schemas.examples import example_event
from tests.support.stack import Stack, cli
from tests.test_dashboard import browser  # noqa: F401 (fixture: Debian's Chromium)

pytestmark = pytest.mark.timeout(400)


def _metric(url: str, name: str, labels: str) -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def _worker_lag(url: str) -> tuple[int, float]:
    health = httpx.get(f"{url}/health", timeout=10).json()
    worker = next(s for s in health["stages"] if s["stage"] == "worker")
    return worker["records"], worker["oldest_age_s"] or 0.0


class Load(threading.Thread):
    """~100 events/s through the front door until stopped."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                events = [
                    example_event("lesson_completed", user_id=f"obs-{(self.sent + i) % 50}")
                    for i in range(20)
                ]
                r = client.post(
                    f"{self.url}/v1/events/batch",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {self.key}"},
                )
                if r.status_code == 200:
                    self.sent += len(r.json()["accepted"])
                self.stop.wait(0.2)


def _until(check, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, what
        time.sleep(0.5)
    return time.monotonic() - t0


def _ops_view_shows_the_lag_to_platform_admins_only(url, env, chromium, artifacts) -> None:
    def token(role: str) -> str:
        out = cli(env, "token", "--tenant", "obs", "--role", role, "--user", f"{role}-1")
        return out.stdout.strip().splitlines()[-1]

    admin, company = token("platform_admin"), token("company_admin")
    assert httpx.get(f"{url}/v1/ops/lag", headers={"Authorization": f"Bearer {company}"},
                     timeout=10).status_code == 403  # fmt: skip
    body = httpx.get(
        f"{url}/v1/ops/lag", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    ).json()
    peak = max(p["stages"]["worker"]["age_s"] for p in body["points"])
    assert peak > 2, "the stopped worker's lag is in the last hour's readings"

    page = chromium.new_page()
    page.goto(f"{url}/#token={admin}")
    page.wait_for_function("Number(document.body.dataset.opsLoaded || 0) > 3", timeout=20_000)
    page.wait_for_selector(
        "body[data-loaded]", timeout=20_000
    )  # the reports shown (#ops is in them)
    assert page.locator("#ops").is_visible()
    assert "worker:" in page.locator("#ops-now").inner_text()
    page.screenshot(path=str(artifacts / "dashboard-ops.png"), full_page=True)
    page.close()
    page = chromium.new_page()
    page.goto(f"{url}/#token={company}")
    page.wait_for_function("document.body.dataset.opsChecked === '403'", timeout=20_000)
    assert page.locator("#ops").is_hidden()
    page.close()


@pytest.mark.stack
def test_stopped_worker_shows_as_lag_then_drains(
    tmp_path,
    kafka_bootstrap,
    unique,
    browser,  # noqa: F811 (the fixture imported above)
    artifacts,
):
    env = {
        **os.environ,
        "SKILLSTREAM_RUN_DIR": str(tmp_path / "run"),
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TOPIC_PREFIX": f"obs{unique}",
        "TOPIC_PARTITIONS": "3",
        "LAG_POLL_S": "1",
    }
    stack = Stack(env, tmp_path / "up.stderr")
    load = None
    try:
        created = cli(env, "tenant", "create", "obs")
        key = created.stdout.strip().splitlines()[-1]
        health = httpx.get(f"{stack.url}/health", timeout=10).json()
        assert health["status"] == "ok", health
        assert health["components"]["sink"] and health["components"]["worker"]
        worker_metrics = json.loads((tmp_path / "run" / "stack.json").read_text())["metrics"]
        text = httpx.get(worker_metrics["worker"], timeout=10).text
        assert "skillstream_pipeline_step_seconds" in text, text[:500]
        assert "skillstream_worker_state_resets_total" in text
        load = Load(stack.url, key)
        load.start()
        _until(lambda: _worker_lag(stack.url)[0] < 100 and load.sent > 200, 90, "no steady state")

        worker_pid = int(
            json.loads((tmp_path / "run" / "stack.json").read_text())["children"]["worker"]["pid"]
        )
        os.kill(worker_pid, signal.SIGSTOP)
        try:
            # Raw records are batches: this load's 20-event requests make about
            # three records each (one per partition), so 30 records ≈ 200 events.
            took = _until(
                lambda: _worker_lag(stack.url)[0] > 30 and _worker_lag(stack.url)[1] > 2,
                15,
                "worker lag did not grow in /health",
            )
            assert took < 8  # a 1 s poll; within 5 s of crossing the threshold
            assert _metric(stack.url, "skillstream_stage_lag_records", 'stage="worker"') > 30
            assert _metric(stack.url, "skillstream_stage_lag_seconds", 'stage="worker"') > 2
            assert _metric(stack.url, "skillstream_ingest_lag_ms", "") > 2000
            # the watermark stays behind the oldest event not yet processed
            fresh = httpx.get(f"{stack.url}/health", timeout=10).json()["data_fresh_as_of"]
            behind = time.time() - datetime.fromisoformat(fresh).timestamp()
            assert behind > 2, fresh
        finally:
            os.kill(worker_pid, signal.SIGCONT)
        _until(lambda: _worker_lag(stack.url)[0] < 100, 90, "worker lag did not drain")
        _until(lambda: _worker_lag(stack.url)[1] < 5, 30, "worker lag age did not drain")
        _ops_view_shows_the_lag_to_platform_admins_only(stack.url, env, browser, artifacts)
    finally:
        if load:
            load.stop.set()
            load.join(10)
        assert stack.stop() == 0


def test_a_dead_sink_thread_turns_health_degraded(settings, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    settings.run_dir.mkdir(parents=True, exist_ok=True)
    api = LiveApi(settings, store, kafka_bootstrap, sink=True)
    try:
        health = httpx.get(f"{api.url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["components"]["sink"] is True
        api.ctx.sink.stop()  # the thread ends, as a crashed one would
        health = httpx.get(f"{api.url}/health", timeout=10).json()
        assert health["status"] == "degraded" and health["components"]["sink"] is False
        assert _metric(api.url, "skillstream_component_up", 'component="sink"') == 0
    finally:
        api.close()


def test_json_logs_carry_process_level_and_context(capsys):
    import json
    import logging

    from core.logs import setup_logging
    from core.settings import Settings

    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    try:
        setup_logging("worker", Settings(LOG_FORMAT="json"))
        logging.getLogger("skillstream.test").warning(
            "dropped %d", 3, extra={"tenant_id": "t_1", "step": "dedupe"}
        )
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("skillstream.test").exception("failed")
    finally:
        root.handlers[:], _ = before
        root.setLevel(before[1])
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    first, second = lines
    assert first["process"] == "worker" and first["level"] == "warning"
    assert first["message"] == "dropped 3" and first["tenant_id"] == "t_1"
    assert first["step"] == "dedupe" and first["logger"] == "skillstream.test"
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: boom" in second["exc"]
