"""Pipeline steps, one transformation each: decode → dedupe → identity →
opt-out → enrich → emit."""
