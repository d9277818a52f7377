-- Jobs around the data (issue 7): exports, notifications, audit chain,
-- legal holds, retention policies, deletion requests.
-- State tables are ReplacingMergeTree on a version: a change is a newer row,
-- FINAL reads the current state.

-- Audit rows are chained per tenant: hash = sha256(prev_hash + canonical row),
-- seq counts 1, 2, 3... per tenant (api/audit/chain.py). Rows written before
-- this migration keep seq = 0 and an empty hash ("unchained", reported apart).
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS seq UInt64 DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS prev_hash String DEFAULT '';
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash String DEFAULT '';

-- One row per export and state change: queued -> running -> written (file
-- stored, link minted) -> done (notifications sent) | failed; expired once
-- the link lapsed and the object was deleted; purged by retention.
CREATE TABLE IF NOT EXISTS exports (
    export_id        String,
    tenant_id        LowCardinality(String),
    requested_by     String,
    requested_role   LowCardinality(String),
    report           LowCardinality(String),
    format           LowCardinality(String),
    params           String,
    status           LowCardinality(String),
    object_key       String,
    rows             UInt64,
    bytes            UInt64,
    error            String,
    created_at       DateTime64(3, 'UTC'),
    finished_at      Nullable(DateTime64(3, 'UTC')),
    link_expires_at  Nullable(DateTime64(3, 'UTC')),
    version          UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY export_id;

-- The in-app bell. notification_id is the idempotency key of the in-app
-- delivery, so a rerun rewrites the same row instead of adding one.
CREATE TABLE IF NOT EXISTS notifications (
    tenant_id        LowCardinality(String),
    user_id          String,
    notification_id  String,
    kind             LowCardinality(String),
    title            String,
    body             String,
    link             String,
    created_at       DateTime64(3, 'UTC'),
    read_at          Nullable(DateTime64(3, 'UTC')),
    version          UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id, notification_id);

-- Delivery log and idempotency record: one key per (event, recipient,
-- channel); each attempt is a newer version of the same key.
CREATE TABLE IF NOT EXISTS notification_deliveries (
    idem_key    String,
    tenant_id   LowCardinality(String),
    event_id    String,
    recipient   String,
    channel     LowCardinality(String),
    status      LowCardinality(String),
    attempts    UInt16,
    detail      String,
    at          DateTime64(3, 'UTC'),
    version     UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY idem_key;

CREATE TABLE IF NOT EXISTS notification_prefs (
    tenant_id     LowCardinality(String),
    user_id       String,
    email         String,
    email_opt_in  UInt8,
    version       UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id);

CREATE TABLE IF NOT EXISTS webhooks (
    tenant_id   LowCardinality(String),
    webhook_id  String,
    url         String,
    secret      String,
    active      UInt8,
    created_by  String,
    created_at  DateTime64(3, 'UTC'),
    version     UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, webhook_id);

-- kind: tenant | user | range. A range hold covers event time [from_ts, to_ts).
CREATE TABLE IF NOT EXISTS legal_holds (
    hold_id      String,
    tenant_id    LowCardinality(String),
    kind         LowCardinality(String),
    user_id      String,
    from_ts      DateTime64(3, 'UTC'),
    to_ts        DateTime64(3, 'UTC'),
    reason       String,
    created_by   String,
    created_at   DateTime64(3, 'UTC'),
    released     UInt8,
    released_at  Nullable(DateTime64(3, 'UTC')),
    version      UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, hold_id);

-- subject: an event name, or 'aggregates' / 'exports'. No row: the event
-- dictionary's retention (events), AGGREGATE_RETENTION_DAYS, EXPORT_RETENTION_DAYS.
CREATE TABLE IF NOT EXISTS retention_policies (
    tenant_id       LowCardinality(String),
    subject         String,
    retention_days  UInt32,
    deleted         UInt8,
    changed_by      String,
    version         UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, subject);

CREATE TABLE IF NOT EXISTS deletion_requests (
    request_id    String,
    tenant_id     LowCardinality(String),
    user_id       String,
    requested_by  String,
    status        LowCardinality(String),
    reason        String,
    removed       String,
    created_at    DateTime64(3, 'UTC'),
    version       UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, request_id);

-- Per-tenant purge cadence (no row: PURGE_INTERVAL_S). When a tenant was
-- last purged is read from its 'retention.purge' audit rows.
CREATE TABLE IF NOT EXISTS purge_schedules (
    tenant_id   LowCardinality(String),
    every_s     UInt32,
    deleted     UInt8,
    changed_by  String,
    version     UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant_id;
