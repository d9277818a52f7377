"""A real OpenID provider for the tests: npm's ``oidc-provider`` (OpenID
Certified) under node, from ``tests/oidc/provider.mjs``, on a free loopback
port. Its own login page (devInteractions: any login, any password) signs
people in; ``ACCOUNTS`` gives some of them groups. ``rotate`` restarts it
with other signing keys on the same port (its in-memory grants go; our
sessions do not depend on them)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from joserfc.jwk import ECKey, RSAKey

from core.settings import PROJECT_ROOT
from ops.kafka_launcher import free_port

HERE = PROJECT_ROOT / "tests" / "oidc"
SECRET = "test-client-secret-that-is-long-enough-0123456789"


def new_keys(tag: str) -> list[dict]:
    """An RSA key (ID tokens) and an EC key (access tokens), private, with kids."""
    rsa = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{tag}", "use": "sig"}, private=True)
    ec = ECKey.generate_key("P-256", parameters={"kid": f"ec-{tag}", "use": "sig"}, private=True)
    return [rsa.as_dict(private=True), ec.as_dict(private=True)]


def node_modules_ready() -> bool:
    return (HERE / "node_modules" / "oidc-provider").is_dir()


@dataclass
class OidcProvider:
    workdir: Path
    accounts: dict[str, dict]
    clients: list[dict] = field(default_factory=list)
    resources: dict[str, str] = field(default_factory=dict)
    keys: list[dict] = field(default_factory=lambda: new_keys("1"))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_client(self, client_id: str, redirect_base: str, audience: str) -> None:
        self.clients.append(
            {
                "client_id": client_id,
                "client_secret": SECRET,
                "redirect_uris": [f"{redirect_base}/v1/auth/callback", "http://127.0.0.1:9/cb"],
                "post_logout_redirect_uris": [f"{redirect_base}/"],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }
        )
        self.resources[client_id] = audience

    def start(self) -> OidcProvider:
        if not node_modules_ready():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
        config = self.workdir / f"oidc-{self.port}.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "issuer": self.issuer,
                    "jwks": {"keys": self.keys},
                    "clients": self.clients,
                    "accounts": self.accounts,
                    "resources": self.resources,
                }
            )
        )
        log = open(self.workdir / f"oidc-{self.port}.log", "a")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(
            ["node", str(HERE / "provider.mjs"), str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1)
                return self
            except httpx.HTTPError:
                assert self.proc.poll() is None, (
                    self.workdir / f"oidc-{self.port}.log"
                ).read_text()
                time.sleep(0.1)
        raise AssertionError("oidc-provider did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def restart(self, keys: list[dict]) -> None:
        """A key rotation: the provider comes back publishing ``keys`` only."""
        self.stop()
        self.keys = keys
        self.start()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.S)


def sign_in(
    issuer: str, client_id: str, login: str, redirect_uri: str = "http://127.0.0.1:9/cb"
) -> dict:
    """A person signs in at the provider's own login page (as a browser would,
    over HTTP) through a client; the token response (access token: a JWT for
    the client's resource)."""
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session

    meta = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    client = OAuth2Session(
        client_id,
        SECRET,
        scope="openid email profile groups",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20)
    )
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        r = http.get(url)
        while r.is_redirect:
            nxt = urljoin(str(r.url), r.headers["location"])
            if nxt.startswith(redirect_uri):
                break
            r = http.get(nxt)
            if r.status_code == 200 and 'name="login"' in r.text:
                action = unescape(_FORM.search(r.text).group(1))
                r = http.post(
                    urljoin(str(r.url), action),
                    data={"prompt": "login", "login": login, "password": "x"},
                )
        back = urljoin(str(r.url), r.headers["location"])
    assert "code" in parse_qs(urlsplit(back).query), back
    return dict(
        client.fetch_token(
            meta["token_endpoint"], authorization_response=back, state=state, code_verifier=verifier
        )
    )
