"""`skillstream up` stopped and started again as a user does it, on one run
directory with its own local Kafka: Ctrl-C of the process group while the
worker is busy, a SIGKILL of the whole group, the worker's state deleted
between two starts, Kafka stopped alone while the rest runs. After every
start the worker stays up and the engagement report counts exactly the
learners whose events were accepted; at the end ClickHouse holds every
accepted event once (read by a separate process once the stack is down,
since the embedded store serves one process at a time)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from core.settings import PROJECT_ROOT
from schemas.examples import example_event
from tests.support.stack import Stack, cli

pytestmark = [pytest.mark.timeout(900), pytest.mark.kafka, pytest.mark.stack]


def _token(env: dict[str, str], tenant: str) -> str:
    out = cli(env, "token", "--tenant", tenant, "--role", "company_admin")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _active_learners(stack: Stack, token: str) -> int:
    r = httpx.get(
        f"{stack.url}/v1/reports/engagement",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["tiles"]["weekly_active_learners"]["value"])


def _wait_for(stack: Stack, token: str, want: int, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        assert stack.alive(), "`up` stopped (a child died?)"
        got = _active_learners(stack, token)
        if got == want:
            return
        assert got < want, f"report counts {got} learners, only {want} were accepted"
        time.sleep(1)
    raise AssertionError(f"report counts {got} learners, want {want}")


def _events(first: int, n: int) -> list[dict]:
    # One learner each; stamped a minute ago so all fall in this ISO week
    # (the test runs for minutes, never across a week boundary but by chance).
    at = datetime.now(UTC) - timedelta(minutes=1)
    return [
        example_event(
            "lesson_completed", client_event_id=f"restart-{i}", user_id=f"learner-{i}", at=at
        )
        for i in range(first, first + n)
    ]


def _ingest(stack: Stack, key: str, events: list[dict], timeout: float = 120) -> list[str]:
    """Post in batches of 100, retrying a batch while the front door answers
    503 (Kafka away); returns the ids accepted (duplicates of a retry count)."""
    accepted: list[str] = []
    for i in range(0, len(events), 100):
        body = {"events": events[i : i + 100]}
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.post(
                f"{stack.url}/v1/events/batch",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if r.status_code == 200:
                out = r.json()
                assert not out["rejected"], out["rejected"]
                accepted += out["accepted"] + out["duplicates"]
                break
            assert r.status_code == 503, r.text
            assert time.monotonic() < deadline, "the front door stayed at 503"
            time.sleep(float(r.headers.get("Retry-After", "1")))
    return accepted


@pytest.fixture
def run_env(tmp_path: Path, unique: str) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update(
        SKILLSTREAM_RUN_DIR=str(tmp_path / "run"),
        TOPIC_PARTITIONS="3",
        KAFKA_HEAP="256m",
        TOPIC_PREFIX=f"rs{unique}",
    )
    yield env
    cli(env, "kafka", "stop")


def _status(env: dict[str, str]) -> str:
    out = cli(env, "status")
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _stored_event_ids(env: dict[str, str], tenant_id: str) -> dict[str, int]:
    """Event id -> rows (as queried) and raw row count, from a separate process."""
    code = (
        "import json, sys\n"
        "from core.settings import get_settings\n"
        "from sinks.store import open_store\n"
        "s = open_store(None, get_settings().chdb_path)\n"
        "rows = s.query('SELECT event_id, count() AS n FROM events FINAL"
        " WHERE tenant_id = {t:String} GROUP BY event_id', {'t': sys.argv[1]})\n"
        "print(json.dumps({r['event_id']: int(r['n']) for r in rows}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, tenant_id],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stop_and_start_five_ways_loses_and_doubles_nothing(run_env, tmp_path):
    env, log = run_env, tmp_path / "up.stderr"
    run_dir = Path(env["SKILLSTREAM_RUN_DIR"])
    accepted: list[str] = []

    # 1. Ctrl-C while the worker is still processing 300 accepted events
    stack = Stack(env, log)
    created = cli(env, "tenant", "create", "restarts")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    tenant_id = re.search(r"tenant restarts created: (\S+)", created.stderr).group(1)
    accepted += _ingest(stack, key, _events(0, 300))
    assert stack.stop() == 0
    cluster = json.loads((run_dir / "kafka" / "cluster.json").read_text())

    # 2. start again: the same cluster; 100 more; then SIGKILL of the whole group mid-stream
    stack = Stack(env, log)
    again = json.loads((run_dir / "kafka" / "cluster.json").read_text())
    assert again["cluster_id"] == cluster["cluster_id"]
    token = _token(env, "restarts")
    _wait_for(stack, token, 300)
    accepted += _ingest(stack, key, _events(300, 100))
    _wait_for(stack, token, 400)
    status = _status(env)
    for line in ("stack", "kafka", "worker", "api", "sink"):
        assert any(ln.startswith(line) for ln in status.splitlines()), status
    accepted += _ingest(stack, key, _events(400, 100))
    assert stack.stop(signal.SIGKILL) == -signal.SIGKILL

    # 3. the worker's local state deleted between two starts
    shutil.rmtree(run_dir / "state")
    stack = Stack(env, log)
    _wait_for(stack, token, 500)
    accepted += _ingest(stack, key, _events(500, 100))
    assert stack.stop() == 0

    # 4. Kafka stopped alone while the rest runs: `up` brings it back
    stack = Stack(env, log)
    _wait_for(stack, token, 600)
    stopped = cli(env, "kafka", "stop")
    assert stopped.returncode == 0, stopped.stderr
    accepted += _ingest(stack, key, _events(600, 100))
    _wait_for(stack, token, 700)
    assert stack.stop() == 0

    # 5. a plain restart after all that
    stack = Stack(env, log)
    _wait_for(stack, token, 700)
    accepted += _ingest(stack, key, _events(700, 100))
    _wait_for(stack, token, 800)
    time.sleep(3)  # a late duplicate would show now
    assert _active_learners(stack, token) == 800
    assert stack.alive()
    assert stack.stop() == 0

    assert len(set(accepted)) == 800
    stored = _stored_event_ids(env, tenant_id)
    assert sorted(stored) == sorted(set(accepted))
    assert set(stored.values()) == {1}
    worker_log = (run_dir / "logs" / "worker.log").read_text()
    assert "ConsistencyError" not in worker_log
