"""`tocsin detect`: `--csv DATA.csv [--results OUT.csv]` scores a file offline; `--config FILE` runs the online
detector of the file's `tocsin.detect` section (Prometheus in, detector events into Tocsin's pipeline)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys


def main(args: argparse.Namespace) -> int:
    if bool(args.csv) == bool(args.config):
        print("tocsin detect: give either --csv DATA.csv or --config FILE", file=sys.stderr)
        return 2
    return _csv(args) if args.csv else _online(args)


def _csv(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from service.detect.csvmode import CsvInputError, run_csv
    from service.detect.params import DetectorParams

    try:
        params = DetectorParams(**({"method": args.method} if args.method else {}))
    except ValidationError as e:
        print(f"tocsin detect: --method: {e.errors()[0]['msg']}", file=sys.stderr)
        return 2
    try:
        src = open(args.csv, newline="")
    except OSError as e:
        print(f"tocsin detect: {args.csv}: {e.strerror}", file=sys.stderr)
        return 1
    out = sys.stdout if args.results in (None, "-") else open(args.results, "w", newline="")
    try:
        with src:
            stats = run_csv(src, out, params, explain=args.explain)
    except CsvInputError as e:
        print(f"tocsin detect: {args.csv}: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(json.dumps({"detect": stats}), file=sys.stderr)
    return 0


def _online(args: argparse.Namespace) -> int:
    from service.core import logs
    from service.config.sections import load_config
    from service.core.errors import ConfigErrors
    from service.detect.service import run_standalone

    logs.configure(args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigErrors as e:
        print(f"tocsin: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return 1
    if not cfg.tocsin.detect:
        print(f"tocsin detect: {args.config}: no tocsin.detect section", file=sys.stderr)
        return 1
    try:
        stats = asyncio.run(run_standalone(cfg, once=args.once))
    except KeyboardInterrupt:
        return 0
    print(json.dumps({"detect": stats}), file=sys.stderr)
    return 0
