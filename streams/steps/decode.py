"""decode: Avro bytes → envelope record (single-object or registry framing)."""

from __future__ import annotations

from schemas.codec import Codec
from streams.pipeline import Item, Step


def decode_step(codec: Codec) -> Step:
    async def run(item: Item) -> Item:
        item.record = codec.decode(item.value)  # DecodeError → dead letter
        return item

    return Step("decode", run)
