"""A virtualenv of its own for a large peer, set up when the benchmark needs it.

Pathway is about 1.5 GB installed: it stays out of ``make install`` and
CI. The stream benchmark asks for ``.run/bench-venvs/<name>`` with the
peer's pinned packages plus the ones our code it imports needs (the codec,
the store), at the versions this environment has, so both sides decode
and write with the same libraries. Our packages come from ``PYTHONPATH``.
A venv whose installed requirements match is reused.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from core.settings import PROJECT_ROOT

VENVS = PROJECT_ROOT / ".run" / "bench-venvs"
# What our modules imported by a peer need (schemas.codec, sinks.store).
OURS = ("fastavro", "orjson", "chdb")
PEERS = {"pathway": ("pathway==0.33.0",)}
INSTALL_TIMEOUT_S = 1800


class VenvUnavailable(RuntimeError):
    """The peer's virtualenv could not be set up; the message says why."""


def requirements(name: str) -> list[str]:
    pinned = []
    for pkg in OURS:
        try:
            pinned.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            pinned.append(pkg)
    return [*PEERS[name], *pinned]


def python_for(name: str, log: Path) -> Path:
    """The interpreter of the peer's venv, installing it first if needed;
    the install's output goes to ``log``. Raises VenvUnavailable."""
    root = VENVS / name
    python, done = root / "bin" / "python", root / ".requirements"
    wanted = "\n".join(requirements(name))
    if python.exists() and done.exists() and done.read_text() == wanted:
        return python
    with open(log, "ab") as out:
        _run(["python3.11", "-m", "venv", "--clear", str(root)], out)
        _run([str(python), "-m", "pip", "install", "-q", *wanted.split("\n")], out)
    done.write_text(wanted)
    return python


def _run(cmd: list[str], out) -> None:
    try:
        proc = subprocess.run(cmd, stdout=out, stderr=out, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VenvUnavailable(f"{cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise VenvUnavailable(f"{' '.join(cmd[:4])} exited {proc.returncode}")
