"""The Faust adaptation: every place the worker changes how faust-streaming,
aiokafka or rocksdict behave, in one package. Nothing outside it reads a
private attribute of theirs or imports their internals
(tests/test_architecture.py holds the rule).

faust-streaming is pinned to exactly 0.15.3: ``fixes.apply`` (run when
``app`` is imported) refuses any other version, since the patches below are
written against its internals.

Modules: ``app`` (the Faust app, its settings, how the process runs it),
``fixes`` (patches to Faust's commit and producer buffer), ``checkpoint``
(one checkpoint per commit), ``ordering`` (in-order delivery with manual
acks), ``state`` (tables with a write-back cache), ``state_check`` (local
state that no longer describes Kafka is dropped), ``producer`` (librdkafka
under Faust's producer).

Changes, each with why and the tests that prove it:

1. **Commit = checkpoint** (``fixes``: ``Consumer._commit_tps``). Faust
   takes the offsets, then flushes; with state and outputs coalesced until
   the commit, the commit instead runs ``checkpoint.Checkpoint.run``, which
   closes a gate the agents pass per record, takes the offsets of every
   acknowledged partition (not only those asked: one flushed key merges
   records of several topics) and flushes every participant, so offsets and
   state come from one moment with no record half applied. Its
   ``before_commit`` hooks (none in production) run when the checkpoint is
   in Kafka and its offsets are not committed. Proven by
   tests/test_stream.py::test_counts_match_after_kill_between_checkpoint_flush_and_commit
   (the fault is tests/support/killing_worker.py, through that hook) and
   ::test_counts_match_after_worker_sigkill_and_sink_crash.
2. **The buffer drain waits for what was buffered** (``fixes``:
   ``ProducerBuffer.put``, ``_send_pending``, ``flush``). Faust's drain gave
   up after 0.1 s without progress and counted a record gone once it left
   the queue, so a commit could pass changelog writes still in memory; a
   crash then lost state behind committed offsets. Proven by the SIGKILL
   tests of tests/test_stream.py and tests/test_restarts.py.
3. **No offset gaps** (``fixes``: ``Consumer._add_gap``). Faust marks
   skipped offsets acknowledged (meant for transaction markers), so a commit
   could pass records dropped, never applied; our topics have no
   transactions and are read in order. Proven by the SIGKILL tests of
   tests/test_stream.py.
4. **A larger producer buffer** (``fixes``: ``ProducerBuffer.max_messages``
   1000, Faust's 100 paused the agents several times a second) and **commit
   timing** (``Consumer.commit`` observed in
   ``skillstream_worker_commit_seconds``). Throughput and observability
   only: bench/stream.py, tests/test_prometheus.py
   ::test_dashboards_and_alerts_name_only_exported_metrics.
5. **In-order delivery** (``ordering.InOrder``). faust-streaming 0.15 can
   drop fetched records while its flow is suspended and go on with later
   offsets; every agent acks by hand and rewinds a partition that skipped
   or stalled, seeking in aiokafka's consumer thread (a seek from the event
   loop raced its fetcher) and setting Faust's read offset as
   ``Consumer.seek`` does. Proven by the tests of tests/test_stream.py and
   tests/test_scale_out.py (rebalances and SIGKILLs under a backlog).
6. **Sends through librdkafka** (``producer.RdKafkaProducer``, installed by
   ``app.App._new_producer``). aiokafka's sender cost ~70 µs a record; the
   producer is idempotent with ``acks=all``, counts records in generations
   so a flush waits only for what came before it, and persists each table
   partition's changelog offset once delivered. Proven by every worker test
   (tests/test_stream.py, tests/test_dead_letters.py); cost in
   docs/benchmarks.md.
7. **Tables with a write-back cache that restore to a commit**
   (``state.StateTable``, a ``faust.Table`` reading and writing rocksdict
   directly). Writes are held per key until the checkpoint, which writes
   RocksDB and one changelog record per key carrying its source offsets;
   recovery (``apply_changelog_batch``) skips records whose input was not
   committed; a rebalance clears the cache and drops what a revoked
   partition held. Proven by
   tests/test_stream.py::test_counts_match_after_kill_between_checkpoint_flush_and_commit
   (a counter restored without its membership counts twice) and
   tests/test_scale_out.py.
8. **Local state checked against Kafka** (``state_check.check_partition``,
   from ``StateTable.on_rebalance``): a partition store whose persisted
   offset is past the changelog's end, or whose changelog or cluster is
   another, is closed, removed and restored, where Faust would stop with a
   ``ConsistencyError``. Proven by
   tests/test_recreated_topics.py::test_worker_and_sink_recover_from_recreated_topics
   and ::test_disagreements_between_local_state_and_kafka.
9. **App settings** (``app.create_app``): at-least-once (faust's
   exactly_once lost records under SIGKILL), static group membership (a
   restarted worker takes its old place without a rebalance), no standby
   replicas (a standby would keep uncommitted changelog records), batched
   produce requests. Proven by the SIGKILL tests of tests/test_stream.py
   and tests/test_scale_out.py.
"""
