"""Secrets at rest in the store, sealed with a key that is not in the store.

A value in ClickHouse that only the application needs (a tenant's PII salt,
a webhook's signing secret) is kept as ``fernet:<token>``: AES-128-CBC +
HMAC-SHA256 (``cryptography``'s Fernet), keyed per purpose from
``core.secrets``. An analyst who can read every table reads only tokens.
Keys are a comma-separated list, newest first (MultiFernet): rotating one
prepends a key, and ``reseal`` moves values to it.

Values written before sealing existed are plain text; ``open`` still reads
them. At API start ``reseal_rows`` seals those and moves values sealed under
an older key to the newest one (after a rotation), so the old key can go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("skillstream.sealing")

PREFIX = "fernet:"


class SealError(ValueError):
    pass


class Sealer:
    def __init__(self, keys: str, purpose: str) -> None:
        self.purpose = purpose
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise SealError(f"no key for {purpose}")
        try:
            fernets = [Fernet(k) for k in parts]
        except ValueError as exc:  # not 32 url-safe base64-encoded bytes
            raise SealError(f"bad Fernet key for {purpose}: {exc}") from exc
        self._newest = fernets[0]
        self._fernet = MultiFernet(fernets)

    @staticmethod
    def is_sealed(value: str) -> bool:
        return value.startswith(PREFIX)

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, value: str) -> str:
        if not self.is_sealed(value):
            return value  # written before sealing; seal_legacy replaces it
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise SealError(
                f"{self.purpose}: sealed with a key that is not configured (lost or rotated out)"
            ) from exc

    def is_current(self, value: str) -> bool:
        """Sealed under the newest key."""
        if not self.is_sealed(value):
            return False
        try:
            self._newest.decrypt(value[len(PREFIX) :].encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, value: str) -> str:
        """The same secret under the newest key (plain text, or an older key)."""
        return self.seal(self.open(value))


def reseal_rows(rows: list[dict], column: str, sealer: Sealer, bump: Callable[[dict], None]):
    """The rows whose ``column`` is not sealed under the newest key, resealed
    and given a newer version by ``bump``; rows no configured key opens are
    left alone, loudly (a lost or dropped key: their secret cannot be used)."""
    out = []
    for row in rows:
        if sealer.is_current(row[column]):
            continue
        try:
            row[column] = sealer.reseal(row[column])
        except SealError as exc:
            log.warning("cannot reseal a row: %s", exc)
            continue
        bump(row)
        out.append(row)
    return out
