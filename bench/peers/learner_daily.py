"""What every stream peer writes and how its result is compared.

Light on imports: each peer runs in its own process, the Pathway peer in
a virtualenv of its own without Quix Streams or Faust.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from streams.aggregates import COUNTERS  # the worker's own columns (no Faust behind it)

__all__ = ["COUNTERS", "EVENTS_SQL", "TOTALS_SQL", "peer_arguments", "wait_until_counted"]

# Compared between our pipeline and each peer: neither wins by counting less.
TOTALS_SQL = (
    "SELECT count() AS rows, sum(events) AS events, sum(sign_ins) AS sign_ins,"
    " sum(lessons_completed) AS lessons, sum(submissions) AS submissions"
    " FROM learner_daily FINAL"
)

EVENTS_SQL = "SELECT sum(events) AS n FROM learner_daily FINAL"


def peer_arguments(description: str, partitions_help: str, argv: list[str] | None) -> Any:
    """The command line the stream benchmark gives every peer (bench/stream.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--chdb", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--expect", type=int, required=True, help="sum(events) when complete")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--partitions", type=int, default=6, help=partitions_help)
    return ap.parse_args(argv)


def wait_until_counted(store: Any, expect: int, timeout_s: float) -> bool:
    """Whether ``learner_daily`` holds ``expect`` events within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if int(store.query(EVENTS_SQL)[0]["n"] or 0) >= expect:
            return True
    return False
