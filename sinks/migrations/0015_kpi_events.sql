-- The KPIs' rare events (assessments, cohort interventions, resume uploads,
-- accepted plans) by (tenant, name, time), so a KPI reads its own events in
-- its window instead of every event of the tenant: events_by_time is
-- ordered by time alone, and events by event id. Plain MergeTree like
-- events_by_time: the KPIs count distinct event ids and take per-learner
-- minima and maxima, so a replayed row is harmless.
CREATE TABLE IF NOT EXISTS kpi_events (
    tenant_id        LowCardinality(String),
    event_name       LowCardinality(String),
    event_timestamp  DateTime64(3, 'UTC'),
    learner_id       String,
    cohort_id        String,
    readiness_score  Nullable(Float64),
    event_id         String,
    retention_days   UInt16
) ENGINE = MergeTree
PARTITION BY toYYYYMM(event_timestamp)
ORDER BY (tenant_id, event_name, event_timestamp)
TTL toDateTime(event_timestamp) + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS kpi_events_mv TO kpi_events AS
SELECT tenant_id, event_name, event_timestamp, ifNull(learner_id, '') AS learner_id,
       ifNull(cohort_id, '') AS cohort_id, readiness_score, event_id, retention_days
FROM events
WHERE event_name IN ('assessment_completed', 'cohort_assessment_assigned', 'resume_parsed',
                     'action_plan_accepted');

INSERT INTO kpi_events
SELECT tenant_id, event_name, event_timestamp, ifNull(learner_id, ''), ifNull(cohort_id, ''),
       readiness_score, event_id, retention_days
FROM events FINAL
WHERE event_name IN ('assessment_completed', 'cohort_assessment_assigned', 'resume_parsed',
                     'action_plan_accepted')
SETTINGS max_partitions_per_insert_block = 0;
