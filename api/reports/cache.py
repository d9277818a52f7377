"""Report results kept ready: a viewer is answered from memory, never from a
computation its request started, except the first view of a result nobody
has asked for recently.

A result is kept under its report, scope (org data included: a changed link
is a new scope), parameters and the UTC date (reports are relative to
today), with its **basis**: the sink's round count and the tenant's count of
deletions (``summaries.deletions``), both read before the computation
started. While it is viewed (``keep_viewed_s``), ``refresh_due``, run by
the process's keeper thread after sink rounds, computes it again when the
round count moved or it is older than ``max_age_s`` (writes this process
does not count: another API process's sink on a ClickHouse server), at
most once per ``interval_s``, one computation per result however many
viewers poll it. A result nobody viewed for ``keep_viewed_s`` is dropped:
it costs nothing.

A request is answered from the newest kept result, whose
``data_fresh_as_of`` was taken before its queries ran, so the data it shows
is never older than it says. A deletion (erasure, purge) is not waited out:
the next request after it computes afresh. Without the keeper thread (a
bare cache) a result is reused only within its round and ``max_age_s``.
Concurrent misses on one key compute once (the others wait for it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from api.reports import summaries

log = logging.getLogger("skillstream.reports")

LOOKUPS = Counter("skillstream_report_cache_total", "Report cache lookups", ["report", "outcome"])
REFRESHES = Counter(
    "skillstream_report_refresh_total", "Kept report results computed in the background",
    ["report", "outcome"],
)  # fmt: skip

Result = dict[str, Any]
Compute = Callable[[], Result]


@dataclass
class Kept:
    result: Result
    basis: tuple[int, int]  # (sink rounds, deletions of its tenant) read before computing
    started: float  # monotonic time its computation started
    viewed: float  # monotonic time of its last request
    compute: Compute
    tenant: str | None
    done: float  # monotonic time its computation ended


class ReportCache:
    def __init__(
        self,
        generation: Callable[[], int],
        *,
        max_entries: int = 512,
        max_age_s: float = 30.0,
        keep_viewed_s: float = 300.0,
        interval_s: float = 2.0,
        on_kept: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._generation = generation
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        self._keep_viewed_s = keep_viewed_s
        self._interval_s = interval_s
        self._on_kept = on_kept
        self._clock = clock
        self.refreshing = False  # set by the keeper thread while it runs
        self._entries: OrderedDict[Hashable, Kept] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def key(self, report: str, scope: Hashable, **params: Any) -> Hashable:
        today = datetime.now(UTC).date()
        return (report, scope, tuple(sorted(params.items())), today)

    def basis(self, tenant: str | None) -> tuple[int, int]:
        return self._generation(), summaries.deletions(tenant)

    def get(
        self,
        key: Hashable,
        compute: Compute,
        *,
        tenant: str | None = None,
        first: Callable[[], Result | None] | None = None,
    ) -> Result:
        """The kept result for ``key``, else ``compute()`` kept under it.
        ``first``, when given, may answer a miss from figures kept elsewhere
        (None: compute); such an answer is refreshed as soon as it is due."""
        report = str(key[0]) if isinstance(key, tuple) else "?"
        hit = self._usable(key, tenant)
        if hit is not None:
            LOOKUPS.labels(report, "hit").inc()
            return dict(hit)
        with self._lock:
            flight = self._computing.setdefault(key, threading.Lock())
        with flight:
            hit = self._usable(key, tenant)  # computed by the call we waited for
            if hit is None:
                hit = self._fill(key, compute, tenant, first, report)
            else:
                LOOKUPS.labels(report, "hit").inc()
        with self._lock:
            self._computing.pop(key, None)
        return dict(hit)

    def _fill(
        self,
        key: Hashable,
        compute: Compute,
        tenant: str | None,
        first: Callable[[], Result | None] | None,
        report: str,
    ) -> Result:
        basis, started = self.basis(tenant), self._clock()
        got = first() if first is not None else None
        if got is not None:
            LOOKUPS.labels(report, "kept_figures").inc()
            # due for a refresh at once: the figures may be older than the round
            basis, started = (-1, basis[1]), started - self._interval_s
        else:
            LOOKUPS.labels(report, "miss").inc()
            got = compute()
        now = self._clock()
        self._put(key, Kept(got, basis, started, now, compute, tenant, now))
        if self._on_kept is not None:
            self._on_kept()
        return got

    def refresh_due(self, stopping: threading.Event | None = None) -> int:
        """Compute again each viewed result that is due (its round passed or
        it is older than ``max_age_s``, and its last computation started at
        least ``interval_s`` ago), the longest waiting first; drop the ones
        nobody viewed for ``keep_viewed_s``. Returns how many it computed."""
        due = self._due()
        done = 0
        for key, kept in due:
            if stopping is not None and stopping.is_set():
                break
            report = str(key[0]) if isinstance(key, tuple) else "?"
            basis, started = self.basis(kept.tenant), self._clock()
            try:
                result = kept.compute()
            except Exception:  # the kept result stays; tried again next interval
                log.exception("refreshing a kept %s report failed", report)
                REFRESHES.labels(report, "failed").inc()
                with self._lock:
                    kept.started = started
                continue
            REFRESHES.labels(report, "ok").inc()
            self._put(key, Kept(result, basis, started, kept.viewed, kept.compute, kept.tenant,
                                self._clock()))  # fmt: skip
            done += 1
        return done

    def _due(self) -> list[tuple[Hashable, Kept]]:
        now, today = self._clock(), datetime.now(UTC).date()
        with self._lock:  # dropped: not viewed lately, or of a day gone by
            for key in [k for k, e in self._entries.items()
                        if now - e.viewed > self._keep_viewed_s
                        or (isinstance(k, tuple) and k[-1] != today)]:  # fmt: skip
                del self._entries[key]
            entries = list(self._entries.items())
        if not entries:
            return []  # nothing viewed: not even the round count is read
        rounds = self._generation()
        due = [(k, e) for k, e in entries
               if now - e.started >= self._interval_s
               and (e.basis[0] != rounds or now - e.started > self._max_age_s)]  # fmt: skip
        return sorted(due, key=lambda ke: ke[1].started)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _usable(self, key: Hashable, tenant: str | None) -> Result | None:
        """The kept result, unless a deletion came after it, or (without a
        keeper refreshing it) its round passed or it is too old."""
        if self._max_age_s <= 0:
            return None
        with self._lock:
            got = self._entries.get(key)
        if got is None or got.basis[1] != summaries.deletions(tenant):
            return None
        if not self.refreshing and (
            got.basis[0] != self._generation() or self._clock() - got.done > self._max_age_s
        ):
            return None
        with self._lock:
            got.viewed = self._clock()
            if key in self._entries:
                self._entries.move_to_end(key)
        return got.result

    def _put(self, key: Hashable, kept: Kept) -> None:
        """Keep ``kept`` unless a result computed later on a newer basis is
        already there (a request's computation beside the keeper's)."""
        with self._lock:
            old = self._entries.get(key)
            if old is not None:
                kept.viewed = max(kept.viewed, old.viewed)
                if (old.basis[1], old.basis[0], old.started) > (
                    kept.basis[1],
                    kept.basis[0],
                    kept.started,
                ):
                    return
            self._entries[key] = kept
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
