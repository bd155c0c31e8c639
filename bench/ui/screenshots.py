"""Screenshots of the web UI on the six-alert cascade: the incident list and the incident's detail page, light
and dark, desktop and phone. Writes bench/ui/*.png.

    python -m bench.ui.screenshots        # REDIS_URL, else a private embedded Redis
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path

from bench.ui.browser import browser, new_page
from bench.ui.scenario import start

OUT = Path(__file__).parent


async def main() -> None:
    embedded = None
    url = os.environ.get("REDIS_URL")
    if not url:
        from service.store.embedded import EmbeddedRedis

        embedded = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-ui-shots-"), persist=False)
        url = embedded.start()
    prefix = f"uishots{uuid.uuid4().hex[:6]}"
    env = await start(url, prefix)
    try:
        await env.cascade()
        items = await (await env.http.get(env.base + "/api/v1/incidents")).json()
        big = max(items, key=lambda i: len(i["members"]))
        async with browser() as b:
            for name, kw in (("", {}), ("-dark", {"dark": True}), ("-phone", {"width": 390, "height": 844})):
                page = await new_page(b, **kw)
                await page.goto(env.base + "/ui/")
                await page.screenshot(path=str(OUT / f"list{name}.png"), full_page=True)
                await page.goto(env.base + f"/ui/incidents/{big['id']}")
                await page.screenshot(path=str(OUT / f"detail{name}.png"), full_page=True)
                if not name:
                    await page.screenshot(path=str(OUT / "detail-top.png"))
                    await page.locator("section", has=page.locator("#h-timeline")).screenshot(
                        path=str(OUT / "detail-timeline.png"))
                await page.context.close()
            # Later: escalation level 1 has paged (nobody acknowledged), then someone presses Acknowledge.
            await env.advance(160 + 300)
            page = await new_page(b)
            await page.goto(env.base + f"/ui/incidents/{big['id']}")
            await page.get_by_role("button", name="Acknowledge").click()
            await page.wait_for_url("**done=ack")
            await page.locator("section", has=page.locator("#h-timeline")).screenshot(
                path=str(OUT / "detail-timeline-acked.png"))
            await page.context.close()
        print(f"wrote {OUT}/list*.png and {OUT}/detail*.png (incident {big['id']}, {len(big['members'])} alerts)")
    finally:
        async for k in env.engine.redis.scan_iter(match=f"{prefix}*"):
            await env.engine.redis.delete(k)
        await env.close()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
