"""`skillstream status` and `skillstream reset`: what runs, how far behind
each stage is, and the one explicit way to wipe a run directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.kafka_info import metadata_ok
from core.processes import pid_alive, read_stack
from core.settings import Settings
from ops.control import running_api_url
from ops.kafka_launcher import KafkaCluster, wipe

# What lives in a run directory, for the user reading `reset`'s output.
RUN_DIR_PARTS = {
    "kafka": "Kafka: topics, consumer offsets, changelogs",
    "state": "stream worker state (RocksDB)",
    "clickhouse": "embedded ClickHouse: events, reports, tenants, audit log",
    "exports": "exported files",
    "logs": "process logs",
    "secrets.json": "keys: tokens, admin calls, export links, PII salts, webhook secrets",
    "secrets.lock": "lock of secrets.json",
}


def _kafka_line(settings: Settings) -> tuple[str | None, str]:
    if settings.kafka_bootstrap:
        ok = metadata_ok(settings.kafka_bootstrap)
        state = "running" if ok else "unreachable"
        return (settings.kafka_bootstrap if ok else None), f"{state}   {settings.kafka_bootstrap}"
    c = KafkaCluster.load(settings.kafka_dir)
    if c is None:
        return None, "none      (created by the next `skillstream up`)"
    desc = f"{c.bootstrap} ({len(c.nodes)} node(s), cluster {c.cluster_id}, {settings.kafka_dir})"
    if c.is_running():
        return c.bootstrap, f"running   {desc}"
    return None, f"stopped   {desc}"


def print_status(settings: Settings) -> int:
    """Exit 0 when the stack and all its processes run, else 1."""
    from api.lag import pipeline_lag

    stack = read_stack(settings)
    ok = stack is not None
    if stack:
        print(f"{'stack':<10}running   pid {stack['pid']}   {stack['url']}")
    else:
        print(f"{'stack':<10}not running")
    bootstrap, kafka = _kafka_line(settings)
    print(f"{'kafka':<10}{kafka}")
    ok = ok and bootstrap is not None
    for name, child in (stack or {}).get("children", {}).items():
        alive = pid_alive(int(child["pid"]))
        ok = ok and alive
        state = "running" if alive else "exited "
        print(f"{name:<10}{state}   pid {child['pid']}   log {child['log']}")
    for name, url in (stack or {}).get("metrics", {}).items():
        print(f"{'metrics':<10}{name:<10}{url}")
    if bootstrap:
        print()
        print(f"{'stage':<8}{'consumer group':<32}{'records':>10}  {'oldest':>8}")
        for lag in pipeline_lag(bootstrap, settings):
            print(lag.line())
    return 0 if ok else 1


def _size(path: Path) -> str:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    n = sum(p.stat().st_size for p in files if p.exists())
    return f"{n / 2**20:.1f} MB"


def reset(settings: Settings, confirmed: bool) -> int:
    """Wipe the run directory; refuses while any of its processes run."""
    run_dir = settings.run_dir
    stack = read_stack(settings)
    if stack:
        print(f"error: `skillstream up` is running (pid {stack['pid']}): stop it first")
        return 1
    if running_api_url(settings):
        print("error: an API process owns this run directory's store: stop it first")
        return 1
    parts = sorted(run_dir.iterdir()) if run_dir.exists() else []
    if not parts:
        print(f"{run_dir} is already empty")
        return 0
    for p in parts:
        what = RUN_DIR_PARTS.get(p.name, "")
        print(f"{'removing' if confirmed else 'would remove'} {p} ({_size(p)}) {what}".rstrip())
    if not confirmed:
        print("nothing removed: pass --yes to wipe")
        return 2
    cluster = KafkaCluster.load(settings.kafka_dir)
    if cluster and cluster.any_running():
        print(f"stopping the local Kafka ({cluster.bootstrap})")
        cluster.stop()
    wipe(settings.kafka_dir)
    for p in parts:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    print(f"reset {run_dir}: the next `skillstream up` starts from nothing")
    return 0
