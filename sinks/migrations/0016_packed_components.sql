-- A learner's latest components without an argMax state: deserialising
-- and merging the Tuple argMax state cost ~2 µs a learner, 2.4 s of a
-- 1M-row learners CSV. The latest row's five components are packed with
-- its (day, version) in one UInt256, ordered like the row, so a plain max()
-- picks them as argMax by (day, version) did, and tolerates replays:
--   bits 224..239 day (days since 1970), 160..223 version,
--   128..159 sign_ins, 96..127 live_sessions, 64..95 phase_advances,
--   32..63 submissions, 0..31 lessons_completed.
-- The latest row's program and cohort are the key of the learner_latest
-- row holding the largest ``latest``: argMax(program_id, latest) in the
-- query. api/reports/queries.py:_COMPONENTS reads them back.
--
-- The view is recreated with its new SELECT; the back-fill below, which
-- runs after it, reads every learner's latest row again from
-- learner_scores (the purge cuts both at the same day: a learner_latest
-- row by its latest day, the score row of that day with it). API replicas of
-- the release before read the dropped column: upgrade them together.
DROP VIEW IF EXISTS learner_latest_mv;

ALTER TABLE learner_latest
    ADD COLUMN IF NOT EXISTS latest_components SimpleAggregateFunction(max, UInt256) AFTER latest;

ALTER TABLE learner_latest DROP COLUMN IF EXISTS last;

CREATE MATERIALIZED VIEW IF NOT EXISTS learner_latest_mv TO learner_latest AS
SELECT tenant_id, user_id,
       ifNull(program_id, '') AS program_id, ifNull(cohort_id, '') AS cohort_id,
       max(day) AS last_day,
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16))))))) AS latest,
       max(bitOr(bitShiftLeft(toUInt256(toUInt16(day)), 224),
           bitOr(bitShiftLeft(toUInt256(version), 160),
           bitOr(bitShiftLeft(toUInt256(sign_ins), 128),
           bitOr(bitShiftLeft(toUInt256(live_sessions), 96),
           bitOr(bitShiftLeft(toUInt256(phase_advances), 64),
           bitOr(bitShiftLeft(toUInt256(submissions), 32),
                 toUInt256(lessons_completed)))))))) AS latest_components
FROM learner_scores
GROUP BY tenant_id, user_id, program_id, cohort_id;

INSERT INTO learner_latest (tenant_id, user_id, program_id, cohort_id, last_day, latest,
                            latest_components)
SELECT tenant_id, user_id, ifNull(program_id, ''), ifNull(cohort_id, ''), max(day),
       max(bitOr(bitShiftLeft(toUInt128(toUInt16(day)), 112),
           bitOr(bitShiftLeft(toUInt128(version), 48),
                 toUInt128(bitOr(bitShiftLeft(toUInt64(score), 40),
                           bitOr(bitShiftLeft(toUInt64(at_risk), 32),
                                 bitShiftLeft(toUInt64(days_inactive), 16))))))),
       max(bitOr(bitShiftLeft(toUInt256(toUInt16(day)), 224),
           bitOr(bitShiftLeft(toUInt256(version), 160),
           bitOr(bitShiftLeft(toUInt256(sign_ins), 128),
           bitOr(bitShiftLeft(toUInt256(live_sessions), 96),
           bitOr(bitShiftLeft(toUInt256(phase_advances), 64),
           bitOr(bitShiftLeft(toUInt256(submissions), 32),
                 toUInt256(lessons_completed))))))))
FROM learner_scores
GROUP BY tenant_id, user_id, ifNull(program_id, ''), ifNull(cohort_id, '');
