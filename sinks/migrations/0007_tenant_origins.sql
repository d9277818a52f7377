-- Browser origins allowed to send a tenant's events (CORS on the ingest
-- endpoints). Removing an origin writes a newer row with removed = 1, so the
-- table converges to each origin's current state under FINAL.
CREATE TABLE IF NOT EXISTS tenant_origins (
    tenant_id   String,
    origin      String,
    removed     UInt8,
    version     DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, origin);
