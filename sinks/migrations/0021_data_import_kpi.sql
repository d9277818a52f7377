-- The data freshness SLA's rows (api/reports/kpis.py, "% of O*NET updates
-- processed within 48 hours of release"): data_import_completed events join
-- the KPIs' rare events, with the dataset and the release's and the job's
-- times from their properties (epoch milliseconds as the worker writes
-- them, or ISO 8601). No learner: the erasure never matches them; they
-- follow their event's retention like the table's other rows.
ALTER TABLE kpi_events ADD COLUMN IF NOT EXISTS dataset LowCardinality(String) DEFAULT '';
ALTER TABLE kpi_events ADD COLUMN IF NOT EXISTS released_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE kpi_events ADD COLUMN IF NOT EXISTS completed_at Nullable(DateTime64(3, 'UTC'));

DROP VIEW IF EXISTS kpi_events_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS kpi_events_mv TO kpi_events AS
SELECT tenant_id, event_name, event_timestamp, ifNull(learner_id, '') AS learner_id,
       ifNull(cohort_id, '') AS cohort_id, readiness_score, event_id, retention_days,
       if(event_name = 'data_import_completed', JSONExtractString(properties, 'dataset'), '')
           AS dataset,
       if(event_name = 'data_import_completed',
          if(JSONType(properties, 'released_at') = 'String', parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'released_at'), 3, 'UTC'), if(JSONHas(properties, 'released_at'), fromUnixTimestamp64Milli(JSONExtractInt(properties, 'released_at'), 'UTC'), NULL)), NULL) AS released_at,
       if(event_name = 'data_import_completed',
          if(JSONType(properties, 'completed_at') = 'String', parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'completed_at'), 3, 'UTC'), if(JSONHas(properties, 'completed_at'), fromUnixTimestamp64Milli(JSONExtractInt(properties, 'completed_at'), 'UTC'), NULL)), NULL) AS completed_at
FROM events
WHERE event_name IN ('assessment_completed', 'cohort_assessment_assigned', 'resume_parsed',
                     'action_plan_accepted', 'data_import_completed');

-- the telemetry already sunk (the KPI takes each release's first completion:
-- a row also written by the view meanwhile is harmless)
INSERT INTO kpi_events (tenant_id, event_name, event_timestamp, learner_id, cohort_id,
                        readiness_score, event_id, retention_days, dataset, released_at,
                        completed_at)
SELECT tenant_id, event_name, event_timestamp, ifNull(learner_id, ''), ifNull(cohort_id, ''),
       readiness_score, event_id, retention_days, JSONExtractString(properties, 'dataset'),
       if(JSONType(properties, 'released_at') = 'String', parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'released_at'), 3, 'UTC'), if(JSONHas(properties, 'released_at'), fromUnixTimestamp64Milli(JSONExtractInt(properties, 'released_at'), 'UTC'), NULL)),
       if(JSONType(properties, 'completed_at') = 'String', parseDateTime64BestEffortOrNull(JSONExtractString(properties, 'completed_at'), 3, 'UTC'), if(JSONHas(properties, 'completed_at'), fromUnixTimestamp64Milli(JSONExtractInt(properties, 'completed_at'), 'UTC'), NULL))
FROM events FINAL
WHERE event_name = 'data_import_completed'
SETTINGS max_partitions_per_insert_block = 0;
