"""Ingest benchmark: the HTTP front door vs a plain confluent-kafka producer.

Both sides get the same realistic events (demo population, fixed seed) on the
same machine in the same run:

* **front door**: a load generator in another process posts 100-event
  batches to ``POST /v1/events/batch`` over loopback with several concurrent
  connections; accepted events/s and p50/p99 request latency.
* **baseline**: another process validates and Avro-encodes the same events
  and produces them straight to Kafka (idempotent, acks=all): the ceiling.
* **paced**: as many new events again, each batch sent on a fixed schedule at
  half the front door's saturated rate; latency from each batch's scheduled
  time (so a stall counts against every batch it delays), against issue
  15's bound of 20 ms per 100 events.

* **xAPI**: the same events as xAPI statements (api/xapi/: a lesson
  completed is ADL ``completed`` of a lesson in its course, any other event a
  statement of its name), 100 per ``POST /xapi/statements``, same
  connections, same run: statements/s against the batch endpoint's events/s
  (issue 32's goal: at least 0.7x).

The ratio front door / baseline is the figure that matters; absolute numbers
drift on shared machines. The baseline's latency is per 100 events too: the
time from the first produce of a batch to the last acknowledgement in it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing as mp
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.common import Context, Result, Row, Scale, child_env, fresh_settings, percentile, stop
from core.settings import PROJECT_ROOT


def make_events(n: int, seed: int = 11) -> list[dict]:
    from ops.demo import Population

    pop = Population.build(seed=seed, tenants=("bench",), learners_per_tenant=2000)
    # Every learner active and "now": the benchmark measures the door, not the rhythm.
    for lr in pop.learners:
        lr.propensity, lr.drops_after_days = 1.0, None
        lr.enrolled_at = datetime(2000, 1, 1, tzinfo=UTC)
    events: list[dict] = []
    while len(events) < n:
        events += [ev for _, ev in pop.events_at(datetime.now(UTC), 1000)]
    return events[:n]


def as_statement(ev: dict) -> dict:
    """The event as the xAPI statement a learning tool would send for it."""
    import uuid

    from api.xapi.mapping import ADL, ADL_ACT

    learner = ev.get("user_id") or ev["anonymous_id"]
    lesson = ev["event_name"] == "lesson_completed"
    st = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, ev["client_event_id"])),
        "actor": {"objectType": "Agent",
                  "account": {"homePage": "https://lms.example", "name": learner}},
        "verb": {"id": ADL + "completed" if lesson else f"https://lms.example/verbs/{ev['event_name']}"},
        "object": {"objectType": "Activity",
                   "id": f"https://lms.example{ev['context_page']}",
                   "definition": {"type": ADL_ACT + ("lesson" if lesson else "interaction")}},
        "timestamp": ev["event_timestamp"],
    }  # fmt: skip
    if ev.get("program_id"):
        course = {
            "id": f"https://lms.example/programs/{ev['program_id']}",
            "definition": {"type": ADL_ACT + "course"},
        }
        st["context"] = {"contextActivities": {"grouping": [course]}}
    return st


# --- front door load generator (runs in its own process) --------------------
def _load_generator(
    url: str, key: str, batches: list[list[dict]], conc: int, pace_s: float, xapi: bool, out
) -> None:
    """Post every batch with ``conc`` connections: as fast as they go, or the
    i-th batch at ``i * pace_s`` after the start (latency then counted from
    that scheduled time)."""
    import httpx

    async def run() -> dict:
        queue: asyncio.Queue = asyncio.Queue()
        for i, b in enumerate(batches):  # bodies encoded before the clock starts
            queue.put_nowait((i, json.dumps(b if xapi else {"events": b})))
        path = "/xapi/statements" if xapi else "/v1/events/batch"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if xapi:
            basic = base64.b64encode(f"{key}:".encode()).decode()
            headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json",
                       "X-Experience-API-Version": "1.0.3"}  # fmt: skip
        latencies: list[float] = []
        accepted = 0
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        t0 = time.perf_counter()
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

            async def worker() -> None:
                nonlocal accepted
                while not queue.empty():
                    i, body = queue.get_nowait()
                    t = time.perf_counter()
                    if pace_s:
                        t = t0 + i * pace_s
                        await asyncio.sleep(max(0.0, t - time.perf_counter()))
                    r = await client.post(path, content=body, headers=headers)
                    latencies.append(time.perf_counter() - t)
                    r.raise_for_status()
                    accepted += len(r.json() if xapi else r.json()["accepted"])

            await asyncio.gather(*(worker() for _ in range(conc)))
            elapsed = time.perf_counter() - t0
        return {"accepted": accepted, "elapsed_s": elapsed, "latencies": latencies}

    out.put(asyncio.run(run()))


# --- baseline: validate + encode + produce directly (its own process) -------
def _raw_producer(bootstrap: str, topic: str, events: list[dict], out) -> None:
    from confluent_kafka import Producer

    from api.ingest.validate import Bounds, validate_event
    from schemas.codec import SingleObjectCodec

    codec = SingleObjectCodec()
    bounds = Bounds(300, 7 * 86400)
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    acked = 0
    started: dict[int, float] = {}
    pending: dict[int, int] = {}
    latencies: list[float] = []

    def delivered(batch: int, err) -> None:
        nonlocal acked
        acked += err is None
        pending[batch] -= 1
        if pending[batch] == 0:
            latencies.append(time.perf_counter() - started[batch])

    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        b = i // 100
        if b not in started:
            started[b], pending[b] = time.perf_counter(), min(100, len(events) - b * 100)
        rec, errs = validate_event(
            ev, tenant_id="t_bench", pii_salt="s", received_at=datetime.now(UTC), bounds=bounds
        )
        if errs:
            pending[b] -= 1
            continue
        key = f"t_bench:{rec['user_id'] or rec['anonymous_id']}".encode()
        while True:
            try:
                p.produce(
                    topic, codec.encode(rec), key, on_delivery=lambda e, _m, b=b: delivered(b, e)
                )
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(60)
    out.put({"accepted": acked, "elapsed_s": time.perf_counter() - t0, "latencies": latencies})


def _in_process(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, q))
    proc.start()
    result = q.get(timeout=1800)
    proc.join(60)
    return result


def run(scale: Scale, ctx: Context, concurrency: int = 8) -> Result:
    from core.secrets import load_secrets
    from ops.control import HttpControl
    from ops.kafka_launcher import free_port
    from ops.stack import Child, wait_healthy

    n_events = scale.ingest_events
    settings = fresh_settings(ctx, "bi", {"events.raw": {}, "bench.baseline": {}})
    port = free_port()
    api_log = settings.run_dir / "api.log"
    with open(api_log, "wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "api.main"],
            env=child_env(settings, API_PORT=str(port), INGEST_RATE_PER_S="0"),
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, [Child("api", api, api_log)])
        key = HttpControl(url, load_secrets(settings).admin_secret).create_tenant("bench")[1]
        events = make_events(n_events)
        batches = [events[i : i + 100] for i in range(0, len(events), 100)]
        door = _in_process(_load_generator, url, key, batches, concurrency, 0.0, False)
        # the same events as xAPI statements, new ids (none is a retry), to a fresh tenant
        xkey = HttpControl(url, load_secrets(settings).admin_secret).create_tenant("bench_xapi")[1]
        statements = [as_statement(ev) for ev in events]
        xapi = _in_process(_load_generator, url, xkey,
                           [statements[i : i + 100] for i in range(0, len(statements), 100)],
                           concurrency, 0.0, True)  # fmt: skip
        base_res = _in_process(
            _raw_producer, ctx.bootstrap, settings.topic("bench.baseline"), events
        )
        half = door["accepted"] / door["elapsed_s"] / 2
        fresh = make_events(n_events, seed=12)
        paced = _in_process(_load_generator, url, key,
                            [fresh[i : i + 100] for i in range(0, len(fresh), 100)],
                            concurrency, 100 / half, False)  # fmt: skip
    finally:
        stop(api, 30)
    lat = door.pop("latencies")
    door_rate = door["accepted"] / door["elapsed_s"]
    xapi_lat = xapi.pop("latencies")
    xapi_rate = xapi["accepted"] / xapi["elapsed_s"]
    base_rate = base_res["accepted"] / base_res["elapsed_s"]
    base_lat = base_res.pop("latencies")
    paced_lat = paced.pop("latencies")
    raw = "plain confluent-kafka producer"
    bound = "issue 15's bound (p99)"
    pace = f"{half:,.0f} ev/s scheduled, {paced['accepted'] / paced['elapsed_s']:,.0f} achieved"
    return Result(
        "ingest",
        rows=[
            Row("accepted events/s", round(door_rate), round(base_rate), "ev/s", "higher", raw),
            Row(
                "xAPI statements accepted/s, same content",
                round(xapi_rate),
                round(door_rate),
                "st/s",
                "higher",
                "the batch endpoint's events/s, same run",
                f"goal >= 0.7x; p50 {percentile(xapi_lat, 50) * 1000:.0f} ms per 100",
            ),
            Row(
                "p50 latency per 100 events",
                round(percentile(lat, 50) * 1000, 1),
                round(percentile(base_lat, 50) * 1000, 1),
                "ms",
                "lower",
                raw,
            ),
            Row(
                "p99 latency per 100 events",
                round(percentile(lat, 99) * 1000, 1),
                round(percentile(base_lat, 99) * 1000, 1),
                "ms",
                "lower",
                raw,
            ),
            Row(
                "paced at half the saturated rate: p50 latency per 100 events",
                round(percentile(paced_lat, 50) * 1000, 1),
                round(percentile(lat, 50) * 1000, 1),
                "ms",
                "lower",
                "the front door's p50 at saturation",
                pace,
            ),
            Row(
                "paced at half the saturated rate: p99 latency per 100 events",
                round(percentile(paced_lat, 99) * 1000, 1),
                20,
                "ms",
                "lower",
                bound,
                pace,
            ),
        ],  # fmt: skip
        details={
            "events": n_events,
            "batch_size": 100,
            "concurrency": concurrency,
            "front_door": door,
            "xapi": {**xapi, "ratio_to_batch": round(xapi_rate / door_rate, 3)},
            "baseline_raw_producer": base_res,
            "paced": {
                **paced,
                "target_ev_s": round(half),
                "achieved_ev_s": round(paced["accepted"] / paced["elapsed_s"]),
            },
        },  # fmt: skip
    )
