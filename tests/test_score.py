"""The engagement score formula on hand-computed cases."""

from __future__ import annotations

from datetime import date

from streams.score import AT_RISK_BELOW, COMPONENTS, INACTIVE_DAYS, WINDOW_DAYS, compute

D = date(2026, 11, 20).toordinal()


def test_weights_sum_to_one_and_window_is_two_weeks():
    assert round(sum(w for w, _ in COMPONENTS.values()), 9) == 1
    assert WINDOW_DAYS == 14 and AT_RISK_BELOW == 40 and INACTIVE_DAYS == 7


def test_readme_worked_example_scores_76():
    # 6 sign-ins, 1 live session, 1 phase advance, 3 submissions, 9 lessons in the window:
    # .20*6/8 + .25*1/2 + .15*1 + .25*3/4 + .15*min(1, 9/6) = .7625 -> 76
    days = {
        D - 10: {"sign_ins": 3, "lessons_completed": 5, "submissions": 1, "events": 9},
        D - 3: {"sign_ins": 2, "live_sessions": 1, "submissions": 2, "events": 5},
        D: {"sign_ins": 1, "phase_advances": 1, "lessons_completed": 4, "events": 6},
    }
    s = compute(days, D)
    assert s.score == 76 and not s.at_risk and s.days_inactive == 0
    assert s.totals == {
        "sign_ins": 6, "live_sessions": 1, "phase_advances": 1, "submissions": 3,
        "lessons_completed": 9,
    }  # fmt: skip


def test_caps_make_100_the_ceiling():
    busy = {"sign_ins": 50, "live_sessions": 9, "phase_advances": 4, "submissions": 20,
            "lessons_completed": 40, "events": 123}  # fmt: skip
    assert compute({D: busy}, D).score == 100


def test_nothing_scores_zero_and_is_at_risk():
    s = compute({}, D)
    assert s.score == 0 and s.at_risk


def test_days_outside_the_window_and_future_days_do_not_count():
    days = {
        D - WINDOW_DAYS: {"sign_ins": 8, "events": 8},  # one day too old
        D + 1: {"submissions": 4, "events": 4},  # tomorrow
        D - 1: {"submissions": 2, "events": 2},
    }
    s = compute(days, D)
    assert s.totals["sign_ins"] == 0 and s.totals["submissions"] == 2
    assert s.score == 13  # .25 * 2/4 = 12.5 points, rounded half up


def test_rounding_is_half_up():
    assert compute({D: {"submissions": 2, "events": 2}}, D).score == 13  # 12.5
    assert compute({D: {"sign_ins": 1, "events": 1}}, D).score == 3  # 2.5


def test_inactive_for_seven_days_is_at_risk_even_with_a_good_score():
    days = {D - 8: {"sign_ins": 8, "live_sessions": 2, "phase_advances": 1, "submissions": 4,
                    "lessons_completed": 6, "events": 21}}  # fmt: skip
    s = compute(days, D)
    assert s.score == 100 and s.days_inactive == 8 and s.at_risk


def test_low_score_is_at_risk_even_when_active_today():
    s = compute({D: {"sign_ins": 1, "events": 1}}, D)  # .20 * 1/8 = 2.5 -> 3
    assert s.score == 3 and s.days_inactive == 0 and s.at_risk
