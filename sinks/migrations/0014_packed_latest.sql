-- The reports' hot paths without argMax states: merging a Tuple argMax
-- state costs ~1 µs a row (the engagement chart spent 0.6 s of 0.9 s at 10M
-- events deserialising them). A learner's latest score row is instead one
-- UInt128 whose order is the row's (day, version), so a plain max() picks
-- it, as argMax by (day, version) did, and still tolerates replays:
--   bits 112..127 day (days since 1970), 48..111 version,
--   40..47 score, 32..39 at_risk, 16..31 days_inactive.
-- api/reports/queries.py:LATEST reads the fields back.

-- learner_week keeps only what the chart needs: activity and the packed
-- latest row of the week. The view is recreated with its new SELECT; rows a
-- sink inserts while it is gone are read again by the back-fill below,
-- which runs after it. API replicas of the release before read the dropped
-- columns: upgrade them together (docs/reports.md).
DROP VIEW IF EXISTS learner_week_scores_mv;

ALTER TABLE learner_week ADD COLUMN IF NOT EXISTS latest SimpleAggregateFunction(max, UInt128);

ALTER TABLE learner_week DROP COLUMN IF EXISTS last, DROP COLUMN IF EXISTS last_risk;

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_week_scores_mv TO learner_week AS
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       toUInt8(0) AS active, toUInt8(1) AS scored, max(day) AS last_day,
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16))))))) AS latest
FROM learner_scores
GROUP BY tenant_id, week, user_id, program_id, cohort_id;

-- Per learner (and program, cohort: a program owner's list filters rows
-- before merging): the latest score row of all time, packed as above, and
-- that row's components for the list's page and the exports. The list
-- shows learners whose latest row falls in its window, which is then also
-- the window's latest row.
CREATE TABLE IF NOT EXISTS learner_latest (
    tenant_id   LowCardinality(String),
    user_id     String,
    program_id  String,
    cohort_id   String,
    last_day    SimpleAggregateFunction(max, Date),
    latest      SimpleAggregateFunction(max, UInt128),
    -- the five components, program, cohort
    last        AggregateFunction(argMax,
                    Tuple(UInt32, UInt32, UInt32, UInt32, UInt32, String, String),
                    Tuple(Date, UInt64))
) ENGINE = AggregatingMergeTree
ORDER BY (tenant_id, user_id, program_id, cohort_id)
-- a page's components read a granule per learner shown: small granules keep
-- that to a few thousand states instead of 8,192 each
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_latest_mv TO learner_latest AS
SELECT tenant_id, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       max(day) AS last_day,
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16))))))) AS latest,
       argMaxState(tuple(sign_ins, live_sessions, phase_advances, submissions, lessons_completed,
                         ifNull(learner_scores.program_id, ''),
                         ifNull(learner_scores.cohort_id, '')),
                   tuple(day, version)) AS last
FROM learner_scores
GROUP BY tenant_id, user_id, program_id, cohort_id;

-- Back-fill from what the store holds (rows the views caught meanwhile
-- merge into the same maxima and states).
INSERT INTO learner_week (tenant_id, week, user_id, program_id, cohort_id, scored, last_day,
                          latest)
SELECT tenant_id, toMonday(day) AS week, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       toUInt8(1), max(day),
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16)))))))
FROM learner_scores
GROUP BY tenant_id, week, user_id, program_id, cohort_id
SETTINGS max_partitions_per_insert_block = 0;

INSERT INTO learner_latest
SELECT tenant_id, user_id, ifNull(program_id, '') AS program_id,
       ifNull(cohort_id, '') AS cohort_id, max(day),
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16))))))),
       argMaxState(tuple(sign_ins, live_sessions, phase_advances, submissions, lessons_completed,
                         ifNull(learner_scores.program_id, ''),
                         ifNull(learner_scores.cohort_id, '')),
                   tuple(day, version))
FROM learner_scores
GROUP BY tenant_id, user_id, program_id, cohort_id;
