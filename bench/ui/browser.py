"""Headless Chromium for the UI's tests and screenshots: Debian's /usr/bin/chromium driven by Playwright for
Python (never `playwright install`: no browser is downloaded). Offline: background networking, component
updates and sync are off, and every request that does not go to 127.0.0.1 is aborted."""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

CHROMIUM = os.environ.get("TOCSIN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def new_page(b: Any, *, width: int = 1280, height: int = 900, dark: bool = False) -> Any:
    ctx = await b.new_context(viewport={"width": width, "height": height},
                              color_scheme="dark" if dark else "light")

    async def only_local(route: Any) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:", "about:")):
            await route.continue_()
        else:
            await route.abort()

    await ctx.route("**/*", only_local)
    return await ctx.new_page()
