-- One audit chain per tenant and writer: every process that appends audit
-- rows (an API replica, a job runner) extends a chain of its own, so two
-- processes never race for one chain's head and fork it. The embedded
-- store's single process writes the chain named '' (rows from before this
-- migration are on it); processes against a server name theirs.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS writer LowCardinality(String) DEFAULT ''
    AFTER tenant_id;
