"""Produce with confluent-kafka, consume with a Faust agent, on the real broker."""

from __future__ import annotations

import asyncio
import json
import time

import faust
from confluent_kafka import Producer


def test_confluent_producer_to_faust_agent(kafka_bootstrap, make_topic, tmp_path, unique):
    topic_name = make_topic("roundtrip")
    sent = [{"i": i, "id": f"{unique}-{i}"} for i in range(50)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for ev in sent:
        producer.produce(topic_name, key=ev["id"].encode(), value=json.dumps(ev).encode())
    assert producer.flush(15) == 0

    app = faust.App(
        f"roundtrip-{unique}",
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        datadir=str(tmp_path / "faust"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    received: list[dict] = []

    @app.agent(app.topic(topic_name, value_serializer="json"))
    async def collect(stream):
        async for value in stream:
            received.append(value)

    async def run() -> None:
        await app.start()
        deadline = time.monotonic() + 60
        try:
            while len(received) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            await app.stop()

    asyncio.run(run())
    assert sorted(received, key=lambda e: e["i"]) == sent


def test_rocksdb_table_state_uses_rocksdict(kafka_bootstrap, tmp_path, unique):
    """Faust's RocksDB store runs on rocksdict (no python-rocksdb build needed)."""
    from faust.stores import rocksdb

    assert rocksdb.USE_ROCKSDICT
