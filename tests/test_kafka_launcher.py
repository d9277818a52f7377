"""The local Kafka launcher: a 3-node KRaft cluster, node stop/restart, errors."""

from __future__ import annotations

import pytest

from ops import kafka_launcher
from ops.kafka_launcher import KafkaCluster, KafkaLauncherError, metadata_ok
from ops.settings import Settings


def test_three_node_cluster_survives_one_node_down(tmp_path):
    s = Settings()
    cluster = KafkaCluster.ensure(
        tmp_path / "kafka3", s.cache_dir, s.kafka_version, size=3, heap="256m"
    )
    try:
        assert len(cluster.bootstrap.split(",")) == 3
        assert metadata_ok(cluster.bootstrap, expected_brokers=3)
        # re-use: a second ensure returns the running cluster, starts nothing
        again = KafkaCluster.ensure(tmp_path / "kafka3", s.cache_dir, s.kafka_version, size=3)
        assert [n.pid for n in again.nodes] == [n.pid for n in cluster.nodes]
        assert not again.started_here
        cluster.stop_node(3, hard=True)
        assert metadata_ok(cluster.bootstrap, expected_brokers=2)
        cluster.restart_node(3)
        assert metadata_ok(cluster.bootstrap, expected_brokers=3)
    finally:
        cluster.stop()
    assert not cluster.is_running()


def test_missing_maven_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(kafka_launcher.shutil, "which", lambda tool: None)
    with pytest.raises(KafkaLauncherError, match="`mvn` not found"):
        kafka_launcher.fetch_jars(tmp_path / "empty-cache", "4.1.0")
