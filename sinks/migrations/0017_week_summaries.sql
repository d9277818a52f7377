-- The engagement chart's closed weeks, computed once per scope. Grouping a
-- week's learner_week rows per learner is the chart's cost (about 40 ms a
-- week for 85k learners); a week before the current one changes only when
-- learner_week gets a row for it (a late event, a recomputed score) or
-- loses some (erasure, purge), so its result is kept with the count of
-- writes it was computed from and reused while that count is unchanged.

-- Rows written to learner_week per tenant and week, counted by a view on
-- it (fed itself by the views on learner_scores and learner_daily); the
-- erasure and the purge add one to every week of a tenant whose
-- learner_week rows they delete, and drop its kept weeks
-- (api/reports/summaries.py:invalidate); the purge also ages kept weeks
-- with the tenant's aggregates.
CREATE TABLE IF NOT EXISTS learner_week_writes (
    tenant_id  LowCardinality(String),
    week       Date,
    writes     SimpleAggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, week);

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_week_writes_mv TO learner_week_writes AS
SELECT tenant_id, week, count() AS writes FROM learner_week GROUP BY tenant_id, week;

-- One row per computation; the newest per (tenant, scope, week) is read.
-- tenant_id '' = a platform admin's view of every tenant; scope_key: a
-- hash of the scope's filter. Rows expire: a week read again after that is
-- computed again.
CREATE TABLE IF NOT EXISTS engagement_weeks (
    tenant_id     LowCardinality(String),
    scope_key     String,
    week          Date,
    basis         UInt64,
    learners      UInt64,
    median_score  Float64,
    at_risk       UInt64,
    n_active      UInt64,
    n_programs    UInt64,
    computed_at   DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant_id, scope_key, week)
TTL toDateTime(computed_at) + INTERVAL 35 DAY;

-- Back-fill after the view exists (a row both the view and the back-fill
-- count is counted twice: harmless, only a change of the count matters).
INSERT INTO learner_week_writes
SELECT tenant_id, week, count() FROM learner_week GROUP BY tenant_id, week;
