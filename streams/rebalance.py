"""What the worker keeps and forgets when the group's partitions move."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP

from streams.faust.checkpoint import Checkpoint
from streams.faust.ordering import InOrder


def follow_rebalances(app: faust.App, in_order: InOrder, checkpoint: Checkpoint) -> None:
    """A partition this worker keeps keeps everything pending for it (state,
    held rows, the offset expected next: they agree with each other); one
    it lost forgets all of it, since its next owner processes again what
    was not committed. Faust revokes everything at each rebalance, so
    "lost" is known only once the new assignment is."""
    revoked: set[TP] = set()

    async def on_revoked(sender: Any, tps: set[TP], **kwargs: Any) -> None:
        revoked.update(tps)

    async def on_assigned(sender: Any, tps: set[TP], **kwargs: Any) -> None:
        lost = revoked - tps
        revoked.clear()
        in_order.forget(lost)
        kept = {tp.partition for tp in tps}
        checkpoint.drop_partitions({tp.partition for tp in lost} - kept)

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)
