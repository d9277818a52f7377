"""Export: the learners CSV and PDF, time and RSS growth of this process.

A fresh embedded ClickHouse is seeded with one score row per learner; then,
each in a new process that opens that store, the export job runs exactly as
the API's worker does (``ExportRunner.run``: scope, query, file, local object
store, notification) while a thread samples the process's resident set size
every 10 ms. In the same run:

* **CSV** (1M rows at medium and full): ClickHouse writes it (``FORMAT
  CSV`` of the learner list's query, streamed to the object store); the
  baseline is the same query's rows brought into Python (JSONEachRow, one
  line at a time) and written by ``csv_writer``, the path exports took
  before; RSS growth is held against the issue's 100 MB;
* **PDF** (10k rows): reportlab's document of a tenant of 10k learners
  (tiles, chart, every learner), held against the issue's 3 s.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.common import Context, Result, Row, Scale

SIZES = {"small": (20_000, 2_000), "medium": (1_000_000, 10_000), "full": (1_000_000, 10_000)}
CSV_TENANT, PDF_TENANT = "t_csv", "t_pdf"  # the PDF lists its whole tenant


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


def seed(store, tenant: str, rows: int) -> None:
    """One learner-day per learner today, in both tables the worker's
    learner-day record feeds (learner_daily and its live score)."""
    p = {"t": tenant, "d": datetime.now(UTC).date().isoformat(), "n": rows}
    user = "concat('u', leftPad(toString(number), 8, '0'))"
    store.command(
        f"INSERT INTO learner_daily SELECT {{t:String}}, {user}, toDate({{d:String}}),"
        " concat('p', toString(number % 7)), NULL, number % 8, number % 3, number % 4,"
        " number % 2, number % 6, 10, 0, 5, 1, now64(3) FROM numbers({n:UInt64})",
        p,
    )
    store.command(
        f"INSERT INTO learner_scores SELECT {{t:String}}, {user}, toDate({{d:String}}),"
        " concat('p', toString(number % 7)), NULL, number % 101, number % 9 = 0, number % 5,"
        " number % 8, number % 3, number % 4, number % 2, number % 6, 'daily', 1, now64(3)"
        " FROM numbers({n:UInt64})",
        p,
    )


def export(store, settings, objects, fmt: str, tenant: str) -> dict:
    from cryptography.fernet import Fernet

    from api.exports.model import ExportRepo, new_export
    from api.exports.runner import ExportRunner
    from api.notify.fanout import Notifier
    from api.sealing import Sealer

    sealer = Sealer(Fernet.generate_key().decode(), "webhook secrets")  # no webhooks here
    runner = ExportRunner(store, settings, objects, Notifier(store, settings, None, sealer))
    e = new_export(tenant_id=tenant, user="bench", role="company_admin", report="learners",
                   fmt=fmt, params={})  # fmt: skip
    ExportRepo(store).save(e)
    done = runner.run(e.export_id)
    assert done is not None and done.status == "done", done
    return {"rows": done.rows, "bytes": done.bytes}


def python_csv(store, path: Path) -> dict:
    """The baseline: the same query's rows through Python into csv_writer."""
    from api.exports.csv_writer import write_csv
    from api.exports.sources import LEARNER_COLUMNS
    from api.reports.learners import learners_csv
    from api.reports.scope import Scope

    scope = Scope(role="company_admin", actor_id="b", tenant_id=CSV_TENANT, learners=None,
                  programs=None)  # fmt: skip
    sql, params = learners_csv(scope)

    def rows():
        for chunk in store.stream(sql, params, "JSONEachRow"):
            for line in chunk.splitlines():
                yield orjson.loads(line)

    return {"rows": write_csv(path, LEARNER_COLUMNS, rows()), "bytes": None}


def measure_in_fresh_process(kind: str, tmp: Path, pdf_rows: int) -> dict:
    """``kind`` (csv, pdf, baseline) in a new process that opens the seeded
    store itself, so its RSS growth is the export's, not memory the seeding
    left behind."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, tmp, pdf_rows, out))
    proc.start()
    got = out.get(timeout=1800)
    proc.join()
    if "error" in got:
        raise RuntimeError(f"{kind}: {got['error']}")
    return got


def _child(kind: str, tmp: Path, pdf_rows: int, out) -> None:
    try:
        from api.exports.storage import LocalObjectStore
        from core.settings import Settings
        from sinks.store import open_store

        settings = Settings(SKILLSTREAM_RUN_DIR=tmp / "run", EXPORT_PDF_MAX_ROWS=pdf_rows)
        import api.exports.runner  # noqa: F401 (loaded, as in the API process)
        import api.notify.fanout  # noqa: F401

        store = open_store(None, tmp / "ch")
        store.query("SELECT count() FROM learner_latest")  # warm, as a serving API is
        objects = LocalObjectStore(tmp / "exports", "bench-secret")
        if kind == "baseline":
            got = measured(lambda: python_csv(store, tmp / "baseline.csv"))
        else:
            tenant = PDF_TENANT if kind == "pdf" else CSV_TENANT
            got = measured(lambda: export(store, settings, objects, kind, tenant))
        store.close()
        out.put(got)
    except Exception as exc:  # noqa: BLE001 (reported to the parent)
        out.put({"error": repr(exc)})


def run(scale: Scale, ctx: Context) -> Result:
    from sinks.store import open_store

    csv_rows, pdf_rows = SIZES[scale.name]
    tmp = Path(tempfile.mkdtemp(prefix="bx-", dir=ctx.workdir))
    store = open_store(None, tmp / "ch")
    t0 = time.perf_counter()
    seed(store, CSV_TENANT, csv_rows)
    seed(store, PDF_TENANT, pdf_rows)
    seed_s = time.perf_counter() - t0
    store.close()
    ours, base, pdf = (measure_in_fresh_process(k, tmp, pdf_rows)
                       for k in ("csv", "baseline", "pdf"))  # fmt: skip
    label = f"{csv_rows:,}-row learners CSV"
    result = Result("export")
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
    return result
