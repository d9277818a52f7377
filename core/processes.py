"""The processes of a run directory: which run, read from the files they
leave there (``stack.json`` by `skillstream up`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from core.settings import Settings


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child still "exists"; it is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def read_stack(settings: Settings) -> dict | None:
    """The running stack's processes, or None when no `up` is alive."""
    try:
        info = json.loads(settings.stack_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not pid_alive(int(info.get("pid", 0))):
        return None
    return info


def stack_children_alive(settings: Settings) -> dict[str, bool]:
    """Each child of the running `up` (worker, api, demo): alive or not."""
    stack = read_stack(settings) or {}
    return {name: pid_alive(int(child["pid"])) for name, child in stack.get("children", {}).items()}


def process_name(kind: str) -> str:
    """A name no other live process has: its kind, host and pid."""
    return f"{kind}-{socket.gethostname()}-{os.getpid()}"


def server_mode_only(settings: Settings, process: str) -> None:
    """chdb admits one process per data path, and the API process holds it:
    a sink or job runner of its own needs a ClickHouse server."""
    if not settings.clickhouse_url:
        raise SystemExit(
            f"skillstream {process} needs CLICKHOUSE_URL (a ClickHouse server): with the "
            "embedded store the API process runs it (`skillstream up`)"
        )
    if not settings.kafka_bootstrap:
        raise SystemExit(f"KAFKA_BOOTSTRAP must be set for skillstream {process}")


def serve_until_signalled(alive: Callable[[], bool], every_s: float = 1.0) -> int:
    """Block until SIGTERM/SIGINT (0) or until ``alive`` says no (1): a
    background thread that died takes its process down, so the supervisor
    (compose, systemd, Kubernetes) starts it again."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(every_s):
        if not alive():
            return 1
    return 0
