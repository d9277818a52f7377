"""The Faust floor: one Faust agent that only decodes each raw record.

No tables, no sends, Faust's own acking and commits: what faust-streaming's
per-event machinery (fetch, conductor, channel queues, the stream's
iteration, acks) costs on this machine before any of our steps runs. A
worker process is built on the same machinery (issue 15 keeps Faust's
agents and tables), so this rate bounds one worker process's.

    python -m bench.peers.faust_floor --bootstrap B --topic T --partitions P \
        --state-dir DIR --expect N --result FILE [--timeout S]

A record is a batch of events, as the front door writes them: one
``decode_many`` per record, and N counts events.

Writes one JSON object to FILE (Faust takes over stdout): when the first
record and the N-th event were decoded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import faust
from mode import Worker

from schemas.codec import SingleObjectCodec


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        f"faust-floor-{time.time_ns()}",
        broker=f"kafka://{args.bootstrap}",
        datadir=args.state_dir,
        web_enabled=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    codec = SingleObjectCodec()
    started = time.time()
    result = {"started_at": started, "first_at": None, "done_at": None, "events": 0}

    def finish() -> None:
        with open(args.result, "w") as f:
            json.dump(result, f)
        os._exit(0)  # the measurement is over: no graceful shutdown to wait for

    @app.agent(topic)
    async def floor(stream: faust.StreamT) -> None:
        async for value in stream:
            result["events"] += len(codec.decode_many(value))
            if result["first_at"] is None:
                result["first_at"] = time.time()
            if result["events"] >= args.expect:
                result["done_at"] = time.time()
                finish()

    @app.timer(interval=1.0)
    async def deadline() -> None:
        if time.time() - started > args.timeout:
            finish()

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--expect", type=int, required=True, help="events to decode")
    ap.add_argument("--result", required=True, help="where the JSON result goes")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    Worker(build(args), quiet=True, loglevel="warning").execute_from_commandline()
    return 1  # finish() exits the process


if __name__ == "__main__":
    sys.exit(main())
