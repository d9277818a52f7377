-- Two KPIs of seed 003 that need more than events_by_time carries, fed by
-- materialized views on the sink's clean events (envelope v3 added the
-- events). Plain MergeTree like events_by_time: a row repeated by a replay
-- is harmless, the KPIs take per-key minima and distinct event ids.

-- Action plan adherence: each roadmap task (tenant, learner, plan, task)
-- with its assignments (due date) and completions, side by side by key.
CREATE TABLE IF NOT EXISTS task_progress (
    tenant_id        LowCardinality(String),
    learner_id       String,
    plan_id          String,
    task_id          String,
    event_name       LowCardinality(String),
    event_id         String,
    event_timestamp  DateTime64(3, 'UTC'),
    due_at           Nullable(DateTime64(3, 'UTC')),
    retention_days   UInt16,
    -- the task as one number: grouping by it is twice as fast as by the strings
    task_key         UInt64 MATERIALIZED cityHash64(tenant_id, learner_id, plan_id, task_id)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_timestamp)
ORDER BY (tenant_id, learner_id, plan_id, task_id)
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS task_progress_mv TO task_progress AS
SELECT tenant_id, assumeNotNull(learner_id) AS learner_id, ifNull(plan_id, '') AS plan_id,
       JSONExtractString(properties, 'task_id') AS task_id, event_name, event_id,
       event_timestamp,
       parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'due_at'), 3, 'UTC') AS due_at,
       retention_days
FROM events
WHERE learner_id IS NOT NULL
  AND event_name IN ('roadmap_task_assigned', 'task_completion_logged');

-- ROI projection engagement: each visit to the financial planner, with the
-- app session it belongs to (a visit without one is a session of its own).
CREATE TABLE IF NOT EXISTS planner_time (
    tenant_id        LowCardinality(String),
    event_timestamp  DateTime64(3, 'UTC'),
    learner_id       String,
    session_id       String,
    event_name       LowCardinality(String),
    event_id         String,
    duration_ms      UInt64,
    retention_days   UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_timestamp)
ORDER BY (tenant_id, event_timestamp, learner_id)
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS planner_time_mv TO planner_time AS
SELECT tenant_id, event_timestamp, assumeNotNull(learner_id) AS learner_id,
       if(JSONExtractString(properties, 'session_id') = '', concat('visit:', event_id),
          JSONExtractString(properties, 'session_id')) AS session_id,
       event_name, event_id,
       toUInt64(greatest(0, JSONExtractInt(properties, 'duration_ms'))) AS duration_ms,
       retention_days
FROM events
WHERE learner_id IS NOT NULL AND event_name = 'career_changer_financial_planner_viewed';

-- Back-fill: completions stored before this migration carry their due date
-- (and a store that already took v3 events keeps them).
INSERT INTO task_progress
SELECT tenant_id, assumeNotNull(learner_id), ifNull(plan_id, ''),
       JSONExtractString(properties, 'task_id'), event_name, event_id, event_timestamp,
       parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'due_at'), 3, 'UTC'),
       retention_days
FROM events FINAL
WHERE learner_id IS NOT NULL
  AND event_name IN ('roadmap_task_assigned', 'task_completion_logged')
SETTINGS max_partitions_per_insert_block = 0;

INSERT INTO planner_time
SELECT tenant_id, event_timestamp, assumeNotNull(learner_id),
       if(JSONExtractString(properties, 'session_id') = '', concat('visit:', event_id),
          JSONExtractString(properties, 'session_id')),
       event_name, event_id, toUInt64(greatest(0, JSONExtractInt(properties, 'duration_ms'))),
       retention_days
FROM events FINAL
WHERE learner_id IS NOT NULL AND event_name = 'career_changer_financial_planner_viewed'
SETTINGS max_partitions_per_insert_block = 0;
