"""opt-out: drop non-essential events of users who opted out.

``settings_tracking_opt_out`` (or any event with ``opt_out_status: true``)
opts a user out; ``settings_tracking_opt_in`` opts them back in. Essential
events (security, compliance: see the dictionary) are always kept. State
changes are emitted so ClickHouse holds the current opt-out state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from prometheus_client import Counter

from streams.pipeline import Item, Step

OPTED_OUT_DROPPED = Counter(
    "skillstream_stream_opted_out_dropped_total", "Non-essential events dropped after opt-out"
)


def optout_step(
    state: MutableMapping[str, bool], emit_change: Callable[[dict], Awaitable[None]]
) -> Step:
    async def run(item: Item) -> Item | None:
        rec = item.record
        learner = rec.get("learner_id")
        if learner:
            key = f"{rec['tenant_id']}|{learner}"
            before = bool(state.get(key))
            after = before
            if rec["event_name"] == "settings_tracking_opt_in":
                after = False
            elif rec["event_name"] == "settings_tracking_opt_out" or rec["opt_out_status"]:
                after = True
            # A change, or an explicit setting event (re-emitted after a crash
            # even when the restored state already holds it).
            explicit = rec["event_name"].startswith("settings_tracking_opt_") or bool(
                rec["opt_out_status"]
            )
            if after != before or explicit:
                state[key] = after
                await emit_change(
                    {"tenant_id": rec["tenant_id"], "user_id": learner, "opted_out": after,
                     "changed_at": rec["received_at"]},
                )  # fmt: skip
            opted_out = after
        else:
            opted_out = bool(rec["opt_out_status"])
        if opted_out and not rec["essential"]:
            OPTED_OUT_DROPPED.inc()
            return None
        return item

    return Step("opt_out", run)
