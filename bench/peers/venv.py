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
import sys
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


def install_log(name: str) -> Path:
    return VENVS / f"{name}-install.log"


def python_for(name: str) -> Path:
    """The interpreter of the peer's venv, installing it first if needed
    (its output in ``install_log(name)``). Raises VenvUnavailable."""
    root, log = VENVS / name, install_log(name)
    VENVS.mkdir(parents=True, exist_ok=True)
    python, done = root / "bin" / "python", root / ".requirements"
    wanted = requirements(name)
    if python.exists() and done.exists() and done.read_text() == "\n".join(wanted):
        return python
    # the base interpreter of the one running (a venv of a venv is not one)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", "--clear", str(root)], log)
    _run([str(python), "-m", "pip", "install", "-q", *wanted], log)
    done.write_text("\n".join(wanted))
    return python


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "ab") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=out, timeout=INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VenvUnavailable(f"{' '.join(cmd[1:4])}: {exc}") from exc
    if proc.returncode != 0:
        raise VenvUnavailable(f"{' '.join(cmd[1:4])} exited {proc.returncode}: {_last_line(log)}")


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "no output"
