"""The report: DIR/report.json (every figure), DIR/report.md (for people), DIR/report.png (one chart).

Means of judge scores count judged items only; their 95 % intervals are percentile bootstraps over
items. The chart's labels are English because the fonts on a server rarely carry Hangul.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalchat.rubric import CRITERIA, RUBRIC_VERSION
from evalchat.stats import bootstrap_ci
from kovr.chat_metrics import summarize

if TYPE_CHECKING:
    from evalchat.run import EvalRun

REPORT_JSON, REPORT_MD, REPORT_PNG = "report.json", "report.md", "report.png"
CI_METRICS = ("hangul_share", "distinct_2", "chrf")  # judge-free figures shown with intervals
DISAGREEMENTS = 5
Answers = dict[str, dict[str, dict[str, Any]]]


def _ci(values: list[float], seed: int) -> dict[str, float] | None:
    if not values:
        return None
    m, lo, hi = bootstrap_ci(values, seed=seed)
    return {"mean": round(m, 4), "low": round(lo, 4), "high": round(hi, 4), "n": len(values)}


def _target_block(run: EvalRun, name: str, answers: dict[str, dict[str, Any]],
                  scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    good = [a for a in answers.values() if "error" not in a]
    rows = [a["metrics"] for a in good]
    block: dict[str, Any] = {
        "identity": next((a["identity"] for a in answers.values()), None),
        "answers": len(good), "failed": len(answers) - len(good), "metrics": summarize(rows),
        "metrics_ci": {k: ci for k in CI_METRICS if (ci := _ci([r[k] for r in rows if r.get(k) is not None],
                                                               run.seed)) is not None},
    }
    if scores:
        judged = [r["value"] for r in scores.values() if r["status"] == "judged"]
        block["judged"] = len(judged)
        block["unjudged"] = sum(1 for r in scores.values() if r["status"] == "unjudged")
        block["judge_errors"] = sum(1 for r in scores.values() if r["status"] == "error")
        block["scores"] = {c.key: _ci([float(s[c.key]) for s in judged], run.seed) for c in CRITERIA}
    return block


def _pair_table(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for p in pairs:
        row = table.setdefault((p["x"], p["y"]), {"x": p["x"], "y": p["y"], "x_wins": 0, "y_wins": 0, "ties": 0,
                                                  "unjudged": 0, "same_position": 0})
        outcome = p["outcome"]
        key = {"x": "x_wins", "y": "y_wins", "tie": "ties", None: "unjudged"}[outcome]
        row[key] += 1
        a, b = p["verdicts"]
        if outcome == "tie" and a in ("A", "B") and a == b:  # the same position won both times
            row["same_position"] += 1
    return list(table.values())


def _item_score(scores: Answers, name: str, item_id: str) -> float | None:
    record = scores.get(name, {}).get(item_id)
    return float(record["value"]["overall"]) if record and record["status"] == "judged" else None


def _any_judged(scores: Answers) -> bool:
    return any(r["status"] == "judged" for by_item in scores.values() for r in by_item.values())


def _categories(run: EvalRun, answers: Answers, scores: Answers) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for category in sorted({i.category for i in run.items}):
        ids = [i.id for i in run.items if i.category == category]
        row: dict[str, Any] = {"items": len(ids)}
        for name, by_item in answers.items():
            overall = [s for i in ids if (s := _item_score(scores, name, i)) is not None]
            chrf = [by_item[i]["metrics"]["chrf"] for i in ids
                    if i in by_item and "chrf" in by_item[i].get("metrics", {})]
            hangul = [by_item[i]["metrics"]["hangul_share"] for i in ids
                      if i in by_item and by_item[i].get("metrics", {}).get("hangul_share") is not None]
            row[name] = {"overall": round(sum(overall) / len(overall), 3) if overall else None,
                         "chrf": round(sum(chrf) / len(chrf), 2) if chrf else None,
                         "hangul_share": round(sum(hangul) / len(hangul), 3) if hangul else None}
        out[category] = row
    return out


def _disagreements(run: EvalRun, answers: Answers, scores: Answers) -> list[dict[str, Any]]:
    """Items where the targets differ most: judge's overall score, or chrF when nothing was judged."""
    ranked: list[dict[str, Any]] = []
    judged = _any_judged(scores)
    for item in run.items:
        values: dict[str, float] = {}
        for name, by_item in answers.items():
            score = _item_score(scores, name, item.id)
            if not judged:
                score = by_item.get(item.id, {}).get("metrics", {}).get("chrf")
            if score is not None:
                values[name] = float(score)
        if len(values) >= 2:
            spread = max(values.values()) - min(values.values())
            ranked.append({"item_id": item.id, "category": item.category, "instruction": item.instruction,
                           "measure": "overall" if judged else "chrf", "spread": round(spread, 3),
                           "by_target": {n: {"value": v, "answer": answers[n][item.id]["answer"]}
                                         for n, v in values.items()}})
    ranked.sort(key=lambda r: -float(r["spread"]))
    return [r for r in ranked[:DISAGREEMENTS] if float(r["spread"]) > 0]


def build_report(run: EvalRun, answers: Answers, scores: Answers, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "kovr-eval-chat", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "prompt_set": run.prompt_set, "items": len(run.items), "params": run.params.to_json(),
        "judge": None if run.judge is None else {"url": run.judge.url, "model": run.judge.model,
                                                 "rubric": RUBRIC_VERSION, "any_judged": _any_judged(scores)},
        "criteria": [{"key": c.key, "korean": c.korean, "english": c.english, "low": c.low, "high": c.high}
                     for c in CRITERIA],
        "targets": {name: _target_block(run, name, answers[name], scores.get(name, {})) for name in answers},
        "pairwise": _pair_table(pairs),
        "categories": _categories(run, answers, scores),
        "disagreements": _disagreements(run, answers, scores),
        "per_item": [{"item_id": i.id, "category": i.category,
                      "targets": {n: {"answer": answers[n].get(i.id, {}).get("answer"),
                                      "error": answers[n].get(i.id, {}).get("error"),
                                      "metrics": answers[n].get(i.id, {}).get("metrics"),
                                      "judge": (scores.get(n, {}).get(i.id) or {}).get("status"),
                                      "scores": (scores.get(n, {}).get(i.id) or {}).get("value")}
                                  for n in answers}} for i in run.items],
    }


def write_report(out_dir: Path, report: dict[str, Any]) -> list[Path]:
    from evalchat.markdown import render_markdown
    from evalchat.plot import plot_report

    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return [json_path, md_path, plot_report(report, out_dir / REPORT_PNG)]
