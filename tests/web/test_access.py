"""Who may open the board locally (open on loopback, token, HTTP Basic, read-only), the health
probe, and the vendored assets being exactly the pinned versions."""

from __future__ import annotations

import base64
import hashlib
import re

from pulser_ops.web import BasicUser, WebConfig
from pulser_ops.web.room import STATIC
from tests.contract.conftest import Env

from .helpers import board

RUN_CONFIG = WebConfig(
    auth="local",
    token="s3cret-token",
    basic_users=(BasicUser("ops", "pw", "admin"), BasicUser("viewer", "pw2", "read_only")),
)


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


async def test_token_in_the_url_becomes_a_cookie_and_is_then_required(env: Env) -> None:
    async with board(env, config=RUN_CONFIG) as b:
        assert (await b.get("/")).status_code == 401
        assert (await b.get("/partials/board")).status_code == 401
        landing = await b.get("/?token=wrong")
        assert landing.status_code == 401
        landing = await b.get("/runs?status=queued&token=s3cret-token")
        assert landing.status_code == 303
        assert landing.headers["location"].endswith("/runs?status=queued")
        cookie = landing.headers["set-cookie"]
        assert "pulser_ops_token=s3cret-token" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        ok = await b.get("/runs?status=queued")  # the cookie jar now carries it
        assert ok.status_code == 200 and "token · admin" in ok.text
        bearer = await b.http.get("/", headers={"Authorization": "Bearer s3cret-token"},
                                  cookies={})  # fmt: skip
        assert bearer.status_code == 200


async def test_basic_users_have_their_roles(env: Env) -> None:
    config = WebConfig(auth="local", basic_users=RUN_CONFIG.basic_users)
    async with board(env, config=config) as b:
        denied = await b.get("/")
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Basic")
        assert (await b.get("/", headers=_basic("ops", "nope"))).status_code == 401
        admin = await b.get("/", headers=_basic("ops", "pw"))
        assert admin.status_code == 200 and 'value="pause"' in admin.text
        viewer = await b.get("/", headers=_basic("viewer", "pw2"))
        assert viewer.status_code == 200 and 'value="pause"' not in viewer.text
        refused = await b.post(
            "/lanes/A", data={"action": "pause"}, headers=_basic("viewer", "pw2")
        )
        assert refused.status_code == 403
    assert not env.sql("select paused from public.lanes where id = 'A'")[0][0]


async def test_healthz_needs_no_credentials_and_says_whether_it_listens(env: Env) -> None:
    async with board(env, config=RUN_CONFIG) as b:
        got = await b.get("/healthz")
    assert got.status_code == 200 and got.json()["ok"] is True
    assert got.json()["listening"] is True


async def test_the_served_scripts_are_the_pinned_vendored_versions(env: Env) -> None:
    pinned = {}
    for line in (STATIC / "vendor" / "VERSIONS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, package, version, licence, sha = line.split("\t")
            pinned[name] = (package, version, licence, sha)
    assert {v[0]: v for v in pinned.values()} == {
        "htmx.org": ("htmx.org", "2.0.8", "0BSD", pinned["htmx-2.0.8.min.js"][3]),
        "htmx-ext-sse": ("htmx-ext-sse", "2.2.4", "0BSD", pinned["htmx-ext-sse-2.2.4.min.js"][3]),
        "idiomorph": ("idiomorph", "0.7.4", "0BSD", pinned["idiomorph-ext-0.7.4.min.js"][3]),
    }
    async with board(env) as b:
        page = (await b.get("/")).text
        scripts = re.findall(r'<script src="([^"]+)"', page)
        assert scripts == [
            "/static/theme.js",
            "/static/vendor/htmx-2.0.8.min.js",
            "/static/vendor/idiomorph-ext-0.7.4.min.js",
            "/static/vendor/htmx-ext-sse-2.2.4.min.js",
            "/static/app.js",
        ]
        for name, (_, _version, _, sha) in pinned.items():
            served = await b.get(f"/static/vendor/{name}")
            assert served.status_code == 200
            assert hashlib.sha256(served.content).hexdigest() == sha
            assert "immutable" in served.headers["cache-control"]
        htmx = (await b.get("/static/vendor/htmx-2.0.8.min.js")).text
        assert 'version:"2.0.8"' in htmx
        assert (await b.get("/static/../room.py")).status_code == 404
