"""Child processes that tests start die with the test process, however it ends.

A fixture's `finally` does not run when pytest is killed (a CI timeout, a Ctrl-C twice, kill -9), and an orphaned
Alertmanager or `tocsin serve` keeps delivering to webhook ports that later runs reuse, which breaks their
differential tests. `die_with_parent` is a `preexec_fn` for subprocess/asyncio: Linux's PR_SET_PDEATHSIG sends the
child SIGTERM when the thread that started it exits. Start children with it from the main (event loop) thread only:
a child started from a short-lived thread would be stopped when that thread ends.
"""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
