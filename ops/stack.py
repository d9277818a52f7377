"""`skillstream up`: the whole local stack in the foreground.

Start order: Kafka (re-used if already running) → topics → stream worker →
API (+ sink, owner of the embedded ClickHouse) → demo telemetry. Ctrl-C or
SIGTERM stops them in reverse order; a child that dies takes the stack down
with a message naming it, rather than leaving half a stack running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ops.kafka_launcher import KafkaCluster, free_port
from ops.settings import Settings
from ops.topics import ensure_topics


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path


def _spawn(name: str, module: str, env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # we forward the shutdown ourselves, in order
        )
    return Child(name, proc, log)


def _stop(child: Child, timeout: float = 20.0) -> None:
    if child.proc.poll() is not None:
        return
    child.proc.send_signal(signal.SIGTERM)
    try:
        child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()


def wait_healthy(url: str, children: list[Child], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children:
            if c.proc.poll() is not None:
                raise RuntimeError(f"{c.name} exited with {c.proc.returncode}; see {c.log}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"API did not answer /health within {timeout:.0f}s")


# The demo back-fills eight chart weeks (ops/demo.py); the front door and the
# worker must accept that history. Production keeps the 7-day defaults.
DEMO_HISTORY_DAYS = 70


def demo_history_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Late-arrival bounds wide enough for the demo's history, for the API and
    worker that `up` starts, unless the user set them (any case)."""
    given = {k.upper() for k in environ}
    wanted = {
        "INGEST_MAX_AGE_S": str(DEMO_HISTORY_DAYS * 24 * 3600),
        "ALLOWED_LATENESS_DAYS": str(DEMO_HISTORY_DAYS),
    }
    return {k: v for k, v in wanted.items() if k not in given}


def up(settings: Settings, demo: bool = True, out=print) -> int:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.run_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    t0 = time.monotonic()

    cluster: KafkaCluster | None = None
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        out("starting local Kafka ...", file=sys.stderr)
        cluster = KafkaCluster.ensure(
            settings.kafka_dir, settings.cache_dir, settings.kafka_version, heap=settings.kafka_heap
        )
        bootstrap = cluster.bootstrap
    ensure_topics(bootstrap, settings)

    port = settings.api_port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "API_PORT": str(port)}
    if demo:  # the dashboard may then mint short-lived "view as" tokens per role
        env["SKILLSTREAM_DEMO"] = "1"
        env.update(demo_history_env(os.environ))
    children: list[Child] = []
    stopping = False

    def request_stop(*_):
        nonlocal stopping
        stopping = True

    old_int = signal.signal(signal.SIGINT, request_stop)
    old_term = signal.signal(signal.SIGTERM, request_stop)
    code = 0
    try:
        children.append(_spawn("worker", "streams.worker", env, log_dir))
        children.append(_spawn("api", "api.main", env, log_dir))
        wait_healthy(url, children)
        if demo:
            demo_env = {**env, "SKILLSTREAM_API_URL": url}
            children.append(_spawn("demo", "ops.demo", demo_env, log_dir))
        out(f"kafka: {bootstrap}   logs: {log_dir}", file=sys.stderr)
        out(f"dashboard: {url}/   API docs: {url}/docs", file=sys.stderr)
        out(f"ready in {time.monotonic() - t0:.1f}s; Ctrl-C stops everything", file=sys.stderr)
        out(url, flush=True)
        while not stopping:
            for c in children:
                if c.proc.poll() is not None:
                    out(f"{c.name} exited with {c.proc.returncode}; see {c.log}", file=sys.stderr)
                    code = 1
                    stopping = True
            time.sleep(0.3)
    except RuntimeError as exc:
        out(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        for c in reversed(children):
            _stop(c)
        if cluster is not None and cluster.started_here:
            cluster.stop()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        out("stopped", file=sys.stderr)
    return code
