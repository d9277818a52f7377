"""Capability-gated exports: job model, runner, CSV/PDF writers, object storage."""
