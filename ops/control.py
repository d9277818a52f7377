"""How the CLI reaches SkillStream's data.

While `skillstream up` runs, its API process owns the embedded ClickHouse
(chdb: one process per data path), so the CLI calls the API's admin
endpoints with the run dir's admin secret. With no API running (or with a
ClickHouse server configured), the CLI opens the store itself and runs the
same operations (``api/admin/operations.py``) here.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from typing import Any

import httpx
from pydantic import ValidationError

from api.admin.op import LocalEnv, Op
from api.admin.operations import CREATE_TENANT, ORG_BULK
from core.secrets import load_secrets
from core.settings import Settings


class ControlError(RuntimeError):
    pass


class Control(ABC):
    """Runs an admin operation with its request's fields; what it returns is
    what the API answers (parsed JSON, or bytes)."""

    @abstractmethod
    def run(self, op: Op, **fields: Any) -> Any: ...

    # the shapes the demo and the benchmarks call
    def create_tenant(self, name: str) -> tuple[str, str]:
        out = self.run(CREATE_TENANT, name=name)
        return out["tenant_id"], out["write_key"]

    def org_bulk(self, tenant: str, links: list[tuple[str, str, str]]) -> int:
        return int(self.run(ORG_BULK, tenant=tenant, links=links)["linked"])


class HttpControl(Control):
    """Through the running API: the operation's method and path."""

    def __init__(self, url: str, admin_secret: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin_secret}"}, timeout=30
        )

    def run(self, op: Op, **fields: Any) -> Any:
        path = op.path.format(**{k: fields.pop(k) for k in op.path_fields})
        sent = (
            {"json": fields} if op.in_body else {"params": {k: v for k, v in fields.items() if v}}
        )
        r = self.client.request(op.method, path, timeout=op.timeout_s, **sent)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise ControlError(f"{detail} (HTTP {r.status_code})")
        return r.content if op.media_type else r.json()


class LocalControl(Control):
    """Against the store opened here; an operation's own errors (those it
    answers over HTTP with a status) become ``ControlError``."""

    def __init__(self, settings: Settings) -> None:
        self.env = LocalEnv(settings)

    def run(self, op: Op, **fields: Any) -> Any:
        try:
            req = op.request(**fields)
        except ValidationError as exc:
            raise ControlError(str(exc)) from exc
        try:
            return op.run(self.env, req)
        except Exception as exc:
            if op.status_for(exc) is None:
                raise
            raise ControlError(str(exc)) from exc


def running_api_url(settings: Settings) -> str | None:
    try:
        info = json.loads(settings.api_file.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(info["url"])


def control_for(settings: Settings) -> Control:
    url = running_api_url(settings)
    if url:
        return HttpControl(url, load_secrets(settings).admin_secret)
    return LocalControl(settings)
