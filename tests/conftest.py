"""Shared fixtures: one real Kafka per test session, one embedded ClickHouse.

Kafka: ``KAFKA_BOOTSTRAP`` if set, else the local KRaft broker from
``ops/kafka_launcher.py`` (re-used across runs while it lives, stopped at the
end of a session that started it, and wiped before the next: test topics are
scratch). Each test gets its own topics.

ClickHouse: chdb holds one data path per process, so the whole session
shares one embedded store; tests isolate themselves by tenant and topic.

Tiers (docs/tests.md): every test is marked by what it needs. ``kafka`` and
``browser`` follow from the fixtures a test uses (``KAFKA_FIXTURES``,
``BROWSER_FIXTURES``); tests that start processes of their own say so with
``stack`` (and ``kafka``/``browser`` when those come without the fixtures);
``unit`` is every other test, and one that starts a process fails.
"""

from __future__ import annotations

import _posixsubprocess
import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, Settings
from ops.kafka_launcher import KafkaCluster

TEST_RUN_DIR = PROJECT_ROOT / ".run" / "test"
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"

# A test using any of these (directly or through another fixture) gets the mark.
KAFKA_FIXTURES = {"kafka_bootstrap"}
BROWSER_FIXTURES = {"browser"}
NEEDS = ("kafka", "stack", "browser")  # a test with none of these is a unit test


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if not any(item.get_closest_marker(m) for m in NEEDS):
            item.add_marker(pytest.mark.unit)


def _no_process(*_args: object, **_kwargs: object) -> None:
    raise AssertionError(
        "a test marked unit started a process: mark it stack (or kafka/browser), docs/tests.md"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        return (yield)


@contextlib.contextmanager
def _processes_refused(item: pytest.Item) -> Iterator[None]:
    """Within a unit test every way of starting a process raises, so a test
    that needs one cannot pass as a unit test by being forgotten."""
    if not item.get_closest_marker("unit"):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "_execute_child", _no_process)
        mp.setattr(_posixsubprocess, "fork_exec", _no_process)
        for name in ("fork", "posix_spawn", "posix_spawnp"):
            mp.setattr(os, name, _no_process)
        yield


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP")
    if env:
        yield env
        return
    s = Settings()
    cluster = KafkaCluster.ensure(
        TEST_RUN_DIR / "kafka", s.cache_dir, s.kafka_version, heap=s.kafka_heap, fresh=True
    )
    yield cluster.bootstrap
    if cluster.started_here:
        cluster.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Callable[..., str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap, "log_level": 0})

    def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
            fut.result(15)
        return name

    return make


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clickhouse")


@pytest.fixture(scope="session")
def store(store_path: Path):
    from sinks.store import open_store

    s = open_store(None, store_path)
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path, kafka_bootstrap: str) -> Settings:
    """Settings for an isolated run dir on the session's Kafka."""
    return Settings(
        SKILLSTREAM_RUN_DIR=tmp_path / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=3,
        # the session's store holds every test's tenants: report figures for all
        # of them would be computed behind each test that runs a sink
        REPORT_FIGURES_INTERVAL_S=0,
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class LiveApi:
    """The real API app served by uvicorn on loopback, in a thread of the test
    process (so it can share the session's embedded ClickHouse)."""

    def __init__(self, settings: Settings, store, bootstrap: str, sink: bool = False) -> None:
        import threading

        import uvicorn

        from api.app import create_app
        from api.context import AppContext
        from core.secrets import load_secrets
        from core.topics import ensure_topics
        from ops.kafka_launcher import free_port

        ensure_topics(bootstrap, settings)
        self.settings = settings
        self.ctx = AppContext(
            settings=settings,
            store=store,
            secrets=load_secrets(settings),
            kafka_bootstrap=bootstrap,
        )
        if sink:
            self.ctx.start_sink()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.ctx), host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        import time

        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "API did not start"

    def new_tenant(self, name: str) -> tuple[str, str]:
        tenant, key = self.ctx.tenants.create(name)
        return tenant.tenant_id, key

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.ctx.close()


@pytest.fixture
def live_api(settings: Settings, store, kafka_bootstrap: str) -> Iterator[LiveApi]:
    api = LiveApi(settings, store, kafka_bootstrap)
    yield api
    api.close()


@pytest.fixture
def live_api_with_sink(settings: Settings, store, kafka_bootstrap: str) -> Iterator[LiveApi]:
    """The API process's parts on the session's Kafka, with its sink running."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    api = LiveApi(settings, store, kafka_bootstrap, sink=True)
    yield api
    api.close()
