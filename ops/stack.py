"""`skillstream up`: the whole local stack in the foreground.

Start order: Kafka (re-used if already running, else started again from its
data in ``.run/kafka``) → topics → stream worker → API (+ sink, owner of the
embedded ClickHouse) → demo telemetry. Ctrl-C or SIGTERM stops them in
reverse order; a child that dies takes the stack down with the last error
lines of its log, rather than leaving half a stack running. Nothing here
ever deletes data: only `skillstream reset --yes` does.

``.run/stack.json`` names every process of the running stack (what
`skillstream status` reads); each child is killed by the kernel if this
supervisor is (``PR_SET_PDEATHSIG``), so a SIGKILLed `up` leaves no worker
holding the group's static membership and no API holding the embedded store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.processes import read_stack
from core.settings import Settings
from core.topics import ensure_topics, existing_partitions
from ops.kafka_launcher import KafkaCluster, KafkaLauncherError, die_with_parent, free_port

Out = Callable[..., None]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    log_start: int = 0  # where this run's lines begin in the (appended) log


def _spawn(name: str, module: str, env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{name}.log"
    with open(log, "ab") as fh:
        start = fh.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # we forward the shutdown ourselves, in order
            preexec_fn=die_with_parent,
        )
    return Child(name, proc, log, start)


def _stop(child: Child, timeout: float = 20.0) -> None:
    if child.proc.poll() is not None:
        return
    child.proc.send_signal(signal.SIGTERM)
    try:
        child.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()


def error_tail(log: Path, since: int = 0, max_lines: int = 24) -> list[str]:
    """What a user needs from a dead child's log, written since ``since``:
    its first traceback (the cause; later ones are often shutdown noise)
    with the line that announced it, and the log's last line; else its last
    lines."""
    try:
        with open(log, "rb") as fh:
            fh.seek(since)
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("%")]  # librdkafka's own
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Traceback (most")), None)
    if start is None:
        return lines[-10:]
    end = next((j for j in range(start + 1, len(lines)) if not lines[j][:1].isspace()), start)
    block = lines[max(0, start - 1) : end + 1]
    if len(block) > max_lines:
        block = [*block[:3], "  ...", *block[-(max_lines - 4) :]]
    return block if end == len(lines) - 1 else [*block, "  ...", lines[-1]]


def _died(child: Child) -> str:
    lines = [f"{child.name} exited with {child.proc.returncode}; from {child.log}:"]
    lines += [f"  | {ln}" for ln in error_tail(child.log, child.log_start)]
    return "\n".join(lines)


def wait_healthy(url: str, children: list[Child], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children:
            if c.proc.poll() is not None:
                raise RuntimeError(_died(c))
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
        "DEDUPE_WINDOW_DAYS": str(DEMO_HISTORY_DAYS),
    }
    return {k: v for k, v in wanted.items() if k not in given}


def _write_stack(
    settings: Settings, url: str, bootstrap: str, children: list[Child], worker_metrics: str
) -> None:
    info = {
        "pid": os.getpid(),
        "url": url,
        "kafka": bootstrap,
        "local_kafka": not settings.kafka_bootstrap,
        "children": {c.name: {"pid": c.proc.pid, "log": str(c.log)} for c in children},
        "metrics": {
            "api": f"{url}/metrics",
            "worker": f"http://127.0.0.1:{worker_metrics}/metrics",
        },
    }
    settings.stack_file.write_text(json.dumps(info, indent=2))


class KafkaWatch:
    """The local cluster while `up` runs: started again from its data, on
    the same ports, when its nodes exit (a crash, or `skillstream kafka
    stop`), so the worker and the API reconnect instead of failing."""

    def __init__(self, settings: Settings, out: Out, brokers: int | None = None) -> None:
        self.settings = settings
        self.out = out
        self.brokers = brokers  # size of a new cluster; None: the existing one's (or 1)
        self.cluster: KafkaCluster | None = None

    def start(self) -> str:
        s = self.settings
        self.cluster = KafkaCluster.ensure(
            s.kafka_dir, s.cache_dir, s.kafka_version, size=self.brokers, heap=s.kafka_heap,
            tie_to_parent=True,
        )  # fmt: skip
        return self.cluster.bootstrap

    def check(self) -> None:
        if self.cluster is None:
            return
        current = KafkaCluster.load(self.settings.kafka_dir) or self.cluster
        if current.is_running():
            return
        self.out(
            f"kafka stopped; starting it again from {self.settings.kafka_dir}", file=sys.stderr
        )
        current.tie_to_parent = True
        before = current.bootstrap
        current.resume()
        self.cluster = current
        if current.bootstrap != before:  # its ports were taken meanwhile
            raise RuntimeError(f"kafka came back on {current.bootstrap}, not {before}")

    def stop(self) -> None:
        if self.cluster is not None and self.cluster.started_here:
            self.cluster.stop()


def _refuse_second_stack(settings: Settings) -> None:
    running = read_stack(settings)
    if running:
        raise RuntimeError(
            f"`skillstream up` is already running for {settings.run_dir} "
            f"(pid {running['pid']}, {running['url']})"
        )


def _child_env(settings: Settings, bootstrap: str, port: int, demo: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "API_PORT": str(port),
        "WORKER_METRICS_PORT": str(settings.worker_metrics_port or free_port()),
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
    }
    # a terminal's stack: the human format (error_tail reads it) unless set
    env.setdefault("LOG_FORMAT", "plain")
    # Demo mode mints tokens for any role: only an explicit `--demo` turns it
    # on, never a variable left over in the environment.
    for k in [k for k in env if k.upper() == "SKILLSTREAM_DEMO"]:
        del env[k]
    if demo:  # the dashboard may then mint short-lived "view as" tokens per role
        env["SKILLSTREAM_DEMO"] = "1"
        env.update(demo_history_env(os.environ))
    return env


def _adopt_partitions(settings: Settings, bootstrap: str, out: Out) -> Settings:
    """Topics made by an earlier run keep their partition count: the stack
    runs with it (changing it is a migration: docs/streams.md, Partitions)."""
    have = existing_partitions(bootstrap, settings)
    if have is None or have == settings.topic_partitions:
        return settings
    out(
        f"topics have {have} partitions (TOPIC_PARTITIONS={settings.topic_partitions} applies "
        "to new topics; docs/streams.md, Partitions): running with "
        f"{have}",
        file=sys.stderr,
    )
    return settings.model_copy(update={"topic_partitions": have})


def _spawn_workers(n: int, env: dict[str, str], log_dir: Path) -> list[Child]:
    """One worker as configured, or ``n`` in one consumer group, each with
    its own WORKER_ID (so its own state directory) and metrics port."""
    if n == 1:
        return [_spawn("worker", "streams.worker", env, log_dir)]
    return [
        _spawn(
            "worker" if i == 0 else f"worker-{i}",
            "streams.worker",
            {
                **env,
                "WORKER_ID": str(i),
                **({} if i == 0 else {"WORKER_METRICS_PORT": str(free_port())}),
            },
            log_dir,
        )  # fmt: skip
        for i in range(n)
    ]


def _spawn_demo_idp(settings: Settings, url: str, env: dict[str, str], log_dir: Path) -> Child:
    from ops.demo import DEMO_TENANTS
    from ops.demo_idp import write_config

    write_config(settings.run_dir, url, DEMO_TENANTS[0])
    idp_env = {**env, "SKILLSTREAM_DEMO_IDP": str(settings.run_dir / "demo-idp.json")}
    return _spawn("demo-idp", "ops.demo_idp", idp_env, log_dir)


def up(
    settings: Settings,
    demo: bool = False,
    out: Out = print,
    workers: int = 1,
    brokers: int | None = None,
) -> int:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.run_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    t0 = time.monotonic()
    try:
        _refuse_second_stack(settings)
    except RuntimeError as exc:
        out(f"error: {exc}", file=sys.stderr)
        return 1

    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    old_int = signal.signal(signal.SIGINT, request_stop)
    old_term = signal.signal(signal.SIGTERM, request_stop)
    kafka = KafkaWatch(settings, out, brokers)
    children: list[Child] = []
    code = 0
    try:
        bootstrap = settings.kafka_bootstrap
        if not bootstrap:
            out("starting local Kafka ...", file=sys.stderr)
            bootstrap = kafka.start()
        settings = _adopt_partitions(settings, bootstrap, out)
        ensure_topics(bootstrap, settings)
        port = settings.api_port or free_port()
        url = f"http://127.0.0.1:{port}"
        env = _child_env(settings, bootstrap, port, demo)
        children += _spawn_workers(workers, env, log_dir)
        if demo:  # the demo company's identity provider (ops/demo_idp.py)
            children.append(_spawn_demo_idp(settings, url, env, log_dir))
        children.append(_spawn("api", "api.main", env, log_dir))
        _write_stack(settings, url, bootstrap, children, env["WORKER_METRICS_PORT"])
        wait_healthy(url, children)
        if demo:
            demo_env = {**env, "SKILLSTREAM_API_URL": url}
            children.append(_spawn("demo", "ops.demo", demo_env, log_dir))
            _write_stack(settings, url, bootstrap, children, env["WORKER_METRICS_PORT"])
        out(f"kafka: {bootstrap}   logs: {log_dir}", file=sys.stderr)
        out(f"dashboard: {url}/   API docs: {url}/docs", file=sys.stderr)
        if demo:
            out(
                "demo mode: 'view as' tokens for every role, to loopback clients; sign-in "
                "through the demo company's identity provider",
                file=sys.stderr,
            )
        out(f"ready in {time.monotonic() - t0:.1f}s; Ctrl-C stops everything", file=sys.stderr)
        out(url, flush=True)
        while not stopping:
            for c in children:
                if c.proc.poll() is not None:
                    raise RuntimeError(_died(c))
            kafka.check()
            time.sleep(0.3)
    except (RuntimeError, KafkaLauncherError) as exc:
        out(f"error: {exc}", file=sys.stderr)
        code = 1
    finally:
        for c in reversed(children):
            _stop(c)
        kafka.stop()
        settings.stack_file.unlink(missing_ok=True)
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        out("stopped", file=sys.stderr)
    return code
