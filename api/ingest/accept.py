"""What the front door does with a request's events once the request is
admitted (key, size, rate): each event validated on its own, duplicates
within the request and recently acknowledged ones answered as such, the
rest encoded as batch records (api/ingest/batches.py) and produced; an
event is acknowledged only when Kafka acknowledged its record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.context import AppContext
from api.ingest.batches import Group, encode_groups
from api.ingest.producer import OutMessage
from api.ingest.validate import validate_event
from api.tenants import Tenant
from core.keys import learner_key_bytes


@dataclass
class Checked:
    accepted: list[tuple[int, dict]] = field(default_factory=list)  # (index, record)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Sent:
    acked: list[str]
    first_error: str | None


def check_events(ctx: AppContext, tenant: Tenant, events: list, received_at: datetime) -> Checked:
    out, seen = Checked(), set()
    for i, raw in enumerate(events):
        record, errors = validate_event(
            raw,
            tenant_id=tenant.tenant_id,
            pii_salt=tenant.pii_salt,
            received_at=received_at,
            bounds=ctx.bounds,
        )
        if errors:
            out.rejected.append({"index": i, "client_event_id": _cid(raw), "errors": errors})
            continue
        cid = record["client_event_id"]
        if cid in seen or ctx.recent.contains(tenant.tenant_id, cid):
            out.duplicates.append(cid)
            continue
        seen.add(cid)
        out.accepted.append((i, record))
    return out


async def send_batches(
    ctx: AppContext, tenant: Tenant, checked: Checked, received_at: datetime
) -> Sent:
    partitions = await ctx.producer.partitions(ctx.raw_topic)
    groups = _groups(ctx, checked, tenant, partitions)
    records = [r for _, r in checked.accepted]
    ts = int(received_at.timestamp() * 1000)
    headers = [("tenant_id", tenant.tenant_id.encode())]
    messages = [OutMessage(ctx.raw_topic, None, g.value, headers, ts, g.partition) for g in groups]
    results = await ctx.producer.send_all(messages)
    acked = [records[i]["client_event_id"]
             for g, err in zip(groups, results, strict=True) if err is None
             for i in g.indexes]  # fmt: skip
    first = next((err.str() for err in results if err is not None), None)
    return Sent(acked, first)


def _groups(ctx: AppContext, checked: Checked, tenant: Tenant, partitions: int) -> list[Group]:
    """The records of the accepted events; an event the validator passed but
    the codec refuses is rejected alone (its neighbours still go)."""
    try:
        return _encode(ctx, checked, tenant, partitions)
    except Exception:
        pass
    keep = []
    for i, record in checked.accepted:
        try:
            ctx.codec.encode(record)
            keep.append((i, record))
        except Exception as exc:  # a validator gap must not become a 500
            checked.rejected.append(
                {"index": i, "client_event_id": record["client_event_id"],
                 "errors": [{"field": "", "reason": str(exc)}]}
            )  # fmt: skip
    checked.accepted = keep
    return _encode(ctx, checked, tenant, partitions) if keep else []


def _encode(ctx: AppContext, checked: Checked, tenant: Tenant, partitions: int) -> list[Group]:
    records = [r for _, r in checked.accepted]
    keys = [learner_key_bytes(tenant.tenant_id, r["user_id"] or r["anonymous_id"]) for r in records]
    return encode_groups(records, keys, partitions, ctx.codec.encode_batch)


def _cid(raw: Any) -> str | None:
    cid = raw.get("client_event_id") if isinstance(raw, dict) else None
    return cid if isinstance(cid, str) else None
