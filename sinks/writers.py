"""One writer per derived topic: which table, and how a record becomes a row."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]


def ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def clean_event_row(r: Row) -> Row:
    return {
        "tenant_id": r["tenant_id"],
        "event_id": r["client_event_id"],
        "event_name": r["event_name"],
        "event_timestamp": ts(r["event_timestamp"]),
        "received_at": ts(r["received_at"]),
        "user_id": r.get("user_id"),
        "anonymous_id": r["anonymous_id"],
        "learner_id": r.get("learner_id"),
        "persona": r["persona"],
        "program_id": r.get("program_id"),
        "cohort_id": r.get("cohort_id"),
        "plan_id": r.get("plan_id"),
        "assessment_id": r.get("assessment_id"),
        "readiness_score": r.get("readiness_score"),
        "context_page": r["context_page"],
        "context_device": r.get("context_device"),
        "pii_hash": r.get("pii_hash"),
        "essential": int(bool(r.get("essential"))),
        "properties": json.dumps(r.get("properties") or {}, separators=(",", ":")),
        "schema_version": r.get("schema_version", 1),
        "retention_days": r["retention_days"],
        "version": r.get("version", 1),
    }


LEARNER_DAILY_COLUMNS = (
    "tenant_id", "user_id", "day", "program_id", "cohort_id", "sign_ins", "live_sessions",
    "phase_advances", "submissions", "lessons_completed", "active_minutes", "completions",
    "events", "version",
)  # fmt: skip


def learner_daily_row(r: Row) -> Row:
    # the worker's learner-day record also carries its applied offsets and live score
    return {**{c: r[c] for c in LEARNER_DAILY_COLUMNS}, "updated_at": datetime.now(UTC)}


def live_score_row(r: Row) -> Row | None:
    """The live score a learner-day record carries (none before its first checkpoint)."""
    s = r.get("score")
    if not s:
        return None
    return {"tenant_id": r["tenant_id"], "user_id": r["user_id"], "day": r["day"],
            "program_id": r["program_id"], "cohort_id": r["cohort_id"], **s, "kind": "live",
            "computed_at": ts(s["computed_at"])}  # fmt: skip


def program_weekly_row(r: Row) -> Row:
    return {**r, "updated_at": datetime.now(UTC)}


def score_row(r: Row) -> Row:
    return {**r, "computed_at": ts(r["computed_at"])}


def link_row(r: Row) -> Row:
    return {**r, "linked_at": ts(r["linked_at"])}


def optout_row(r: Row) -> Row:
    return {
        "tenant_id": r["tenant_id"],
        "user_id": r["user_id"],
        "opted_out": int(bool(r["opted_out"])),
        "changed_at": ts(r["changed_at"]),
        "version": r["changed_at"],
    }


@dataclass(frozen=True)
class Writer:
    topic: str  # name without the prefix
    table: str
    to_row: Callable[[Row], Row | None]  # None: nothing for this table
    also: tuple[tuple[str, Callable[[Row], Row | None]], ...] = ()  # more tables, same record

    @property
    def targets(self) -> tuple[tuple[str, Callable[[Row], Row | None]], ...]:
        return ((self.table, self.to_row), *self.also)


WRITERS: tuple[Writer, ...] = (
    Writer("events.clean", "events", clean_event_row),
    Writer(
        "aggregates.learner_daily",
        "learner_daily",
        learner_daily_row,
        also=(("learner_scores", live_score_row),),
    ),  # fmt: skip
    Writer("aggregates.program_weekly", "program_weekly", program_weekly_row),
    Writer("scores.learner", "learner_scores", score_row),
    Writer("identity.links", "identity_links", link_row),
    Writer("optout.state", "optout_state", optout_row),
)
