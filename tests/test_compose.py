"""docker-compose.yml: valid against the Compose specification, and complete.

No Docker engine runs here, so the file is checked by reading: the Compose
spec's JSON schema (vendored by check-jsonschema) plus what our code needs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import yaml

from core.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    # Locate the vendored schema without importing the package (its CLI code
    # wants a newer click than Faust allows).
    spec = importlib.util.find_spec("check_jsonschema")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    schema_file = pkg / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(_compose(), schema)


def test_every_expected_service_is_present():
    services = _compose()["services"]
    expected = {"kafka-1", "kafka-2", "kafka-3", "schema-registry", "clickhouse", "minio"}
    app = {"api", "sink", "jobs", "jobs-1", "worker", "worker-1"}
    assert expected | {"prometheus", "grafana"} | app <= set(services)


def test_app_services_get_the_settings_our_code_reads():
    services = _compose()["services"]
    aliases = {f.alias for f in Settings.model_fields.values() if f.alias}
    for name in ("api", "sink", "jobs", "jobs-1", "worker", "worker-1"):
        env = services[name]["environment"]
        for var in ("KAFKA_BOOTSTRAP", "CLICKHOUSE_URL", "SCHEMA_REGISTRY_URL", "S3_ENDPOINT"):
            assert var in env, f"{name} lacks {var}"
        skillstream_vars = {k for k in env if not k.startswith("AWS_")}
        assert skillstream_vars <= aliases, f"{name}: unknown {skillstream_vars - aliases}"
    # one key per purpose, for the API and the job runners (the worker and
    # the sink sign and open nothing)
    secrets = {"SKILLSTREAM_TOKEN_SECRET", "SKILLSTREAM_EXPORT_LINK_SECRET", "SKILLSTREAM_PII_KEYS",
               "SKILLSTREAM_WEBHOOK_KEYS", "SKILLSTREAM_SSO_KEYS"}  # fmt: skip
    for name in ("api", "jobs", "jobs-1"):
        assert secrets <= set(services[name]["environment"]), name
    for name in ("sink", "worker", "worker-1"):
        assert not secrets & set(services[name]["environment"]), name
    # the API leaves the sink and the jobs to their own services
    assert services["api"]["environment"]["API_RUNS_SINK"] == "false"
    assert services["api"]["environment"]["API_RUNS_JOBS"] == "false"
    assert services["sink"]["command"] == ["skillstream", "sink"]
    assert services["jobs"]["command"] == services["jobs-1"]["command"] == ["skillstream", "jobs"]
    brokers = "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert services["api"]["environment"]["KAFKA_BOOTSTRAP"] == brokers
    assert "clickhouse:8123" in services["api"]["environment"]["CLICKHOUSE_URL"]
    assert services["api"]["command"][-1] == "api.main"
    assert services["worker"]["command"] == ["skillstream", "worker"]


def test_three_brokers_and_workers_that_share_nothing():
    services = _compose()["services"]
    nodes = [services[f"kafka-{i}"]["environment"] for i in (1, 2, 3)]
    assert sorted(int(n["KAFKA_NODE_ID"]) for n in nodes) == [1, 2, 3]
    assert all(n["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3 for n in nodes)
    assert all(int(n["KAFKA_MIN_INSYNC_REPLICAS"]) == 2 for n in nodes)
    workers = [services[w] for w in ("worker", "worker-1")]
    assert len({w["environment"]["WORKER_ID"] for w in workers}) == 2
    assert len({w["volumes"][0].split(":")[0] for w in workers}) == 2


def test_prometheus_scrapes_the_api():
    prom = yaml.safe_load((PROJECT_ROOT / "ops/prometheus/prometheus.yml").read_text())
    targets = [
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert "api:8000" in targets
