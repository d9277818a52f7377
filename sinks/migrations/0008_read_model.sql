-- The reports' read model: pre-aggregated tables fed by materialized views
-- on the sink's tables, so no report reads learner_scores/learner_daily with
-- FINAL or scans a learner's whole history. Every column is a state that
-- tolerates replays and row versions (argMax by (day, version), max, min):
-- a repeated or newer row changes nothing but what it should.
-- Program and cohort are part of each key (empty string: none) so a report
-- narrowed to a program filters rows before merging, as it did on the
-- source tables. A learner-day's versions are taken to share one program:
-- a version that moved the day to another program would leave the earlier
-- program's row in place as well.

-- Per learner per ISO week: active (a counted event that week, from
-- learner_daily) and the latest score row of the week (from learner_scores).
CREATE TABLE IF NOT EXISTS learner_week (
    tenant_id   LowCardinality(String),
    week        Date,
    user_id     String,
    program_id  String,
    cohort_id   String,
    active      SimpleAggregateFunction(max, UInt8),
    scored      SimpleAggregateFunction(max, UInt8),
    last_day    SimpleAggregateFunction(max, Date),
    -- score, at_risk, days_inactive, the five components, program, cohort
    last        AggregateFunction(argMax,
                    Tuple(UInt8, UInt8, UInt16, UInt32, UInt32, UInt32, UInt32, UInt32,
                          String, String),
                    Tuple(Date, UInt64)),
    -- score, at_risk, days_inactive only: the engagement chart merges a
    -- week's states of every learner, half the time of the wide tuple
    last_risk   AggregateFunction(argMax, Tuple(UInt8, UInt8, UInt16), Tuple(Date, UInt64))
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(week)
ORDER BY (tenant_id, week, user_id, program_id, cohort_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_week_scores_mv TO learner_week AS
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       toUInt8(0) AS active, toUInt8(1) AS scored, max(day) AS last_day,
       argMaxState(tuple(score, at_risk, days_inactive, sign_ins, live_sessions,
                         phase_advances, submissions, lessons_completed,
                         ifNull(learner_scores.program_id, ''),
                         ifNull(learner_scores.cohort_id, '')),
                   tuple(day, version)) AS last,
       argMaxState(tuple(score, at_risk, days_inactive), tuple(day, version)) AS last_risk
FROM learner_scores
GROUP BY tenant_id, week, user_id, program_id, cohort_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_week_activity_mv TO learner_week AS
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       max(toUInt8(events > 0)) AS active
FROM learner_daily
GROUP BY tenant_id, week, user_id, program_id, cohort_id;

-- Per learner: the first day with a counted event and the first completion
-- (1970-01-01: none), so completion rates never read a learner's history.
CREATE TABLE IF NOT EXISTS learner_firsts (
    tenant_id     LowCardinality(String),
    user_id       String,
    program_id    String,
    cohort_id     String,
    first_active  AggregateFunction(minIf, Date, UInt8),
    first_done    AggregateFunction(minIf, Date, UInt8)
) ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, user_id, program_id, cohort_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_firsts_mv TO learner_firsts AS
SELECT tenant_id, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       minIfState(day, events > 0) AS first_active,
       minIfState(day, completions > 0) AS first_done
FROM learner_daily
GROUP BY tenant_id, user_id, program_id, cohort_id;

-- Back-fill from what the store holds. Rows the views also caught between
-- their creation and these inserts merge into the same states (idempotent).
INSERT INTO learner_week (tenant_id, week, user_id, program_id, cohort_id, scored, last_day, last,
                          last_risk)
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       toUInt8(1), max(day),
       argMaxState(tuple(score, at_risk, days_inactive, sign_ins, live_sessions,
                         phase_advances, submissions, lessons_completed,
                         ifNull(learner_scores.program_id, ''),
                         ifNull(learner_scores.cohort_id, '')),
                   tuple(day, version)),
       argMaxState(tuple(score, at_risk, days_inactive), tuple(day, version))
FROM learner_scores
GROUP BY tenant_id, week, user_id, program_id, cohort_id
SETTINGS max_partitions_per_insert_block = 0;

INSERT INTO learner_week (tenant_id, week, user_id, program_id, cohort_id, active)
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       max(toUInt8(events > 0))
FROM learner_daily
GROUP BY tenant_id, week, user_id, program_id, cohort_id
SETTINGS max_partitions_per_insert_block = 0;

INSERT INTO learner_firsts
SELECT tenant_id, user_id, ifNull(program_id, '') AS program_id,
       ifNull(cohort_id, '') AS cohort_id,
       minIfState(day, events > 0), minIfState(day, completions > 0)
FROM learner_daily
GROUP BY tenant_id, user_id, program_id, cohort_id;
