"""A real Apache Kafka (KRaft) on loopback, without Docker.

Steps, each a small function:
  1. ``fetch_jars``   – Maven resolves ``org.apache.kafka:kafka_2.13`` and its
     runtime dependencies into ``.cache/kafka/<version>/`` (git-ignored).
  2. ``KafkaCluster.create`` – writes one ``server.properties`` per node
     (combined broker+controller), formats storage with
     ``kafka.tools.StorageTool`` and starts ``kafka.Kafka`` JVMs;
     ``KafkaCluster.resume`` starts a stopped cluster again from its data
     (same cluster id, log dirs and, while they are free, ports).
  3. ``wait_ready`` – polls a metadata request until every broker answers.
  4. ``stop``       – SIGTERM, then SIGKILL after a timeout; data kept.

A cluster descriptor (``cluster.json``) in the data dir lets a second caller
re-use a broker that is already running instead of starting another one,
and a later start bring the same cluster back.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.kafka_info import metadata_ok
from core.processes import pid_alive
from core.settings import PROJECT_ROOT

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


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    pid: int | None = None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the process that started it
    dies, so a killed `skillstream up` leaves no broker behind."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class KafkaCluster:
    """N combined broker+controller nodes forming one KRaft cluster.

    The data directory is the cluster: its nodes' logs, their configs and
    ``cluster.json`` (cluster id, ports, pids). Stopping keeps all of it, and
    starting again brings back the same cluster with the same records; only
    :func:`wipe` (``skillstream reset --yes``) removes it.
    """

    data_dir: Path
    version: str
    jar_dir: Path
    heap: str = "512m"
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = ""
    started_here: bool = False
    tie_to_parent: bool = False

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
        size: int | None = None,
        heap: str = "512m",
        timeout: float = 90.0,
        fresh: bool = False,
        tie_to_parent: bool = False,
    ) -> KafkaCluster:
        """The cluster in ``data_dir``: re-used while it runs, restarted from
        its data when stopped, created (``size`` nodes, default 1) when there
        is none. ``fresh`` (test and benchmark scratch clusters) wipes a
        stopped one first."""
        existing = cls.load(data_dir)
        if existing and fresh and not existing.any_running():
            wipe(data_dir)
            existing = None
        jar_dir = fetch_jars(cache_dir, version)
        if existing is None:
            cluster = cls(data_dir=data_dir, version=version, jar_dir=jar_dir, heap=heap)
            cluster.tie_to_parent = tie_to_parent
            cluster.create(size or 1, timeout=timeout)
            return cluster
        if size is not None and len(existing.nodes) != size:
            raise KafkaLauncherError(
                f"{data_dir} holds a {len(existing.nodes)}-node cluster, not {size}: "
                "start it with its own size, or `skillstream reset --yes` to wipe it"
            )
        existing.tie_to_parent = tie_to_parent
        if existing.version != version or not Path(existing.jar_dir).exists():
            existing.version, existing.jar_dir = version, jar_dir
        existing.resume(timeout)
        return existing

    @classmethod
    def load(cls, data_dir: Path) -> KafkaCluster | None:
        """The cluster described in ``data_dir``, or None when it holds none."""
        path = data_dir / "cluster.json"
        if not path.exists():
            return cls._from_node_configs(data_dir)
        raw = json.loads(path.read_text())
        return cls(
            data_dir=data_dir,
            version=raw["version"],
            jar_dir=Path(raw["jar_dir"]),
            heap=raw.get("heap", "512m"),
            nodes=[Node(**n) for n in raw["nodes"]],
            cluster_id=raw.get("cluster_id", ""),
        )

    @classmethod
    def _from_node_configs(cls, data_dir: Path) -> KafkaCluster | None:
        """A formatted cluster whose descriptor is gone (launchers before this
        one removed it on stop): rebuilt from its nodes' own files."""
        nodes, cluster_id = [], ""
        for props_path in sorted(data_dir.glob("node-*/server.properties")):
            props = _read_properties(props_path)
            meta = props_path.parent / "data" / "meta.properties"
            if not meta.exists():
                return None
            cluster_id = _read_properties(meta).get("cluster.id", "")
            ports = dict(
                re.findall(r"(PLAINTEXT|CONTROLLER)://[^:,]+:(\d+)", props.get("listeners", ""))
            )
            nodes.append(
                Node(int(props["node.id"]), int(ports["PLAINTEXT"]), int(ports["CONTROLLER"]))
            )
        if not nodes:
            return None
        from core.settings import get_settings

        s = get_settings()
        jar_dir = (s.cache_dir / "kafka" / s.kafka_version).resolve()
        return cls(data_dir, s.kafka_version, jar_dir, nodes=nodes, cluster_id=cluster_id)

    @contextlib.contextmanager
    def _descriptor_lock(self) -> Iterator[None]:
        """`up` (restarting nodes) and `skillstream kafka stop` both record
        pids: one at a time, so neither overwrites the other's."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "cluster.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def save(self) -> None:
        with self._descriptor_lock():
            self._write_descriptor()

    def _write_descriptor(self) -> None:
        self.descriptor.write_text(
            json.dumps(
                {
                    "version": self.version,
                    "jar_dir": str(self.jar_dir),
                    "heap": self.heap,
                    "cluster_id": self.cluster_id,
                    "bootstrap": self.bootstrap,
                    "nodes": [asdict(n) for n in self.nodes],
                },
                indent=2,
            )
        )

    def is_running(self) -> bool:
        return bool(self.nodes) and all(n.pid and pid_alive(n.pid) for n in self.nodes)

    def any_running(self) -> bool:
        return any(n.pid and pid_alive(n.pid) for n in self.nodes)

    def create(self, size: int = 1, timeout: float = 90.0) -> None:
        """Format and start a new cluster in an empty data directory."""
        if any(self.data_dir.glob("node-*/data/meta.properties")):
            raise KafkaLauncherError(f"{self.data_dir} already holds Kafka data; not formatting")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(i + 1, free_port(), free_port()) for i in range(size)]
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for node in self.nodes:
            config = self._write_config(node)
            # "--cluster-id=ID": a base64 id may start with "-", which argparse
            # would otherwise take for an option.
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={self.cluster_id}",
                "-c",
                str(config),
            )
        self.save()
        self._start_nodes(self.nodes, timeout)

    def resume(self, timeout: float = 90.0) -> None:
        """Start the stopped nodes from their data, on their recorded ports
        when those are free (new ones, recorded, when not)."""
        stopped = [n for n in self.nodes if not (n.pid and pid_alive(n.pid))]
        if stopped:
            if not self.any_running() and not all(
                _port_free(n.port) and _port_free(n.controller_port) for n in self.nodes
            ):
                for n in self.nodes:
                    n.port, n.controller_port = free_port(), free_port()
            for n in self.nodes:
                self._write_config(n)
            self._start_nodes(stopped, timeout)
        else:
            self.wait_ready(timeout)

    def _start_nodes(self, nodes: list[Node], timeout: float) -> None:
        for node in nodes:
            node.pid = self._spawn(node)
        self.started_here = True
        self.save()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if metadata_ok(self.bootstrap, len(self.nodes), timeout=2.0):
                return
            dead = [n for n in self.nodes if not (n.pid and pid_alive(n.pid))]
            if dead:
                raise KafkaLauncherError(
                    f"Kafka node {dead[0].node_id} exited; see {self._log(dead[0])}"
                )
            time.sleep(0.5)
        raise KafkaLauncherError(f"Kafka did not answer metadata within {timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node at once; the data and the descriptor stay for the
        next start. (One by one, the last node of a multi-node cluster waits
        out its controlled shutdown with no controller quorum left.)"""
        live = {n.node_id: n.pid for n in self.nodes if n.pid and pid_alive(n.pid)}
        for pid in live.values():
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for pid in live.values():
            self._wait_exit(pid, deadline)
        for node in self.nodes:
            node.pid = None
        if self.descriptor.exists():
            self._record_stopped(live)

    def _record_stopped(self, stopped: dict[int, int | None]) -> None:
        """Clear the pids of the nodes stopped here, against the descriptor
        as it is now: a running `up` may have started a node again meanwhile
        (it watches its cluster), and that node's pid must stay recorded."""
        with self._descriptor_lock():
            now = KafkaCluster.load(self.data_dir) or self
            for node in now.nodes:
                if node.pid == stopped.get(node.node_id) or (node.pid and not pid_alive(node.pid)):
                    node.pid = None
            now._write_descriptor()

    def stop_node(self, node_id: int, timeout: float = 30.0, hard: bool = False) -> None:
        """Stop one node (SIGTERM, SIGKILL after ``timeout``); failure tests use ``hard``."""
        node = next(n for n in self.nodes if n.node_id == node_id)
        if not node.pid or not pid_alive(node.pid):
            return
        os.kill(node.pid, signal.SIGKILL if hard else signal.SIGTERM)
        self._wait_exit(node.pid, time.monotonic() + timeout)

    @staticmethod
    def _wait_exit(pid: int, deadline: float) -> None:
        """Wait for a signalled node to exit; SIGKILL it at the deadline."""
        while pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        _reap(pid)

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

    def _write_config(self, node: Node) -> Path:
        node_dir = self._node_dir(node)
        (node_dir / "data").mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = min(3, len(self.nodes))
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
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )
        return proc.pid


def running_bootstrap(kafka_bootstrap: str | None, kafka_dir: Path) -> str:
    """Where a command finds Kafka: ``KAFKA_BOOTSTRAP``, else the local
    cluster `skillstream up` runs."""
    if kafka_bootstrap:
        return kafka_bootstrap
    c = KafkaCluster.load(kafka_dir)
    if not c or not c.is_running():
        raise KafkaLauncherError("no Kafka: set KAFKA_BOOTSTRAP or run `skillstream up`")
    return c.bootstrap


def wipe(data_dir: Path) -> None:
    """Remove a stopped cluster's data for good (``skillstream reset --yes``)."""
    cluster = KafkaCluster.load(data_dir)
    if cluster and cluster.any_running():
        raise KafkaLauncherError(f"Kafka in {data_dir} is running: stop it first")
    shutil.rmtree(data_dir, ignore_errors=True)


def _read_properties(path: Path) -> dict[str, str]:
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
