"""Each migration run twice in a row, as a crash between its statements and
its record in ``schema_migrations`` would have it, on a fresh store with a
few rows for the back-fills to read. Run in its own process (chdb opens one
data path per process): ``python -m tests.support.migration_rerun PATH``
prints the versions re-run, one JSON list.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from sinks.migrations import migrate, migration_files, statements
from sinks.store import EmbeddedStore
from tests.support import migration_check


def main(path: str) -> list[int]:
    store = EmbeddedStore(Path(path))
    rerun = []
    for version, _, file in migration_files():
        migrate(store, upto=version)
        if version == 7:  # the sink's tables exist: give the back-fills rows
            rng = random.Random(1)
            migration_check.insert(store, migration_check.rows(rng, datetime.now(UTC).date(), 5, 1))
            store.insert("events", migration_check.events(rng, 5, "a"))
        for stmt in statements(file.read_text()):
            store.command(stmt)
        rerun.append(version)
    assert migrate(store) == []
    store.close()
    return rerun


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
