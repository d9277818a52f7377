"""All configuration in one place, read from the environment.

Every process (API + sink, stream worker, CLI) builds the same ``Settings``
from the same variables, so a value means one thing everywhere. The
configuration table (docs/configuration.md) follows the field descriptions here.
"""

from __future__ import annotations

import math
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # --- where things live -------------------------------------------------
    run_dir: Path = Field(
        PROJECT_ROOT / ".run",
        alias="SKILLSTREAM_RUN_DIR",
        description="Run directory: Kafka data, embedded ClickHouse, RocksDB state, pid files.",
    )
    cache_dir: Path = Field(
        PROJECT_ROOT / ".cache",
        alias="SKILLSTREAM_CACHE_DIR",
        description="Download cache (Kafka jars resolved by Maven). Safe to delete.",
    )

    # --- Kafka -------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None,
        alias="KAFKA_BOOTSTRAP",
        description="Kafka bootstrap servers. Unset: start (or re-use) the local KRaft broker.",
    )
    kafka_version: str = Field("4.1.0", alias="KAFKA_VERSION", description="Local Kafka version.")
    kafka_heap: str = Field(
        "512m", alias="KAFKA_HEAP", description="JVM heap of each local broker."
    )
    topic_prefix: str = Field(
        "skillstream", alias="TOPIC_PREFIX", description="Prefix of every topic name."
    )
    topic_partitions: int = Field(
        12,
        alias="TOPIC_PARTITIONS",
        description="Partitions of topics created at start-up: the most workers a group can "
        "use (existing topics keep theirs).",
    )
    topic_retention_ms: int = Field(
        14 * 24 * 3600 * 1000,
        alias="TOPIC_RETENTION_MS",
        description="Retention of the raw and derived topics (ms).",
    )

    # --- ClickHouse --------------------------------------------------------
    clickhouse_url: str | None = Field(
        None,
        alias="CLICKHOUSE_URL",
        description="ClickHouse server, e.g. http://user:pass@host:8123/db. "
        "Unset: embedded chdb under the run directory.",
    )

    # --- Schema registry ---------------------------------------------------
    schema_registry_url: str | None = Field(
        None,
        alias="SCHEMA_REGISTRY_URL",
        description="Confluent-compatible schema registry. Unset: Avro single-object "
        "encoding resolved against schemas/.",
    )

    # --- object storage ----------------------------------------------------
    s3_endpoint: str | None = Field(
        None,
        alias="S3_ENDPOINT",
        description="S3/MinIO endpoint for exports. Unset: local directory store.",
    )
    s3_bucket: str = Field("skillstream-exports", alias="S3_BUCKET", description="Export bucket.")
    s3_region: str = Field("us-east-1", alias="S3_REGION", description="Region of the S3 bucket.")
    exports_dir: Path | None = Field(
        None,
        alias="EXPORTS_DIR",
        description="Local object store directory (no S3_ENDPOINT). Unset: <run dir>/exports.",
    )

    # --- exports, notifications, retention (issue 7) -------------------------
    export_link_ttl_s: int = Field(
        24 * 3600,
        alias="EXPORT_LINK_TTL_S",
        description="Lifetime of an export's presigned download link (s).",
    )
    export_chunk_rows: int = Field(
        20_000,
        alias="EXPORT_CHUNK_ROWS",
        description="Learners (or audit rows) per query while an export streams: each "
        "query's aggregation holds this many, so memory stays flat.",
    )
    export_pdf_max_rows: int = Field(
        20_000, alias="EXPORT_PDF_MAX_ROWS", description="Most table rows in one PDF export."
    )
    export_claim_s: float = Field(
        1.0,
        alias="EXPORT_CLAIM_S",
        description="How often a `skillstream jobs` runner looks for exports it owns (s).",
    )
    api_runs_sink: bool = Field(
        True,
        alias="API_RUNS_SINK",
        description="The API process runs the sink (required with the embedded store; "
        "false where `skillstream sink` runs on its own against CLICKHOUSE_URL).",
    )
    api_runs_jobs: bool = Field(
        True,
        alias="API_RUNS_JOBS",
        description="The API process runs exports, sweeps and purges (required with the "
        "embedded store; false where `skillstream jobs` runners share them).",
    )
    export_sweep_s: float = Field(
        300,
        alias="EXPORT_SWEEP_S",
        description="Cadence of the job that expires links and deletes their objects (s).",
    )
    purge_interval_s: float = Field(
        24 * 3600,
        alias="PURGE_INTERVAL_S",
        description="Default per-tenant cadence of the retention purge (s); daily.",
    )
    purge_check_s: float = Field(
        300,
        alias="PURGE_CHECK_S",
        description="How often the scheduler looks for tenants whose purge is due (s).",
    )
    erasure_settle_s: float = Field(
        600,
        gt=0,
        alias="ERASURE_SETTLE_S",
        description="When an erasure's second pass runs (s after the request): the user's "
        "events still in the worker or the sink at the request have landed by then.",
    )
    aggregate_retention_days: int = Field(
        5 * 365,
        alias="AGGREGATE_RETENTION_DAYS",
        description="Default retention of aggregates (learner days, scores, program weeks).",
    )
    export_retention_days: int = Field(
        90, alias="EXPORT_RETENTION_DAYS", description="Default retention of export records."
    )
    smtp_host: str | None = Field(
        None, alias="SMTP_HOST", description="SMTP server for email notifications. Unset: off."
    )
    smtp_port: int = Field(25, alias="SMTP_PORT", description="SMTP port.")
    smtp_from: str = Field(
        "skillstream@localhost", alias="SMTP_FROM", description="Sender of notification email."
    )
    webhook_max_attempts: int = Field(
        5, alias="WEBHOOK_MAX_ATTEMPTS", description="Attempts per webhook delivery."
    )
    webhook_backoff_s: float = Field(
        0.5,
        alias="WEBHOOK_BACKOFF_S",
        description="First retry delay of a webhook (doubles per attempt, capped at 30 s).",
    )
    webhook_timeout_s: float = Field(
        5, alias="WEBHOOK_TIMEOUT_S", description="Timeout of one webhook request (s)."
    )
    webhook_allow_networks: str = Field(
        "",
        alias="WEBHOOK_ALLOW_NETWORKS",
        description="Comma-separated addresses or networks (CIDR) webhooks may reach although "
        "they are loopback, private, link-local or otherwise not public, e.g. "
        "`127.0.0.1/32` for a receiver on this machine. Empty: public addresses only.",
    )
    public_url: str | None = Field(
        None,
        alias="PUBLIC_URL",
        description="Base URL put into download links and notifications. Unset: the API's own.",
    )

    # --- API -----------------------------------------------------------------
    api_host: str = Field("127.0.0.1", alias="API_HOST", description="API bind address.")
    api_port: int = Field(0, alias="API_PORT", description="API port. 0: pick a free one.")

    # --- ingestion -----------------------------------------------------------
    ingest_max_body_bytes: int = Field(
        5 * 1024 * 1024,
        alias="INGEST_MAX_BODY_BYTES",
        description="Largest batch body (413 above).",
    )
    http_drain_max_bytes: int = Field(
        64 * 1024 * 1024,
        alias="HTTP_DRAIN_MAX_BYTES",
        description="Most body bytes read and dropped before an early answer (a 413), so a "
        "client that writes its whole body first gets the answer, not a reset.",
    )
    http_drain_timeout_s: float = Field(
        30.0,
        alias="HTTP_DRAIN_TIMEOUT_S",
        description="Longest time spent draining one body before an early answer.",
    )
    ingest_max_batch_events: int = Field(
        1000, alias="INGEST_MAX_BATCH_EVENTS", description="Most events in one batch (413 above)."
    )
    ingest_rate_per_s: float = Field(
        20000,
        alias="INGEST_RATE_PER_S",
        description="Per-tenant events/s (token bucket; 429 above). 0 disables.",
    )
    ingest_max_future_s: float = Field(
        300, alias="INGEST_MAX_FUTURE_S", description="Clock skew allowed into the future (s)."
    )
    ingest_max_age_s: float = Field(
        7 * 24 * 3600,
        alias="INGEST_MAX_AGE_S",
        description="Late-arrival bound: older events are rejected (s).",
    )
    import_max_age_s: float = Field(
        0,
        alias="IMPORT_MAX_AGE_S",
        ge=0,
        description="Historical imports (`skillstream import`): events older than this are "
        "rejected (s). 0: no bound. The live bound INGEST_MAX_AGE_S never applies to imports.",
    )
    import_chunk_events: int = Field(
        5000,
        alias="IMPORT_CHUNK_EVENTS",
        gt=0,
        description="Events an import validates, sends and acknowledges at a time: its resume "
        "point moves after each chunk Kafka acknowledged.",
    )
    ingest_ack_timeout_s: float = Field(
        10, alias="INGEST_ACK_TIMEOUT_S", description="Wait for Kafka acks before 503 (s)."
    )
    report_cors_origins: str = Field(
        "",
        alias="REPORT_CORS_ORIGINS",
        description="Comma-separated browser origins allowed to call /v1/reports/* (CORS); "
        "empty: none. Ingest origins are per tenant (`skillstream tenant origins`).",
    )

    def dedupe_window_problem(self) -> str | None:
        """Why the stream's dedupe window cannot catch every retry, or None.
        A retry comes at most INGEST_MAX_AGE_S after its event, so after its
        first receipt too; ids are remembered by receive time."""
        if self.dedupe_window_days * 86400 >= self.ingest_max_age_s:
            return None
        return (
            f"DEDUPE_WINDOW_DAYS={self.dedupe_window_days} is shorter than the late-arrival "
            f"bound INGEST_MAX_AGE_S={self.ingest_max_age_s:.0f} s "
            f"({self.ingest_max_age_s / 86400:.1f} days): a retry of an event received that "
            f"late would count twice; set DEDUPE_WINDOW_DAYS to at least "
            f"{math.ceil(self.ingest_max_age_s / 86400)}"
        )

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for part in (p.strip() for p in value.split(",")):
            if part:
                ip_network(part, strict=False)  # a typo fails at start-up, not at delivery
        return value

    @property
    def webhook_allowed_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        parts = [p.strip() for p in self.webhook_allow_networks.split(",") if p.strip()]
        return tuple(ip_network(p, strict=False) for p in parts)

    @property
    def report_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.report_cors_origins.split(",") if o)

    # --- stream processing ---------------------------------------------------
    dedupe_window_days: int = Field(
        7, alias="DEDUPE_WINDOW_DAYS", description="How long client event ids are remembered."
    )
    allowed_lateness_days: int = Field(
        7,
        alias="ALLOWED_LATENESS_DAYS",
        description="Event-time lateness still counted in aggregates.",
    )
    commit_interval_s: float = Field(
        1.0,
        alias="COMMIT_INTERVAL_S",
        gt=0,
        description="How often the worker checkpoints: table writes and aggregate rows are "
        "merged per key in between, so a longer interval writes fewer records and makes "
        "aggregates later.",
    )
    worker_id: str = Field(
        "0",
        alias="WORKER_ID",
        description="Stable id of this worker in its consumer group (static membership) and "
        "the name of its state directory (`state/worker-<id>` under the run directory); "
        "every worker of a group needs its own.",
    )
    log_format: Literal["json", "plain"] = Field(
        "json",
        alias="LOG_FORMAT",
        description="`json`: one object per line (ts, level, process, logger, message, context); "
        "`plain`: the human format (`skillstream up` uses it unless set).",
    )
    worker_metrics_host: str = Field(
        "127.0.0.1",
        alias="WORKER_METRICS_HOST",
        description="Bind address of the worker's /metrics.",
    )
    worker_metrics_port: int = Field(
        0,
        alias="WORKER_METRICS_PORT",
        description="Port of the worker's Prometheus /metrics. 0: off (`up` picks a free one).",
    )
    recompute_cron: str = Field(
        "15 2 * * *",
        alias="RECOMPUTE_CRON",
        description="When the daily score recompute runs (cron, UTC).",
    )

    # --- sink ---------------------------------------------------------------
    sink_batch_size: int = Field(
        5000, alias="SINK_BATCH_SIZE", description="Rows per ClickHouse insert (per partition)."
    )
    sink_batch_ms: int = Field(
        500, alias="SINK_BATCH_MS", description="Longest a row waits before its batch is written."
    )

    lag_poll_s: float = Field(
        2.0,
        alias="LAG_POLL_S",
        description="How often the API process reads every stage's lag from Kafka (s).",
    )

    # --- reports and dashboard -------------------------------------------------
    engagement_target: float = Field(
        70.0,
        alias="ENGAGEMENT_TARGET",
        description="Target median engagement score drawn on the dashboard (0-100).",
    )
    stale_after_s: int = Field(
        600,
        alias="STALE_AFTER_S",
        description="Data older than this is flagged stale (the dashboard's yellow banner).",
    )
    report_cache_max_age_s: float = Field(
        30.0,
        alias="REPORT_CACHE_MAX_AGE_S",
        description="Report results are reused until the sink writes its next round, and "
        "for at most this long (s; 0 = no cache): writes the sink does not make, such as a "
        "purge or another API process's sink, show within it.",
    )
    report_cache_entries: int = Field(
        512,
        alias="REPORT_CACHE_ENTRIES",
        description="Report results kept in memory (least recently used go first).",
    )
    report_keep_viewed_s: float = Field(
        300.0,
        alias="REPORT_KEEP_VIEWED_S",
        description="A report result viewed within this long (s) is kept ready: computed "
        "again in the background after sink rounds, so viewers are answered from memory; "
        "one nobody viewed for longer is dropped and costs nothing.",
    )
    report_refresh_interval_s: float = Field(
        2.0,
        alias="REPORT_REFRESH_INTERVAL_S",
        description="Shortest time (s) between two background computations of one kept "
        "report result, however many sink rounds and viewers it has.",
    )
    report_figures_interval_s: float = Field(
        30.0,
        alias="REPORT_FIGURES_INTERVAL_S",
        description="Shortest time (s) between two computations of the dashboard's reports "
        "kept in the store per tenant and program (`report_figures`: KPIs, chart, at-risk "
        "list), done after sink rounds that brought the tenant new data (0 = never: first "
        "views compute on request).",
    )
    readiness_term: Literal["month", "quarter", "half", "year"] = Field(
        "quarter",
        alias="READINESS_TERM",
        description="Calendar term of the readiness-delta KPI unless the tenant sets its own "
        "(`skillstream tenant term`).",
    )
    sql_max_seconds: float = Field(
        10.0,
        alias="SQL_MAX_SECONDS",
        description="Longest an analyst's query (POST /v1/sql, `skillstream sql`) may run (s).",
    )
    sql_max_rows: int = Field(
        100_000,
        alias="SQL_MAX_ROWS",
        description="Most rows an analyst's query returns (the rest are cut off).",
    )
    demo_mode: bool = Field(
        False,
        alias="SKILLSTREAM_DEMO",
        description="Demo mode: /v1/demo/* exists and mints short-lived tokens for demo users "
        "of each role, to loopback clients only; the page shows a demo banner. Set by "
        "`skillstream up --demo` only. Never on a stack with real data.",
    )

    # --- secrets -------------------------------------------------------------
    # One per purpose (core/secrets.py); none is ever stored in ClickHouse.
    token_secret: str | None = Field(
        None,
        alias="SKILLSTREAM_TOKEN_SECRET",
        min_length=32,
        description="HMAC secret that signs bearer tokens (at least 32 characters). Unset: "
        "generated once into the run directory. Changing it refuses every token signed before.",
    )
    admin_secret: str | None = Field(
        None,
        alias="SKILLSTREAM_ADMIN_SECRET",
        min_length=32,
        description="Secret the CLI uses for admin calls to a running API. Unset: generated "
        "once into the run directory.",
    )
    export_link_secret: str | None = Field(
        None,
        alias="SKILLSTREAM_EXPORT_LINK_SECRET",
        min_length=32,
        description="HMAC secret of the local object store's download links (not the token "
        "secret). Unset: generated once into the run directory.",
    )
    pii_keys: str | None = Field(
        None,
        alias="SKILLSTREAM_PII_KEYS",
        description="Fernet keys (comma-separated, newest first) sealing each tenant's PII "
        "salt in the store. Unset: generated once into the run directory.",
    )
    webhook_keys: str | None = Field(
        None,
        alias="SKILLSTREAM_WEBHOOK_KEYS",
        description="Fernet keys (comma-separated, newest first) sealing webhook signing "
        "secrets in the store. Unset: generated once into the run directory.",
    )
    sso_keys: str | None = Field(
        None,
        alias="SKILLSTREAM_SSO_KEYS",
        description="Fernet keys (comma-separated, newest first) sealing identity providers' "
        "client secrets and sign-in sessions' provider tokens in the store. Unset: generated "
        "once into the run directory.",
    )
    token_ttl_s: int = Field(
        12 * 3600, alias="TOKEN_TTL_S", description="Lifetime of bearer tokens (s)."
    )

    # --- sign-in with the customer's identity provider (docs/sign-in.md) -----
    session_ttl_s: int = Field(
        3600,
        alias="SESSION_TTL_S",
        gt=0,
        description="A sign-in session ends this long after its last refresh (s); a request "
        "in its second half refreshes it.",
    )
    session_max_s: int = Field(
        12 * 3600,
        alias="SESSION_MAX_S",
        gt=0,
        description="No session lives longer than this from its sign-in (s), refreshed or not.",
    )
    oidc_jwks_ttl_s: float = Field(
        300,
        alias="OIDC_JWKS_TTL_S",
        gt=0,
        description="How long a provider's discovery document and keys are cached (s): a key "
        "the provider removed is refused at the latest this long after.",
    )
    oidc_jwks_min_refresh_s: float = Field(
        10,
        alias="OIDC_JWKS_MIN_REFRESH_S",
        ge=0,
        description="An unknown key id refetches the provider's keys at most this often (s).",
    )
    oidc_leeway_s: int = Field(
        60,
        alias="OIDC_LEEWAY_S",
        ge=0,
        le=300,
        description="Clock skew allowed on the provider's exp, nbf and iat (s).",
    )
    oidc_timeout_s: float = Field(
        5, alias="OIDC_TIMEOUT_S", gt=0, description="Timeout of each call to a provider (s)."
    )

    # --- derived paths -------------------------------------------------------
    @property
    def kafka_dir(self) -> Path:
        return self.run_dir / "kafka"

    @property
    def chdb_path(self) -> Path:
        return self.run_dir / "clickhouse"

    @property
    def state_dir(self) -> Path:
        """This worker's own RocksDB: workers sharing a run directory never
        share state, nor its clean-shutdown marker."""
        return self.run_dir / "state" / f"worker-{self.worker_id}"

    @property
    def export_path(self) -> Path:
        return self.exports_dir or self.run_dir / "exports"

    @property
    def secrets_file(self) -> Path:
        return self.run_dir / "secrets.json"

    @property
    def api_file(self) -> Path:
        """Written by the running API process: its URL and pid (see ops/control.py)."""
        return self.run_dir / "api.json"

    @property
    def stack_file(self) -> Path:
        """Written by `skillstream up`: its pid and its children's (`skillstream status`)."""
        return self.run_dir / "stack.json"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
