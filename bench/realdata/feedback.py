"""Does the confidence learn from people? Replay each dataset with verdicts simulated from the truth.

    python -m bench.realdata.feedback [--datasets asd,smd,nezha] [--delay 120] [--min-confidence P] [--out DIR]

The same replay as bench/realdata/run.py (one config, event time), with a person on call: `--delay` seconds of
event time after an incident's first page, they acknowledge it if it covers a labelled incident and mark it noise
otherwise, through the same action the Slack button, PagerDuty and the web page use
(service.http.incident_api.apply_action). Nothing else of the truth reaches Tocsin. The figure is the AUROC (and
ECE, Brier skill) of the confidence at each page's first delivery over the first and the second half of the
stream: learning shows as a higher second half. A run without verdicts gives the same halves for comparison.
`--min-confidence 0` pages every incident (nothing held), so that every incident is judged and scored: the
learning itself, without the hold's selection (held incidents get no verdict and no score).
"""
from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.realdata.run import HERE, calibration, first_pages, real_episode, replay_lines


async def _replay(ds: str, config: Path, delay: float | None) -> list[dict[str, Any]]:
    from routing.receivers.console import notification_record
    from service.config.sections import load_config
    from service.http.incident_api import apply_action
    from service.incidents import IncidentConflict, IncidentNotFound
    from service.pipeline.replay import Line, Simulation, replay

    cfg = load_config(str(config))
    real = real_episode(ds)
    records: list[dict[str, Any]] = []
    due: list[tuple[float, str, bool]] = []
    judged: set[str] = set()

    def emit(n: Any) -> None:
        r = notification_record(n)
        if r.get("receiver") != "pager":
            return
        records.append(r)
        iid = (r.get("incident") or {}).get("id")
        if delay is not None and iid and iid not in judged:
            judged.add(iid)
            truth = any(real(a["annotations"].get("event_id", "")) for a in r["alerts"])
            heapq.heappush(due, (n.timestamp + delay, iid, truth))

    async def person(sim: Simulation, line: Line) -> None:
        while due and due[0][0] <= line.at:
            t, iid, truth = heapq.heappop(due)
            await sim.run_until(max(t, sim.clock.now()))
            try:
                await apply_action(sim.engine, iid, "ack" if truth else "noise", "on-call (simulated)")
            except (IncidentConflict, IncidentNotFound):
                pass  # resolved before anyone looked: an acknowledgement no longer applies
            sim.flush_out()

    await replay(cfg, replay_lines(ds), emit, before_line=person)
    return records


def halves(ds: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    pages = sorted(first_pages(ds, records), key=lambda p: p["ts"])
    mid = (pages[0]["ts"] + pages[-1]["ts"]) / 2 if pages else 0.0
    out = {}
    for name, part in (("first half", [p for p in pages if p["ts"] < mid]), ("second half", [p for p in pages if p["ts"] >= mid])):
        q = calibration([p["p"] for p in part], [p["real"] for p in part])
        q.pop("reliability", None)
        out[name] = q
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="asd,smd,nezha")
    ap.add_argument("--config", default=str(HERE / "config.yml"))
    ap.add_argument("--delay", type=float, default=120.0, help="seconds from a first page to the person's verdict")
    ap.add_argument("--min-confidence", type=float, help="override the config's hold (0: nothing held)")
    ap.add_argument("--only-verdicts", action="store_true", help="skip the replay without verdicts")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="tocsin-feedback-"))
    a = ap.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.min_confidence is not None:
        import yaml

        cfg = yaml.safe_load(Path(a.config).read_text())
        cfg.setdefault("tocsin", {}).setdefault("correlation", {})["min_confidence"] = a.min_confidence
        a.config = str(Path(a.out, "config.yml"))
        Path(a.config).write_text(yaml.safe_dump(cfg))
    from service.core import logs

    logs.configure("error")
    res: dict[str, Any] = {}
    for ds in a.datasets.split(","):
        for mode, delay in (("without verdicts", None), ("with verdicts", a.delay))[1 if a.only_verdicts else 0:]:
            records = asyncio.run(_replay(ds, Path(a.config), delay))
            res[f"{ds} {mode}"] = halves(ds, records)
            print(f"{ds} {mode}: {json.dumps(res[f'{ds} {mode}'])}", flush=True)
    Path(a.out, "feedback.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
