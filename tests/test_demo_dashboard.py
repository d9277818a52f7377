"""A newcomer's first minute: the real `skillstream up` (demo) with its own
run directory and local Kafka, the dashboard opened in Debian's Chromium
as soon as the URL is printed. While the demo's history loads the page
says so; within 30 s the tiles show weekly active learners and the chart
has a point for each of the 8 weeks. The screenshot is the README's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.support.stack import Stack
from tests.test_dashboard import ARGS, CHROMIUM

pytestmark = [pytest.mark.timeout(240), pytest.mark.kafka, pytest.mark.stack, pytest.mark.browser]
FIRST_LOOK_S = 30.0
LOADING = re.compile(r"^loading demo history: (starting|\d+ of \d+ days)$")


@pytest.fixture
def page(tmp_path: Path) -> Iterator:
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does it)")
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        yield ctx.new_page()
        ctx.close()


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # its own local Kafka, with the heap `make up` gives it
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "KAFKA_HEAP")}
    env["SKILLSTREAM_RUN_DIR"] = str(tmp_path / "run")
    yield env
    subprocess.run(
        [sys.executable, "-m", "ops.cli", "kafka", "stop"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=120,
    )


def _look(page) -> dict:
    """What the page shows now."""
    return page.evaluate(
        """() => {
          const q = (s) => document.querySelector(s);
          const shown = (s) => !!q(s) && !q(s).hidden;
          const wau = q("#tile-weekly_active_learners .value");
          return {loading: shown("#loading") ? q("#loading-text").textContent : null,
                  main: shown("#main"), wau: wau ? wau.textContent : null,
                  points: Number((q("#chart") || {dataset: {}}).dataset.points || 0)};
        }"""
    )


def _first_look(page, url: str, t0: float, shot: Path) -> list[tuple[float, dict]]:
    """The page from the URL on, sampled until it shows the product; ``shot``:
    the first "N of M days" seen."""
    page.goto(url)
    seen: list[tuple[float, dict]] = []
    while time.monotonic() - t0 < FIRST_LOOK_S + 5:
        now = _look(page)
        if " of " in (now["loading"] or "") and not shot.exists():
            page.screenshot(path=str(shot))
        seen.append((time.monotonic() - t0, now))
        if now["main"] and now["wau"] not in (None, "0", "–") and now["points"] == 8:
            break
        page.wait_for_timeout(250)
    return seen


def _signs_in_through_the_demo_provider(page, url: str) -> None:
    """The same sign-in a company gets: the demo company's provider's own
    page, a person picked there, the dashboard as that person."""
    page.click("#demo-signin a", timeout=10000)
    page.click("#as-morgan", timeout=10000)  # Morgan Manager, on the provider's page
    page.wait_for_selector("#signout:not([hidden])", timeout=20000)
    assert page.url.startswith(url)
    page.wait_for_function(
        "document.querySelector('#whoami').textContent.startsWith('manager')", timeout=20000
    )
    assert page.inner_text("#whoami").startswith("manager · demo-acme-mgr-000")


def test_first_look_within_30_seconds_of_up(page, run_env, tmp_path, artifacts):
    stack = Stack(run_env, tmp_path / "up.stderr", demo=True)
    url = stack.url
    t0 = time.monotonic()
    try:
        shot = artifacts / "dashboard-demo-loading.png"
        shot.unlink(missing_ok=True)
        seen = _first_look(page, url, t0, shot)
        at, last = seen[-1]
        print(f"dashboard alive {at:.1f}s after `up` printed its URL")
        assert last["main"] and last["points"] == 8, (at, last)
        assert last["wau"] not in ("0", "–") and at <= FIRST_LOOK_S, (at, last)
        loading = [s["loading"] for _, s in seen if s["loading"]]
        assert loading and all(LOADING.match(text) for text in loading), loading
        # no zeros as if they were data: the tiles appear only with the history
        shown = [(round(t, 1), s) for t, s in seen if s["main"]]
        assert all(s["wau"] not in ("0", "–") for _, s in shown), shown
        # the page says it is a demo, where anyone on the machine may view as any role
        assert "Demo mode" in page.locator("#demo-banner").inner_text()
        assert page.locator("#demo-banner").is_visible()
        page.screenshot(path=str(artifacts / "dashboard-demo.png"))
        _signs_in_through_the_demo_provider(page, url)
    finally:
        code = stack.stop()  # Ctrl-C, to the whole group
    assert code == 0
    # history at full speed is no stall: the worker's watchdog left it alone
    worker_log = Path(run_env["SKILLSTREAM_RUN_DIR"], "logs", "worker.log").read_text()
    assert "rewinding" not in worker_log
