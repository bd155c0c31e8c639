"""Fake third-party servers (real aiohttp apps on 127.0.0.1:0) and sample data for receiver tests."""
from __future__ import annotations

from typing import Any

from aiohttp import web


class LocalServer:
    """An aiohttp application served on 127.0.0.1 at a free port, as an async context manager.
    Subclasses add their routes in `routes(app)`."""

    client_max_size = 1024 * 1024

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        app = web.Application(client_max_size=self.client_max_size)
        self.routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner:
            await self._runner.cleanup()
