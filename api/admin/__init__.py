"""The operator's admin operations, each defined once (``operations.py``):
``api/routes/admin.py`` serves them behind the run dir's admin secret and
``ops/control.py`` runs them for the CLI, over HTTP or against a store it
opens itself."""
