"""Scale-out: events/s to queryable with 1, 2 and 3 workers in one group.

The stream scenario's run (pre-loaded raw events with duplicates, late and
anonymous-then-identified visitors; the sink in this process; stop when
``learner_daily`` holds every counted event), once per worker count, each
on its own topics, one after the other. The baseline is one worker in the
same run. On a 2-core machine more processes mostly share the same cores:
the ratio says what a second host would have to beat, and where the time
goes is in the details (start-up to first row, then the rate after it).
"""

from __future__ import annotations

from bench.common import Context, Result, Row, Scale, fresh_settings
from bench.events import expected_counted, generate, preload
from bench.stream import run_ours


def run(scale: Scale, ctx: Context) -> Result:
    events = generate(scale.stream_events)
    expect, n = expected_counted(events), len(events)
    runs: dict[int, dict] = {}
    for workers in scale.scale_workers:
        settings = fresh_settings(ctx, f"sc{workers}")
        preload(ctx.bootstrap, settings.topic("events.raw"), events)
        runs[workers] = run_ours(settings, expect, scale.stream_timeout_s, workers=workers)

    def rate(res: dict, after_start: bool = False) -> float | None:
        sec = res["seconds"]
        if sec and after_start and res["first_row_s"]:
            sec -= res["first_row_s"]
        return round(n / sec, 1) if sec else None

    one = runs[scale.scale_workers[0]]
    rows = [
        Row(f"events/s to queryable, {w} worker{'s' if w > 1 else ''}", rate(res), rate(one),
            "ev/s", "higher", "1 worker, same run")
        for w, res in runs.items()
    ]  # fmt: skip
    rows += [
        Row(f"peak RSS, {w} worker{'s' if w > 1 else ''} (sum)", res["peak_rss_mb"],
            one["peak_rss_mb"], "MB", "lower", "1 worker, same run")
        for w, res in runs.items()
        if w > 1
    ]  # fmt: skip
    totals = {w: {k: int(v) for k, v in r["totals"].items()} for w, r in runs.items()}
    return Result(
        "scale",
        rows=rows,
        details={
            "events": n,
            "expected_counted": expect,
            "runs": {
                w: {**r, "after_first_row_ev_s": rate(r, after_start=True)} for w, r in runs.items()
            },
            "totals_match": len({tuple(sorted(t.items())) for t in totals.values()}) == 1,
            "complete": all(r["seconds"] is not None for r in runs.values()),
        },
    )
