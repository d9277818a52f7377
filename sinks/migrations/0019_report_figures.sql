-- The dashboard's reports kept as figures per tenant and program
-- (api/reports/figures.py): the KPIs, the engagement chart and the at-risk
-- list, each with the dashboard's parameters, computed after sink rounds
-- that brought the tenant new data, so the first view of a tenant's or a
-- program's dashboard reads rows instead of running a report's statements;
-- they survive a restart of the API.
-- program_id '' = the whole tenant; params: the report's parameters as
-- JSON; rules: a hash of the code computing them (rows of another release
-- are not read); result: the report's answer as JSON (without its scope);
-- data_fresh_as_of: the tenant's freshness read before the computation
-- (its data are at least that fresh). The erasure and the purge delete a
-- tenant's rows.
CREATE TABLE IF NOT EXISTS report_figures (
    tenant_id         LowCardinality(String),
    program_id        String,
    report            LowCardinality(String),
    params            String,
    rules             String,
    result            String,
    computed_at       DateTime64(3, 'UTC'),
    data_fresh_as_of  Nullable(DateTime64(3, 'UTC'))
) ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant_id, program_id, report, params);
