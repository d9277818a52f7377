"""The export worker: one job at a time on its own thread, so report
traffic keeps its share of the store. With the embedded store it runs in
the API process; with a server, in `skillstream jobs` processes, each
running the exports whose lease it holds (``owns``, api/leases.py) and
checking it again before the file and before the notifications.

``run`` is idempotent and resumable from the recorded status: a job that
was queued or running when the process died is rebuilt from scratch; one
that was ``written`` (file stored, link minted) goes straight to the
notification fan-out, which is itself exactly-once per channel. ``recover``
re-submits both kinds at start-up.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.audit.chain import audit
from api.exports import sources
from api.exports.csv_writer import write_csv
from api.exports.model import LIVE, Export, ExportRepo
from api.exports.pdf_writer import write_pdf
from api.exports.storage import ObjectStore
from api.notify.fanout import Notifier
from api.reports.common import describe
from api.reports.learners import learner_ranges, learners_csv
from api.reports.org import OrgRegistry
from api.reports.scope import Scope, compute_scope
from api.security import ROLE_CAPABILITIES, Principal
from core.settings import Settings
from core.threads import BackgroundThread
from sinks.store import Store

log = logging.getLogger("skillstream.exports")
CONTENT_TYPES = {"csv": "text/csv", "pdf": "application/pdf"}
TITLES = {
    "engagement": "Engagement · last {weeks} weeks",
    "learners": "Learners in scope",
    "kpis": "Key performance indicators",
    "audit": "Audit log",
}


class SimulatedCrash(RuntimeError):
    """Raised by the test hook between 'file written' and 'notification sent'."""


def export_params(e: Export) -> sources.ExportParams:
    p = dict(e.params)
    for k in ("since", "until"):
        if p.get(k):
            p[k] = datetime.fromisoformat(p[k])
    return sources.ExportParams(**p)


def scope_of(store: Store, e: Export, p: sources.ExportParams) -> Scope:
    who = Principal(
        e.tenant_id,
        "",
        e.requested_role,
        e.requested_by or None,
        frozenset(ROLE_CAPABILITIES.get(e.requested_role, ())),
    )
    return compute_scope(
        who,
        OrgRegistry(store),
        tenant_id=p.tenant_id,
        program_id=p.program_id,
        cohort_id=p.cohort_id,
        user_id=p.user_id,
    )


@dataclass
class ExportRunner:
    store: Store
    settings: Settings
    objects: ObjectStore
    notifier: Notifier
    crash_after_write: bool = False  # test hook
    owns: Callable[[str], bool] = lambda _export_id: True

    def __post_init__(self) -> None:
        self.repo = ExportRepo(self.store)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._thread = BackgroundThread("exports", self._loop)
        self._lock = threading.Lock()

    # --- the worker thread ------------------------------------------------------
    def submit(self, export_id: str) -> None:
        with self._lock:
            self._thread.start()  # a worker that died is replaced
        with self._lock:
            if export_id in self._queued:
                return
            self._queued.add(export_id)
        self._queue.put(export_id)

    def _loop(self) -> None:
        while (export_id := self._queue.get()) is not None:
            try:
                self.run(export_id)
            except SimulatedCrash:
                log.warning("export %s: simulated crash after write", export_id)
            except Exception:  # noqa: BLE001 (the worker outlives one bad job)
                log.exception("export %s failed", export_id)
            finally:
                with self._lock:
                    self._queued.discard(export_id)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)  # the loop waits on its queue, not on the stop event
            self._thread.stop(10)

    def recover(self) -> int:
        """Queue every unfinished export this runner owns (at start-up, and
        periodically where runners share the work: one that died left its
        exports queued, running or written, and their new owner resumes them)."""
        pending = [e for e in self.repo.pending() if self.owns(e.export_id)]
        for e in pending:
            self.submit(e.export_id)
        return len(pending)

    # --- one job ----------------------------------------------------------------
    def run(self, export_id: str) -> Export | None:
        e = self.repo.get(export_id)
        if e is None or not self.owns(export_id):
            return None
        if e.status in ("queued", "running"):
            e = self.repo.update(e, status="running")
            try:
                e = self._write(e)
            except Exception as exc:
                e = self.repo.update(
                    e, status="failed", error=str(exc)[:500], finished_at=datetime.now(UTC)
                )
                audit(
                    self.store,
                    tenant_id=e.tenant_id,
                    actor_id=e.requested_by,
                    actor_role=e.requested_role,
                    action="export.failed",
                    resource=f"export:{e.export_id}",
                    outcome="error",
                    detail={"error": str(exc)[:500]},
                )
                raise
            if self.crash_after_write:
                raise SimulatedCrash(export_id)
        if e.status == "written" and self.owns(export_id):
            self.notifier.fan_out(self.ready_event(e))
            e = self.repo.update(e, status="done")
        return e

    def _write(self, e: Export) -> Export:
        p = export_params(e)
        s = self.settings
        scope = None if e.report == "audit" else scope_of(self.store, e, p)
        key = f"{e.tenant_id}/{e.export_id}.{e.format}"
        if e.format == "csv" and e.report == "learners":
            assert scope is not None
            n, size = self._clickhouse_csv(key, scope, p)
        else:
            n, size = self._python_file(key, e, p, scope)
        # on record before the export can hand out a link (audit or nothing:
        # a failure here fails the export; the sweep removes its object)
        audit(
            self.store,
            tenant_id=e.tenant_id,
            actor_id=e.requested_by,
            actor_role=e.requested_role,
            action="export.written",
            resource=f"export:{e.export_id}",
            outcome="ok",
            detail={"rows": n, "bytes": size, "report": e.report, "format": e.format},
        )
        now = datetime.now(UTC)
        return self.repo.update(
            e,
            status="written",
            object_key=key,
            rows=n,
            bytes=size,
            finished_at=now,
            link_expires_at=now + timedelta(seconds=s.export_link_ttl_s),
        )

    def _clickhouse_csv(self, key: str, scope: Scope, p: sources.ExportParams) -> tuple[int, int]:
        """ClickHouse writes the CSV (the screen's query, FORMAT CSV), one key
        range of ``EXPORT_CHUNK_ROWS`` learners at a time so its aggregation
        stays small; the blocks go to the object store as they come: neither
        the rows nor the file pass through Python objects. The header line is
        ours: chdb's stream repeats a CSVWithNames header in every block."""
        sql, params = learners_csv(scope, at_risk=p.at_risk, days=p.days or 28)
        header = ",".join(f'"{c}"' for c in sources.LEARNER_COLUMNS).encode() + b"\n"
        lines = [0]
        ranges = learner_ranges(self.store, scope, params, self.settings.export_chunk_rows)

        def blocks() -> Iterator[bytes]:
            yield header
            for bounded in ranges:  # the store is free between ranges
                with closing(self.store.stream(sql, bounded, "CSV")) as chunks:
                    for chunk in chunks:
                        lines[0] += chunk.count(b"\n")
                        yield chunk

        # Closed however the upload ends: a failed upload's traceback would
        # otherwise keep the stream, its session and its read open while the
        # failure is recorded (a write).
        with closing(blocks()) as body:
            size = self.objects.put_stream(key, body, CONTENT_TYPES["csv"])
        return lines[0], size

    def _python_file(
        self, key: str, e: Export, p: sources.ExportParams, scope: Scope | None
    ) -> tuple[int, int]:
        s = self.settings
        rows = sources.rows(
            self.store,
            scope,
            e.report,
            p,
            target=s.engagement_target,
            chunk=s.export_chunk_rows,
            limit=s.export_pdf_max_rows + 1,  # one more: the PDF says there are more
            term=s.readiness_term,
            tenant_for_audit=p.tenant_id or e.tenant_id,
        )
        cols = sources.columns(e.report)
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            path = Path(tmp) / f"{e.export_id}.{e.format}"
            if e.format == "csv":
                n = write_csv(path, cols, rows)
            else:
                n = self._pdf(path, e, p, scope, cols, rows)
            return n, self.objects.put_file(key, path, CONTENT_TYPES[e.format])

    def _pdf(
        self,
        path: Path,
        e: Export,
        p: sources.ExportParams,
        scope: Scope | None,
        cols: tuple[str, ...],
        rows: Any,
    ) -> int:
        s = self.settings
        if scope is None:  # audit: the tenant's engagement on the front page
            scope = Scope(
                role="company_admin",
                actor_id=e.requested_by,
                tenant_id=p.tenant_id or e.tenant_id,
                learners=None,
                programs=None,
            )
        summary = sources.summary(self.store, scope, s.engagement_target, p.weeks)
        d = describe(scope)
        scope_text = ", ".join(f"{k} {v}" for k, v in d.items() if v not in (None, False))
        return write_pdf(
            path,
            title=TITLES[e.report].format(weeks=p.weeks),
            scope_text=scope_text,
            summary=summary,
            cols=cols,
            rows=rows,
            max_rows=s.export_pdf_max_rows,
        )

    def download_url(self, e: Export, now: datetime | None = None) -> str | None:
        if e.status not in LIVE or e.link_expires_at is None:
            return None
        left = int((e.link_expires_at - (now or datetime.now(UTC))).total_seconds())
        return self.objects.presign(e.object_key, left) if left > 0 else None

    def ready_event(self, e: Export) -> dict[str, Any]:
        base = (self.settings.public_url or "").rstrip("/")
        link = self.download_url(e) or ""
        if link.startswith("/"):
            link = base + link
        assert e.link_expires_at is not None and e.finished_at is not None
        return {
            "event_id": f"report_ready:{e.export_id}",
            "export_id": e.export_id,
            "tenant_id": e.tenant_id,
            "user_id": e.requested_by,
            "report": e.report,
            "format": e.format,
            "rows": e.rows,
            "bytes": e.bytes,
            "title": f"Your {e.report} export is ready",
            "body": f"{e.rows} row(s), {e.format.upper()}, {e.bytes} bytes.",
            "status_url": f"{base}/v1/exports/{e.export_id}",
            "download_url": link,
            "link_expires_at": e.link_expires_at.isoformat(),
            "occurred_at": e.finished_at.isoformat(),
        }

    # --- the sweep: lapsed links and orphan objects ---------------------------------
    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        now = now or datetime.now(UTC)
        expired = 0
        for e in self.repo.lapsed(now):
            with audit(
                self.store,
                tenant_id=e.tenant_id,
                actor_id="system",
                actor_role="system",
                action="export.expired",
                resource=f"export:{e.export_id}",
                outcome="ok",
                detail={"object_key": e.object_key},
            ):
                self.objects.delete(e.object_key)
                self.repo.update(e, status="expired")
            expired += 1
        return {"expired": expired, "orphans": self.delete_orphans()}

    def delete_orphans(self) -> int:
        """Objects whose export is gone, failed, expired or purged (a crash
        between delete and record, or a failed run that uploaded)."""
        lister = getattr(self.objects, "keys", None)
        if lister is None:
            return 0
        n = 0
        for key in lister():
            export_id = Path(key).stem
            e = self.repo.get(export_id)
            if e is None or e.status in ("failed", "expired", "purged"):
                self.objects.delete(key)
                n += 1
        return n
