"""A real Apache Kafka (KRaft) on loopback, without Docker.

Steps, each a small function:
  1. ``fetch_jars``   – Maven resolves ``org.apache.kafka:kafka_2.13`` and its
     runtime dependencies into ``.cache/kafka/<version>/`` (git-ignored).
  2. ``KafkaCluster.start`` – writes one ``server.properties`` per node
     (combined broker+controller), formats storage with
     ``kafka.tools.StorageTool`` and starts ``kafka.Kafka`` JVMs.
  3. ``wait_ready`` – polls a metadata request until every broker answers.
  4. ``stop``       – SIGTERM, then SIGKILL after a timeout.

A cluster descriptor (``cluster.json``) in the data dir lets a second caller
re-use a broker that is already running instead of starting another one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ops.settings import PROJECT_ROOT

POM = PROJECT_ROOT / "ops" / "kafka" / "pom.xml"
LOG4J = PROJECT_ROOT / "ops" / "kafka" / "log4j2.yaml"


class KafkaLauncherError(RuntimeError):
    pass


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise KafkaLauncherError(f"`{tool}` not found on PATH. {hint}")
    return path


def fetch_jars(cache_dir: Path, version: str) -> Path:
    """Resolve Kafka's runtime classpath with Maven, once per version."""
    jar_dir = (cache_dir / "kafka" / version).resolve()
    marker = jar_dir / ".complete"
    if marker.exists():
        return jar_dir
    mvn = _require("mvn", "Install Maven (Debian: apt-get install maven) to fetch Kafka.")
    _require("java", "Install Java 17+ (Debian: apt-get install openjdk-17-jre-headless).")
    jar_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={jar_dir}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KafkaLauncherError(
            f"Maven could not resolve Kafka {version}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    marker.write_text(version)
    return jar_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie child still "exists"; treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def metadata_ok(bootstrap: str, expected_brokers: int = 1, timeout: float = 3.0) -> bool:
    from confluent_kafka.admin import AdminClient

    # A plain TCP probe first: librdkafka would log every refused connection.
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    try:
        admin = AdminClient(
            {"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        )
        md = admin.list_topics(timeout=timeout)
        return len(md.brokers) >= expected_brokers
    except Exception:
        return False


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    pid: int | None = None


@dataclass
class KafkaCluster:
    """N combined broker+controller nodes forming one KRaft cluster."""

    data_dir: Path
    version: str
    jar_dir: Path
    heap: str = "512m"
    nodes: list[Node] = field(default_factory=list)
    started_here: bool = False

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def descriptor(self) -> Path:
        return self.data_dir / "cluster.json"

    # -- lifecycle ----------------------------------------------------------
    @classmethod
    def ensure(
        cls,
        data_dir: Path,
        cache_dir: Path,
        version: str,
        size: int = 1,
        heap: str = "512m",
        timeout: float = 90.0,
    ) -> KafkaCluster:
        """Re-use a running cluster from ``data_dir`` or start a new one."""
        existing = cls.load(data_dir)
        if (
            existing
            and len(existing.nodes) == size
            and existing.is_running()
            and metadata_ok(existing.bootstrap, size)
        ):
            return existing
        if existing:
            existing.stop()
        jar_dir = fetch_jars(cache_dir, version)
        cluster = cls(data_dir=data_dir, version=version, jar_dir=jar_dir, heap=heap)
        cluster.start(size, timeout=timeout)
        return cluster

    @classmethod
    def load(cls, data_dir: Path) -> KafkaCluster | None:
        path = data_dir / "cluster.json"
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(
            data_dir=data_dir,
            version=raw["version"],
            jar_dir=Path(raw["jar_dir"]),
            heap=raw.get("heap", "512m"),
            nodes=[Node(**n) for n in raw["nodes"]],
        )

    def save(self) -> None:
        self.descriptor.write_text(
            json.dumps(
                {
                    "version": self.version,
                    "jar_dir": str(self.jar_dir),
                    "heap": self.heap,
                    "bootstrap": self.bootstrap,
                    "nodes": [asdict(n) for n in self.nodes],
                },
                indent=2,
            )
        )

    def is_running(self) -> bool:
        return bool(self.nodes) and all(n.pid and _pid_alive(n.pid) for n in self.nodes)

    def start(self, size: int = 1, timeout: float = 90.0) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        self.nodes = [Node(i + 1, free_port(), free_port()) for i in range(size)]
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for node in self.nodes:
            config = self._write_config(node, voters, size)
            # "--cluster-id=ID": a base64 id may start with "-", which argparse
            # would otherwise take for an option.
            self._java(
                "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)
            )
        for node in self.nodes:
            node.pid = self._spawn(node)
        self.started_here = True
        self.save()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metadata_ok(self.bootstrap, len(self.nodes), timeout=2.0):
                return
            dead = [n for n in self.nodes if not (n.pid and _pid_alive(n.pid))]
            if dead:
                raise KafkaLauncherError(
                    f"Kafka node {dead[0].node_id} exited; see {self._log(dead[0])}"
                )
            time.sleep(0.5)
        raise KafkaLauncherError(f"Kafka did not answer metadata within {timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            self.stop_node(node.node_id, timeout)
        if self.descriptor.exists():
            self.descriptor.unlink()

    def stop_node(self, node_id: int, timeout: float = 30.0, hard: bool = False) -> None:
        """Stop one node (SIGTERM, SIGKILL after ``timeout``); failure tests use ``hard``."""
        node = next(n for n in self.nodes if n.node_id == node_id)
        if not node.pid or not _pid_alive(node.pid):
            return
        os.kill(node.pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(node.pid) and time.monotonic() < deadline:
            _reap(node.pid)
            time.sleep(0.1)
        if _pid_alive(node.pid):
            os.kill(node.pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(node.pid)

    def restart_node(self, node_id: int, timeout: float = 90.0) -> None:
        node = next(n for n in self.nodes if n.node_id == node_id)
        node.pid = self._spawn(node)
        self.save()
        self.wait_ready(timeout)

    # -- helpers ------------------------------------------------------------
    def _node_dir(self, node: Node) -> Path:
        return self.data_dir / f"node-{node.node_id}"

    def _log(self, node: Node) -> Path:
        return self._node_dir(node) / "server.log"

    def _write_config(self, node: Node, voters: str, size: int) -> Path:
        node_dir = self._node_dir(node)
        (node_dir / "data").mkdir(parents=True, exist_ok=True)
        rf = min(3, size)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": node_dir / "data",
            "num.partitions": 3,
            "default.replication.factor": rf,
            "min.insync.replicas": max(1, rf - 1),
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": max(1, rf - 1),
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": max(1, rf - 1),
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "log.segment.bytes": 64 * 1024 * 1024,
            "log.retention.check.interval.ms": 60000,
        }
        path = node_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _classpath(self) -> str:
        return str(self.jar_dir / "*")

    def _jvm(self, log_dir: Path) -> list[str]:
        java = _require(
            "java", "Install Java 17+ (Debian: apt-get install openjdk-17-jre-headless)."
        )
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.dir={log_dir}",
            "-cp",
            self._classpath(),
        ]

    def _java(self, main: str, *args: str) -> None:
        log_dir = self.data_dir
        proc = subprocess.run([*self._jvm(log_dir), main, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaLauncherError(f"{main} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def _spawn(self, node: Node) -> int:
        node_dir = self._node_dir(node)
        with open(self._log(node), "ab") as log:
            proc = subprocess.Popen(
                [*self._jvm(node_dir), "kafka.Kafka", str(node_dir / "server.properties")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches us; we stop Kafka last, in order.
            )
        return proc.pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
