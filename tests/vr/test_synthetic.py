"""The synthetic visual-reasoning set: seeded, correct answers, held-out scenes and templates."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from research.vr.questions import DIRECTIONS, MIN_SEPARATION, NO, TEMPLATES, YES
from research.vr.scenes import COLOURS, SceneObject


@pytest.fixture(scope="module")
def vr_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from research.vr.synthetic import generate

    out = tmp_path_factory.mktemp("vr") / "set"
    generate(out, 80, seed=3, image_size=48)
    return out


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(vr_set: Path, tmp_path: Path) -> None:
    from research.vr.synthetic import generate

    generate(tmp_path / "again", 80, seed=3, image_size=48)
    generate(tmp_path / "other", 80, seed=4, image_size=48)
    assert _digest(tmp_path / "again") == _digest(vr_set)
    assert _digest(tmp_path / "other") != _digest(vr_set)


def test_grid_layout_keeps_one_object_per_cell_and_free_layout_works(tmp_path: Path) -> None:
    import random

    from research.vr.scenes import CANVAS, sample_scene
    from research.vr.synthetic import generate

    rng = random.Random(0)
    for _ in range(50):
        scene = sample_scene(rng, grid=4)
        cells = {(int(o.x // (CANVAS / 4)), int(o.y // (CANVAS / 4))) for o in scene.objects}
        assert len(cells) == len(scene.objects)
        for o in scene.objects:  # the whole shape stays inside its cell
            cx, cy = (int(o.x // 25) + 0.5) * 25, (int(o.y // 25) + 0.5) * 25
            assert abs(o.x - cx) + o.radius * 1.1 <= 12.5 and abs(o.y - cy) + o.radius * 1.1 <= 12.5
    free = generate(tmp_path / "free", 10, seed=1, grid=0)
    assert free.questions["train"] > 0
    with pytest.raises(ValueError, match="grid"):
        generate(tmp_path / "bad", 10, seed=1, grid=2)


def test_layout_counts_and_images(vr_set: Path) -> None:
    meta = json.loads((vr_set / "meta.json").read_text(encoding="utf-8"))
    assert meta["scenes"] == {"train": 64, "test": 16}
    train = _read(vr_set / "train_vqa.jsonl")
    assert set(meta["by_type"]["train"]) == {"existence", "colour", "shape", "count", "relation"}
    with Image.open(vr_set / train[0]["image"]) as image:
        assert image.size == (48, 48) and image.mode == "RGB"


def test_heldout_templates_and_scenes_never_in_training(vr_set: Path) -> None:
    train_q = _read(vr_set / "train_vqa.jsonl")
    test_q = _read(vr_set / "test_vqa.jsonl")
    heldout_ids = {t.id for t in TEMPLATES if t.heldout}
    assert heldout_ids and not heldout_ids & {q["template"] for q in train_q}
    assert heldout_ids <= {q["template"] for q in test_q}
    assert {q["question"] for q in test_q if q["heldout_template"]}.isdisjoint({q["question"] for q in train_q})
    def signature(c: dict) -> tuple:
        return tuple(sorted((o["colour"], o["shape"], round(o["x"]), round(o["y"])) for o in c["scene"]))

    train_scenes = {signature(c) for c in _read(vr_set / "train_captions.jsonl")}
    assert not train_scenes & {signature(c) for c in _read(vr_set / "test_captions.jsonl")}


def _objects(captions: list[dict]) -> dict[str, list[SceneObject]]:
    return {c["id"]: [SceneObject(**o) for o in c["scene"]] for c in captions}


def test_answers_agree_with_the_scene(vr_set: Path) -> None:
    """Recompute every answer from the scene description, independently of the generator."""
    scenes = _objects(_read(vr_set / "train_captions.jsonl") + _read(vr_set / "test_captions.jsonl"))
    adjectives = {adj: noun for noun, adj, _ in COLOURS}
    checked = 0
    for q in _read(vr_set / "train_vqa.jsonl") + _read(vr_set / "test_vqa.jsonl"):
        objects = scenes[q["scene_id"]]
        text, answer = q["question"], q["answer"]
        named = [o for o in objects if o.name in text]
        if q["type"] == "existence":
            assert (answer == YES) == bool(named), text
        elif q["type"] == "colour":
            shape = next(s for s in ("네모", "세모", "원", "별") if text.startswith(s) or f" {s}" in text)
            assert [o.colour for o in objects if o.shape == shape] == [answer], text
        elif q["type"] == "shape":
            adj = next(a for a in adjectives if f"{a} 도형" in text)
            assert [o.shape for o in objects if o.adjective == adj] == [answer], text
        elif q["type"] == "count":
            counted = next((a for a in adjectives if f"{a} 도형" in text), None)
            n = sum(o.adjective == counted for o in objects) if counted else sum(
                text.startswith(o.shape) or f" {o.shape}" in text.split("몇")[0] for o in objects)
            assert answer == f"{n}개", text
        else:
            word = next(w for w in DIRECTIONS if f"{w}에" in text)
            axis, sign = DIRECTIONS[word]

            def towards(o: SceneObject, axis: str = axis, sign: int = sign) -> float:
                return sign * (o.x if axis == "x" else o.y)

            assert len(named) == 2 and abs(towards(named[0]) - towards(named[1])) >= MIN_SEPARATION
            if answer in (YES, NO):
                reference = next(o for o in named if f"{o.name}의" in text)
                subject = next(o for o in named if o is not reference)
                assert (answer == YES) == (towards(subject) > towards(reference)), text
            else:
                assert answer == max(named, key=towards).name, text
        checked += 1
    assert checked > 300


def test_particles_in_generated_text(vr_set: Path) -> None:
    text = " ".join(q["question"] for q in _read(vr_set / "train_vqa.jsonl"))
    text += " ".join(c["caption"] for c in _read(vr_set / "train_captions.jsonl"))
    for wrong in ("원가 ", "별가 ", "네모이 ", "세모이 ", "원는 ", "네모은 ", "원와 ", "네모과 ", "별와 "):
        assert wrong not in text
    for right in ("원이 ", "네모가 ", "별은 ", "세모는 ", "원과 ", "네모와 "):
        assert right in text


def test_cli_writes_a_set_and_rejects_bad_counts(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "kovr", "vr-data", "--output", str(tmp_path / "d"), "--count", "5",
                         "--seed", "1"], check=False, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "d" / "train_vqa.jsonl").is_file()
    bad = subprocess.run([sys.executable, "-m", "kovr", "vr-data", "--output", str(tmp_path / "e"), "--count", "1"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "count must be at least 2" in bad.stderr


def test_train_questions_add_questions_of_a_type_and_leave_the_test_split_alone(vr_set: Path, tmp_path: Path) -> None:
    meta = json.loads((vr_set / "meta.json").read_text(encoding="utf-8"))
    more = tmp_path / "more"
    ok = subprocess.run([sys.executable, "-m", "research.vr.cli", "--output", str(more), "--count", str(meta["count"]),
                         "--seed", str(meta["seed"]), "--image-size", "48", "--train-questions", "relation=3,count=0"],
                        check=False, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    by_type = json.loads((more / "meta.json").read_text(encoding="utf-8"))["by_type"]
    scenes = meta["scenes"]["train"]
    assert "count" not in by_type["train"] and by_type["train"]["existence"] == scenes
    assert scenes * 2 < by_type["train"]["relation"] <= scenes * 3  # a scene may offer no relation
    assert (more / "test_vqa.jsonl").read_bytes() == (vr_set / "test_vqa.jsonl").read_bytes()
    errors = (("colour=x", "write TYPE=N"), ("size=2", "unknown question type"), ("relation=99", "between 0"))
    for bad, message in errors:
        out = subprocess.run([sys.executable, "-m", "research.vr.cli", "--output", str(tmp_path / "bad"),
                              "--count", "5",
                              "--train-questions", bad], check=False, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and message in out.stderr, (bad, out.stderr)


def _regenerate(vr_set: Path, out: Path, *flags: str) -> dict:
    """``vr_set`` made again through the research CLI with ``flags``; returns the new meta.json."""
    meta = json.loads((vr_set / "meta.json").read_text(encoding="utf-8"))
    ok = subprocess.run([sys.executable, "-m", "research.vr.cli", "--output", str(out), "--count", str(meta["count"]),
                         "--seed", str(meta["seed"]), "--image-size", "48", *flags],
                        check=False, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    return json.loads((out / "meta.json").read_text(encoding="utf-8"))


def test_reasoned_relations_change_only_yes_no_relation_answers(vr_set: Path, tmp_path: Path) -> None:
    from finetune.vr.evaluate import REASON_JOINER, final_answer

    out = tmp_path / "reasoned"
    assert _regenerate(vr_set, out, "--reasoned-relations")["reasoned_relations"] is True
    reasoned = 0
    for split in ("train", "test"):
        plain, new = _read(vr_set / f"{split}_vqa.jsonl"), _read(out / f"{split}_vqa.jsonl")
        assert [q["question"] for q in plain] == [q["question"] for q in new]
        for p, q in zip(plain, new, strict=True):
            if p["type"] != "relation" or p["answer"] not in (YES, NO):
                assert q["answer"] == p["answer"]
                continue
            reasoned += 1
            assert final_answer(q["answer"]) == p["answer"] and REASON_JOINER in q["answer"]
            # The reason names the one of the two objects that is further that way.
            further = q["answer"].split(" 더 ")[0][:-1]
            word = next(w for w in DIRECTIONS if f"{w}에" in p["question"])
            assert further in p["question"] and f" 더 {word}에 " in q["answer"]
            subject_first = p["question"].removeprefix("그림에서 ").startswith(further) and p["template"] != "rel_2"
            subject_last = p["template"] == "rel_2" and p["question"].split("에 ", 1)[1].startswith(further)
            assert (p["answer"] == YES) == (subject_first or subject_last), (p["question"], q["answer"])
    assert reasoned > 40


def test_varied_wordings_move_the_names_in_training_only(vr_set: Path, tmp_path: Path) -> None:
    from research.vr.questions import FRONT_WORDS, WHICH_NOUNS

    out = tmp_path / "varied"
    assert _regenerate(vr_set, out, "--varied-wordings")["varied_wordings"] is True
    # Scored on the very questions the plain set has, so runs with and without compare.
    assert (out / "test_vqa.jsonl").read_bytes() == (vr_set / "test_vqa.jsonl").read_bytes()
    train = _read(out / "train_vqa.jsonl")
    fronted = [q for q in train if q["question"].startswith(FRONT_WORDS)]
    renamed = [q for q in train if any(f"있는 {noun}" in q["question"] for noun in WHICH_NOUNS)]
    assert 0.2 < len(fronted) / len(train) < 0.5 and renamed, (len(fronted), len(renamed), len(train))
    assert {q["type"] for q in fronted} == {"existence", "colour", "shape", "count", "relation"}
    for q in train:  # the held-out relation wordings stay held out
        assert not q["heldout_template"] and "그림에서" not in q["question"] and "있는 도형은" not in q["question"]
    for q in renamed:  # still "which one": the answer is one of the two names asked about
        assert q["answer"] in q["question"].split(" 중 ")[0]


def test_varied_nouns_rename_dohyeong_in_half_the_shape_and_count_training_questions(
        vr_set: Path, tmp_path: Path) -> None:
    import random

    from research.vr.synthetic import renoun_all

    varied, both = tmp_path / "varied", tmp_path / "both"
    _regenerate(vr_set, varied, "--varied-wordings")
    assert _regenerate(vr_set, both, "--varied-wordings", "--varied-nouns")["varied_nouns"] is True
    assert (both / "test_vqa.jsonl").read_bytes() == (vr_set / "test_vqa.jsonl").read_bytes()
    before, after = _read(varied / "train_vqa.jsonl"), _read(both / "train_vqa.jsonl")
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    with_word = [q for q in before if "도형" in q["question"]]
    assert 0.3 < len(changed) / len(with_word) < 0.7, (len(changed), len(with_word))
    for a, b in changed:  # only the noun: same answer, type and scene; "도형" gone, a noun with its particle
        assert a["type"] in ("shape", "count") and {k: v for k, v in a.items() if k != "question"} == \
            {k: v for k, v in b.items() if k != "question"}
        assert "도형" not in b["question"]
        assert any(n in b["question"] for n in ("것은", "물체는", "것의", "물체의", "것이", "물체가"))
    # the same pass over the set without it gives this set: runs on an existing set can add the nouns
    renoun_all(before, random.Random(f"{json.loads((vr_set / 'meta.json').read_text())['seed']}:train-nouns"))
    assert before == after


def test_reasoned_answers_score_by_their_verdict() -> None:
    from finetune.vr.data import VRRecord
    from finetune.vr.evaluate import Prediction, accuracy_by_type, format_table

    gold = "초록색 네모가 더 왼쪽에 있으므로 아니요"
    record = VRRecord("r", None, "파란 세모는 초록색 네모의 왼쪽에 있나요?", gold, type="relation")
    predictions = [Prediction(record, gold), Prediction(record, "파란 세모가 더 왼쪽에 있으므로 아니요"),
                   Prediction(record, "초록색 네모가 더 왼쪽에 있으므로 예"), Prediction(record, "아니요.")]
    assert [p.correct for p in predictions] == [True, True, False, True]
    assert [p.exact for p in predictions] == [True, False, False, False]
    result = accuracy_by_type(predictions)
    assert result["reasoned"]["verdict"]["correct"] == 3 and result["reasoned"]["reason_and_verdict"]["correct"] == 1
    plain = VRRecord("p", None, "원은 무슨 색인가요?", "빨간색", type="colour")
    assert "reasoned" not in accuracy_by_type([Prediction(plain, "빨간색")])
    assert "| reasoned answers: reason and verdict | 4 | 25.0% |" in format_table(result)


def test_which_one_answers_count_whether_they_name_either_thing() -> None:
    from finetune.vr.data import VRRecord
    from finetune.vr.evaluate import Prediction, accuracy_by_type, format_table, which_pair

    question = "사진에서 초록색 원과 노란 세모 중 더 왼쪽에 있는 도형은 무엇인가요?"
    assert which_pair(question) == ("초록색 원", "노란 세모")
    assert which_pair("파란 별과 빨간 원 중 더 위에 있는 것은 무엇인가요?") == ("파란 별", "빨간 원")
    assert which_pair("빨간 별은 노란 네모의 오른쪽에 있나요?") is None
    record = VRRecord("w", None, question, "노란 세모", type="relation", template="rel_5")
    # right; the other one; a colour neither has; no colour at all
    predictions = [Prediction(record, a) for a in ("노란 세모", "초록색 원", "초록색 세모", "세모")]
    assert [p.named for p in predictions] == [True, True, False, False]
    which = accuracy_by_type(predictions)["which_one"]["rel_5"]
    assert which == {"n": 4, "named": 2, "named_share": 0.5, "right_of_named": 0.5}
    assert "| which one, rel_5: names one of the two / right of those | 4 | 50.0% / 50.0% |" in format_table(
        accuracy_by_type(predictions))
    yes_no = VRRecord("y", None, "빨간 별은 노란 네모의 오른쪽에 있나요?", "예", type="relation")
    assert Prediction(yes_no, "예").named is None and "which_one" not in accuracy_by_type([Prediction(yes_no, "예")])
