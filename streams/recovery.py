"""What the worker settles before it joins its group, so its tables restore
to a commit: local state dropped after a crash, a legacy state directory
adopted, the changelog topics created, and the group's committed offsets
(what a restored table may contain)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import faust

from core.kafka_info import while_settling
from core.settings import Settings
from core.topics import durability

INPUT_TOPICS = (
    "events.raw", "events.import", "events.attributed", "identity.links", "control.recompute",
    "control.erasure",
)  # fmt: skip
CLEAN_MARKER = "CLEAN_SHUTDOWN"


def discard_state_after_crash(state_dir: Path) -> bool:
    """After a crash, local RocksDB may hold writes whose changelog records
    never reached Kafka. Unless the last run stopped cleanly, drop the local
    state and restore the tables from the changelogs, so local state and
    Kafka agree before replay starts."""
    marker = state_dir / CLEAN_MARKER
    if marker.exists():
        marker.unlink()
        return False
    if state_dir.exists() and any(state_dir.iterdir()):
        shutil.rmtree(state_dir)
        return True
    return False


def mark_clean_stop(state_dir: Path) -> None:
    """The next start keeps the local state (see ``discard_state_after_crash``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / CLEAN_MARKER).write_text(str(time.time()))


def adopt_unnamed_state(settings: Settings) -> None:
    """A run directory from before workers had their own state directories
    holds one worker's state straight under ``state/``: it is worker 0's."""
    root = settings.state_dir.parent
    if settings.worker_id != "0" or settings.state_dir.exists() or not root.is_dir():
        return
    unnamed = [p for p in root.iterdir() if not p.name.startswith("worker-")]
    if unnamed:
        settings.state_dir.mkdir(parents=True)
        for p in unnamed:
            p.rename(settings.state_dir / p.name)


def ensure_changelogs(app: faust.App, bootstrap: str, settings: Settings) -> None:
    """Create the tables' changelog topics before the worker joins its group:
    a changelog that Faust creates itself at start-up can be missing from
    the consumer's metadata for minutes, and every write to that table fails
    meanwhile (PartitionsMismatch)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    names = [t.changelog_topic.get_topic_name() for t in app.tables.values()]
    existing = set(admin.list_topics(timeout=10).topics)
    replicas, safety = durability(admin)
    new = [
        NewTopic(
            n, settings.topic_partitions, replicas, config={"cleanup.policy": "compact", **safety}
        )  # fmt: skip
        for n in names
        if n not in existing
    ]
    for fut in (admin.create_topics(new, operation_timeout=15) if new else {}).values():
        try:
            fut.result()
        except Exception as exc:  # created meanwhile by another worker: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10).topics
        if all(n in md and len(md[n].partitions) == settings.topic_partitions for n in names):
            return
        time.sleep(0.2)


@while_settling
def committed_offsets(bootstrap: str, group: str, settings: Settings) -> dict[tuple[str, int], int]:
    """The group's committed offset of every input partition (0 where none):
    where processing resumes, and so what a restored table may contain."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0})
    try:
        tps = [
            TopicPartition(settings.topic(t), p)
            for t in INPUT_TOPICS
            for p in range(settings.topic_partitions)
        ]
        return {(tp.topic, tp.partition): max(0, tp.offset) for tp in c.committed(tps, timeout=30)}
    finally:
        c.close()
