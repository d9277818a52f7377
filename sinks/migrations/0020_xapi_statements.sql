-- xAPI (docs/ingestion.md, "xAPI"): every accepted statement, as the API
-- stored it (actor pseudonymised: no raw e-mail or name), for
-- `GET /xapi/statements?statementId=`, the 409 on a statement id re-sent
-- with other content (content_hash), and analysts. The event a statement
-- became goes through Kafka like any other; this row is written by the API
-- once Kafka acknowledged it. One row per (tenant, statement id).
CREATE TABLE IF NOT EXISTS xapi_statements (
    tenant_id       LowCardinality(String),
    statement_id    String,
    content_hash    String,
    event_name      LowCardinality(String),
    verb_id         String,
    object_id       String,
    activity_type   String,
    voided_id       String DEFAULT '',
    learner_id      Nullable(String),
    anonymous_id    String,
    score_scaled    Nullable(Float64),
    success         Nullable(UInt8),
    completion      Nullable(UInt8),
    duration_ms     Nullable(Int64),
    timestamp       DateTime64(3, 'UTC'),
    stored          DateTime64(3, 'UTC'),
    statement       String
) ENGINE = ReplacingMergeTree(stored)
ORDER BY (tenant_id, statement_id);

-- A tenant's own xAPI mapping rules, tried before the defaults
-- (`skillstream tenant xapi`); the newest row per tenant wins.
CREATE TABLE IF NOT EXISTS xapi_mappings (
    tenant_id   String,
    rules       String,
    persona     String,
    version     DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant_id;
