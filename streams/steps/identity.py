"""identity: attribute events to a learner (user_id), linking anonymous ids.

* An event with both ids links them: a link record goes to the
  ``identity.links`` topic, keyed by tenant:anonymous_id, so it lands on
  the partition that holds that visitor's anonymous events.
* An anonymous-only event whose visitor is linked is forwarded to
  ``events.attributed`` keyed by tenant:user_id (the user's partition), where
  it is counted for the user.
* An anonymous-only event of an unknown visitor is kept as is (no learner,
  no aggregates) and remembered in ``pending``; when the link arrives, the
  pending events (up to PENDING_MAX_EVENTS, PENDING_MAX_DAYS old) are
  forwarded to the user's partition and counted then. The forwarded list
  stays, marked with the link record's offset, so that record delivered
  again after a crash forwards it again (the receiver dedupes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping

from core.keys import learner_key
from streams.pipeline import Item, Step
from streams.records import DAY_MS

PENDING_MAX_EVENTS = 500
PENDING_MAX_DAYS = 30

Send = Callable[[str, dict], Awaitable[None]]


def identity_step(
    links: MutableMapping[str, str],
    links_sent: MutableMapping[str, str],
    pending: MutableMapping[str, list],
    send_link: Send,
    forward: Send,
) -> Step:
    async def run(item: Item) -> Item | None:
        rec = item.record
        tenant, anon, user = rec["tenant_id"], rec["anonymous_id"], rec.get("user_id")
        anon_key = f"{tenant}|{anon}"
        if user:
            rec["learner_id"] = user
            sent = links_sent.get(anon_key)  # [user, offset of the event that sent it]
            if anon and (sent is None or sent[0] != user or sent[1] == item.position):
                await send_link(
                    learner_key(tenant, anon),
                    {"tenant_id": tenant, "anonymous_id": anon, "user_id": user,
                     "linked_at": rec["received_at"]},
                )  # fmt: skip
                links_sent[anon_key] = [user, item.position]
            return item
        linked = links.get(anon_key)
        if linked:
            rec["learner_id"] = linked
            await forward(learner_key(tenant, linked), rec)
            return None  # counted on the user's partition
        rec["learner_id"] = None
        entry = identity_pending_entry(pending.get(anon_key))
        kept = [
            e
            for e in entry["events"]
            if e["event_timestamp"] > rec["event_timestamp"] - PENDING_MAX_DAYS * DAY_MS
            and e["client_event_id"] != rec["client_event_id"]  # itself, delivered again
        ]
        pending[anon_key] = {"events": (kept + [rec])[-PENDING_MAX_EVENTS:], "forwarded_by": None}
        return item

    return Step("identity", run)


def identity_pending_entry(value: dict | list | None) -> dict:
    """A visitor's pending anonymous events, and the offset of the link
    record that forwarded them (None: not forwarded yet)."""
    if isinstance(value, dict):
        return value
    return {"events": list(value or []), "forwarded_by": None}
