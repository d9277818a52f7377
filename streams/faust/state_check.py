"""Local table state that no longer describes Kafka is dropped, per partition.

A table partition's RocksDB holds its data and the changelog offset it is up
to (Faust's persisted offset, in the same database, so both go together).
Before a worker opens a partition it checks that this offset and its
changelog still belong together:

* ``offset-past-end``: the persisted offset is at or past the changelog's
  end (the topic was emptied or recreated; Faust would stop with a
  ``ConsistencyError`` at every start);
* ``changelog-recreated`` / ``other-cluster``: the changelog topic's id, or
  the cluster's, differs from the one the local state was built from
  (recorded beside it in ``<table>-<partition>.db.kafka.json``): a state
  directory from another run, or a topic deleted and created again.

Either way the partition's store is removed, one line is logged, the
``skillstream_worker_state_resets_total`` counter goes up, and Faust
restores the partition from its changelog, as after a crash. The worker
never goes on with state that no moment of its input had, and never exits
for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from core.kafka_info import TopicsInfo, describe_topics

log = logging.getLogger("skillstream.state")

STATE_RESETS = Counter(
    "skillstream_worker_state_resets_total",
    "Table partitions whose local state disagreed with Kafka, dropped and restored",
    ["table", "reason"],
)


class ChangelogView:
    """Shared by every table; the first table to ask in a rebalance reads."""

    def __init__(self, bootstrap: str, topics: Callable[[], list[str]]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.current = TopicsInfo()
        self._read_at = -1.0

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at > 1.0:
            loop = asyncio.get_running_loop()
            self.current = await loop.run_in_executor(
                None, describe_topics, self.bootstrap, self.topics()
            )
            self._read_at = time.monotonic()


def _identity_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".kafka.json")


def disagreement(persisted: int | None, recorded: dict | None, topic: str, partition: int,
                 kafka: TopicsInfo) -> str | None:  # fmt: skip
    """Why a partition's local state cannot be used with this changelog, if it can't."""
    if recorded is not None:
        if recorded.get("cluster_id") != kafka.cluster_id:
            return "other-cluster"
        if recorded.get("topic_id") != kafka.topic_ids.get(topic):
            return "changelog-recreated"
    if persisted is not None and persisted >= kafka.ends.get((topic, partition), 0):
        return "offset-past-end"
    return None


def check_partition(table: Any, partition: int, kafka: TopicsInfo) -> str | None:
    """Drop this table partition's local store if it disagrees with Kafka;
    record which changelog the store (kept or new) is built from."""
    from faust.types import TP

    store = table.data
    topic = table.changelog_topic.get_topic_name()
    db_path = Path(store.partition_path(partition))
    ident = _identity_file(db_path)
    reason = None
    if db_path.exists():
        recorded = json.loads(ident.read_text()) if ident.exists() else None
        persisted = store.persisted_offset(TP(topic, partition))
        reason = disagreement(persisted, recorded, topic, partition, kafka)
        if reason:
            db = store._dbs.pop(partition, None)
            if db is not None:
                db.close()
            shutil.rmtree(db_path, ignore_errors=True)
            STATE_RESETS.labels(table.name, reason).inc()
            log.warning(
                "table %s partition %d: local state dropped (%s: persisted offset %s, "
                "changelog end %s); restoring it from %s",
                table.name, partition, reason, persisted,
                kafka.ends.get((topic, partition)), topic,
            )  # fmt: skip
    ident.parent.mkdir(parents=True, exist_ok=True)
    ident.write_text(
        json.dumps({"cluster_id": kafka.cluster_id, "topic_id": kafka.topic_ids.get(topic)})
    )
    return reason
