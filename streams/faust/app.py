"""The Faust application: one app, its topics, where its state lives, and
how the process runs it.

Table state is RocksDB (through rocksdict) under the run directory, so a
restarted worker recovers from local state plus the changelog topics.
"""

from __future__ import annotations

import asyncio

import faust
from aiokafka.errors import KafkaError
from confluent_kafka.admin import AdminClient
from faust.exceptions import PartitionsMismatch
from faust.types import ProducerT
from mode import Worker

from core.settings import Settings
from core.topics import durability
from streams.faust import fixes
from streams.faust.producer import RdKafkaProducer

fixes.apply()

# Errors of the infrastructure, not of a record (Kafka unavailable, a
# table's changelog not yet known): the record is retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    PartitionsMismatch, KafkaError, asyncio.TimeoutError,
)  # fmt: skip


class App(faust.App):
    """Faust, sending through librdkafka (see streams/faust/producer.py)."""

    def _new_producer(self) -> ProducerT:
        return RdKafkaProducer(self.transport, loop=self.loop, beacon=self.beacon)


def create_app(settings: Settings, bootstrap: str, app_id: str = "skillstream-worker") -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    replicas, _ = durability(admin)  # for the topics Faust creates itself (its leader topic)
    app = App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=str(settings.state_dir),
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=True,
        topic_replication_factor=replicas,
        consumer_auto_offset_reset="earliest",
        # At-least-once, with every state update idempotent per source
        # offset (see streams/aggregates.py, streams/steps/dedupe.py): faust's
        # commit flushes every buffered send before it commits offsets, so
        # nothing acknowledged is lost, and a replay changes nothing twice.
        # faust-streaming's exactly_once mode lost records under SIGKILL in
        # tests/test_stream.py (its transactional commit does not flush the
        # send buffer), so it is not used.
        processing_guarantee="at_least_once",
        # Each commit is a checkpoint (streams/faust/checkpoint.py).
        broker_commit_interval=settings.commit_interval_s,
        # Static membership: a worker restarted after a crash takes its old
        # place in the group at once, instead of waiting out the session
        # timeout of its dead self, and no rebalance reshuffles partitions
        # mid-recovery (the SIGKILL test in tests/test_stream.py).
        consumer_group_instance_id=f"{app_id}-{settings.worker_id}",
        # No standby copies of other workers' partitions: a standby applies
        # changelog records as they come, including ones whose input the
        # owner never committed, and its state would be taken as is after a
        # failover. The new owner restores from the changelog instead,
        # keeping only what committed input wrote (streams/faust/state.py).
        table_standby_replicas=0,
        # Batch the many small records one event emits (clean event, rows,
        # score) into few produce requests: per-message requests dominated
        # the worker's profile (bench/stream.py).
        producer_linger=0.05,
        producer_max_batch_size=256 * 1024,
    )
    return app


def run(app: faust.App) -> None:
    """Run the app in this process until it stops (SystemExit with its code)."""
    Worker(app, quiet=True, override_logging=False).execute_from_commandline()
