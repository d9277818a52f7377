"""`/xapi/`: the statements resource of an xAPI (1.0.3, 2.0) Learning Record
Store, for learning tools that send statements instead of our events
(docs/ingestion.md, "xAPI"). Thin: the work is in api/xapi/.

Credential: HTTP Basic with the tenant's write key (as the user name or the
password: xAPI clients are configured with a key/secret pair), or
``Authorization: Bearer <write key>``. Every answer carries
``X-Experience-API-Version``; every request but ``/xapi/about`` must send it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.deps import Ctx
from api.routes.events import _check_origin, _parse, _read_body
from api.tenants import Tenant
from api.xapi.resource import XapiError, accept, fetch
from api.xapi.validation import VERSION

router = APIRouter(prefix="/xapi", tags=["xapi"])

SUPPORTED = ["1.0.3", "2.0.0"]
VERSION_HEADER = "X-Experience-API-Version"
REALM = 'Basic realm="SkillStream xAPI"'


def _answered(version: str | None) -> str:
    return "2.0.0" if version and version.startswith("2.") else "1.0.3"


def _json(body: Any, status: int = 200, version: str | None = None, **headers: str) -> Response:
    return JSONResponse(body, status_code=status, headers={VERSION_HEADER: _answered(version),
                                                           **headers})  # fmt: skip


def _error(exc: XapiError, version: str | None) -> Response:
    headers = {"Retry-After": str(max(1, int(exc.retry_after + 0.999)))} if exc.retry_after else {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = REALM
    return _json(exc.body(), exc.status, version, **headers)


def _write_key(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    # the key in either half; a key/secret pair may carry it in both
    return next((p for p in (password, user) if p.startswith("ssk_")), password or user) or None


class Admitted:
    def __init__(self, tenant: Tenant, version: str) -> None:
        self.tenant, self.version = tenant, version


async def _admit(request: Request, ctx: Ctx) -> Admitted:
    version = request.headers.get(VERSION_HEADER)
    if not version or not VERSION.match(version.strip()):
        raise XapiError(400, f"{VERSION_HEADER} header required: one of "
                             f"{', '.join(SUPPORTED)} (1.0.x and 2.0.x are accepted)")  # fmt: skip
    key = _write_key(request)
    if key is None:
        raise XapiError(401, "HTTP Basic credentials required: the tenant's write key")
    tenant = await run_in_threadpool(ctx.tenants.by_write_key, key)
    if tenant is None:
        raise XapiError(401, "invalid write key")
    await _check_origin(request, ctx, tenant)
    return Admitted(tenant, version.strip())


async def _statements_body(request: Request, ctx: Ctx) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/mixed":
        raise XapiError(415, "attachments (multipart/mixed) are not supported: send "
                             "application/json; an attachment may give a fileUrl")  # fmt: skip
    s = ctx.settings
    body = await _read_body(request, s.ingest_max_body_bytes)
    if body is None:
        raise XapiError(413, f"body larger than {s.ingest_max_body_bytes} bytes")
    try:
        return _parse(body)
    except ValueError as exc:
        raise XapiError(400, f"malformed JSON: {exc}") from exc


def _limit(ctx: Ctx, tenant: Tenant, n: int) -> None:
    if n > ctx.settings.ingest_max_batch_events:
        raise XapiError(413, f"more than {ctx.settings.ingest_max_batch_events} statements")
    wait = ctx.rate_limiter.take(tenant.tenant_id, n)
    if wait:
        raise XapiError(429, "tenant event rate exceeded", retry_after=wait)


ERRORS = {
    400: {"description": "No or unknown X-Experience-API-Version; malformed JSON; a statement "
          "breaking an xAPI rule (the answer names the statement, the path and the rule)."},
    401: {"description": "Missing or invalid write key (HTTP Basic)."},
    403: {"description": "Browser request from an origin the tenant did not allow."},
    409: {"description": "A statement id accepted before with other content."},
    413: {"description": "Body over INGEST_MAX_BODY_BYTES, or more statements than "
          "INGEST_MAX_BATCH_EVENTS."},
    415: {"description": "multipart/mixed (attachment content): not supported."},
    429: {"description": "Tenant over its event rate; see Retry-After."},
    503: {"description": "Kafka unavailable: retry after Retry-After (safe)."},
}  # fmt: skip
STATEMENT = {"type": "object", "description": "An xAPI statement (xAPI 1.0.3 / 2.0)."}
VERSION_PARAM = {"name": VERSION_HEADER, "in": "header", "required": True,
                 "schema": {"type": "string", "enum": SUPPORTED},
                 "description": "The xAPI version the client speaks (1.0.x or 2.0.x)."}  # fmt: skip


@router.post(
    "/statements",
    responses={200: {"description": "The statements' ids, in order.",
                     "content": {"application/json": {"schema": {
                         "type": "array", "items": {"type": "string"}}}}}, **ERRORS},
    openapi_extra={"parameters": [VERSION_PARAM], "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [STATEMENT, {"type": "array",
                                                              "items": STATEMENT}]}}}}},
    summary="Store one statement or an array of them (all or none)",
)  # fmt: skip
async def post_statements(request: Request, ctx: Ctx) -> Response:
    version = request.headers.get(VERSION_HEADER)
    try:
        admitted = await _admit(request, ctx)
        payload = await _statements_body(request, ctx)
        statements = payload if isinstance(payload, list) else [payload]
        if not statements:
            raise XapiError(400, "no statement: send a statement or a non-empty array")
        _limit(ctx, admitted.tenant, len(statements))
        ids = await accept(ctx, admitted.tenant, statements)
    except XapiError as exc:
        return _error(exc, version)
    return _json(ids, 200, version)


StatementId = Annotated[str | None, Query(alias="statementId", max_length=64)]
VoidedId = Annotated[str | None, Query(alias="voidedStatementId", max_length=64)]


@router.put(
    "/statements",
    status_code=204,
    responses={204: {"description": "Stored."}, **ERRORS},
    openapi_extra={"parameters": [VERSION_PARAM], "requestBody": {"required": True,
                   "content": {"application/json": {"schema": STATEMENT}}}},
    summary="Store one statement under the statementId given",
)  # fmt: skip
async def put_statement(request: Request, ctx: Ctx, statement_id: StatementId = None) -> Response:
    version = request.headers.get(VERSION_HEADER)
    try:
        admitted = await _admit(request, ctx)
        if not statement_id:
            raise XapiError(400, "statementId parameter required")
        payload = await _statements_body(request, ctx)
        if not isinstance(payload, dict):
            raise XapiError(400, "PUT takes one statement (a JSON object)")
        if "id" in payload and str(payload["id"]).lower() != statement_id.lower():
            raise XapiError(400, "the statement's id differs from the statementId parameter")
        payload.setdefault("id", statement_id)
        _limit(ctx, admitted.tenant, 1)
        await accept(ctx, admitted.tenant, [payload])
    except XapiError as exc:
        return _error(exc, version)
    return Response(status_code=204, headers={VERSION_HEADER: _answered(version)})


@router.get(
    "/statements",
    responses={200: {"description": "The statement.",
                     "content": {"application/json": {"schema": STATEMENT}}},
               404: {"description": "No such statement (or, by statementId, a voided one)."},
               **ERRORS},
    openapi_extra={"parameters": [VERSION_PARAM]},
    summary="One stored statement, by statementId or voidedStatementId",
)  # fmt: skip
async def get_statement(
    request: Request, ctx: Ctx, statement_id: StatementId = None, voided_id: VoidedId = None
) -> Response:
    version = request.headers.get(VERSION_HEADER)
    try:
        admitted = await _admit(request, ctx)
        if bool(statement_id) == bool(voided_id):
            raise XapiError(400, "give statementId or voidedStatementId: statement queries "
                                 "(filters, pages) are not supported")  # fmt: skip
        st = await fetch(ctx, admitted.tenant, statement_id or voided_id or "",
                         voided=bool(voided_id))  # fmt: skip
    except XapiError as exc:
        return _error(exc, version)
    if st is None:
        return _json({"message": "no such statement"}, 404, version)
    return _json(st, 200, version, **{"Last-Modified": st.get("stored", "")})


@router.get("/about", summary="The xAPI versions this LRS speaks (no credential needed)")
async def about(request: Request) -> Response:
    return _json({"version": SUPPORTED, "extensions": {}}, 200,
                 request.headers.get(VERSION_HEADER))  # fmt: skip


UNSUPPORTED = ("activities/state", "activities/profile", "agents/profile", "activities", "agents")


def _unsupported(resource: str):  # noqa: ANN202
    async def answer(request: Request) -> Response:
        return _json({"message": f"the {resource} resource is not supported: this LRS stores "
                                 "statements only (docs/ingestion.md, 'xAPI')"}, 501,
                     request.headers.get(VERSION_HEADER))  # fmt: skip

    return answer


for _resource in UNSUPPORTED:
    router.add_api_route(f"/{_resource}", _unsupported(_resource), include_in_schema=False,
                         methods=["GET", "PUT", "POST", "DELETE"])  # fmt: skip
