"""The engagement score: one documented formula, weights and caps in one place.

score(learner, day D) = ⌊100 × Σ_c weight_c × min(1, total_c / cap_c) + ½⌋  (half up)

where total_c sums component c over the trailing window D-13 … D (14 days).
A learner who does at least ``cap_c`` of every component in two weeks scores
100; nothing scores 0. At-risk: score < AT_RISK_BELOW, or no activity for
INACTIVE_DAYS days or more (see docs/streams.md for a worked example).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

WINDOW_DAYS = 14

# component: (weight, cap over the window). Weights sum to 1.
COMPONENTS: dict[str, tuple[float, int]] = {
    "sign_ins": (0.20, 8),  # about 4 sign-ins a week
    "live_sessions": (0.25, 2),  # the weekly live session
    "phase_advances": (0.15, 1),  # one phase step per fortnight
    "submissions": (0.25, 4),  # two assignments a week
    "lessons_completed": (0.15, 6),  # three lessons a week
}
AT_RISK_BELOW = 40
INACTIVE_DAYS = 7

assert abs(sum(w for w, _ in COMPONENTS.values()) - 1.0) < 1e-9


@dataclass(frozen=True)
class Score:
    score: int
    at_risk: bool
    days_inactive: int
    totals: dict[str, int]


def compute(days: Mapping[int, Mapping[str, int]], day: int) -> Score:
    """Score for ``day`` (a date ordinal) from per-day component counts.

    ``days`` maps a date ordinal to that day's counts; days outside the
    trailing window are ignored, missing days count as zero.
    """
    totals = {c: 0 for c in COMPONENTS}
    last_active: int | None = None
    for d, counts in days.items():
        if d > day:
            continue
        if d > day - WINDOW_DAYS:
            for c in COMPONENTS:
                totals[c] += int(counts.get(c, 0))
        if counts.get("events", 0) > 0 and (last_active is None or d > last_active):
            last_active = d
    raw = sum(w * min(1.0, totals[c] / cap) for c, (w, cap) in COMPONENTS.items())
    score = math.floor(100 * raw + 0.5 + 1e-9)  # half up; the epsilon absorbs float noise
    days_inactive = day - last_active if last_active is not None else WINDOW_DAYS
    at_risk = score < AT_RISK_BELOW or days_inactive >= INACTIVE_DAYS
    return Score(score, at_risk, days_inactive, totals)
