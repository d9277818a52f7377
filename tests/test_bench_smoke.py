"""The benchmark harness end to end at --scale small (a smoke test, not a
speed limit): every scenario runs against its baseline and writes a JSON
result with ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT

pytestmark = pytest.mark.stack

SCENARIOS = ("ingest", "stream", "scale", "freshness", "query", "export", "memory")


@pytest.mark.timeout(450)
def test_bench_small_writes_ratios(kafka_bootstrap: str, tmp_path: Path) -> None:
    pytest.importorskip("quixstreams", reason="the bench extra is not installed")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--scale", "small", "--out", str(out)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=420,  # a loaded shared machine stretches the ~100 s small run
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "ratio" in proc.stdout  # the table
    results = {
        json.loads(p.read_text())["scenario"]: json.loads(p.read_text()) for p in out.glob("*.json")
    }
    assert set(results) == set(SCENARIOS)
    for name in SCENARIOS:
        res = results[name]
        assert res["error"] is None and res["rows"], res
        assert res["machine"]["cores"] and res["scale"] == "small" and res["command"]
        # every row has its baseline's ratio, or (no baseline) names its goal
        assert all(
            row["ratio"] is not None or "goal" in row["baseline_name"] for row in res["rows"]
        ), res["rows"]
    export = results["export"]["details"]
    assert export["csv"]["result"]["rows"] == export["baseline_python_csv"]["result"]["rows"] > 0
    assert export["pdf"]["result"]["rows"] > 0
    stream = results["stream"]["details"]
    assert stream["complete"] and stream["learner_daily_totals_match"]
    assert stream["faust_floor"]["seconds"]  # the Faust agent decoded every record
    scale = results["scale"]["details"]
    assert scale["complete"] and scale["totals_match"]
