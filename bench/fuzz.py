"""Property-based fuzzing of every HTTP endpoint from the API's own OpenAPI
document (schemathesis + hypothesis), as every kind of caller.

    python -m bench.fuzz --requests 100000      # the bench run (minutes)
    tests/test_fuzz_api.py                      # a small run in CI

Two tenants are seeded with known rows (``tests/support/reports_data``):
the callers belong to tenant A; tenant B is the victim, and every id of B
(tenant id and name, users, programs, org, hold, webhook) is a marker but
the few ids put into A's requests (A may store those strings itself). Each
operation is fuzzed in schemathesis' positive mode (valid by the schema)
and negative mode (invalid on purpose), once per profile: no credentials, a
forged token, an expired token, a token of each role, A's write key and the
operator's admin secret. One request in three has B's ids put into its
tenant/user/program/... fields, the way an attacker would try them.

Findings: any 5xx; any response to a non-global caller (everyone but
platform_admin and the operator, who see all tenants by design) that
carries a B marker the request did not carry; a transport error. After the
run the server must still answer ``/health``, ingest a batch and serve a
report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode

# the fields an attacker fills with the victim's ids, and which id goes in
INJECT = {
    "tenant_id": "tenant_id",
    "tenant": "tenant_name",
    "user_id": "user",
    "learner_id": "user",
    "subject_id": "user",
    "object_id": "user",
    "program_id": "program",
    "cohort_id": "cohort",
    "hold_id": "hold_id",
    "webhook_id": "webhook_id",
    "export_id": "export_id",
}
GLOBAL_PROFILES = ("platform_admin", "operator")  # they see every tenant by design
INVALID = ("anonymous", "garbage_token", "forged_token", "expired_token")


@dataclass(frozen=True)
class Profile:
    name: str
    headers: dict[str, str]

    @property
    def checks_leaks(self) -> bool:
        return self.name not in GLOBAL_PROFILES

    def examples(self, path: str, examples: int) -> int:
        """Credentials that cannot pass this path's door get a fifth of the
        cases: the door answers 401 before anything else runs."""
        return examples if self._opens(path) else max(1, examples // 5)

    def _opens(self, path: str) -> bool:
        if self.name in INVALID:
            return False
        doors = {"write_key": ("/v1/events", "/xapi/"), "operator": ("/v1/admin/",)}
        if self.name in doors:
            return path.startswith(doors[self.name])
        return not path.startswith(sum(doors.values(), ()))  # a role's bearer token


@dataclass
class Victim:
    """Tenant B: the ids to inject and the markers that must not leak."""

    ids: dict[str, str]
    markers: frozenset[str]


@dataclass
class Finding:
    kind: str  # "5xx", "leak", "transport"
    operation: str
    profile: str
    status: int
    detail: str
    request: str

    def key(self) -> tuple[str, str, str, int]:
        return (self.kind, self.operation, self.profile, self.status)


@dataclass
class Report:
    requests: int = 0
    seconds: float = 0.0
    by_status: Counter = field(default_factory=Counter)
    by_profile: dict[str, Counter] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    generation_errors: Counter = field(default_factory=Counter)
    operations: int = 0
    profiles: int = 0
    healthy_after: bool | None = None
    health_checks: dict[str, str] = field(default_factory=dict)

    def distinct(self) -> dict[tuple, Finding]:
        out: dict[tuple, Finding] = {}
        for f in self.findings:
            out.setdefault(f.key(), f)
        return out

    def summary(self) -> dict[str, Any]:
        kinds = Counter(f.kind for f in self.findings)
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else None,
            "operations": self.operations,
            "profiles": self.profiles,
            "status": dict(sorted(self.by_status.items())),
            "status_by_profile": {p: dict(sorted(c.items())) for p, c in self.by_profile.items()},
            "5xx": kinds["5xx"],
            "leaks": kinds["leak"],
            "transport_errors": kinds["transport"],
            "healthy_after": self.healthy_after,
            "health_checks": self.health_checks,
            "generation_errors": dict(self.generation_errors),
            "findings": [f.__dict__ for f in self.distinct().values()][:50],
        }


# --- the world: two tenants, callers of A, markers of B ----------------------------------
@dataclass
class World:
    url: str
    profiles: list[Profile]
    victim: Victim
    a_write_key: str
    a_company_admin: dict[str, str]


def seed(api: Any) -> World:
    """Tenants A and B with report rows, org links, a hold and a webhook;
    ``api`` is a running ``tests.conftest.LiveApi``."""
    from api.notify.config import add_webhook
    from api.reports.org import Link, OrgRegistry
    from api.retention.holds import place_hold
    from tests.support import reports_data as rd

    u = uuid.uuid4().hex[:8]
    ta, key_a = api.ctx.tenants.create(f"fuzz-a-{u}")
    tb, _ = api.ctx.tenants.create(f"fuzz-vic{u}")
    today = datetime.now(UTC).date()
    a, b = rd.build(ta.tenant_id, f"fa{u}", today), rd.build(tb.tenant_id, f"vic{u}", today)
    org = OrgRegistry(api.ctx.store)
    for o in (a, b):
        rd.insert(api.ctx.store, o)
        org.link_many([Link(o.tenant_id, *lk) for lk in rd.links(o)], actor="fuzz", actor_role="t")
    hold = place_hold(api.ctx.store, tenant_id=tb.tenant_id, kind="user", user_id=b.users[2],
                      from_ts=None, to_ts=None, reason=f"vic{u} litigation", actor_id="dpo",
                      actor_role="company_admin")  # fmt: skip
    # a documentation address (never dialled), allowed for this seed only
    hook = add_webhook(api.ctx.store, tb.tenant_id, f"http://192.0.2.7/vic{u}/hook", "boss",
                       api.ctx.webhook_sealer, (ip_network("192.0.2.0/24"),))  # fmt: skip
    ids = {
        "tenant_id": tb.tenant_id,
        "tenant_name": tb.name,
        "user": b.users[1],
        "program": b.owned[0],
        "cohort": b.owned[0] + "-c1",
        "hold_id": hold.hold_id,
        "webhook_id": hook.webhook_id,
        "export_id": "ex_" + u,
    }
    # Everything of B is a marker except the user, program and cohort ids that
    # are injected: A may legitimately store those strings in its own rows
    # (a link to "user X" in tenant A is A's data, not B's).
    markers = {
        tb.tenant_id,
        tb.name,
        hold.hold_id,
        hold.reason,
        hook.webhook_id,
        hook.url,
        hook.secret,
        b.manager,
        b.mentor,
        b.owner,
        *b.users,
        *b.program_of.values(),
    }
    markers -= {ids["user"], ids["program"], ids["cohort"]}  # fmt: skip
    return World(api.url, _profiles(api, ta, a, key_a), Victim(ids, frozenset(markers)),
                 key_a, _bearer(_token(api, ta, "company_admin", "boss", ttl=86400)))  # fmt: skip


def _token(api: Any, tenant: Any, role: str, user: str, ttl: int) -> str:
    from api.security import issue_token

    return issue_token(api.ctx.secrets.token_secret, tenant_id=tenant.tenant_id,
                       tenant_name=tenant.name, role=role, user_id=user, ttl_s=ttl)  # fmt: skip


def _bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def _profiles(api: Any, tenant: Any, org: Any, write_key: str) -> list[Profile]:
    from api.security import ROLES, issue_token

    users = {"platform_admin": "root", "company_admin": "boss", "program_owner": org.owner,
             "manager": org.manager, "mentor": org.mentor, "learner": org.learner,
             "analyst": "analyst"}  # fmt: skip
    forged = issue_token("not-the-secret-" + "x" * 32, tenant_id=tenant.tenant_id,
                         tenant_name=tenant.name, role="platform_admin", user_id="root",
                         ttl_s=600)  # fmt: skip
    out = [
        Profile("anonymous", {}),
        Profile("garbage_token", _bearer("not-a-token")),
        Profile("forged_token", _bearer(forged)),
        Profile("expired_token", _bearer(_token(api, tenant, "company_admin", "boss", ttl=-60))),
        Profile("write_key", _bearer(write_key)),
        Profile("operator", _bearer(api.ctx.secrets.admin_secret)),
    ]
    out += [Profile(r, _bearer(_token(api, tenant, r, users[r], ttl=86400))) for r in ROLES]
    return out


# --- the run ------------------------------------------------------------------------------
class Fuzzer:
    def __init__(self, world: World, spec: dict, report: Report | None = None) -> None:
        self.world = world
        self.schema = schemathesis.openapi.from_dict(spec)
        self.session = requests.Session()
        self.report = report or Report()
        self._n = 0

    def operations(self) -> list[Any]:
        ops = []
        for result in self.schema.get_all_operations():
            try:
                ops.append(result.ok())
            except Exception as exc:  # an operation schemathesis cannot read
                self.report.generation_errors[f"load: {exc}"[:120]] += 1
        return ops

    def round(self, examples: int, stop_at: int | None = None) -> None:
        """Every operation x mode x profile, up to ``examples`` cases each."""
        ops = self.operations()
        self.report.operations, self.report.profiles = len(ops), len(self.world.profiles)
        started = time.perf_counter()
        for op in ops:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for profile in self.world.profiles:
                    if stop_at is not None and self.report.requests >= stop_at:
                        break
                    self._pair(op, mode, profile, profile.examples(op.path, examples))
        self.report.seconds += time.perf_counter() - started

    def _pair(self, op: Any, mode: GenerationMode, profile: Profile, examples: int) -> None:
        try:
            strategy = op.as_strategy(generation_mode=mode)
        except Exception as exc:
            self.report.generation_errors[f"{op.label} {mode.value}: {exc}"[:160]] += 1
            return

        @hypothesis.settings(max_examples=examples, phases=[Phase.generate], deadline=None,
                             suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
        @hypothesis.given(strategy)
        def go(case: Any) -> None:
            self.send(op, case, profile)

        try:
            go()
        except hypothesis.errors.HypothesisException as exc:  # cannot generate for this one
            self.report.generation_errors[f"{op.label} {mode.value}: {type(exc).__name__}"] += 1

    def send(self, op: Any, case: Any, profile: Profile) -> None:
        self._n += 1
        if self._n % 3 == 0:
            _inject(case, self.world.victim.ids)
        request = _describe(case)
        self.report.requests += 1
        try:
            resp = case.call(base_url=self.world.url, session=self.session,
                             headers=profile.headers, timeout=60)  # fmt: skip
        except requests.RequestException as exc:
            self._find("transport", op, profile, 0, f"{type(exc).__name__}: {exc}", request)
            return
        self.report.by_status[resp.status_code] += 1
        self.report.by_profile.setdefault(profile.name, Counter())[resp.status_code] += 1
        text = resp.text or ""
        if resp.status_code >= 500:
            self._find("5xx", op, profile, resp.status_code, text[:300], request)
        if profile.checks_leaks:
            leaked = sorted(m for m in self.world.victim.markers if m in text and m not in request)
            if leaked:
                self._find("leak", op, profile, resp.status_code, f"{leaked}: {text[:300]}",
                           request)  # fmt: skip

    def _find(self, kind: str, op: Any, profile: Profile, status: int, detail: str,
              request: str) -> None:  # fmt: skip
        self.report.findings.append(Finding(kind, op.label, profile.name, status, detail,
                                            request[:500]))  # fmt: skip


def _inject(case: Any, ids: dict[str, str]) -> None:
    """Put the victim's ids into whichever known fields the case has."""
    for container in (case.query, case.path_parameters):
        if isinstance(container, dict):
            for name in container:
                if name in INJECT:
                    container[name] = ids[INJECT[name]]
    body = case.body
    if isinstance(body, dict):
        for name in list(body):
            if name in INJECT:
                body[name] = ids[INJECT[name]]


def _describe(case: Any) -> str:
    parts = [case.method, case.formatted_path, case.query, case.path_parameters, case.body,
             case.headers]  # fmt: skip
    return json.dumps(parts, default=repr)


def health_after(world: World) -> dict[str, Any]:
    """The server after the run: health answers, a batch is ingested, a report
    served; each check's status and, when it failed, the answer."""
    from schemas.examples import example_event

    event = example_event("session_started", client_event_id=uuid.uuid4().hex)
    answers = {
        "health": requests.get(f"{world.url}/health", timeout=30),
        "ingest": requests.post(f"{world.url}/v1/events/batch", json={"events": [event]},
                                headers=_bearer(world.a_write_key), timeout=30),
        "report": requests.get(f"{world.url}/v1/reports/kpis", headers=world.a_company_admin,
                               timeout=60),
    }  # fmt: skip
    ok = {
        "health": answers["health"].status_code == 200,
        "ingest": answers["ingest"].status_code == 200
        and len(answers["ingest"].json().get("accepted", [])) == 1,
        "report": answers["report"].status_code == 200,
    }
    return {
        name: "ok" if ok[name] else f"{r.status_code} {r.text[:300]}" for name, r in answers.items()
    }


def fuzz(api: Any, requests_target: int, examples: int) -> Report:
    """Seed, then rounds over every operation x mode x profile until
    ``requests_target`` requests went out; then the health check."""
    world = seed(api)
    spec = requests.get(f"{world.url}/openapi.json", timeout=30).json()
    fuzzer = Fuzzer(world, spec)
    while fuzzer.report.requests < requests_target:
        before = fuzzer.report.requests
        fuzzer.round(examples, stop_at=requests_target)
        r = fuzzer.report
        print(f"[fuzz] {r.requests} requests, {len(r.findings)} finding(s), {r.seconds:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        if fuzzer.report.requests == before:
            break
    checks = health_after(world)
    fuzzer.report.healthy_after = all(v == "ok" for v in checks.values())
    fuzzer.report.health_checks = checks
    return fuzzer.report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100_000, help="at least this many requests")
    ap.add_argument("--examples", type=int, default=25, help="cases per operation/mode/profile")
    ap.add_argument("--out", type=Path, default=None, help="JSON result file")
    args = ap.parse_args(argv)
    from bench.common import RESULTS, machine, now_iso

    api, stop = _start()
    try:
        report = fuzz(api, args.requests, args.examples)
    finally:
        stop()
    out = {**report.summary(), "date": now_iso(), "machine": machine(),
           "command": "python -m bench.fuzz " + " ".join(argv or sys.argv[1:])}  # fmt: skip
    path = args.out or RESULTS / f"{out['date'][:10]}-fuzz.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("findings", "machine")}, indent=2))
    print(f"→ {path}", file=sys.stderr)
    bad = out["5xx"] or out["leaks"] or out["transport_errors"] or not out["healthy_after"]
    return 1 if bad else 0


def _start() -> tuple[Any, Any]:
    """A real API (uvicorn, embedded ClickHouse in a scratch dir) on the
    bench Kafka, in this process."""
    import shutil
    import tempfile

    from bench.run import _kafka
    from core.settings import Settings
    from sinks.store import open_store
    from tests.conftest import LiveApi

    bootstrap, cluster = _kafka()
    work = Path(tempfile.mkdtemp(prefix="skillstream-fuzz-"))
    store = open_store(None, work / "clickhouse")
    settings = Settings(SKILLSTREAM_RUN_DIR=work / "run", KAFKA_BOOTSTRAP=bootstrap,
                        TOPIC_PREFIX=f"fz{uuid.uuid4().hex[:6]}", TOPIC_PARTITIONS=1,
                        INGEST_RATE_PER_S=1e9)  # fmt: skip
    api = LiveApi(settings, store, bootstrap)

    def stop() -> None:
        api.close()
        store.close()
        if cluster is not None and cluster.started_here:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)

    return api, stop


if __name__ == "__main__":
    sys.exit(main())
