"""Sign-in with the customer's identity provider against a real OpenID
Certified provider (npm's oidc-provider under node, tests/support/oidc.py):
the `tenant sso` operation (CLI and HTTP, audited, secret sealed), the
provider's access tokens verified by JWKS and every refusal, sessions from
the code flow with PKCE/state/nonce, CSRF, sign-out, key rotation, and a
tenant's provider never yielding another tenant. docs/sign-in.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import urljoin

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from api.reports.org import Link, OrgRegistry
from api.security import issue_token
from core.settings import Settings
from tests.support import oidc
from tests.support import reports_data as rd
from tests.test_dashboard import browser  # noqa: F401 (the headless Chromium fixture)

pytestmark = pytest.mark.stack  # node runs the provider

ACCOUNTS: dict[str, dict] = {}  # filled per module: login -> claims


@pytest.fixture(scope="module")
def api(tmp_path_factory, store, kafka_bootstrap):
    from tests.conftest import LiveApi

    settings = Settings(
        SKILLSTREAM_RUN_DIR=tmp_path_factory.mktemp("signin") / "run",
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOPIC_PREFIX=f"si{uuid.uuid4().hex[:8]}",
        TOPIC_PARTITIONS=1,
        OIDC_JWKS_TTL_S=2,
        OIDC_JWKS_MIN_REFRESH_S=0,
    )
    live = LiveApi(settings, store, kafka_bootstrap)
    yield live
    live.close()


def _org(api, store, name: str) -> rd.Org:
    tenant, _ = api.ctx.tenants.create(name)
    org = rd.build(tenant.tenant_id, "s" + tenant.tenant_id[-4:], datetime.now(UTC).date())
    rd.insert(store, org)
    links = [Link(org.tenant_id, *lk) for lk in rd.links(org)]
    OrgRegistry(store).link_many(links, actor="test", actor_role="test")
    return org


@pytest.fixture(scope="module")
def world(api, store, tmp_path_factory):
    """Two tenants, one provider with a client (and an API audience) for each."""
    suffix = uuid.uuid4().hex[:6]
    acme, globex = _org(api, store, f"acme-{suffix}"), _org(api, store, f"globex-{suffix}")
    accounts = {
        "mia": {"groups": ["ss-managers"], "employee_id": acme.manager, "email": "mia@acme.test"},
        "leo": {"groups": ["ss-learners"], "employee_id": acme.learner},
        "ada": {"groups": ["ss-admins"], "employee_id": "ada"},
        "gus": {
            "groups": ["ss-managers"],
            "employee_id": globex.manager,
            "reports": [u for u in globex.users if u not in globex.reports][:2],
        },
        "nora": {"groups": ["sales"], "employee_id": "nora"},
    }
    idp = oidc.OidcProvider(tmp_path_factory.mktemp("idp"), accounts)
    idp.add_client(f"acme-{suffix}", api.url, f"https://skillstream.test/acme-{suffix}")
    idp.add_client(f"globex-{suffix}", api.url, f"https://skillstream.test/globex-{suffix}")
    idp.start()
    yield {
        "acme": acme,
        "globex": globex,
        "idp": idp,
        "suffix": suffix,
        "names": {"acme": f"acme-{suffix}", "globex": f"globex-{suffix}"},
    }
    idp.stop()


MAP = [
    "--map",
    "ss-managers=manager",
    "--map",
    "ss-learners=learner",
    "--map",
    "ss-admins=company_admin",
    "--user-claim",
    "employee_id",
]


def _cli(api, monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    """`skillstream ...` in this process, reaching the live API as the CLI does."""
    from core.settings import get_settings
    from ops.cli import main

    s = api.settings
    s.run_dir.mkdir(parents=True, exist_ok=True)
    s.api_file.write_text(json.dumps({"url": api.url, "pid": __import__("os").getpid()}))
    monkeypatch.setenv("SKILLSTREAM_RUN_DIR", str(s.run_dir))
    get_settings.cache_clear()
    try:
        code = main(list(argv))
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def configured(world, api, tmp_path_factory):
    """Both tenants' providers, through the operation's HTTP door."""
    from api.admin.operations import TENANT_SSO
    from ops.control import HttpControl

    control = HttpControl(api.url, api.ctx.secrets.admin_secret)
    mapping = {
        "roles": {"ss-managers": "manager", "ss-learners": "learner", "ss-admins": "company_admin"},
        "user_claim": "employee_id",
    }
    for key in ("acme", "globex"):
        name = world["names"][key]
        control.run(
            TENANT_SSO,
            tenant=name,
            issuer=world["idp"].issuer,
            client_id=name,
            client_secret=oidc.SECRET,
            audience=f"https://skillstream.test/{name}",
            domains=[f"{name}.test"],
            mapping=mapping,
        )
    return world


def _audit(store, tenant_id: str, action: str) -> list[dict]:
    return store.query(
        "SELECT * FROM audit_events WHERE tenant_id = {t:String} AND action = {a:String}"
        " ORDER BY at",
        {"t": tenant_id, "a": action},
    )


# --- the operation -------------------------------------------------------------------
def test_cli_sets_the_provider_by_discovery_sealed_and_audited(
    api, world, store, tmp_path, monkeypatch, capsys
):
    name, org = world["names"]["acme"], world["acme"]
    secret_file = tmp_path / "secret"
    secret_file.write_text(oidc.SECRET + "\n")
    code, out, err = _cli(
        api,
        monkeypatch,
        capsys,
        "tenant",
        "sso",
        name,
        "--issuer",
        world["idp"].issuer,
        "--client-id",
        name,
        "--client-secret-file",
        str(secret_file),
        "--audience",
        f"https://skillstream.test/{name}",
        "--domain",
        f"{name}.test",
        *MAP,
    )
    assert code == 0, err
    assert f"sso for {name}: {world['idp'].issuer} client {name}" in out
    assert f"redirect URI to register: {api.url}/v1/auth/callback" in out
    assert "3 role mapping(s) on claim 'groups'" in out
    row = store.query(
        "SELECT client_secret FROM tenant_sso FINAL WHERE tenant_id = {t:String}",
        {"t": org.tenant_id},
    )[0]
    assert row["client_secret"].startswith("fernet:") and oidc.SECRET not in row["client_secret"]
    (audited,) = _audit(store, org.tenant_id, "sso.configured")[-1:]
    assert oidc.SECRET not in json.dumps(audited, default=str)

    # nothing hand-entered but issuer and client: a wrong issuer is caught now
    code, _, err = _cli(
        api,
        monkeypatch,
        capsys,
        "tenant",
        "sso",
        name,
        "--issuer",
        "http://127.0.0.1:9",
        "--client-id",
        name,
        "--client-secret-file",
        str(secret_file),
    )
    assert code == 1 and "issuer: identity provider unreachable" in err and "(HTTP 422)" in err
    # a tenant's provider never grants platform_admin
    code, _, err = _cli(
        api,
        monkeypatch,
        capsys,
        "tenant",
        "sso",
        name,
        "--issuer",
        world["idp"].issuer,
        "--client-id",
        name,
        "--map",
        "x=platform_admin",
    )
    assert code == 1 and "role must be one of" in err and "(HTTP 422)" in err
    code, _, err = _cli(
        api,
        monkeypatch,
        capsys,
        "tenant",
        "sso",
        name,
        "--issuer",
        "ftp://idp.example",
        "--client-id",
        name,
    )
    assert code == 1 and "issuer:" in err


def test_company_admin_sets_the_provider_over_http(api, configured, store):
    org, name = configured["globex"], configured["names"]["globex"]

    def token(role: str) -> dict:
        t = issue_token(
            api.ctx.secrets.token_secret,
            tenant_id=org.tenant_id,
            tenant_name=name,
            role=role,
            user_id=f"{role}-1",
            ttl_s=600,
        )
        return {"Authorization": f"Bearer {t}"}

    got = httpx.get(f"{api.url}/v1/sso", headers=token("company_admin")).json()
    assert got["configured"] and got["issuer"] == configured["idp"].issuer
    assert got["client_secret_set"] and "client_secret" not in got
    body = {**{k: got[k] for k in ("issuer", "client_id", "audience", "domains", "mapping")}}
    body["mapping"]["roles"]["ss-mentors"] = "mentor"  # the stored secret is kept
    r = httpx.put(f"{api.url}/v1/sso", json=body, headers=token("company_admin"))
    assert r.status_code == 200 and r.json()["mapping"]["roles"]["ss-mentors"] == "mentor"
    assert _audit(store, org.tenant_id, "sso.configured")[-1]["actor_role"] == "company_admin"
    assert httpx.put(f"{api.url}/v1/sso", json=body, headers=token("manager")).status_code == 403
    taken = {**body, "domains": [f"{configured['names']['acme']}.test"]}
    r = httpx.put(f"{api.url}/v1/sso", json=taken, headers=token("company_admin"))
    assert r.status_code == 422 and "sign in elsewhere" in r.json()["detail"]


# --- API clients with the provider's access tokens -----------------------------------
def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _learners(api, token: str) -> set[str]:
    r = httpx.get(
        f"{api.url}/v1/reports/learners", params={"page_size": 500}, headers=_bearer(token)
    )
    assert r.status_code == 200, r.text
    return {item["user_id"] for item in r.json()["items"]}


def test_provider_access_tokens_map_to_role_and_scope(api, configured, store):
    idp, acme, name = configured["idp"], configured["acme"], configured["names"]["acme"]
    mia = oidc.sign_in(idp.issuer, name, "mia")["access_token"]
    me = httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(mia)).json()
    assert (me["tenant_id"], me["role"], me["user_id"]) == (acme.tenant_id, "manager", acme.manager)
    assert _learners(api, mia) == rd.visible(acme, "manager")
    leo = oidc.sign_in(idp.issuer, name, "leo")["access_token"]
    assert _learners(api, leo) == {acme.learner}
    provisioned = {r["actor_id"] for r in _audit(store, acme.tenant_id, "user.provisioned")}
    assert {acme.manager, acme.learner} <= provisioned
    before = len(_audit(store, acme.tenant_id, "user.provisioned"))
    _learners(api, mia)  # a known person is not provisioned twice
    assert len(_audit(store, acme.tenant_id, "user.provisioned")) == before

    nora = oidc.sign_in(idp.issuer, name, "nora")["access_token"]
    r = httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(nora))
    assert r.status_code == 403 and "no role is mapped" in r.json()["detail"]


def _sign(claims: dict, key, alg: str) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_forged_and_misdirected_tokens_are_refused(api, configured):
    idp, name = configured["idp"], configured["names"]["acme"]
    ec = ECKey.import_key(idp.keys[1])
    now = int(time.time())
    good = {
        "iss": idp.issuer,
        "aud": f"https://skillstream.test/{name}",
        "sub": "mia",
        "exp": now + 300,
        "iat": now,
        "groups": ["ss-managers"],
        "employee_id": "m1",
    }
    assert (
        httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(_sign(good, ec, "ES256"))).status_code
        == 200
    )

    def refused(token: str, why: str) -> None:
        r = httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(token))
        assert r.status_code == 401, (why, r.text)
        assert why in r.json()["detail"], r.json()["detail"]

    refused(_sign({**good, "exp": now - 600}, ec, "ES256"), "expired")
    refused(_sign({**good, "nbf": now + 600}, ec, "ES256"), "not yet valid")
    refused(_sign({**good, "aud": "https://elsewhere.test"}, ec, "ES256"), "aud")
    refused(
        _sign(
            {
                **good,
                "aud": f"https://skillstream.test/{configured['names']['globex']}",
                "iss": idp.issuer + "/x",
            },
            ec,
            "ES256",
        ),
        "invalid token",  # an issuer nobody configured: not a provider token
    )
    stranger = ECKey.generate_key("P-256", parameters={"kid": "ec-1"}, private=True)
    refused(_sign(good, stranger, "ES256"), "signature")
    unknown = ECKey.generate_key("P-256", parameters={"kid": "nobody"}, private=True)
    refused(_sign(good, unknown, "ES256"), "does not publish")
    # alg none, and HMAC keyed with the provider's public key
    head = _b64(json.dumps({"alg": "none", "kid": "ec-1"}).encode())
    body = _b64(json.dumps(good).encode())
    refused(f"{head}.{body}.", "'none' not allowed")
    pem = RSAKey.import_key(idp.keys[0]).as_pem(private=False)
    head = _b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    refused(f"{head}.{body}.{_b64(mac)}", "'HS256' not allowed")


def test_a_token_from_tenant_as_provider_is_refused_for_tenant_b(api, configured):
    idp, names, globex = configured["idp"], configured["names"], configured["globex"]
    token = oidc.sign_in(idp.issuer, names["acme"], "mia")["access_token"]
    gcfg = api.ctx.sso.registry.get(globex.tenant_id)
    from api.sso.provider import TokenRefused

    with pytest.raises(TokenRefused, match="aud"):
        api.ctx.sso.providers.verify(token, issuer=gcfg.issuer, audience=gcfg.audience)
    # presented to the API, it is tenant A's, whatever the request asks for
    r = httpx.get(
        f"{api.url}/v1/reports/learners",
        headers=_bearer(token),
        params={"tenant_id": globex.tenant_id, "page_size": 500},
    )
    assert r.status_code == 403 or not {i["user_id"] for i in r.json()["items"]} & set(globex.users)


def test_learners_claim_adds_a_managers_learners(api, configured, store):
    from api.admin.operations import TENANT_SSO
    from ops.control import HttpControl

    idp, globex, name = configured["idp"], configured["globex"], configured["names"]["globex"]
    cfg = api.ctx.sso.registry.get(globex.tenant_id)
    mapping = {**cfg.mapping.model_dump(), "learners_claim": "reports"}
    HttpControl(api.url, api.ctx.secrets.admin_secret).run(
        TENANT_SSO,
        tenant=name,
        issuer=cfg.issuer,
        client_id=cfg.client_id,
        audience=cfg.audience,
        domains=list(cfg.domains),
        mapping=mapping,
    )
    extra = set(idp.accounts["gus"]["reports"])
    token = oidc.sign_in(idp.issuer, name, "gus")["access_token"]
    assert _learners(api, token) == rd.visible(globex, "manager") | extra
    links = OrgRegistry(store).links(globex.tenant_id, "manager", globex.manager)
    assert extra <= {lk.object_id for lk in links}


# --- browser sessions (over HTTP here; in Chromium in test_sign_in_browser.py) -------
_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.S)


def browser_sign_in(
    http: httpx.Client, start: str, login: str, seen: list | None = None
) -> httpx.Response:
    """What a browser does: follow redirects, fill the provider's login form."""
    seen = [] if seen is None else seen
    r = http.get(start)
    while r.is_redirect or 'name="login"' in r.text:
        seen.append(r)
        if r.is_redirect:
            r = http.get(urljoin(str(r.url), r.headers["location"]))
            continue
        action = unescape(_FORM.search(r.text).group(1))
        r = http.post(
            urljoin(str(r.url), action), data={"prompt": "login", "login": login, "password": "x"}
        )
    return r


def test_session_cookie_csrf_and_sign_out(api, configured, store):
    name, acme = configured["names"]["acme"], configured["acme"]
    found = httpx.get(f"{api.url}/v1/auth/providers", params={"hint": f"mia@{name}.test"}).json()
    assert found["tenant"] == name and found["login_url"].startswith("/v1/auth/login")
    with httpx.Client(base_url=api.url, timeout=10) as http:
        seen: list[httpx.Response] = []
        r = browser_sign_in(http, found["login_url"], "mia", seen)
        assert r.status_code == 200 and "SkillStream" in r.text  # the dashboard page
        set_cookie = next(
            h
            for resp in seen
            for h in resp.headers.get_list("set-cookie")
            if h.startswith("skillstream_session=")
        )
        flags = set_cookie.lower()
        assert "httponly" in flags and "samesite=lax" in flags and "secure" not in flags
        me = http.get("/v1/reports/me").json()
        assert (me["tenant_id"], me["role"], me["user_id"]) == (
            acme.tenant_id,
            "manager",
            acme.manager,
        )
        sess = http.get("/v1/auth/session").json()
        assert sess["role"] == "manager" and sess["csrf_token"]
        assert _audit(store, acme.tenant_id, "sign_in")
        # state-changing calls with the cookie need the CSRF token, and our Origin
        assert http.post("/v1/auth/logout").status_code == 403
        bad = {"X-CSRF-Token": sess["csrf_token"], "Origin": "https://evil.test"}
        assert http.post("/v1/auth/logout", headers=bad).status_code == 403
        assert http.post("/v1/auth/logout", headers={"X-CSRF-Token": "x" * 64}).status_code == 403
        r = http.post("/v1/auth/logout", headers={"X-CSRF-Token": sess["csrf_token"]})
        assert r.status_code == 200
        end = r.json()["end_session_url"]
        assert end.startswith(configured["idp"].issuer + "/session/end?")
        assert "id_token_hint=" in end and "post_logout_redirect_uri=" in end
        assert http.get("/v1/reports/me").status_code == 401  # the cookie is gone
    # and the session itself is over, even for a client that kept the cookie
    assert store.query("SELECT count() AS n FROM sso_sessions FINAL WHERE ended = 1")[0]["n"] >= 1


def test_every_state_changing_cookie_call_needs_the_csrf_token(api, configured):
    name = configured["names"]["acme"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        browser_sign_in(http, f"/v1/auth/login?tenant={name}", "ada")  # company_admin
        sso = http.get("/v1/sso").json()
        body = {k: sso[k] for k in ("issuer", "client_id", "audience", "domains", "mapping")}
        assert http.put("/v1/sso", json=body).status_code == 403
        csrf = {"X-CSRF-Token": http.get("/v1/auth/session").json()["csrf_token"]}
        assert http.put("/v1/sso", json=body, headers=csrf).status_code == 200


def test_no_mapped_role_gets_the_no_access_page(api, configured, store):
    name = configured["names"]["acme"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        r = browser_sign_in(http, f"/v1/auth/login?tenant={name}", "nora")
        assert r.status_code == 403 and "No access" in r.text
        assert "skillstream_session" not in http.cookies
        assert http.get("/v1/reports/me").status_code == 401
    assert _audit(store, configured["acme"].tenant_id, "sign_in.denied")


def test_tampered_state_and_foreign_flow_are_refused(api, configured):
    name = configured["names"]["acme"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        r = http.get(f"/v1/auth/login?tenant={name}")
        assert r.status_code == 303 and "code_challenge_method=S256" in r.headers["location"]
        assert "nonce=" in r.headers["location"] and "state=" in r.headers["location"]
        r = http.get("/v1/auth/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400 and "Sign-in failed" in r.text
    # no flow cookie at all (a link someone else started)
    r = httpx.get(f"{api.url}/v1/auth/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 400 and "no sign-in in progress" in r.text


def test_key_rotation_keeps_sessions_and_refuses_the_removed_key(api, configured):
    idp, name = configured["idp"], configured["names"]["acme"]
    old_token = oidc.sign_in(idp.issuer, name, "mia")["access_token"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        browser_sign_in(http, f"/v1/auth/login?tenant={name}", "mia")
        assert http.get("/v1/reports/me").status_code == 200
        old = idp.keys
        new = oidc.new_keys(uuid.uuid4().hex[:4])
        idp.restart(new + old)  # the new key first, the old one still published
        fresh = oidc.sign_in(idp.issuer, name, "mia")["access_token"]
        assert httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(fresh)).status_code == 200
        assert httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(old_token)).status_code == 200
        idp.restart(new)  # the old key removed
        time.sleep(api.settings.oidc_jwks_ttl_s + 0.5)
        r = httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(old_token))
        assert r.status_code == 401 and "does not publish" in r.json()["detail"]
        assert httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(fresh)).status_code == 200
        assert http.get("/v1/reports/me").status_code == 200  # the session lives on
    idp.restart(new + old)  # the other tests' keys


def test_provider_down_keeps_sessions_and_says_so_to_new_sign_ins(api, configured):
    idp, name = configured["idp"], configured["names"]["acme"]
    token = oidc.sign_in(idp.issuer, name, "mia")["access_token"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        browser_sign_in(http, f"/v1/auth/login?tenant={name}", "mia")
        idp.stop()
        try:
            assert http.get("/v1/reports/me").status_code == 200  # signed in: still in
            time.sleep(api.settings.oidc_jwks_ttl_s + 0.5)
            # the keys already fetched stay in use while the provider cannot rotate them
            r = httpx.get(f"{api.url}/v1/reports/me", headers=_bearer(token))
            assert r.status_code == 200
            r = httpx.get(f"{api.url}/v1/auth/login", params={"tenant": name})
            assert r.status_code == 503 and "does not answer" in r.text
        finally:
            idp.start()


def _due(api, cookie: str) -> None:
    """The session past half its time, as an hour later."""
    from dataclasses import replace as dc_replace
    from datetime import timedelta

    from api.sso.sessions import _hash

    sessions = api.ctx.sso.sessions
    s = sessions._read(_hash(cookie))
    sessions._write(dc_replace(s, expires_at=datetime.now(UTC) + timedelta(seconds=30)))


def test_session_refresh_asks_the_provider_and_ends_when_it_refuses(api, configured, store):
    idp, name, acme = configured["idp"], configured["names"]["acme"], configured["acme"]
    with httpx.Client(base_url=api.url, timeout=10) as http:
        browser_sign_in(http, f"/v1/auth/login?tenant={name}", "mia")
        cookie = http.cookies["skillstream_session"]
        _due(api, cookie)
        # refreshed with the provider's refresh token: still the manager, an hour more
        after = http.get("/v1/auth/session").json()
        hour = datetime.now(UTC) + timedelta(seconds=api.settings.session_ttl_s - 60)
        assert after["role"] == "manager" and datetime.fromisoformat(after["expires_at"]) > hour
        idp.restart(idp.keys)  # its grants are gone: the refresh token is refused
        _due(api, cookie)
        assert http.get("/v1/reports/me").status_code == 401
    assert _audit(store, acme.tenant_id, "session.ended")


def test_sessions_expire_and_refresh(store):
    from cryptography.fernet import Fernet

    from api.sealing import Sealer
    from api.sso.people import Person
    from api.sso.sessions import Sessions

    sessions = Sessions(store, Sealer(Fernet.generate_key().decode(), "t"), "x" * 32, 2, 3)
    cookie, s = sessions.create(Person("t_x", "u1", "learner", "sub"), "id", None)
    first = s.expires_at
    other = Sessions(store, sessions.sealer, "x" * 32, 2, 3)  # another API process
    assert other.get(cookie).user_id == "u1" and other.get("forged") is None
    time.sleep(1.2)  # past half its time: this request refreshes it
    assert sessions.get(cookie).expires_at > first
    time.sleep(1.0)
    assert sessions.get(cookie) is not None  # refreshed, still within the 3 s maximum
    time.sleep(1.2)
    assert sessions.get(cookie) is None  # past the maximum, refreshed or not


# --- in Chromium, through the provider's own login page -------------------------------
def _chromium_sign_in(browser, api, world, login: str):  # noqa: F811 (the fixture)
    browser.clear_cookies()
    page = browser.new_page()
    page.goto(f"{api.url}/?tenant={world['names']['acme']}")
    page.click("#signin-go", timeout=10000)  # "Sign in with <company>"
    page.wait_for_selector("input[name=login]", timeout=10000)  # the provider's page
    assert page.url.startswith(world["idp"].issuer)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    return page


def _page_learners(page) -> set[str]:
    body = page.evaluate(
        "fetch('/v1/reports/learners?page_size=500', {credentials: 'same-origin'})"
        ".then((r) => r.json())"
    )
    return {i["user_id"] for i in body["items"]}


def test_chromium_manager_signs_in_sees_their_scope_and_signs_out(api, configured, browser):  # noqa: F811
    acme = configured["acme"]
    page = _chromium_sign_in(browser, api, configured, "mia")
    page.wait_for_selector("body[data-loaded]", timeout=20000)
    assert page.url.startswith(api.url)
    who = page.inner_text("#whoami")
    assert who.startswith(f"manager · {acme.manager}") and configured["names"]["acme"] in who
    assert _page_learners(page) == rd.visible(acme, "manager")
    rows = {
        r.inner_text().split("\t")[0] for r in page.query_selector_all("#atrisk-table tbody tr")
    }
    assert rows <= rd.visible(acme, "manager")
    assert "skillstream_session" not in page.evaluate("document.cookie")  # HttpOnly
    page.click("#signout")
    page.wait_for_selector("button[autofocus], button[type=submit]", timeout=10000)
    assert page.url.startswith(configured["idp"].issuer)  # the provider's own sign-out
    page.click("button[autofocus]")
    page.wait_for_selector("#signin:not([hidden])", timeout=10000)
    assert page.url.startswith(api.url)
    page.close()


def test_chromium_learner_sees_only_their_own(api, configured, browser):  # noqa: F811
    acme = configured["acme"]
    page = _chromium_sign_in(browser, api, configured, "leo")
    page.wait_for_selector("body[data-loaded]", timeout=20000)
    assert page.inner_text("#whoami").startswith(f"learner · {acme.learner}")
    assert _page_learners(page) == {acme.learner}
    page.close()


def test_chromium_unmapped_person_gets_the_no_access_page(api, configured, browser):  # noqa: F811
    page = _chromium_sign_in(browser, api, configured, "nora")
    page.wait_for_selector("#signin-notice", timeout=10000)
    assert page.inner_text("h1") == "No access"
    assert "no role in SkillStream" in page.inner_text("#signin-notice")
    page.close()


# --- the demo's own provider (Python, nothing to install for `make up`) ---------------
@pytest.fixture(scope="module")
def demo_idp(api, tmp_path_factory):
    import os
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT
    from ops.demo_idp import write_config

    tenant, _ = api.ctx.tenants.create(f"demo-{uuid.uuid4().hex[:6]}")
    run_dir = tmp_path_factory.mktemp("demo-idp")
    config = write_config(run_dir, api.url, tenant.name)
    env = {**os.environ, "SKILLSTREAM_DEMO_IDP": str(run_dir / "demo-idp.json")}
    proc = subprocess.Popen([sys.executable, "-m", "ops.demo_idp"], env=env, cwd=PROJECT_ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{config['issuer']}/.well-known/openid-configuration", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        yield tenant, config
    finally:
        proc.terminate()
        proc.wait(10)


def test_demo_provider_signs_the_demo_company_in(api, demo_idp):
    from api.admin.operations import TENANT_SSO
    from ops.control import HttpControl
    from ops.demo_idp import DEMO_ROLES

    tenant, idp = demo_idp
    HttpControl(api.url, api.ctx.secrets.admin_secret).run(
        TENANT_SSO,
        tenant=tenant.name,
        issuer=idp["issuer"],
        client_id=idp["client_id"],
        client_secret=idp["client_secret"],
        mapping={"roles": DEMO_ROLES, "user_claim": "employee_id"},
    )
    with httpx.Client(base_url=api.url, timeout=10) as http:
        r = browser_sign_in(http, f"/v1/auth/login?tenant={tenant.name}", "morgan")
        assert r.status_code == 200
        me = http.get("/v1/reports/me").json()
        assert (me["tenant_id"], me["role"], me["user_id"]) == (
            tenant.tenant_id,
            "manager",
            f"{tenant.name}-mgr-000",
        )
        csrf = http.get("/v1/auth/session").json()["csrf_token"]
        end = http.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf}).json()["end_session_url"]
        assert end.startswith(idp["issuer"] + "/logout?")
        assert http.get(end).status_code == 302  # back to the dashboard, signed out there too
    with httpx.Client(base_url=api.url, timeout=10) as http:
        r = browser_sign_in(http, f"/v1/auth/login?tenant={tenant.name}", "val")
        assert r.status_code == 403 and "No access" in r.text
