"""The real-data benchmark Tocsin steers by: replay each dataset of ../shared/realdata through `tocsin replay`
with ONE config (bench/realdata/config.yml), score deliveries and pages with the shared scorer, and print the
figures next to the Alertmanager baseline computed in the same run (the shared baselines.py).

    python -m bench.realdata.run [--datasets asd,smd,nezha] [--config bench/realdata/config.yml]
                                 [--out bench/realdata/out] [--markdown]

For every dataset it writes under --out: `<ds>.replay.jsonl` (the input stream), `<ds>.tocsin.jsonl` (what
`tocsin replay` printed), `<ds>.deliveries.jsonl` and `<ds>.pages.jsonl` (the scorer's format: every delivery,
and every delivery of one incident merged into one page at its first time), and `<ds>.explain.txt` (the worst
split and the worst merge, with the join reasons that made them).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = Path(os.environ.get("TOCSIN_REALDATA") or next(  # ../shared from the main checkout, ../../shared from a worktree
    (c for c in (ROOT.parent / "shared" / "realdata", ROOT.parent.parent / "shared" / "realdata") if c.exists()),
    ROOT.parent / "shared" / "realdata"))
METRICS = ["recall_detectable", "notifications_total", "notifications_per_incident", "noise_notifications",
           "purity", "ari", "rc_hit@1", "rc_hit@3", "rc_chance@1", "ttfn_median_s"]


def replay_lines(ds: str) -> list[str]:
    """The dataset as Prometheus would send it: each episode posted firing at startsAt and resolved at endsAt."""
    rows: list[tuple[float, int, dict[str, Any]]] = []
    from service.core.clock import parse_rfc3339

    for p in sorted((DATA / "events" / ds).glob("*.jsonl.gz")):
        with gzip.open(p, "rt") as f:
            for line in f:
                e = json.loads(line)
                e.pop("event_id", None)
                start, end = parse_rfc3339(e["startsAt"]), parse_rfc3339(e["endsAt"])
                firing = {k: v for k, v in e.items() if k != "endsAt"}
                rows.append((start, 1, {"at": e["startsAt"], **firing}))
                rows.append((end, 0, {"at": e["endsAt"], **e}))
    rows.sort(key=lambda r: (r[0], r[1]))  # at one instant, resolutions first (a series ends before it refires)
    return [json.dumps(r[2], separators=(",", ":")) for r in rows]


def root_cause_list(incident: dict[str, Any] | None, alerts: list[dict[str, Any]]) -> list[Any]:
    if incident and incident.get("root_causes"):
        return [{"entity": c.get("entity"), "metric": c.get("metric")} for c in incident["root_causes"]]
    return [{"entity": a["labels"].get("entity"), "metric": a["labels"].get("metric")} for a in alerts]


def to_scorer(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(every delivery, pages) in the scorer's format; a page is every delivery of one incident key merged."""
    from service.core.clock import parse_rfc3339

    deliveries: list[dict[str, Any]] = []
    for r in records:
        inc = r.get("incident") or {}
        key = inc.get("id") or r["group_key"]
        deliveries.append({"ts": parse_rfc3339(r["timestamp"]), "incident_key": key, "status": r["status"],
                           "alerts": [{"labels": a["labels"], "annotations": a["annotations"],
                                       "startsAt": a["startsAt"]} for a in r["alerts"]],
                           "root_cause": root_cause_list(inc, r["alerts"])})
    pages: dict[str, dict[str, Any]] = {}
    for d in deliveries:
        p = pages.get(d["incident_key"])
        if p is None:
            pages[d["incident_key"]] = {**d, "alerts": list(d["alerts"])}
        else:
            p["alerts"] += d["alerts"]
    return deliveries, list(pages.values())


def score(path: Path, ds: str) -> dict[str, Any]:
    sys.path.insert(0, str(DATA))
    from score import load_episodes, read_jsonl, score as score_fn  # the shared scorer

    truth = json.loads((DATA / "truth" / f"{ds}.json").read_text())
    return score_fn(read_jsonl(str(path)), truth, load_episodes(str(DATA / "events" / ds)))


def baselines(ds: str, out: Path) -> dict[str, dict[str, Any]]:
    """Alertmanager (and, for Nezha, by namespace) scored in this run, deliveries and merged pages."""
    sys.path.insert(0, str(DATA))
    import baselines as bl  # the shared event-time Alertmanager model

    res: dict[str, dict[str, Any]] = {}
    d = out / "baseline"
    d.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(DATA / "baselines.py"), "--root", str(DATA), "--datasets", ds,
                    "--out", str(d), "--results", str(d / f"{ds}.json")], check=True, capture_output=True)
    for p in sorted(d.glob(f"{ds}.*.jsonl")):
        name = p.stem.removeprefix(ds).strip(".")
        if "per_episode" in name or name.endswith(".pages"):
            continue
        notes = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        res[name] = score(p, ds)
        merged: dict[str, dict[str, Any]] = {}
        for n in notes:
            m = merged.get(n["incident_key"])
            if m is None:
                merged[n["incident_key"]] = {**n, "alerts": list(n["alerts"])}
            else:
                m["alerts"] += n["alerts"]
        pp = d / f"{p.stem}.pages.jsonl"
        pp.write_text("".join(json.dumps(m) + "\n" for m in merged.values()))
        res[name + " pages"] = score(pp, ds)
    _ = bl
    return res


def explain(ds: str, records: list[dict[str, Any]], out: Path) -> str:
    """The worst split (a true incident spread over the most incident keys) and the worst merge (one key
    holding the most true incidents and noise), with the join reasons of their members."""
    sys.path.insert(0, str(DATA))
    from score import load_episodes

    truth = json.loads((DATA / "truth" / f"{ds}.json").read_text())
    eps = {e["id"]: e for e in load_episodes(str(DATA / "events" / ds))}
    scope = truth.get("scope_labels", ["dataset", "entity"])
    incs = truth["incidents"]

    def incidents_of(eid: str) -> list[str]:
        e = eps.get(eid)
        if e is None:
            return []
        key = tuple(e["labels"].get(k) for k in scope)
        return [i["id"] for i in incs if tuple(i["match"].get(k) for k in scope) == key
                and e["start"] < i["end"] and i["start"] < e["end"]]

    keys_of_inc: dict[str, set[str]] = defaultdict(set)
    content: dict[str, set[str]] = defaultdict(set)
    snaps: dict[str, dict[str, Any]] = {}
    for r in records:
        inc = r.get("incident") or {}
        key = inc.get("id") or r["group_key"]
        snaps[key] = inc
        for a in r["alerts"]:
            eid = a["annotations"].get("event_id", "")
            hits = incidents_of(eid)
            content[key].update(hits or ["noise"])
            for h in hits:
                keys_of_inc[h].add(key)
    lines = [f"# {ds}: worst split and worst merge"]
    if keys_of_inc:
        inc, keys = max(keys_of_inc.items(), key=lambda kv: len(kv[1]))
        lines.append(f"\n## worst split: true incident {inc} over {len(keys)} incident keys")
        for k in sorted(keys)[:8]:
            lines += _reasons(snaps.get(k) or {}, k)
    if content:
        key, cls = max(content.items(), key=lambda kv: (len(kv[1] - {'noise'}), 'noise' in kv[1]))
        lines.append(f"\n## worst merge: {key} holds {len(cls - {'noise'})} true incidents"
                     f"{' and noise' if 'noise' in cls else ''}: {sorted(cls)[:10]}")
        lines += _reasons(snaps.get(key) or {}, key)
    text = "\n".join(lines) + "\n"
    (out / f"{ds}.explain.txt").write_text(text)
    return text


def _reasons(snap: dict[str, Any], key: str) -> list[str]:
    out = [f"- {key}: {len(snap.get('members', []))} members, opened {snap.get('opened_at')}"]
    for m in (snap.get("members") or [])[:12]:
        why = "; ".join(f"{j['signal']} {j['score']}: {j['detail']}" for j in m.get("joined_by", [])[:3])
        out.append(f"    {m['labels'].get('entity')}/{m['labels'].get('metric')} @{m['starts_at']:.0f}: {why}")
    return out


def replay_records(ds: str, config: Path, out: Path) -> tuple[list[dict[str, Any]], int, float]:
    """(what `tocsin replay` delivered to the pager, input lines, seconds) for one dataset under `config`."""
    out.mkdir(parents=True, exist_ok=True)
    inp = out / f"{ds}.replay.jsonl"
    lines = replay_lines(ds)
    inp.write_text("\n".join(lines) + "\n")
    raw = out / f"{ds}.tocsin.jsonl"
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    with raw.open("w") as f:
        subprocess.run([sys.executable, "-m", "service.cli", "replay", "--config", str(config), str(inp)],
                       stdout=f, check=True, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
    secs = time.perf_counter() - t0
    records = [json.loads(x) for x in raw.read_text().splitlines() if x.strip()]
    return [r for r in records if r.get("receiver") == "pager"], len(lines), secs


def run(ds: str, config: Path, out: Path) -> dict[str, Any]:
    records, n_lines, secs = replay_records(ds, config, out)
    deliveries, pages = to_scorer(records)
    dp, pp = out / f"{ds}.deliveries.jsonl", out / f"{ds}.pages.jsonl"
    dp.write_text("".join(json.dumps(d) + "\n" for d in deliveries))
    pp.write_text("".join(json.dumps(p) + "\n" for p in pages))
    res = {"tocsin": score(dp, ds), "tocsin pages": score(pp, ds), **baselines(ds, out),
           "_replay": {"lines": n_lines, "seconds": round(secs, 1), "lines_per_s": round(n_lines / secs)}}
    res["_explain"] = explain(ds, records, out)
    pages = first_pages(ds, records)
    res["_confidence"] = calibration([p["p"] for p in pages], [p["real"] for p in pages])
    reliability_png(ds, res["_confidence"], out / f"{ds}.reliability.png")
    return res


def reliability_png(ds: str, cal: dict[str, Any], path: Path) -> None:
    """The reliability diagram: mean confidence against the share of real pages per bin (matplotlib, a bench-only
    dependency: pip install -e '.[bench]'; skipped without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    bins = cal.get("reliability") or {}
    xs = [v[0] for v in bins.values()]
    ys = [v[1] for v in bins.values()]
    ns = [v[2] for v in bins.values()]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.scatter(xs, ys, s=[20 + 200 * n / max(ns) for n in ns] if ns else 20, label="pages per bin (area)")
    ax.plot(xs, ys, "-")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence at the first page", ylabel="share of pages that were real",
           title=f"{ds}: AUROC {cal.get('auroc')}, ECE {cal.get('ece')}, Brier skill {cal.get('brier_skill')}")
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def real_episode(ds: str) -> Callable[[str], bool]:
    """The truth, for the benchmark only: does this episode (event id) overlap a labelled incident?"""
    sys.path.insert(0, str(DATA))
    from score import load_episodes

    truth = json.loads((DATA / "truth" / f"{ds}.json").read_text())
    scope = truth.get("scope_labels", ["dataset", "entity"])
    by_scope: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for i in truth["incidents"]:
        by_scope[tuple(i["match"].get(k) for k in scope)].append(i)
    eps = {e["id"]: e for e in load_episodes(str(DATA / "events" / ds))}

    def real(eid: str) -> bool:
        e = eps.get(eid)
        return bool(e) and any(e["start"] < i["end"] and i["start"] < e["end"]
                               for i in by_scope.get(tuple(e["labels"].get(k) for k in scope), ()))

    return real


def first_pages(ds: str, records: list[dict[str, Any]], every: bool = False) -> list[dict[str, Any]]:
    """Each incident's first delivery (every delivery with `every`): its time, confidence, factors and whether
    the incident covers a labelled incident (any of its deliveries holds an episode that overlaps one)."""
    from service.core.clock import parse_rfc3339

    real = real_episode(ds)
    out: list[dict[str, Any]] = []
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    truth: dict[str, bool] = defaultdict(bool)
    for r in records:
        inc = r.get("incident") or {}
        key = inc.get("id") or r["group_key"]
        truth[key] |= any(real(a["annotations"].get("event_id", "")) for a in r["alerts"])
        if inc.get("confidence") is None or (seen[key] and not every):
            continue
        p = {"key": key, "ts": parse_rfc3339(r["timestamp"]), "p": float(inc["confidence"]),
             "x": {f["factor"]: f.get("x", 0.0) for f in inc.get("confidence_factors", [])}}
        seen[key].append(p)
        out.append(p)
    for p in out:
        p["real"] = truth[p["key"]]
        p["weight"] = 1.0 / len(seen[p["key"]])
    return out


def calibration(ps: list[float], reals: list[bool]) -> dict[str, Any]:
    """AUROC, expected calibration error over 10 bins, Brier skill against the base rate, reliability bins."""
    ys = [1.0 if y else 0.0 for y in reals]
    pos = [p for p, y in zip(ps, ys) if y]
    neg = [p for p, y in zip(ps, ys) if not y]
    auroc = None
    if pos and neg:
        auroc = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
    if not ys:
        return {}
    base = sum(ys) / len(ys)
    brier = sum((p - y) ** 2 for p, y in zip(ps, ys)) / len(ys)
    ref = sum((base - y) ** 2 for y in ys) / len(ys)
    bins: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for p, y in zip(ps, ys):
        bins[min(9, int(p * 10))].append((p, y))
    ece = sum(abs(sum(p for p, _ in b) / len(b) - sum(y for _, y in b) / len(b)) * len(b) for b in bins.values()) / len(ys)
    return {"pages": len(ys), "real": int(sum(ys)), "auroc": round(auroc, 3) if auroc is not None else None,
            "ece": round(ece, 3), "brier_skill": round(1 - brier / ref, 3) if ref else None,
            "reliability": {f"{b / 10:.1f}": [round(sum(p for p, _ in v) / len(v), 3), round(sum(y for _, y in v) / len(v), 3),
                                              len(v)] for b, v in sorted(bins.items())}}


def table(ds: str, res: dict[str, Any]) -> str:
    rows = [f"### {ds} (replay: {res['_replay']['lines']} lines in {res['_replay']['seconds']} s, "
            f"{res['_replay']['lines_per_s']} lines/s)", "",
            "| | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, r in res.items():
        if name.startswith("_"):
            continue
        rows.append(f"| {name} | " + " | ".join(str(r.get(m)) for m in METRICS) + " |")
    c = res.get("_confidence") or {}
    if c:
        rows.append(f"\nconfidence at a page's first delivery: {c['pages']} pages ({c['real']} real), AUROC {c['auroc']}, "
                    f"ECE {c['ece']}, Brier skill {c['brier_skill']}")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="asd,smd,nezha")
    ap.add_argument("--config", default=str(HERE / "config.yml"))
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--json", help="also write all figures to this file")
    a = ap.parse_args(argv)
    allres = {}
    t0 = time.perf_counter()
    for ds in a.datasets.split(","):
        res = run(ds, Path(a.config), Path(a.out))
        allres[ds] = res
        print(table(ds, res), flush=True)
        print(res["_explain"], flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(allres, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
