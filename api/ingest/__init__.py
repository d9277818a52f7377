"""The front door: validate, hash PII, dedupe recent retries, produce to Kafka."""
