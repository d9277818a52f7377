"""xAPI in (issue 32): statements mapped onto our events (docs/ingestion.md, "xAPI")."""
