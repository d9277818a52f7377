"""What an admin operation is: its HTTP door (method, path, where its fields
travel), its request model, the function that does it against an
environment, and which of its errors answer which HTTP status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from string import Formatter
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from api.exports.storage import ObjectStore
from api.origins import OriginRegistry
from api.sso.service import SignIn
from api.tenants import TenantRegistry
from api.xapi.store import MappingRegistry
from core.secrets import Secrets
from core.settings import Settings
from sinks.store import Store


class NotFound(LookupError):
    pass


class Env(Protocol):
    """What an operation may use: the API's context, or ``LocalEnv``."""

    store: Store
    tenants: TenantRegistry
    settings: Settings
    secrets: Secrets
    objects: ObjectStore
    origins: OriginRegistry
    sso: SignIn
    xapi_mappings: MappingRegistry


class LocalEnv:
    """The CLI's environment with no API running: the store opened here."""

    def __init__(self, settings: Settings) -> None:
        from api.sealing import Sealer
        from core.secrets import load_secrets
        from sinks.store import open_store

        self.settings = settings
        self.secrets = load_secrets(settings)
        self.store = open_store(settings.clickhouse_url, settings.chdb_path)
        self.tenants = TenantRegistry(self.store, Sealer(self.secrets.pii_keys, "PII salts"))

    # built on first use: most operations need neither
    @cached_property
    def objects(self) -> ObjectStore:
        from api.exports.storage import object_store_for

        return object_store_for(self.settings, self.secrets.export_link_secret)

    @cached_property
    def origins(self) -> OriginRegistry:
        return OriginRegistry(self.store)

    @cached_property
    def xapi_mappings(self) -> MappingRegistry:
        return MappingRegistry(self.store)

    @cached_property
    def sso(self) -> SignIn:
        return SignIn(self.store, self.settings, self.secrets, self.tenants)


# (exception types, HTTP status): the first that matches answers
Errors = tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...]
MISSING: Errors = ((NotFound, 404),)
INVALID: Errors = (*MISSING, (ValueError, 422))


@dataclass(frozen=True)
class Op:
    """One admin operation. ``run`` returns what the route answers as JSON,
    or bytes answered with ``media_type(request)``. Fields travel in the
    JSON body, or (``in_body=False``) in the query and the path."""

    name: str
    method: Literal["GET", "POST"]
    path: str
    request: type[BaseModel]
    run: Callable[[Env, Any], Any]
    errors: Errors = INVALID
    in_body: bool = True
    status_code: int = 200
    response_model: type[BaseModel] | None = None
    media_type: Callable[[Any], str] | None = None
    summary: str | None = None
    timeout_s: float | None = 30

    @property
    def path_fields(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in Formatter().parse(self.path) if name)

    def status_for(self, exc: Exception) -> int | None:
        """The HTTP status an error of the operation answers; None: not its own."""
        return next((code for types, code in self.errors if isinstance(exc, types)), None)
