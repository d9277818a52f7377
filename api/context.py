"""What the API process holds for its lifetime, built once at start-up."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api.exports.runner import ExportRunner
from api.exports.storage import ObjectStore, object_store_for
from api.ingest.producer import AsyncProducer
from api.ingest.ratelimit import RateLimiter
from api.ingest.recent import RecentIds
from api.ingest.validate import Bounds
from api.jobs import Periodic, Scheduler
from api.lag import LagMonitor
from api.leases import Leases
from api.notify.channels import ReadyPublisher
from api.notify.config import reseal_secrets as reseal_webhook_secrets
from api.notify.fanout import Notifier
from api.origins import OriginRegistry
from api.reports.cache import ReportCache
from api.reports.figures import ReportFigures
from api.sealing import Sealer
from api.sso.service import SignIn
from api.tenants import TenantRegistry, reseal_salts
from api.xapi.store import MappingRegistry, StatementLog
from core.processes import stack_children_alive
from core.secrets import Secrets
from core.settings import Settings
from core.threads import BackgroundThread
from schemas.codec import Codec, codec_for
from sinks.sink import Sink
from sinks.store import Store

log = logging.getLogger("skillstream.api")
KEEPER_POLL_S = 0.1  # how soon after a sink round the keeper looks
FIGURES_MAX_LAG_MS = 5000  # the sink's ingest lag above which no figures are computed


class KafkaProbe:
    """Cached broker reachability, so /health never blocks on Kafka for long."""

    def __init__(self, bootstrap: str, ttl_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.ttl_s = ttl_s
        self._at = 0.0
        self._ok = False
        self._lock = threading.Lock()

    def ok(self) -> bool:
        from core.kafka_info import metadata_ok

        with self._lock:
            if time.monotonic() - self._at > self.ttl_s:
                self._ok = metadata_ok(self.bootstrap, 1, timeout=2.0)
                self._at = time.monotonic()
            return self._ok


@dataclass
class AppContext:
    settings: Settings
    store: Store
    secrets: Secrets
    kafka_bootstrap: str
    tenants: TenantRegistry = field(init=False)
    origins: OriginRegistry = field(init=False)
    xapi_log: StatementLog = field(init=False)
    xapi_mappings: MappingRegistry = field(init=False)
    kafka: KafkaProbe = field(init=False)
    producer: AsyncProducer = field(init=False)
    codec: Codec = field(init=False)
    recent: RecentIds = field(init=False)
    rate_limiter: RateLimiter = field(init=False)
    bounds: Bounds = field(init=False)
    raw_topic: str = field(init=False)
    sink: Sink | None = None
    started_at: float = field(default_factory=time.time)
    objects: ObjectStore = field(init=False)
    notifier: Notifier = field(init=False)
    webhook_sealer: Sealer = field(init=False)
    pii_sealer: Sealer = field(init=False)
    exports: ExportRunner = field(init=False)
    report_cache: ReportCache = field(init=False)
    sso: SignIn = field(init=False)
    report_figures: ReportFigures = field(init=False)
    _keeper: BackgroundThread = field(init=False, repr=False)
    scheduler: Scheduler | None = None
    leases: Leases | None = None
    lag: LagMonitor | None = None
    _stored_rounds: int = field(default=0, init=False, repr=False)
    _rounds_read_at: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.settings
        # Secrets at rest: sealed with keys that never enter the store; rows
        # from before sealing, or under a rotated-out key, are resealed now.
        self.pii_sealer = Sealer(self.secrets.pii_keys, "PII salts")
        reseal_salts(self.store, self.pii_sealer)
        self.tenants = TenantRegistry(self.store, self.pii_sealer)
        self.origins = OriginRegistry(self.store)
        self.xapi_log = StatementLog(self.store, s.run_dir / "xapi-journal")
        self.xapi_mappings = MappingRegistry(self.store)
        self.sso = SignIn(self.store, s, self.secrets, self.tenants)
        self.sso.reseal()
        self.kafka = KafkaProbe(self.kafka_bootstrap)
        self.raw_topic = s.topic("events.raw")
        self.producer = AsyncProducer(self.kafka_bootstrap, s.ingest_ack_timeout_s)
        self.codec = codec_for(s.schema_registry_url, self.raw_topic)
        self.recent = RecentIds()
        # A full batch must always fit in the bucket, whatever the rate.
        burst = max(s.ingest_rate_per_s * 2, s.ingest_max_batch_events)
        self.rate_limiter = RateLimiter(s.ingest_rate_per_s, burst)
        self.bounds = Bounds(s.ingest_max_future_s, s.ingest_max_age_s)
        self.objects = object_store_for(s, self.secrets.export_link_secret)
        publisher = ReadyPublisher(self.kafka_bootstrap, s.topic("reports.ready"))
        self.webhook_sealer = Sealer(self.secrets.webhook_keys, "webhook secrets")
        reseal_webhook_secrets(self.store, self.webhook_sealer)
        self.notifier = Notifier(self.store, s, publisher, self.webhook_sealer)
        self.exports = ExportRunner(self.store, s, self.objects, self.notifier)
        self.report_cache = ReportCache(
            self.sink_rounds,
            max_entries=s.report_cache_entries,
            max_age_s=s.report_cache_max_age_s,
            keep_viewed_s=s.report_keep_viewed_s,
            interval_s=s.report_refresh_interval_s,
            on_kept=self.start_keeper,
        )
        self.report_figures = ReportFigures(
            self.store,
            self.sink_rounds,
            self.data_fresh_as_of,
            target_score=s.engagement_target,
            default_term=s.readiness_term,
            interval_s=s.report_figures_interval_s,
        )
        self._keeper = BackgroundThread("report-keeper", self._keep)

    @classmethod
    def for_process(cls, settings: Settings) -> AppContext:
        """An API or job-runner process's context: its store, secrets and
        Kafka as the settings name them (the caller closes the store)."""
        from core.secrets import load_secrets
        from sinks.store import open_store

        return cls(
            settings=settings,
            store=open_store(settings.clickhouse_url, settings.chdb_path),
            secrets=load_secrets(settings),
            kafka_bootstrap=settings.kafka_bootstrap or "",
        )

    def start_jobs(self, leases: Leases | None = None) -> Scheduler:
        """Resume unfinished exports and start the export sweep, the purge and
        the erasure second pass. With ``leases`` (job runners sharing one
        ClickHouse server) each runs only where its lease is held, and owned
        exports are claimed from the store as they are requested."""
        from api.retention.erasure import settle_erasures
        from api.retention.purge import purge_due

        s = self.settings
        self.leases = leases
        once = 0 if leases else None  # the share of the jobs that must run once
        if leases:
            self.exports.owns = leases.holds_key
        self.exports.recover()
        jobs = [
            Periodic("export sweep", s.export_sweep_s, self.exports.sweep, once),
            # each tenant is purged on its own cadence; this only looks
            Periodic(
                "retention purge",
                s.purge_check_s,
                lambda: purge_due(self.store, s, self.objects),
                once,
            ),
            Periodic(
                "erasure second pass",
                max(1.0, s.erasure_settle_s / 4),
                lambda: settle_erasures(self.store, self.publish_erasure, s.erasure_settle_s),
                once,
            ),
        ]
        if leases:
            jobs.append(Periodic("export claim", s.export_claim_s, self.exports.recover))
        self.scheduler = Scheduler(jobs, leases)
        self.scheduler.start()
        return self.scheduler

    def publish_erasure(self, tenant_id: str, user_id: str, request_id: str) -> None:
        """Hand an erasure to the stream worker (acknowledged by Kafka, or raise)."""
        from streams.erasure import request_erasure

        request_erasure(self.kafka_bootstrap, self.settings, tenant_id, user_id, request_id)

    def start_lag_monitor(self) -> LagMonitor:
        self.lag = LagMonitor(self.kafka_bootstrap, self.settings, self.settings.lag_poll_s)
        self.lag.start()
        return self.lag

    def sink_rounds(self) -> int:
        """What changes whenever the sink writes a round: its own count when
        it runs here; else the sum of the offsets the sinks stored (they only
        grow), read at most every half second."""
        if self.sink:
            return self.sink.rounds_written
        now = time.monotonic()
        if now - self._rounds_read_at > 0.5:
            rows = self.store.query("SELECT sum(next_offset) AS n FROM sink_offsets FINAL")
            self._stored_rounds = int(rows[0]["n"]) if rows else 0
            self._rounds_read_at = now
        return self._stored_rounds

    def ingest_lag_ms(self) -> int:
        """now − the oldest accepted event not yet queryable: every stage's
        (the lag monitor's) when read, else the sink's own."""
        snap = self.lag.latest if self.lag else None
        if snap is not None:
            return snap.end_to_end_ms
        return self.sink.ingest_lag_ms() if self.sink else 0

    def data_fresh_as_of(self, tenant_id: str | None = None) -> datetime | None:
        """The freshness watermark (api/lag.py) for a tenant that has data;
        without a lag reading yet, the newest event the sink wrote."""
        newest = self.sink.data_fresh_as_of(tenant_id) if self.sink else None
        snap = self.lag.latest if self.lag else None
        if newest is None or snap is None:
            return newest
        return datetime.fromtimestamp(snap.watermark_ms / 1000, UTC)

    def components(self) -> dict[str, bool]:
        """Each background thread of this process, and each process of the
        stack around it (from `skillstream up`'s stack file): alive or not."""
        alive = {}
        if self.sink is not None:
            alive["sink"] = self.sink.alive()
        if self.lag is not None:
            alive["lag_monitor"] = self.lag.alive()
        if self.report_cache.refreshing:  # started: with the sink or a first view
            alive["report_keeper"] = self._keeper.is_alive()
        if self.scheduler is not None:
            alive["scheduler"] = self.scheduler.alive()
        if self.leases is not None:
            alive["leases"] = self.leases.alive()
        alive.update(stack_children_alive(self.settings))
        return alive

    def start_sink(self) -> Sink:
        self.sink = Sink(self.settings, self.store, self.kafka_bootstrap)
        self.sink.start()
        self.start_keeper()  # the report figures follow this sink's rounds
        return self.sink

    def start_keeper(self) -> None:
        """The thread keeping viewed reports ready (and, beside the sink, the
        report figures); started on the first kept result or with the sink."""
        if self._keeper.stopping.is_set():
            return  # closing
        self.report_cache.refreshing = True
        self._keeper.start()

    def _keep(self) -> None:
        """Refresh the viewed results that are due, then compute one report
        figures row if any is due, so neither waits long behind the other."""
        while not self._keeper.stopping.wait(KEEPER_POLL_S):
            try:
                self.report_cache.refresh_due(self._keeper.stopping)
                # while the sink is behind (a back-fill) the figures wait: they
                # would compete with it for the store and be stale at once
                if self.sink is not None and self.ingest_lag_ms() <= FIGURES_MAX_LAG_MS:
                    self.report_figures.refresh_one()
            except Exception:  # the store down: the next poll tries again
                log.exception("keeping reports ready failed")

    def close(self) -> None:
        if self.scheduler:
            self.scheduler.stop()
        self.exports.stop()
        if self.leases:
            self.leases.stop()
        if self.notifier.publisher:
            self.notifier.publisher.close()
        self._keeper.stop(10)
        self.report_cache.refreshing = False
        if self.sink:
            self.sink.stop()
        if self.lag:
            self.lag.stop()
        self.xapi_log.close()
        self.producer.close()
