"""Export: a 1M-row CSV, time and peak RSS (once exports exist in ``api/``)."""

from __future__ import annotations

from bench.common import Context, Result, Scale
from ops.settings import PROJECT_ROOT


def run(scale: Scale, ctx: Context) -> Result:
    if not (PROJECT_ROOT / "api" / "exports").exists():
        return Result("export", skipped="exports not implemented yet (api/exports missing)")
    return Result("export", skipped="exports exist now: this scenario is still to be written")
