"""`tocsin serve` as a real subprocess, for the durability and replica tests."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import ClientSession

from tests.proc_kit import die_with_parent

REPO = Path(__file__).resolve().parents[1]
DEADLINE = 60.0  # generous: a loaded 2-core machine; the tests normally finish far sooner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TocsinProcess:
    """`tocsin serve` as a subprocess with its own session (so that a kill of the group reaches its children)."""

    def __init__(self, config: Path, log: Path, instance: str, redis_url: str | None = None, prefix: str | None = None):
        self.config, self.log, self.instance = config, log, instance
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TOCSIN_KEY_PREFIX")}
        self.env.update(TOCSIN_INSTANCE=instance, PYTHONPATH=str(REPO))
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        if prefix:
            self.env["TOCSIN_KEY_PREFIX"] = prefix
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, session: ClientSession) -> None:
        self.port = free_port()
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--config", str(self.config),
                 "--listen", f"127.0.0.1:{self.port}", "--log-level", "warning"],
                cwd=REPO, env=self.env, stdout=logf, stderr=logf, start_new_session=True,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"tocsin exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            try:
                async with session.get(self.base + "/-/ready") as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("tocsin never became ready")

    def kill(self, group: bool = False) -> None:
        assert self.proc is not None
        if group:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
