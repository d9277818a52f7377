"""Process-wide secrets: from the environment, else generated once per run dir.

One key per purpose, so one leaking or rotating never touches the others:

- ``token_secret``: HMAC key of bearer tokens (JWT HS256);
- ``admin_secret``: bearer of the CLI's admin calls to a running API;
- ``export_link_secret``: HMAC key of the local object store's download links;
- ``pii_keys``: Fernet keys sealing each tenant's PII salt in the store;
- ``webhook_keys``: Fernet keys sealing webhook signing secrets in the store;
- ``sso_keys``: Fernet keys sealing identity providers' client secrets and
  sign-in sessions' provider tokens in the store.

The Fernet ones are comma-separated lists, newest first: the first seals, all
open (MultiFernet), so a key can be rotated without losing what it sealed.
None of them is ever written to ClickHouse. The generated file is readable
only by its owner; every local process (API, worker, CLI) reads the same file,
so a token the CLI signs verifies in the API.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from core.settings import Settings


class SecretsError(ValueError):
    pass


@dataclass(frozen=True)
class Secrets:
    token_secret: str
    admin_secret: str
    export_link_secret: str
    pii_keys: str
    webhook_keys: str
    sso_keys: str


def _new_hmac_secret() -> str:
    return secrets.token_urlsafe(32)


def _new_fernet_key() -> str:
    return Fernet.generate_key().decode()


GENERATORS: dict[str, Callable[[], str]] = {
    "token_secret": _new_hmac_secret,
    "admin_secret": _new_hmac_secret,
    "export_link_secret": _new_hmac_secret,
    "pii_keys": _new_fernet_key,
    "webhook_keys": _new_fernet_key,
    "sso_keys": _new_fernet_key,
}


def _write_private(path: Path, stored: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(stored, f)
    os.replace(tmp, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Every process of the run dir adds missing keys under one lock, so two
    starting at once never end up with different keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stored(path: Path, needed: list[str]) -> dict[str, str]:
    """The key file's secrets, ``needed`` ones generated if absent."""
    with _locked(path):
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = [k for k in needed if k not in stored]
        if missing:  # a first start, or a file from before a purpose had its own key
            stored.update({k: GENERATORS[k]() for k in missing})
            _write_private(path, stored)
        return stored


def load_secrets(settings: Settings) -> Secrets:
    given = {
        "token_secret": settings.token_secret,
        "admin_secret": settings.admin_secret,
        "export_link_secret": settings.export_link_secret,
        "pii_keys": settings.pii_keys,
        "webhook_keys": settings.webhook_keys,
        "sso_keys": settings.sso_keys,
    }
    # Only what the environment does not give comes from (or goes to) the
    # file: a deployment that sets every variable keeps no key on disk.
    needed = [k for k, v in given.items() if not v]
    stored = _stored(settings.secrets_file, needed) if needed else {}
    out = Secrets(**{k: v or stored[k] for k, v in given.items()})
    _check_distinct(out)
    return out


def _check_distinct(s: Secrets) -> None:
    """One key per purpose: an operator who sets the same value twice gets
    told at start-up rather than finding out after a leak."""
    values = [s.token_secret, s.admin_secret, s.export_link_secret]
    sealing = f"{s.pii_keys},{s.webhook_keys},{s.sso_keys}"
    keys = [k.strip() for k in sealing.split(",") if k.strip()]
    if len(set(values)) != len(values) or len(set(keys)) != len(keys):
        raise SecretsError("each secret must be distinct: one key per purpose (see docs)")


def rotate_local(settings: Settings, purpose: str) -> None:
    """Replace one generated secret in the run dir's file (local mode). For
    ``token_secret`` every token signed before is refused from the API's next
    start; Fernet keys are prepended, so what the old key sealed still opens."""
    if purpose not in GENERATORS or purpose == "admin_secret":
        raise SecretsError(f"cannot rotate {purpose!r}")
    path = settings.secrets_file
    _stored(path, list(GENERATORS))
    with _locked(path):
        stored = json.loads(path.read_text())
        fresh = GENERATORS[purpose]()
        stored[purpose] = f"{fresh},{stored[purpose]}" if purpose.endswith("_keys") else fresh
        _write_private(path, stored)
