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
verdicts) and stays fixed here.
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
FIXED = {"feedback_history": 1.0}
C = 1.0  # L2 strength of scikit-learn's default; not tuned on these streams


def unheld_config(out: Path) -> Path:
    cfg = yaml.safe_load((HERE / "config.yml").read_text())
    cfg.setdefault("tocsin", {}).setdefault("correlation", {})["min_confidence"] = 0.0
    p = out / "config-unheld.yml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def examples(ds: str, config: Path, out: Path) -> list[dict[str, Any]]:
    records, _, _ = replay_records(ds, config, out)
    return first_pages(ds, records)


def fit(sets: dict[str, list[dict[str, Any]]]) -> tuple[float, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for pages in sets.values():
        for p in pages:
            xs.append([p["x"].get(f, 0.0) for f in FEATURES])
            ys.append(1 if p["real"] else 0)
            ws.append(1.0 / len(pages))
    w = np.asarray(ws) * len(ws) / sum(ws)
    lr = LogisticRegression(C=C, max_iter=1000).fit(np.asarray(xs), np.asarray(ys), sample_weight=w)
    return float(lr.intercept_[0]), {f: round(float(c), 4) for f, c in zip(FEATURES, lr.coef_[0])}


def predict(bias: float, weights: dict[str, float], p: dict[str, Any]) -> float:
    z = bias + sum(weights.get(f, 0.0) * p["x"].get(f, 0.0) for f in FEATURES)
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="asd,smd,nezha")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="tocsin-conf-train-"))
    ap.add_argument("--write", action="store_true", help="write service/incidents/confidence_model.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    config = unheld_config(out)
    sets = {ds: examples(ds, config, out / ds) for ds in a.datasets.split(",")}
    (out / "examples.json").write_text(json.dumps(sets))
    evaluation: dict[str, Any] = {}
    for held in sets:
        rest = {d: v for d, v in sets.items() if d != held}
        if not rest:
            continue
        b, w = fit(rest)
        q = calibration([predict(b, w, p) for p in sets[held]], [p["real"] for p in sets[held]])
        q.pop("reliability", None)
        evaluation[f"{held} (trained on {'+'.join(rest)})"] = q
        print(f"leave-one-out {held}: {q}", flush=True)
    bias, weights = fit(sets)
    for ds, pages in sets.items():
        q = calibration([predict(bias, weights, p) for p in pages], [p["real"] for p in pages])
        q.pop("reliability", None)
        evaluation[f"{ds} (in sample)"] = q
        print(f"in sample {ds}: {q}", flush=True)
    model = {"version": 1, "source": "default", "bias": round(bias, 4), "weights": {**weights, **FIXED},
             "trained_on": {ds: {"pages": len(p), "real": sum(1 for x in p if x["real"])} for ds, p in sets.items()},
             "evaluation": evaluation, "command": "python -m bench.realdata.train_confidence --write",
             "method": f"scikit-learn LogisticRegression(C={C}), datasets weighted equally; feedback_history fixed"}
    print(json.dumps({"bias": model["bias"], "weights": model["weights"]}, indent=1))
    if a.write:
        MODEL.write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {MODEL}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
