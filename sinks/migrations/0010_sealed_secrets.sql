-- Issue 18 (doors): tenants' PII salts and webhook signing secrets are stored
-- sealed (Fernet, `fernet:<token>`) with keys that never enter ClickHouse
-- (SKILLSTREAM_PII_KEYS, SKILLSTREAM_WEBHOOK_KEYS). The API seals rows left in
-- plain text by older versions at start (api/tenants.py reseal_salts,
-- api/notify/config.py reseal_secrets): that needs the key, so it is not SQL.
-- Here only the columns say so, for whoever reads system.columns.
ALTER TABLE tenants COMMENT COLUMN pii_salt 'sealed: fernet:<token>, key SKILLSTREAM_PII_KEYS (outside ClickHouse)';
ALTER TABLE webhooks COMMENT COLUMN secret 'sealed: fernet:<token>, key SKILLSTREAM_WEBHOOK_KEYS (outside ClickHouse)';
