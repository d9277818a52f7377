"""The benchmark suite: every scenario against a baseline in the same run.

    python -m bench [--scale small|medium|full] [--only ingest,stream,...] [--out DIR]
    python -m bench --scale small --only import   (not in the default run)
    skillstream bench ...        make bench   (medium)

Each scenario runs in a fresh process (chdb serves one data path per
process, and one scenario's memory must not count against the next), on
the bench Kafka: ``KAFKA_BOOTSTRAP`` if set, else a local broker in
``.run/bench-kafka`` started (and stopped) for the run. Prints one table
(scenario, metric, ours, baseline, ratio = ours / baseline) and writes
``<out>/<date>-<scenario>.json`` per scenario with machine, date and command.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import RESULTS, SCALES, Context, Result, Scale, machine, now_iso

SCENARIOS = ("ingest", "stream", "scale", "freshness", "query", "export", "memory")
# run only when named (--only): longer than the smoke run affords
OPTIONAL = ("import",)
MODULES = {"import": "import_"}  # a scenario whose module name is not its own


def _scenario_process(name: str, scale: Scale, ctx: Context, out: Any) -> None:
    try:
        mod = importlib.import_module(f"bench.{MODULES.get(name, name)}")
        res: Result = mod.run(scale, ctx)
    except Exception as exc:
        traceback.print_exc()
        res = Result(name, error=f"{type(exc).__name__}: {exc}")
    out.put(res.to_json())


def run_scenario(name: str, scale: Scale, ctx: Context, timeout_s: float) -> dict:
    mpc = mp.get_context("spawn")
    q = mpc.Queue()
    proc = mpc.Process(target=_scenario_process, args=(name, scale, ctx, q))
    t0 = time.perf_counter()
    proc.start()
    try:
        res = q.get(timeout=timeout_s)
    except Exception:
        res = Result(name, error=f"no result within {timeout_s:.0f} s").to_json()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"


def table(results: list[dict]) -> str:
    head = ("scenario", "metric", "ours", "baseline", "ratio", "baseline is")
    lines = [head]
    for r in results:
        if r.get("error") or r.get("skipped"):
            lines.append((r["scenario"], "ERROR" if r.get("error") else "skipped", "-", "-", "-",
                          r.get("error") or r.get("skipped")))  # fmt: skip
            continue
        for row in r["rows"]:
            unit = f" {row['unit']}" if row["unit"] else ""
            arrow = "↑" if row["better"] == "higher" else "↓"
            lines.append((r["scenario"], f"{row['metric']} ({arrow})", _fmt(row["ours"]) + unit,
                          _fmt(row["baseline"]) + unit, _fmt(row["ratio"]),
                          row["baseline_name"]))  # fmt: skip
    widths = [max(len(str(ln[i])) for ln in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(ln, widths, strict=True)).rstrip() for ln in lines
    )


def _kafka() -> tuple[str, Any]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        return env, None
    from core.settings import PROJECT_ROOT, Settings
    from ops.kafka_launcher import KafkaCluster

    s = Settings()
    cluster = KafkaCluster.ensure(
        PROJECT_ROOT / ".run" / "bench-kafka",
        s.cache_dir,
        s.kafka_version,
        heap=s.kafka_heap,
        fresh=True,
    )
    return cluster.bootstrap, cluster


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=list(SCALES), default="medium")
    ap.add_argument("--only", default=",".join(SCENARIOS),
                    help=f"comma-separated scenarios (also: {', '.join(OPTIONAL)})")  # fmt: skip
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the JSON results go")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, state)")
    ap.add_argument("--events", type=int, help="stream: events to pre-load (overrides the scale)")
    ap.add_argument("--rates", help="freshness: comma-separated ev/s (overrides the scale)")
    ap.add_argument("--seconds", type=float, help="freshness: seconds per rate")
    ap.add_argument("--no-peer", action="store_true", help="stream: skip the Quix Streams peer")
    ap.add_argument(
        "--pathway",
        action=argparse.BooleanOptionalAction,
        help="stream: run the Pathway peer (default: at medium and full; its venv is set up on "
        "first use, about 1.5 GB)",
    )
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS) - set(OPTIONAL)
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    info = machine()
    bootstrap, cluster = _kafka()
    workdir = Path(tempfile.mkdtemp(prefix="skillstream-bench-"))
    ctx = Context(bootstrap, workdir)
    timeout = {"small": 300, "medium": 3600, "full": 6 * 3600}[args.scale]
    scale = SCALES[args.scale]
    overrides: dict[str, Any] = {"stream_peer": not args.no_peer}
    if args.pathway is not None:
        overrides["pathway_peer"] = args.pathway
    if args.events:
        overrides["stream_events"] = args.events
    if args.rates:
        overrides["fresh_rates"] = tuple(int(r) for r in args.rates.split(","))
    if args.seconds:
        overrides["fresh_seconds"] = args.seconds
    scale = dataclasses.replace(scale, **overrides)
    results = []
    try:
        for name in names:
            print(f"[bench] {name} ({args.scale}) …", file=sys.stderr, flush=True)
            res = run_scenario(name, scale, ctx, timeout)
            res.update(scale=args.scale, date=now_iso(), command=command, machine=info)
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{res['date'][:10]}-{name}.json"
            path.write_text(json.dumps(res, indent=2, default=str) + "\n")
            print(f"[bench] {name}: {res['wall_s']} s → {path}", file=sys.stderr, flush=True)
            results.append(res)
    finally:
        if cluster is not None and cluster.started_here:
            cluster.stop()
        if args.keep:
            print(f"[bench] scratch kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{info['cores']} cores, {info['ram_gb']} GB RAM, Python {info['python']}; "
          f"{now_iso()}; {command}")  # fmt: skip
    print(table(results))
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
