-- The KPIs' and freshness's read model, fed by materialized views on the
-- sink's clean events. ``events`` is ordered by (tenant_id, event_id) for
-- its deduplication, so a time window read it whole; these are ordered for
-- the windows the reports ask. A row repeated by a replay (before events'
-- own merge removes it) is harmless: every report over these tables counts
-- distinct event ids or learners and takes minima, maxima and argMin/argMax.

-- Identified learners' events, narrow, in time order per tenant.
CREATE TABLE IF NOT EXISTS events_by_time (
    tenant_id        LowCardinality(String),
    event_timestamp  DateTime64(3, 'UTC'),
    event_id         String,
    event_name       LowCardinality(String),
    learner_id       String,
    persona          LowCardinality(String),
    readiness_score  Nullable(Float64),
    due_at           Nullable(DateTime64(3, 'UTC')),
    retention_days   UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_timestamp)
ORDER BY (tenant_id, event_timestamp, learner_id)
-- rows follow their event's retention; a legal hold keeps the raw event only
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_by_time_mv TO events_by_time AS
SELECT tenant_id, event_timestamp, event_id, event_name, assumeNotNull(learner_id) AS learner_id,
       persona, readiness_score,
       if(event_name = 'task_completion_logged',
          parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'due_at'), 3, 'UTC'),
          NULL) AS due_at,
       retention_days
FROM events WHERE learner_id IS NOT NULL;

-- Per identified learner: first event (time and persona) and first guided
-- onboarding completion (1970: none), so onboarding never reads history.
CREATE TABLE IF NOT EXISTS learner_event_firsts (
    tenant_id   LowCardinality(String),
    learner_id  String,
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    persona     AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    onboarded   AggregateFunction(minIf, DateTime64(3, 'UTC'), UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, learner_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_event_firsts_mv TO learner_event_firsts AS
SELECT tenant_id, assumeNotNull(learner_id) AS learner_id, min(event_timestamp) AS first_seen,
       argMinState(toString(persona), event_timestamp) AS persona,
       minIfState(event_timestamp, event_name = 'student_onboarding_completed') AS onboarded
FROM events WHERE learner_id IS NOT NULL
GROUP BY tenant_id, learner_id;

-- Newest received_at per tenant: the freshness a report states when no sink
-- runs in this process.
CREATE TABLE IF NOT EXISTS tenant_freshness (
    tenant_id    LowCardinality(String),
    received_at  SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = AggregatingMergeTree
ORDER BY tenant_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS tenant_freshness_mv TO tenant_freshness AS
SELECT tenant_id, max(received_at) AS received_at FROM events GROUP BY tenant_id;

-- Back-fill (rows the views also caught meanwhile merge harmlessly).
INSERT INTO events_by_time
SELECT tenant_id, event_timestamp, event_id, event_name, assumeNotNull(learner_id), persona,
       readiness_score,
       if(event_name = 'task_completion_logged',
          parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'due_at'), 3, 'UTC'),
          NULL),
       retention_days
FROM events FINAL WHERE learner_id IS NOT NULL
SETTINGS max_partitions_per_insert_block = 0;

INSERT INTO learner_event_firsts
SELECT tenant_id, assumeNotNull(learner_id), min(event_timestamp),
       argMinState(toString(persona), event_timestamp),
       minIfState(event_timestamp, event_name = 'student_onboarding_completed')
FROM events WHERE learner_id IS NOT NULL
GROUP BY tenant_id, learner_id;

INSERT INTO tenant_freshness
SELECT tenant_id, max(received_at) FROM events GROUP BY tenant_id;
