"""Stream: pre-loaded raw events → every learner-day aggregate in ClickHouse.

The raw topic is pre-loaded with demo events (1% duplicates, 2% late,
anonymous visitors identified later), written as the front door writes
them: requests of 100 events, one batch record per request and partition.
Then, one after the other on the same topic (two cores: side by side would
measure the scheduler):

* **ours**: the worker process, and the sink in this process writing a fresh
  embedded ClickHouse, from worker start until ``learner_daily`` holds every
  counted event (``sum(events)`` over FINAL rows = the ground truth);
* **peer**: the Quix Streams app (``bench/peers/quix_app.py``), its own
  process, RocksDB and ClickHouse data path, the same stop condition;
* **Pathway peer**: the same aggregates in Pathway
  (``bench/peers/pathway_app.py``), in a virtualenv of its own that this
  scenario installs on first use; if that install fails its rows say why;
* **floor**: a plain confluent-kafka consumer decoding every record (one
  ``decode_many`` per batch record), timed to the last event;
* **Faust floor**: a Faust agent that only decodes every record
  (``bench/peers/faust_floor.py``): what Faust's own per-event machinery
  allows one worker process, which is built on it.

Every pipeline's ``learner_daily`` totals are compared with ours, so none
wins by counting less.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    Context,
    Result,
    Row,
    Scale,
    fresh_settings,
    peak_rss_mb,
    start_worker,
    stop,
)
from bench.events import expected_counted, generate, preload
from bench.peers.learner_daily import TOTALS_SQL
from core.settings import PROJECT_ROOT, Settings

NO_PEER: dict = {"seconds": None, "peak_rss_mb": None, "totals": None}


def decode_floor(bootstrap: str, topic: str, n: int) -> float:
    """Seconds for a plain consumer to read every raw record and decode its
    ``n`` events in all (one ``decode_many`` per record)."""
    from confluent_kafka import Consumer

    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-floor-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    seen, t0 = 0, time.perf_counter()
    while seen < n:
        for m in c.consume(5000, timeout=1):
            if not m.error():
                seen += len(codec.decode_many(m.value()))
    c.close()
    return time.perf_counter() - t0


def records_written(settings: Settings) -> dict[str, int]:
    """Records in every topic the worker writes (outputs and table
    changelogs), read from Kafka's end offsets: the ground truth for the
    worker's own ``skillstream_worker_records_out_total``."""
    from confluent_kafka.admin import AdminClient

    from core.kafka_info import describe_topics

    bootstrap = settings.kafka_bootstrap or ""
    names = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=10)
    inputs = {settings.topic("events.raw"), settings.topic("control.recompute")}
    mine = [t for t in names.topics if t.startswith(settings.topic_prefix) and t not in inputs]
    out: dict[str, int] = {}
    for (topic, _), end in describe_topics(bootstrap, mine).ends.items():
        short = topic.removeprefix(settings.topic_prefix).lstrip(".-")
        out[short] = out.get(short, 0) + end
    return out


def run_ours(settings: Settings, expect: int, timeout_s: float, workers: int = 1) -> dict:
    """Worker(s) of one group and the sink, until every counted event is queryable."""
    from sinks.sink import Sink
    from sinks.store import open_store

    store = open_store(None, settings.chdb_path)
    sink = Sink(settings, store, settings.kafka_bootstrap or "")
    t0 = time.perf_counter()
    procs = [start_worker(settings, i) for i in range(workers)]
    sink.start()
    rss, done, first = 0.0, None, None
    try:
        while time.perf_counter() - t0 < timeout_s and all(w.poll() is None for w in procs):
            time.sleep(0.5)
            rss = max(rss, sum(peak_rss_mb(w.pid) for w in procs))
            n = int(store.query("SELECT sum(events) AS n FROM learner_daily FINAL")[0]["n"] or 0)
            if first is None and n > 0:
                first = time.perf_counter() - t0  # start-up: group join, table recovery
            if n >= expect:
                done = time.perf_counter() - t0
                break
    finally:
        for w in procs:
            stop(w)
        sink.stop()
    totals = store.query(TOTALS_SQL)[0]
    store.close()
    return {
        "records_written": records_written(settings),
        "seconds": done,
        "first_row_s": first and round(first, 1),
        "peak_rss_mb": round(rss, 1),
        "totals": totals,
    }


def _peer_command(module: str, settings: Settings, **options: object) -> list[str]:
    """``python -m module`` on the raw topic, each option as ``--name value``."""
    cmd = [
        sys.executable, "-m", module,
        "--bootstrap", settings.kafka_bootstrap or "",
        "--topic", settings.topic("events.raw"),
        "--partitions", str(settings.topic_partitions),
    ]  # fmt: skip
    for name, value in options.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    return cmd


def _run_peer(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict:
    """A peer process until it reports; its seconds from start to every
    counted event queryable (None if it timed out), peak RSS and totals."""
    t0_wall = time.time()
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        rss = 0.0
        while proc.poll() is None:
            rss = max(rss, peak_rss_mb(proc.pid))
            time.sleep(0.5)
        out = proc.stdout.read().decode() if proc.stdout else ""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{cmd[2]} failed (exit {proc.returncode}); see {log}")
    res = json.loads(lines[-1])
    seconds = res["done_at"] - t0_wall if res.get("complete") else None
    return {"seconds": seconds, "peak_rss_mb": round(rss, 1), "totals": res["totals"]}


def run_peer(settings: Settings, expect: int, timeout_s: float) -> dict:
    cmd = _peer_command(
        "bench.peers.quix_app", settings, chdb=settings.run_dir / "quix-clickhouse",
        state_dir=settings.run_dir / "quix-state", expect=expect, timeout=timeout_s,
    )  # fmt: skip
    return _run_peer(cmd, settings.run_dir / "quix.log")


def run_pathway(settings: Settings, expect: int, timeout_s: float) -> dict:
    """The Pathway peer in its own venv (set up here on first use). If the
    venv cannot be installed, ``skipped`` says why and the other rows stand."""
    from bench.peers.venv import VenvUnavailable, install_log, python_for

    try:
        python = python_for("pathway")
    except VenvUnavailable as exc:
        why = f"could not install pathway ({exc}; see {install_log('pathway')})"
        return {**NO_PEER, "skipped": why}
    log = settings.run_dir / "pathway.log"
    cmd = _peer_command(
        "bench.peers.pathway_app", settings, chdb=settings.run_dir / "pathway-clickhouse",
        state_dir=settings.run_dir / "pathway-state", expect=expect, timeout=timeout_s,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return {**_run_peer([str(python), *cmd[1:]], log, env), "skipped": None}


def run_faust_floor(settings: Settings, n: int, timeout_s: float) -> dict:
    """Seconds for a Faust agent to decode ``n`` events, from its start (as
    ours and the peer's are timed) and from its first record. A failed run
    leaves the other rows: its seconds are None and ``error`` says why."""
    result = settings.run_dir / "faust-floor.json"
    log = settings.run_dir / "faust-floor.log"
    cmd = _peer_command(
        "bench.peers.faust_floor", settings, state_dir=settings.run_dir / "faust-floor",
        expect=n, result=result, timeout=timeout_s,
    )  # fmt: skip
    failed = {"seconds": None, "after_first_s": None, "error": f"incomplete; see {log}"}
    started = time.time()
    with open(log, "wb") as out:
        try:
            subprocess.run(cmd, cwd=PROJECT_ROOT, stdout=out, stderr=out, timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            return failed
    if not result.exists():
        return failed
    res = json.loads(result.read_text())
    if res["done_at"] is None:
        return failed
    return {
        "seconds": res["done_at"] - started,
        "after_first_s": res["done_at"] - res["first_at"],
    }


def _same(ours: dict, peer: dict) -> bool:
    if peer["totals"] is None:
        return False
    return {k: int(v) for k, v in ours.items()} == {k: int(v) for k, v in peer["totals"].items()}


def run(scale: Scale, ctx: Context) -> Result:
    settings = fresh_settings(ctx, "bs")
    events = generate(scale.stream_events)
    expect = expected_counted(events)
    t = time.perf_counter()
    raw_records = preload(ctx.bootstrap, settings.topic("events.raw"), events)
    preload_s = time.perf_counter() - t
    floor_s = decode_floor(ctx.bootstrap, settings.topic("events.raw"), len(events))
    faust_floor = run_faust_floor(settings, len(events), scale.stream_timeout_s)
    ours = run_ours(settings, expect, scale.stream_timeout_s)
    peer = run_peer(settings, expect, scale.stream_timeout_s) if scale.stream_peer else NO_PEER
    pathway = (
        run_pathway(settings, expect, scale.stream_timeout_s)
        if scale.pathway_peer
        else {**NO_PEER, "skipped": "not run at this scale (--pathway runs it)", "off": True}
    )
    n = len(events)

    def rate(sec: float | None) -> float | None:
        return round(n / sec, 1) if sec else None

    def against(seconds: float | None, baseline: str) -> Row:
        ours_rate = rate(ours["seconds"])
        return Row("events/s to queryable", ours_rate, rate(seconds), "ev/s", "higher", baseline)

    skipped = pathway["skipped"]
    pathway_name = "Pathway app" + (f" — skipped: {skipped}" if skipped else "")
    off = pathway.get("off", False)
    pathway_rate = [] if off else [against(pathway["seconds"], pathway_name)]
    pathway_rss = [] if off else [
        Row("peak RSS", ours["peak_rss_mb"], pathway["peak_rss_mb"], "MB", "lower", pathway_name)
    ]  # fmt: skip
    return Result(
        "stream",
        rows=[
            against(peer["seconds"], "Quix Streams app"),
            *pathway_rate,
            against(floor_s, "plain consumer, decode only"),
            against(faust_floor["seconds"], "Faust agent, decode only (no state, no sink)"),
            Row(
                "Kafka records written per input event",
                round(sum(ours["records_written"].values()) / n, 2),
                None,
                "records",
                "lower",
                "(goal ≤ 3)",
            ),
            Row(
                "peak RSS",
                ours["peak_rss_mb"],
                peer["peak_rss_mb"],
                "MB",
                "lower",
                "Quix Streams app",
            ),
            *pathway_rss,
        ],  # fmt: skip
        details={
            "events": n,
            "expected_counted": expect,
            "raw_records": raw_records,
            "preload_s": round(preload_s, 1),
            "ours": ours,
            "quix_peer": peer,
            "pathway_peer": pathway,
            "decode_floor_s": round(floor_s, 2),
            "faust_floor": faust_floor,
            "faust_floor_after_first_ev_s": rate(faust_floor["after_first_s"]),
            # without the worker's start-up (group join, table recovery)
            "ours_after_first_row_ev_s": rate(
                ours["seconds"] - ours["first_row_s"] if ours["seconds"] else None
            ),
            "learner_daily_totals_match": _same(ours["totals"], peer),
            "learner_daily_totals_match_pathway": _same(ours["totals"], pathway),
            "complete": ours["seconds"] is not None
            and (peer["seconds"] is not None or not scale.stream_peer),
            "peer_skipped": not scale.stream_peer,
        },
    )
