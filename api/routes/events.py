"""`POST /v1/events/batch`: the ingest front door; `POST /v1/events` for one
event (a batch of one); and `GET /v1/events/dictionary` for SDKs.

Each event is validated on its own; valid ones are produced to Kafka and
reported `accepted` only once Kafka acknowledged them. The tenant is the
write key's tenant, never anything in the body. Browsers: a request with an
``Origin`` must come from an origin the key's tenant allowed; a page-exit
beacon (``navigator.sendBeacon``, which cannot set headers) sends
``text/plain`` with the write key in the body as ``write_key``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Ctx
from api.ingest.accept import check_events, send_batches
from api.ingest.pii import client_salt
from api.ingest.producer import ProducerUnavailable
from api.tenants import Tenant
from schemas import dictionary
from schemas.codec import latest

router = APIRouter(prefix="/v1/events", tags=["ingest"])

INGESTED = Counter(
    "skillstream_ingest_events_total", "Events by outcome at the front door", ["outcome"]
)
BATCH_SECONDS = Histogram("skillstream_ingest_batch_seconds", "Batch request latency")
REJECTIONS = Counter(
    "skillstream_ingest_rejections_total", "Rejected events' errors by field", ["field"]
)
REFUSED = Counter("skillstream_ingest_refused_total", "Whole batches refused", ["status"])


# --- documentation models (the body is parsed by hand: 400/413 beat 422) -----
class EventIn(BaseModel):
    """One event. Unknown fields are rejected; server-set fields must be absent."""

    model_config = ConfigDict(extra="forbid")

    event_name: str = Field(description="A name from the event dictionary (schemas/dictionary.py).")
    client_event_id: str = Field(
        description="Idempotency key, 1-128 of A-Z a-z 0-9 _ . : -; retries reuse it."
    )
    event_timestamp: str = Field(description="ISO 8601 with offset, e.g. 2026-05-21T15:42:18Z.")
    anonymous_id: str = Field(description="Client UUID prior to login.")
    user_id: str | None = Field(None, description="Authenticated user, when known.")
    persona: str = Field(description="student, career_changer or advisor (per event).")
    context_page: str = Field(description="Route that emitted the event.")
    context_device: str | None = None
    opt_out_status: bool = Field(description="Mirrors the user's tracking_opt_out.")
    pii_hash: str | None = Field(None, description="64 lowercase hex characters.")
    email: str | None = Field(None, description="Raw e-mail: hashed by the server, never stored.")
    email_sha256: str | None = Field(
        None,
        description="E-mail hashed by the client: hex SHA-256 of the dictionary's "
        "email_hash_salt followed by the trimmed, lower-cased address (what the SDKs send).",
    )
    phone: str | None = Field(None, description="Raw phone: hashed by the server, never stored.")
    plan_id: str | None = Field(None, description="Required on plan events.")
    assessment_id: str | None = Field(None, description="Required on assessment events.")
    readiness_score: float | None = Field(None, description="0-100; required where listed.")
    program_id: str | None = Field(None, description="Required on program engagement events.")
    cohort_id: str | None = None
    properties: dict[str, Any] = Field(
        default_factory=dict, description="Typed per event: see the Avro schema."
    )


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path of the offending field ('' = the event).")
    reason: str


class Rejected(BaseModel):
    index: int = Field(description="Position of the event in the batch.")
    client_event_id: str | None
    errors: list[FieldErrorOut]


class BatchResult(BaseModel):
    accepted: list[str] = Field(description="Acknowledged by Kafka (acks=all).")
    duplicates: list[str] = Field(description="Repeated in this batch or accepted recently.")
    rejected: list[Rejected]


def _error(code: int, detail: str, retry_after: float | None = None) -> JSONResponse:
    REFUSED.labels(str(code)).inc()
    headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))} if retry_after else None
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


MISSING_KEY = (
    "missing write key: Authorization: Bearer <write key>"
    ' (text/plain beacons: "write_key" in the body)'
)


async def _tenant_for_key(ctx: Ctx, key: object) -> Tenant:
    if not isinstance(key, str) or not key.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"}
        )
    tenant = await run_in_threadpool(ctx.tenants.by_write_key, key.strip())
    if tenant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid write key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


async def _tenant_from_write_key(request: Request, ctx: Ctx) -> Tenant:
    auth = request.headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    return await _tenant_for_key(ctx, key if scheme.lower() == "bearer" else None)


def _is_beacon(request: Request) -> bool:
    """sendBeacon's string body: text/plain, and no way to add an Authorization header."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype == "text/plain" and "authorization" not in request.headers


async def _check_origin(request: Request, ctx: Ctx, tenant: Tenant) -> None:
    """A browser's request must come from an origin the key's own tenant allowed."""
    origin = request.headers.get("origin")
    if not origin or origin == f"{request.url.scheme}://{request.headers.get('host', '')}":
        return
    allowed = await run_in_threadpool(ctx.origins.for_tenant, tenant.tenant_id)
    if origin not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"origin {origin} is not allowed for this write key's tenant"
            f" (skillstream tenant origins {tenant.name} --add {origin})",
        )


async def browser_tenant(request: Request, ctx: Ctx) -> Tenant:
    """Write key from the Authorization header, checked against the request's Origin."""
    tenant = await _tenant_from_write_key(request, ctx)
    await _check_origin(request, ctx, tenant)
    return tenant


WriteKeyTenant = Annotated[Tenant, Depends(browser_tenant)]


async def _read_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _batch_schema() -> dict:
    return {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {"type": "array", "items": EventIn.model_json_schema()}
                    },
                }
            }
        },
        "required": True,
    }


ERRORS = {
    400: {"description": "Malformed JSON, or no `events` array."},
    401: {"description": "Missing or invalid write key."},
    403: {"description": "Browser request from an origin the tenant did not allow."},
    413: {"description": "Body larger than INGEST_MAX_BODY_BYTES or more than "
          "INGEST_MAX_BATCH_EVENTS events."},
    429: {"description": "Tenant over its event rate; see Retry-After."},
    503: {"description": "Kafka unavailable or producer queue full; retry the whole batch "
          "after Retry-After (safe: accepted ids come back as duplicates)."},
}  # fmt: skip


async def _admitted_body(request: Request, ctx: Ctx) -> tuple[Tenant, Any] | JSONResponse:
    """The write key's tenant and the parsed body, or the answer refusing them."""
    beacon = _is_beacon(request)
    # A beacon's key is in its body: the body is read first for that one content type.
    tenant = None if beacon else await browser_tenant(request, ctx)
    s = ctx.settings
    body = await _read_body(request, s.ingest_max_body_bytes)
    if body is None:
        return _error(413, f"body larger than {s.ingest_max_body_bytes} bytes")
    try:
        payload = _parse(body)
    except ValueError as exc:
        return _error(400, f"malformed JSON: {exc}")
    if beacon:
        key = payload.pop("write_key", None) if isinstance(payload, dict) else None
        tenant = await _tenant_for_key(ctx, key)
        await _check_origin(request, ctx, tenant)
    assert tenant is not None
    return tenant, payload


@router.post(
    "/batch",
    response_model=BatchResult,
    responses=ERRORS,
    openapi_extra={"requestBody": _batch_schema()},
    summary="Ingest a batch of events",
)
async def ingest_batch(request: Request, ctx: Ctx) -> Any:
    with BATCH_SECONDS.time():
        admitted = await _admitted_body(request, ctx)
        if isinstance(admitted, JSONResponse):
            return admitted
        tenant, payload = admitted
        if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
            return _error(400, 'body must be a JSON object {"events": [...]}')
        events = payload["events"]
        if len(events) > ctx.settings.ingest_max_batch_events:
            return _error(
                413, f"more than {ctx.settings.ingest_max_batch_events} events in one batch"
            )
        wait = ctx.rate_limiter.take(tenant.tenant_id, len(events))
        if wait:
            return _error(429, "tenant event rate exceeded", retry_after=wait)
        return await _ingest(ctx, tenant, events)


@router.post(
    "",
    response_model=BatchResult,
    responses={**ERRORS, 400: {"description": "Malformed JSON, or the body is no JSON object."}},
    openapi_extra={"requestBody": {"content": {"application/json": {
        "schema": EventIn.model_json_schema()}}, "required": True}},
    summary="Ingest one event (the tracking plan's single-event endpoint)",
)  # fmt: skip
async def ingest_one(request: Request, ctx: Ctx) -> Any:
    """One event, validated, answered and acknowledged exactly as a batch of
    one: the same fields, the same answer (``accepted``, ``duplicates``,
    ``rejected``), accepted only once Kafka has it."""
    with BATCH_SECONDS.time():
        admitted = await _admitted_body(request, ctx)
        if isinstance(admitted, JSONResponse):
            return admitted
        tenant, payload = admitted
        if not isinstance(payload, dict) or "events" in payload:
            return _error(
                400, "body must be one event, a JSON object (a batch: POST /v1/events/batch)"
            )
        wait = ctx.rate_limiter.take(tenant.tenant_id, 1)
        if wait:
            return _error(429, "tenant event rate exceeded", retry_after=wait)
        return await _ingest(ctx, tenant, [payload])


def _parse(body: bytes) -> Any:
    """orjson first (the hot path); what it refuses and the standard library
    reads (a byte-order mark, an escaped lone surrogate) is parsed as before,
    so one bad string rejects its event at encoding, not the whole batch."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


async def _ingest(ctx: Ctx, tenant: Tenant, events: list) -> Any:
    received_at = datetime.now(UTC)
    checked = check_events(ctx, tenant, events, received_at)
    acked: list[str] = []
    if checked.accepted:
        try:
            outcome = await send_batches(ctx, tenant, checked, received_at)
        except ProducerUnavailable as exc:
            return _error(503, f"Kafka unavailable: {exc}", retry_after=5)
        acked = outcome.acked
        ctx.recent.add_many(tenant.tenant_id, acked)
        if outcome.first_error is not None:
            INGESTED.labels("accepted").inc(len(acked))
            return _error(503, f"Kafka did not acknowledge every event: {outcome.first_error}", 5)
    rejected = sorted(checked.rejected, key=lambda r: r["index"])
    INGESTED.labels("accepted").inc(len(acked))
    INGESTED.labels("duplicate").inc(len(checked.duplicates))
    INGESTED.labels("rejected").inc(len(rejected))
    for rejection in rejected:
        for error in rejection["errors"]:
            # the field's top level only: a bounded label set
            REJECTIONS.labels(error["field"].split(".")[0] or "event").inc()
    return {"accepted": acked, "duplicates": checked.duplicates, "rejected": rejected}


class DictionaryEvent(BaseModel):
    name: str
    description: str
    personas: list[str]
    essential: bool = Field(description="Still sent after the user opted out.")
    category: str
    requires: list[str] = Field(description="Conditional envelope fields it must carry.")


class Dictionary(BaseModel):
    schema_version: int = Field(description="Newest envelope version the API accepts.")
    events: list[DictionaryEvent]
    essential: list[str] = Field(description="Events an opted-out user's SDK still sends.")
    email_hash_salt: str = Field(
        description="Per-tenant salt of the client-side e-mail hash: "
        "email_sha256 = hex SHA-256(email_hash_salt + trimmed lower-cased e-mail)."
    )
    max_batch_events: int
    max_body_bytes: int


@router.get(
    "/dictionary",
    response_model=Dictionary,
    responses={401: ERRORS[401], 403: ERRORS[403]},
    summary="The event dictionary, read-only, for SDKs",
)
async def event_dictionary(tenant: WriteKeyTenant, ctx: Ctx) -> Any:
    events = [
        DictionaryEvent(
            name=e.name,
            description=e.description,
            personas=list(e.personas),
            essential=e.essential,
            category=e.category,
            requires=list(e.requires),
        )
        for e in dictionary.EVENTS
    ]
    body = Dictionary(
        schema_version=latest().version,
        events=events,
        essential=[e.name for e in dictionary.EVENTS if e.essential],
        email_hash_salt=client_salt(tenant.pii_salt),
        max_batch_events=ctx.settings.ingest_max_batch_events,
        max_body_bytes=ctx.settings.ingest_max_body_bytes,
    )
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "private, max-age=300"})
