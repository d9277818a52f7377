"""How far the demo's history is queryable, for the dashboard's loading
state ("loading demo history: N of M days").

The demo generator (ops/demo.py) records in the run directory which span of
history it sends this run and when it finished sending. What counts here is
what the reports can see: a day is loaded once every demo tenant has events
from a later time in ClickHouse (history goes oldest first), and the whole
span once every demo tenant's data is fresh as of the moment the demo
finished sending.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sinks.store import Store

DAY = timedelta(days=1)
# Written by the demo generator (ops/demo.py), read here.
HISTORY_FILE = "demo-history.json"
FreshFn = Callable[[str], datetime | None]


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / HISTORY_FILE).read_text())
    except (OSError, ValueError):
        return None


def progress(
    store: Store, run_dir: Path, tenant_ids: dict[str, str], fresh: FreshFn
) -> dict[str, Any]:
    """``loading``, ``loaded`` and ``days`` (None when nothing is loading),
    the demo's tenant names and, once this run's history is queryable, when
    the demo finished sending it (``finished_at``: a report whose data is
    older than that does not show it all yet). ``tenant_ids``: name → id of every tenant."""
    state = read_state(run_dir)
    if state is None:  # the demo has not started yet
        return {"loading": True, "loaded": 0, "days": None, "tenants": []}
    names = state.get("tenants", [])
    out = {"loading": False, "loaded": None, "days": None, "tenants": names}
    if not state.get("loading_from"):
        return out
    start, until = (datetime.fromisoformat(state[k]) for k in ("loading_from", "loading_until"))
    days = max(1, math.ceil((until - start) / DAY))
    ids = [tenant_ids[n] for n in names if n in tenant_ids]
    finished = state.get("finished_at")
    if finished and len(ids) == len(names) and _fresh_since(ids, fresh, finished):
        return {**out, "loaded": days, "days": days, "finished_at": finished}
    newest = _newest(store, ids, start, until)
    loaded = min(((newest.get(i, start) - start) // DAY for i in ids), default=0)
    return {**out, "loading": True, "loaded": min(days - 1, loaded), "days": days}


def _fresh_since(ids: list[str], fresh: FreshFn, finished: str) -> bool:
    at = datetime.fromisoformat(finished)
    return all((f := fresh(i)) is not None and f >= at for i in ids)


def _newest(store: Store, ids: list[str], start: datetime, until: datetime) -> dict[str, datetime]:
    """Each tenant's newest queryable event time in [start, until)."""
    rows = store.query(
        "SELECT tenant_id, toUnixTimestamp64Milli(max(event_timestamp)) AS ms FROM events"
        " WHERE tenant_id IN {ids:Array(String)}"
        " AND event_timestamp >= {a:DateTime64(3)} AND event_timestamp < {b:DateTime64(3)}"
        " GROUP BY tenant_id",
        {"ids": ids, "a": _ms(start), "b": _ms(until)},
    )
    return {r["tenant_id"]: datetime.fromtimestamp(int(r["ms"]) / 1000, UTC) for r in rows}


def _ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
