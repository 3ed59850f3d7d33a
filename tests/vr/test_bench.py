"""The visual-reasoning benches: the GPU configs they run, the scale bench's CPU smoke run, seed lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from finetune.vr.config import CONFIGS, VRConfig
from finetune.vr.evaluate import REASON_JOINER
from finetune.yaml_config import load_config
from research.vr.bench_nouns import NOUNS
from research.vr.bench_vr import parse_seeds, print_tables
from research.vr.proof import ProofSize, _verdicts, _without_yes_no
from research.vr.questions import NO, YES

REPO = Path(__file__).resolve().parents[2]
BENCH_VR, BENCH_NOUNS = REPO / "research" / "vr" / "bench_vr.py", REPO / "research" / "vr" / "bench_nouns.py"


def test_gpu_configs_name_pretrained_models_and_train_the_llava_way() -> None:
    s1 = load_config(VRConfig, CONFIGS / "polyglot_ko_1.3b_stage1.yaml")
    s2 = load_config(VRConfig, CONFIGS / "polyglot_ko_1.3b_stage2.yaml")
    assert s1.vision.encoder == "openai/clip-vit-large-patch14" and s1.vision.feature_layer == -2
    assert s1.language_model.name_or_path and s1.train.precision == "bf16" and s1.run.device == "cuda"
    assert s2.init_from == Path("runs/vr-polyglot-ko-1.3b-stage1/align")
    assert s2.language_model.stage2_training == "lora" and s2.language_model.save == "merged"
    assert set(s2.lora.target_modules) == {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"}
    assert s2.data.text_ratio > 0  # text-only instructions keep the Korean chat


@pytest.mark.slow
def test_scale_bench_small_runs_both_stages_and_the_text_only_baseline(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_vr_scale.py"), "--small", "--scenes", "40",
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = {r["run"]: r for r in json.loads(out.read_text(encoding="utf-8"))["runs"]}
    assert runs["stage 1 (projector)"]["images_per_s"] > 0
    assert runs["stage 2 (projector + LoRA)"]["images_per_s"] > 0
    assert runs["stage 2, text-only baseline"]["images_per_s"] == 0
    assert all(r["tokens_per_s"] > 0 and r["steps"] == 3 for r in runs.values())
    assert "| stage 2, text-only baseline |" in done.stdout and "1.00x" in done.stdout
    # Stage 2 saved only its adapter (no merged copy of the language model).
    assert (tmp_path / "work" / "stage2" / "align" / "lora").is_dir()
    assert not (tmp_path / "work" / "stage2" / "align" / "language_model").exists()


def test_scale_bench_refuses_to_run_without_a_gpu_unless_small() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_vr_scale.py")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--small" in done.stderr


@pytest.mark.parametrize(("text", "seeds"), [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,5", [0, 1, 5])])
def test_seed_lists(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0,0", "3-1", "x"])
def test_bad_seed_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seeds(text)


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "stage2_file", "passes"), [("--reasons-in-pass", "train_vqa.verdicts.jsonl", 1),
                                                               ("--yes-no-in-pass", "train_vqa.no-yes-no.jsonl", 2)])
def test_proof_bench_runs_seeds_and_their_baselines_in_parallel_processes(tmp_path: Path, recipe: str,
                                                                          stage2_file: str, passes: int) -> None:
    out = tmp_path / "seeds.json"
    command = [sys.executable, str(BENCH_VR), "--scenes", "60", "--stage2-steps", "10",
               "--seeds", "0-1", "--parallel", "2", "--train-questions", "relation=2", "--relation-steps", "4",
               "--relation-replay", "0.5", "--relation-eval", "20", "--reasoned-relations", recipe,
               "--relation-passes", str(passes), "--workdir", str(tmp_path / "w"), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads(out.read_text(encoding="utf-8"))
    assert [r["seed"] for r in runs] == [0, 1]
    mix_file = tmp_path / "w" / "data" / "train_vqa.relations-replay0.5.jsonl"
    mix = [json.loads(line) for line in mix_file.read_text(encoding="utf-8").splitlines()]
    relations = sum(q["type"] == "relation" for q in mix)
    assert relations == 48 * 2 and 48 < len(mix) - relations < 48 * 4  # 48 training scenes; half the rest
    # Stage 2 saw no reason (the verdicts alone, or no yes/no relation at all); the relation pass sees them.
    stage2_path = tmp_path / "w" / "data" / stage2_file
    stage2_records = [json.loads(line) for line in stage2_path.read_text(encoding="utf-8").splitlines()]
    assert not any(REASON_JOINER in q["answer"] for q in stage2_records)
    assert sum(REASON_JOINER in q["answer"] for q in mix) > 20
    train_count = len((tmp_path / "w" / "data" / "train_vqa.jsonl").read_text(encoding="utf-8").splitlines())
    if recipe == "--reasons-in-pass":
        assert len(stage2_records) == train_count
    else:  # "which one" relations stay; yes/no ones go
        stage2_relations = [q["answer"] for q in stage2_records if q["type"] == "relation"]
        assert stage2_relations and not {YES, NO} & set(stage2_relations)
        assert len(stage2_records) == train_count - sum(q["type"] == "relation" for q in mix) + len(stage2_relations)
    for r in runs:
        assert r["align"]["images"] is True and r["text_only"]["images"] is False
        assert r["align"]["overall"]["n"] == r["text_only"]["overall"]["n"] > 0
        assert json.loads((tmp_path / "w" / f"seed{r['seed']}" / "result.json").read_text(encoding="utf-8")) == r
        for model in ("align", "text_only"):  # scored after a relation pass, and before it
            passed = Path(r[model]["relation_pass"]["checkpoint"])
            assert passed.parent.name == f"{model}_relations{passes if passes > 1 else ''}"
            assert r[model]["relation_pass"]["steps"] == 4 and r[model]["relation_pass"]["passes"] == passes
            if passes > 1:  # the second pass continues from the first
                assert load_config(VRConfig, passed.parent / "config.yaml").init_from == \
                    passed.parent.parent / f"{model}_relations" / "align"
            run = json.loads((passed / "vr_run.json").read_text(encoding="utf-8"))
            assert run["steps"] == 4 and run["data"]["vqa"] == len(mix) and r[model]["relation_pass"]["replay"] == 0.5
            assert r[model]["before_relation_pass"]["overall"]["n"] == r[model]["overall"]["n"]
            earlier = [e["overall"]["n"] for e in r[model]["earlier_relation_passes"]]
            assert earlier == [r[model]["overall"]["n"]] * (passes - 1)
            assert f"{model}, after stage 2: rel_" in done.stdout
            stage2_dir = tmp_path / "w" / f"seed{r['seed']}" / model
            stage2 = json.loads((stage2_dir / "align" / "vr_run.json").read_text(encoding="utf-8"))
            assert stage2["data"]["vqa"] == len(stage2_records)
            # the verdicts file has the reasoned file's count: the run's own config names which one it read
            read = load_config(VRConfig, stage2_dir / "config.yaml").data.vqa
            assert [Path(v).resolve() for v in read] == [stage2_path.resolve()]
            for scored in (r[model], r[model]["before_relation_pass"]):  # 20 held-out relations, by form
                assert scored["relation_test"]["by_type"].keys() == {"relation"}
                assert scored["relation_test"]["overall"]["n"] == 20
    meta = json.loads((tmp_path / "w" / "data" / "meta.json").read_text(encoding="utf-8"))
    assert meta["train_questions_per_scene"]["relation"] == 2
    twice = " x 2" if passes > 1 else ""
    assert "mean over 2 seeds" in done.stdout and f"before the 4-step relation pass{twice}: relation" in done.stdout
    assert "| relation test, form rel_" in done.stdout
    assert all("which_one" in r[m]["relation_test"] for r in runs for m in ("align", "text_only"))
    if passes == 1:  # the noun probe on this run's seed-0 models
        _check_noun_probe(tmp_path / "w", tmp_path / "nouns.json")
    else:  # every pass scored; run again in the same workdir, each stage resumes at its end and trains no step
        assert "after relation pass 1 of 2: relation" in done.stdout
        assert "align, after relation pass 1: rel_" in done.stdout
        again = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 0, again.stderr[-2000:]
        assert again.stdout.count("이어서 학습 resuming from") == 2 * (1 + 2 * (1 + passes))  # stage 1, stage 2, passes
        rerun = json.loads(out.read_text(encoding="utf-8"))
        assert [r[m]["overall"] for r in rerun for m in ("align", "text_only")] == \
            [r[m]["overall"] for r in runs for m in ("align", "text_only")]


def _check_noun_probe(workdir: Path, out: Path) -> None:
    seed = workdir / "seed0"
    done = subprocess.run(
        [sys.executable, str(BENCH_NOUNS), "--data", str(workdir / "data"),
         "--align", str(seed / "align" / "align"), "--text-only", str(seed / "text_only" / "align"),
         "--questions", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    for model in ("align", "text_only"):  # every noun asked of the same three rel_5 questions
        assert {noun: score["n"] for noun, score in results[model].items()} == dict.fromkeys(NOUNS, 3)
    assert "| 도형은 | held out (rel_5)" in done.stdout and "rel_5, 3 questions per noun" in done.stdout
    bad = subprocess.run(
        [sys.executable, str(BENCH_NOUNS), "--data", str(workdir / "data"),
         "--align", str(seed / "align" / "align"), "--text-only", str(seed / "text_only" / "align"),
         "--form", "colour_1"], capture_output=True, text=True, timeout=600, check=False)
    assert bad.returncode != 0 and "no which-one questions of form 'colour_1'" in bad.stderr


def test_verdicts_drop_the_reasons_and_keep_everything_else(tmp_path: Path) -> None:
    records = [{"id": "a", "question": "빨간 별은 파란 세모의 왼쪽에 있나요?",
                "answer": "파란 세모가 더 왼쪽에 있으므로 아니요", "type": "relation"},
               {"id": "b", "question": "세모는 무슨 색인가요?", "answer": "파란색", "type": "colour"}]
    source = tmp_path / "train_vqa.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    target = _verdicts(source)
    assert target == _verdicts(source, write=False) == tmp_path / "train_vqa.verdicts.jsonl"
    written = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert written == [{**records[0], "answer": "아니요"}, records[1]]


def test_without_yes_no_keeps_which_one_and_the_other_types(tmp_path: Path) -> None:
    records = [{"id": "a", "answer": "파란 세모가 더 왼쪽에 있으므로 아니요", "type": "relation"},
               {"id": "b", "answer": "예", "type": "relation"},
               {"id": "c", "answer": "파란 세모", "type": "relation"},
               {"id": "d", "answer": "예", "type": "existence"}]
    source = tmp_path / "train_vqa.jsonl"
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    target = _without_yes_no(source)
    assert target == _without_yes_no(source, write=False) == tmp_path / "train_vqa.no-yes-no.jsonl"
    assert [json.loads(line)["id"] for line in target.read_text(encoding="utf-8").splitlines()] == ["c", "d"]


@pytest.mark.parametrize("flag", ["reasons_in_pass", "yes_no_in_pass"])
@pytest.mark.parametrize("size", [{"relation_steps": 10}, {"reasoned": True}])
def test_the_pass_only_recipes_need_reasons_and_a_pass(flag: str, size: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"need reasoned answers \(--reasoned-relations\) and a relation pass"):
        ProofSize(**{**size, flag: True})
    option = "--" + flag.replace("_", "-")
    done = subprocess.run([sys.executable, str(BENCH_VR), option, "--relation-steps", "5"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "need reasoned answers (--reasoned-relations)" in done.stderr


@pytest.mark.parametrize("size", [{"relation_passes": 0, "relation_steps": 10}, {"relation_passes": 2}])
def test_relation_passes_count_from_one_and_need_a_pass(size: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"--relation-passes"):
        ProofSize(**size)
    done = subprocess.run([sys.executable, str(BENCH_VR), "--relation-passes", "2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "needs a relation pass (--relation-steps)" in done.stderr


def test_a_bad_train_questions_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, str(BENCH_VR), "--train-questions", "relation"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "write TYPE=N" in done.stderr and "Traceback" not in done.stderr


def test_the_two_pass_only_recipes_are_refused_together() -> None:
    with pytest.raises(ValueError, match="already keep their reasons out"):
        ProofSize(reasoned=True, relation_steps=10, reasons_in_pass=True, yes_no_in_pass=True)
    done = subprocess.run([sys.executable, str(BENCH_VR), "--reasoned-relations", "--relation-steps", "5",
                           "--reasons-in-pass", "--yes-no-in-pass"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and "drop --reasons-in-pass" in done.stderr


def _score(accuracy: float, n: int = 40) -> dict[str, float]:
    return {"n": n, "correct": round(accuracy * n), "accuracy": accuracy}


def test_tables_split_relations_by_the_form_of_the_question(capsys: pytest.CaptureFixture[str]) -> None:
    def result(rel_1: float, rel_3: float) -> dict[str, object]:
        return {"overall": _score(0.5, 80), "by_type": {"relation": _score(0.5, 80)},
                "by_template": {"seen": _score(0.5, 80)},
                "by_template_id": {"rel_3": _score(rel_3), "rel_1": _score(rel_1), "colour_1": _score(0.9)}}

    runs: list[dict[str, Any]] = [{"seed": 0, "align": result(0.55, 0.75), "text_only": result(0.5, 0.25)},
            {"seed": 1, "align": result(0.45, 0.5), "text_only": result(0.5, 0.5)}]
    for run in runs:  # scored on a relation test as well (--relation-eval)
        for model in ("align", "text_only"):
            run[model]["relation_test"] = {"by_template_id": {"rel_2": _score(0.6 if model == "align" else 0.5, 400)}}
    runs[0]["align"]["relation_test"]["which_one"] = {
        "rel_5": {"n": 4, "named": 2, "named_share": 0.5, "right_of_named": 1.0}}
    print_tables(runs)
    out = capsys.readouterr().out
    assert "| &nbsp;&nbsp;relation form rel_1 (n=40) | 55.0% | 50.0% |" in out
    assert out.index("relation form rel_1") < out.index("relation form rel_3") < out.index("template seen")
    assert "colour_1" not in out
    assert "| &nbsp;&nbsp;relation form rel_3 | 62.5% (50.0%-75.0%) | 37.5% (25.0%-50.0%) | 1/2 |" in out
    assert "| relation test, form rel_2 (n=400) | 60.0% | 50.0% |" in out
    assert "| relation test, form rel_2 | 60.0% (60.0%-60.0%) | 50.0% (50.0%-50.0%) | 2/2 |" in out
    # the which-one split is printed where it was scored (older results have none)
    assert out.count("which one, relation test") == 1 and "rel_5 50.0% / 100.0% vs -" in out


def test_encode_bench_checks_both_ways_agree_and_prints_the_speed_up() -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "bench_vr_encode.py"), "--scenes", "60"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "seconds" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| one record at a time (baseline)", "| batched (finetune-vr)"]
    assert rows[0].endswith("| 1.00x |") and float(rows[1].split(" | ")[-1].rstrip("x |")) > 0
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "bench_vr_encode.py"), "--scenes", "5"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--scenes" in bad.stderr
