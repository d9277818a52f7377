"""Operator endpoints behind the run dir's admin secret (used by the CLI
while `skillstream up` owns the embedded store): one route per operation of
``api/admin/operations.py``, built from its definition."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, get_type_hints

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from api.admin.op import Op
from api.admin.operations import OPS
from api.context import AppContext
from api.deps import Admin, Ctx

router = APIRouter(dependencies=[Admin])


def _fields(op: Op) -> list[inspect.Parameter]:
    """The endpoint's parameters past the context: the body, or one per
    field from the query or the path."""
    kw = inspect.Parameter.KEYWORD_ONLY
    if op.in_body:
        return [inspect.Parameter("body", kw, annotation=op.request)]
    params = []
    for name, field in op.request.model_fields.items():
        where = Path() if name in op.path_fields else Query()
        default = inspect.Parameter.empty if field.is_required() else field.default
        params.append(
            inspect.Parameter(
                name, kw, annotation=Annotated[field.annotation, where], default=default
            )
        )
    return params


def _endpoint(op: Op) -> Callable[..., Awaitable[Any]]:
    async def endpoint(ctx: AppContext, **fields: Any) -> Any:
        req = fields["body"] if op.in_body else op.request(**fields)
        try:
            out = await run_in_threadpool(op.run, ctx, req)
        except Exception as exc:
            code = op.status_for(exc)
            if code is None:
                raise
            # a store's error can quote a whole query
            raise HTTPException(code, str(exc)[:1000]) from exc
        if op.media_type is not None:
            return Response(out, media_type=op.media_type(req))
        return out

    ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Ctx)
    endpoint.__signature__ = inspect.Signature([ctx, *_fields(op)])  # type: ignore[attr-defined]
    endpoint.__name__ = op.name
    return endpoint


def _response_model(op: Op) -> Any:
    """The declared model, else what ``run`` says it returns (bytes go out as
    they are)."""
    if op.response_model is not None or op.media_type is not None:
        return op.response_model
    return get_type_hints(op.run)["return"]


for _op in OPS:
    router.add_api_route(
        _op.path,
        _endpoint(_op),
        methods=[_op.method],
        name=_op.name,
        tags=["admin"],
        status_code=_op.status_code,
        response_model=_response_model(_op),
        summary=_op.summary,
    )
