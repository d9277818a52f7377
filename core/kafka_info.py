"""What Kafka says of a set of topics: the cluster's id, each topic's id, and
each partition's end (high watermark). Local state (the worker's RocksDB,
the sink's stored offsets) is tied to these, so a recreated topic or a new
cluster is noticed instead of read with offsets that no longer mean the same
records."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential


@dataclass
class TopicsInfo:
    cluster_id: str = ""
    topic_ids: dict[str, str] = field(default_factory=dict)  # missing topics are absent
    ends: dict[tuple[str, int], int] = field(default_factory=dict)


def settling(exc: BaseException) -> bool:
    """A new topic's leader still being elected, a broker restarting: ask again."""
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0]
    return isinstance(err, KafkaError) and (
        err.retriable()
        or err.code()
        in (
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError._TIMED_OUT,
            KafkaError._TRANSPORT,
        )
    )


# Ask Kafka again while it elects leaders or a broker restarts (up to a minute).
while_settling = retry(
    retry=retry_if_exception(settling),
    wait=wait_exponential(multiplier=0.1, max=2),
    stop=stop_after_delay(60),
    reraise=True,
)


@while_settling
def describe_topics(bootstrap: str, topics: list[str], timeout: float = 10) -> TopicsInfo:
    from confluent_kafka import TopicCollection, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    cluster = admin.describe_cluster(request_timeout=timeout).result()
    out = TopicsInfo(cluster_id=cluster.cluster_id)
    wanted = {}
    described = admin.describe_topics(TopicCollection(topics), request_timeout=timeout)
    for name, fut in described.items():
        try:
            desc = fut.result()
        except Exception:  # UNKNOWN_TOPIC_OR_PART and kin: the topic is absent
            continue
        out.topic_ids[name] = str(desc.topic_id)
        for p in desc.partitions:
            wanted[TopicPartition(name, p.id)] = OffsetSpec.latest()
    if wanted:
        for tp, fut in admin.list_offsets(wanted, request_timeout=timeout).items():
            out.ends[(tp.topic, tp.partition)] = fut.result().offset
    return out


def metadata_ok(bootstrap: str, expected_brokers: int = 1, timeout: float = 3.0) -> bool:
    from confluent_kafka.admin import AdminClient

    # A plain TCP probe first: librdkafka would log every refused connection.
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        admin = AdminClient(
            {"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        )
        md = admin.list_topics(timeout=timeout)
        return len(md.brokers) >= expected_brokers
    except Exception:
        return False
