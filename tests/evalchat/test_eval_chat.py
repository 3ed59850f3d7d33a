"""`kovr eval-chat` end to end with tiny real models on loopback: a local folder, a model_server URL
and KoVR's own /v1 as targets; a trained judge and a garbage judge behind KoVR's /v1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalchat.answers import ANSWERS_DIR
from evalchat.judge import JudgeSpec
from evalchat.prompts import load_prompt_set
from evalchat.rubric import CRITERIA, RETRY_NOTE
from evalchat.run import EvalRun, RunResult, run_eval
from evalchat.targets import GenParams, TargetSpec, parse_target
from kovr.cli import main
from kovr.settings import Settings
from tests.evalchat.conftest import Models, Servers
from tests.evalchat.support import ITEMS, JUDGE_SCORES

pytestmark = pytest.mark.slow
PARAMS = GenParams(max_new_tokens=24)


def _targets(models: Models, servers: Servers) -> list[TargetSpec]:
    return [parse_target(f"a=local:{models.a}"), parse_target(f"b={servers.b_url}")]


def _run(out: Path, targets: list[TargetSpec], settings: Settings, judge: JudgeSpec | None = None,
         judge_key: str | None = None, params: GenParams = PARAMS, **options: object) -> RunResult:
    run = EvalRun(out_dir=out, items=load_prompt_set()[:ITEMS], targets=targets, params=params, judge=judge,
                  progress=False, **options)  # type: ignore[arg-type]
    return run_eval(run, settings, judge_key=judge_key)


def _answers(result: RunResult) -> dict[str, list[str]]:
    per_item = result.report["per_item"]
    return {name: [i["targets"][name]["answer"] for i in per_item] for name in result.report["targets"]}


def test_answers_are_cached_and_a_cut_run_resumes(models: Models, servers: Servers, local_settings: Settings,
                                                  tmp_path: Path) -> None:
    targets = _targets(models, servers)
    first = _run(tmp_path, targets, local_settings)
    counts = {n: (s.generated, s.cached, s.failed) for n, s in first.generation.items()}
    assert counts == {"a": (4, 0, 0), "b": (4, 0, 0)}
    assert all(answer for answer in _answers(first)["a"])
    assert all((tmp_path / name).is_file() for name in ("report.md", "report.json", "report.png"))

    again = _run(tmp_path, targets, local_settings)  # nothing regenerated, the local folder not even loaded
    assert {n: (s.generated, s.cached) for n, s in again.generation.items()} == {"a": (0, 4), "b": (0, 4)}

    cache = tmp_path / ANSWERS_DIR / "b.jsonl"
    lines = cache.read_text(encoding="utf-8").splitlines()
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2], encoding="utf-8")  # killed mid-write
    resumed = _run(tmp_path, targets, local_settings)
    assert (resumed.generation["b"].generated, resumed.generation["b"].cached) == (3, 1)
    assert _answers(resumed) == _answers(first)  # greedy: the same answers, resumed or not

    longer = _run(tmp_path, targets, local_settings, params=GenParams(max_new_tokens=30))  # new parameters
    assert longer.generation["a"].generated == 4 and longer.generation["b"].generated == 4


def test_judged_report_with_order_swap(models: Models, servers: Servers, local_settings: Settings,
                                       tmp_path: Path) -> None:
    judge = JudgeSpec(servers.judge.url)
    result = _run(tmp_path, _targets(models, servers), local_settings, judge=judge, judge_key=servers.judge.token)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (tmp_path / "judge" / "absolute.jsonl").open(encoding="utf-8")]
    assert len(records) == 2 * ITEMS
    for record in records:  # prompts and raw replies are kept
        assert record["status"] == "judged", record["attempts"]
        assert record["value"] == JUDGE_SCORES and json.loads(record["attempts"][-1]["reply"]) == JUDGE_SCORES
        assert "[답변]" in record["attempts"][0]["prompt"]
    for name in ("a", "b"):
        block = report["targets"][name]
        assert (block["judged"], block["unjudged"]) == (ITEMS, 0)
        for c in CRITERIA:  # a judge that always gives the same score: a zero-width interval
            ci = block["scores"][c.key]
            assert ci["mean"] == ci["low"] == ci["high"] == JUDGE_SCORES[c.key]
    # The judge always prefers the first slot: in both orders that is a tie, never a win.
    assert report["pairwise"] == [{"x": "a", "y": "b", "x_wins": 0, "y_wins": 0, "ties": ITEMS, "unjudged": 0,
                                   "same_position": ITEMS}]
    assert len((tmp_path / "judge" / "pairwise.jsonl").read_text(encoding="utf-8").splitlines()) == 2 * ITEMS
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    for heading in ("심사 점수", "쌍대 비교", "심사 없는 지표", "범주별", "가장 엇갈린 문항"):
        assert heading in markdown
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")
    assert result.judge_asked == 4 * ITEMS

    rerun = _run(tmp_path, _targets(models, servers), local_settings, judge=judge, judge_key=servers.judge.token)
    assert (rerun.judge_asked, rerun.judge_cached) == (0, 4 * ITEMS)  # a rerun asks the judge nothing


def test_garbage_judge_leaves_items_unjudged(models: Models, servers: Servers, local_settings: Settings,
                                             tmp_path: Path) -> None:
    judge = JudgeSpec(servers.garbage.url)
    _run(tmp_path, _targets(models, servers), local_settings, judge=judge, judge_key=servers.garbage.token,
         judge_max_tokens=40)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    for record in map(json.loads, (tmp_path / "judge" / "absolute.jsonl").open(encoding="utf-8")):
        assert record["status"] == "unjudged" and record["value"] is None
        first, retry = record["attempts"]  # one retry, with the note on the format; never a guessed score
        assert retry["prompt"] == first["prompt"] + RETRY_NOTE and "reply" in retry
    block = report["targets"]["a"]
    assert (block["judged"], block["unjudged"]) == (0, ITEMS)
    assert all(block["scores"][c.key] is None for c in CRITERIA)
    assert report["pairwise"][0]["unjudged"] == ITEMS
    assert "report.png" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_cli_against_the_apps_v1(servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["eval-chat", "--target", f"app={servers.garbage.url};key_env=EVALCHAT_TEST_TOKEN",
            "--target", f"ms=tgi:{servers.b_url}", "--limit", "2", "--max-new-tokens", "12", "--no-progress",
            "--output", str(tmp_path)]
    assert main(argv) == 2  # the named variable is not set: one clear line, nothing run
    monkeypatch.setenv("EVALCHAT_TEST_TOKEN", servers.garbage.token)
    assert main(argv) == 0
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert {n: (t["answers"], t["failed"]) for n, t in report["targets"].items()} == {"app": (2, 0), "ms": (2, 0)}
    assert report["judge"] is None and report["pairwise"] == []
    monkeypatch.setenv("EVALCHAT_TEST_TOKEN", "kovr_" + "x" * 43)  # a wrong token: failed, not cached
    assert main([*argv[:-1], str(tmp_path / "bad")]) == 0
    bad = json.loads((tmp_path / "bad" / "report.json").read_text(encoding="utf-8"))
    assert bad["targets"]["app"]["failed"] == 2 and "401" in bad["per_item"][0]["targets"]["app"]["error"]
