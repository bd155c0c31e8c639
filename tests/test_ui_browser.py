"""The web UI in a real browser: Debian's headless Chromium driven by Playwright, against a real
Tocsin app on a loopback port with a real Redis. The list, an incident made by a six-alert cascade (timeline,
root cause, join reasons), Acknowledge (page, API, escalation), a silence made from an alert with its preview,
alert text that is markup rendered as text, and the alert groups shown with correlation off."""
from __future__ import annotations

import os
import re
from urllib.parse import urlencode

import pytest

from bench.ui.scenario import CONFIG, STRAY, XSS, start

from bench.ui.browser import CHROMIUM, browser, new_page  # noqa: E402
from playwright.async_api import expect  # noqa: E402

# Never a skip: .ci/run installs Debian's Chromium and the test extra installs Playwright; without them these
# tests fail, saying what to install.


def test_the_browser_is_installed():
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium (bash .ci/run does)"


@pytest.fixture
async def env(redis_url, key_prefix):
    e = await start(redis_url, key_prefix)
    await e.cascade()
    yield e
    await e.close()


@pytest.fixture
async def page():
    async with browser() as b:
        p = await new_page(b)
        problems: list[str] = []
        # A CSP violation (inline script or style) or a script error shows up as a console error.
        p.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        p.on("pageerror", lambda e: problems.append(str(e)))
        dialogs: list[str] = []

        async def on_dialog(d):
            dialogs.append(d.message)
            await d.dismiss()

        p.on("dialog", on_dialog)
        p.problems, p.dialogs = problems, dialogs
        yield p
        await p.context.close()


async def api(env, path):
    return await (await env.http.get(env.base + path)).json()


async def test_open_the_cascade_and_acknowledge_it(env, page):
    """The list shows both incidents; the cascade's page has a six-row timeline with the root cause highlighted
    and the escalation marked, and every join reason; Acknowledge changes the state on the page and in the API,
    and its escalation stops while the unacknowledged incident's escalation goes on."""
    await page.goto(env.base + "/ui/")
    rows = page.locator("#incidents tbody tr")
    assert await rows.count() == 2
    assert await page.locator("#unassigned").text_content() == "0"
    link = page.get_by_role("link", name=re.compile(r"payments-db DBConnectionPoolExhausted \+ 5 related alerts"))
    await link.click()
    await page.wait_for_url(re.compile(r"/ui/incidents/inc-"))
    iid = page.url.rsplit("/", 1)[1]

    assert await page.locator("#state").text_content() == "triggered"
    chart = page.locator("svg#timeline")
    assert await chart.locator("g.row").count() == 6
    root_rows = chart.locator("g.row.root")
    assert await root_rows.count() == 1
    assert "DBConnectionPoolExhausted" in await root_rows.locator("text").text_content()
    assert await chart.locator("g.marker.escalation-next").count() == 1  # level 1 is due
    assert "payments-db" in await page.locator("#roots li.first").text_content()
    reasons = await page.locator("#members ul.reasons").all_text_contents()
    assert len(reasons) == 6
    # each service's first alert joins by the call graph, its next one as the same entity
    assert sum("joined by topology" in r for r in reasons) >= 2 and sum("same entity" in r for r in reasons) >= 3
    assert any("checkout calls payments-db" in r for r in reasons)
    assert "opened the incident" in reasons[0]
    assert await page.locator("#cited dt").count() >= 1

    await page.get_by_role("button", name="Acknowledge").click()
    await page.wait_for_url(re.compile(r"done=ack"))
    assert await page.locator("#state").text_content() == "acknowledged"
    assert await page.locator("#acked-by").text_content() == "web"
    assert await page.get_by_role("button", name="Acknowledge").count() == 0
    snap = await api(env, f"/api/v1/incidents/{iid}")
    assert snap["state"] == "acknowledged" and snap["acked_by"] == "web"
    assert await page.locator("svg#timeline g.marker.acknowledged").count() == 1

    await env.advance(160 + 20 * 60)  # well past both escalation levels
    escalated = {n.incident["id"] for n in env.sent if n.receiver == "escalate" and n.reason.startswith("escalation level")}
    stray = next(i["id"] for i in await api(env, "/api/v1/incidents") if i["id"] != iid)
    assert stray in escalated  # the unacknowledged one escalates...
    assert iid not in escalated  # ...the acknowledged one does not
    await page.reload()
    assert "stopped: acknowledged" in await page.locator("p.esc").text_content()
    assert page.problems == [] and page.dialogs == []


async def test_the_list_refreshes_in_place(env, page):
    """The list page updates itself from /ui/incidents.json (no reload): an incident acknowledged elsewhere shows
    as acknowledged, with who did it, and a new incident appears; rows are built with textContent."""
    await page.goto(env.base + "/ui/")
    first_url = page.url
    cascade = page.locator("#incidents tbody tr", has_text="DBConnectionPoolExhausted")
    await expect(cascade.locator(".badge").first).to_have_text("triggered")
    iid = (await cascade.locator(".sub").first.text_content()).strip()
    r = await env.http.post(env.base + f"/api/v1/incidents/{iid}/ack", json={"by": "pat <b>on call</b>"})
    assert r.status == 200
    await env.post({"alertname": "QueueBacklog", "service": "mailer", "severity": "warning"}, {"summary": "q"},
                   at=env.clock.now() + 3600)
    await page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    await page.get_by_role("link", name="Refresh now").click()
    await expect(cascade.locator(".badge").first).to_have_text("acknowledged")
    await expect(cascade.locator("td").nth(6)).to_have_text("pat <b>on call</b>")
    await expect(page.locator("#incidents tbody tr")).to_have_count(3)
    assert page.url == first_url and await page.evaluate("window.__marker") == 1
    assert await page.locator("#incidents b").count() == 0
    assert page.problems == []


async def test_create_a_silence_from_an_alert(env, page):
    """From an alert's Silence link the form is filled with its labels and previews the one alert it would mute;
    editing the matchers updates the preview; creating it lists it and the API shows the alert silenced."""
    await page.goto(env.base + "/ui/alerts")
    alert = page.locator("li.alert", has_text="CertificateExpiry")
    await alert.get_by_role("link", name="Silence").click()
    await page.wait_for_url(re.compile(r"/ui/silences/new\?fingerprint="))
    matchers = await page.get_by_label(re.compile("^Matchers")).input_value()
    assert 'alertname="CertificateExpiry"' in matchers and 'service="edge-proxy"' in matchers
    assert await page.locator("#preview-count").text_content() == "1"
    await page.get_by_label(re.compile("^Matchers")).fill('{service=~"checkout|web"}')
    await expect(page.locator("#preview-count")).to_have_text("4")  # the live preview (ui.js)
    await page.get_by_label(re.compile("^Matchers")).fill(matchers)
    await expect(page.locator("#preview-count")).to_have_text("1")
    await page.get_by_label("Comment").fill("renewal in progress")
    await page.get_by_label("Duration").fill("3h")
    await page.get_by_role("button", name="Create silence").click()
    await page.wait_for_url(re.compile(r"/ui/silences\?done=created"))
    assert await page.locator("#silences tbody tr").count() == 1
    assert "CertificateExpiry" in await page.locator("#silences tbody tr").text_content()
    (s,) = await api(env, "/api/v2/silences")
    assert s["status"]["state"] == "active" and s["createdBy"] == "web" and s["comment"] == "renewal in progress"
    silenced = await api(env, "/api/v2/alerts?active=false&silenced=true&inhibited=false")
    assert [a["labels"]["alertname"] for a in silenced] == ["CertificateExpiry"]
    await page.get_by_role("button", name="Expire").click()
    await page.wait_for_url(re.compile(r"done=expired"))
    assert (await api(env, "/api/v2/silences"))[0]["status"]["state"] == "expired"
    assert page.problems == [] and page.dialogs == []


async def test_markup_in_an_annotation_renders_as_text(env, page):
    """An annotation `<img src=x onerror=alert(1)>` is shown as those characters on every page that shows it:
    no image element, no script run, no dialog."""
    stray = next(i for i in await api(env, "/api/v1/incidents") if i["services"] == [STRAY["service"]])
    for path in ("/ui/alerts", f"/ui/incidents/{stray['id']}"):
        await page.goto(env.base + path)
        assert await page.locator("img").count() == 0, path
        assert await page.get_by_text(XSS, exact=True).count() >= 1, path
    await page.goto(env.base + "/ui/?" + urlencode({"q": XSS}))  # reflected into the filter box, as text
    assert await page.get_by_label("Text").input_value() == XSS
    assert await page.locator("#incidents tbody tr").count() == 1  # the text filter finds the annotation
    assert await page.locator("img").count() == 0
    await page.goto(env.base + "/ui/silences/new?fingerprint=" + stray["members"][0]["fingerprint"])
    assert await page.locator("img").count() == 0
    assert page.dialogs == [] and page.problems == []


async def test_with_correlation_off_the_page_lists_alert_groups(redis_url, key_prefix, page):
    """Without correlation /ui/ shows Alertmanager's grouping: one group per receiver and group_by labels."""
    config = CONFIG.replace("    enabled: true\n", "    enabled: false\n")
    e = await start(redis_url, key_prefix, config=config)
    try:
        await e.cascade()
        await page.goto(e.base + "/ui/")
        assert await page.locator("h1").text_content() == "Alert groups"
        heads = await page.locator("section.group h2").all_text_contents()
        assert len(heads) == 4  # payments-db, checkout, web, edge-proxy
        assert all("oncall" in h for h in heads)
        assert any('service="checkout"' in h and "2 alerts" in h for h in heads)
        assert await page.get_by_text(XSS, exact=True).count() == 1 and await page.locator("img").count() == 0
        assert page.problems == []
    finally:
        await e.close()
