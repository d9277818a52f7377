"""The local Kafka launcher: a 3-node KRaft cluster, node stop/restart, a full
stop and start that keeps its data, `reset`, errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer

from core.kafka_info import metadata_ok
from ops import kafka_launcher
from ops.kafka_launcher import KafkaCluster, KafkaLauncherError
from tests.support.kafka import read_all
from tests.support.stack import cli


def _cli(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI on a run dir with a Kafka of its own (not the session's)."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update(SKILLSTREAM_RUN_DIR=str(run_dir), KAFKA_HEAP="256m")
    return cli(env, *args, timeout=180)


def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "log_level": 0})
    for i in range(n):
        p.produce(topic, f"record-{i}".encode())
    assert p.flush(30) == 0


@pytest.mark.kafka
@pytest.mark.stack
def test_three_node_cluster_survives_one_node_down_and_a_full_stop(tmp_path):
    run_dir = tmp_path / "run"
    started = _cli(run_dir, "kafka", "start", "--brokers", "3")
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip().splitlines()[-1]
    cluster = KafkaCluster.load(run_dir / "kafka")
    try:
        assert cluster is not None and cluster.bootstrap == bootstrap
        assert metadata_ok(bootstrap, expected_brokers=3)
        _produce(bootstrap, "kept", 60)
        # re-use: a second start returns the running cluster, starts nothing
        again = _cli(run_dir, "kafka", "start")
        assert again.stdout.strip() == bootstrap
        assert [n.pid for n in KafkaCluster.load(run_dir / "kafka").nodes] == [
            n.pid for n in cluster.nodes
        ]
        cluster.stop_node(3, hard=True)
        assert metadata_ok(bootstrap, expected_brokers=2)
        cluster.restart_node(3)
        assert metadata_ok(bootstrap, expected_brokers=3)

        # a full stop keeps the cluster: same id, same ports, every record
        assert _cli(run_dir, "kafka", "stop").returncode == 0
        assert _cli(run_dir, "kafka", "status").stdout.strip() == "not running"
        restarted = _cli(run_dir, "kafka", "start")
        assert restarted.stdout.strip() == bootstrap, restarted.stderr
        back = KafkaCluster.load(run_dir / "kafka")
        assert back.cluster_id == cluster.cluster_id and len(back.nodes) == 3
        assert len(read_all(bootstrap, "kept", expect=60)) == 60
        # its size is the cluster's own
        wrong = _cli(run_dir, "kafka", "start", "--brokers", "1")
        assert wrong.returncode == 1 and "holds a 3-node cluster" in wrong.stderr
    finally:
        _cli(run_dir, "kafka", "stop")
    assert not KafkaCluster.load(run_dir / "kafka").any_running()

    # only an explicit reset wipes: first it says what would go
    dry = _cli(run_dir, "reset")
    assert dry.returncode == 2 and "would remove" in dry.stdout and "pass --yes" in dry.stdout
    assert (run_dir / "kafka" / "cluster.json").exists()
    wiped = _cli(run_dir, "reset", "--yes")
    assert wiped.returncode == 0, wiped.stdout + wiped.stderr
    assert "removing" in wiped.stdout and f"reset {run_dir}" in wiped.stdout
    assert not any(run_dir.iterdir())


def test_missing_maven_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(kafka_launcher.shutil, "which", lambda tool: None)
    with pytest.raises(KafkaLauncherError, match="`mvn` not found"):
        kafka_launcher.fetch_jars(tmp_path / "empty-cache", "4.1.0")
