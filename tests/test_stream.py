"""The stream end to end: front door → Kafka → Faust worker → sink → ClickHouse,
compared with ground truth computed from the generated events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from api.ingest.recent import RecentIds
from core.settings import PROJECT_ROOT
from schemas.examples import example_event
from tests.support import scenario
from tests.support.kafka import clean_events, progress
from tests.support.stream_check import diff, observed

pytestmark = pytest.mark.stack


def start_worker(
    settings, kafka_bootstrap, module: str = "streams.worker", **extra_env: str
) -> subprocess.Popen:
    env = {
        **os.environ,
        **extra_env,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TOPIC_PREFIX": settings.topic_prefix,
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
        "SKILLSTREAM_RUN_DIR": str(settings.run_dir),
    }
    log = open(settings.run_dir / "worker.log", "ab")  # noqa: SIM115 (lives with the process)
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, cwd=PROJECT_ROOT, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_all(api, keys: dict[str, str], batches: list[list[dict]]) -> None:
    for batch in batches:
        by_tenant: dict[str, list[dict]] = {}
        for ev in batch:
            user = scenario.learner_of(ev)
            by_tenant.setdefault(user.rsplit("-u", 1)[0], []).append(ev)
        for tenant, events in by_tenant.items():
            for _ in range(20):
                r = httpx.post(
                    f"{api.url}/v1/events/batch",
                    json={"events": events},
                    headers={"Authorization": f"Bearer {keys[tenant]}"},
                    timeout=60,
                )
                if r.status_code != 503:
                    break
                time.sleep(1)
            assert r.status_code == 200, r.text
            assert r.json()["rejected"] == [], r.json()["rejected"][:2]


def wait_for_truth(query, tenant_ids, want, timeout=120) -> list[str]:
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while time.monotonic() < deadline:
        problems = diff(want, observed(query, list(tenant_ids)))
        if not problems:
            return []
        time.sleep(1)
    return problems


def _setup(api, unique, learners: int = 24):
    names = [f"s{unique}a", f"s{unique}b"]
    tenant_ids, keys = {}, {}
    for n in names:
        tid, key = api.new_tenant(n)
        tenant_ids[n], keys[n] = tid, key
    scen = scenario.build(seed=int(unique[:6], 16), tenant_names=names, learners=learners)
    want = scenario.expected(scen.truth_events, tenant_ids)
    return names, tenant_ids, keys, scen, want


def test_counts_match_ground_truth(live_api_with_sink, settings, kafka_bootstrap, unique):
    api = live_api_with_sink
    names, tenant_ids, keys, scen, want = _setup(api, unique)
    worker = start_worker(settings, kafka_bootstrap)
    try:
        post_all(api, keys, scen.batches)
        api.ctx.recent = RecentIds()  # an API restart forgets: only the stream can dedupe
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want)
        assert not problems, "\n".join(problems[:20])
        # freshness and lag are reported once the data is queryable
        health = httpx.get(f"{api.url}/health", timeout=10).json()
        assert health["data_fresh_as_of"] is not None and health["ingest_lag_ms"] == 0

        # the daily recompute, on demand through the CLI, snapshots every learner
        day = datetime.now(UTC).date() - timedelta(days=1)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "TOPIC_PREFIX": settings.topic_prefix,
            "SKILLSTREAM_RUN_DIR": str(settings.run_dir),
        }
        out = subprocess.run(
            [sys.executable, "-m", "ops.cli", "recompute", "--date", day.isoformat()],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0 and "requested on 3 partitions" in out.stdout, out.stderr
        want_scores = expected_scores(want["daily"], day)
        got: dict = {}
        deadline = time.monotonic() + 60
        while got != want_scores and time.monotonic() < deadline:
            time.sleep(1)
            got = {
                (r["tenant_id"], r["user_id"]): (int(r["score"]), int(r["at_risk"]))
                for r in api.ctx.store.query(
                    "SELECT tenant_id, user_id, score, at_risk FROM learner_scores FINAL"
                    " WHERE tenant_id IN {t:Array(String)} AND day = {d:Date} AND kind = 'daily'",
                    {"t": list(tenant_ids.values()), "d": day.isoformat()},
                )
            }
        assert got == want_scores
    finally:
        stop(worker)


def expected_scores(daily: dict, day) -> dict:
    """Scores from the ground-truth components, through the documented formula."""
    from streams.score import compute

    per_learner: dict = {}
    for (tenant, user, d), comps in daily.items():
        per_learner.setdefault((tenant, user), {})[date.fromisoformat(d).toordinal()] = comps
    out = {}
    for key, days in per_learner.items():
        s = compute(days, day.toordinal())
        out[key] = (s.score, int(s.at_risk))
    return out


def kill_mid_stream(worker, settings, kafka_bootstrap, outputs_before: int) -> None:
    """SIGKILL the worker while it works through a backlog: once it has
    written outputs past ``outputs_before`` and before its group has
    committed every raw record (processed, not yet committed: the replay
    case). Fails the test if the worker was not caught mid-stream."""
    clean, raw = settings.topic("events.clean"), settings.topic("events.raw")
    group = f"{settings.topic_prefix}-worker"
    deadline = time.monotonic() + 90
    while clean_events(kafka_bootstrap, clean) <= outputs_before:
        assert time.monotonic() < deadline, "the worker never started processing"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    committed, total = progress(kafka_bootstrap, raw, group)
    assert committed < total, "the worker had committed everything: not killed mid-stream"


def test_counts_match_after_worker_sigkill_and_sink_crash(
    live_api_with_sink, settings, kafka_bootstrap, unique
):
    api = live_api_with_sink
    # ~6k events: a backlog the worker needs a few seconds for
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=240)
    half = len(scen.batches) // 2
    post_all(api, keys, scen.batches[:half])
    worker = start_worker(settings, kafka_bootstrap)
    try:
        kill_mid_stream(worker, settings, kafka_bootstrap, outputs_before=0)
        post_all(api, keys, scen.batches[half:])
        # the sink dies between a ClickHouse insert and its Kafka commit
        sink = api.ctx.sink
        sink.crash_after_insert = True
        outputs = clean_events(kafka_bootstrap, settings.topic("events.clean"))
        worker = start_worker(settings, kafka_bootstrap)  # restores its tables, replays
        deadline = time.monotonic() + 60
        while sink._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not sink._thread.is_alive(), "sink crash was not injected"
        api.ctx.start_sink()  # a fresh sink replays its open round, then resumes
        kill_mid_stream(worker, settings, kafka_bootstrap, outputs_before=outputs + 500)
        worker = start_worker(settings, kafka_bootstrap)
        api.ctx.recent = RecentIds()
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=180)
        assert not problems, "\n".join(problems[:20])
    finally:
        stop(worker)


def test_counts_match_after_kill_between_checkpoint_flush_and_commit(
    live_api_with_sink, settings, kafka_bootstrap, unique
):
    """The coalesced state and outputs of a checkpoint are in Kafka, its
    offsets are not: the restarted worker must restore the state of the
    commit before, not the flushed one, and count every event once."""
    api = live_api_with_sink
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=120)
    post_all(api, keys, scen.batches)
    changelog = settings.topic("aggregates.learner_daily")  # learner_day's changelog
    worker = start_worker(settings, kafka_bootstrap, module="tests.support.killing_worker",
                          SKILLSTREAM_KILL_BEFORE_COMMIT="300")  # fmt: skip
    try:
        assert worker.wait(120) == -signal.SIGKILL, "the fault was not injected"
        committed, total = progress(
            kafka_bootstrap, settings.topic("events.raw"), f"{settings.topic_prefix}-worker"
        )
        assert committed < total, "the worker had committed everything before the fault"
        assert progress(kafka_bootstrap, changelog)[1] > 0, "no checkpoint reached the changelog"
        worker = start_worker(settings, kafka_bootstrap)
        api.ctx.recent = RecentIds()
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=180)
        assert not problems, "\n".join(problems[:20])
    finally:
        stop(worker)


def test_worker_refuses_a_dedupe_window_shorter_than_the_late_arrival_bound(settings):
    env = {**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:9", "DEDUPE_WINDOW_DAYS": "3",
           "INGEST_MAX_AGE_S": str(7 * 86400),
           "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "streams.worker"], env=env, cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode != 0
    assert "DEDUPE_WINDOW_DAYS=3 is shorter than the late-arrival bound" in out.stderr
    assert "at least 7" in out.stderr


def test_a_retry_at_the_edge_of_the_late_arrival_bound_counts_once(
    live_api_with_sink, settings, kafka_bootstrap, unique
):
    """An event as late as the front door accepts, retried after the nightly
    sweep: its id was remembered by receive day, so it still counts once."""
    api = live_api_with_sink
    tid, key = api.new_tenant(f"edge{unique}")
    at = datetime.now(UTC) - timedelta(seconds=settings.ingest_max_age_s - 120)
    ids = {"user_id": "edge-u0", "anonymous_id": "anon-edge-0"}
    event = example_event("session_started", client_event_id=f"edge-{unique}-1", at=at, **ids)
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "TOPIC_PREFIX": settings.topic_prefix,
           "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}  # fmt: skip
    worker = start_worker(settings, kafka_bootstrap)
    try:
        post_all(api, {"edge": key}, [[event]])
        _wait_learner_events(api, tid, 1)
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        out = subprocess.run(
            [sys.executable, "-m", "ops.cli", "recompute", "--date", yesterday],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        _wait_log(settings.run_dir / "worker.log", "ids swept", count=3)
        api.ctx.recent = RecentIds()  # only the stream can tell it is a retry
        post_all(api, {"edge": key}, [[event]])
        marker = example_event("session_started", client_event_id=f"edge-{unique}-2",
                               at=datetime.now(UTC), **ids)  # fmt: skip
        post_all(api, {"edge": key}, [[marker]])
        # the marker behind the retry on the same partition: once it counts, the retry was seen
        assert _wait_learner_events(api, tid, 2, exact=True)
    finally:
        stop(worker)


def _learner_events(api, tenant_id: str) -> int:
    rows = api.ctx.store.query(
        "SELECT sum(events) AS n FROM learner_daily FINAL WHERE tenant_id = {t:String}",
        {"t": tenant_id},
    )
    return int(rows[0]["n"] or 0)


def _wait_learner_events(api, tenant_id: str, n: int, exact: bool = False) -> bool:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got = _learner_events(api, tenant_id)
        if got >= n:
            time.sleep(3 if exact else 0)  # a second count would land with the marker's round
            assert _learner_events(api, tenant_id) == n, (
                f"counted {_learner_events(api, tenant_id)}"
            )
            return True
        time.sleep(0.5)
    raise AssertionError(f"learner_daily never reached {n} events")


def _wait_log(path, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not logged {count} times in {path}")
