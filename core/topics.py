"""Kafka topics SkillStream uses, created at start-up (idempotent)."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from core.settings import Settings

# name -> extra topic config. Names get the settings' prefix.
COMPACT = {"cleanup.policy": "compact"}
TOPICS: dict[str, dict[str, str]] = {
    "events.raw": {},  # the front door's output, keyed tenant:learner
    "events.import": {},  # historical imports (api/imports/): same records, lower priority
    "events.dead_letter": {"retention.ms": str(30 * 24 * 3600 * 1000)},
    "events.attributed": {},  # anonymous events forwarded to their user's partition
    "identity.links": {},  # anonymous_id -> user_id, keyed tenant:anonymous_id
    "events.clean": {},  # deduped, attributed, opt-out enforced
    "aggregates.learner_daily": COMPACT,  # full rows, newest version per key
    "aggregates.program_weekly": COMPACT,
    "scores.learner": COMPACT,
    "optout.state": COMPACT,
    "control.recompute": {},  # recompute ticks, one per partition
    "control.erasure": {},  # erasure requests, keyed tenant:user (or tenant:anonymous_id)
    "control.jobs": {},  # never written: its partitions are the job runners' leases
    "reports.ready": {},  # export finished (Avro, schemas/avro/reports_ready.v1.avsc)
}


def topic_names(settings: Settings) -> list[str]:
    return [settings.topic(name) for name in TOPICS]


def existing_partitions(bootstrap: str, settings: Settings) -> int | None:
    """Partitions of the existing raw topic (None when it does not exist yet):
    a topic keeps its count whatever TOPIC_PARTITIONS says later."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    md = admin.list_topics(timeout=10).topics.get(settings.topic("events.raw"))
    return len(md.partitions) if md is not None and md.partitions else None


def durability(admin: AdminClient) -> tuple[int, dict[str, str]]:
    """Replication factor and config for a new topic on this cluster: three
    copies where there are three brokers, and a write (acks=all) needs two
    of them, so one broker can be down without losing or refusing data."""
    replicas = min(3, len(admin.list_topics(timeout=10).brokers))
    return replicas, {"min.insync.replicas": "2" if replicas >= 3 else "1"}


def ensure_topics(
    bootstrap: str,
    settings: Settings,
    names: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create missing topics; return the names created now."""
    wanted = TOPICS if names is None else names
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    existing = set(admin.list_topics(timeout=10).topics)
    replicas, safety = durability(admin)
    new = [
        NewTopic(
            settings.topic(name),
            num_partitions=settings.topic_partitions,
            replication_factor=replicas,
            config={"retention.ms": str(settings.topic_retention_ms), **safety, **extra},
        )
        for name, extra in wanted.items()
        if settings.topic(name) not in existing
    ]
    if not new:
        return []
    created = []
    for topic, fut in admin.create_topics(new, operation_timeout=15).items():
        try:
            fut.result()
            created.append(topic)
        except Exception as exc:  # a concurrent creator won the race: fine
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
