"""The processes of a run directory: which run, read from the files they
leave there (``stack.json`` by `skillstream up`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ops.settings import Settings


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
