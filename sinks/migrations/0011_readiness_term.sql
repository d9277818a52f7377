-- A tenant's term for the readiness-delta KPI ('month', 'quarter', 'half',
-- 'year'); '' = the READINESS_TERM default (calendar quarter).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS readiness_term LowCardinality(String) DEFAULT '';
