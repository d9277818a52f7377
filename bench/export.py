"""Export: the learners CSV and PDF, time and RSS growth of this process.

A fresh embedded ClickHouse is seeded with one score row per learner, then
the export job runs exactly as the API's worker does (``ExportRunner.run``:
scope, query, file, local object store, notification) while a thread samples
this process's resident set size every 10 ms. In the same run:

* **CSV** (1M rows at medium and full): ClickHouse writes it (``FORMAT
  CSV`` of the learner list's query, streamed to the object store); the
  baseline is the same query's rows brought into Python (JSONEachRow, one
  line at a time) and written by ``csv_writer``, the path exports took
  before; RSS growth is held against the issue's 100 MB;
* **PDF** (10k rows): reportlab's document of the first 10k learners, held
  against the issue's 3 s.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.common import Context, Result, Row, Scale

SIZES = {"small": (20_000, 2_000), "medium": (1_000_000, 10_000), "full": (1_000_000, 10_000)}
TENANT = "t_bench"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measured(fn: Callable[[], object]) -> dict:
    """Wall time of ``fn`` and the peak RSS above where it started."""
    base = rss_mb()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    out = fn()
    took = time.perf_counter() - t0
    stop.set()
    sampler.join()
    grew = round(peak[0] - base)
    return {"s": round(took, 2), "rss_before_mb": round(base), "rss_growth_mb": grew, "result": out}


def seed(store, rows: int) -> None:
    store.command(
        "INSERT INTO learner_scores SELECT {t:String}, concat('u', leftPad(toString(number), 8,"
        " '0')), toDate({d:String}), concat('p', toString(number % 7)), NULL, number % 101,"
        " number % 9 = 0, number % 5, number % 8, number % 3, number % 4, number % 2, number % 6,"
        " 'daily', 1, now64(3) FROM numbers({n:UInt64})",
        {"t": TENANT, "d": datetime.now(UTC).date().isoformat(), "n": rows},
    )


def export(store, settings, objects, fmt: str) -> dict:
    from api.exports.model import ExportRepo, new_export
    from api.exports.runner import ExportRunner
    from api.notify.fanout import Notifier

    runner = ExportRunner(store, settings, objects, Notifier(store, settings, None))
    e = new_export(tenant_id=TENANT, user="bench", role="company_admin", report="learners",
                   fmt=fmt, params={})  # fmt: skip
    ExportRepo(store).save(e)
    done = runner.run(e.export_id)
    assert done is not None and done.status == "done", done
    return {"rows": done.rows, "bytes": done.bytes}


def python_csv(store, path: Path) -> dict:
    """The baseline: the same query's rows through Python into csv_writer."""
    from api.exports.csv_writer import write_csv
    from api.exports.sources import LEARNER_COLUMNS
    from api.reports import queries
    from api.reports.scope import Scope

    scope = Scope(role="company_admin", actor_id="b", tenant_id=TENANT, learners=None,
                  programs=None)  # fmt: skip
    sql, params = queries.learners_csv(scope)

    def rows():
        for chunk in store.stream(sql, params, "JSONEachRow"):
            for line in chunk.splitlines():
                yield orjson.loads(line)

    return {"rows": write_csv(path, LEARNER_COLUMNS, rows()), "bytes": None}


def run(scale: Scale, ctx: Context) -> Result:
    from api.exports.storage import LocalObjectStore
    from ops.settings import Settings
    from sinks.store import open_store

    csv_rows, pdf_rows = SIZES[scale.name]
    tmp = Path(tempfile.mkdtemp(prefix="bx-", dir=ctx.workdir))
    settings = Settings(SKILLSTREAM_RUN_DIR=tmp / "run", EXPORT_PDF_MAX_ROWS=pdf_rows)
    store = open_store(None, tmp / "ch")
    result = Result("export")
    try:
        t0 = time.perf_counter()
        seed(store, csv_rows)
        seed_s = time.perf_counter() - t0
        objects = LocalObjectStore(tmp / "exports", "bench-secret")
        ours = measured(lambda: export(store, settings, objects, "csv"))
        base = measured(lambda: python_csv(store, tmp / "baseline.csv"))
        pdf = measured(lambda: export(store, settings, objects, "pdf"))
        label = f"{csv_rows:,}-row learners CSV"
        result.rows += [
            Row(f"{label}: time", ours["s"], base["s"], "s", "lower",
                "the same query's rows through Python's csv writer"),
            Row(f"{label}: RSS growth", ours["rss_growth_mb"], 100, "MB", "lower",
                "the issue's bound (100 MB)"),
            Row(f"{pdf_rows:,}-row learners PDF: time", pdf["s"], 3.0, "s", "lower",
                "the issue's bound (3 s)"),
        ]  # fmt: skip
        result.details = {"seed_s": round(seed_s, 1), "csv": ours, "baseline_python_csv": base,
                          "pdf": pdf}  # fmt: skip
    finally:
        store.close()
    return result
