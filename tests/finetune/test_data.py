"""Data loading and cleaning: formats, normalisation, drops counted, dedupe, mixing, held-out split."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from finetune.cleaning import normalize_text
from finetune.data import IGNORE, load_records, prepare_examples
from finetune.finetune_config import DataSection, SourceSpec
from finetune.modeling import train_tokenizer
from finetune.sources import DataError, read_source
from finetune.yaml_config import build_config
from kovr.prompt import KULLM
from tests.finetune.conftest import write_jsonl
from tests.finetune.korean_records import all_records


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    texts = [KULLM.render(r["instruction"], r.get("input", "")) + r["output"] for r in all_records()]
    return train_tokenizer(texts, 400)


def _section(*sources: dict[str, Any], **extra: Any) -> DataSection:
    return build_config(DataSection, {"sources": list(sources), **extra})


def test_normalisation_is_nfc_and_tidies_whitespace() -> None:
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert decomposed != "한국어"
    text = normalize_text(f"  {decomposed}\u00a0문장\u200b \r\n\r\n\r\n\n다음 줄\t \n")
    assert text == "한국어 문장\n\n다음 줄"


def test_broken_empty_and_duplicate_records_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        {"instruction": "질문 하나", "output": "답 하나"},
        {"instruction": "질문 하나", "output": "다른 답"},  # duplicate (instruction, input)
        {"instruction": "  ", "output": "답"},  # empty
        {"instruction": "질문 둘", "output": None},  # broken
        {"instruction": "질문 셋", "output": ["list"]},  # broken
        {"instruction": unicodedata.normalize("NFD", "질문 넷"), "input": None, "output": "답 넷"},
        {"instruction": "질문 넷", "output": "중복"},  # duplicate after NFC
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    loaded = load_records(_section({"path": str(path)}))
    summary, records = loaded.by_source[0]
    assert [r.instruction for r in records] == ["질문 하나", "질문 넷"]
    assert summary.read == 7 and summary.kept == 2
    assert summary.dropped == {"duplicate": 2, "empty": 1, "broken": 2}
    assert summary.first_dropped_at["broken"].endswith("d.jsonl:4")


def test_bad_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:3: not valid JSON"):
        load_records(_section({"path": str(path)}))
    path.write_text('{"instruction": "a", "output": "b"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: expected a JSON object, got list"):
        load_records(_section({"path": str(path)}))
    path.write_bytes(b'{"instruction": "\xff", "output": "b"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:1: not UTF-8"):
        load_records(_section({"path": str(path)}))


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c" "output": "d"}\n]\n',
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json:3: not valid JSON"):
        load_records(_section({"path": str(path)}))
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  "text"\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json:3: expected a JSON object"):
        load_records(_section({"path": str(path)}))


def test_a_source_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wrong.jsonl", [{"question": "q", "answer": "a"}] * 3)
    with pytest.raises(DataError, match=r"wrong\.jsonl: no usable records \(3 read.*broken first at .*wrong\.jsonl:1"):
        load_records(_section({"path": str(path)}))
    with pytest.raises(DataError, match="data file not found"):
        load_records(_section({"path": str(tmp_path / "absent.jsonl")}))


def test_json_parquet_and_koalpaca_shapes_load(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kullm = [{"id": "1", "instruction": "가", "input": "나", "output": "다"}]
    koalpaca = [{"instruction": "라", "output": "마", "url": "https://example.org"}]
    (tmp_path / "k.json").write_text(json.dumps(kullm, ensure_ascii=False), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(koalpaca), tmp_path / "a.parquet")
    loaded = load_records(_section({"path": str(tmp_path / "k.json")}, {"path": str(tmp_path / "a.parquet")}))
    (_, first), (_, second) = loaded.by_source
    assert (first[0].instruction, first[0].input, first[0].output) == ("가", "나", "다")
    assert (second[0].instruction, second[0].input, second[0].output) == ("라", "", "마")


def test_hub_datasets_go_through_datasets_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[tuple[Any, ...]] = []

    def fake_load(name: str, split: str, revision: str | None) -> list[dict[str, str]]:
        calls.append((name, split, revision))
        return [{"instruction": "허브 질문", "output": "허브 답"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = list(read_source(SourceSpec(name="beomi/KoAlpaca-v1.1a")))
    assert calls == [("beomi/KoAlpaca-v1.1a", "train", None)]
    assert rows[0].where == "beomi/KoAlpaca-v1.1a[train]#1"


def test_unreachable_hub_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Couldn't reach 'nlpai-lab/kullm-v2' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"nlpai-lab/kullm-v2: could not load split 'train'.*local JSON"):
        list(read_source(SourceSpec(name="nlpai-lab/kullm-v2")))


def test_labels_mask_the_prompt_and_end_with_eos(records_file: Path, tokenizer: Any) -> None:
    cfg = _section({"path": str(records_file)}, heldout=0)
    data = prepare_examples(load_records(cfg), cfg, tokenizer, KULLM, seed=0)
    ex = data.train[0]
    prompt_len = sum(1 for label in ex.labels if label == IGNORE)
    prompt = tokenizer.decode(ex.input_ids[:prompt_len])
    assert prompt.endswith("### 응답:\n") and "### 명령어:" in prompt
    assert ex.labels[prompt_len:] == ex.input_ids[prompt_len:]
    assert ex.input_ids[-1] == tokenizer.eos_token_id
    response = tokenizer.decode(ex.input_ids[prompt_len:-1])
    assert response in {r["output"] for r in all_records()}


def test_length_filter_split_and_weights_are_counted(records_file: Path, tokenizer: Any, tmp_path: Path) -> None:
    second = write_jsonl(tmp_path / "b.jsonl",
                         [{"instruction": f"질문 {i}번", "output": f"답 {i}번"} for i in range(10)])
    cfg = _section({"path": str(records_file), "weight": 2.0}, {"path": str(second), "weight": 0.5},
                   heldout=4, max_seq_len=80)
    data = prepare_examples(load_records(cfg), cfg, tokenizer, KULLM, seed=3)
    first, other = data.summary.sources
    assert first.dropped.get("too_long", 0) > 0
    assert all(len(e) <= 80 for e in data.train + data.heldout)
    assert first.heldout + other.heldout == 4 == len(data.heldout)
    assert first.train_after_weight == 2 * first.train_unique
    assert other.train_after_weight == round(0.5 * other.train_unique)
    assert len(data.train) == first.train_after_weight + other.train_after_weight
    held = {e.key for e in data.heldout}
    assert held.isdisjoint(e.key for e in data.train)
    again = prepare_examples(load_records(cfg), cfg, tokenizer, KULLM, seed=3)
    assert [e.key for e in again.heldout] == [e.key for e in data.heldout]
    other_seed = prepare_examples(load_records(cfg), cfg, tokenizer, KULLM, seed=4)
    assert [e.key for e in other_seed.heldout] != [e.key for e in data.heldout]
    too_long = first.dropped["too_long"] + other.dropped.get("too_long", 0)
    assert data.summary.to_json()["dropped_total"]["too_long"] == too_long


def test_the_repos_korean_set_loads_without_drops() -> None:
    from kovr.data import load_demo_instructions

    loaded = load_records(_section({"builtin": "ko_instructions"}))
    summary, records = loaded.by_source[0]
    assert summary.source == "kovr:ko_instructions"
    assert summary.read == len(load_demo_instructions()) == len(records)
    assert summary.dropped == {}


def test_tiny_tokenizer_keeps_merges_seen_once_and_its_own_pad_token() -> None:
    from kovr.modeling.bpe import train_byte_level_bpe

    texts = ["파란 세모는 초록색 네모의 왼쪽에 있나요?"] + ["예 아니요"] * 20
    ours = train_tokenizer(texts, 400)
    demo = train_byte_level_bpe(texts, 400)  # the demo model's: merges seen twice or more
    assert ours.pad_token == "<|pad|>" and ours.eos_token == demo.eos_token == "<|endoftext|>"
    once = "파란 세모는 초록색 네모의 왼쪽에 있나요?"
    assert len(ours(once)["input_ids"]) < len(demo(once)["input_ids"])
    assert ours.decode(ours(once)["input_ids"]) == once
