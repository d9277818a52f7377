"""Freshness: steady load at fixed rates; received_at → queryable in ClickHouse.

One worker and one sink (this process, a fresh embedded ClickHouse) serve
every rate; each rate has its own tenant so its events are told apart.
Rates go up until one is not sustainable: its events are not all queryable
within the drain time, or the lag of its last quarter is more than 1.25
times that of its first quarter plus a second (the backlog keeps growing).

Baseline in the same run, on the same records: a plain consumer in its own
process that decodes the raw topic (what a trivial consumer achieves:
received_at → decoded).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

from bench.common import (
    Context,
    Result,
    Row,
    Scale,
    fresh_settings,
    median,
    percentile,
    start_worker,
    stop,
)
from bench.events import generate, steady

LAG_SQL = (
    "SELECT toUnixTimestamp64Milli(received_at) AS r,"
    " dateDiff('millisecond', received_at, sunk_at) AS lag"
    " FROM events WHERE tenant_id = {t:String} ORDER BY r"
)


def _decode_loop(bootstrap: str, topic: str, stop_ev, out) -> None:
    """Baseline: per tenant, now − received_at of every decoded event."""
    from confluent_kafka import Consumer

    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-fresh-floor-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    lags: dict[str, list[float]] = {}
    while not stop_ev.is_set():
        for m in c.consume(1000, timeout=0.2):
            if m.error():
                continue
            now_ms = time.time() * 1000
            for rec in codec.decode_many(m.value()):
                lags.setdefault(rec["tenant_id"], []).append(
                    now_ms - rec["received_at"].timestamp() * 1000
                )
    c.close()
    out.put(lags)


def _wait_queryable(store, tenant: str, n: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        q = "SELECT count() AS n FROM events WHERE tenant_id = {t:String}"
        if int(store.query(q, {"t": tenant})[0]["n"]) >= n:
            return True
        time.sleep(0.25)
    return False


def run(scale: Scale, ctx: Context) -> Result:
    from sinks.sink import Sink
    from sinks.store import open_store

    settings = fresh_settings(ctx, "bf")
    topic = settings.topic("events.raw")
    store = open_store(None, settings.chdb_path)
    sink = Sink(settings, store, ctx.bootstrap)
    mpc = mp.get_context("spawn")
    stop_ev, out = mpc.Event(), mpc.Queue()
    floor = mpc.Process(target=_decode_loop, args=(ctx.bootstrap, topic, stop_ev, out))
    floor.start()
    worker = start_worker(settings)
    sink.start()
    steps: list[dict] = []
    try:
        # Warm-up: the worker has joined its group once one event is queryable.
        never = threading.Event()
        steady(ctx.bootstrap, topic, generate(20, seed=1, late=False), 50, "t_warm", never)
        if not _wait_queryable(store, "t_warm", 20, 120):
            raise RuntimeError("warm-up events never became queryable")
        for rate in scale.fresh_rates:
            tenant = f"t_rate{rate}"
            evs = generate(int(rate * scale.fresh_seconds), seed=rate, duplicates=False)
            sent, took = steady(ctx.bootstrap, topic, evs, rate, tenant, never)
            drain_s = max(10.0, scale.fresh_seconds)
            all_in = _wait_queryable(store, tenant, sent, drain_s)
            rows = store.query(LAG_SQL, {"t": tenant})
            lags = [float(r["lag"]) for r in rows]
            q = max(1, len(lags) // 4)
            first, last = median(lags[:q]), median(lags[-q:])
            growing = last > 1.25 * first + 1000  # the backlog keeps growing
            steps.append(
                {
                    "rate": rate,
                    "tenant": tenant,
                    "sent": sent,
                    "achieved_rate": round(sent / took, 1),
                    "queryable": len(lags),
                    "p50_ms": percentile(lags, 50),
                    "p99_ms": percentile(lags, 99),
                    "first_quarter_p50_ms": first,
                    "last_quarter_p50_ms": last,
                    "sustainable": all_in and not growing,
                }
            )
            if not steps[-1]["sustainable"]:
                break
    finally:
        stop(worker)
        sink.stop()
        store.close()
        time.sleep(1)  # the floor consumer catches the last records
        stop_ev.set()
    floor_lags = out.get(timeout=60)
    floor.join(30)
    result = Result("freshness", details={"steps": steps})
    for s in steps:
        fl = floor_lags.get(s["tenant"], [])
        s["baseline_p50_ms"], s["baseline_p99_ms"] = percentile(fl, 50), percentile(fl, 99)
        label = f"{s['rate']} ev/s" + ("" if s["sustainable"] else " (not sustainable)")
        for q in ("p50", "p99"):
            result.rows.append(
                Row(
                    f"{q} received→queryable @ {label}",
                    s[f"{q}_ms"],
                    s[f"baseline_{q}_ms"],
                    "ms",
                    "lower",
                    "plain consumer, decode only",
                )  # fmt: skip
            )
    ok = [s["rate"] for s in steps if s["sustainable"]]
    result.details["highest_sustainable_rate"] = max(ok) if ok else None
    return result
