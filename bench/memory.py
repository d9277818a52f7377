"""Memory: peak RSS of the worker's dedupe state holding N distinct event ids.

N ids (``tenant|client_event_id`` with event and receive times, as the
front door stamps them) are produced to a topic; a Faust worker running the real
dedupe step over the real RocksDB table (``bench/dedupe_worker.py``) reads
them all; its peak RSS (VmHWM) is the figure. Baselines in the same run,
each in its own fresh process holding the same N entries: a plain Python
dict (what an in-memory dedupe costs) and a bare rocksdict (RocksDB without
Faust).
"""

from __future__ import annotations

import json
import multiprocessing as mp
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
    child_env,
    fresh_settings,
    group_caught_up,
    peak_rss_mb,
    stop,
)
from bench.dedupe_worker import IDS_TOPIC
from core.settings import PROJECT_ROOT

DAY0 = 1_795_000_000_000  # a fixed epoch-ms: ids are deterministic


def _id(i: int) -> str:
    return f"evt-{i:09d}-{(i * 2654435761) % 2**32:08x}"


def produce_ids(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    p = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4",
         "queue.buffering.max.messages": 1_000_000}
    )  # fmt: skip
    for i in range(n):
        value = json.dumps(
            {
                "tenant_id": "t_bench",
                "client_event_id": _id(i),
                "event_timestamp": DAY0 + i,
                "received_at": DAY0 + i,
            }
        ).encode()
        while True:
            try:
                p.produce(topic, value, f"t_bench:{i % 5000}".encode())
                break
            except BufferError:
                p.poll(0.1)
    if p.flush(300):
        raise RuntimeError("ids not acknowledged by Kafka")


def _dict_baseline(n: int, out) -> None:
    seen: dict[str, list[int]] = {}
    for i in range(n):
        seen[f"t_bench|{_id(i)}"] = [20_000 + i % 7, i]
    out.put(peak_rss_mb(os.getpid()))


def _rocksdict_baseline(n: int, path: str, out) -> None:
    from rocksdict import Rdict

    db = Rdict(path)
    for i in range(n):
        db[f"t_bench|{_id(i)}"] = json.dumps([20_000 + i % 7, i]).encode()
    db.close()
    out.put(peak_rss_mb(os.getpid()))


def _in_fresh_process(target, *args) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    rss = q.get(timeout=3600)
    proc.join(60)
    return float(rss)


def run(scale: Scale, ctx: Context) -> Result:
    n = scale.memory_ids
    settings = fresh_settings(ctx, "bm", {IDS_TOPIC: {}})
    topic = settings.topic(IDS_TOPIC)
    produce_ids(ctx.bootstrap, topic, n)
    log = open(settings.run_dir / "dedupe-worker.log", "wb")  # noqa: SIM115
    t0 = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.dedupe_worker"],
        env=child_env(settings),
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rss, took = 0.0, None
    try:
        while worker.poll() is None and time.perf_counter() - t0 < max(300, n / 200):
            time.sleep(1)
            rss = max(rss, peak_rss_mb(worker.pid))
            if group_caught_up(ctx.bootstrap, f"{settings.topic_prefix}-dedupe", topic):
                took = time.perf_counter() - t0
                rss = max(rss, peak_rss_mb(worker.pid))
                break
    finally:
        stop(worker)
        log.close()
    if took is None:
        raise RuntimeError(f"dedupe worker did not consume {n} ids; see {log.name}")
    dict_rss = _in_fresh_process(_dict_baseline, n)
    rocks_rss = _in_fresh_process(
        _rocksdict_baseline, n, str(Path(settings.run_dir) / "rocksdict-baseline")
    )
    return Result(
        "memory",
        rows=[
            Row(
                f"peak RSS, {n:,} ids in dedupe",
                round(rss, 1),
                round(dict_rss, 1),
                "MB",
                "lower",
                "Python dict, same entries",
            ),
            Row(
                f"peak RSS, {n:,} ids in dedupe",
                round(rss, 1),
                round(rocks_rss, 1),
                "MB",
                "lower",
                "bare rocksdict, same entries",
            ),
        ],  # fmt: skip
        details={"ids": n, "worker_seconds": round(took, 1), "ids_per_s": round(n / took)},
    )
