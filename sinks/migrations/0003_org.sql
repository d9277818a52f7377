-- Org data that report scopes are computed from, and an append-only audit
-- trail of org changes and refused report requests (issue 5; the audit-log
-- issue builds on audit_events).

-- Who relates to whom inside a tenant:
--   relation 'manager'       subject = manager user,  object = direct report (learner)
--   relation 'mentor'        subject = mentor user,   object = assigned learner
--   relation 'program_owner' subject = owner user,    object = program_id
-- One row per link; unlinking writes a newer version with deleted = 1, so the
-- history stays in the parts until merged and FINAL reads the current state.
CREATE TABLE IF NOT EXISTS org_links (
    tenant_id   LowCardinality(String),
    relation    LowCardinality(String),
    subject_id  String,
    object_id   String,
    deleted     UInt8,
    changed_by  String,
    changed_at  DateTime64(3, 'UTC'),
    version     UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, relation, subject_id, object_id);

-- Append-only: never updated or deleted. action examples: 'org.link',
-- 'org.unlink', 'report.denied'.
CREATE TABLE IF NOT EXISTS audit_events (
    at          DateTime64(3, 'UTC'),
    tenant_id   LowCardinality(String),
    actor_id    String,
    actor_role  LowCardinality(String),
    action      LowCardinality(String),
    resource    String,
    outcome     LowCardinality(String),
    detail      String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (tenant_id, at);
