"""Time and peak RSS of one export, for the issue's notes (not collected by pytest).

    .venv/bin/python -m tests.perf_exports --rows 1000000 --format csv
    .venv/bin/python -m tests.perf_exports --rows 10000 --format pdf

Seeds ``--rows`` learners (one learner-day and score row each) into a fresh embedded
ClickHouse, then runs the export job exactly as the API's worker does
(query layer -> writer -> local object store -> notification fan-out) while a
thread samples this process's resident set size every 20 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["csv", "pdf"], default="csv")
    args = ap.parse_args()

    from cryptography.fernet import Fernet

    from api.exports.model import ExportRepo, new_export
    from api.exports.runner import ExportRunner
    from api.exports.storage import LocalObjectStore
    from api.notify.fanout import Notifier
    from api.sealing import Sealer
    from bench.export import seed
    from core.settings import Settings
    from sinks.store import open_store

    tmp = Path(tempfile.mkdtemp(prefix="perf-exports-"))
    settings = Settings(SKILLSTREAM_RUN_DIR=tmp / "run", EXPORT_PDF_MAX_ROWS=args.rows)
    store = open_store(None, tmp / "clickhouse")
    tenant = "t_perf"
    t0 = time.perf_counter()
    seed(store, tenant, args.rows)
    seed_s = time.perf_counter() - t0
    objects = LocalObjectStore(tmp / "exports", "perf-secret")
    sealer = Sealer(Fernet.generate_key().decode(), "webhook secrets")
    runner = ExportRunner(store, settings, objects, Notifier(store, settings, None, sealer))
    e = new_export(
        tenant_id=tenant,
        user="perf",
        role="company_admin",
        report="learners",
        fmt=args.format,
        params={},
    )
    ExportRepo(store).save(e)

    base = rss_mb()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    done = runner.run(e.export_id)
    took = time.perf_counter() - t0
    stop.set()
    assert done is not None and done.status == "done", done
    print(
        f"{args.format} export of {done.rows:,} rows ({done.bytes / 1e6:.1f} MB):"
        f" {took:.1f} s; RSS before {base:.0f} MB, peak {peak[0]:.0f} MB"
        f" (+{peak[0] - base:.0f} MB); seeding took {seed_s:.1f} s"
    )
    store.close()


if __name__ == "__main__":
    main()
