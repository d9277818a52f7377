"""Leases for the work that must run once however many job runners there
are: the partitions of ``control.jobs``, handed out by Kafka's group
coordinator to the members of ``<prefix>-jobs``. A partition is a share:
an export runs on the holder of the share its id hashes to, the periodic
jobs (link sweep, purge, erasure second pass) on the holder of share 0.

Kafka gives a partition to one member at a time and moves it when that
member leaves or stops heartbeating (``session.timeout.ms``). A member
that stops polling gives up its shares on its own after ``stale_s``, well
inside the session timeout, so an old holder has stopped claiming work
before a new one starts. Nothing is ever written to the topic.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib

from confluent_kafka import Consumer, TopicPartition

from core.threads import BackgroundThread

log = logging.getLogger("skillstream.leases")

SESSION_TIMEOUT_MS = 10_000
POLL_S = 0.2


def share_of(key: str, shares: int) -> int:
    """The share a piece of work belongs to (stable across processes)."""
    return zlib.crc32(key.encode()) % shares


class Leases:
    def __init__(self, bootstrap: str, topic: str, group: str, member: str) -> None:
        self.topic = topic
        self.member = member
        self.stale_s = SESSION_TIMEOUT_MS / 1000 / 3
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": member,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        self._held: set[int] = set()
        self._shares = 0
        self._polled_at = 0.0
        self._lock = threading.Lock()
        self._thread = BackgroundThread(f"leases-{member}", self._loop)

    def start(self) -> Leases:
        md = self._consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        self._shares = len(md.partitions)
        if not self._shares:
            raise RuntimeError(f"topic {self.topic} is missing (skillstream up creates it)")
        self._consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked)
        self._thread.start()
        return self

    @property
    def shares(self) -> int:
        return self._shares

    def holds(self, share: int) -> bool:
        with self._lock:
            fresh = time.monotonic() - self._polled_at < self.stale_s
            return fresh and share in self._held

    def holds_key(self, key: str) -> bool:
        return self.holds(share_of(key, self._shares))

    def held(self) -> set[int]:
        with self._lock:
            return set(self._held)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Leave the group now, so another runner takes the shares at once."""
        self._thread.stop(10)

    def _loop(self) -> None:
        try:
            while not self._thread.stopping.is_set():
                self._consumer.poll(POLL_S)  # runs the rebalance callbacks
                with self._lock:
                    self._polled_at = time.monotonic()
        finally:
            with self._lock:
                self._held.clear()
            self._consumer.close()

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._held |= {tp.partition for tp in partitions}
        log.info("%s holds job shares %s", self.member, sorted(self._held))

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._held -= {tp.partition for tp in partitions}
        log.info("%s gave up job shares %s", self.member, [tp.partition for tp in partitions])
