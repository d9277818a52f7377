"""`skillstream up` driven as a user drives it: a subprocess in its own
process group, the URL read from its output, Ctrl-C sent to the group."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from core.settings import PROJECT_ROOT


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Stack:
    """One `skillstream up` in its own process group, as a terminal runs it."""

    def __init__(
        self, env: dict[str, str], log: Path, demo: bool = False, args: tuple[str, ...] = ()
    ) -> None:
        self.env = env
        self.stderr = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "up", *(["--demo"] if demo else []), *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(ln) for ln in self.proc.stdout], daemon=True
        ).start()
        try:
            self.url = lines.get(timeout=180).strip()
        except queue.Empty:
            self.kill_group(signal.SIGKILL)
            raise AssertionError(f"no URL from `up`; see {log}") from None
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def kill_group(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)  # the whole group, as Ctrl-C does

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.kill_group(sig)
        code = self.proc.wait(90)
        self.stderr.close()
        return code

    def alive(self) -> bool:
        return self.proc.poll() is None
