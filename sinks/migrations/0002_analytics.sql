-- Analytics tables written by the sink (sinks/sink.py). Every table converges
-- to one row per natural key (ReplacingMergeTree on a version), so a replayed
-- batch can never double-count; inserts also carry dedup tokens.

-- Clean events: one row per (tenant, client_event_id). Partitioned by event
-- day; each row expires after its event type's retention unless on legal hold.
CREATE TABLE IF NOT EXISTS events (
    tenant_id        LowCardinality(String),
    event_id         String,
    event_name       LowCardinality(String),
    event_timestamp  DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    user_id          Nullable(String),
    anonymous_id     String,
    learner_id       Nullable(String),
    persona          LowCardinality(String),
    program_id       Nullable(String),
    cohort_id        Nullable(String),
    plan_id          Nullable(String),
    assessment_id    Nullable(String),
    readiness_score  Nullable(Float64),
    context_page     String,
    context_device   Nullable(String),
    pii_hash         Nullable(String),
    essential        UInt8,
    properties       String,
    schema_version   UInt16,
    retention_days   UInt16,
    legal_hold       UInt8 DEFAULT 0,
    version          UInt64,
    sunk_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(event_timestamp)
ORDER BY (tenant_id, event_id)
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days) WHERE legal_hold = 0
SETTINGS non_replicated_deduplication_window = 10000;

-- Per learner per day (event time): the engagement components.
CREATE TABLE IF NOT EXISTS learner_daily (
    tenant_id          LowCardinality(String),
    user_id            String,
    day                Date,
    program_id         Nullable(String),
    cohort_id          Nullable(String),
    sign_ins           UInt32,
    live_sessions      UInt32,
    phase_advances     UInt32,
    submissions        UInt32,
    lessons_completed  UInt32,
    active_minutes     UInt32,
    completions        UInt32,
    events             UInt32,
    version            UInt64,
    updated_at         DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id, day)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per program per ISO week, one row per source partition. A learner's events
-- live on one partition, so partial distinct counts are disjoint and sum
-- exactly: active_learners = sum(active_learners) over partitions.
CREATE TABLE IF NOT EXISTS program_weekly (
    tenant_id        LowCardinality(String),
    program_id       String,
    week             Date,
    src_partition    UInt16,
    active_learners  UInt32,
    completions      UInt32,
    version          UInt64,
    updated_at       DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, program_id, week, src_partition)
SETTINGS non_replicated_deduplication_window = 10000;

-- Engagement score per learner per day: 'live' while the day runs, replaced
-- by the 'daily' snapshot of the nightly recompute (higher version).
CREATE TABLE IF NOT EXISTS learner_scores (
    tenant_id          LowCardinality(String),
    user_id            String,
    day                Date,
    program_id         Nullable(String),
    cohort_id          Nullable(String),
    score              UInt8,
    at_risk            UInt8,
    days_inactive      UInt16,
    sign_ins           UInt32,
    live_sessions      UInt32,
    phase_advances     UInt32,
    submissions        UInt32,
    lessons_completed  UInt32,
    kind               LowCardinality(String),
    version            UInt64,
    computed_at        DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id, day)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS identity_links (
    tenant_id     LowCardinality(String),
    anonymous_id  String,
    user_id       String,
    linked_at     DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(linked_at)
ORDER BY (tenant_id, anonymous_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS optout_state (
    tenant_id   LowCardinality(String),
    user_id     String,
    opted_out   UInt8,
    changed_at  DateTime64(3, 'UTC'),
    version     UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- The sink's own offsets, written after each batch: on restart it resumes
-- after the last batch ClickHouse holds, whatever Kafka's commit says.
CREATE TABLE IF NOT EXISTS sink_offsets (
    topic       String,
    partition   UInt16,
    next_offset UInt64,
    written_at  DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(next_offset)
ORDER BY (topic, partition);
