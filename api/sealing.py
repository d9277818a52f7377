"""Secrets at rest in the store, sealed with a key that is not in the store.

A value in ClickHouse that only the application needs (a tenant's PII salt,
a webhook's signing secret) is kept as ``fernet:<token>``: AES-128-CBC +
HMAC-SHA256 (``cryptography``'s Fernet), keyed per purpose from
``ops.secrets``. An analyst who can read every table reads only tokens.
Keys are a comma-separated list, newest first (MultiFernet): rotating one
prepends a key, and ``reseal`` moves values to it.

Values written before sealing existed are plain text; ``open`` still reads
them and ``seal_legacy`` (run at API start) replaces them.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

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
            self._fernet = MultiFernet([Fernet(k) for k in parts])
        except ValueError as exc:  # not 32 url-safe base64-encoded bytes
            raise SealError(f"bad Fernet key for {purpose}: {exc}") from exc

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

    def reseal(self, value: str) -> str:
        """The same secret under the newest key (after a key rotation)."""
        if not self.is_sealed(value):
            return self.seal(value)
        token = value[len(PREFIX) :].encode()
        return PREFIX + self._fernet.rotate(token).decode()
