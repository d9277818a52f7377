"""Alert rules, the Prometheus config and the Grafana dashboards, checked by
the real `promtool` (Debian's prometheus package; `.ci/run` installs it):
every rule fires on its unit test's series and stays quiet on the others,
every panel's PromQL parses, and every metric a panel or rule names is one
our processes export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import PROJECT_ROOT

PROM = PROJECT_ROOT / "ops" / "prometheus"
GRAFANA = PROJECT_ROOT / "ops" / "grafana"
METRIC = re.compile(r"\b(skillstream_[a-z0-9_]+)")


def _promtool(*args: str, cwd: Path = PROM) -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool missing: apt-get install prometheus (.ci/run does it)")
    out = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.stack
def test_prometheus_config_and_rules_are_valid():
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


@pytest.mark.stack
def test_every_alert_rule_passes_its_unit_test():
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tested = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    covered = {a["alertname"] for t in tested for a in t["alert_rule_test"]}
    fired = {a["alertname"] for t in tested for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert alerts == covered == fired, alerts ^ fired


def _panel_exprs() -> list[str]:
    exprs = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [t["expr"] for t in panel["targets"]]
    return exprs


@pytest.mark.stack
def test_every_dashboard_panel_parses(tmp_path):
    exprs = _panel_exprs()
    assert len(exprs) >= 12
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:expr_{i}", "expr": e} for i, e in enumerate(exprs)
    ]}]}  # fmt: skip
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(exprs)} rules found" in _promtool(
        "check", "rules", "panels.yml", cwd=tmp_path
    )


def _exported() -> set[str]:
    """Every sample name the API process and the worker can export."""
    from prometheus_client import REGISTRY

    import api.app  # noqa: F401 (routes, sink, lag monitor)
    import streams.worker  # noqa: F401 (steps, ordering, state checks, commit timing)

    return {s.name for m in REGISTRY.collect() for s in m.samples} | {
        m.name for m in REGISTRY.collect()
    }


def test_dashboards_and_alerts_name_only_exported_metrics():
    exported = _exported()
    used = set(METRIC.findall(" ".join(_panel_exprs())))
    used |= set(METRIC.findall((PROM / "alerts.yml").read_text()))
    # a labelled metric has no series until it is used; its family is registered
    families = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in used}
    missing = {n for n in families if n not in exported}
    assert not missing, missing


def test_compose_serves_dashboards_and_scrapes_every_process():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    grafana = compose["grafana"]["volumes"]
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./ops/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/skillstream.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}  # fmt: skip
    port = compose["worker"]["environment"]["WORKER_METRICS_PORT"]
    assert {"api:8000", f"worker:{port}"} <= targets
