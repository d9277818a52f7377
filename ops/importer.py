"""`skillstream import SOURCE --tenant NAME`: the operator's face on
api/imports/ (a progress bar, the summary, exit codes).

Exit codes (docs/ingestion.md, "Historical import"):
  0  every row accepted (or already imported by an earlier run)
  1  finished, but some rows were rejected (see the rejects file)
  2  nothing imported: a bad command, an unknown tenant, no such source or format
  3  stopped: Kafka did not take a chunk, or the worker did not apply the
     import in --wait-s; running the same command again resumes
  130  interrupted (Ctrl-C); running the same command again resumes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from api.imports.readers import ReadError, load_mapping
from api.imports.run import ImportAborted, Importer, KafkaOut, Target
from api.imports.sources import S3Reader, SourceError, resolve
from api.imports.state import ImportBusy, ImportState, StateStore, import_id
from core.settings import Settings, get_settings
from ops.kafka_launcher import KafkaLauncherError, running_bootstrap

OK, REJECTED, BAD, STOPPED, INTERRUPTED = 0, 1, 2, 3, 130


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import historical events from files or the object store (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="a file, a directory, a glob, or s3://bucket/prefix")
    p.add_argument("--tenant", required=True, help="tenant name: every event is this tenant's")
    p.add_argument("--format", choices=("ndjson", "csv", "parquet"), help="default: by extension")
    p.add_argument("--mapping", help='JSON file {"column": "event field"} for CSV/Parquet names')
    p.add_argument("--rejects", help="rejects file (NDJSON); default <run dir>/imports/ID...")
    p.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    p.add_argument(
        "--wait-s",
        type=float,
        default=None,
        help="longest wait for the worker to apply the import (default: as long as it takes)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar, a line a minute")
    p.set_defaults(func=cmd_import)


def _s3(settings: Settings, source: str) -> S3Reader | None:
    if not source.startswith("s3://") or not settings.s3_endpoint:
        return None
    return S3Reader(settings.s3_endpoint, settings.s3_region, settings.run_dir / "imports" / "s3")


class Bar:
    """A rich progress bar on a terminal (events/s, ETA); else a line a minute."""

    def __init__(self, enabled: bool, title: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._task: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[events]:,} rows · {task.fields[rate]:,.0f} ev/s"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
            )
            self.progress.start()
            self._task = self.progress.add_task(title, total=1, events=0, rate=0.0, note="")

    def __call__(self, st: ImportState) -> None:
        note = st.status if st.status != "sending" else ""
        if st.records_behind:
            note = f"worker: {st.records_behind} record(s) to apply"
        if self.enabled:
            self.progress.update(self._task, total=max(1, st.bytes_total),
                                 completed=st.bytes_done, events=st.read,
                                 rate=st.events_per_s, note=note)  # fmt: skip
        elif time.monotonic() - self._last > 60 or st.status == "done":
            self._last = time.monotonic()
            pct = 100 * st.bytes_done / st.bytes_total if st.bytes_total else 100
            eta = f", ETA {st.eta_s:.0f}s" if st.eta_s else ""
            print(f"{st.import_id}: {pct:.1f}% {st.read:,} rows, {st.events_per_s:,.0f} ev/s"
                  f"{eta} {note}", file=sys.stderr, flush=True)  # fmt: skip

    def stop(self) -> None:
        if self.enabled:
            self.progress.stop()


def summary(st: ImportState, dry_run: bool) -> str:
    lines = [
        f"import {st.import_id} ({st.tenant}): {st.status}{' (dry run)' if dry_run else ''}",
        f"  read       {st.read:>10,}",
        f"  accepted   {st.accepted:>10,}" + ("  (would be sent)" if dry_run else ""),
        f"  duplicates {st.duplicates:>10,}  (same client event id within the import)",
        f"  rejected   {st.rejected:>10,}",
    ]
    for reason, n in sorted(st.rejected_by_reason.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"    {n:>8,}  {reason}")
    if st.already_imported:
        lines.append(f"  already imported by an earlier run: {st.already_imported:,} row(s)")
    if st.first_day:
        lines.append(f"  event days {st.first_day} .. {st.last_day}")
    if st.rejected:
        lines.append(f"  rejects file: {st.rejects_file}")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace) -> int:
    from ops.control import ControlError, control_for

    settings = get_settings()
    try:
        mapping = load_mapping(args.mapping)
        files = resolve(args.source, args.format, _s3(settings, args.source))
    except (SourceError, ReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD
    ctl = control_for(settings)
    from api.admin.operations import IMPORT_FINISH, IMPORT_START

    states = StateStore(settings.run_dir / "imports")
    try:
        probe = ctl.run(IMPORT_START, tenant=args.tenant, import_id="imp_0",
                        source=args.source, dry_run=True)  # fmt: skip
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD
    iid = import_id(probe["tenant_id"], [f.identity for f in files])
    st = None if args.dry_run else states.load(iid)
    if st is not None and st.status == "done":
        print(summary(st, False))
        print(f"already imported: {args.source} (import {iid}) adds nothing")
        return OK
    target = Target(probe["tenant_id"], probe["name"], probe["pii_salt"])
    if not args.dry_run:
        ctl.run(IMPORT_START, tenant=args.tenant, import_id=iid, source=args.source)
    st = st or ImportState(iid, target.tenant_id, target.name, args.source, dry_run=args.dry_run)
    try:
        lock = None if args.dry_run else states.lock(iid)
    except ImportBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD
    bar = Bar(not args.no_progress, f"import {iid}")
    code = OK
    try:
        out = None
        if not args.dry_run:
            out = KafkaOut(
                running_bootstrap(settings.kafka_bootstrap, settings.kafka_dir),
                settings.topic("events.import"),
            )
        rejects = Path(args.rejects) if args.rejects else None
        imp = Importer(settings, target, files, st, states, out=out, mapping=mapping,
                       s3=_s3(settings, args.source), rejects=rejects,
                       on_progress=bar)  # fmt: skip
        imp.send_all()
        imp.finish(args.wait_s)
        code = REJECTED if st.rejected else OK
    except KeyboardInterrupt:
        st.status, code = "interrupted", INTERRUPTED
    except (ImportAborted, ReadError, SourceError, KafkaLauncherError) as exc:
        st.status, st.error, code = "failed", str(exc), STOPPED
    finally:
        bar.stop()
        if not args.dry_run:
            states.save(st)
            if lock is not None:
                lock.close()
    print(summary(st, args.dry_run))
    if code == INTERRUPTED:
        print("interrupted: run the same command again to resume", file=sys.stderr)
    elif code == STOPPED:
        print(f"error: {st.error}\nrun the same command again to resume", file=sys.stderr)
    if not args.dry_run:
        counts = {k: getattr(st, k) for k in ("read", "accepted", "duplicates", "rejected")}
        try:
            ctl.run(IMPORT_FINISH, tenant=args.tenant, import_id=iid, status=st.status,
                    counts=counts)  # fmt: skip
        except ControlError as exc:
            print(f"warning: not audited: {exc}", file=sys.stderr)
    return code
