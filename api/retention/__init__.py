"""Legal holds, retention policies, the scheduled purge and erasure requests."""
