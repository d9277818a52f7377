"""How the CLI reaches SkillStream's data.

While `skillstream up` runs, its API process owns the embedded ClickHouse
(chdb: one process per data path), so the CLI calls the API's admin
endpoints with the run dir's admin secret. With no API running (or with a
ClickHouse server configured), the CLI opens the store itself and runs the
same operator functions.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

import httpx

from core.secrets import load_secrets
from core.settings import Settings


class ControlError(RuntimeError):
    pass


class Control(Protocol):
    def create_tenant(self, name: str) -> tuple[str, str]: ...

    def mint_token(self, tenant: str, role: str, user_id: str | None) -> str: ...

    def org_change(
        self, tenant: str, relation: str, subject: str, obj: str, unlink: bool = False
    ) -> dict: ...

    def org_bulk(self, tenant: str, links: list[tuple[str, str, str]]) -> int: ...

    def org_list(self, tenant: str, relation: str | None = None) -> list[dict]: ...

    def audit_verify(self, tenant: str | None) -> list[dict]: ...

    def purge(self, tenant: str | None) -> list[dict]: ...

    def hold_add(
        self,
        tenant: str,
        kind: str,
        reason: str,
        user_id: str | None,
        from_ts: str | None,
        to_ts: str | None,
    ) -> dict: ...

    def hold_list(self, tenant: str) -> list[dict]: ...

    def hold_release(self, tenant: str, hold_id: str) -> dict: ...

    def capabilities(self, tenant: str, enable: list[str], disable: list[str]) -> dict: ...

    def origins(self, tenant: str, add: list[str], remove: list[str]) -> dict: ...

    def sql(self, query: str, fmt: str, tenant: str | None) -> bytes: ...

    def readiness_term(self, tenant: str, term: str | None) -> dict: ...


def running_api_url(settings: Settings) -> str | None:
    try:
        info = json.loads(settings.api_file.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return str(info["url"])


class HttpControl:
    def __init__(self, url: str, admin_secret: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin_secret}"}, timeout=30
        )

    def _post(self, path: str, body: dict) -> dict:
        r = self.client.post(path, json=body)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise ControlError(f"{detail} (HTTP {r.status_code})")
        return r.json()

    def create_tenant(self, name: str) -> tuple[str, str]:
        out = self._post("/v1/admin/tenants", {"name": name})
        return out["tenant_id"], out["write_key"]

    def mint_token(self, tenant: str, role: str, user_id: str | None) -> str:
        out = self._post("/v1/admin/tokens", {"tenant": tenant, "role": role, "user_id": user_id})
        return out["token"]

    def org_change(
        self, tenant: str, relation: str, subject: str, obj: str, unlink: bool = False
    ) -> dict:
        body = {"tenant": tenant, "relation": relation, "subject_id": subject, "object_id": obj}
        return self._post("/v1/admin/org/links", {**body, "unlink": unlink})

    def org_bulk(self, tenant: str, links: list[tuple[str, str, str]]) -> int:
        return int(
            self._post("/v1/admin/org/links/bulk", {"tenant": tenant, "links": links})["linked"]
        )

    def org_list(self, tenant: str, relation: str | None = None) -> list[dict]:
        params = {"tenant": tenant, **({"relation": relation} if relation else {})}
        return self._get("/v1/admin/org/links", params)

    def _get(self, path: str, params: dict, method: str = "GET") -> Any:
        r = self.client.request(
            method,
            path,
            params={k: v for k, v in params.items() if v},
            timeout=None if method == "POST" else 30,
        )
        if r.status_code >= 400:
            raise ControlError(f"{r.json().get('detail')} (HTTP {r.status_code})")
        return r.json()

    def audit_verify(self, tenant: str | None) -> list[dict]:
        return self._get("/v1/admin/audit/verify", {"tenant": tenant})

    def purge(self, tenant: str | None) -> list[dict]:
        return self._get("/v1/admin/purge", {"tenant": tenant}, method="POST")

    def hold_add(
        self,
        tenant: str,
        kind: str,
        reason: str,
        user_id: str | None,
        from_ts: str | None,
        to_ts: str | None,
    ) -> dict:
        body = {
            "tenant": tenant,
            "kind": kind,
            "reason": reason,
            "user_id": user_id,
            "from_ts": from_ts,
            "to_ts": to_ts,
        }
        return self._post("/v1/admin/legal-holds", body)

    def hold_list(self, tenant: str) -> list[dict]:
        return self._get("/v1/admin/legal-holds", {"tenant": tenant})

    def hold_release(self, tenant: str, hold_id: str) -> dict:
        return self._get(f"/v1/admin/legal-holds/{hold_id}/release", {"tenant": tenant}, "POST")

    def capabilities(self, tenant: str, enable: list[str], disable: list[str]) -> dict:
        body = {"tenant": tenant, "enable": enable, "disable": disable}
        return self._post("/v1/admin/capabilities", body)

    def origins(self, tenant: str, add: list[str], remove: list[str]) -> dict:
        return self._post("/v1/admin/origins", {"tenant": tenant, "add": add, "remove": remove})

    def sql(self, query: str, fmt: str, tenant: str | None) -> bytes:
        body = {"sql": query, "format": fmt, "tenant": tenant}
        r = self.client.post("/v1/admin/sql", json=body, timeout=None)
        if r.status_code >= 400:
            raise ControlError(f"{r.json().get('detail')} (HTTP {r.status_code})")
        return r.content

    def readiness_term(self, tenant: str, term: str | None) -> dict:
        return self._post("/v1/admin/tenants/term", {"tenant": tenant, "term": term})


class LocalControl:
    def __init__(self, settings: Settings) -> None:
        from api.sealing import Sealer
        from api.tenants import TenantRegistry
        from sinks.store import open_store

        self.settings = settings
        self.secrets = load_secrets(settings)
        self.store = open_store(settings.clickhouse_url, settings.chdb_path)
        self.tenants = TenantRegistry(self.store, Sealer(self.secrets.pii_keys, "PII salts"))

    def create_tenant(self, name: str) -> tuple[str, str]:
        from api import operator
        from api.tenants import TenantError

        try:
            tenant, key = operator.create_tenant(self.tenants, name)
        except TenantError as exc:
            raise ControlError(str(exc)) from exc
        return tenant.tenant_id, key

    def mint_token(self, tenant: str, role: str, user_id: str | None) -> str:
        from api import operator
        from api.tenants import TenantError

        try:
            return operator.mint_token(
                self.tenants,
                self.secrets,
                tenant_name=tenant,
                role=role,
                user_id=user_id,
                ttl_s=self.settings.token_ttl_s,
            )
        except (operator.NotFound, TenantError) as exc:
            raise ControlError(str(exc)) from exc

    # org data: the same operator functions the admin routes call
    def _org(self, fn, *args, **kwargs):
        from api import operator

        try:
            return fn(self.tenants, self.store, *args, **kwargs)
        except (operator.NotFound, ValueError) as exc:
            raise ControlError(str(exc)) from exc

    def org_change(
        self, tenant: str, relation: str, subject: str, obj: str, unlink: bool = False
    ) -> dict:
        from api import operator

        return self._org(operator.org_change, tenant, relation, subject, obj, unlink=unlink)

    def org_bulk(self, tenant: str, links: list[tuple[str, str, str]]) -> int:
        from api import operator

        return self._org(operator.org_bulk, tenant, links)

    def org_list(self, tenant: str, relation: str | None = None) -> list[dict]:
        from api import operator

        return self._org(operator.org_list, tenant, relation)

    def audit_verify(self, tenant: str | None) -> list[dict]:
        from api import operator

        return self._org(operator.audit_verify, tenant)

    def purge(self, tenant: str | None) -> list[dict]:
        from api import operator
        from api.exports.storage import object_store_for

        objects = object_store_for(self.settings, self.secrets.export_link_secret)
        return self._org(operator.purge, self.settings, objects, tenant)

    def hold_add(
        self,
        tenant: str,
        kind: str,
        reason: str,
        user_id: str | None,
        from_ts: str | None,
        to_ts: str | None,
    ) -> dict:
        from datetime import datetime

        from api import operator

        f = datetime.fromisoformat(from_ts) if from_ts else None
        t = datetime.fromisoformat(to_ts) if to_ts else None
        return self._org(operator.hold_add, tenant, kind, reason, user_id, f, t)

    def hold_list(self, tenant: str) -> list[dict]:
        from api import operator

        return self._org(operator.hold_list, tenant)

    def hold_release(self, tenant: str, hold_id: str) -> dict:
        from api import operator

        return self._org(operator.hold_release, tenant, hold_id)

    def capabilities(self, tenant: str, enable: list[str], disable: list[str]) -> dict:
        from api import operator

        return self._org(operator.set_capabilities, tenant, enable, disable)

    def origins(self, tenant: str, add: list[str], remove: list[str]) -> dict:
        from api import operator
        from api.origins import OriginRegistry

        try:
            return operator.set_origins(
                self.tenants, OriginRegistry(self.store), tenant, add, remove
            )
        except (operator.NotFound, ValueError) as exc:
            raise ControlError(str(exc)) from exc

    def sql(self, query: str, fmt: str, tenant: str | None) -> bytes:
        from api import operator
        from api.analyst import SqlRefused
        from sinks.store import StoreError

        try:
            return operator.sql(self.tenants, self.settings, query, fmt, tenant)
        except (operator.NotFound, SqlRefused, StoreError) as exc:
            raise ControlError(str(exc)) from exc

    def readiness_term(self, tenant: str, term: str | None) -> dict:
        from api import operator

        try:
            return operator.readiness_term(self.tenants, self.settings, tenant, term)
        except (operator.NotFound, ValueError) as exc:
            raise ControlError(str(exc)) from exc


def control_for(settings: Settings) -> Control:
    url = running_api_url(settings)
    if url:
        return HttpControl(url, load_secrets(settings).admin_secret)
    return LocalControl(settings)
