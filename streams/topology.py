"""The worker's topics and tables, declared on its Faust app.

All topics share one partition count, so Faust co-partitions them and every
table key is only ever touched by one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from core.settings import Settings
from streams.faust.state import ROCKSDB_OPTIONS, CommittedInput, StateTable
from streams.faust.state_check import ChangelogView
from streams.recovery import committed_offsets


@dataclass
class Topics:
    raw: faust.TopicT
    dead: faust.TopicT
    attributed: faust.TopicT
    links: faust.TopicT
    clean: faust.TopicT
    learner_daily: faust.TopicT
    program_weekly: faust.TopicT
    scores: faust.TopicT
    optout: faust.TopicT
    ticks: faust.TopicT
    erasure: faust.TopicT
    imports: faust.TopicT  # historical imports: raw records, applied after live ones

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def topic(name: str, raw: bool = False) -> faust.TopicT:
            return app.topic(settings.topic(name), key_serializer="raw",
                             value_serializer="raw" if raw else "json",
                             partitions=settings.topic_partitions)  # fmt: skip

        return cls(
            topic("events.raw", raw=True), topic("events.dead_letter", raw=True),
            topic("events.attributed"), topic("identity.links"), topic("events.clean"),
            topic("aggregates.learner_daily"), topic("aggregates.program_weekly"),
            topic("scores.learner"), topic("optout.state"), topic("control.recompute"),
            topic("control.erasure"), topic("events.import", raw=True),
        )  # fmt: skip


@dataclass
class Tables:
    seen: StateTable
    seen_attributed: StateTable
    links: StateTable
    links_sent: StateTable
    pending: StateTable
    optout: StateTable
    watermarks: StateTable
    learner_day: StateTable
    program_week: StateTable
    program_week_members: StateTable

    @classmethod
    def declare(
        cls, app: faust.App, settings: Settings, bootstrap: str, app_id: str, topics: Topics
    ) -> Tables:
        # table recovery keeps what committed input wrote (streams/faust/state.py)
        committed = CommittedInput(lambda: committed_offsets(bootstrap, app_id, settings))
        changelogs = ChangelogView(
            bootstrap, lambda: [t.changelog_topic.get_topic_name() for t in app.tables.values()]
        )

        def table(name: str, **kwargs: Any) -> StateTable:
            t = StateTable(app, name=name, default=None, beacon=app.tables.beacon,
                           partitions=settings.topic_partitions, key_type=str,
                           options=dict(ROCKSDB_OPTIONS), committed=committed,
                           changelogs=changelogs, **kwargs)  # fmt: skip
            app.tables.add(t)
            return t

        # A learner's day is its own output: the row the sink writes (with the
        # live score) is the table's changelog record, one record for both.
        learner_day = table("learner_day", changelog_topic=topics.learner_daily, raw_keys=True)
        return cls(
            table("dedupe"), table("dedupe_attributed"), table("identity_links"),
            table("identity_links_sent"), table("identity_pending"), table("optout"),
            table("watermarks"), learner_day, table("program_week"),
            table("program_week_members"),
        )  # fmt: skip
