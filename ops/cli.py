"""`skillstream`: one entry point, subcommands, --help everywhere.

Contracts other tools rely on (keep them exact):
  skillstream up [--demo]                prints the API base URL alone on a line
                                         once /health answers
  skillstream tenant create NAME         prints the tenant's write key alone on its last line
  skillstream token --tenant NAME --role ROLE [--user ID]
                                         prints a bearer token alone on its last line
  skillstream org link|unlink --tenant NAME RELATION SUBJECT OBJECT
                                         prints `linked|unlinked RELATION SUBJECT -> OBJECT`
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from api.security import ROLES
from core.settings import get_settings


def cmd_up(args: argparse.Namespace) -> int:
    from ops.stack import up

    return up(get_settings(), demo=args.demo, workers=args.workers, brokers=args.brokers)


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import main

    main()
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from sinks.main import main

    return main()


def cmd_jobs(args: argparse.Namespace) -> int:
    from api.jobs_main import main

    return main()


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from ops.control import control_for

    tenant_id, key = control_for(get_settings()).create_tenant(args.name)
    print(f"tenant {args.name} created: {tenant_id}", file=sys.stderr)
    print(key)
    return 0


def cmd_tenant_origins(args: argparse.Namespace) -> int:
    from api.admin.operations import ORIGINS
    from ops.control import control_for

    out = control_for(get_settings()).run(
        ORIGINS, tenant=args.name, add=args.add, remove=args.remove
    )
    for origin in out["origins"]:
        print(origin)
    print(f"{len(out['origins'])} origin(s) allowed for {args.name}", file=sys.stderr)
    return 0


def add_tenant_origins_parser(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "origins",
        help="browser origins allowed to send the tenant's events (CORS; audited); "
        "prints the origins now allowed, one per line",
    )
    p.add_argument("name", help="tenant name")
    p.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="e.g. https://app.example.com (scheme, host, optional port)",
    )
    p.add_argument("--remove", action="append", default=[], metavar="ORIGIN")
    p.set_defaults(func=cmd_tenant_origins)


def _mapping(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        value, sep, role = pair.rpartition("=")
        if not sep or not value:
            raise SystemExit(f"error: --map {pair!r}: expected CLAIM_VALUE=ROLE")
        out[value] = role
    return out


def cmd_tenant_sso(args: argparse.Namespace) -> int:
    from pathlib import Path

    from api.admin.operations import TENANT_SSO
    from ops.control import control_for, running_api_url

    secret = None
    if args.client_secret_file:
        try:
            secret = Path(args.client_secret_file).read_text().strip()
        except OSError as exc:
            print(f"error: --client-secret-file: {exc}", file=sys.stderr)
            return 1
    s = get_settings()
    mapping = {
        "role_claim": args.role_claim,
        "roles": _mapping(args.map),
        "user_claim": args.user_claim,
        "learners_claim": args.learners_claim,
    }
    out = control_for(s).run(
        TENANT_SSO,
        tenant=args.name,
        issuer=args.issuer,
        client_id=args.client_id,
        client_secret=secret,
        audience=args.audience,
        domains=args.domain,
        mapping=mapping,
    )
    base = s.public_url or running_api_url(s) or "https://YOUR-SKILLSTREAM-HOST"
    print(f"sso for {out['tenant']}: {out['issuer']} client {out['client_id']}")
    print(f"redirect URI to register: {base.rstrip('/')}/v1/auth/callback")
    print(f"sign-out redirect URI: {base.rstrip('/')}/")
    roles = out["mapping"]["roles"]
    print(
        f"{len(roles)} role mapping(s) on claim {out['mapping']['role_claim']!r}"
        + ("" if roles else ": nobody can sign in until one is added")
    )
    return 0


def add_tenant_sso_parser(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser(
        "sso",
        help="the tenant's OpenID Connect provider for sign-in (by discovery; secret sealed; "
        "audited); docs/sign-in.md",
    )
    p.add_argument("name", help="tenant name")
    p.add_argument("--issuer", required=True, help="issuer URL, e.g. https://login.example.com")
    p.add_argument("--client-id", required=True)
    p.add_argument(
        "--client-secret-file",
        default=None,
        help="file holding the client secret (required the first time; never on the command line)",
    )
    p.add_argument("--audience", default=None, help="aud of API access tokens (default: client id)")
    p.add_argument("--domain", action="append", default=[], help="e-mail domain that signs in here")
    p.add_argument("--role-claim", default="groups", help="claim with groups or roles (groups)")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="VALUE=ROLE",
        help="a claim value and the role it gives; none: nobody gets in",
    )
    p.add_argument("--user-claim", default="sub", help="claim giving the user id (sub)")
    p.add_argument("--learners-claim", default=None, help="claim listing a manager's learners")
    p.set_defaults(func=cmd_tenant_sso)


def cmd_token(args: argparse.Namespace) -> int:
    from api.admin.operations import MINT_TOKEN
    from ops.control import control_for

    out = control_for(get_settings()).run(
        MINT_TOKEN, tenant=args.tenant, role=args.role, user_id=args.user
    )
    print(out["token"])
    return 0


def cmd_tenant_term(args: argparse.Namespace) -> int:
    from api.admin.operations import READINESS_TERM
    from ops.control import control_for

    print(control_for(get_settings()).run(READINESS_TERM, tenant=args.name, term=args.set)["term"])
    return 0


def cmd_tenant_xapi(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from api.admin.operations import XAPI_MAPPING
    from ops.control import control_for

    rules = json.loads(Path(args.rules).read_text()) if args.rules else None
    out = control_for(get_settings()).run(
        XAPI_MAPPING, tenant=args.name, rules=rules, persona=args.persona
    )
    print(json.dumps({"rules": out["rules"], "persona": out["persona"]}, indent=2))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from api.admin.operations import SQL
    from ops.control import control_for

    out = control_for(get_settings()).run(
        SQL, sql=args.query, format=args.format, tenant=args.tenant
    )
    sys.stdout.buffer.write(out)
    sys.stdout.flush()
    return 0


def cmd_org(args: argparse.Namespace) -> int:
    from api.admin.operations import ORG_LINK, ORG_LIST
    from ops.control import control_for

    control = control_for(get_settings())
    if args.action == "list":
        for lk in control.run(ORG_LIST, tenant=args.tenant, relation=args.relation):
            print(f"{lk['relation']}\t{lk['subject_id']}\t{lk['object_id']}")
        return 0
    control.run(ORG_LINK, tenant=args.tenant, relation=args.relation, subject_id=args.subject,
                object_id=args.object, unlink=args.action == "unlink")  # fmt: skip
    verb = "unlinked" if args.action == "unlink" else "linked"
    print(f"{verb} {args.relation} {args.subject} -> {args.object}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from api.admin.operations import AUDIT_VERIFY
    from ops.control import control_for

    verdicts = control_for(get_settings()).run(AUDIT_VERIFY, tenant=args.tenant)
    bad = 0
    for v in verdicts:
        extra = (
            f" ({v['unchained']} unchained row(s) from before the chain)" if v["unchained"] else ""
        )
        if v["ok"]:
            print(f"ok\t{v['tenant_id']}\t{v['rows']} row(s){extra}")
        else:
            bad += 1
            print(f"BROKEN\t{v['tenant_id']}\tat seq {v['broken_seq']}: {v['reason']}")
    print(f"{len(verdicts) - bad} chain(s) verified, {bad} broken")
    return 1 if bad else 0


def cmd_purge(args: argparse.Namespace) -> int:
    from api.admin.operations import PURGE
    from ops.control import control_for

    reports = control_for(get_settings()).run(PURGE, tenant=args.tenant)
    for r in reports:
        removed = ", ".join(f"{k} {v}" for k, v in r["removed"].items())
        kept = sum(r["kept_on_hold"].values())
        print(f"{r['tenant_id']}\tremoved: {removed}\tkept on hold: {kept}")
    print(f"purged {len(reports)} tenant(s)")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from api.admin.operations import HOLD_ADD, HOLD_LIST, HOLD_RELEASE
    from ops.control import control_for

    control = control_for(get_settings())
    if args.action == "list":
        for h in control.run(HOLD_LIST, tenant=args.tenant):
            what = h["user_id"] or (f"{h['from_ts']}..{h['to_ts']}" if h["kind"] == "range" else "")
            print(f"{h['hold_id']}\t{h['kind']}\t{what}\t{h['reason']}")
        return 0
    if args.action == "release":
        h = control.run(HOLD_RELEASE, tenant=args.tenant, hold_id=args.hold_id)
        print(f"released {h['hold_id']}")
        return 0
    h = control.run(HOLD_ADD, tenant=args.tenant, kind=args.kind, reason=args.reason,
                    user_id=args.user, from_ts=args.start, to_ts=args.end)  # fmt: skip
    print(f"placed {h['hold_id']}")
    return 0


def cmd_caps(args: argparse.Namespace) -> int:
    from api.admin.operations import CAPABILITIES
    from ops.control import control_for

    out = control_for(get_settings()).run(
        CAPABILITIES, tenant=args.name, enable=args.enable, disable=args.disable
    )
    print(" ".join(out["flags"]))
    return 0


def cmd_kafka(args: argparse.Namespace) -> int:
    from ops.kafka_launcher import KafkaCluster

    s = get_settings()
    if args.action == "fetch":
        from ops.kafka_launcher import fetch_jars

        print(fetch_jars(s.cache_dir, s.kafka_version))
    elif args.action == "start":
        c = KafkaCluster.ensure(
            s.kafka_dir, s.cache_dir, s.kafka_version, size=args.brokers, heap=s.kafka_heap
        )
        print(c.bootstrap)
    elif args.action == "stop":
        c = KafkaCluster.load(s.kafka_dir)
        if c:
            c.stop()
        print(f"stopped; its data stays in {s.kafka_dir}", file=sys.stderr)
    else:
        c = KafkaCluster.load(s.kafka_dir)
        print(c.bootstrap if c and c.is_running() else "not running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ops.status import print_status

    return print_status(get_settings())


SECRET_PURPOSES = {
    "token": ("token_secret", "SKILLSTREAM_TOKEN_SECRET"),
    "export-link": ("export_link_secret", "SKILLSTREAM_EXPORT_LINK_SECRET"),
    "pii": ("pii_keys", "SKILLSTREAM_PII_KEYS"),
    "webhook": ("webhook_keys", "SKILLSTREAM_WEBHOOK_KEYS"),
    "sso": ("sso_keys", "SKILLSTREAM_SSO_KEYS"),
}


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    """Local mode: a new key in the run dir's key file, used from the next start."""
    from core.processes import read_stack
    from core.secrets import rotate_local

    s = get_settings()
    field, var = SECRET_PURPOSES[args.purpose]
    if getattr(s, field):
        print(f"error: {var} is set: rotate it where it is set", file=sys.stderr)
        return 1
    if read_stack(s):  # a running API keeps the old key in memory
        print("error: the stack is running; stop it first", file=sys.stderr)
        return 1
    rotate_local(s, field)
    print(f"rotated {args.purpose} in {s.secrets_file}; effective from the next start")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from ops.status import reset

    return reset(get_settings(), confirmed=args.yes)


def _bootstrap() -> str:
    from ops.kafka_launcher import running_bootstrap

    s = get_settings()
    return running_bootstrap(s.kafka_bootstrap, s.kafka_dir)


def cmd_dlq(args: argparse.Namespace) -> int:
    from ops import dlq

    topic = get_settings().topic("events.dead_letter")
    if args.action == "list":
        letters = dlq.list_dead_letters(_bootstrap(), topic, args.limit)
        print(dlq.format_table(letters))
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    else:
        rep = dlq.replay_report(_bootstrap(), topic, step=args.step, dry_run=args.dry_run)
        if rep.no_source:
            print(
                f"{rep.no_source} letter(s) name no source topic: not replayable", file=sys.stderr
            )
        print(f"{'would replay' if args.dry_run else 'replayed'} {rep.replayed} dead letter(s)")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import lock

    if args.action == "lock":
        for name in lock.lock():
            print(f"locked {name}")
    problems = lock.check()
    for problem in problems:
        print(f"SCHEMA DRIFT {problem}", file=sys.stderr)
    print(f"{len(lock.read_lock())} published schema version(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_recompute(args: argparse.Namespace) -> int:
    from datetime import date

    from streams.recompute import request_recompute

    day = date.fromisoformat(args.date)
    n = request_recompute(_bootstrap(), get_settings(), day)
    print(f"recompute of {day.isoformat()} requested on {n} partitions")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmarks run as their own program (``python -m bench`` from the
    source tree): bench/ sits above the CLI and is not an installed package."""
    from core.settings import PROJECT_ROOT

    cmd = [sys.executable, "-m", "bench", *args.bench_args]
    return subprocess.run(cmd, cwd=PROJECT_ROOT, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skillstream", description="SkillStream: streaming learning analytics."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument(
        "--demo",
        action="store_true",
        help="stream demo telemetry and serve 'view as' demo tokens to loopback clients "
        "(local demo only: never with real data)",
    )
    # The old opt-out, now the default: still accepted so existing scripts run.
    up.add_argument("--no-demo", action="store_true", help=argparse.SUPPRESS)
    up.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="stream workers in one consumer group (each its own WORKER_ID and state)",
    )  # fmt: skip
    up.add_argument(
        "--brokers", type=int, default=None, metavar="N",
        help="size of the local Kafka cluster when up creates it (1); kept across restarts",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    worker = sub.add_parser(
        "worker", help="run one stream worker (KAFKA_BOOTSTRAP, WORKER_ID; what other hosts run)"
    )
    worker.set_defaults(func=cmd_worker)
    sink = sub.add_parser(
        "sink", help="run the Kafka → ClickHouse sink on its own (needs CLICKHOUSE_URL)"
    )
    sink.set_defaults(func=cmd_sink)
    jobs = sub.add_parser(
        "jobs",
        help="run exports, notifications, sweeps and purges on their own, sharing them "
        "with other runners under leases (needs CLICKHOUSE_URL)",
    )
    jobs.set_defaults(func=cmd_jobs)

    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")
    create = tsub.add_parser("create", help="create a tenant; prints its ingest write key")
    create.add_argument("name", help="unique tenant name")
    create.set_defaults(func=cmd_tenant_create)

    token = sub.add_parser("token", help="issue a signed bearer token")
    token.add_argument("--tenant", required=True, help="tenant name")
    token.add_argument("--role", required=True, choices=ROLES, help="role of the token")
    token.add_argument("--user", default=None, help="user id the token speaks for")
    token.set_defaults(func=cmd_token)

    sql = sub.add_parser(
        "sql",
        help="run a read-only SELECT over the analytics tables (through the running API, "
        "which owns the embedded ClickHouse); prints the result",
    )
    sql.add_argument("query", help='e.g. "SELECT event_name, count() FROM events GROUP BY 1"')
    sql.add_argument("--format", choices=["json", "csv", "parquet"], default="csv")
    sql.add_argument("--tenant", default=None, help="tenant name: only its rows (default: all)")
    sql.set_defaults(func=cmd_sql)

    org = sub.add_parser(
        "org", help="org data report scopes use: managers, mentors, program owners (audited)"
    )
    osub = org.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("link", "add a link"), ("unlink", "remove a link")):
        op = osub.add_parser(action, help=text)
        op.add_argument("--tenant", required=True, help="tenant name")
        op.add_argument("relation", choices=["manager", "mentor", "program_owner"])
        op.add_argument("subject", help="manager, mentor or program owner (user id)")
        op.add_argument("object", help="learner user id (manager, mentor) or program id (owner)")
        op.set_defaults(func=cmd_org)
    ol = osub.add_parser("list", help="show current links: relation, subject, object")
    ol.add_argument("--tenant", required=True, help="tenant name")
    ol.add_argument("--relation", default=None, choices=["manager", "mentor", "program_owner"])
    ol.set_defaults(func=cmd_org)

    create = tsub.add_parser("caps", help="set a tenant's capability flags (audited)")
    create.add_argument("name", help="tenant name")
    create.add_argument(
        "--enable",
        action="append",
        default=[],
        metavar="FLAG",
        help="bulk_export, pdf_export, audit_export, webhooks",
    )
    create.add_argument("--disable", action="append", default=[], metavar="FLAG")
    create.set_defaults(func=cmd_caps)
    add_tenant_origins_parser(tsub)
    add_tenant_sso_parser(tsub)
    term = tsub.add_parser(
        "term", help="the tenant's term for the readiness-delta KPI (audited); prints it"
    )
    term.add_argument("name", help="tenant name")
    term.add_argument("--set", choices=["month", "quarter", "half", "year"], default=None)
    term.set_defaults(func=cmd_tenant_term)
    xapi = tsub.add_parser(
        "xapi", help="the tenant's xAPI mapping rules, tried before the defaults (audited)"
    )
    xapi.add_argument("name", help="tenant name")
    xapi.add_argument("--rules", metavar="FILE", help='JSON: [{"verb", "activity_type", "event"}]')
    xapi.add_argument("--persona", choices=["student", "career_changer"], default=None)
    xapi.set_defaults(func=cmd_tenant_xapi)

    aud = sub.add_parser("audit", help="the hash-chained audit log")
    asub = aud.add_subparsers(dest="action", required=True, metavar="ACTION")
    ver = asub.add_parser("verify", help="recompute every tenant's chain; exit 1 if broken")
    ver.add_argument("--tenant", default=None, help="tenant name (default: all)")
    ver.set_defaults(func=cmd_audit_verify)

    pur = sub.add_parser("purge", help="run the retention purge (legal holds respected)")
    pur.add_argument("--now", action="store_true", required=True, help="run it now")
    pur.add_argument("--tenant", default=None, help="tenant name (default: all)")
    pur.set_defaults(func=cmd_purge)

    hold = sub.add_parser("legal-hold", help="place, list or release legal holds (audited)")
    hsub = hold.add_subparsers(dest="action", required=True, metavar="ACTION")
    hadd = hsub.add_parser("add", help="place a hold on the tenant, a user or a time range")
    hadd.add_argument("--tenant", required=True, help="tenant name")
    hadd.add_argument("--kind", required=True, choices=["tenant", "user", "range"])
    hadd.add_argument("--reason", required=True)
    hadd.add_argument("--user", default=None, help="kind=user: user id")
    hadd.add_argument("--from", dest="start", default=None, help="kind=range: ISO time")
    hadd.add_argument("--to", dest="end", default=None, help="kind=range: ISO time (exclusive)")
    hadd.set_defaults(func=cmd_hold)
    hl = hsub.add_parser("list", help="active holds: id, kind, subject, reason")
    hl.add_argument("--tenant", required=True)
    hl.set_defaults(func=cmd_hold)
    hr = hsub.add_parser("release", help="release a hold")
    hr.add_argument("--tenant", required=True)
    hr.add_argument("hold_id")
    hr.set_defaults(func=cmd_hold)

    from ops.importer import add_parser as add_import_parser

    add_import_parser(sub)

    rec = sub.add_parser("recompute", help="recompute daily engagement scores for a date")
    rec.add_argument("--date", required=True, help="UTC date, YYYY-MM-DD")
    rec.set_defaults(func=cmd_recompute)

    dlq = sub.add_parser("dlq", help="inspect and re-drive dead letters")
    dsub = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    dlist = dsub.add_parser("list", help="show dead letters: step, event, tenant, error")
    dlist.add_argument("--limit", type=int, default=None, help="show at most N")
    dlist.set_defaults(func=cmd_dlq)
    drep = dsub.add_parser("replay", help="re-produce dead letters to their source topic, once")
    drep.add_argument(
        "--step",
        default=None,
        help="only letters that failed in this step (others stay replayable)",
    )
    drep.add_argument("--dry-run", action="store_true", help="count, produce nothing")
    drep.set_defaults(func=cmd_dlq)

    sch = sub.add_parser("schemas", help="the lock of published Avro schema fingerprints")
    sch.add_argument(
        "action",
        choices=["check", "lock"],
        help="check: exit 1 if a published version changed; lock: add new versions",
    )
    sch.set_defaults(func=cmd_schemas)

    bench = sub.add_parser(
        "bench",
        help="benchmarks against same-run baselines (python -m bench --help)",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="--scale, --only, --out")
    bench.set_defaults(func=cmd_bench)

    kafka = sub.add_parser(
        "kafka", help="fetch, start, stop or show the local Kafka (stop keeps its data)"
    )
    kafka.add_argument("action", choices=["fetch", "start", "stop", "status"])
    kafka.add_argument(
        "--brokers", type=int, default=None, help="cluster size when start creates one (1)"
    )
    kafka.set_defaults(func=cmd_kafka)

    status = sub.add_parser("status", help="each process of the stack, Kafka, per-stage lag")
    status.set_defaults(func=cmd_status)

    secrets = sub.add_parser("secrets", help="keys of the run directory (local mode)")
    ssub = secrets.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    rotate = ssub.add_parser(
        "rotate",
        help="new key for one purpose: `token` refuses every token signed before from the next "
        "start; `pii`/`webhook` add a Fernet key (the API reseals under it at start)",
    )
    rotate.add_argument("purpose", choices=sorted(SECRET_PURPOSES))
    rotate.set_defaults(func=cmd_secrets_rotate)

    reset = sub.add_parser(
        "reset", help="wipe the run directory: Kafka data, state, ClickHouse, exports"
    )
    reset.add_argument("--yes", action="store_true", help="really wipe (else: list what would go)")
    reset.set_defaults(func=cmd_reset)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # options and --help belong to the bench's own parser
        return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
    args = build_parser().parse_args(argv)
    from ops.control import ControlError
    from ops.kafka_launcher import KafkaLauncherError
    from sinks.store import StoreError

    try:
        return args.func(args)
    except (ControlError, KafkaLauncherError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
