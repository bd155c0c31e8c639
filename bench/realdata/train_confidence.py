"""Train the shipped confidence model (service/incidents/confidence_model.json) on the labelled real streams.

    python -m bench.realdata.train_confidence [--datasets asd,smd,nezha] [--out /tmp/conf-train]

Each dataset is replayed through `tocsin replay` with the benchmark's one config but nothing held
(`min_confidence: 0`), so that every incident that would page is seen. Each incident's first delivery is one
example: its confidence features (the `x` of each confidence factor, computed by the product at that moment) and
whether it covers a labelled incident (real) or not (noise). A logistic regression (scikit-learn, L2) is fitted on
all datasets, each weighted equally (the largest must not decide for the others: an installation is none of
them), and evaluated leave-one-dataset-out: trained on the others, scored on the one left out, as the held-out
streams will be. The model file records the weights, the evaluation and this command. `feedback_history` is not
in these streams (nobody acknowledged them); its weight is the Bayesian one (1.0 on the log-odds of past
verdicts) and stays fixed here, as do the detector's confidence and agreement and a declared severity when
the streams do not carry them (PRIOR).
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.realdata.run import HERE, calibration, first_pages, replay_records

MODEL = HERE.parent.parent / "service" / "incidents" / "confidence_model.json"
FEATURES = ["deviation", "persistence", "corroboration", "entities", "novelty", "detector_confidence",
            "detector_agreement", "flapping", "declared_severity"]
# Features these streams never carry (nobody acknowledged them, their detector sends no confidence, agreement or
# severity) cannot be learned here: they keep prior weights, stated, and each installation's feedback moves them.
PRIOR = {"feedback_history": 1.0, "detector_confidence": 0.6, "detector_agreement": 0.8, "declared_severity": 0.5}
C = 1.0  # L2 strength of scikit-learn's default; not tuned on these streams


def unheld_config(out: Path) -> Path:
    cfg = yaml.safe_load((HERE / "config.yml").read_text())
    cfg.setdefault("tocsin", {}).setdefault("correlation", {})["min_confidence"] = 0.0
    p = out / "config-unheld.yml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def examples(ds: str, config: Path, out: Path, reuse: bool) -> list[dict[str, Any]]:
    """Every delivery of every incident (the hold looks again at each group_interval, when persistence and
    breadth have grown), each incident weighing one in all; `reuse`: the replay output already in `out`."""
    raw = out / f"{ds}.tocsin.jsonl"
    if reuse and raw.exists():
        records = [r for r in (json.loads(x) for x in raw.read_text().splitlines() if x.strip())
                   if r.get("receiver") == "pager"]
    else:
        records, _, _ = replay_records(ds, config, out)
    return first_pages(ds, records, every=True)


def fit(sets: dict[str, list[dict[str, Any]]]) -> tuple[float, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression

    learnable = [f for f in FEATURES if any(p["x"].get(f, 0.0) for ps in sets.values() for p in ps)]
    xs, ys, ws = [], [], []
    for pages in sets.values():
        n = sum(p["weight"] for p in pages)  # incidents in this dataset
        for p in pages:
            xs.append([p["x"].get(f, 0.0) for f in learnable])
            ys.append(1 if p["real"] else 0)
            ws.append(p["weight"] / n)
    w = np.asarray(ws) * len(ws) / sum(ws)
    lr = LogisticRegression(C=C, max_iter=1000).fit(np.asarray(xs), np.asarray(ys), sample_weight=w)
    learned = {f: round(float(c), 4) for f, c in zip(learnable, lr.coef_[0])}
    return float(lr.intercept_[0]), {**PRIOR, **learned}


def _firsts(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first delivery of each incident: what the benchmark's confidence figures are about."""
    seen: set[str] = set()
    return [p for p in pages if not (p["key"] in seen or seen.add(p["key"]))]


def predict(bias: float, weights: dict[str, float], p: dict[str, Any]) -> float:
    z = bias + sum(w * p["x"].get(f, 0.0) for f, w in weights.items())
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="asd,smd,nezha")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="tocsin-conf-train-"))
    ap.add_argument("--write", action="store_true", help="write service/incidents/confidence_model.json")
    ap.add_argument("--reuse", action="store_true", help="score the replay output already in --out")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    config = unheld_config(out)
    sets = {ds: examples(ds, config, out / ds, a.reuse) for ds in a.datasets.split(",")}
    (out / "examples.json").write_text(json.dumps(sets))
    evaluation: dict[str, Any] = {}
    for held in sets:
        rest = {d: v for d, v in sets.items() if d != held}
        if not rest:
            continue
        b, w = fit(rest)
        firsts = _firsts(sets[held])
        q = calibration([predict(b, w, p) for p in firsts], [p["real"] for p in firsts])
        q.pop("reliability", None)
        evaluation[f"{held} (trained on {'+'.join(rest)})"] = q
        print(f"leave-one-out {held}: {q}", flush=True)
    bias, weights = fit(sets)
    for ds, pages in sets.items():
        firsts = _firsts(pages)
        q = calibration([predict(bias, weights, p) for p in firsts], [p["real"] for p in firsts])
        q.pop("reliability", None)
        evaluation[f"{ds} (in sample)"] = q
        print(f"in sample {ds}: {q}", flush=True)
    model = {"version": 1, "source": "default", "bias": round(bias, 4), "weights": weights, "prior_weights": sorted(set(PRIOR) - {f for f in weights if f not in PRIOR}),
             "trained_on": {ds: {"deliveries": len(p), "incidents": round(sum(x["weight"] for x in p)),
                                "real": round(sum(x["weight"] for x in p if x["real"]))} for ds, p in sets.items()},
             "evaluation": evaluation, "command": "python -m bench.realdata.train_confidence --write",
             "method": f"scikit-learn LogisticRegression(C={C}), datasets weighted equally; features absent from the streams keep PRIOR"}
    print(json.dumps({"bias": model["bias"], "weights": model["weights"]}, indent=1))
    if a.write:
        MODEL.write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {MODEL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
