"""Differential compatibility suite: real Alertmanager 0.25 vs. Tocsin, scenario by scenario.

  python -m pytest tests/compat -q                  # Alertmanager vs Tocsin (`python -m service.cli serve`)
  COMPAT_OTHER=alertmanager python -m pytest ...    # Alertmanager vs Alertmanager: harness/determinism check
  COMPAT_CONCURRENCY=6                              # scenarios run at once (default 6)
  COMPAT_TOCSIN_REPO=/path/to/checkout              # run Tocsin from another checkout (e.g. a patched copy)
  COMPAT_ALERTMANAGER_BIN=/usr/bin/prometheus-alertmanager

lang.py: the scenario language; scenarios.py: the scenarios (with what Alertmanager sends); configs.py: configs
both must accept or refuse alike; harness.py: processes, capture server, timed driving; compare.py: normaliser,
comparator and readable rendering; test_differential.py: the tests.
"""
