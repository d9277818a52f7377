"""Role × endpoint matrix over the real API: every role sees exactly its rows,
anything outside is a 403 (audited), and tenant A never sees tenant B."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.reports.org import Link, OrgRegistry
from api.security import ROLE_CAPABILITIES, ROLES, issue_token
from core.settings import Settings
from tests.support import reports_data as rd

# roles that read reports (an analyst queries SQL instead: tests/test_analyst_sql.py)
REPORT_ROLES = tuple(r for r in ROLES if "reports" in ROLE_CAPABILITIES[r])

ENDPOINTS = ("engagement", "learners", "kpis")


class World:
    def __init__(self, api, a: rd.Org, b: rd.Org, names: dict[str, str]) -> None:
        self.api, self.a, self.b, self.names = api, a, b, names

    def token(self, role: str, org: rd.Org | None = None, user: str | None = None, ttl=600):
        org = org or self.a
        default = {
            "platform_admin": "root",
            "company_admin": "boss",
            "program_owner": org.owner,
            "manager": org.manager,
            "mentor": org.mentor,
            "learner": org.learner,
        }[role]
        return issue_token(
            self.api.ctx.secrets.token_secret,
            tenant_id=org.tenant_id,
            tenant_name=self.names[org.tenant_id],
            role=role,
            user_id=user or default,
            ttl_s=ttl,
        )

    def get(self, path: str, role: str, org: rd.Org | None = None, headers=None, **params):
        h = {"Authorization": f"Bearer {self.token(role, org)}", **(headers or {})}
        return httpx.get(f"{self.api.url}{path}", params=params, headers=h, timeout=30)


@pytest.fixture(scope="module")
def world(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("reports") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"r{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
    )
    api = LiveApi(settings, store, kafka_bootstrap)
    u = uuid.uuid4().hex[:6]
    ta, _ = api.ctx.tenants.create(f"rep-a-{u}")
    tb, _ = api.ctx.tenants.create(f"rep-b-{u}")
    today = datetime.now(UTC).date()
    a = rd.build(ta.tenant_id, f"a{u}", today)
    b = rd.build(tb.tenant_id, f"b{u}", today)
    org = OrgRegistry(store)
    for o in (a, b):
        rd.insert(store, o)
        org.link_many(
            [Link(o.tenant_id, *lk) for lk in rd.links(o)], actor="test", actor_role="test"
        )
    yield World(api, a, b, {ta.tenant_id: ta.name, tb.tenant_id: tb.name})
    api.close()


def _learner_ids(r: httpx.Response) -> set[str]:
    assert r.status_code == 200, r.text
    return {i["user_id"] for i in r.json()["items"]}


def _every_learner(world, role: str) -> set[str]:
    """Every page of the learner list (other tests' learners share the store)."""
    got: set[str] = set()
    for page in range(1, 1000):
        r = world.get("/v1/reports/learners", role, page_size=500, page=page)
        ids = _learner_ids(r)
        got |= ids
        if len(got) >= r.json()["total"] or not ids:
            return got
    raise AssertionError("the learner list never ended")


@pytest.mark.parametrize("role", REPORT_ROLES)
def test_each_role_sees_exactly_its_rows(world, role):
    a, b = world.a, world.b
    want = rd.visible(a, role)
    today = datetime.now(UTC).date()
    this_week, last_week = rd.monday(today), rd.monday(today) - timedelta(days=7)
    # platform_admin looks at tenant A explicitly (global is checked below)
    scope = {"tenant_id": a.tenant_id} if role == "platform_admin" else {}

    # engagement: tiles against ground truth over exactly the visible learners
    r = world.get("/v1/reports/engagement", role, weeks=8, **scope)
    assert r.status_code == 200, r.text
    body = r.json()
    cur, prev = rd.expected_week(a, want, this_week), rd.expected_week(a, want, last_week)
    tiles = body["tiles"]
    assert tiles["weekly_active_learners"]["value"] == cur["active"]
    assert tiles["weekly_active_learners"]["previous"] == prev["active"]
    assert tiles["median_engagement"]["value"] == cur["median"]
    assert tiles["median_engagement"]["previous"] == prev["median"]
    assert tiles["at_risk_learners"]["value"] == cur["at_risk"]
    assert tiles["at_risk_learners"]["delta"] == cur["at_risk"] - prev["at_risk"]
    assert tiles["programs_tracked"]["value"] == cur["programs"]
    completed = {u for u in want if u.endswith("0")}
    assert tiles["completion_rate"]["value"] == round(len(completed) / len(want), 4)
    assert len(body["series"]) == 8 and body["series"][-1]["week"] == this_week.isoformat()
    assert body["series"][-1]["target"] == 70.0
    assert body["computed_at"] and body["data_fresh_as_of"]

    # learners: exactly the visible set; the mentor is refused (aggregates only)
    r = world.get("/v1/reports/learners", role, page_size=500, **scope)
    if role == "mentor":
        assert r.status_code == 403 and "aggregates" in r.json()["detail"]
    else:
        assert _learner_ids(r) == want
        assert r.json()["total"] == len(want)

    # kpis: WAU counts exactly the visible learners' sign-ins
    r = world.get("/v1/reports/kpis", role, **scope)
    assert r.status_code == 200, r.text
    kpi = {k["key"]: k for k in r.json()["kpis"]}
    assert kpi["wau"]["value"] == len(want)
    mentees = set(a.mentees) & want
    assert kpi["advisee_activation_30d"]["denominator"] == len(mentees)
    assert kpi["advisee_activation_30d"]["numerator"] == len(mentees)

    # tenant B never leaks into A's answers, whatever the headers say
    spoof = {"X-Tenant-Id": b.tenant_id, "X-Forwarded-User": b.learner}
    if role != "mentor":
        r = world.get("/v1/reports/learners", role, headers=spoof, page_size=500, **scope)
        assert not _learner_ids(r) & set(b.users)


@pytest.mark.parametrize("role", [r for r in REPORT_ROLES if r != "platform_admin"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_other_tenant_is_403_for_every_role(world, role, endpoint):
    r = world.get(f"/v1/reports/{endpoint}", role, tenant_id=world.b.tenant_id)
    assert r.status_code == 403, r.text
    assert "outside this token's tenant" in r.json()["detail"]


def _forbidden(world, role: str) -> list[dict]:
    a, b = world.a, world.b
    outsider = next(u for u in a.users if u not in rd.visible(a, role))
    return {
        "program_owner": [
            {"program_id": f"{a.owner}-nope"},
            {"program_id": a.program_of[a.users[1]]},
        ],
        "manager": [{"user_id": outsider}, {"user_id": b.users[0]}],
        "mentor": [{"user_id": a.mentees[0]}, {"user_id": outsider}],
        "learner": [{"user_id": outsider}, {"user_id": b.learner}],
    }.get(role, [])


@pytest.mark.parametrize("role", ["program_owner", "manager", "mentor", "learner"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_parameters_outside_scope_are_403_and_audited(world, role, endpoint, store):
    for params in _forbidden(world, role):
        r = world.get(f"/v1/reports/{endpoint}", role, **params)
        assert r.status_code == 403, (params, r.text)
    rows = store.query(
        "SELECT count() AS n FROM audit_events WHERE tenant_id = {t:String}"
        " AND action = 'report.denied' AND actor_role = {r:String} AND resource = {e:String}",
        {"t": world.a.tenant_id, "r": role, "e": endpoint},
    )
    assert int(rows[0]["n"]) >= len(_forbidden(world, role))


def test_narrowing_inside_scope_is_allowed(world):
    a = world.a
    r = world.get("/v1/reports/learners", "manager", user_id=a.reports[0])
    assert _learner_ids(r) == {a.reports[0]}
    r = world.get("/v1/reports/learners", "program_owner", program_id=a.owned[0], page_size=500)
    assert _learner_ids(r) == rd.visible(a, "program_owner")
    r = world.get("/v1/reports/learners", "company_admin", program_id="nope")
    assert _learner_ids(r) == set()


def test_platform_admin_global_and_tenant_pick(world):
    a, b = world.a, world.b
    both = rd.visible(a, "company_admin") | rd.visible(b, "company_admin")
    got = _every_learner(world, "platform_admin")
    assert both <= got  # global: every tenant (the session store holds other tests' too)
    r = world.get("/v1/reports/learners", "platform_admin", tenant_id=b.tenant_id, page_size=500)
    assert _learner_ids(r) == set(b.users)
    r = world.get("/v1/reports/engagement", "platform_admin")
    assert r.status_code == 200 and r.json()["scope"]["tenant_id"] is None


def test_pagination_and_sort(world):
    r = world.get("/v1/reports/learners", "company_admin", sort="-score", page_size=5, page=1)
    first = r.json()
    assert first["total"] == 12 and len(first["items"]) == 5
    scores = [i["score"] for i in first["items"]]
    assert scores == sorted(scores, reverse=True)
    page3 = world.get("/v1/reports/learners", "company_admin", sort="-score", page_size=5, page=3)
    assert len(page3.json()["items"]) == 2
    assert world.get("/v1/reports/learners", "company_admin", sort="evil;DROP").status_code == 422
    risky = world.get("/v1/reports/learners", "company_admin", at_risk="true").json()
    assert risky["total"] == 3 and all(i["at_risk"] for i in risky["items"])


def test_survey_free_text_redacted_below_company_admin(world):
    a = world.a
    user = a.reports[0]  # an even learner: has a survey answer
    path = f"/v1/reports/learners/{user}/events"

    def texts(role):
        r = world.get(path, role)
        assert r.status_code == 200, r.text
        return [
            i["properties"].get("free_text")
            for i in r.json()["items"]
            if i["event_name"] == "survey_response_submitted"
        ]

    assert texts("company_admin") == [rd.FREE_TEXT]
    assert texts("manager") == ["[redacted]"]
    assert world.get(path, "mentor").status_code == 403
    assert world.get(path, "learner").status_code == 403  # not themselves


def test_tokens_expired_or_forged_are_401(world):
    expired = world.token("company_admin", ttl=-5)
    r = httpx.get(
        f"{world.api.url}/v1/reports/engagement",
        headers={"Authorization": f"Bearer {expired}"},
        timeout=10,
    )
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    forged = issue_token(
        "not-the-secret-but-long-enough-for-hs256-0123",
        tenant_id=world.a.tenant_id,
        tenant_name="x",
        role="platform_admin",
        user_id="x",
        ttl_s=60,
    )
    r = httpx.get(
        f"{world.api.url}/v1/reports/kpis",
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )
    assert r.status_code == 401
    assert httpx.get(f"{world.api.url}/v1/reports/kpis", timeout=10).status_code == 401


def test_org_links_api_scoped_and_audited(world, store):
    a, b = world.a, world.b
    new = a.users[-1]
    body = {"relation": "manager", "subject_id": a.manager, "object_id": new}

    def post(role, org, payload, path="/v1/org/links"):
        return httpx.post(
            f"{world.api.url}{path}",
            json=payload,
            headers={"Authorization": f"Bearer {world.token(role, org)}"},
            timeout=10,
        )

    assert post("manager", a, body).status_code == 403
    assert post("company_admin", a, {**body, "tenant_id": b.tenant_id}).status_code == 403
    assert post("company_admin", a, body).status_code == 201
    r = world.get("/v1/reports/learners", "manager", page_size=500)
    assert new in _learner_ids(r)
    assert post("company_admin", a, body, "/v1/org/links/delete").status_code == 200
    r = world.get("/v1/reports/learners", "manager", page_size=500)
    assert new not in _learner_ids(r)
    r = world.get("/v1/org/links", "company_admin", relation="manager")
    assert {lk["object_id"] for lk in r.json()} == set(a.reports)
    actions = {
        row["action"]
        for row in store.query(
            "SELECT DISTINCT action FROM audit_events WHERE tenant_id = {t:String}",
            {"t": a.tenant_id},
        )
    }
    assert {"org.link", "org.unlink"} <= actions


def test_freshness_and_health(world):
    r = world.get("/v1/reports/engagement", "company_admin")
    fresh = datetime.fromisoformat(r.json()["data_fresh_as_of"].replace("Z", "+00:00"))
    want = max(e["received_at"] for e in world.a.events)
    assert abs((fresh - want).total_seconds()) < 1
    h = httpx.get(f"{world.api.url}/health", timeout=10).json()
    assert {"status", "ingest_lag_ms", "data_fresh_as_of", "kafka", "store"} <= set(h)
    time.sleep(0)  # /metrics carries the report histogram once a report ran
    text = httpx.get(f"{world.api.url}/metrics", timeout=10).text
    assert "skillstream_report_seconds_count" in text
    assert "skillstream_report_denied_total" in text


def test_together_keeps_order_raises_and_nests():
    """A report's queries run together: results in call order, a failing
    call's error reaches the caller, and calls nested far past the pool's
    size all finish (a queued call runs in the waiting thread instead)."""
    from api.reports.common import together

    def slow(i: int) -> int:
        time.sleep(0.01)
        return i

    assert together(*(lambda i=i: slow(i) for i in range(10))) == list(range(10))

    def boom() -> int:
        raise ValueError("no such table")

    with pytest.raises(ValueError):
        together(lambda: 1, boom, lambda: 3)

    def inner(i: int) -> list[int]:
        return together(*(lambda j=j: slow(10 * i + j) for j in range(5)))

    got = together(*(lambda i=i: inner(i) for i in range(12)))
    assert got == [[10 * i + j for j in range(5)] for i in range(12)]


def test_a_first_kpi_view_reads_kept_figures_then_the_keeper_refreshes_it(world, store):
    """A tenant's first KPI view over HTTP is its kept figures row (computed
    an hour ago here, and saying so), and the keeper computes the result
    afresh in the background right after: the next polls show it."""
    from api.reports import figures
    from api.reports.kpis import kpis
    from api.reports.scope import Scope

    tenant, _ = world.api.ctx.tenants.create(f"rep-fig-{uuid.uuid4().hex[:6]}")
    org = rd.build(tenant.tenant_id, f"g{uuid.uuid4().hex[:4]}", datetime.now(UTC).date())
    rd.insert(store, org)
    world.names[tenant.tenant_id] = tenant.name
    row = figures.compute(store, (tenant.tenant_id, ""), "kpis", None)
    hour_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    store.insert("report_figures", [{**row, "computed_at": hour_ago}])  # its data: as now
    first = world.get("/v1/reports/kpis", "company_admin", org, days=30)
    assert first.status_code == 200, first.text
    stated = hour_ago.isoformat().replace("+00:00", "Z")
    assert first.json()["computed_at"].startswith(stated[:19])
    assert first.json()["kpis"] == kpis(store, Scope("company_admin", "b", tenant.tenant_id,
                                                     None, None), days=30)["kpis"]  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = world.get("/v1/reports/kpis", "company_admin", org, days=30).json()
        if not got["computed_at"].startswith(stated[:19]):
            break
        time.sleep(0.2)
    fresh = max(e["received_at"] for e in org.events)
    assert got["data_fresh_as_of"] == fresh.isoformat().replace("+00:00", "Z")
    assert [k["key"] for k in got["kpis"]] == [k["key"] for k in first.json()["kpis"]]
