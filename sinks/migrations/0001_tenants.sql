-- Tenants and their ingest write keys. Only a SHA-256 of each key is stored.
-- ReplacingMergeTree converges to the newest row per tenant (updated_at).
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id      String,
    name           String,
    write_key_hash String,
    pii_salt       String,
    capabilities   Array(String),
    created_at     DateTime64(3, 'UTC'),
    updated_at     DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY tenant_id;
