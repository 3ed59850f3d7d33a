"""eval-chat's pieces without a model: specs, keys, the prompt set, strict judge parsing, order swap,
bootstrap, the JSONL cache after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalchat.judge import combine_orders
from evalchat.prompts import PromptSetError, load_prompt_set, parse_prompt_set
from evalchat.rubric import CRITERIA, absolute_prompt, pairwise_prompt, parse_scores, parse_verdict
from evalchat.stats import bootstrap_ci
from evalchat.store import JsonlStore
from evalchat.targets import TargetError, parse_target, resolve_keys

GOOD = {"understandability": 1, "naturalness": 3, "context": 2, "interestingness": 2, "instructions": 1, "overall": 4}


def test_target_specs() -> None:
    app = parse_target("app=http://127.0.0.1:8000/v1/;key_env=KOVR_TOKEN;model=kovr")
    expected = ("openai", "http://127.0.0.1:8000/v1", "kovr", "KOVR_TOKEN")
    assert (app.kind, app.location, app.model, app.key_env) == expected
    assert parse_target("ms=http://127.0.0.1:8080").kind == "tgi"
    assert parse_target("base=runs/x/base_model").kind == "local"
    assert parse_target("t=tgi:http://h:1/v1").kind == "tgi"  # an explicit kind wins
    assert parse_target("a=local:/m").identity == parse_target("b=local:/m").identity  # names are labels
    for bad in ("nameonly", "=x", "a=http://h;colour=red", "a=local:/m;key_env=X", "a b=/m"):
        with pytest.raises(TargetError):
            parse_target(bad)


def test_keys_come_from_the_named_variable() -> None:
    specs = [parse_target("app=http://h/v1;key_env=TOKEN_A"), parse_target("m=http://h")]
    assert resolve_keys(specs, {"TOKEN_A": "secret"}) == {"app": "secret"}
    with pytest.raises(TargetError, match="TOKEN_A"):
        resolve_keys(specs, {})


def test_shipped_prompt_set() -> None:
    items = load_prompt_set()
    assert 30 <= len(items) <= 40
    assert len({i.category for i in items}) >= 10
    assert all(i.reference for i in items) and any(i.input for i in items)


def test_prompt_set_shape_is_checked() -> None:
    items = parse_prompt_set('{"instruction": "질문", "output": "답"}\n\n{"instruction": "둘째", "input": "x"}\n', "f")
    assert [(i.id, i.reference, i.category) for i in items] == [("line1", "답", "기타"), ("line3", "", "기타")]
    for bad in ('{"instruction": ""}', '{"instruction": "a", "colour": 1}', "[1]", "{", ""):
        with pytest.raises(PromptSetError):
            parse_prompt_set(bad, "f")


def test_scores_are_read_strictly() -> None:
    assert parse_scores(json.dumps(GOOD)) == GOOD
    assert parse_scores("```json\n" + json.dumps({**GOOD, "reason": "좋음"}) + "\n```") == GOOD
    for bad in ("점수: 4", json.dumps({**GOOD, "overall": 6}), json.dumps({**GOOD, "overall": "4"}),
                json.dumps({**GOOD, "overall": True}), json.dumps({k: v for k, v in GOOD.items() if k != "context"}),
                "설명입니다. " + json.dumps(GOOD), json.dumps(GOOD)[:-1] + ', "overall": 4}',
                json.dumps({**GOOD, "extra": 1}), "[1, 2]"):
        assert parse_scores(bad) is None, bad


def test_verdicts_and_order_swap() -> None:
    assert parse_verdict('{"winner": "a"}') == "A" and parse_verdict('{"winner": "TIE"}') == "tie"
    assert parse_verdict('{"winner": "C"}') is None and parse_verdict("A") is None
    # (x shown first, y shown first): agreeing on the same answer is a win, anything else a tie
    assert combine_orders("A", "B") == "x" and combine_orders("B", "A") == "y"
    assert combine_orders("A", "A") == "tie" and combine_orders("tie", "B") == "tie"
    assert combine_orders("A", None) is None


def test_prompts_end_with_their_format() -> None:
    item = load_prompt_set()[0]
    absolute = absolute_prompt(item, "답변")
    assert all(c.key in absolute.splitlines()[-1] for c in CRITERIA) and item.instruction in absolute
    pair = pairwise_prompt(item, "첫째 답", "둘째 답")
    assert '"winner"' in pair.splitlines()[-1] and pair.index("첫째 답") < pair.index("둘째 답")


def test_bootstrap_interval() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0] * 8
    mean, low, high = bootstrap_ci(values)
    assert mean == 3.0 and low < 3.0 < high and low > 2.4 and high < 3.6
    assert bootstrap_ci(values) == bootstrap_ci(values)  # seeded
    assert bootstrap_ci([4.0] * 10) == (4.0, 4.0, 4.0)
    wide = bootstrap_ci([1.0, 5.0] * 5)
    assert wide[2] - wide[1] > high - low  # fewer, more spread items: a wider interval


def test_store_survives_a_cut_line(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path / "a.jsonl")
    store.put({"key": "one", "answer": "하나"})
    with (tmp_path / "a.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"key": "two", "ans')  # killed mid-write
    again = JsonlStore(tmp_path / "a.jsonl")
    assert set(again.records) == {"one"}
    again.put({"key": "three", "answer": "셋"})
    assert set(JsonlStore(tmp_path / "a.jsonl").records) == {"one", "three"}
