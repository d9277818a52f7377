"""The statements resource: what ``POST``/``PUT``/``GET /xapi/statements``
do once the request is admitted (credential, version header, size, rate).

A request's statements are accepted all or none, as the specification
asks: each is checked (api/xapi/validation.py), mapped onto one event
(api/xapi/mapping.py), and the events go through the batch endpoint's own
path (``check_events`` → ``send_batches``: the dictionary's validation,
PII hashing, Kafka records, acknowledged only when Kafka has them). Then
each statement's row is journaled and stored behind the answer
(api/xapi/store.py).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi.concurrency import run_in_threadpool

from api.context import AppContext
from api.ingest.accept import check_events, send_batches
from api.ingest.producer import ProducerUnavailable
from api.tenants import Tenant
from api.xapi.mapping import VOIDED_VERB, Mapped, content_hash, pseudonymised_statement, to_event
from api.xapi.validation import Problem, check_request

LRS_HOME = "urn:skillstream:tenant"


@dataclass
class XapiError(Exception):
    status: int
    message: str
    problems: list[Problem] | None = None
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.problems:
            out["errors"] = [p.as_dict() for p in self.problems]
        return out


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC)


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits (in extensions)
        return json.dumps(value, separators=(",", ":"))


def _refused(problems: list[Problem]) -> XapiError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return XapiError(400, f"{first}{more}", problems)


def _authority(tenant: Tenant) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": LRS_HOME, "name": tenant.name}}


def _row(tenant: Tenant, st: dict, m: Mapped, digest: str, ts: datetime,
         stored: datetime) -> dict[str, Any]:  # fmt: skip
    s = m.said
    kept = pseudonymised_statement(st, tenant.pii_salt)
    kept.update(stored=stored.isoformat().replace("+00:00", "Z"), authority=_authority(tenant))
    kept.setdefault("timestamp", kept["stored"])
    kept.setdefault("version", "1.0.0")
    return {
        "tenant_id": tenant.tenant_id,
        "statement_id": st["id"],
        "content_hash": digest,
        "event_name": m.event["event_name"],
        "verb_id": s.verb_id,
        "object_id": s.object_id,
        "activity_type": s.activity_type or "",
        "voided_id": s.object_id.lower() if s.verb_id == VOIDED_VERB else "",
        "learner_id": m.learner.user_id,
        "anonymous_id": m.learner.anonymous_id,
        "score_scaled": s.score_scaled,
        "success": None if s.success is None else int(s.success),
        "completion": None if s.completion is None else int(s.completion),
        "duration_ms": s.duration_ms,
        "timestamp": ts,
        "stored": stored,
        "statement": _compact(kept),
    }


async def accept(ctx: AppContext, tenant: Tenant, statements: list) -> list[str]:
    """The ids of the statements, in order, once all are accepted; else XapiError."""
    problems = check_request(statements)
    if problems:
        raise _refused(problems)
    for st in statements:
        st["id"] = str(uuid.UUID(st["id"])) if "id" in st else str(uuid.uuid4())
    ids = [st["id"] for st in statements]
    digests = [content_hash(st) for st in statements]
    known = await run_in_threadpool(ctx.xapi_log.hashes, tenant.tenant_id, ids)
    for i, (sid, digest) in enumerate(zip(ids, digests, strict=True)):
        if sid in known and known[sid] != digest:
            raise XapiError(409, f"statement {i} (id {sid}): this id was accepted before "
                                 "with other content; a statement is immutable")  # fmt: skip
    fresh = [i for i, sid in enumerate(ids) if sid not in known]
    if not fresh:
        return ids
    received_at = datetime.now(UTC)
    mapping = await run_in_threadpool(ctx.xapi_mappings.for_tenant, tenant.tenant_id)
    mapped, stamps = [], []
    for i in fresh:
        st = statements[i]
        ts = parse_timestamp(st.get("timestamp")) or received_at
        stamps.append(ts)
        mapped.append(to_event(st, mapping, salt=tenant.pii_salt, timestamp=ts))
    checked = check_events(ctx, tenant, [m.event for m in mapped], received_at)
    if checked.rejected:
        raise _refused(_event_problems(fresh, ids, mapped, checked.rejected))
    if checked.accepted:
        try:
            sent = await send_batches(ctx, tenant, checked, received_at)
        except ProducerUnavailable as exc:
            raise XapiError(503, f"Kafka unavailable: {exc}", retry_after=5) from exc
        ctx.recent.add_many(tenant.tenant_id, sent.acked)
        if sent.first_error is not None:
            raise XapiError(503, f"Kafka did not acknowledge every statement: "
                                 f"{sent.first_error}", retry_after=5)  # fmt: skip
    rows = [_row(tenant, statements[i], m, digests[i], ts, received_at)
            for i, m, ts in zip(fresh, mapped, stamps, strict=True)]  # fmt: skip
    try:  # journaled now, stored behind the answer (api/xapi/store.py)
        await run_in_threadpool(ctx.xapi_log.record, rows)
    except Exception as exc:  # in Kafka, not logged: a retry logs it (and counts once)
        raise XapiError(503, f"statements not stored: {exc}", retry_after=5) from exc
    return ids


def _event_problems(fresh: list[int], ids: list[str], mapped: list[Mapped],
                    rejected: list[dict]) -> list[Problem]:  # fmt: skip
    """The dictionary's rules an event broke, told of its statement."""
    out = []
    for r in sorted(rejected, key=lambda r: r["index"]):
        i, name = fresh[r["index"]], mapped[r["index"]].event["event_name"]
        out += [Problem(i, ids[i], f"(as {name}) {e['field']}", e["reason"]) for e in r["errors"]]
    return out


async def fetch(ctx: AppContext, tenant: Tenant, sid: str, *, voided: bool) -> dict | None:
    """A stored statement: ``statementId`` never answers a voided one,
    ``voidedStatementId`` only a voided one."""
    try:
        sid = str(uuid.UUID(sid))
    except ValueError as exc:
        raise XapiError(400, f"{sid!r} is not a statement id (a UUID)") from exc
    st = await run_in_threadpool(ctx.xapi_log.get, tenant.tenant_id, sid)
    if st is None:
        return None
    is_voided = await run_in_threadpool(ctx.xapi_log.is_voided, tenant.tenant_id, sid)
    return st if is_voided == voided else None
