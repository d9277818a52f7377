"""What every scenario shares: scales, the run context, results, helpers.

A scenario is a module with ``run(scale, ctx) -> Result``. Each figure is a
``Row``: our number, the baseline's number measured in the same run on the
same machine, and ``ratio = ours / baseline`` (``better`` says which way is
good), because absolute numbers drift on shared machines.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Scale:
    name: str
    ingest_events: int
    stream_events: int
    stream_timeout_s: float
    fresh_rates: tuple[int, ...]  # ev/s, increased until one is not sustainable
    fresh_seconds: float
    query_sizes: tuple[int, ...]
    query_runs: int
    memory_ids: int
    stream_peer: bool = True  # run the Quix Streams peer (hours at 1M events on 2 cores)
    # run the Pathway peer: its venv (about 1.5 GB) is installed on first use,
    # so not in the small smoke run that CI and `make test` do
    pathway_peer: bool = True
    scale_workers: tuple[int, ...] = (1, 2, 3)  # worker counts of the scale scenario
    import_events: int = 20_000  # events of the import scenario's year of history


SCALES: dict[str, Scale] = {
    # CI smoke: checks the harness end to end, not a speed limit.
    "small": Scale(
        "small",
        2_000,
        500,
        120,
        (50,),
        4,
        (20_000,),
        5,
        10_000,
        scale_workers=(1, 2),
        pathway_peer=False,
    ),  # fmt: skip
    "medium": Scale(
        "medium",
        20_000,
        100_000,
        900,
        (250, 500, 1_000, 1_500),
        15,
        (1_000_000,),
        20,
        100_000,
        import_events=100_000,
    ),
    # The sizes.
    "full": Scale(
        "full",
        200_000,
        1_000_000,
        7200,
        (500, 1_000, 1_500, 2_000, 3_000),
        60,
        (1_000_000, 10_000_000),
        30,
        10_000_000,
        import_events=1_000_000,
    ),
}


@dataclass
class Context:
    bootstrap: str
    workdir: Path  # scratch space of this run (run dirs, chdb paths)


@dataclass
class Row:
    metric: str
    ours: float | None
    baseline: float | None
    unit: str = ""
    better: str = "higher"  # which way of ``ours`` is good
    baseline_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.baseline:
            return None
        return round(self.ours / self.baseline, 3)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Result:
    scenario: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rows": [r.to_json() for r in self.rows],
            "details": self.details,
            "skipped": self.skipped,
            "error": self.error,
        }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(ram, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * len(s) + 0.5)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb(pid: int) -> float:
    """High-water mark of a live process's resident set (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def fresh_settings(ctx: Context, tag: str, topics: dict[str, dict] | None = None) -> Settings:
    """A new run dir and topic prefix on the bench Kafka: runs never share state."""
    from core.topics import ensure_topics

    run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=ctx.workdir))
    settings = Settings(
        SKILLSTREAM_RUN_DIR=run_dir,
        KAFKA_BOOTSTRAP=ctx.bootstrap,
        TOPIC_PREFIX=f"{tag}{int(time.time() * 1000) % 10**9}",
    )
    ensure_topics(ctx.bootstrap, settings, topics)
    return settings


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "TOPIC_PREFIX": settings.topic_prefix,
        "SKILLSTREAM_RUN_DIR": str(settings.run_dir),
        **extra,
    }


def start_worker(settings: Settings, worker_id: int = 0) -> subprocess.Popen:
    log = open(settings.run_dir / f"worker-{worker_id}.log", "wb")  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(
        [sys.executable, "-m", "streams.worker"],
        env=child_env(settings, WORKER_ID=str(worker_id)),
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL: a Faust worker sometimes hangs on shutdown."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def group_caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """The consumer group has committed every record of ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        committed = c.committed(parts, timeout=10)
        return all(tp.offset >= c.get_watermark_offsets(tp, timeout=10)[1] for tp in committed)
    finally:
        c.close()
