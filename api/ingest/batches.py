"""Raw records are batches: a request's accepted events, grouped by the
partition their ``tenant:learner`` key goes to, one Kafka record per group
(Snowplow's collector payload, Kafka's own batching on the wire). Dedupe,
identity and per-learner order keep their partition; the worker explodes a
record into its events again (docs/ingestion.md, "The Kafka record").

A group is split below the broker's message size limit, in halves, so
each part is still encoded in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka.partitioner import murmur2

# Below Kafka's default max.message.bytes (1 MiB) with room for the
# record's framing and headers.
MAX_RECORD_BYTES = 900_000


def partition_for(key: bytes, partitions: int) -> int:
    """Java's partitioner (murmur2 of the key, positive, modulo the count),
    as the producers here use (librdkafka's murmur2_random): an event's
    batch goes where its own record would have gone."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Group:
    partition: int
    indexes: list[int]  # positions in the request's accepted events, in order
    value: bytes


def group_by_partition(keys: Sequence[bytes], partitions: int) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(partition_for(key, partitions), []).append(i)
    return groups


def encode_groups(
    records: Sequence[dict],
    keys: Sequence[bytes],
    partitions: int,
    encode_batch: Callable[[list[dict]], list[bytes]],
    max_bytes: int = MAX_RECORD_BYTES,
) -> list[Group]:
    out: list[Group] = []
    for partition, indexes in group_by_partition(keys, partitions).items():
        out.extend(_encoded(records, partition, indexes, encode_batch, max_bytes))
    return out


def _encoded(
    records: Sequence[dict],
    partition: int,
    indexes: list[int],
    encode_batch: Callable[[list[dict]], list[bytes]],
    max_bytes: int,
) -> list[Group]:
    values = encode_batch([records[i] for i in indexes])
    if len(values) != 1:  # a codec that writes one record per event
        return [Group(partition, [i], v) for i, v in zip(indexes, values, strict=True)]
    if len(values[0]) <= max_bytes or len(indexes) == 1:
        return [Group(partition, indexes, values[0])]
    half = len(indexes) // 2
    return [
        *_encoded(records, partition, indexes[:half], encode_batch, max_bytes),
        *_encoded(records, partition, indexes[half:], encode_batch, max_bytes),
    ]
