"""Records that fail after acceptance go to the dead-letter topic, named by
step; `skillstream dlq list` shows them and `dlq replay` re-drives them once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from confluent_kafka import Producer

from api.ingest.validate import Bounds, validate_event
from core.settings import PROJECT_ROOT
from core.topics import ensure_topics
from ops import dlq
from schemas.codec import MAGIC, SingleObjectCodec
from schemas.examples import example_event
from streams.worker import build
from tests.support.kafka import read_all


def _valid_bytes(cid: str) -> bytes:
    rec, errs = validate_event(
        example_event("lesson_completed", client_event_id=cid),
        tenant_id="t_x",
        pii_salt="s",
        received_at=datetime.now(UTC),
        bounds=Bounds(300, 86400),
    )
    assert not errs
    return SingleObjectCodec().encode(rec)


def _run_worker_until(app, condition, timeout: float = 60) -> None:
    async def run() -> None:
        await app.start()
        deadline = time.monotonic() + timeout
        try:
            while not condition() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        finally:
            await app.stop()

    asyncio.run(run())


def test_undecodable_records_become_dead_letters_and_the_stream_goes_on(
    settings, kafka_bootstrap, unique
):
    ensure_topics(kafka_bootstrap, settings)
    raw, dead = settings.topic("events.raw"), settings.topic("events.dead_letter")
    # lz4 batches, as the API's producer sends them (the worker must read them)
    p = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": "lz4"})
    p.produce(raw, b"garbage", b"t_x:u1", headers=[("event_name", b"lesson_completed")])
    p.produce(raw, _valid_bytes(f"{unique}-ok"), b"t_x:u1")
    p.produce(raw, MAGIC + b"\x09" * 8 + b"\x00", b"t_x:u2", headers=[("tenant_id", b"t_x")])
    p.produce(raw, _valid_bytes(f"{unique}-ok2"), b"t_x:u3")
    assert p.flush(15) == 0

    app = build(settings, kafka_bootstrap, app_id=f"dlq-{unique}")
    letters: list = []

    def two_letters() -> bool:
        letters[:] = dlq.list_dead_letters(kafka_bootstrap, dead)
        return len(letters) >= 2

    _run_worker_until(app, two_letters)
    assert len(letters) == 2
    assert {d.h("dlq.step") for d in letters} == {"decode"}
    errors = sorted(d.h("dlq.error") for d in letters)
    assert "bad magic" in errors[0] and "unknown schema fingerprint" in errors[1]
    assert {d.value for d in letters} == {b"garbage", MAGIC + b"\x09" * 8 + b"\x00"}
    assert all(d.h("dlq.source_topic") == raw for d in letters)


@pytest.mark.stack
def test_dlq_cli_lists_and_replays_each_letter_once(settings, kafka_bootstrap, unique, tmp_path):
    ensure_topics(kafka_bootstrap, settings)
    raw, dead = settings.topic("events.raw"), settings.topic("events.dead_letter")
    value = _valid_bytes(f"{unique}-fixed")
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    p.produce(
        dead,
        value,
        b"t_x:u1",
        headers=[
            ("persona", b"student"),
            ("dlq.step", b"decode"),
            ("dlq.error", b"DecodeError: unknown schema fingerprint 0909"),
            ("dlq.source_topic", raw.encode()),
            ("dlq.failed_at", b"2026-11-22T00:00:00+00:00"),
        ],
    )
    assert p.flush(15) == 0
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TOPIC_PREFIX": settings.topic_prefix,
        "SKILLSTREAM_RUN_DIR": str(tmp_path / "run"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", "dlq", *args],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "decode" in listed.stdout and "unknown schema fingerprint" in listed.stdout
    assert cli("replay", "--dry-run").stdout.strip() == "would replay 1 dead letter(s)"
    assert cli("replay", "--step", "enrich").stdout.strip() == "replayed 0 dead letter(s)"
    assert cli("replay").stdout.strip() == "replayed 1 dead letter(s)"
    assert cli("replay").stdout.strip() == "replayed 0 dead letter(s)"  # once only
    back = read_all(kafka_bootstrap, raw, expect=1)
    assert [m.value() for m in back] == [value]
    assert dict(back[0].headers()) == {"persona": b"student"}  # dlq.* headers stripped
    assert SingleObjectCodec().decode(back[0].value())["client_event_id"] == f"{unique}-fixed"


def _letter_headers(step: str, source: str) -> list[tuple[str, bytes]]:
    return [
        ("dlq.step", step.encode()),
        ("dlq.error", f"{step} failed".encode()),
        ("dlq.source_topic", source.encode()),
    ]


def test_replay_of_one_step_leaves_other_steps_letters_replayable(
    settings, kafka_bootstrap, unique
):
    """Letters of two steps interleaved on one partition: replaying one step
    first must not mark the other's letters replayed (one group per step)."""
    ensure_topics(kafka_bootstrap, settings)
    raw, dead = settings.topic("events.raw"), settings.topic("events.dead_letter")
    steps = ["decode", "enrich", "decode", "enrich", "decode"]
    values = {i: _valid_bytes(f"{unique}-{i}") for i in range(len(steps))}
    p = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, step in enumerate(steps):  # one key: one partition, this order
        p.produce(dead, values[i], b"t_x:u1", headers=_letter_headers(step, raw))
    assert p.flush(15) == 0

    assert dlq.replay(kafka_bootstrap, dead, step="enrich") == 2
    assert dlq.replay(kafka_bootstrap, dead, step="enrich") == 0
    assert dlq.replay(kafka_bootstrap, dead, dry_run=True) == 3  # the decode letters wait
    assert dlq.replay(kafka_bootstrap, dead) == 3
    assert dlq.replay(kafka_bootstrap, dead) == 0
    assert dlq.replay(kafka_bootstrap, dead, step="decode") == 0

    back = read_all(kafka_bootstrap, raw, expect=len(steps))
    assert sorted(m.value() for m in back) == sorted(values.values())  # each exactly once
    # a new letter of an already replayed step is replayed on its own
    p.produce(
        dead, _valid_bytes(f"{unique}-late"), b"t_x:u1", headers=_letter_headers("enrich", raw)
    )
    assert p.flush(15) == 0
    assert dlq.replay(kafka_bootstrap, dead) == 1
