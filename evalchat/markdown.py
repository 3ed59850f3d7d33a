"""report.json → report.md (Korean first, English second)."""

from __future__ import annotations

from typing import Any

from evalchat.rubric import CRITERIA

METRIC_LABELS = {
    "hangul_share": "한글 비율 Hangul share", "distinct_2": "distinct-2", "longest_repeat": "최장 반복 n-gram",
    "chars": "길이(글자) length", "empty_rate": "빈 답변 empty", "refused_rate": "거절 refused",
    "broken_rate": "깨진 글자 U+FFFD", "template_leak_rate": "템플릿 누출 template leak", "chrf": "chrF",
}


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(block: dict[str, Any] | None, digits: int = 2) -> str:
    if not block:
        return "-"
    return f"{block['mean']:.{digits}f} [{block['low']:.{digits}f}, {block['high']:.{digits}f}]"


def _short(text: str | None, limit: int = 160) -> str:
    flat = " ".join((text or "").split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _scores_section(report: dict[str, Any]) -> list[str]:
    judge = report["judge"]
    if judge is None:
        return ["## 심사 점수 (judge scores)", "", "심사 모델 없이 실행했습니다 (no judge: `--judge` not given).", ""]
    head = "| 대상 target | 심사 judged | 미심사 unjudged | " + " | ".join(
        f"{c.korean} ({c.low}-{c.high})" for c in CRITERIA) + " |"
    lines = ["## 심사 점수 (judge scores, 95% bootstrap CI)", "",
             f"심사 모델 judge: `{judge['model']}` at `{judge['url']}` (rubric `{judge['rubric']}`)", "",
             head, "|" + "---|" * (3 + len(CRITERIA))]
    for name, t in report["targets"].items():
        cells = [_ci(t.get("scores", {}).get(c.key)) for c in CRITERIA]
        errors = f" (+{t['judge_errors']} errors)" if t.get("judge_errors") else ""
        lines.append(f"| {name} | {t.get('judged', 0)} | {t.get('unjudged', 0)}{errors} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _metrics_section(report: dict[str, Any]) -> list[str]:
    keys = [k for k in METRIC_LABELS if any(k in t["metrics"] for t in report["targets"].values())]
    lines = ["## 심사 없는 지표 (judge-free metrics)", "",
             "| 대상 target | 답변 answers | 실패 failed | " + " | ".join(METRIC_LABELS[k] for k in keys) + " |",
             "|" + "---|" * (3 + len(keys))]
    for name, t in report["targets"].items():
        cells = [_ci(t["metrics_ci"][k]) if k in t["metrics_ci"] else _num(t["metrics"].get(k)) for k in keys]
        lines.append(f"| {name} | {t['answers']} | {t['failed']} | " + " | ".join(cells) + " |")
    return [*lines, "", "한글 비율·distinct-2·chrF는 평균 [95% 구간]; 비율(rate)은 답변 중 해당하는 몫입니다.", ""]


def _pairwise_section(report: dict[str, Any]) -> list[str]:
    if not report["pairwise"]:
        return []
    lines = ["## 쌍대 비교 (pairwise, both orders)", "",
             "| A | B | A 승 wins | 무승부 ties | B 승 wins | 미심사 unjudged | 같은 위치 선택 same position |",
             "|---|---|---|---|---|---|---|"]
    for p in report["pairwise"]:
        lines.append(f"| {p['x']} | {p['y']} | {p['x_wins']} | {p['ties']} | {p['y_wins']} | {p['unjudged']} | "
                     f"{p['same_position']} |")
    note = ("두 순서의 판정이 같은 답변을 고를 때만 승리로, 나머지는 무승부로 셉니다 "
            "(a win needs both orders to agree; 'same position' counts ties where the judge picked "
            "the same slot both times: position bias).")
    return [*lines, "", note, ""]


def _category_section(report: dict[str, Any]) -> list[str]:
    names = list(report["targets"])
    judged = report["judge"] is not None and report["judge"]["any_judged"]
    measure = "전반적 품질 overall" if judged else "chrF"
    lines = [f"## 범주별 (per category: {measure}; 한글 비율 Hangul share)", "",
             "| 범주 category | 문항 items | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
    for category, row in report["categories"].items():
        cells = []
        for n in names:
            value = row[n]["overall"] if judged else row[n]["chrf"]
            cells.append(f"{_num(value, 2)} ({_num(row[n]['hangul_share'], 2)})")
        lines.append(f"| {category} | {row['items']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _disagreement_section(report: dict[str, Any]) -> list[str]:
    lines = ["## 가장 엇갈린 문항 (items where the targets disagree most)", ""]
    if not report["disagreements"]:
        return [*lines, "(없음 none)", ""]
    for d in report["disagreements"]:
        lines.append(f"### {d['item_id']} ({d['category']}, {d['measure']} spread {d['spread']})")
        lines.append(f"> {_short(d['instruction'], 300)}")
        lines.append("")
        for name, v in d["by_target"].items():
            lines.append(f"- **{name}** ({d['measure']} {_num(v['value'], 2)}): {_short(v['answer'])}")
        lines.append("")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    names = ", ".join(report["targets"])
    lines = [
        "# kovr eval-chat 보고서 (report)", "",
        f"- 대상 targets: {names}",
        f"- 문항 items: {report['items']} ({report['prompt_set']}); 생성 설정 generation: {report['params']}",
        f"- 만든 시각 created: {report['created']}", "",
        "![chart](report.png)", "",
    ]
    for section in (_scores_section, _pairwise_section, _metrics_section, _category_section, _disagreement_section):
        lines += section(report)
    return "\n".join(lines) + "\n"
