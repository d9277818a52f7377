-- The sink's write-ahead plan: before a round of inserts, the offset range
-- of every topic-partition in it. A sink restarted after a crash inside a
-- round replays exactly those ranges first, so each table's insert is the
-- same block with the same deduplication token, and ClickHouse drops it
-- (the state machine of ClickHouse's own Kafka Connect sink, in one table).
CREATE TABLE IF NOT EXISTS sink_plans (
    topic         String,
    partition     UInt16,
    start_offset  UInt64,
    end_offset    UInt64,
    planned_at    DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(end_offset)
ORDER BY (topic, partition);
