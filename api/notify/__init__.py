"""Notifications: one fan-out job to the in-app bell, email, webhooks and the
``reports.ready`` topic, exactly once per recipient and channel."""
