"""Demo telemetry: keeps the local dashboard alive (``skillstream up``)."""

from __future__ import annotations

import signal
import time


def main() -> None:
    # Filled in by the ingestion work: posts realistic batches to the API.
    signal.signal(signal.SIGTERM, lambda *_: exit(0))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
