"""`skillstream up`, `tenant create` and `token` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from core.settings import PROJECT_ROOT
from tests.support.stack import cli

pytestmark = pytest.mark.stack


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return cli(env, *args)


@pytest.fixture
def stack_env(tmp_path, kafka_bootstrap, unique) -> dict[str, str]:
    return {
        **os.environ,
        "SKILLSTREAM_RUN_DIR": str(tmp_path / "run"),
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TOPIC_PREFIX": f"up{unique}",
    }


def test_cli_without_running_stack_uses_local_store(stack_env):
    out = _cli("tenant", "create", "solo", env=stack_env)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("ssk_") and " " not in key
    tok = _cli("token", "--tenant", "solo", "--role", "learner", "--user", "u1", env=stack_env)
    assert tok.returncode == 0, tok.stderr
    claims = jwt.decode(tok.stdout.strip().splitlines()[-1], options={"verify_signature": False})
    assert claims["role"] == "learner" and claims["sub"] == "u1" and claims["tname"] == "solo"
    bad = _cli("token", "--tenant", "missing", "--role", "learner", env=stack_env)
    assert bad.returncode == 1 and "no tenant named 'missing'" in bad.stderr
    org = _cli("org", "link", "--tenant", "solo", "mentor", "mt1", "u1", env=stack_env)
    assert org.returncode == 0, org.stderr
    assert (
        _cli("org", "unlink", "--tenant", "solo", "mentor", "mt1", "u1", env=stack_env).returncode
        == 0
    )
    assert _cli("org", "list", "--tenant", "solo", env=stack_env).stdout.strip() == ""


def _accepted(url: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith('skillstream_ingest_events_total{outcome="accepted"}'):
            return float(line.split()[-1])
    return 0.0


def test_up_serves_health_and_cli_works_alongside_then_stops_on_sigint(stack_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "up", "--demo"],
        env={**stack_env, "DEMO_EVENTS_PER_S": "40", "DEMO_LEARNERS": "200"},
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # blocks until /health answered
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["status"] == "ok" and health["kafka"] and health["store"]
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
        assert httpx.get(f"{url}/openapi.json", timeout=10).status_code == 200

        # the API process owns the embedded store: the CLI goes through it
        created = _cli("tenant", "create", "acme", env=stack_env)
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip().splitlines()[-1].startswith("ssk_")
        dup = _cli("tenant", "create", "acme", env=stack_env)
        assert dup.returncode == 1 and "already exists" in dup.stderr
        tok = _cli("token", "--tenant", "acme", "--role", "company_admin", env=stack_env)
        assert tok.returncode == 0, tok.stderr
        token = tok.stdout.strip().splitlines()[-1]
        assert token.count(".") == 2

        # admin endpoints refuse anyone without the run dir's admin secret
        r = httpx.post(f"{url}/v1/admin/tenants", json={"name": "evil"}, timeout=10)
        assert r.status_code == 401
        r = httpx.post(
            f"{url}/v1/admin/tenants",
            json={"name": "evil"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert r.status_code == 401

        # demo telemetry flows through the front door and the worker keeps up
        deadline = time.monotonic() + 30
        while _accepted(url) == 0 and time.monotonic() < deadline:
            time.sleep(1)
        assert _accepted(url) > 0

        # the dashboard and, in demo mode, a token per role with data to see
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "Engagement" in page.text
        demo = httpx.get(f"{url}/v1/demo/tokens", timeout=30).json()
        roles = {u["role"]: u["token"] for u in demo["users"]}
        assert set(roles) == {
            "platform_admin", "company_admin", "program_owner", "manager", "mentor", "learner"
        }  # fmt: skip
        for role, tok in roles.items():
            h = {"Authorization": f"Bearer {tok}"}
            r = httpx.get(f"{url}/v1/reports/engagement", headers=h, timeout=30)
            assert r.status_code == 200, (role, r.text)
            r = httpx.get(f"{url}/v1/reports/learners", headers=h, timeout=30)
            assert r.status_code == (403 if role == "mentor" else 200), (role, r.text)
        # org links through the CLI while the API owns the store
        linked = _cli("org", "link", "--tenant", "acme", "manager", "m1", "u1", env=stack_env)
        assert linked.returncode == 0 and "linked manager m1 -> u1" in linked.stdout
        listed = _cli("org", "list", "--tenant", "acme", env=stack_env)
        assert listed.stdout.split() == ["manager", "m1", "u1"]
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read()  # no child died
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    # children are gone: the API no longer answers
    time.sleep(0.5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)


def test_help_everywhere():
    for args in (
        ["--help"], ["up", "--help"], ["tenant", "create", "--help"], ["token", "--help"],
        ["org", "link", "--help"],
    ):  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-m", "ops.cli", *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and "usage: skillstream" in out.stdout


def test_demo_mode_widens_late_arrival_bounds_unless_set():
    from core.settings import Settings
    from ops.stack import DEMO_HISTORY_DAYS, demo_history_env

    widened = demo_history_env({})
    s = Settings(**{k: v for k, v in widened.items()})
    # the demo back-fills eight chart weeks: the front door and the worker accept them
    assert s.ingest_max_age_s >= 63 * 24 * 3600 and s.allowed_lateness_days >= 63
    assert s.allowed_lateness_days == DEMO_HISTORY_DAYS
    assert s.dedupe_window_problem() is None  # its retries are caught as long as it accepts them
    # a value the user set wins, in any case
    assert demo_history_env({"ingest_max_age_s": "60"}) == {
        "ALLOWED_LATENESS_DAYS": "70",
        "DEDUPE_WINDOW_DAYS": "70",
    }
    # production defaults stay a week
    assert Settings().ingest_max_age_s == 7 * 24 * 3600 and Settings().allowed_lateness_days == 7


def test_demo_history_is_small_dense_and_oldest_first():
    from datetime import UTC, datetime, timedelta

    from ops.demo import BACKFILL_DAYS, Population, planned_between

    now = datetime(2026, 11, 22, 6, tzinfo=UTC)
    pop = Population.build(learners_per_tenant=200, start=now - timedelta(days=BACKFILL_DAYS + 14))
    week = planned_between(pop, now - timedelta(days=7), now)
    stamps = [ev["event_timestamp"] for _, ev in week]
    assert stamps == sorted(stamps)
    # the whole back-fill (at the default 120 per tenant: ~20k) stays small
    assert 2000 < len(week) * BACKFILL_DAYS / 7 < 40000


def test_up_says_why_a_child_died(stack_env):
    # a schedule only the worker parses: the worker dies at start-up
    env = {**stack_env, "RECOMPUTE_CRON": "every tuesday-ish"}
    out = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 1
    assert "worker exited with 1; from " in out.stderr, out.stderr
    # the cause with its traceback, not only where the log is
    assert "  | Traceback (most recent call last):" in out.stderr, out.stderr
    assert "CroniterBadCronError: Exactly 5, 6 or 7 columns" in out.stderr, out.stderr
    assert not (Path(env["SKILLSTREAM_RUN_DIR"]) / "stack.json").exists()


def test_topics_keep_their_partition_count(stack_env):
    """Topics made with another count than TOPIC_PARTITIONS: `up` runs with
    theirs and says so; a worker started on its own refuses, naming both."""
    from core.settings import Settings
    from core.topics import ensure_topics

    old = Settings(KAFKA_BOOTSTRAP=stack_env["KAFKA_BOOTSTRAP"],
                   TOPIC_PREFIX=stack_env["TOPIC_PREFIX"], TOPIC_PARTITIONS=2)  # fmt: skip
    ensure_topics(stack_env["KAFKA_BOOTSTRAP"], old)
    env = {**stack_env, "TOPIC_PARTITIONS": "12"}
    alone = _cli("worker", env=env)
    assert alone.returncode != 0
    assert "the topics have 2 partitions, TOPIC_PARTITIONS is 12" in alone.stderr, alone.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "up"], env=env, cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        time.sleep(8)  # a worker refusing its topics would have taken `up` down by now
        assert proc.poll() is None
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "topics have 2 partitions (TOPIC_PARTITIONS=12 applies to new topics" in err, err
