"""`skillstream`: one entry point, subcommands, --help everywhere.

Contracts other tools rely on (keep them exact):
  skillstream up                         prints the API base URL alone on a line
                                         once /health answers
  skillstream tenant create NAME         prints the tenant's write key alone on its last line
  skillstream token --tenant NAME --role ROLE [--user ID]
                                         prints a bearer token alone on its last line
"""

from __future__ import annotations

import argparse
import sys

from api.security import ROLES
from ops.settings import get_settings


def cmd_up(args: argparse.Namespace) -> int:
    from ops.stack import up

    return up(get_settings(), demo=not args.no_demo)


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from ops.control import control_for

    tenant_id, key = control_for(get_settings()).create_tenant(args.name)
    print(f"tenant {args.name} created: {tenant_id}", file=sys.stderr)
    print(key)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from ops.control import control_for

    print(control_for(get_settings()).mint_token(args.tenant, args.role, args.user))
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
        print("stopped", file=sys.stderr)
    else:
        c = KafkaCluster.load(s.kafka_dir)
        print(c.bootstrap if c and c.is_running() else "not running")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skillstream", description="SkillStream: streaming learning analytics."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole local stack in the foreground")
    up.add_argument("--no-demo", action="store_true", help="do not stream demo telemetry")
    up.set_defaults(func=cmd_up)

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

    kafka = sub.add_parser("kafka", help="fetch, start, stop or show the local Kafka")
    kafka.add_argument("action", choices=["fetch", "start", "stop", "status"])
    kafka.add_argument("--brokers", type=int, default=1, help="cluster size for start")
    kafka.set_defaults(func=cmd_kafka)
    return p


def main(argv: list[str] | None = None) -> int:
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
