"""The web UI over plain HTTP: login turns an API token into a session cookie (HttpOnly,
SameSite=Strict, the token never stored), every action needs the same origin and the session's CSRF token,
every page carries a strict Content-Security-Policy, and the pages show what the API says."""
from __future__ import annotations

import json
import re

import aiohttp
import pytest
import yarl

from bench.ui.scenario import CASCADE, CONFIG, T0, start
from service.http.appkeys import TOKENS
from service.core.clock import to_rfc3339
from service.http.ui.routes import CSP

TOKEN = "s3cr3t-api-token-0123456789abcdef"


@pytest.fixture
async def env(redis_url, key_prefix):
    e = await start(redis_url, key_prefix)
    yield e
    await e.close()


@pytest.fixture
async def authed(redis_url, key_prefix):
    e = await start(redis_url, key_prefix, token=TOKEN)
    yield e
    await e.close()


def browser_session() -> aiohttp.ClientSession:
    # unsafe=True: keep cookies for 127.0.0.1, as a browser does
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


async def incident_id(env, n_members: int) -> str:
    items = await (await env.http.get(env.base + "/api/v1/incidents", headers=env.auth_headers)).json()
    return next(i["id"] for i in items if len(i["members"]) == n_members)


async def test_pages_carry_a_strict_csp_and_an_httponly_samesite_cookie(env):
    """Every /ui response has the CSP (no inline script or style) and hardening headers; the session cookie is
    HttpOnly, SameSite=Strict and scoped to /ui."""
    async with browser_session() as s:
        r = await s.get(env.base + "/ui/")
        assert r.status == 200
        assert r.headers["Content-Security-Policy"] == CSP
        assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP and "script-src 'self'" in CSP
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
        st = await s.get(env.base + "/ui/static/ui.js")
        assert st.status == 200 and st.headers["Content-Security-Policy"] == CSP
        assert "innerHTML" not in (await st.text()).replace("never innerHTML", "")
        html = await (await s.get(env.base + "/ui/alerts")).text()
        assert "<script>" not in html and " style=" not in html and "onclick" not in html


async def test_actions_need_the_csrf_token_and_the_same_origin(env):
    """An action without the CSRF token, with another session's token, or from another origin is refused and
    changes nothing; with both it acknowledges, as POST /api/v1/incidents/{id}/ack would."""
    await env.cascade()
    iid = await incident_id(env, 6)
    url = env.base + f"/ui/incidents/{iid}"
    async with browser_session() as s, browser_session() as other:
        csrf = csrf_of(await (await s.get(url)).text())
        other_csrf = csrf_of(await (await other.get(url)).text())
        origin = {"Origin": env.base}
        for data, headers in (({"action": "ack"}, origin),
                              ({"action": "ack", "csrf": other_csrf}, origin),
                              ({"action": "ack", "csrf": csrf}, {"Origin": "http://evil.example"}),
                              ({"action": "ack", "csrf": csrf}, {})):
            r = await s.post(url, data=data, headers=headers, allow_redirects=False)
            assert r.status == 403, (data, headers)
        api = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
        assert api["state"] == "triggered"
        r = await s.post(url, data={"action": "ack", "csrf": csrf}, headers=origin, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith(f"/ui/incidents/{iid}")
        api = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
        assert api["state"] == "acknowledged" and api["acked_by"] == "web"
        # the JS path: the token in a header
        r = await s.post(url, data={"action": "noise"}, headers={**origin, "X-CSRF-Token": csrf},
                         allow_redirects=False)
        assert r.status == 303
        assert (await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json())["noise"] is True


async def test_login_turns_a_token_into_a_session_and_never_stores_the_token(authed):
    """With tokens configured the pages need a login; a wrong token is refused; a valid one gives a cookie that
    is not the token, and Redis holds only hashes; a token removed from the configuration ends its sessions."""
    env = authed
    async with browser_session() as s:
        r = await s.get(env.base + "/ui/", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/ui/login")
        assert (await s.get(env.base + "/ui/incidents.json")).status == 401
        page = await (await s.get(env.base + "/ui/login")).text()
        csrf = csrf_of(page)
        origin = {"Origin": env.base}
        bad = await s.post(env.base + "/ui/login", data={"csrf": csrf, "token": "wrong", "next": "/ui/"},
                           headers=origin, allow_redirects=False)
        assert bad.status == 401
        assert (await s.post(env.base + "/ui/login", data={"token": TOKEN}, headers=origin,
                             allow_redirects=False)).status == 403  # no CSRF token
        ok = await s.post(env.base + "/ui/login", data={"csrf": csrf, "token": TOKEN, "name": "dana",
                                                        "next": "//evil.example/"},
                          headers=origin, allow_redirects=False)
        assert ok.status == 303 and ok.headers["Location"] == "/ui/"  # never a redirect off the site
        cookie = ok.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        sid = s.cookie_jar.filter_cookies(yarl.URL(env.base + "/ui/"))["tocsin_ui"].value
        assert sid != csrf  # the session id changed at login
        async for k in env.engine.redis.scan_iter(match=f"{env.engine.keys.prefix}:ui:*"):
            v = (await env.engine.redis.get(k)).decode()
            assert TOKEN not in v and sid not in v and sid not in k.decode()
        r = await s.get(env.base + "/ui/")
        assert r.status == 200 and "dana (oncall-team)" in await r.text()  # the name, and the token vouching
        env.app[TOKENS][:] = [(b"a-rotated-token", {"all"})]  # what a reload with a new token list does
        r = await s.get(env.base + "/ui/", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/ui/login")


async def test_a_token_without_api_access_cannot_log_in(authed):
    """An ingest-only token (sources: [alerts]) opens no UI session."""
    env = authed
    env.app[TOKENS][:] = [(b"ingest-only-token", {"alerts"}), (TOKEN.encode(), {"all"})]
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + "/ui/login")).text())
        r = await s.post(env.base + "/ui/login", data={"csrf": csrf, "token": "ingest-only-token"},
                         headers={"Origin": env.base}, allow_redirects=False)
        assert r.status == 401


async def test_the_list_json_is_what_the_api_lists(env):
    """The list's live-refresh JSON has the API's incidents (ids, states, severities), filters included, and the
    count of firing alerts in no incident; a bad filter is a 400 with the reason."""
    await env.cascade()
    api = await (await env.http.get(env.base + "/api/v1/incidents")).json()
    async with browser_session() as s:
        data = await (await s.get(env.base + "/ui/incidents.json")).json()
        assert [(r["id"], r["state"], r["severity"], r["alerts"]) for r in data["rows"]] == \
            [(i["id"], i["state"], i["severity"], len(i["members"])) for i in api]
        assert data["unassigned"] == 0
        only = await (await s.get(env.base + "/ui/incidents.json?service=checkout")).json()
        assert [r["id"] for r in only["rows"]] == [i["id"] for i in api if "checkout" in i["services"]]
        text = await (await s.get(env.base + "/ui/incidents.json?q=onerror")).json()
        assert [r["id"] for r in text["rows"]] == [i["id"] for i in api if "edge-proxy" in i["services"]]
        r = await s.get(env.base + "/ui/incidents.json?state=burning")
        assert r.status == 400 and "state" in (await r.json())["message"]


async def test_the_list_counts_firing_alerts_in_no_incident(redis_url, key_prefix):
    """Alerts on a route with `correlate: false` are counted as in no incident while they fire, and no longer once
    they are resolved; alerts in incidents are not counted."""
    config = CONFIG.replace("  tocsin: {escalation: primary, min_confidence: 0}\n",
                            "  tocsin: {escalation: primary, min_confidence: 0}\n"
                            "  routes:\n    - {matchers: ['team=\"infra\"'], tocsin: {correlate: false}}\n")
    assert "correlate: false" in config
    e = await start(redis_url, key_prefix, config=config)
    try:
        await e.cascade(stray=False)
        for name in ("NodeDown", "DiskFull"):
            await e.post({"alertname": name, "team": "infra", "service": "nodes"}, {"summary": name})
        done = {"labels": {"alertname": "Old", "team": "infra"}, "annotations": {},
                "startsAt": to_rfc3339(T0), "endsAt": to_rfc3339(T0 + 100)}
        assert (await e.http.post(e.base + "/api/v2/alerts", json=[done])).status == 200
        async with browser_session() as s:
            data = await (await s.get(e.base + "/ui/incidents.json")).json()
            assert data["unassigned"] == 2
            assert [r["alerts"] for r in data["rows"]] == [6]
            page = await (await s.get(e.base + "/ui/")).text()
            assert re.search(r'id="unassigned"[^>]*>2<', page), "the count is not on the page"
    finally:
        await e.close()


async def test_bad_action_input_is_a_400_with_the_reason(env):
    """A snooze without a valid duration, a split without members and a silence with bad matchers are refused
    with the name of the bad field; nothing changes."""
    await env.cascade()
    iid = await incident_id(env, 6)
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + f"/ui/incidents/{iid}")).text())
        h = {"Origin": env.base}
        r = await s.post(env.base + f"/ui/incidents/{iid}", data={"csrf": csrf, "action": "snooze",
                                                                 "duration": "soon"}, headers=h)
        assert r.status == 400 and "duration" in await r.text()
        r = await s.post(env.base + f"/ui/incidents/{iid}", data={"csrf": csrf, "action": "split"}, headers=h)
        assert r.status == 400 and "fingerprints" in await r.text()
        r = await s.post(env.base + "/ui/silences", data={"csrf": csrf, "do": "create", "matchers": "{service=~\"(\"}",
                                                          "duration": "1h", "comment": "x"}, headers=h)
        assert r.status == 400 and "matchers" in await r.text()
        assert (await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json())["state"] == "triggered"
        assert await (await env.http.get(env.base + "/api/v2/silences")).json() == []
        r = await s.get(env.base + "/ui/alerts?f=1&filter=%7Bservice%3D%7E%22%28%22%7D")  # {service=~"("}
        assert r.status == 400 and "filter" in await r.text()
        for before in ("nan", "soon"):
            r = await s.get(env.base + f"/ui/?before={before}")
            assert r.status == 400 and "before" in await r.text()


async def test_split_and_merge_from_the_page(env):
    """Split off moves the ticked members to a new incident; merge into puts them back: the same result as the
    API's split and merge."""
    await env.cascade(stray=False)
    iid = await incident_id(env, 6)
    snap = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
    web_fps = [m["fingerprint"] for m in snap["members"] if m["labels"]["service"] == "web"]
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + f"/ui/incidents/{iid}")).text())
        h = {"Origin": env.base}
        r = await s.post(env.base + f"/ui/incidents/{iid}", data=[("csrf", csrf), ("action", "split")] +
                         [("fp", f) for f in web_fps], headers=h, allow_redirects=False)
        assert r.status == 303
        new_id = r.headers["Location"].split("/ui/incidents/")[1].split("?")[0]
        new = await (await env.http.get(env.base + f"/api/v1/incidents/{new_id}")).json()
        assert sorted(m["fingerprint"] for m in new["members"]) == sorted(web_fps)
        r = await s.post(env.base + f"/ui/incidents/{new_id}", data={"csrf": csrf, "action": "merge_into",
                                                                    "target": iid}, headers=h, allow_redirects=False)
        assert r.status == 303 and f"/ui/incidents/{iid}" in r.headers["Location"]
        back = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
        assert len(back["members"]) == 6


async def test_replay_compares_with_alertmanager_grouping(env):
    """An uploaded recording of the cascade replays twice: with correlation it pages once per incident, with
    plain Alertmanager grouping (group_by service) once per service."""
    lines = [json.dumps({"labels": labels, "annotations": {"summary": summary}, "startsAt": to_rfc3339(T0 + dt),
                         "at": to_rfc3339(T0 + dt)}) for dt, labels, summary in CASCADE]
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + "/ui/replay")).text())
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("stream", "\n".join(lines).encode(), filename="cascade.jsonl", content_type="application/json")
        form.add_field("config_text", CONFIG)
        r = await s.post(env.base + "/ui/replay", data=form, headers={"Origin": env.base})
        html = await r.text()
        assert r.status == 200, html
        pages = [int(p) for p in re.findall(r'<span class="pages">(\d+)</span>', html)]
        assert len(pages) == 2
        correlated, grouped = pages
        assert grouped == 3 and correlated < grouped  # three services -> three groups; one incident
        assert f"{env.engine.keys.prefix}" not in html
        bad = aiohttp.FormData()
        bad.add_field("csrf", csrf)
        bad.add_field("stream", b"not json\n", filename="x.jsonl")
        r = await s.post(env.base + "/ui/replay", data=bad, headers={"Origin": env.base})
        assert r.status == 400 and "line 1" in await r.text()


async def test_the_list_pages_through_older_incidents(env):
    """25 incidents a page, newest first; 'Older incidents' goes on from the last one shown, and the pages
    together are exactly the API's list, in its order."""
    for i in range(30):
        at = T0 + i * 400  # beyond the correlation window: one incident each
        env.clock.set(at)
        await env.post({"alertname": "HighLatency", "service": f"svc-{i:02d}", "severity": "warning"},
                       {"summary": f"alert {i}"}, at=at)
    api = [i["id"] for i in await (await env.http.get(env.base + "/api/v1/incidents")).json()]
    assert len(api) == 30
    async with browser_session() as s:
        first = await (await s.get(env.base + "/ui/")).text()
        ids = re.findall(r'<a href="/ui/incidents/([^"]+)">', first)
        m = re.search(r'<a href="([^"]+)" id="older">', first)
        assert len(ids) == 25 and m
        second = await (await s.get(env.base + m.group(1).replace("&amp;", "&"))).text()
        more = re.findall(r'<a href="/ui/incidents/([^"]+)">', second)
        assert ids + more == api
        assert 'id="older"' not in second


async def test_guessing_tokens_is_slowed_down(authed):
    """After 20 wrong tokens from one address, logins from it are refused (429) for a while, even a right one."""
    env = authed
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + "/ui/login")).text())
        h = {"Origin": env.base}
        for i in range(20):
            r = await s.post(env.base + "/ui/login", data={"csrf": csrf, "token": f"guess-{i}"}, headers=h)
            assert r.status == 401
        r = await s.post(env.base + "/ui/login", data={"csrf": csrf, "token": TOKEN}, headers=h,
                         allow_redirects=False)
        assert r.status == 429


async def test_an_uploaded_config_cannot_make_the_server_call_out(env, monkeypatch):
    """A replayed configuration's llm section (base_url, api_key_env) is not used: no request leaves the server,
    so an upload cannot send this server's API key anywhere."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    hits: list[str] = []

    async def anything(request):
        hits.append(request.path)
        return web.json_response({})

    trap = web.Application()
    trap.router.add_route("*", "/{tail:.*}", anything)
    server = TestServer(trap, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("UI_TEST_SECRET_KEY", "sk-do-not-send")
    try:
        cfg = CONFIG + f"""  llm: {{enabled: true, base_url: "{server.make_url('')}", api_key_env: UI_TEST_SECRET_KEY,
         deadline: 1}}
"""
        lines = [json.dumps({"labels": labels, "annotations": {"summary": summary},
                             "startsAt": to_rfc3339(T0 + dt)}) for dt, labels, summary in CASCADE]
        async with browser_session() as s:
            csrf = csrf_of(await (await s.get(env.base + "/ui/replay")).text())
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("stream", "\n".join(lines).encode(), filename="c.jsonl")
            form.add_field("config_text", cfg)
            r = await s.post(env.base + "/ui/replay", data=form, headers={"Origin": env.base})
            assert r.status == 200, await r.text()
        assert hits == []
    finally:
        await server.close()


async def test_snooze_feedback_and_resolve_from_the_page(env):
    """Snooze for a duration, vote on the summary, resolve: each lands in the API's snapshot with who and when;
    a resolved incident cannot be acknowledged (409 on the page, as in the API)."""
    await env.cascade()
    iid = await incident_id(env, 6)
    url = env.base + f"/ui/incidents/{iid}"
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(url)).text())
        h = {"Origin": env.base}
        now = env.clock.now()
        r = await s.post(url, data={"csrf": csrf, "action": "snooze", "duration": "30m"}, headers=h,
                         allow_redirects=False)
        assert r.status == 303
        snap = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
        assert snap["state"] == "snoozed" and snap["snoozed_until"] == now + 1800
        assert any(t["event"] == "snoozed" and "web" in t["detail"] for t in snap["timeline"])
        r = await s.post(url, data={"csrf": csrf, "action": "feedback", "helpful": "yes"}, headers=h,
                         allow_redirects=False)
        assert r.status == 303
        snap = await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json()
        assert snap["summary_feedback"]["helpful"] == 1 and snap["summary_feedback"]["votes"] == {"web": True}
        r = await s.post(url, data={"csrf": csrf, "action": "resolve"}, headers=h, allow_redirects=False)
        assert r.status == 303
        page = await (await s.get(url)).text()
        assert 'id="state">resolved<' in page and 'id="ack"' not in page
        r = await s.post(url, data={"csrf": csrf, "action": "ack"}, headers=h)
        assert r.status == 409 and "resolved" in await r.text()
        assert (await (await env.http.get(env.base + f"/api/v1/incidents/{iid}")).json())["state"] == "resolved"


async def test_an_uploaded_config_cannot_name_server_files(env):
    """`templates` and `*_file` keys in an uploaded configuration are refused with their path: the upload must
    not make the server read its own files."""
    async with browser_session() as s:
        csrf = csrf_of(await (await s.get(env.base + "/ui/replay")).text())
        for cfg, path in ((CONFIG + "templates: ['/etc/*']\n", "templates"),
                          (CONFIG.replace('{url: "http://127.0.0.1:1/oncall"}',
                                          '{url_file: "/etc/hostname"}'), "receivers[0].webhook_configs[0].url_file")):
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("stream", b'{"labels": {"alertname": "A"}, "startsAt": "2027-01-15T08:00:00Z"}\n',
                           filename="c.jsonl")
            form.add_field("config_text", cfg)
            r = await s.post(env.base + "/ui/replay", data=form, headers={"Origin": env.base})
            assert r.status == 400 and path in await r.text(), await r.text()
