"""Scale-out, compared with ground truth: two workers in one consumer group
(the second joins while the first is mid-backlog, so a rebalance takes
partitions from a worker with coalesced state pending; then the first is
SIGKILLed mid-stream and started again), and `skillstream up --brokers 3
--workers 2` as a user runs it, one broker killed mid-run. Every event
counts once."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from api.ingest.recent import RecentIds
from ops.kafka_launcher import KafkaCluster
from tests.support.kafka import clean_events, progress
from tests.support.stack import Stack, cli
from tests.test_restarts import (  # noqa: F401 (the fixture)
    _active_learners,
    _events,
    _ingest,
    _status,
    _stored_event_ids,
    _token,
    _wait_for,
    run_env,
)
from tests.test_stream import (
    _setup,
    post_all,
    start_worker,
    stop,
    wait_for_truth,
)

pytestmark = [pytest.mark.kafka, pytest.mark.stack]


def test_two_workers_share_the_partitions_and_count_once(
    live_api_with_sink,
    settings,
    kafka_bootstrap,
    unique,
):
    api = live_api_with_sink
    names, tenant_ids, keys, scen, want = _setup(api, unique, learners=240)
    half = len(scen.batches) // 2
    post_all(api, keys, scen.batches[:half])
    clean, raw = settings.topic("events.clean"), settings.topic("events.raw")
    group = f"{settings.topic_prefix}-worker"
    first = start_worker(settings, kafka_bootstrap, WORKER_ID="0")
    second = None
    try:
        _wait_outputs(kafka_bootstrap, clean, 1)
        second = start_worker(settings, kafka_bootstrap, WORKER_ID="1")
        outputs = clean_events(kafka_bootstrap, clean)
        # posted while the first worker is killed, so the kill is mid-stream
        # however fast the workers keep up
        posting = threading.Thread(target=post_all, args=(api, keys, scen.batches[half:]))
        posting.start()
        _wait_outputs(kafka_bootstrap, clean, outputs + 300)
        first.send_signal(signal.SIGKILL)
        first.wait()
        committed, total = progress(kafka_bootstrap, raw, group)
        posting.join()
        assert committed < total, "everything was committed: not killed mid-stream"
        first = start_worker(settings, kafka_bootstrap, WORKER_ID="0")
        api.ctx.recent = RecentIds()  # only the stream can dedupe the replay
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=240)
        assert not problems, "\n".join(problems[:20])
        for worker_id in ("0", "1"):  # each kept its own state
            state = settings.run_dir / "state" / f"worker-{worker_id}"
            assert state.is_dir() and any(state.iterdir()), f"worker {worker_id} held no state"
    finally:
        stop(first)
        if second is not None:
            stop(second)


def _wait_outputs(bootstrap: str, topic: str, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while clean_events(bootstrap, topic) < at_least:
        assert time.monotonic() < deadline, f"{topic} never reached {at_least} events"
        time.sleep(0.05)


@pytest.mark.timeout(900)
def test_up_with_three_brokers_and_two_workers_loses_and_doubles_nothing(
    run_env,  # noqa: F811 (the fixture)
    tmp_path,
):
    """`up --brokers 3 --workers 2` as a user runs it: topics replicated three
    ways with two in sync required; one broker SIGKILLed mid-run (`up`
    starts it again); Ctrl-C; then a plain `up` on the same run directory
    (the same three brokers, one worker taking every partition)."""
    env, log = run_env, tmp_path / "up.stderr"
    stack = Stack(env, log, args=("--workers", "2", "--brokers", "3"))
    accepted: list[str] = []
    try:
        created = cli(env, "tenant", "create", "scaled")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        tenant_id = re.search(r"tenant scaled created: (\S+)", created.stderr).group(1)
        token = _token(env, "scaled")
        status = _status(env)
        assert any(ln.startswith("worker-1") for ln in status.splitlines()), status
        _assert_replicated(env)
        accepted += _ingest(stack, key, _events(0, 300))
        _wait_for(stack, token, 300)
        cluster = KafkaCluster.load(Path(env["SKILLSTREAM_RUN_DIR"]) / "kafka")
        cluster.stop_node(2, hard=True)
        accepted += _ingest(stack, key, _events(300, 200))
        _wait_for(stack, token, 500)
        assert stack.stop() == 0

        stack = Stack(env, log)
        assert len(KafkaCluster.load(Path(env["SKILLSTREAM_RUN_DIR"]) / "kafka").nodes) == 3
        accepted += _ingest(stack, key, _events(500, 100))
        _wait_for(stack, token, 600)
        time.sleep(3)  # a late duplicate would show now
        assert _active_learners(stack, token) == 600
        assert stack.stop() == 0
    finally:
        if stack.alive():
            stack.stop()
    stored = _stored_event_ids(env, tenant_id)
    assert sorted(stored) == sorted(set(accepted)) and set(stored.values()) == {1}


def _assert_replicated(env: dict[str, str]) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    bootstrap = json.loads((Path(env["SKILLSTREAM_RUN_DIR"]) / "stack.json").read_text())["kafka"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=10).topics
    prefix = env["TOPIC_PREFIX"]
    ours = [t for t in topics if t.startswith(prefix)]
    assert any(t.endswith("-changelog") for t in ours), ours
    for name in ours:
        for p in topics[name].partitions.values():
            assert len(p.replicas) == 3, f"{name}[{p.id}] has {len(p.replicas)} replicas"
    res = ConfigResource(ConfigResource.Type.TOPIC, f"{prefix}.events.raw")
    config = admin.describe_configs([res])[res].result()
    assert config["min.insync.replicas"].value == "2"


@pytest.mark.timeout(900)
def test_three_workers_on_three_brokers_lose_a_worker_and_a_broker(tmp_path, store, unique):
    """Issue 13's run: a 3-node cluster, 3 workers, ~20k events with
    duplicates, retries, late and anonymous-then-identified visitors; one
    worker SIGKILLed and one broker SIGKILLed mid-run. Every learner-day,
    weekly active and total equals ground truth, and the nightly recompute
    writes one row per learner."""
    from datetime import UTC, datetime, timedelta

    from core.settings import Settings
    from tests.conftest import LiveApi
    from tests.test_stream import expected_scores

    base = Settings()
    cluster = KafkaCluster.ensure(tmp_path / "kafka", base.cache_dir, base.kafka_version,
                                  size=3, heap="256m", fresh=True)  # fmt: skip
    # no report figures: they would be kept for every tenant of the session's store
    settings = Settings(SKILLSTREAM_RUN_DIR=tmp_path / "run", KAFKA_BOOTSTRAP=cluster.bootstrap,
                        TOPIC_PREFIX=f"s3{unique}", TOPIC_PARTITIONS=6,
                        REPORT_FIGURES_INTERVAL_S=0)  # fmt: skip
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    api = LiveApi(settings, store, cluster.bootstrap, sink=True)
    workers: dict[str, object] = {}
    try:
        names, tenant_ids, keys, scen, want = _setup(api, unique, learners=700)
        events = sum(len(b) for b in scen.batches) + sum(len(b) for b in scen.replay)
        assert events >= 20_000, events
        for wid in ("0", "1", "2"):
            workers[wid] = start_worker(settings, cluster.bootstrap, WORKER_ID=wid)
        third = len(scen.batches) // 3
        clean = settings.topic("events.clean")
        post_all(api, keys, scen.batches[:third])
        _wait_outputs(cluster.bootstrap, clean, 1, timeout=180)
        posting = threading.Thread(target=post_all, args=(api, keys, scen.batches[third:]))
        posting.start()
        outputs = clean_events(cluster.bootstrap, clean)
        _wait_outputs(cluster.bootstrap, clean, outputs + 500, timeout=180)
        workers["1"].send_signal(signal.SIGKILL)
        workers["1"].wait()
        workers["1"] = start_worker(settings, cluster.bootstrap, WORKER_ID="1")
        _wait_outputs(cluster.bootstrap, clean, outputs + 1500, timeout=180)
        cluster.stop_node(3, hard=True)
        posting.join()
        api.ctx.recent = RecentIds()  # only the stream can dedupe the replay
        post_all(api, keys, scen.replay)
        problems = wait_for_truth(api.ctx.store.query, tenant_ids.values(), want, timeout=420)
        assert not problems, "\n".join(problems[:20])

        day = datetime.now(UTC).date() - timedelta(days=1)
        env = {**os.environ, "KAFKA_BOOTSTRAP": cluster.bootstrap,
               "TOPIC_PREFIX": settings.topic_prefix, "TOPIC_PARTITIONS": "6",
               "SKILLSTREAM_RUN_DIR": str(settings.run_dir)}  # fmt: skip
        out = cli(env, "recompute", "--date", day.isoformat())
        assert out.returncode == 0 and "requested on 6 partitions" in out.stdout, out.stderr
        want_scores = expected_scores(want["daily"], day)
        p = {"t": list(tenant_ids.values()), "d": day.isoformat()}
        deadline, rows = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            rows = api.ctx.store.query(
                "SELECT tenant_id, user_id, score, at_risk FROM learner_scores"
                " WHERE tenant_id IN {t:Array(String)} AND day = {d:Date} AND kind = 'daily'",
                p,
            )
            if len(rows) >= len(want_scores):
                break
            time.sleep(1)
        time.sleep(3)  # a second tick's rows would land about now
        rows = api.ctx.store.query(
            "SELECT tenant_id, user_id, score, at_risk FROM learner_scores"
            " WHERE tenant_id IN {t:Array(String)} AND day = {d:Date} AND kind = 'daily'",
            p,
        )
        got = {(r["tenant_id"], r["user_id"]): (int(r["score"]), int(r["at_risk"])) for r in rows}
        assert len(rows) == len(got), "a learner's nightly row was written twice"
        assert got == want_scores
    finally:
        for w in workers.values():
            stop(w)
        api.close()
        cluster.stop()
