"""Historical import: a customer's history from files or the object store,
through the same rules as live events (docs/ingestion.md, "Historical import").

  sources.py   SOURCE (file, directory, glob, s3://bucket/prefix) → the files, their format
  readers.py   a file → (row number, event) pairs: NDJSON (plain, gzip), CSV (+ a column
               mapping), Parquet; pyarrow reads CSV and Parquet, orjson each NDJSON line
  state.py     an import's progress and counts, kept in the run directory: what a second
               run resumes from, what GET /v1/imports/{id} answers
  run.py       validate (the front door's validator, the import's own age bound), hash
               PII, encode batch records, send to ``events.import``, wait for the worker,
               recompute the days it touched
"""
