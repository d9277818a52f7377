"""The dashboard in headless Chromium (Debian's package, driven by Playwright;
no browser download): chart, tiles with the expected numbers, the at-risk
list, the "computed at" line, and the yellow banner when data is stale.
Screenshots are saved under tests/artifacts/."""

from __future__ import annotations

import math
import shutil
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from api.exports.model import ExportRepo, new_export
from api.imports.service import states as import_states
from api.imports.state import ImportState
from api.reports.org import Link, OrgRegistry
from api.security import issue_token
from core.settings import Settings
from tests.support import reports_data as rd

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does it)")
    with playwright.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 900},
        )
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("dash") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"d{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
    )
    live = LiveApi(settings, store, kafka_bootstrap)
    yield live
    live.close()


def _tenant(api, store, stale: bool) -> tuple[rd.Org, str]:
    tenant, _ = api.ctx.tenants.create(f"dash-{uuid.uuid4().hex[:6]}")
    org = rd.build(tenant.tenant_id, "d" + tenant.tenant_id[-4:], datetime.now(UTC).date())
    if stale:  # freshness forced old: the newest event arrived 30 minutes ago
        for e in org.events:
            e["received_at"] = datetime.now(UTC) - timedelta(minutes=30)
    rd.insert(store, org)
    repo = ExportRepo(store)
    for i, (status, age) in enumerate([("done", 1), ("done", 2), ("queued", 0), ("failed", 3),
                                       ("done", 40)]):  # fmt: skip
        e = new_export(tenant_id=org.tenant_id, user="boss", role="company_admin",
                       report="learners", fmt="csv", params={"i": i})  # fmt: skip
        repo.save(replace(e, status=status, created_at=datetime.now(UTC) - timedelta(days=age)))
    OrgRegistry(store).link_many(
        [Link(org.tenant_id, *lk) for lk in rd.links(org)], actor="test", actor_role="test"
    )
    token = issue_token(
        api.ctx.secrets.token_secret,
        tenant_id=org.tenant_id,
        tenant_name=tenant.name,
        role="company_admin",
        user_id="boss",
        ttl_s=600,
    )
    return org, token


def _open(browser, url: str):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-loaded]", timeout=20000)
    return page


def test_dashboard_shows_chart_tiles_and_numbers(browser, api, store, artifacts):
    org, token = _tenant(api, store, stale=False)
    today = datetime.now(UTC).date()
    want = rd.expected_week(org, set(org.users), rd.monday(today))
    prev = rd.expected_week(org, set(org.users), rd.monday(today) - timedelta(days=7))
    # an import of this tenant's history under way (as `skillstream import` records it)
    iid = f"imp_{uuid.uuid4().hex[:16]}"
    running = ImportState(iid, org.tenant_id, "acme", "history.csv.gz", status="sending",
                          read=12_000, accepted=11_990, rejected=10, bytes_total=1000,
                          bytes_done=300, events_per_s=2500.0, eta_s=140.0)  # fmt: skip
    import_states(api.ctx.settings).save(running)
    page = _open(browser, f"{api.url}/#token={token}")
    assert page.locator("h1").inner_text() == "Engagement · last 8 weeks"
    panel = page.locator(f"#imports [data-import='{running.import_id}']")
    panel.wait_for(timeout=10000)
    assert page.locator("#imports").is_visible()
    text = panel.inner_text()
    for part in ("30% · read 12,000 · accepted 11,990 · rejected 10", "2,500 events/s",
                 "ETA 2 min"):  # fmt: skip
        assert part in text, text
    page.wait_for_selector("#chart canvas")  # uPlot drew the chart
    value = lambda key: page.locator(f"#tile-{key} .value").inner_text()  # noqa: E731
    assert value("weekly_active_learners") == str(want["active"])
    assert value("median_engagement") == str(math.floor(want["median"] + 0.5))  # half up, as JS
    assert value("at_risk_learners") == str(want["at_risk"])
    assert value("programs_tracked") == str(want["programs"])
    assert value("completion_rate") == "16.7%"  # 2 of 12 learners completed
    delta = page.locator("#tile-weekly_active_learners .delta").inner_text()
    assert delta.startswith(f"+{want['active'] - prev['active']}")
    assert page.locator("#computed").inner_text().startswith("Computed ")
    rows = page.locator("#atrisk-table tbody tr")
    assert rows.count() == want["at_risk"]
    assert page.locator("#stale-banner").is_hidden()
    assert page.locator("#demo-banner").is_hidden()  # not a demo: no demo banner
    assert page.locator("#kpi-table tr").count() == 9  # every KPI of seed 003 we compute
    # every figure states its window, and no two figures share a name
    windows = page.locator("#tiles .window, #kpi-table .window").all_inner_texts()
    assert len(windows) == 7 + 9 and all(w.strip() for w in windows)
    assert "this week so far" in page.locator("#tile-weekly_active_learners .window").inner_text()
    names = page.locator("#tiles .label").all_text_contents()
    names += page.locator("#kpi-table td:first-child").all_text_contents()
    assert len(set(names)) == len(names), names
    assert "Active in the last 7 days" in names and "Active this week" in names
    assert page.locator("#kpi-fresh").inner_text().startswith("Computed ")
    assert value("reports_generated") == "3"  # the failed one and the 40-day-old one aside
    assert value("audit_events") == str(audit_rows(store, org.tenant_id))
    assert (
        page.locator("#tile-reports_generated .delta")
        .inner_text()
        .endswith("vs the 30 days before")
    )
    assert page.locator("#tenant-badge").is_hidden()  # a company admin has one tenant
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    page.close()


def audit_rows(store, tenant_id: str) -> int:
    return int(
        store.query(
            "SELECT count() AS n FROM audit_events WHERE tenant_id = {t:String}"
            " AND at > now64(3) - INTERVAL 30 DAY",
            {"t": tenant_id},
        )[0]["n"]
    )


def test_platform_admin_picks_a_tenant_and_the_badge_names_it(browser, api, store, artifacts):
    org, _ = _tenant(api, store, stale=False)
    name = api.ctx.tenants.by_id(org.tenant_id).name
    today = datetime.now(UTC).date()
    want = rd.expected_week(org, set(org.users), rd.monday(today))
    token = issue_token(api.ctx.secrets.token_secret, tenant_id=org.tenant_id, tenant_name=name,
                        role="platform_admin", user_id="root", ttl_s=600)  # fmt: skip
    page = _open(browser, f"{api.url}/#token={token}")
    badge = page.locator("#tenant-badge")
    assert badge.inner_text() == "All tenants"
    options = page.locator("#tenant-pick option").all_inner_texts()
    assert options[0] == "All tenants" and name in options
    page.evaluate("() => { delete document.body.dataset.loaded; }")
    page.select_option("#tenant-pick", org.tenant_id)
    page.wait_for_selector("body[data-loaded]", timeout=20000)
    assert badge.inner_text() == f"Tenant: {name}"
    value = lambda key: page.locator(f"#tile-{key} .value").inner_text()  # noqa: E731
    assert value("weekly_active_learners") == str(want["active"])
    assert value("reports_generated") == "3"
    assert value("audit_events") == str(audit_rows(store, org.tenant_id))
    # seed 003's platform-wide KPI, for platform admins only
    assert page.locator("#kpi-table tr").count() == 10
    kpi_names = page.locator("#kpi-table td:first-child").all_text_contents()
    assert any("O*NET" in n for n in kpi_names), kpi_names
    page.screenshot(path=str(artifacts / "dashboard-tenant-pick.png"), full_page=True)
    page.close()


def test_stale_banner_when_data_older_than_ten_minutes(browser, api, store, artifacts):
    _, token = _tenant(api, store, stale=True)
    page = _open(browser, f"{api.url}/#token={token}")
    banner = page.locator("#stale-banner")
    assert banner.is_visible()
    assert "stale" in banner.inner_text() and "30 minutes" in banner.inner_text()
    color = banner.evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(255, 243, 191)"  # yellow
    page.screenshot(path=str(artifacts / "dashboard-stale.png"), full_page=True)
    page.close()


def test_loading_state_instead_of_zeros_while_no_data_is_queryable(browser, api, artifacts):
    tenant, _ = api.ctx.tenants.create(f"dash-{uuid.uuid4().hex[:6]}")
    token = issue_token(
        api.ctx.secrets.token_secret,
        tenant_id=tenant.tenant_id,
        tenant_name=tenant.name,
        role="company_admin",
        user_id="boss",
        ttl_s=600,
    )
    page = browser.new_page()
    page.goto(f"{api.url}/#token={token}")
    page.wait_for_selector("#loading-text:has-text('loading history')", timeout=20000)
    assert page.locator("#main").is_hidden() and page.locator("#stale-banner").is_hidden()
    page.screenshot(path=str(artifacts / "dashboard-loading.png"))
    page.close()
