-- The sink's offsets and plans name the Kafka topic id they belong to. A
-- topic deleted and created again (or a new cluster) starts its offsets
-- from 0 under a new id, so stored offsets of the old one are never used
-- to seek in the new one, and round tokens of the new one never repeat the
-- old one's (ClickHouse would drop those inserts as duplicates). Rows
-- written before this migration have an empty id.
ALTER TABLE sink_offsets ADD COLUMN IF NOT EXISTS topic_id String AFTER topic,
    MODIFY ORDER BY (topic, partition, topic_id);
ALTER TABLE sink_plans ADD COLUMN IF NOT EXISTS topic_id String AFTER topic,
    MODIFY ORDER BY (topic, partition, topic_id);
