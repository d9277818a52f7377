-- The KPIs kept as figures per tenant and program (api/reports/figures.py),
-- computed after sink rounds that brought the tenant new data, so the
-- first view of a tenant's or a program's KPIs reads a row instead of
-- running nine statements; they survive a restart of the API.
-- program_id '' = the whole tenant; days: the KPIs' window; rules: a hash
-- of the code computing them (rows of another release are not read);
-- items: the KPI list as JSON; data_fresh_as_of: the tenant's freshness
-- read before the computation (its data are at least that fresh). The
-- erasure and the purge delete a tenant's rows.
CREATE TABLE IF NOT EXISTS kpi_figures (
    tenant_id         LowCardinality(String),
    program_id        String,
    days              UInt16,
    rules             String,
    items             String,
    computed_at       DateTime64(3, 'UTC'),
    data_fresh_as_of  Nullable(DateTime64(3, 'UTC'))
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant_id, program_id, days);
