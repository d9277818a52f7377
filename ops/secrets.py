"""Process-wide secrets: from the environment, else generated once per run dir.

The generated file is readable only by its owner; every local process (API,
worker, CLI) reads the same file, so a token the CLI signs verifies in the API.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass

from ops.settings import Settings


@dataclass(frozen=True)
class Secrets:
    token_secret: str
    admin_secret: str


def load_secrets(settings: Settings) -> Secrets:
    stored: dict[str, str] = {}
    path = settings.secrets_file
    if path.exists():
        stored = json.loads(path.read_text())
    changed = False
    for key in ("token_secret", "admin_secret"):
        if key not in stored:
            stored[key] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
        # O_EXCL-free rename: two processes racing both write valid secrets,
        # and the loser re-reads the winner's file below.
        if not path.exists():
            os.replace(tmp, path)
        else:
            tmp.unlink()
        stored = json.loads(path.read_text())
    return Secrets(
        token_secret=settings.token_secret or stored["token_secret"],
        admin_secret=settings.admin_secret or stored["admin_secret"],
    )
