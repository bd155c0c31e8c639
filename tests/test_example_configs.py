"""Every example configuration in config/ is valid as shipped."""
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "config").glob("*.yml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_passes_check_config(path):
    """`tocsin check-config` accepts the example with exit code 0."""
    p = subprocess.run([sys.executable, "-m", "service.cli", "check-config", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "ok" in p.stdout


def test_there_are_examples():
    """The examples the README refers to exist."""
    assert {p.name for p in CONFIGS} >= {"tocsin.yml", "incidents.yml"}
