"""The Faust application: one app, its topics, and where its state lives.

Table state is RocksDB (through rocksdict) under the run directory, so a
restarted worker recovers from local state plus the changelog topics.
"""

from __future__ import annotations

import faust

from ops.settings import Settings


def create_app(settings: Settings, bootstrap: str, app_id: str = "skillstream-worker") -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=str(settings.state_dir),
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # Kafka transactions: table changelogs, emitted records and consumed
        # offsets commit atomically per partition, so a worker killed
        # mid-stream neither loses nor double-counts (tests/test_exactly_once.py).
        processing_guarantee="exactly_once",
        # Batch the many small records one event emits (clean event, rows,
        # score) into few produce requests: per-message requests dominated
        # the worker's profile (bench/stream.py).
        producer_linger=0.02,
        producer_max_batch_size=256 * 1024,
    )
