"""One learner's newest clean events, for a per-learner screen; survey free
text is redacted unless the scope may read it."""

from __future__ import annotations

import json
from typing import Any

from api.reports.common import describe
from api.reports.scope import Scope
from schemas.dictionary import BY_NAME
from sinks.store import Store

REDACTED = "[redacted]"
EVENTS = """
    SELECT event_id, event_name, toString(event_timestamp) AS event_timestamp,
           program_id, cohort_id, properties
    FROM events FINAL
    WHERE learner_id = {{uid:String}} AND {where}
    ORDER BY event_timestamp DESC LIMIT {{limit:UInt32}}
"""


def learner_events(store: Store, scope: Scope, user_id: str, *, limit: int = 100) -> dict:
    """The learner's newest ``limit`` events, properties parsed."""
    f = scope.filter("events", learner_col="learner_id")
    rows = store.query(EVENTS.format(where=f.sql), {"uid": user_id, "limit": limit, **f.params})
    for r in rows:
        r["properties"] = _redacted(scope, r["event_name"], json.loads(r["properties"] or "{}"))
    return {"scope": describe(scope), "user_id": user_id, "items": rows}


def _redacted(scope: Scope, event_name: str, props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with the event's free text fields redacted, unless the scope
    may read them."""
    spec = BY_NAME.get(event_name)
    if spec and not scope.free_text:
        for field in spec.free_text_fields:
            if props.get(field):
                props[field] = REDACTED
    return props
