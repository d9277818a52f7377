"""What every stream peer writes and how its result is compared.

Light on imports: each peer runs in its own process, the Pathway peer in
a virtualenv of its own without Quix Streams or Faust.
"""

from __future__ import annotations

COUNTERS = (
    "sign_ins",
    "live_sessions",
    "phase_advances",
    "submissions",
    "lessons_completed",
    "active_minutes",
    "completions",
    "events",
)

# Compared between our pipeline and each peer: neither wins by counting less.
TOTALS_SQL = (
    "SELECT count() AS rows, sum(events) AS events, sum(sign_ins) AS sign_ins,"
    " sum(lessons_completed) AS lessons, sum(submissions) AS submissions"
    " FROM learner_daily FINAL"
)

EVENTS_SQL = "SELECT sum(events) AS n FROM learner_daily FINAL"
