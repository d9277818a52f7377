"""Times from API callers, checked before they reach the store.

ClickHouse's DateTime64 holds 1900-01-01 .. 2299-12-31; a year 233 or 9999
from a caller used to reach it and come back as a 500. A caller's time is
taken as UTC when it has no offset (never the server's local time) and must
lie in 1970 .. 2299; otherwise a ValueError names the field.
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, tzinfo=UTC)


def storable(field: str, value: datetime | None) -> datetime | None:
    """``value`` in UTC, or ValueError("<field>: ...") when it cannot be stored."""
    if value is None:
        return None
    try:
        utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError):  # an offset that pushes it past year 1 or 9999
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"{field}: must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} UTC")
    return utc
