"""Acceptance: `tocsin check-config` gives the verdict of the real `amtool check-config` (Alertmanager 0.25).

The files are Alertmanager's own test configurations (tests/compat/amconfigs/config and cli, from
prometheus/alertmanager's config/testdata and cli/testdata, Apache-2.0) and receiver cases written for Tocsin
(tests/compat/amconfigs/cases, one Alertmanager rule each). Both programs run on every file; the verdicts
(accepted or rejected) must be equal, except where Tocsin differs on purpose, which is listed in
`DELIBERATE` with the reason and checked to be exactly that reason.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from routing.receivers.registry import UNDELIVERABLE
from routing.receivers.validate import LATER_KEYS, LATER_KINDS
from service import cli

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
ROOT = Path(__file__).parent / "compat" / "amconfigs"
FILES = sorted(p for p in ROOT.rglob("*.yml"))
LATER_FIELDS = set().union(*LATER_KEYS.values()) | {f"{k}_configs" for k in LATER_KINDS | UNDELIVERABLE}

# file -> (Tocsin's verdict, why it differs from Alertmanager 0.25)
DELIBERATE: dict[str, tuple[bool, str]] = {}



def amtool_verdict(path: Path) -> tuple[bool, str]:
    p = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    return p.returncode == 0, p.stdout + p.stderr


def tocsin_verdict(path: Path, capsys) -> tuple[bool, str]:
    code = cli.main(["check-config", str(path)])
    out = capsys.readouterr()
    return code == 0, out.out + out.err


def test_there_are_fixtures():
    """The fixtures are in place (Alertmanager's and Tocsin's cases)."""
    assert len(list((ROOT / "config").glob("*.yml"))) >= 25 and len(list((ROOT / "cli").glob("*.yml"))) == 7
    assert len(list((ROOT / "cases").glob("*.yml"))) >= 60


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_same_verdict_as_amtool(path: Path, capsys):
    """Tocsin accepts exactly the files Alertmanager 0.25 accepts (deliberate differences are named)."""
    rel = str(path.relative_to(ROOT))
    am_ok, am_out = amtool_verdict(path)
    ok, out = tocsin_verdict(path, capsys)
    if rel in DELIBERATE:
        want, why = DELIBERATE[rel]
        assert am_ok != want and ok == want, (why, am_out, out)
        return
    if am_ok and not ok:
        pytest.fail(f"Alertmanager accepts, Tocsin rejects:\n{out}")
    if ok and not am_ok:
        # The one deliberate kind of difference: a key of a later Alertmanager that Tocsin implements.
        later = [f for f in LATER_FIELDS if f"field {f} not found" in am_out]
        assert later, f"Alertmanager rejects, Tocsin accepts:\n{am_out}"
